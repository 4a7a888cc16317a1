use super::*;
use crate::clan::ClanSnapshot;
use crate::declaration::DeclareRequest;
use crate::ids::{AllianceId, TerritoryId};
use crate::memory::{FakeClock, WorkflowCall};
use crate::ports::{Outbox, PlayerPoints, Record, ScoreDelta, Store};
use crate::services::clans::ClanService;
use crate::services::outbox::relay;
use crate::services::territories::TerritoryService;
use crate::services::MemoryHandles;
use crate::territory::fixtures::input;
use crate::war::{Outcome, PhaseDurations};
use chrono::Duration;
use std::sync::Arc;

fn t0() -> DateTime<Utc> {
    "2026-05-01T10:00:00Z".parse().unwrap()
}

pub(crate) fn clan(id: &str) -> ClanId {
    ClanId::new(id).unwrap()
}

pub(crate) fn player(id: &str) -> PlayerId {
    PlayerId::new(id).unwrap()
}

fn rules() -> Rules {
    Rules {
        phase_bounds: crate::config::Bounds {
            min_s: 1,
            max_s: 86_400,
        },
        ..Rules::default()
    }
}

/// Phases of one hour each, so hold points are easy to count.
fn hourly() -> PhaseDurations {
    PhaseDurations {
        declared_s: 3_600,
        preparation_s: 3_600,
        active_s: 3_600 * 2,
        ending_s: 600,
    }
}

pub(crate) struct World {
    pub(crate) deps: Deps,
    pub(crate) h: MemoryHandles,
    pub(crate) wars: WarService,
    pub(crate) declarations: DeclarationService,
}

impl World {
    /// What the war-endings queue's consumer does with every event published so far.
    pub(crate) async fn react_to_published(&self) {
        for event in self.h.events.published() {
            self.wars.react(&event).await.unwrap();
        }
    }

    pub(crate) async fn new() -> Self {
        let (deps, h) = Deps::in_memory(rules(), FakeClock::at(t0()));
        let clans = ClanService::new(deps.clone());
        for id in ["att", "def", "ally", "other"] {
            let members = (0..11).map(|i| player(&format!("{id}-m{i}"))).collect();
            let snap = ClanSnapshot {
                name: format!("Clan {id}"),
                leader_id: player(&format!("{id}-leader")),
                officer_ids: vec![player(&format!("{id}-officer"))],
                member_ids: members,
                level: 5,
                rating: Some(1_000),
                active: true,
            };
            clans.upsert(clan(id), snap).await.unwrap();
        }
        let territories = TerritoryService::new(deps.clone());
        for (id, tier) in [("t1", 1), ("t2", 2)] {
            territories
                .upsert(
                    TerritoryId::new(id).unwrap(),
                    input(Some("def"), 0.0, 0.0, tier),
                )
                .await
                .unwrap();
        }
        Self {
            wars: WarService::new(deps.clone()),
            declarations: DeclarationService::new((&deps).into()),
            deps,
            h,
        }
    }

    pub(crate) fn command(&self, territories: &[&str], key: Option<&str>) -> DeclareCommand {
        DeclareCommand {
            request: DeclareRequest {
                attacker_clan_id: clan("att"),
                defender_clan_id: clan("def"),
                territory_ids: territories
                    .iter()
                    .map(|t| TerritoryId::new(*t).unwrap())
                    .collect(),
                phase_durations: Some(hourly()),
            },
            actor: player("att-leader"),
            idempotency_key: key.map(str::to_owned),
        }
    }

    pub(crate) async fn declare(&self) -> War {
        self.wars
            .declare(self.command(&["t1", "t2"], None))
            .await
            .unwrap()
            .war
    }

    pub(crate) async fn clan(&self, id: &str) -> Clan {
        self.deps.clan(&clan(id)).await.unwrap()
    }

    pub(crate) async fn territory(&self, id: &str) -> Territory {
        TerritoryService::new(self.deps.clone())
            .get(&TerritoryId::new(id).unwrap())
            .await
            .unwrap()
    }

