//! `war-manager`: declaration, war reads, allies joining, surrender and mutual cancel — and
//! the steps of the declare-war saga (`statemachines/declare-war.asl.json`).
//!
//! `POST /wars` validates and writes the war synchronously (the client gets 201 with the war,
//! or the precise 4xx), then starts the declare-war saga under the war id; the saga starts the
//! lifecycle workflow and makes sure `WarDeclared` reached EventBridge, and compensates (stops
//! the lifecycle, cancels the war, releases what it held) if either fails. If even the saga
//! cannot start, `WarService::declare` compensates in process
//! (`LifecycleService::compensate_declaration`) and answers 503.
//!
//! Operator controls (`/admin/wars/{war_id}/advance | end | cancel | void`, guarded by the
//! `OperatorInvokePolicy` in AWS) move, end or cancel a war now, or void ledger entries of an
//! ended war and rescore it, audited on the war.
//!
//! `POST /wars?dry_run=true` runs the same rule evaluation and answers every failing rule
//! (200, nothing written); `GET /rulesets/current` shows the ruleset new wars are frozen with.

use crate::http::{HttpRequest, HttpResponse, MAX_BODY_BYTES};
use chrono::{DateTime, Utc};
use clanwar_domain::declaration::{DeclareCommand, DeclareRequest};
use clanwar_domain::ids::WarId;
use clanwar_domain::services::declaration::{DeclarationService, Declared, DryRun, Violation};
use clanwar_domain::services::lifecycle::{
    AdminAdvanceRequest, LifecycleService, OperatorOutcome, ReasonRequest,
};
use clanwar_domain::services::membership::{ClanRequest, JoinRequest, MembershipService};
use clanwar_domain::services::rescoring::{RescoreService, VoidRequest};
use clanwar_domain::services::wars::WarService;
use clanwar_domain::services::Deps;
use clanwar_domain::war::{PhaseDeadlines, WarStatus};
use clanwar_domain::{DomainError, DomainResult};
use serde::{Deserialize, Serialize};

pub const ROUTES: &[&str] = &[
    "POST /wars",
    "GET /rulesets/current",
    "GET /wars/{war_id}",
    "POST /wars/{war_id}/join",
    "POST /wars/{war_id}/surrender",
    "POST /wars/{war_id}/cancel",
    "POST /admin/wars/{war_id}/advance",
    "POST /admin/wars/{war_id}/end",
    "POST /admin/wars/{war_id}/cancel",
    "POST /admin/wars/{war_id}/void",
];

pub async fn handle(deps: &Deps, req: HttpRequest) -> DomainResult<HttpResponse> {
    let wars = WarService::new(deps.into());
    let membership = MembershipService::new(deps.into());
    let lifecycle = LifecycleService::new(deps.into());
    match req.route.as_str() {
        "POST /wars" if dry_run(&req)? => HttpResponse::ok(DryRunAnswer::of(
            &DeclarationService::new(deps.into())
                .dry_run(declare_command(&req)?)
                .await?,
        )),
        "POST /wars" => {
            let declared = declare(&wars, &req).await.inspect_err(|err| {
                crate::telemetry::metric(DECLARATION_FAILURES_METRIC, 1.0, "Count", &[]);
                tracing::warn!(code = err.code(), error = %err, "declaration failed");
            })?;
            let status = if declared.replayed { 200 } else { 201 };
            HttpResponse::with_status(status, declared.war)
        }
        "GET /rulesets/current" => {
            req.only_query(&[])?;
            HttpResponse::ok(deps.rules.current_ruleset())
        }
        "GET /wars/{war_id}" => HttpResponse::ok(wars.get(&req.id("war_id")?).await?),
        "POST /wars/{war_id}/join" => {
            let body: JoinRequest = req.json(MAX_BODY_BYTES)?;
            HttpResponse::ok(
                membership
                    .join(&req.id("war_id")?, body, &req.actor()?)
                    .await?,
            )
        }
        "POST /wars/{war_id}/surrender" => {
            let body: ClanRequest = req.json(MAX_BODY_BYTES)?;
            HttpResponse::ok(
                membership
                    .surrender(&req.id("war_id")?, &body.clan_id, &req.actor()?)
                    .await?,
            )
        }
        "POST /wars/{war_id}/cancel" => {
            let body: ClanRequest = req.json(MAX_BODY_BYTES)?;
            HttpResponse::ok(
                membership
                    .cancel(&req.id("war_id")?, &body.clan_id, &req.actor()?)
                    .await?,
            )
        }
        "POST /admin/wars/{war_id}/advance" => {
            let body: AdminAdvanceRequest = req.json(MAX_BODY_BYTES)?;
            let op = req.operator(body.reason)?;
            let done = lifecycle
                .operator_advance(&req.id("war_id")?, body.to, &op)
                .await?;
            HttpResponse::ok(OperatorOutcome::from(done))
        }
        "POST /admin/wars/{war_id}/end" => {
            let body: ReasonRequest = req.json(MAX_BODY_BYTES)?;
            let op = req.operator(body.reason)?;
            let done = lifecycle.operator_end(&req.id("war_id")?, &op).await?;
            HttpResponse::ok(OperatorOutcome::from(done))
        }
        "POST /admin/wars/{war_id}/cancel" => {
            let body: ReasonRequest = req.json(MAX_BODY_BYTES)?;
            let op = req.operator(body.reason)?;
            let done = lifecycle.operator_cancel(&req.id("war_id")?, &op).await?;
            HttpResponse::ok(OperatorOutcome::from(done))
        }
        "POST /admin/wars/{war_id}/void" => {
            let body: VoidRequest = req.json(MAX_BODY_BYTES)?;
            let void = body.void()?;
            let op = req.operator(body.reason)?;
            let done = RescoreService::new(deps.into())
                .void(&req.id("war_id")?, void, &op)
                .await?;
            HttpResponse::ok(done)
        }
        other => Ok(HttpResponse::no_route(other)),
    }
}

