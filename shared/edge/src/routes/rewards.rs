//! `reward-distributor`: the rewards route of the HTTP API, and the steps of the
//! reward-distribution state machine (`statemachines/reward-distribution.asl.json`).
//!
//! The state machine is the reward saga (there is no other implementation of it): plan →
//! begin → revoke superseded chunks → grant chunk by chunk (through the economy service, SQS
//! callback pattern) → complete; a chunk failing after its retries compensates by revoking every
//! chunk up to and including the one in doubt, last first, then marks the plan REWARDS_FAILED.
//! Each task here is one call of a `RewardService` step; every step is idempotent, so Step
//! Functions may retry any of them and a re-run never pays twice.

use crate::http::{HttpRequest, HttpResponse, MAX_BODY_BYTES};
use clanwar_domain::ids::{PlayerId, WarId};
use clanwar_domain::rewards::{self, GrantStatus, RewardPlan};
use clanwar_domain::services::lifecycle::ReasonRequest;
pub use clanwar_domain::services::rewards::Purpose;
use clanwar_domain::services::rewards::{RewardService, RewardsView};
use clanwar_domain::services::Deps;
use clanwar_domain::war::RewardStatus;
use clanwar_domain::DomainResult;
use serde::{Deserialize, Serialize};

pub const ROUTES: &[&str] = &[
    "GET /wars/{war_id}/rewards",
    "POST /admin/wars/{war_id}/rewards/redrive",
];

/// The name of the alarm metric (Embedded Metric Format) a failed distribution emits.
pub const SAGA_FAILURE_METRIC: &str = "RewardSagaFailures";

/// Longest failure reason stored on the plan's event: Step Functions causes can be long JSON.
const MAX_REASON_CHARS: usize = 500;

pub async fn handle(deps: &Deps, req: HttpRequest) -> DomainResult<HttpResponse> {
    match req.route.as_str() {
        "GET /wars/{war_id}/rewards" => HttpResponse::ok(
            RewardService::new(deps.into())
                .view(&req.id("war_id")?)
                .await?,
        ),
        "POST /admin/wars/{war_id}/rewards/redrive" => {
            let body: ReasonRequest = req.json(MAX_BODY_BYTES)?;
            let op = req.operator(body.reason)?;
            let service = RewardService::new(deps.into());
            let plan = service.redrive(&req.id("war_id")?, &op).await?;
            HttpResponse::ok(RewardsView::from(&plan))
        }
        other => Ok(HttpResponse::no_route(other)),
    }
}

/// A step of the reward saga, tagged by `action` (the state machine's task payloads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum RewardTask {
    /// Plans once (a stored plan is returned unchanged) and lists the chunks to run.
    Prepare { war_id: WarId },
    /// PENDING → DISTRIBUTING.
    Begin { war_id: WarId },
    /// The grants of chunk `index` to send to the economy service for `purpose`.
    LoadChunk {
        war_id: WarId,
        index: usize,
        purpose: Purpose,
    },
    /// The economy confirmed chunk `index`: its PENDING grants become GRANTED.
    RecordGranted { war_id: WarId, index: usize },
    /// The economy took superseded chunk `index` back (a correction): its grants become REVOKED.
    RecordSuperseded { war_id: WarId, index: usize },
    /// Compensation: the chunks to revoke, last first.
    OrderRevocations { war_id: WarId },
    /// The economy took chunk `index` back: its grants become REVOKED.
    RecordRevoked { war_id: WarId, index: usize },
    /// DISTRIBUTING (every grant GRANTED) → DISTRIBUTED, with `RewardsDistributed`.
    Complete { war_id: WarId },
    /// → REWARDS_FAILED, with `RewardDistributionFailed` and the alarm metric.
    Fail {
        war_id: WarId,
        /// The error the state machine caught (`{Error, Cause}`), kept in the reason.
        #[serde(default)]
        failure: Failure,
    },
}

/// A Step Functions error output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Failure {
    #[serde(rename = "Error", default)]
    pub error: Option<String>,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

impl Failure {
    fn reason(&self) -> String {
        let error = self.error.as_deref().unwrap_or("UNKNOWN");
        let reason = match self.cause.as_deref().filter(|c| !c.is_empty()) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_owned(),
        };
        reason.chars().take(MAX_REASON_CHARS).collect()
    }
}

