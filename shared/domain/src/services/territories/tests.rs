use super::*;
use crate::clan::fixtures::clan;
use crate::config::Rules;
use crate::config::DEFAULT_SCORE_SHARDS;
use crate::memory::{FakeClock, RacingStore};
use crate::ports::{Outbox, Record, ScoreBoard, Store};
use crate::services::{Deps, MemoryHandles};
use crate::territory::fixtures::input;
use crate::war::fixtures::seconds;
use crate::war::{Side, WarStatus};
use std::collections::BTreeMap;
use std::sync::Arc;

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}
fn tid(id: &str) -> TerritoryId {
    TerritoryId::new(id).unwrap()
}
fn cid(id: &str) -> ClanId {
    ClanId::new(id).unwrap()
}
fn pid(id: &str) -> PlayerId {
    PlayerId::new(id).unwrap()
}
fn war_id() -> WarId {
    WarId::new("war-1").unwrap()
}

/// Clans `att`, `def`, `stranger`; war `war-1` (att vs def) contesting `t1` (def's, tier 3,
/// defense 5); `t2` owned by def and uncontested. The clock stands at `status`'s start.
struct World {
    svc: TerritoryService,
    deps: Deps,
    h: MemoryHandles,
}

fn war_in(status: WarStatus) -> War {
    let mut war = War::declare(
        war_id(),
        cid("att"),
        cid("def"),
        vec![tid("t1")],
        seconds(60),
        t0(),
    );
    let d = war.phase_deadlines;
    for (target, at) in [
        (WarStatus::Preparation, d.preparation_at),
        (WarStatus::Active, d.active_at),
        (WarStatus::Ending, d.ending_at),
    ] {
        if war.status < status {
            war.advance(target, at).unwrap();
        }
    }
    war
}

async fn world(status: WarStatus) -> World {
    let mut war = war_in(status);
    let now = war.transitions.last().map_or(t0(), |t| t.at);
    let (deps, h) = Deps::in_memory(Rules::default(), FakeClock::at(now));
    let mut tx = Transaction::new();
    for id in ["att", "def", "stranger"] {
        tx.insert(&mut clan(id, 12));
    }
    let mut t1 =
        Territory::new(tid("t1"), input(Some("def"), 100.0, 100.0, 3), &deps.rules).unwrap();
    t1.defense_level = 5;
    t1.contest(&war.war_id).unwrap();
    let mut t2 =
        Territory::new(tid("t2"), input(Some("def"), 900.0, 100.0, 1), &deps.rules).unwrap();
    tx.insert(&mut t1);
    tx.insert(&mut t2);
    tx.insert(&mut war);
    deps.commit(tx).await.unwrap();
    World {
        svc: TerritoryService::new((&deps).into()),
        deps,
        h,
    }
}

/// Everything a rejected call could have touched.
type Snapshot = (Vec<Option<Record>>, usize, BTreeMap<ClanId, i64>, usize);

async fn snapshot(w: &World) -> Snapshot {
    let mut records = Vec::new();
    for key in [
        RecordKey::Territory(tid("t1")),
        RecordKey::Territory(tid("t2")),
        RecordKey::War(war_id()),
    ] {
        records.push(w.h.store.get(&key).await.unwrap());
    }
    let outbox = w.h.store.pending(1_000).await.unwrap().len();
    let totals =
        w.h.store
            .clan_totals(&war_id(), DEFAULT_SCORE_SHARDS)
            .await
            .unwrap();
    (records, outbox, totals, w.h.events.published().len())
}

fn cmd(territory: &str, clan: &str, actor: Option<&str>, dedupe: &str) -> CaptureCommand {
    CaptureCommand {
        territory_id: tid(territory),
        war_id: war_id(),
        clan_id: cid(clan),
        actor: actor.map(pid),
        dedupe_id: dedupe.to_owned(),
        occurred_at: None,
    }
}

async fn totals(w: &World) -> BTreeMap<ClanId, i64> {
    w.h.store
        .clan_totals(&war_id(), DEFAULT_SCORE_SHARDS)
        .await
        .unwrap()
}

// ---- upsert / get / nearby -----------------------------------------------------------

