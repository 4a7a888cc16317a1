//! SQS batch consumption with partial batch failures: each record is handled in its own
//! tracing span; a failed record is reported back (and retried, then dead-lettered by SQS)
//! without holding up the others.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use clanwar_domain::events::EventEnvelope;
use clanwar_domain::{DomainError, DomainResult};
use std::future::Future;
use tracing::Instrument;

/// Handles every record of `event`; the response names the ones that failed.
pub async fn each_record<F, Fut, E>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut failed = Vec::new();
    clanwar_aws::calls::reset();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("sqs_record", message_id = %id);
        if let Err(err) = handle(record).instrument(span).await {
            tracing::warn!(message_id = %id, error = %err, "record failed; SQS will retry it");
            failed.push(id);
        }
    }
    crate::telemetry::aws_calls("sqs", &clanwar_aws::calls::snapshot(), &[]);
    retry_these(failed)
}

/// Handles the records of `event` together: `decode` reads each record (one it cannot read
/// fails alone), and `handle` takes all the decoded values at once and answers one result per
/// value, in order. The response names every record that failed.
pub async fn whole_batch<T, D, F, Fut, E>(event: SqsEvent, decode: D, handle: F) -> SqsBatchResponse
where
    D: Fn(&SqsMessage) -> Result<T, E>,
    F: FnOnce(Vec<T>) -> Fut,
    Fut: Future<Output = Vec<Result<(), E>>>,
    E: std::fmt::Display,
{
    clanwar_aws::calls::reset();
    let mut failed = Vec::new();
    let mut decoded = Vec::new();
    for record in &event.records {
        let id = record.message_id.clone().unwrap_or_default();
        match decode(record) {
            Ok(value) => decoded.push((id, value)),
            Err(err) => {
                tracing::warn!(message_id = %id, error = %err, "record unreadable; SQS will retry it");
                failed.push(id);
            }
        }
    }
    let (ids, values): (Vec<String>, Vec<T>) = decoded.into_iter().unzip();
    for (id, result) in ids.into_iter().zip(handle(values).await) {
        if let Err(err) = result {
            tracing::warn!(message_id = %id, error = %err, "record failed; SQS will retry it");
            failed.push(id);
        }
    }
    crate::telemetry::aws_calls("sqs", &clanwar_aws::calls::snapshot(), &[]);
    retry_these(failed)
}

/// The batch response that hands `ids` back to SQS.
fn retry_these(ids: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = ids
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// The domain event in a message that an EventBridge rule put on a queue (its `detail`; a
/// bare envelope is accepted too, e.g. a message redriven by hand).
pub fn bus_event(body: &str) -> DomainResult<EventEnvelope> {
    let message: serde_json::Value =
        serde_json::from_str(body).map_err(|e| DomainError::invalid("message", e.to_string()))?;
    let detail = message.get("detail").cloned().unwrap_or(message);
    serde_json::from_value(detail).map_err(|e| DomainError::invalid("detail", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m
    }

    #[tokio::test]
    async fn only_failed_records_are_reported() {
        let mut event = SqsEvent::default();
        event.records = vec![
            message("a", "ok"),
            message("b", "poison"),
            message("c", "ok"),
        ];
        let response = each_record(event, |m| async move {
            if m.body.as_deref() == Some("poison") {
                Err("cannot parse")
            } else {
                Ok(())
            }
        })
        .await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["b"]);
    }
}
