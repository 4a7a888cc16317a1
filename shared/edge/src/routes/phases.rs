//! `phase-controller`: the tasks of the war-lifecycle state machine (move a war to its next
//! phase once the deadline passed, run the final tally at the close of ENDING), and what
//! follows a war's end, driven by its events from the war-endings queue.

use clanwar_domain::ids::WarId;
use clanwar_domain::services::lifecycle::LifecycleService;
use clanwar_domain::services::wars::WarService;
use clanwar_domain::services::Deps;
use clanwar_domain::war::{Advance, War, WarStatus};
use clanwar_domain::DomainResult;
use serde::{Deserialize, Serialize};

/// A message of the war-endings queue (`WarEnded`, `WarSurrendered`, `WarCancelled`, routed
/// from the bus): starts the reward saga or stops the phase timers. Redeliveries are harmless.
pub async fn react(deps: &Deps, body: &str) -> DomainResult<()> {
    let event = crate::sqs::bus_event(body)?;
    WarService::new(deps.into()).react(&event).await?;
    tracing::info!(event_id = %event.event_id, event_type = event.event_type(), war_id = ?event.war_id, "war event followed up");
    Ok(())
}

/// Task input.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum PhaseTask {
    /// Move to `to` (PREPARATION, ACTIVE, ENDING; ENDED runs the tally).
    Advance { war_id: WarId, to: WarStatus },
}

/// Task output: what the state machine needs to choose its next state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseOutcome {
    pub war_id: WarId,
    pub status: WarStatus,
    /// False when the war already was at or past the phase (a duplicate or late timer).
    pub moved: bool,
    /// The war is ENDED or CANCELLED: the remaining timers have nothing to do.
    pub terminal: bool,
}

impl PhaseOutcome {
    fn new(war: &War, advance: Advance) -> Self {
        Self {
            war_id: war.war_id.clone(),
            status: war.status,
            moved: matches!(advance, Advance::Moved { .. }),
            terminal: war.status.is_terminal(),
        }
    }
}

pub async fn handle(deps: &Deps, task: PhaseTask) -> DomainResult<PhaseOutcome> {
    match task {
        PhaseTask::Advance { war_id, to } => {
            let (war, advance) = LifecycleService::new(deps.into())
                .advance(&war_id, to)
                .await?;
            if let (Advance::Moved { .. }, Some(late)) = (advance, war.lateness_of(to)) {
                crate::telemetry::war_metric(
                    crate::telemetry::PHASE_LATENESS_METRIC,
                    crate::telemetry::seconds(late),
                    "Seconds",
                    war_id.as_str(),
                );
            }
            tracing::info!(war_id = %war_id, to = to.as_str(), status = war.status.as_str(), "phase task");
            Ok(PhaseOutcome::new(&war, advance))
        }
    }
}
