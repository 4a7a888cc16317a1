//! The outbox relay's Lambda events: a batch of the table's stream records (new outbox
//! entries, delivered as they commit) or the periodic sweep (entries the stream missed).

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use clanwar_domain::events::EventEnvelope;
use clanwar_domain::ids::EventId;
use clanwar_domain::ports::StoreError;
use clanwar_domain::services::outbox::{deliver, relay, RelayReport};
use clanwar_domain::services::Deps;
use std::collections::HashSet;

/// Events one sweep publishes at most; a backlog drains over consecutive runs.
pub const SWEEP_BATCH: usize = 500;

/// The sweep leaves entries younger than this to the stream (which normally delivers them
/// within a second), so the two rarely publish the same event. Consumers dedupe anyway.
pub const SWEEP_MIN_AGE_S: i64 = 120;

/// Publishes the outbox entries of one batch of stream records. Records that are not new
/// outbox entries are skipped; events the bus refused are reported by their record's
/// sequence number, so Lambda retries the batch from the first of them (the ones before are
/// acknowledged). An entry that cannot be decoded can never be published: it is logged and
/// skipped rather than holding up the stream.
pub async fn relay_stream(
    deps: &Deps,
    event: StreamEvent,
) -> Result<DynamoDbEventResponse, StoreError> {
    let mut sequenced: Vec<(Option<String>, EventEnvelope)> = Vec::new();
    for record in event.records {
        if record.event_name != "INSERT" {
            continue;
        }
        match clanwar_aws::outbox::outbox_event(&record.change.new_image) {
            Ok(Some(envelope)) => sequenced.push((record.change.sequence_number, envelope)),
            Ok(None) => {}
            Err(err) => tracing::error!(error = %err, "undecodable outbox entry skipped"),
        }
    }
    let events = sequenced.iter().map(|(_, e)| e.clone()).collect();
    let report = deliver(deps, events).await?;
    log(&report, "outbox stream relayed");
    let failed: HashSet<&EventId> = report.failed.iter().collect();
    let batch_item_failures = sequenced
        .into_iter()
        .filter(|(_, e)| failed.contains(&e.event_id))
        .map(|(sequence, _)| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = sequence;
            failure
        })
        .collect();
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = batch_item_failures;
    Ok(response)
}

/// The periodic sweep: publishes outbox entries older than [`SWEEP_MIN_AGE_S`].
pub async fn sweep(deps: &Deps) -> Result<RelayReport, StoreError> {
    let report = relay(
        deps,
        SWEEP_BATCH,
        chrono::Duration::seconds(SWEEP_MIN_AGE_S),
    )
    .await?;
    log(&report, "outbox swept");
    Ok(report)
}

fn log(report: &RelayReport, what: &str) {
    if report.failed.is_empty() {
        tracing::info!(published = report.published, "{what}");
    } else {
        tracing::warn!(
            published = report.published,
            failed = report.failed.len(),
            "{what}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clanwar_domain::config::Rules;
    use clanwar_domain::events::DomainEvent;
    use clanwar_domain::ids::{AllianceId, ClanId};
    use clanwar_domain::memory::{FakeClock, MemoryPublisher, MemoryStore};
    use clanwar_domain::ports::{Outbox, Store, Transaction};
    use serde_json::json;
    use std::sync::Arc;

    /// Deps whose store keeps committed events in its outbox (no stream of its own), and the
    /// bus they are published to.
    fn deps() -> (Deps, MemoryStore, MemoryPublisher) {
        let (mut deps, handles) =
            Deps::in_memory(Rules::default(), FakeClock::at(chrono::Utc::now()));
        let store = MemoryStore::new();
        deps.store = Arc::new(store.clone());
        deps.outbox = Arc::new(store.clone());
        (deps, store, handles.events)
    }

    async fn committed(deps: &Deps, store: &MemoryStore, n: usize) -> Vec<EventEnvelope> {
        let mut tx = Transaction::new();
        for i in 0..n {
            tx.emit(deps.event(
                None,
                vec![],
                DomainEvent::AllianceInvited {
                    alliance_id: AllianceId::new(format!("al-{i}")).unwrap(),
                    clan_id: ClanId::new("c").unwrap(),
                },
            ));
        }
        let events = tx.events();
        store.commit(tx).await.unwrap();
        events
    }

    /// A stream batch: an INSERT of each event's outbox entry, plus records the relay skips.
    fn stream_batch(events: &[EventEnvelope]) -> StreamEvent {
        let mut records: Vec<serde_json::Value> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                json!({ "eventID": format!("r{i}"), "eventName": "INSERT", "awsRegion": "us-east-1",
                    "dynamodb": { "SequenceNumber": format!("{}", 100 + i), "SizeBytes": 1,
                        "Keys": { "pk": {"S": "OUTBOX#1"}, "sk": {"S": "x"} },
                        "NewImage": { "pk": {"S": "OUTBOX#1"}, "sk": {"S": "x"},
                                      "event": {"S": serde_json::to_string(e).unwrap()} } } })
            })
            .collect();
        records.push(
            json!({ "eventID": "other", "eventName": "INSERT", "awsRegion": "us-east-1",
            "dynamodb": { "SequenceNumber": "900", "SizeBytes": 1,
                "Keys": { "pk": {"S": "WAR#w"}, "sk": {"S": "WAR"} },
                "NewImage": { "pk": {"S": "WAR#w"}, "sk": {"S": "WAR"} } } }),
        );
        records.push(
            json!({ "eventID": "gone", "eventName": "REMOVE", "awsRegion": "us-east-1",
            "dynamodb": { "SequenceNumber": "901", "SizeBytes": 1,
                "Keys": { "pk": {"S": "OUTBOX#2"}, "sk": {"S": "y"} } } }),
        );
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    #[tokio::test]
    async fn stream_records_of_new_outbox_entries_are_published_and_acknowledged() {
        let (deps, store, bus) = deps();
        let events = committed(&deps, &store, 3).await;
        let response = relay_stream(&deps, stream_batch(&events)).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(bus.published(), events, "the outbox entries only, in order");
        assert!(store.pending(10).await.unwrap().is_empty(), "acknowledged");
    }

    #[tokio::test]
    async fn events_the_bus_refuses_are_reported_and_stay_in_the_outbox() {
        let (deps, store, bus) = deps();
        let events = committed(&deps, &store, 2).await;
        bus.set_failing(true);
        let response = relay_stream(&deps, stream_batch(&events)).await.unwrap();
        let failed: Vec<Option<String>> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(failed, vec![Some("100".into()), Some("101".into())]);
        assert_eq!(store.pending(10).await.unwrap(), events);
        // The sweep leaves young entries to the stream's retries.
        assert_eq!(sweep(&deps).await.unwrap().published, 0);
    }
}