    /// Moves the clock to the deadline of `target` and advances the war there.
    pub(crate) async fn reach(&self, war: &War, target: WarStatus) -> War {
        let at = war.phase_deadlines.deadline_of(target).unwrap();
        self.h.clock.set(at);
        self.wars.advance(&war.war_id, target).await.unwrap().0
    }

    pub(crate) async fn score(&self, war: &War, id: &str, clan_id: &str, points: i64) {
        self.deps
            .scores
            .apply(ScoreDelta {
                war_id: war.war_id.clone(),
                dedupe_id: id.to_owned(),
                shards: war.score_shards,
                players: vec![PlayerPoints {
                    player_id: player(&format!("{clan_id}-m0")),
                    clan_id: clan(clan_id),
                    points,
                }],
                clans: vec![(clan(clan_id), points)],
                battle_kill: None,
                farm_guard: None,
                ledger: None,
            })
            .await
            .unwrap();
    }

    /// Everything stored, for "nothing was written" checks.
    pub(crate) async fn snapshot(&self) -> Vec<Option<Record>> {
        let mut keys = vec![
            RecordKey::Clan(clan("att")),
            RecordKey::Clan(clan("def")),
            RecordKey::Clan(clan("ally")),
            RecordKey::pair(&clan("att"), &clan("def")),
            RecordKey::Territory(TerritoryId::new("t1").unwrap()),
            RecordKey::Territory(TerritoryId::new("t2").unwrap()),
        ];
        let page = self
            .h
            .store
            .wars_of_clan(
                &clan("att"),
                None,
                PageRequest {
                    limit: 50,
                    cursor: None,
                },
            )
            .await
            .unwrap();
        keys.extend(page.items.iter().map(|w| RecordKey::War(w.war_id.clone())));
        let mut out = Vec::new();
        for key in keys {
            out.push(self.h.store.get(&key).await.unwrap());
        }
        out
    }
}

#[tokio::test]
async fn a_declaration_writes_the_war_contests_territories_and_starts_the_timers() {
    let w = World::new().await;
    let war = w.declare().await;
    assert_eq!((war.status, war.version), (WarStatus::Declared, 1));
    assert_eq!(
        war.phase_deadlines.preparation_at,
        t0() + Duration::hours(1)
    );
    assert_eq!(
        w.territory("t1").await.contested_by,
        Some(war.war_id.clone())
    );
    assert_eq!(w.clan("att").await.active_war_ids, vec![war.war_id.clone()]);
    assert_eq!(w.clan("def").await.active_war_ids, vec![war.war_id.clone()]);
    assert_eq!(
        w.h.workflows.calls(),
        vec![WorkflowCall::StartDeclaration(war.war_id.clone())]
    );
    let types = w.h.events.types();
    assert_eq!(
        types.iter().filter(|t| **t == "TerritoryContested").count(),
        2
    );
    assert!(types.contains(&"WarDeclared"));
    assert!(
        w.h.store.pending(10).await.unwrap().is_empty(),
        "published events leave the outbox"
    );
}

#[tokio::test]
async fn a_retried_declaration_with_the_same_key_returns_the_same_war() {
    let w = World::new().await;
    let first = w
        .wars
        .declare(w.command(&["t1"], Some("k-1")))
        .await
        .unwrap();
    let again = w
        .wars
        .declare(w.command(&["t1"], Some("k-1")))
        .await
        .unwrap();
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.war.war_id, again.war.war_id);
    let err = w
        .wars
        .declare(w.command(&["t2"], Some("k-1")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "IDEMPOTENCY_KEY_REUSED");
}

#[tokio::test]
async fn a_second_war_between_the_pair_is_refused_and_writes_nothing() {
    let w = World::new().await;
    let war = w.declare().await;
    let before = w.snapshot().await;
    let mut cmd = w.command(&["t1"], None);
    std::mem::swap(
        &mut cmd.request.attacker_clan_id,
        &mut cmd.request.defender_clan_id,
    );
    cmd.actor = player("def-leader");
    let err = w.wars.declare(cmd).await.unwrap_err();
    assert_eq!(err.code(), "WAR_ALREADY_EXISTS");
    assert_eq!(w.snapshot().await, before);
    assert_eq!(
        w.h.workflows.calls(),
        vec![WorkflowCall::StartDeclaration(war.war_id)]
    );
}