/// EMF metric (namespace `ClanWars`) counted once per failed `POST /wars`, whatever the error
/// (rule violation, conflict, workflow unavailable); `infra/template.yaml` alarms on its rate.
pub const DECLARATION_FAILURES_METRIC: &str = "DeclarationFailures";

async fn declare(wars: &WarService, req: &HttpRequest) -> DomainResult<Declared> {
    wars.declare(declare_command(req)?).await
}

fn declare_command(req: &HttpRequest) -> DomainResult<DeclareCommand> {
    let request: DeclareRequest = req.json(MAX_BODY_BYTES)?;
    Ok(DeclareCommand {
        request,
        actor: req.actor()?,
        idempotency_key: req.idempotency_key()?,
    })
}

/// The body of a dry run: the domain's verdict, each violation with the HTTP status the real
/// declaration would answer.
#[derive(Debug, Serialize)]
struct DryRunAnswer<'a> {
    valid: bool,
    replays_war_id: &'a Option<WarId>,
    violations: Vec<ViolationAnswer<'a>>,
}

#[derive(Debug, Serialize)]
struct ViolationAnswer<'a> {
    #[serde(flatten)]
    violation: &'a Violation,
    status: u16,
}

impl<'a> DryRunAnswer<'a> {
    fn of(run: &'a DryRun) -> Self {
        Self {
            valid: run.valid,
            replays_war_id: &run.replays_war_id,
            violations: run
                .violations
                .iter()
                .map(|violation| ViolationAnswer {
                    violation,
                    status: crate::status::of_class(violation.class),
                })
                .collect(),
        }
    }
}

/// `POST /wars?dry_run=true` checks every rule and writes nothing (`dry_run=false` or no
/// parameter declares); any other query parameter or value is a 400.
fn dry_run(req: &HttpRequest) -> DomainResult<bool> {
    req.only_query(&["dry_run"])?;
    Ok(req.query::<bool>("dry_run")?.unwrap_or(false))
}

/// A step of the declare-war saga, tagged by `action` (the state machine's task payloads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeclarationTask {
    /// Starts the war's lifecycle workflow (its phase timers).
    StartLifecycle {
        war_id: WarId,
        /// The saga's input; it must describe the stored war, or the saga was started wrongly.
        deadlines: SagaDeadlines,
    },
    /// A step of earlier versions of the saga, answered for executions started before an
    /// upgrade: `WarDeclared` is in the outbox with the war, and the stream relay delivers it.
    /// (A declaration is never cancelled because the bus was briefly unavailable.)
    PublishDeclared { war_id: WarId },
    /// Compensation: stops the war's lifecycle execution (a no-op if it never started).
    StopLifecycle { war_id: WarId },
    /// Compensation: cancels the war and releases its territories, clans and pair lock.
    CancelDeclaration { war_id: WarId },
}

