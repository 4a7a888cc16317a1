use super::*;
use crate::config::DEFAULT_SCORE_SHARDS;

/// A result reported at the time of the request.
fn won_by(winner_side: Side) -> ResolveInput {
    ResolveInput {
        winner_side,
        occurred_at: None,
    }
}
use crate::battle::fixtures::{at_position, on_territory};
use crate::config::Rules;
use crate::memory::FakeClock;
use crate::ports::{ApplyOutcome, PlayerPoints, ScoreBoard, Store};
use crate::scoring::fixtures::{active_war, clan, player};
use crate::services::{Deps, MemoryHandles};
use crate::war::WarStatus;
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

struct World {
    svc: BattleService,
    deps: Deps,
    h: MemoryHandles,
}

fn war_id() -> WarId {
    WarId::new("war-1").unwrap()
}

fn now_in(war: &War) -> DateTime<Utc> {
    war.phase_deadlines.active_at + Duration::minutes(10)
}

async fn world_with(rules: Rules, status: WarStatus) -> World {
    let mut war = active_war();
    let now = now_in(&war);
    war.status = status;
    let (deps, h) = Deps::in_memory(rules, FakeClock::at(now));
    let mut tx = Transaction::new();
    tx.insert(&mut war);
    deps.commit(tx).await.unwrap();
    World {
        svc: BattleService::new((&deps).into()),
        deps,
        h,
    }
}

async fn world() -> World {
    world_with(Rules::default(), WarStatus::Active).await
}

async fn stored_war(w: &World) -> War {
    w.deps.war(&war_id()).await.unwrap()
}

async fn totals(w: &World) -> BTreeMap<crate::ids::ClanId, i64> {
    w.h.store
        .clan_totals(&war_id(), DEFAULT_SCORE_SHARDS)
        .await
        .unwrap()
}

/// Records one kill for `side` in the battle, as ingestion would.
async fn kill_in(w: &World, battle: &Battle, side: Side, dedupe: &str) {
    let killer_clan = match side {
        Side::Attacker => clan("att"),
        Side::Defender => clan("def"),
    };
    let delta = ScoreDelta {
        war_id: war_id(),
        dedupe_id: dedupe.to_owned(),
        shards: crate::config::DEFAULT_SCORE_SHARDS,
        players: vec![PlayerPoints {
            player_id: player("p1"),
            clan_id: killer_clan.clone(),
            points: 10,
        }],
        clans: vec![(killer_clan, 10)],
        battle_kill: Some((battle.battle_id.clone(), side)),
        farm_guard: None,
        ledger: None,
    };
    assert_eq!(w.h.store.apply(delta).await.unwrap(), ApplyOutcome::Applied);
}

#[tokio::test]
async fn creating_a_battle_stores_it_takes_a_war_slot_and_announces_it() {
    let w = world().await;
    let battle = w.svc.create(&war_id(), on_territory("t1")).await.unwrap();
    assert_eq!(battle.version, 1);
    let stored =
        w.h.store
            .get(&RecordKey::Battle(war_id(), battle.battle_id.clone()))
            .await
            .unwrap();
    assert!(stored.is_some());
    let war = stored_war(&w).await;
    assert_eq!(war.version, 2);
    assert_eq!(
        war.open_battles,
        vec![OpenBattle {
            battle_id: battle.battle_id.clone(),
            expires_at: battle.expires_at
        }]
    );
    let published = w.h.events.published();
    assert_eq!(w.h.events.types(), vec!["BattleCreated"]);
    assert_eq!(published[0].war_id, Some(war_id()));
    assert_eq!(
        published[0].clan_ids,
        vec![clan("att"), clan("att-ally"), clan("def")]
    );
}