#[tokio::test]
async fn unknown_clans_and_territories_are_not_found() {
    let w = World::new().await;
    let mut cmd = w.command(&["t1"], None);
    cmd.request.defender_clan_id = clan("ghost");
    assert_eq!(
        w.wars.declare(cmd).await.unwrap_err().code(),
        "CLAN_NOT_FOUND"
    );
    let cmd = w.command(&["nowhere"], None);
    assert_eq!(
        w.wars.declare(cmd).await.unwrap_err().code(),
        "TERRITORY_NOT_FOUND"
    );
    assert!(w.h.events.published().is_empty());
}

#[tokio::test]
async fn a_saga_that_cannot_start_compensates_the_declaration_completely() {
    let w = World::new().await;
    w.h.workflows.set_fail_start(true);
    let err = w.wars.declare(w.command(&["t1"], None)).await.unwrap_err();
    assert_eq!(err.code(), "WORKFLOW_UNAVAILABLE");
    let att = w.clan("att").await;
    assert!(att.active_war_ids.is_empty());
    assert_eq!(
        att.last_war_ended_at, None,
        "no peace shield for a war that never started"
    );
    assert_eq!(w.territory("t1").await.contested_by, None);
    assert!(w.h.events.types().contains(&"WarCancelled"));
    // The pair is free again: the retried declaration goes through.
    w.h.workflows.set_fail_start(false);
    let war = w.wars.declare(w.command(&["t1"], None)).await.unwrap().war;
    assert_eq!(war.status, WarStatus::Declared);
}

#[tokio::test]
async fn a_declaration_whose_caller_died_after_the_commit_still_gets_its_saga() {
    let w = World::new().await;
    // The request wrote the war and died before starting the saga.
    let war = w
        .declarations
        .create(w.command(&["t1"], None))
        .await
        .unwrap()
        .war;
    assert!(w.h.workflows.calls().is_empty());
    w.react_to_published().await;
    let start = WorkflowCall::StartDeclaration(war.war_id.clone());
    assert_eq!(w.h.workflows.calls(), vec![start.clone()]);
    // A redelivered `WarDeclared` starts the same (idempotently named) execution again;
    // once the war has moved on, it starts nothing.
    w.react_to_published().await;
    assert_eq!(w.h.workflows.calls(), vec![start.clone(), start.clone()]);
    w.reach(&war, WarStatus::Preparation).await;
    w.react_to_published().await;
    let starts = w.h.workflows.calls().into_iter().filter(|c| *c == start);
    assert_eq!(starts.count(), 2);
}