/// The deadlines of the saga's (and the lifecycle's) input: `{PREPARATION, ACTIVE, ENDING, ENDED}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub struct SagaDeadlines {
    pub preparation: DateTime<Utc>,
    pub active: DateTime<Utc>,
    pub ending: DateTime<Utc>,
    pub ended: DateTime<Utc>,
}

impl SagaDeadlines {
    fn describe(&self, d: &PhaseDeadlines) -> bool {
        (self.preparation, self.active, self.ending, self.ended)
            == (d.preparation_at, d.active_at, d.ending_at, d.ended_at)
    }
}

/// Output of the declare-war saga's steps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeclarationStep {
    pub war_id: Option<WarId>,
    pub status: Option<WarStatus>,
    /// The lifecycle was started (false: the war was already over, nothing to time).
    pub started: bool,
    pub stopped: bool,
}

/// Runs one step of the declare-war saga.
pub async fn task(deps: &Deps, task: DeclarationTask) -> DomainResult<DeclarationStep> {
    match task {
        DeclarationTask::StartLifecycle { war_id, deadlines } => {
            let war = deps.war(&war_id).await?;
            if !deadlines.describe(&war.phase_deadlines) {
                // Not retried: the state machine compensates at once.
                return Err(DomainError::invalid(
                    "deadlines",
                    format!("do not match the phase deadlines of war {war_id}"),
                ));
            }
            let started = !war.status.is_terminal();
            if started {
                deps.workflows
                    .start_lifecycle(&war)
                    .await
                    .map_err(DomainError::WorkflowUnavailable)?;
            }
            tracing::info!(war_id = %war_id, started, "declaration: lifecycle started");
            Ok(DeclarationStep {
                status: Some(war.status),
                started,
                war_id: Some(war_id),
                ..DeclarationStep::default()
            })
        }
        DeclarationTask::PublishDeclared { war_id } => Ok(DeclarationStep {
            war_id: Some(war_id),
            ..DeclarationStep::default()
        }),
        DeclarationTask::StopLifecycle { war_id } => {
            deps.workflows
                .stop_lifecycle(&war_id)
                .await
                .map_err(DomainError::WorkflowUnavailable)?;
            tracing::warn!(war_id = %war_id, "declaration compensation: lifecycle stopped");
            Ok(DeclarationStep {
                war_id: Some(war_id),
                stopped: true,
                ..DeclarationStep::default()
            })
        }
        DeclarationTask::CancelDeclaration { war_id } => {
            let status = match LifecycleService::new(deps.into())
                .compensate_declaration(&war_id)
                .await
            {
                Ok(war) => Some(war.status),
                // Nothing was written for this id: nothing to undo.
                Err(DomainError::WarNotFound(_)) => None,
                Err(err) => return Err(err),
            };
            tracing::warn!(war_id = %war_id, status = ?status, "declaration compensated");
            Ok(DeclarationStep {
                war_id: Some(war_id),
                status,
                ..DeclarationStep::default()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saga_task_payloads_deserialise_and_unknown_ones_are_refused() {
        let task: DeclarationTask = serde_json::from_value(serde_json::json!({
            "action": "cancel_declaration", "war_id": "w1"
        }))
        .unwrap();
        assert_eq!(
            task,
            DeclarationTask::CancelDeclaration {
                war_id: WarId::new("w1").unwrap()
            }
        );
        assert!(serde_json::from_value::<DeclarationTask>(
            serde_json::json!({"action": "declare", "war_id": "w1"})
        )
        .is_err());
    }

    #[test]
    fn the_saga_input_must_describe_the_stored_war() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let task: DeclarationTask = serde_json::from_value(serde_json::json!({
            "action": "start_lifecycle", "war_id": "w1",
            "deadlines": {
                "PREPARATION": "2026-01-01T01:00:00.5Z", "ACTIVE": "2026-01-02T01:00:00Z",
                "ENDING": "2026-01-04T01:00:00Z", "ENDED": "2026-01-04T01:10:00Z"
            }
        }))
        .unwrap();
        let DeclarationTask::StartLifecycle { deadlines, .. } = task else {
            panic!("not a start")
        };
        let mut stored = PhaseDeadlines {
            preparation_at: at("2026-01-01T01:00:00.5Z"),
            active_at: at("2026-01-02T01:00:00Z"),
            ending_at: at("2026-01-04T01:00:00Z"),
            ended_at: at("2026-01-04T01:10:00Z"),
        };
        assert!(deadlines.describe(&stored));
        stored.ended_at = at("2026-01-05T00:00:00Z");
        assert!(!deadlines.describe(&stored));
    }
}