#[tokio::test]
async fn upsert_inserts_a_new_territory_at_version_one_in_its_cell() {
    let w = world(WarStatus::Declared).await;
    let t = w
        .svc
        .upsert(tid("t9"), input(None, -10.0, 2_000.0, 2))
        .await
        .unwrap();
    assert_eq!(
        (t.version, t.defense_level, t.cell.to_string().as_str()),
        (1, 1, "-1:2")
    );
    assert_eq!(w.svc.get(&tid("t9")).await.unwrap(), t);
}

#[tokio::test]
async fn upsert_updates_at_the_read_version_and_a_repeated_put_writes_nothing() {
    let w = world(WarStatus::Declared).await;
    let body = input(Some("att"), 5_000.0, 0.0, 1);
    let updated = w.svc.upsert(tid("t2"), body.clone()).await.unwrap();
    assert_eq!((updated.version, updated.cell.cx), (2, 5));
    assert_eq!(updated.owner_clan_id, Some(cid("att")));
    let again = w.svc.upsert(tid("t2"), body).await.unwrap();
    assert_eq!(again.version, 2);
}

#[tokio::test]
async fn upsert_refuses_a_new_owner_for_a_contested_territory_and_writes_nothing() {
    let w = world(WarStatus::Declared).await;
    let before = snapshot(&w).await;
    let err = w
        .svc
        .upsert(tid("t1"), input(Some("att"), 100.0, 100.0, 3))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.class()),
        ("TERRITORY_UNDER_ATTACK", crate::ErrorClass::Conflict)
    );
    assert_eq!(snapshot(&w).await, before);
    // Same owner: the world service may still rename or move it.
    let renamed = w
        .svc
        .upsert(tid("t1"), input(Some("def"), 100.0, 100.0, 3))
        .await
        .unwrap();
    assert_eq!(renamed.contested_by, Some(war_id()));
}

#[tokio::test]
async fn upsert_rejects_invalid_input_before_any_write() {
    let w = world(WarStatus::Declared).await;
    let before = snapshot(&w).await;
    let mut bad = input(None, 0.0, 0.0, 1);
    bad.tier = 7;
    let err = w.svc.upsert(tid("t2"), bad.clone()).await.unwrap_err();
    assert_eq!(err.class(), crate::ErrorClass::Malformed);
    assert!(w.svc.upsert(tid("t9"), bad).await.is_err());
    assert_eq!(snapshot(&w).await, before);
    assert_eq!(
        w.svc.get(&tid("t9")).await.unwrap_err().code(),
        "TERRITORY_NOT_FOUND"
    );
}

#[tokio::test]
async fn nearby_answers_from_the_cells_nearest_first() {
    let w = world(WarStatus::Declared).await;
    for (id, x, y) in [
        ("n1", -300.0, 0.0),
        ("n2", 0.0, 50.0),
        ("far", 4_000.0, 4_000.0),
    ] {
        w.svc.upsert(tid(id), input(None, x, y, 1)).await.unwrap();
    }
    let found = w.svc.nearby(0.0, 0.0, 1_000.0).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|(t, _)| t.territory_id.as_str()).collect();
    assert_eq!(ids, vec!["n2", "t1", "n1", "t2"]);
    assert_eq!(found[0].1, 50.0);
    assert!(w.svc.nearby(0.0, 0.0, 10.0).await.unwrap().is_empty());
}

#[tokio::test]
async fn nearby_rejects_a_radius_beyond_the_configured_maximum() {
    let w = world(WarStatus::Declared).await;
    for (x, radius) in [(0.0, 5_001.0), (0.0, 0.0), (f64::NAN, 10.0)] {
        let err = w.svc.nearby(x, 0.0, radius).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_REQUEST");
    }
}

// ---- capture -------------------------------------------------------------------------