/// Output of `prepare`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prepared {
    pub war_id: WarId,
    pub status: RewardStatus,
    /// Chunk indexes in order (the grant map iterates over them).
    pub chunks: Vec<usize>,
    /// Chunk indexes of the superseded grants to revoke before granting (a correction).
    pub superseded_chunks: Vec<usize>,
    /// A previous run stopped during its compensation: the saga resumes it instead of granting.
    pub resume_compensation: bool,
    pub grants: usize,
    pub total_amount: u64,
}

/// Output of the steps that move the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    pub war_id: WarId,
    pub status: RewardStatus,
    pub pending: usize,
    pub granted: usize,
    pub revoked: usize,
}

impl From<&RewardPlan> for PlanSummary {
    fn from(plan: &RewardPlan) -> Self {
        Self {
            war_id: plan.war_id.clone(),
            status: plan.status,
            pending: plan.count(GrantStatus::Pending),
            granted: plan.count(GrantStatus::Granted),
            revoked: plan.count(GrantStatus::Revoked),
        }
    }
}

/// One grant as the economy service receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EconomyGrant {
    pub player_id: PlayerId,
    pub kind: String,
    pub amount: u64,
    /// `war_id#player_id#kind`: the economy pays (and revokes) at most once per key.
    pub idempotency_key: String,
}

/// Output of `load_chunk`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChunkGrants {
    pub war_id: WarId,
    pub index: usize,
    pub count: usize,
    pub grants: Vec<EconomyGrant>,
}

/// Output of `order_revocations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revocations {
    pub war_id: WarId,
    pub chunks: Vec<usize>,
}

/// Runs one saga step; the output is what the state machine's `ResultSelector` reads.
pub async fn task(deps: &Deps, task: RewardTask) -> DomainResult<serde_json::Value> {
    let service = RewardService::new(deps.into());
    let size = service.chunk_size();
    let value = match task {
        RewardTask::Prepare { war_id } => {
            let plan = service.prepare(&war_id).await?;
            json(Prepared {
                chunks: (0..rewards::chunks(&plan, size).len()).collect(),
                superseded_chunks: (0..rewards::superseded_chunks(&plan, size).len()).collect(),
                resume_compensation: plan.resumes_compensation(),
                grants: plan.grants.len(),
                total_amount: plan.total_amount(),
                war_id,
                status: plan.status,
            })
        }
        RewardTask::Begin { war_id } => json(PlanSummary::from(&service.begin(&war_id).await?)),
        RewardTask::LoadChunk {
            war_id,
            index,
            purpose,
        } => {
            let grants: Vec<EconomyGrant> = service
                .load_chunk(&war_id, index, purpose)
                .await?
                .iter()
                .map(|g| EconomyGrant {
                    player_id: g.player_id.clone(),
                    kind: g.kind.clone(),
                    amount: g.amount,
                    idempotency_key: g.idempotency_key(&war_id),
                })
                .collect();
            json(ChunkGrants {
                count: grants.len(),
                grants,
                war_id,
                index,
            })
        }
        RewardTask::RecordGranted { war_id, index } => json(PlanSummary::from(
            &service.record_granted_chunk(&war_id, index).await?,
        )),
        RewardTask::RecordSuperseded { war_id, index } => json(PlanSummary::from(
            &service.record_superseded_chunk(&war_id, index).await?,
        )),
        RewardTask::OrderRevocations { war_id } => json(Revocations {
            chunks: service.revocation_order(&war_id).await?,
            war_id,
        }),
        RewardTask::RecordRevoked { war_id, index } => json(PlanSummary::from(
            &service.record_revoked_chunk(&war_id, index).await?,
        )),
        RewardTask::Complete { war_id } => {
            let before = service.get(&war_id).await?.status;
            let plan = service.complete(&war_id).await?;
            if before != RewardStatus::Distributed {
                saga_duration(deps, &war_id).await;
            }
            json(PlanSummary::from(&plan))
        }
        RewardTask::Fail { war_id, failure } => {
            let before = service.get(&war_id).await?.status;
            let plan = service.fail(&war_id, &failure.reason()).await?;
            if before != RewardStatus::RewardsFailed {
                // The alarm on saga failures watches this metric (per stage).
                crate::telemetry::metric(
                    SAGA_FAILURE_METRIC,
                    1.0,
                    "Count",
                    &[("Stage", crate::telemetry::stage())],
                );
                saga_duration(deps, &war_id).await;
            }
            json(PlanSummary::from(&plan))
        }
    };
    Ok(value)
}

