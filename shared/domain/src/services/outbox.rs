//! Outbox delivery. Events are committed in the same transaction as their state change, so
//! there is no state change without its event and no event without its state change. They
//! are published off the caller's path: the table's stream hands each new outbox entry to
//! [`deliver`] (outbox-relay), and a periodic [`relay`] sweep publishes any entry the stream
//! could not deliver. Consumers deduplicate by `event_id`, so a crash between publishing and
//! acknowledging only causes a harmless re-delivery.

use super::Deps;
use crate::events::EventEnvelope;
use crate::ids::EventId;
use crate::ports::StoreError;
use chrono::Duration;

/// What one delivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    /// Events the bus refused: they stay in the outbox for a later attempt.
    pub failed: Vec<EventId>,
}

/// Publishes committed outbox events and removes the published ones from the outbox.
pub async fn deliver(deps: &Deps, events: Vec<EventEnvelope>) -> Result<RelayReport, StoreError> {
    if events.is_empty() {
        return Ok(RelayReport::default());
    }
    let (published, failed): (Vec<EventEnvelope>, Vec<EventId>) =
        match deps.events.publish(&events).await {
            Ok(()) => (events, Vec::new()),
            Err(err) => {
                tracing::warn!(error = %err, "publish failed; left in the outbox");
                let published = events
                    .into_iter()
                    .filter(|e| !err.failed.contains(&e.event_id))
                    .collect();
                (published, err.failed)
            }
        };
    deps.outbox.acknowledge(&published).await?;
    Ok(RelayReport {
        published: published.len(),
        failed,
    })
}

/// The sweep: publishes up to `limit` outbox events older than `min_age`, oldest first.
/// Younger entries are the stream's to deliver; leaving them alone avoids double publishing.
pub async fn relay(
    deps: &Deps,
    limit: usize,
    min_age: Duration,
) -> Result<RelayReport, StoreError> {
    let cutoff = deps.clock.now() - min_age;
    let stale = deps
        .outbox
        .pending(limit)
        .await?
        .into_iter()
        .filter(|e| e.occurred_at <= cutoff)
        .collect();
    deliver(deps, stale).await
}