#[tokio::test]
async fn a_capture_moves_the_territory_logs_it_on_the_war_and_scores_once() {
    let w = world(WarStatus::Active).await;
    let receipt = w
        .svc
        .capture(cmd("t1", "att", Some("att-m0"), "cap-1"))
        .await
        .unwrap();
    assert_eq!(receipt.points, 600);
    let t = receipt.territory;
    assert_eq!(
        (t.owner_clan_id.clone(), t.defense_level, t.version),
        (Some(cid("att")), 1, 2)
    );
    assert_eq!(w.svc.get(&tid("t1")).await.unwrap(), t);
    let war = w.deps.war(&war_id()).await.unwrap();
    assert_eq!(war.version, 2);
    assert_eq!(war.captures.len(), 1);
    let logged = &war.captures[0];
    assert_eq!(
        (logged.side, logged.from_clan_id.clone()),
        (Side::Attacker, Some(cid("def")))
    );
    assert_eq!(logged.at, w.deps.clock.now());
    assert_eq!(totals(&w).await, BTreeMap::from([(cid("att"), 600)]));
    let published = w.h.events.published();
    assert_eq!(w.h.events.types(), vec!["TerritoryCaptured"]);
    assert_eq!(published[0].clan_ids, vec![cid("att"), cid("def")]);
    assert_eq!(published[0].war_id, Some(war_id()));
}

#[tokio::test]
async fn a_replayed_capture_is_already_owner_and_counts_nothing_more() {
    let w = world(WarStatus::Active).await;
    w.svc
        .capture(cmd("t1", "att", None, "cap-1"))
        .await
        .unwrap();
    let before = snapshot(&w).await;
    let err = w
        .svc
        .capture(cmd("t1", "att", None, "cap-1"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.class()),
        ("ALREADY_OWNER", crate::ErrorClass::Conflict)
    );
    assert_eq!(snapshot(&w).await, before);
    assert_eq!(totals(&w).await[&cid("att")], 600);
}

#[tokio::test]
async fn a_replay_after_a_recapture_is_caught_by_its_dedupe_id() {
    let w = world(WarStatus::Active).await;
    w.svc
        .capture(cmd("t1", "att", None, "cap-1"))
        .await
        .unwrap();
    let back = w
        .svc
        .capture(cmd("t1", "def", None, "cap-2"))
        .await
        .unwrap();
    assert_eq!(back.points, 300); // tier 3, defense reset to 1
    let before = snapshot(&w).await;
    let err = w
        .svc
        .capture(cmd("t1", "att", None, "cap-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ALREADY_OWNER");
    assert_eq!(snapshot(&w).await, before);
    assert_eq!(
        totals(&w).await,
        BTreeMap::from([(cid("att"), 600), (cid("def"), 300)])
    );
}

#[tokio::test]
async fn capture_rejections_write_nothing() {
    let w = world(WarStatus::Active).await;
    let cases = [
        (cmd("t2", "att", None, "c"), "TERRITORY_NOT_IN_WAR"),
        (cmd("t1", "stranger", None, "c"), "NOT_A_PARTICIPANT"),
        (cmd("t1", "def", None, "c"), "ALREADY_OWNER"),
        (cmd("t1", "att", Some("def-m0"), "c"), "FORBIDDEN_ROLE"),
        (cmd("t1", "nobody", Some("x"), "c"), "CLAN_NOT_FOUND"),
        (cmd("t404", "att", None, "c"), "TERRITORY_NOT_FOUND"),
        (cmd("t1", "att", None, ""), "INVALID_REQUEST"),
        (
            CaptureCommand {
                war_id: WarId::new("war-404").unwrap(),
                ..cmd("t1", "att", None, "c")
            },
            "WAR_NOT_FOUND",
        ),
    ];
    let before = snapshot(&w).await;
    for (command, code) in cases {
        let err = w.svc.capture(command).await.unwrap_err();
        assert_eq!(err.code(), code);
    }
    assert_eq!(snapshot(&w).await, before);
}

#[tokio::test]
async fn capture_outside_active_is_refused_without_writing() {
    for status in [WarStatus::Preparation, WarStatus::Ending] {
        let w = world(status).await;
        let before = snapshot(&w).await;
        let err = w
            .svc
            .capture(cmd("t1", "att", None, "c"))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.class()),
            ("INVALID_WAR_STATE", crate::ErrorClass::Conflict)
        );
        assert_eq!(snapshot(&w).await, before);
    }
}

/// The service over a store where `change` is applied to the war by a concurrent writer
/// right before the service's first commit.
async fn racing_service(w: &World, change: impl FnOnce(&mut War)) -> TerritoryService {
    let mut war = w.deps.war(&war_id()).await.unwrap();
    change(&mut war);
    let mut race = Transaction::new();
    race.update(&mut war);
    let mut deps = w.deps.clone();
    let store = RacingStore::new(w.h.store.clone());
    store.race_next_commit(race);
    deps.store = Arc::new(store);
    TerritoryService::new((&deps).into())
}