/// Emits `RewardSagaDuration` for a saga that just finished (a metric only: a failed read of
/// the war is logged, never fails the saga's step).
async fn saga_duration(deps: &Deps, war_id: &WarId) {
    match deps.war(war_id).await {
        Ok(war) => {
            if let Some(took) = war.reward_saga_duration(deps.clock.now()) {
                crate::telemetry::war_metric(
                    crate::telemetry::REWARD_SAGA_DURATION_METRIC,
                    crate::telemetry::seconds(took),
                    "Seconds",
                    war_id.as_str(),
                );
            }
        }
        Err(err) => tracing::warn!(war_id = %war_id, error = %err, "no saga duration metric"),
    }
}

fn json(value: impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).expect("task outputs serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clanwar_domain::ids::ClanId;
    use clanwar_domain::rewards::{revocation_order, Grant};
    use clanwar_domain::war::Side;

    fn plan(statuses: &[GrantStatus]) -> RewardPlan {
        RewardPlan {
            war_id: WarId::new("w1").unwrap(),
            status: RewardStatus::Distributing,
            attacker_pool: 100,
            defender_pool: 20,
            grants: statuses
                .iter()
                .enumerate()
                .map(|(i, status)| Grant {
                    player_id: PlayerId::new(format!("p{i}")).unwrap(),
                    clan_id: ClanId::new("c").unwrap(),
                    side: Side::Attacker,
                    kind: "gold".into(),
                    amount: 10,
                    status: *status,
                    rescore: 0,
                    attempt: 1,
                })
                .collect(),
            superseded: vec![],
            rescore: 0,
            attempt: 1,
            run: None,
            version: 3,
        }
    }

    use GrantStatus::{Granted as G, Pending as P, Revoked as R};

    #[test]
    fn compensation_revokes_the_granted_chunks_and_the_one_in_doubt_last_first() {
        // Chunks of two: [G G] [G G] [G P] [P P] — chunk 2 failed half-way.
        assert_eq!(
            revocation_order(&plan(&[G, G, G, G, G, P, P, P]), 2),
            vec![2, 1, 0]
        );
    }

    #[test]
    fn a_failure_on_the_first_chunk_revokes_only_that_chunk() {
        assert_eq!(revocation_order(&plan(&[P, P, P, P]), 2), vec![0]);
    }

    #[test]
    fn a_failure_after_every_grant_succeeded_revokes_every_chunk() {
        assert_eq!(revocation_order(&plan(&[G, G, G]), 2), vec![1, 0]);
    }

    #[test]
    fn a_resumed_compensation_skips_the_chunks_already_revoked() {
        // Chunk 2 (in doubt) and chunk 1 were revoked before the run stopped.
        assert_eq!(
            revocation_order(&plan(&[G, G, R, R, R, R, P, P]), 2),
            vec![3, 0]
        );
    }

    #[test]
    fn task_payloads_of_the_state_machine_deserialise() {
        let task: RewardTask = serde_json::from_value(serde_json::json!({
            "action": "load_chunk", "war_id": "w1", "index": 2, "purpose": "revoke"
        }))
        .unwrap();
        assert_eq!(
            task,
            RewardTask::LoadChunk {
                war_id: WarId::new("w1").unwrap(),
                index: 2,
                purpose: Purpose::Revoke
            }
        );
        let task: RewardTask = serde_json::from_value(serde_json::json!({
            "action": "fail", "war_id": "w1",
            "failure": {"Error": "ECONOMY_REFUSED", "Cause": "grant refused"}
        }))
        .unwrap();
        let RewardTask::Fail { failure, .. } = task else {
            panic!("not a fail task")
        };
        assert_eq!(failure.reason(), "ECONOMY_REFUSED: grant refused");
    }

    #[test]
    fn unknown_actions_and_fields_are_refused() {
        for payload in [
            serde_json::json!({"action": "pay_everyone", "war_id": "w1"}),
            serde_json::json!({"action": "begin", "war_id": "w1", "extra": 1}),
        ] {
            assert!(serde_json::from_value::<RewardTask>(payload).is_err());
        }
    }
}
