//! Outbox delivery: events are committed with their state change, published right after the
//! commit, and re-published by the relay if that first attempt failed (no event is ever lost).

use super::Deps;
use crate::events::EventEnvelope;
use crate::ports::StoreError;

/// Publishes just-committed events and removes them from the outbox; failures are left for
/// [`relay`].
pub(crate) async fn publish_committed(deps: &Deps, events: &[EventEnvelope]) {
    if events.is_empty() {
        return;
    }
    match deps.events.publish(events).await {
        Ok(()) => {
            if let Err(err) = deps.outbox.acknowledge(events).await {
                tracing::warn!(error = %err, "outbox acknowledge failed; relay will republish");
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, failed = err.failed.len(), "publish failed; left in outbox");
        }
    }
}

/// What one relay pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
}

/// Publishes up to `limit` pending outbox events, oldest first. Consumers deduplicate by
/// `event_id`, so a crash between publish and acknowledge only causes a harmless re-delivery.
pub async fn relay(deps: &Deps, limit: usize) -> Result<RelayReport, StoreError> {
    let pending = deps.outbox.pending(limit).await?;
    if pending.is_empty() {
        return Ok(RelayReport::default());
    }
    let (published, failed): (Vec<EventEnvelope>, usize) = match deps.events.publish(&pending).await
    {
        Ok(()) => (pending, 0),
        Err(err) => {
            let failed = err.failed.len();
            let ok = pending
                .into_iter()
                .filter(|e| !err.failed.contains(&e.event_id))
                .collect();
            (ok, failed)
        }
    };
    deps.outbox.acknowledge(&published).await?;
    Ok(RelayReport {
        published: published.len(),
        failed,
    })
}