#[tokio::test]
async fn a_capture_losing_a_version_race_is_retried_on_fresh_reads() {
    let w = world(WarStatus::Active).await;
    let svc = racing_service(&w, |war| war.cancel_requests.push(cid("att"))).await;
    let receipt = svc.capture(cmd("t1", "att", None, "cap-1")).await.unwrap();
    assert_eq!(receipt.points, 600);
    let war = w.deps.war(&war_id()).await.unwrap();
    assert_eq!((war.version, war.captures.len()), (3, 1));
    assert_eq!(war.cancel_requests, vec![cid("att")]);
    assert_eq!(totals(&w).await[&cid("att")], 600);
}

#[tokio::test]
async fn a_capture_racing_the_end_of_active_counts_when_it_happened_during_active() {
    let w = world(WarStatus::Active).await;
    let ending_at = w
        .deps
        .war(&war_id())
        .await
        .unwrap()
        .phase_deadlines
        .ending_at;
    let svc = racing_service(&w, |war| {
        war.advance(WarStatus::Ending, ending_at).unwrap();
    })
    .await;
    // The race moves the war to ENDING; the capture happened during ACTIVE (SPEC §2).
    svc.capture(cmd("t1", "att", None, "cap-1")).await.unwrap();
    assert_eq!(
        w.svc.get(&tid("t1")).await.unwrap().owner_clan_id,
        Some(cid("att"))
    );
    assert_eq!(totals(&w).await[&cid("att")], 600);
}

#[tokio::test]
async fn a_capture_reported_after_active_is_refused() {
    let w = world(WarStatus::Active).await;
    let ending_at = w
        .deps
        .war(&war_id())
        .await
        .unwrap()
        .phase_deadlines
        .ending_at;
    let svc = racing_service(&w, |war| {
        war.advance(WarStatus::Ending, ending_at).unwrap();
    })
    .await;
    let late = CaptureCommand {
        occurred_at: Some(ending_at),
        ..cmd("t1", "att", None, "cap-1")
    };
    w.h.clock.set(ending_at);
    let err = svc.capture(late).await.unwrap_err();
    assert_eq!(err.code(), "INVALID_WAR_STATE");
    assert_eq!(
        w.svc.get(&tid("t1")).await.unwrap().owner_clan_id,
        Some(cid("def"))
    );
    assert!(totals(&w).await.is_empty());
}

// ---- fortify -------------------------------------------------------------------------

#[tokio::test]
async fn an_officer_fortifies_an_uncontested_territory_and_it_is_announced() {
    let w = world(WarStatus::Active).await;
    let t = w
        .svc
        .fortify(tid("t2"), cid("def"), pid("def-officer"))
        .await
        .unwrap();
    assert_eq!((t.defense_level, t.version), (2, 2));
    assert_eq!(w.svc.get(&tid("t2")).await.unwrap(), t);
    let published = w.h.events.published();
    assert_eq!(w.h.events.types(), vec!["TerritoryFortified"]);
    assert_eq!(published[0].clan_ids, vec![cid("def")]);
    assert_eq!(published[0].war_id, None);
}

#[tokio::test]
async fn fortifying_during_preparation_also_guards_the_war_version() {
    let w = world(WarStatus::Preparation).await;
    let mut t1 = w.svc.get(&tid("t1")).await.unwrap();
    t1.defense_level = 2;
    let mut tx = Transaction::new();
    tx.update(&mut t1);
    w.deps.commit(tx).await.unwrap();
    let war_version = w.deps.war(&war_id()).await.unwrap().version;
    let t = w
        .svc
        .fortify(tid("t1"), cid("def"), pid("def-leader"))
        .await
        .unwrap();
    assert_eq!(t.defense_level, 3);
    assert_eq!(
        w.deps.war(&war_id()).await.unwrap().version,
        war_version + 1
    );
    assert_eq!(w.h.events.published()[0].war_id, Some(war_id()));
}

