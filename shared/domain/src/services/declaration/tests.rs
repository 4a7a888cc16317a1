use crate::ports::Transaction;
use crate::services::fixtures::{clan, player, World};
use crate::war::WarStatus;
use chrono::Duration;

#[tokio::test]
async fn a_dry_run_lists_every_failing_rule_with_its_clear_time_and_writes_nothing() {
    let w = World::new().await;
    // A first war between att and def ends: pair cooldown (72 h) and peace shield (24 h).
    let war = w.declare().await;
    for target in [WarStatus::Preparation, WarStatus::Active, WarStatus::Ending] {
        w.reach(&war, target).await;
    }
    let ended_at = war.phase_deadlines.ended_at;
    w.h.clock.set(ended_at);
    w.lifecycle.finish(&war.war_id).await.unwrap();
    // att declares 5 times within a day on other clans (through the store: rule 11's state).
    let mut att = w.clan("att").await;
    let firsts: Vec<_> = (0..5).map(|i| ended_at - Duration::hours(4 - i)).collect();
    att.recent_declarations = firsts.clone();
    let mut tx = Transaction::new();
    tx.update(&mut att);
    w.deps.commit(tx).await.unwrap();
    let now = ended_at + Duration::hours(1);
    w.h.clock.set(now);

    let before = w.snapshot().await;
    let (commits, published, calls) = (
        w.h.store.commits(),
        w.h.events.published().len(),
        w.h.workflows.calls().len(),
    );
    let mut cmd = w.command(&["t1", "nowhere"], None);
    cmd.actor = player("att-m0"); // a plain member
    let report = w.declarations.dry_run(cmd.clone()).await.unwrap();
    let found: Vec<_> = report
        .violations
        .iter()
        .map(|v| (v.rule, v.code, v.clears_at))
        .collect();
    assert!(!report.valid);
    assert_eq!(
        found,
        vec![
            (Some(9), "TERRITORY_NOT_FOUND", None),
            (Some(2), "FORBIDDEN_ROLE", None),
            (
                Some(6),
                "PAIR_COOLDOWN_ACTIVE",
                Some(ended_at + Duration::hours(72))
            ),
            (
                Some(7),
                "PEACE_SHIELD_ACTIVE",
                Some(ended_at + Duration::hours(24))
            ),
            // 5 in the window: it clears when the oldest leaves it.
            (
                Some(11),
                "DECLARATION_RATE_LIMITED",
                Some(firsts[0] + Duration::hours(24))
            ),
        ]
    );
    // Nothing written, published or started.
    assert_eq!(w.snapshot().await, before);
    assert_eq!(w.h.store.commits(), commits);
    assert_eq!(w.h.events.published().len(), published);
    assert_eq!(w.h.workflows.calls().len(), calls);
    // The real declaration answers the first of the same violations.
    let err = w.wars.declare(cmd).await.unwrap_err();
    assert_eq!(err.code(), report.violations[0].code);
    assert_eq!(w.h.store.commits(), commits);
}

#[tokio::test]
async fn a_dry_run_of_an_acceptable_declaration_is_valid_and_request_rules_are_listed_too() {
    let w = World::new().await;
    let commits = w.h.store.commits();
    let report = w
        .declarations
        .dry_run(w.command(&["t1"], Some("k")))
        .await
        .unwrap();
    assert_eq!((report.valid, report.violations.len()), (true, 0));
    assert_eq!(w.h.store.commits(), commits);
    let war = w.wars.declare(w.command(&["t1"], Some("k"))).await.unwrap();
    // Rule 12: the same key now replays that war.
    let again = w
        .declarations
        .dry_run(w.command(&["t1"], Some("k")))
        .await
        .unwrap();
    assert_eq!(again.replays_war_id, Some(war.war.war_id));
    let reused = w
        .declarations
        .dry_run(w.command(&["t2"], Some("k")))
        .await
        .unwrap();
    assert_eq!(reused.violations[0].code, "IDEMPOTENCY_KEY_REUSED");
    // Same clan and no targets: both request rules, then the loaded ones.
    let mut cmd = w.command(&[], None);
    cmd.request.defender_clan_id = clan("att");
    let report = w.declarations.dry_run(cmd).await.unwrap();
    let codes: Vec<_> = report.violations.iter().map(|v| v.code).collect();
    assert_eq!(&codes[..2], ["SAME_CLAN", "INVALID_TARGET_TERRITORIES"]);
}
