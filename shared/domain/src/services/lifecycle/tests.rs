use super::*;
use crate::memory::WorkflowCall;
use crate::ports::ScoreDelta;
use crate::services::fixtures::{clan, player, rules, World};
use crate::services::wars::WarService;
use crate::services::Deps;
use crate::war::WinnerSide;
use chrono::Duration;
use std::sync::Arc;

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
    let (ended, outcome) = w.lifecycle.finish(&war.war_id).await.unwrap();

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
    let (again_war, again) = w.lifecycle.finish(&war.war_id).await.unwrap();
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
    let wars = WarService::new((&redeployed).into());
    let lifecycle = LifecycleService::new((&redeployed).into());
    for target in [WarStatus::Preparation, WarStatus::Active, WarStatus::Ending] {
        w.h.clock
            .set(war.phase_deadlines.deadline_of(target).unwrap());
        lifecycle.advance(&war.war_id, target).await.unwrap();
    }
    w.h.clock.set(war.phase_deadlines.ended_at);
    let (ended, _) = lifecycle.finish(&war.war_id).await.unwrap();
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
        .lifecycle
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
        .lifecycle
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
        .lifecycle
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
            .lifecycle
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
        .lifecycle
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
        let (_, outcome) = w.lifecycle.advance(&war.war_id, target).await.unwrap();
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
        .lifecycle
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
        .lifecycle
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
        .lifecycle
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
    w.membership
        .surrender(&ended.war_id, &clan("def"), &player("def-leader"))
        .await
        .unwrap();
    let err = w
        .lifecycle
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
    w.lifecycle.finish(&war.war_id).await.unwrap();
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
        .lifecycle
        .advance(&war.war_id, WarStatus::Preparation)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PHASE_DEADLINE_NOT_REACHED");
    let moved = w.reach(&war, WarStatus::Preparation).await;
    let events = w.h.events.published().len();
    let (again, outcome) = w
        .lifecycle
        .advance(&war.war_id, WarStatus::Preparation)
        .await
        .unwrap();
    assert_eq!(outcome, Advance::AlreadyDone);
    assert_eq!(again.version, moved.version);
    assert_eq!(w.h.events.published().len(), events);
}