#[tokio::test]
async fn a_fortify_racing_the_start_of_active_is_not_applied() {
    let w = world(WarStatus::Preparation).await;
    let mut t1 = w.svc.get(&tid("t1")).await.unwrap();
    t1.defense_level = 2;
    let mut tx = Transaction::new();
    tx.update(&mut t1);
    w.deps.commit(tx).await.unwrap();
    let active_at = w
        .deps
        .war(&war_id())
        .await
        .unwrap()
        .phase_deadlines
        .active_at;
    let svc = racing_service(&w, |war| {
        war.advance(WarStatus::Active, active_at).unwrap();
    })
    .await;
    let err = svc
        .fortify(tid("t1"), cid("def"), pid("def-leader"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "CONCURRENT_MODIFICATION");
    assert_eq!(w.svc.get(&tid("t1")).await.unwrap().defense_level, 2);
}

#[tokio::test]
async fn fortify_rejections_write_nothing() {
    let w = world(WarStatus::Active).await;
    let mut maxed = w.svc.get(&tid("t2")).await.unwrap();
    maxed.defense_level = w.deps.rules.max_defense_level;
    let mut tx = Transaction::new();
    tx.update(&mut maxed);
    w.deps.commit(tx).await.unwrap();
    let before = snapshot(&w).await;
    let cases = [
        (("t2", "def", "def-m0"), "FORBIDDEN_ROLE"),
        (("t2", "att", "att-leader"), "NOT_TERRITORY_OWNER"),
        (("t1", "def", "def-leader"), "TERRITORY_UNDER_ATTACK"),
        (("t2", "def", "def-leader"), "MAX_DEFENSE_LEVEL"),
        (("t404", "def", "def-leader"), "TERRITORY_NOT_FOUND"),
        (("t2", "nobody", "def-leader"), "CLAN_NOT_FOUND"),
    ];
    for ((territory, clan_id, actor), code) in cases {
        let err = w
            .svc
            .fortify(tid(territory), cid(clan_id), pid(actor))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
    }
    assert_eq!(snapshot(&w).await, before);
}

// ---- release -------------------------------------------------------------------------

#[tokio::test]
async fn releasing_a_war_clears_its_contests_keeps_owners_and_announces_each() {
    let w = world(WarStatus::Active).await;
    w.svc
        .capture(cmd("t1", "att", None, "cap-1"))
        .await
        .unwrap();
    let mut other = w.svc.get(&tid("t2")).await.unwrap();
    other.contest(&WarId::new("war-2").unwrap()).unwrap();
    let mut tx = Transaction::new();
    tx.update(&mut other);
    w.deps.commit(tx).await.unwrap();

    let mut war = w.deps.war(&war_id()).await.unwrap();
    war.territory_ids.push(tid("t2"));
    war.territory_ids.push(tid("t404"));
    let read = |ids: Vec<&'static str>| {
        let svc = w.svc.clone();
        async move {
            let mut found = Vec::new();
            for id in ids {
                if let Ok(t) = svc.get(&tid(id)).await {
                    found.push(t);
                }
            }
            found
        }
    };
    let mut tx = Transaction::new();
    let released = w
        .svc
        .release_for_war(&war, read(vec!["t1", "t2", "t404"]).await, &mut tx);
    assert_eq!(released.len(), 1);
    assert_eq!(tx.events().len(), 1);
    w.deps.commit(tx).await.unwrap();

    let t1 = w.svc.get(&tid("t1")).await.unwrap();
    assert_eq!(
        (t1.contested_by.clone(), t1.owner_clan_id.clone()),
        (None, Some(cid("att")))
    );
    assert_eq!(released[0], t1);
    assert_eq!(w.svc.get(&tid("t2")).await.unwrap(), other);
    let event = w.h.events.published().pop().unwrap();
    assert_eq!(
        event.event,
        DomainEvent::TerritoryReleased {
            territory_id: tid("t1"),
            owner_clan_id: Some(cid("att")),
        }
    );
    assert_eq!(event.clan_ids, vec![cid("att"), cid("def")]);

    let mut again = Transaction::new();
    assert!(w
        .svc
        .release_for_war(&war, read(vec!["t1", "t2"]).await, &mut again)
        .is_empty());
    assert!(again.writes.is_empty());
}