#[tokio::test]
async fn a_compensated_declaration_gets_no_saga_from_its_event() {
    let w = World::new().await;
    w.h.workflows.set_fail_start(true);
    w.wars.declare(w.command(&["t1"], None)).await.unwrap_err();
    w.h.workflows.set_fail_start(false);
    w.react_to_published().await;
    let calls = w.h.workflows.calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, WorkflowCall::StartDeclaration(_))),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_whole_war_runs_to_its_end_on_timers_and_decides_the_winner() {
    let w = World::new().await;
    let war = w.declare().await;
    w.reach(&war, WarStatus::Preparation).await;
    w.reach(&war, WarStatus::Active).await;
    w.score(&war, "e1", "att", 120).await;
    w.score(&war, "e2", "def", 100).await;
    w.reach(&war, WarStatus::Ending).await;
    w.h.clock.set(war.phase_deadlines.ended_at);
    let (ended, outcome) = w.wars.finish(&war.war_id).await.unwrap();

    assert!(matches!(
        outcome,
        Advance::Moved {
            to: WarStatus::Ended,
            ..
        }
    ));
    // The defender held t1 (tier 1) and t2 (tier 2) for the two ACTIVE hours: 5×3×2 = 30.
    assert_eq!(
        (ended.sides.attacker.score, ended.sides.defender.score),
        (120, 130)
    );
    assert_eq!(ended.winner_side, Some(WinnerSide::Defender));
    assert_eq!(ended.outcome, Some(Outcome::Score));
    let (att, def) = (w.clan("att").await, w.clan("def").await);
    assert!(att.rating < 1_000 && def.rating > 1_000);
    assert_eq!(att.rating + def.rating, 2_000);
    assert!(att.active_war_ids.is_empty());
    assert_eq!(def.last_war_ended_at, Some(war.phase_deadlines.ended_at));
    assert_eq!(w.territory("t2").await.contested_by, None);
    // The reward saga follows from the published `WarEnded`, not from the tally's caller.
    let rewards = WorkflowCall::StartRewards(war.war_id.clone());
    assert!(!w.h.workflows.calls().contains(&rewards));
    w.react_to_published().await;
    assert!(w.h.workflows.calls().contains(&rewards));
    let types = w.h.events.types();
    for t in [
        "WarPhaseChanged",
        "WarEnded",
        "ClanRatingChanged",
        "TerritoryReleased",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    // Hold points are part of the final clan scores, once, even if the tally runs again.
    assert_eq!(ended.final_clan_scores[&clan("def")], 130);
    let (again_war, again) = w.wars.finish(&war.war_id).await.unwrap();
    assert_eq!(again, Advance::AlreadyDone);
    assert_eq!(again_war.final_clan_scores, ended.final_clan_scores);
    // A retried tally publishes nothing again: the saga was started once, by the event.
    let starts = |w: &World| {
        w.h.workflows
            .calls()
            .iter()
            .filter(|c| **c == rewards)
            .count()
    };
    assert_eq!(starts(&w), 1);
    assert_eq!(
        w.h.events
            .published()
            .iter()
            .filter(|e| e.event_type() == "WarEnded")
            .count(),
        1
    );
    // The counters were sealed: a late score write changes nothing.
    let late = ScoreDelta {
        war_id: war.war_id.clone(),
        dedupe_id: "late".into(),
        shards: war.score_shards,
        players: vec![],
        clans: vec![(clan("att"), 999)],
        battle_kill: None,
        farm_guard: None,
        ledger: None,
    };
    assert_eq!(
        w.deps.scores.apply(late).await.unwrap(),
        crate::ports::ApplyOutcome::Sealed
    );
}

#[tokio::test]
async fn a_running_war_keeps_its_ruleset_when_the_deployment_changes_and_new_wars_get_the_new_one()
{
    let w = World::new().await;
    let war = w.declare().await;
    let declared_with = rules().current_ruleset();
    assert_eq!(war.ruleset.as_deref(), Some(&declared_with));
    // The deployment's parameters change mid-war (a new cold start with other values).
    let changed = Rules {
        hold_points_per_tier_hour: 50,
        elo_k: 64.0,
        ..rules()
    };
    assert_ne!(changed.current_ruleset().version, declared_with.version);
    let redeployed = Deps {
        rules: Arc::new(changed.clone()),
        ..w.deps.clone()
    };
    let wars = WarService::new(redeployed.clone());
    for target in [WarStatus::Preparation, WarStatus::Active, WarStatus::Ending] {
        w.h.clock
            .set(war.phase_deadlines.deadline_of(target).unwrap());
        wars.advance(&war.war_id, target).await.unwrap();
    }
    w.h.clock.set(war.phase_deadlines.ended_at);
    let (ended, _) = wars.finish(&war.war_id).await.unwrap();
    // Hold points by the war's own 5 per tier-hour (t1 + t2 = tier 3, 2 h): 30, not 300;
    // the rating change by its K of 32 (a 0–30 loss moves 1000/1000 by 16, not 32).
    assert_eq!(
        (ended.sides.attacker.score, ended.sides.defender.score),
        (0, 30)
    );
    assert_eq!(w.clan("def").await.rating, 1_016);
    assert_eq!(ended.ruleset.as_deref(), Some(&declared_with));
    // A war declared after the change is governed by the new parameters.
    w.h.clock
        .set(ended.phase_deadlines.ended_at + Duration::days(30));
    let mut cmd = w.command(&["t1"], None);
    cmd.request.attacker_clan_id = clan("other");
    cmd.actor = player("other-leader");
    let next = wars.declare(cmd).await.unwrap().war;
    assert_eq!(next.ruleset.as_deref(), Some(&changed.current_ruleset()));
    assert_eq!(redeployed.rules_for(&next).hold_points_per_tier_hour, 50);
}

fn operator(reason: &str) -> OperatorCommand {
    OperatorCommand {
        by: player("ops-alice"),
        principal: Some("arn:aws:iam::123456789012:role/live-ops".into()),
        reason: reason.into(),
    }
}

#[tokio::test]
async fn an_operator_advances_a_phase_early_once_and_the_timer_firing_later_changes_nothing() {
    let w = World::new().await;
    let war = w.declare().await;
    let op = operator("event starts early");
    let (moved, outcome) = w
        .wars
        .operator_advance(&war.war_id, WarStatus::Preparation, &op)
        .await
        .unwrap();
    assert!(matches!(outcome, Advance::Moved { .. }));
    assert_eq!(moved.status, WarStatus::Preparation);
    assert!(w.deps.clock.now() < war.phase_deadlines.preparation_at);
    let audit = &moved.operator_actions;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].action, &audit[0].by, audit[0].reason.as_str()),
        (OperatorActionKind::Advance, &op.by, "event starts early")
    );
    assert_eq!(
        (audit[0].from, audit[0].to, audit[0].at),
        (
            WarStatus::Declared,
            WarStatus::Preparation,
            w.deps.clock.now()
        )
    );
    assert_eq!(audit[0].principal, op.principal);
    // The timer fires at its deadline: the move is made, nothing changes.
    let timer = w.reach(&war, WarStatus::Preparation).await;
    assert_eq!(timer.version, moved.version);
    // A repeated operator request is a no-op too, and is not audited again.
    let (again, outcome) = w
        .wars
        .operator_advance(&war.war_id, WarStatus::Preparation, &op)
        .await
        .unwrap();
    assert_eq!(outcome, Advance::AlreadyDone);
    assert_eq!(again.operator_actions.len(), 1);
    let moves = again
        .transitions
        .iter()
        .filter(|t| t.to == WarStatus::Preparation)
        .count();
    assert_eq!(moves, 1);
    let types = w.h.events.types();
    assert_eq!(types.iter().filter(|t| **t == "OperatorActed").count(), 1);
    assert_eq!(types.iter().filter(|t| **t == "WarPhaseChanged").count(), 1);
    // The later phases keep their deadlines: the timers run on as planned.
    assert_eq!(again.phase_deadlines, war.phase_deadlines);
}

