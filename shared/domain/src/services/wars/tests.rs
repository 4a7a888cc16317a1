use super::*;
use crate::declaration::DeclareRequest;
use crate::ids::TerritoryId;
use crate::memory::WorkflowCall;
use crate::ports::Outbox;
use crate::services::fixtures::{clan, hourly, player, t0, World};
use crate::services::outbox::relay;
use crate::services::territories::TerritoryService;
use crate::territory::fixtures::input;
use chrono::Duration;

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
    TerritoryService::new((&w.deps).into())
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
