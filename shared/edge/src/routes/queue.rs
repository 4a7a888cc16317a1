//! `score-calculator` (queue side): battle-event batches that game servers put straight onto
//! the ingestion queue, in the same shape as the HTTP batch plus the war id.

use clanwar_domain::ids::WarId;
use clanwar_domain::scoring::BattleEvent;
use clanwar_domain::services::scores::ScoreService;
use clanwar_domain::{DomainError, DomainResult};
use serde::Deserialize;

/// One ingestion queue message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreBatchMessage {
    pub war_id: WarId,
    pub events: Vec<BattleEvent>,
}

/// Applies one message. A malformed message (or one naming no war) is an error, so SQS retries
/// it and finally moves it to the DLQ, as it does on transient failures; a message whose
/// events are all judged (accepted, duplicate or rejected by a rule) is consumed: rejected
/// events are logged and counted in the `ScoreEventsRejected` metric, never retried.
pub async fn handle(scores: &ScoreService, body: &str) -> DomainResult<()> {
    let message: ScoreBatchMessage = crate::http::parse_json(body.as_bytes())
        .map_err(|e| DomainError::invalid("message", e.to_string()))?;
    let started = std::time::Instant::now();
    let outcome = scores.ingest(&message.war_id, message.events).await?;
    super::scores::score_update_latency(started);
    crate::telemetry::ingestion_lag(message.war_id.as_str(), outcome.lag_ms);
    crate::telemetry::metric(
        "ScoreEventsRejected",
        outcome.rejected.len() as f64,
        "Count",
        &[],
    );
    tracing::info!(
        war_id = %message.war_id,
        accepted = outcome.accepted,
        duplicates = outcome.duplicates,
        rejected = outcome.rejected.len(),
        "queue batch applied"
    );
    Ok(())
}