#[tokio::test]
async fn an_operator_moves_forward_one_phase_at_a_time_and_must_give_a_reason() {
    let w = World::new().await;
    let war = w.declare().await;
    let err = w
        .wars
        .operator_advance(&war.war_id, WarStatus::Active, &operator("skip"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_WAR_STATE");
    for (to, reason) in [
        (WarStatus::Preparation, " "),
        (WarStatus::Preparation, &"x".repeat(501)[..]),
        (WarStatus::Cancelled, "use the cancel route"),
    ] {
        let err = w
            .wars
            .operator_advance(&war.war_id, to, &operator(reason))
            .await
            .unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Malformed, "{err}");
    }
    assert_eq!(w.deps.war(&war.war_id).await.unwrap().version, war.version);
}

#[tokio::test]
async fn an_operator_ends_an_active_war_now_with_the_final_tally_and_later_timers_change_nothing() {
    let w = World::new().await;
    let war = w.declare().await;
    w.reach(&war, WarStatus::Preparation).await;
    w.reach(&war, WarStatus::Active).await;
    w.score(&war, "e1", "att", 120).await;
    // One hour into the two ACTIVE hours: t1 + t2 (tier 3) held 1 h by def = 15.
    w.h.clock
        .set(war.phase_deadlines.active_at + Duration::minutes(61));
    let (ended, outcome) = w
        .wars
        .operator_end(&war.war_id, &operator("servers going down"))
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        Advance::Moved {
            from: WarStatus::Active,
            to: WarStatus::Ended
        }
    ));
    assert_eq!(
        (ended.sides.attacker.score, ended.sides.defender.score),
        (120, 15)
    );
    assert_eq!(ended.winner_side, Some(WinnerSide::Attacker));
    assert_eq!(ended.operator_actions[0].action, OperatorActionKind::End);
    assert_eq!(w.territory("t1").await.contested_by, None);
    // Rewards follow from WarEnded as usual; the timers' later moves change nothing.
    w.react_to_published().await;
    assert!(w
        .h
        .workflows
        .calls()
        .contains(&WorkflowCall::StartRewards(war.war_id.clone())));
    for target in [WarStatus::Ending, WarStatus::Ended] {
        w.h.clock
            .set(war.phase_deadlines.deadline_of(target).unwrap());
        let (_, outcome) = w.wars.advance(&war.war_id, target).await.unwrap();
        assert_eq!(outcome, Advance::AlreadyDone);
    }
    assert_eq!(w.deps.war(&war.war_id).await.unwrap(), ended);
    // A declared war cannot be ended (it has nothing to tally): cancel it instead.
    w.h.clock
        .set(war.phase_deadlines.ended_at + Duration::days(5));
    let mut cmd = w.command(&["t1"], None);
    cmd.request.attacker_clan_id = clan("other");
    cmd.actor = player("other-leader");
    let next = w.wars.declare(cmd).await.unwrap().war;
    let err = w
        .wars
        .operator_end(&next.war_id, &operator("no"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_WAR_STATE");
}

#[tokio::test]
async fn an_operator_cancel_releases_everything_without_cooldown_or_shield_and_is_audited() {
    let w = World::new().await;
    let war = w.declare().await;
    w.reach(&war, WarStatus::Preparation).await;
    w.reach(&war, WarStatus::Active).await;
    let (cancelled, outcome) = w
        .wars
        .operator_cancel(&war.war_id, &operator("cheating dispute"))
        .await
        .unwrap();
    assert!(matches!(outcome, Advance::Moved { .. }));
    assert_eq!(
        (cancelled.status, cancelled.outcome),
        (WarStatus::Cancelled, Some(Outcome::OperatorCancelled))
    );
    assert_eq!(cancelled.operator_actions[0].reason, "cheating dispute");
    assert_eq!(w.territory("t1").await.contested_by, None);
    assert_eq!(w.territory("t2").await.contested_by, None);
    let (att, def) = (w.clan("att").await, w.clan("def").await);
    assert!(att.active_war_ids.is_empty() && def.active_war_ids.is_empty());
    assert_eq!(def.last_war_ended_at, None, "no peace shield");
    assert_eq!((att.rating, def.rating), (1_000, 1_000));
    // No cooldown either: the pair may declare again at once.
    let report = w
        .declarations
        .dry_run(w.command(&["t1"], None))
        .await
        .unwrap();
    assert!(report.valid, "{report:?}");
    // The timers stop (from WarCancelled); a repeat changes nothing.
    w.react_to_published().await;
    assert!(w
        .h
        .workflows
        .calls()
        .contains(&WorkflowCall::StopLifecycle(war.war_id.clone())));
    let (again, outcome) = w
        .wars
        .operator_cancel(&war.war_id, &operator("again"))
        .await
        .unwrap();
    assert_eq!(
        (outcome, again.operator_actions.len()),
        (Advance::AlreadyDone, 1)
    );
    let types = w.h.events.types();
    assert_eq!(types.iter().filter(|t| **t == "OperatorActed").count(), 1);
    // A war that ended otherwise cannot be cancelled.
    let ended = w.declare().await;
    w.wars
        .surrender(&ended.war_id, &clan("def"), &player("def-leader"))
        .await
        .unwrap();
    let err = w
        .wars
        .operator_cancel(&ended.war_id, &operator("late"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_WAR_STATE");
}

#[tokio::test]
async fn after_a_war_the_pair_cooldown_and_peace_shield_apply() {
    let w = World::new().await;
    let war = w.declare().await;
    for target in [WarStatus::Preparation, WarStatus::Active, WarStatus::Ending] {
        w.reach(&war, target).await;
    }
    w.h.clock.set(war.phase_deadlines.ended_at);
    w.wars.finish(&war.war_id).await.unwrap();
    let err = w.wars.declare(w.command(&["t1"], None)).await.unwrap_err();
    assert_eq!(err.code(), "PAIR_COOLDOWN_ACTIVE");
    let mut cmd = w.command(&["t1"], None);
    cmd.request.attacker_clan_id = clan("other");
    cmd.actor = player("other-leader");
    assert_eq!(
        w.wars.declare(cmd).await.unwrap_err().code(),
        "PEACE_SHIELD_ACTIVE"
    );
}

#[tokio::test]
async fn a_duplicate_or_early_timer_changes_nothing() {
    let w = World::new().await;
    let war = w.declare().await;
    let err = w
        .wars
        .advance(&war.war_id, WarStatus::Preparation)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PHASE_DEADLINE_NOT_REACHED");
    let moved = w.reach(&war, WarStatus::Preparation).await;
    let events = w.h.events.published().len();
    let (again, outcome) = w
        .wars
        .advance(&war.war_id, WarStatus::Preparation)
        .await
        .unwrap();
    assert_eq!(outcome, Advance::AlreadyDone);
    assert_eq!(again.version, moved.version);
    assert_eq!(w.h.events.published().len(), events);
}

#[tokio::test]
async fn surrender_mid_active_ends_the_war_at_once_and_is_idempotent() {
    let w = World::new().await;
    let war = w.declare().await;
    w.reach(&war, WarStatus::Preparation).await;
    w.reach(&war, WarStatus::Active).await;
    w.score(&war, "e1", "att", 10).await;
    w.score(&war, "e2", "def", 50).await;
    let ended = w
        .wars
        .surrender(&war.war_id, &clan("def"), &player("def-officer"))
        .await
        .unwrap();
    assert_eq!(ended.status, WarStatus::Ended);
    assert_eq!(ended.winner_side, Some(WinnerSide::Attacker));
    assert_eq!(
        (ended.sides.attacker.score, ended.sides.defender.score),
        (10, 50)
    );
    w.react_to_published().await;
    let calls = w.h.workflows.calls();
    assert!(calls.contains(&WorkflowCall::StopLifecycle(war.war_id.clone())));
    assert!(calls.contains(&WorkflowCall::StartRewards(war.war_id.clone())));
    let again = w
        .wars
        .surrender(&war.war_id, &clan("def"), &player("def-officer"))
        .await
        .unwrap();
    assert_eq!(again.version, ended.version);
    let err = w
        .wars
        .surrender(&war.war_id, &clan("att"), &player("att-leader"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_WAR_STATE");
}

#[tokio::test]
async fn a_member_cannot_surrender_for_the_clan() {
    let w = World::new().await;
    let war = w.declare().await;
    let err = w
        .wars
        .surrender(&war.war_id, &clan("def"), &player("def-m1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN_ROLE");
    assert_eq!(
        w.deps.war(&war.war_id).await.unwrap().status,
        WarStatus::Declared
    );
}

#[tokio::test]
async fn mutual_cancel_needs_both_leaders() {
    let w = World::new().await;
    let war = w.declare().await;
    let err = w
        .wars
        .cancel(&war.war_id, &clan("att"), &player("att-officer"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN_ROLE");
    let half = w
        .wars
        .cancel(&war.war_id, &clan("att"), &player("att-leader"))
        .await
        .unwrap();
    assert_eq!(half.status, WarStatus::Declared);
    let done = w
        .wars
        .cancel(&war.war_id, &clan("def"), &player("def-leader"))
        .await
        .unwrap();
    assert_eq!(done.status, WarStatus::Cancelled);
    w.react_to_published().await;
    assert!(w
        .h
        .workflows
        .calls()
        .contains(&WorkflowCall::StopLifecycle(war.war_id.clone())));
    assert_eq!(w.territory("t1").await.contested_by, None);
    assert_eq!(w.clan("def").await.last_war_ended_at, None);
    // Nothing to wait for: the pair may fight again at once.
    w.wars.declare(w.command(&["t1"], None)).await.unwrap();
}

#[tokio::test]
async fn an_ally_joins_the_defender_and_counts_for_its_side() {
    let w = World::new().await;
    for id in ["def", "ally"] {
        let mut c = w.clan(id).await;
        c.alliance_id = Some(AllianceId::new("al").unwrap());
        let mut tx = Transaction::new();
        tx.update(&mut c);
        w.deps.commit(tx).await.unwrap();
    }
    let war = w.declare().await;
    let req = JoinRequest {
        clan_id: clan("ally"),
        side: Side::Defender,
    };
    let err = w
        .wars
        .join(&war.war_id, req.clone(), &player("ally-m0"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN_ROLE");
    let joined = w
        .wars
        .join(&war.war_id, req.clone(), &player("ally-leader"))
        .await
        .unwrap();
    assert_eq!(
        joined.sides.defender.clan_ids,
        vec![clan("def"), clan("ally")]
    );
    assert!(w.h.events.types().contains(&"AllyJoined"));
    assert_eq!(
        w.clan("ally").await.active_war_ids,
        vec![war.war_id.clone()]
    );
    let err = w
        .wars
        .join(&war.war_id, req, &player("ally-leader"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ALREADY_IN_WAR");

    w.reach(&war, WarStatus::Preparation).await;
    w.reach(&war, WarStatus::Active).await;
    w.score(&war, "e1", "ally", 40).await;
    let live = w.wars.get(&war.war_id).await.unwrap();
    assert_eq!(live.sides.defender.score, 40);
}

#[tokio::test]
async fn the_war_log_is_paginated_newest_first_and_filtered_by_status() {
    let w = World::new().await;
    let first = w.declare().await;
    w.h.clock.advance(Duration::minutes(1));
    // t1 is contested by the first war: the second war targets the attacker's own land.
    let mut cmd = w.command(&["t1"], None);
    cmd.request = DeclareRequest {
        attacker_clan_id: clan("other"),
        defender_clan_id: clan("att"),
        territory_ids: vec![TerritoryId::new("t3").unwrap()],
        phase_durations: Some(hourly()),
    };
    cmd.actor = player("other-leader");
    TerritoryService::new(w.deps.clone())
        .upsert(
            TerritoryId::new("t3").unwrap(),
            input(Some("att"), 10.0, 10.0, 1),
        )
        .await
        .unwrap();
    let second = w.wars.declare(cmd).await.unwrap().war;

    let page = w
        .wars
        .list_for_clan(&clan("att"), None, 1, None)
        .await
        .unwrap();
    assert_eq!(page.items[0].war_id, second.war_id);
    let next = w
        .wars
        .list_for_clan(&clan("att"), None, 1, page.next_cursor)
        .await
        .unwrap();
    assert_eq!(next.items[0].war_id, first.war_id);
    assert_eq!(next.next_cursor, None);
    let none = w
        .wars
        .list_for_clan(&clan("att"), Some(WarStatus::Ended), 10, None)
        .await
        .unwrap();
    assert!(none.items.is_empty());
    let err = w
        .wars
        .list_for_clan(&clan("att"), None, 0, None)
        .await
        .unwrap_err();
    assert_eq!(err.class(), crate::ErrorClass::Malformed);
    let err = w
        .wars
        .list_for_clan(&clan("att"), None, 5, Some("junk".into()))
        .await
        .unwrap_err();
    assert_eq!(err.class(), crate::ErrorClass::Malformed);
}

#[tokio::test]
async fn events_survive_a_publish_failure_and_the_relay_delivers_them_later() {
    let w = World::new().await;
    w.h.events.set_failing(true);
    let war = w.declare().await;
    assert!(w.h.events.published().is_empty());
    assert_eq!(w.h.store.pending(100).await.unwrap().len(), 3);
    w.h.events.set_failing(false);
    // The sweep leaves young entries to the stream ...
    let report = relay(&w.deps, 100, Duration::seconds(60)).await.unwrap();
    assert_eq!(report.published, 0);
    // ... and publishes them once they are overdue.
    w.h.clock.advance(Duration::seconds(61));
    let report = relay(&w.deps, 100, Duration::seconds(60)).await.unwrap();
    assert_eq!((report.published, report.failed.len()), (3, 0));
    assert!(w.h.store.pending(100).await.unwrap().is_empty());
    let declared = w.h.events.published();
    assert!(declared
        .iter()
        .any(|e| e.event_type() == "WarDeclared" && e.war_id == Some(war.war_id.clone())));
}