#[tokio::test]
async fn a_refused_battle_writes_nothing() {
    let w = world_with(Rules::default(), WarStatus::Ending).await;
    let err = w
        .svc
        .create(&war_id(), at_position(1.0, 2.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_WAR_STATE");
    assert_eq!(stored_war(&w).await.version, 1);
    assert!(w
        .h
        .store
        .battles_of_war(&war_id())
        .await
        .unwrap()
        .is_empty());
    assert!(w.h.events.published().is_empty());
}

#[tokio::test]
async fn bad_input_is_refused_before_the_war_is_even_read() {
    let w = world().await;
    let mut input = on_territory("t1");
    input.max_players = 0;
    let err = w
        .svc
        .create(&WarId::new("no-such-war").unwrap(), input)
        .await
        .unwrap_err();
    assert_eq!(err.class(), crate::ErrorClass::Malformed);
}

#[tokio::test]
async fn an_unknown_war_is_not_found() {
    let w = world().await;
    let err = w
        .svc
        .create(&WarId::new("no-such-war").unwrap(), on_territory("t1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "WAR_NOT_FOUND");
}

#[tokio::test]
async fn the_concurrent_battle_limit_counts_only_live_battles() {
    let rules = Rules {
        max_concurrent_battles: 2,
        ..Rules::default()
    };
    let w = world_with(rules, WarStatus::Active).await;
    let first = w.svc.create(&war_id(), on_territory("t1")).await.unwrap();
    w.svc.create(&war_id(), on_territory("t2")).await.unwrap();
    let err = w
        .svc
        .create(&war_id(), on_territory("t1"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.class()),
        ("BATTLE_LIMIT_REACHED", crate::ErrorClass::LimitReached)
    );
    w.h.clock.set(first.expires_at);
    // Both have expired now: the list is pruned and a new battle fits.
    w.svc.create(&war_id(), on_territory("t1")).await.unwrap();
    assert_eq!(stored_war(&w).await.open_battles.len(), 1);
}

#[tokio::test]
async fn resolving_frees_the_slot_pays_the_bonus_once_and_announces_it() {
    let w = world().await;
    let battle = w.svc.create(&war_id(), on_territory("t1")).await.unwrap();
    let resolved = w
        .svc
        .resolve(&war_id(), &battle.battle_id, won_by(Side::Attacker))
        .await
        .unwrap();
    assert_eq!(resolved.status, BattleStatus::Resolved);
    assert_eq!(resolved.winner_side, Some(Side::Attacker));
    assert!(stored_war(&w).await.open_battles.is_empty());
    // The bonus goes to the primary clan of the side, not to its ally.
    assert_eq!(totals(&w).await, BTreeMap::from([(clan("att"), 50)]));
    assert_eq!(w.h.events.types(), vec!["BattleCreated", "BattleResolved"]);

    let again = w
        .svc
        .resolve(&war_id(), &battle.battle_id, won_by(Side::Defender))
        .await
        .unwrap_err();
    assert_eq!(
        (again.code(), again.class()),
        ("BATTLE_NOT_OPEN", crate::ErrorClass::Conflict)
    );
    assert_eq!(totals(&w).await, BTreeMap::from([(clan("att"), 50)]));
    assert_eq!(w.h.events.published().len(), 2);
}

#[tokio::test]
async fn the_bonus_follows_the_configuration() {
    let rules = Rules {
        battle_win_bonus: 75,
        ..Rules::default()
    };
    let w = world_with(rules, WarStatus::Active).await;
    let battle = w.svc.create(&war_id(), on_territory("t1")).await.unwrap();
    w.svc
        .resolve(&war_id(), &battle.battle_id, won_by(Side::Defender))
        .await
        .unwrap();
    assert_eq!(totals(&w).await, BTreeMap::from([(clan("def"), 75)]));
}

#[tokio::test]
async fn an_expired_battle_cannot_be_resolved_and_pays_nothing() {
    let w = world().await;
    let battle = w.svc.create(&war_id(), on_territory("t1")).await.unwrap();
    w.h.clock.set(battle.expires_at);
    let err = w
        .svc
        .resolve(&war_id(), &battle.battle_id, won_by(Side::Attacker))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "BATTLE_NOT_OPEN");
    assert!(totals(&w).await.is_empty());
}

#[tokio::test]
async fn a_battle_cannot_be_resolved_once_the_war_left_active() {
    let w = world().await;
    let battle = w.svc.create(&war_id(), on_territory("t1")).await.unwrap();
    let mut war = stored_war(&w).await;
    war.advance(WarStatus::Ending, war.phase_deadlines.ending_at)
        .unwrap();
    let mut tx = Transaction::new();
    tx.update(&mut war);
    w.deps.commit(tx).await.unwrap();
    // A result reported now, after ACTIVE, is too late...
    w.h.clock.set(war.phase_deadlines.ending_at);
    let err = w
        .svc
        .resolve(&war_id(), &battle.battle_id, won_by(Side::Attacker))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_WAR_STATE");
    assert!(totals(&w).await.is_empty());
    // ...but a battle that ended during ACTIVE, reported during ENDING, still counts.
    let late = ResolveInput {
        winner_side: Side::Attacker,
        occurred_at: Some(
            battle.expires_at.min(war.phase_deadlines.ending_at) - chrono::Duration::seconds(1),
        ),
    };
    w.svc
        .resolve(&war_id(), &battle.battle_id, late)
        .await
        .unwrap();
    assert_eq!(
        totals(&w).await[&clan("att")],
        Rules::default().battle_win_bonus
    );
}

#[tokio::test]
async fn unknown_battles_are_not_found_also_under_another_war() {
    let w = world().await;
    let battle = w.svc.create(&war_id(), on_territory("t1")).await.unwrap();
    let other_war = WarId::new("war-2").unwrap();
    let err = w.svc.get(&other_war, &battle.battle_id).await.unwrap_err();
    assert_eq!(err.code(), "BATTLE_NOT_FOUND");
    let missing = BattleId::new("nope").unwrap();
    let err = w
        .svc
        .resolve(&war_id(), &missing, won_by(Side::Attacker))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "BATTLE_NOT_FOUND");
}

#[tokio::test]
async fn reading_a_battle_shows_its_live_state_and_kills() {
    let w = world().await;
    let battle = w.svc.create(&war_id(), on_territory("t1")).await.unwrap();
    let view = w.svc.get(&war_id(), &battle.battle_id).await.unwrap();
    assert_eq!(
        (view.state, view.kills),
        (BattleStatus::Open, SideKills::default())
    );

    kill_in(&w, &battle, Side::Defender, "k1").await;
    kill_in(&w, &battle, Side::Defender, "k2").await;
    kill_in(&w, &battle, Side::Attacker, "k3").await;
    let view = w.svc.get(&war_id(), &battle.battle_id).await.unwrap();
    assert_eq!(view.state, BattleStatus::InProgress);
    assert_eq!(
        view.kills,
        SideKills {
            attacker: 1,
            defender: 2
        }
    );

    w.h.clock.set(battle.expires_at);
    let view = w.svc.get(&war_id(), &battle.battle_id).await.unwrap();
    assert_eq!(view.state, BattleStatus::Expired);
    let json = serde_json::to_value(&view).unwrap();
    assert_eq!(json["state"], "EXPIRED");
    assert_eq!(json["kills"]["defender"], 2);
}

#[tokio::test]
async fn a_store_outage_is_a_retryable_error() {
    let w = world().await;
    w.h.store.set_unavailable(true);
    let err = w
        .svc
        .create(&war_id(), on_territory("t1"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), crate::ErrorClass::Unavailable);
}

#[tokio::test]
async fn a_lost_race_for_the_war_is_checked_again_on_fresh_reads() {
    let rules = Rules {
        max_concurrent_battles: 1,
        ..Rules::default()
    };
    let w = world_with(rules, WarStatus::Active).await;
    // Two creations read the same war; the first commit wins the only slot.
    let (a, tx_a) = w
        .svc
        .try_create(&war_id(), &BattleId::new("a").unwrap(), &on_territory("t1"))
        .await
        .unwrap();
    let (_, tx_b) = w
        .svc
        .try_create(&war_id(), &BattleId::new("b").unwrap(), &on_territory("t1"))
        .await
        .unwrap();
    w.deps.commit(tx_a).await.unwrap();
    let lost = w.deps.commit(tx_b).await.unwrap_err();
    assert_eq!(lost.code(), "CONCURRENT_MODIFICATION");
    // A fresh attempt sees the slot taken.
    let err = w
        .svc
        .create(&war_id(), on_territory("t1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "BATTLE_LIMIT_REACHED");
    assert_eq!(stored_war(&w).await.open_battles[0].battle_id, a.battle_id);
}
