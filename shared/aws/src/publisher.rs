//! EventBridge adapter of the event publisher: `PutEvents` in batches of ten, with per-entry
//! failures reported back so the outbox keeps exactly the events that were not delivered.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use clanwar_domain::events::{EventEnvelope, EVENT_SOURCE};
use clanwar_domain::ids::EventId;
use clanwar_domain::ports::{EventPublisher, PublishError};

/// `PutEvents` takes at most ten entries a call.
const MAX_ENTRIES: usize = 10;

#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    fn entry(&self, event: &EventEnvelope) -> Result<PutEventsRequestEntry, serde_json::Error> {
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(event.event_type())
            .detail(serde_json::to_string(event)?)
            .time(aws_sdk_eventbridge::primitives::DateTime::from_millis(
                event.occurred_at.timestamp_millis(),
            ))
            .build())
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    /// Every batch of ten at once (a burst, such as a war's end, costs one round trip, not one
    /// per ten events; EventBridge keeps no order between entries anyway).
    async fn publish(&self, events: &[EventEnvelope]) -> Result<(), PublishError> {
        let outcomes = futures_util::future::join_all(
            events
                .chunks(MAX_ENTRIES)
                .map(|chunk| self.put_chunk(chunk)),
        )
        .await;
        let mut failed: Vec<EventId> = Vec::new();
        let mut message = String::new();
        for (ids, why) in outcomes.into_iter().flatten() {
            failed.extend(ids);
            message = why;
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(PublishError { failed, message })
        }
    }
}

impl EventBridgePublisher {
    /// One `PutEvents` of at most ten entries; the ids it did not deliver, and why.
    async fn put_chunk(&self, chunk: &[EventEnvelope]) -> Option<(Vec<EventId>, String)> {
        let entries: Vec<_> = chunk.iter().filter_map(|e| self.entry(e).ok()).collect();
        match self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) if out.failed_entry_count() == 0 => None,
            // Entries come back in request order; a failed one carries an error code.
            Ok(out) => {
                let mut message = String::new();
                let failed = chunk
                    .iter()
                    .zip(out.entries())
                    .filter_map(|(event, result)| {
                        let code = result.error_code()?;
                        message = format!("{code}: {}", result.error_message().unwrap_or(""));
                        Some(event.event_id.clone())
                    })
                    .collect();
                Some((failed, message))
            }
            Err(err) => Some((
                chunk.iter().map(|e| e.event_id.clone()).collect(),
                aws_sdk_eventbridge::error::DisplayErrorContext(&err).to_string(),
            )),
        }
    }
}
