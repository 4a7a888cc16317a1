//! The store contract: one suite every adapter of [`Store`], [`Outbox`] and [`ScoreBoard`] must
//! pass — the in-memory fake and DynamoDB alike. Each check panics with a message on failure.
//! Enabled with the `testkit` feature; the integration tests run it against every backend.

use crate::alliance::{Alliance, Invitation};
use crate::battle::{Battle, BattleStatus};
use crate::clan::{Clan, ClanSnapshot};
use crate::events::{DomainEvent, EventEnvelope};
use crate::ids::*;
use crate::ports::*;
use crate::rewards::{Grant, GrantStatus, RewardPlan};
use crate::spatial::CellId;
use crate::territory::Territory;
use crate::war::{PhaseDurations, RewardStatus, Side, War, WarStatus};
use chrono::{DateTime, Duration, Utc};

/// A backend under test.
pub trait Backend: Store + Outbox + ScoreBoard {}
impl<T: Store + Outbox + ScoreBoard> Backend for T {}

/// Every check of the contract, in order. `tag` keeps ids unique when backends share a table.
/// Shard count of the contract's counters (the wars here are made up; any count works).
pub const SHARDS: u32 = 4;

pub async fn run_all(backend: &dyn Backend, tag: &str) {
    records_round_trip(backend, tag).await;
    a_failed_condition_writes_nothing(backend, tag).await;
    stale_versions_are_refused(backend, tag).await;
    deletes_check_the_version(backend, tag).await;
    outbox_keeps_events_until_acknowledged(backend, tag).await;
    scores_apply_exactly_once(backend, tag).await;
    the_farm_guard_scores_a_pair_once_per_window(backend, tag).await;
    a_duplicate_score_in_a_transaction_cancels_it(backend, tag).await;
    the_war_log_is_newest_first_filtered_and_paged(backend, tag).await;
    territories_are_found_by_cell(backend, tag).await;
    battles_and_invitations_are_listed(backend, tag).await;
    the_largest_reward_plan_round_trips_through_its_steps(backend, tag).await;
}

fn at(minutes: i64) -> DateTime<Utc> {
    "2026-02-01T00:00:00Z"
        .parse::<DateTime<Utc>>()
        .expect("fixed time")
        + Duration::minutes(minutes)
}

fn id<T: TryFrom<String>>(tag: &str, name: &str) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(format!("{tag}-{name}")).expect("valid test id")
}

pub fn clan(tag: &str, name: &str) -> Clan {
    Clan::from_snapshot(
        id(tag, name),
        ClanSnapshot {
            name: format!("Clan {name}"),
            leader_id: id(tag, "leader"),
            officer_ids: vec![],
            member_ids: vec![id(tag, "member")],
            level: 4,
            rating: Some(1_100),
            active: true,
        },
    )
}

pub fn war(tag: &str, name: &str, attacker: &str, defender: &str, declared: DateTime<Utc>) -> War {
    War::declare(
        id(tag, name),
        id(tag, attacker),
        id(tag, defender),
        vec![id(tag, "t1")],
        PhaseDurations {
            declared_s: 60,
            preparation_s: 60,
            active_s: 60,
            ending_s: 60,
        },
        declared,
    )
}

pub fn territory(tag: &str, name: &str, cell: CellId) -> Territory {
    Territory {
        territory_id: id(tag, name),
        name: name.into(),
        region: "north".into(),
        x: 10.5,
        y: -3.25,
        tier: 2,
        resource_yield: 40,
        owner_clan_id: Some(id(tag, "def")),
        defense_level: 1,
        contested_by: None,
        cell,
        version: 0,
    }
}

fn event(tag: &str, name: &str, minute: i64) -> EventEnvelope {
    EventEnvelope::new(
        id(tag, name),
        at(minute),
        Some(id(tag, "w1")),
        vec![id(tag, "att")],
        DomainEvent::WarPhaseChanged {
            from: WarStatus::Declared,
            to: WarStatus::Preparation,
            version: 2,
        },
    )
}

fn delta(tag: &str, war: &str, dedupe: &str, player: &str, clan: &str, points: i64) -> ScoreDelta {
    ScoreDelta {
        war_id: id(tag, war),
        dedupe_id: dedupe.into(),
        shards: SHARDS,
        players: vec![PlayerPoints {
            player_id: id(tag, player),
            clan_id: id(tag, clan),
            points,
        }],
        clans: vec![(id(tag, clan), points)],
        battle_kill: None,
        farm_guard: None,
        ledger: None,
    }
}

async fn commit(backend: &dyn Backend, tx: Transaction) {
    backend.commit(tx).await.expect("commit should succeed");
}

async fn stored(backend: &dyn Backend, key: RecordKey) -> Option<Record> {
    backend.get(&key).await.expect("get should succeed")
}

/// Every record kind comes back exactly as written, with version 1 after insert.
pub async fn records_round_trip(backend: &dyn Backend, tag: &str) {
    let mut clan = clan(tag, "rt-clan");
    let mut war = war(tag, "rt-war", "rt-clan", "rt-def", at(0));
    let mut territory = territory(tag, "rt-terr", CellId { cx: -3, cy: 7 });
    let mut battle = Battle {
        battle_id: id(tag, "rt-battle"),
        war_id: war.war_id.clone(),
        territory_id: Some(territory.territory_id.clone()),
        position: None,
        max_players: 40,
        status: BattleStatus::Open,
        created_at: at(1),
        expires_at: at(31),
        resolved_at: None,
        winner_side: None,
        version: 0,
    };
    let mut alliance = Alliance {
        alliance_id: id(tag, "rt-alliance"),
        name: "North".into(),
        founder_clan_id: clan.clan_id.clone(),
        member_clan_ids: vec![clan.clan_id.clone()],
        created_at: at(2),
        version: 0,
    };
    let mut invitation = Invitation {
        alliance_id: alliance.alliance_id.clone(),
        clan_id: id(tag, "rt-guest"),
        invited_by: id(tag, "leader"),
        invited_at: at(3),
        expires_at: at(3) + Duration::hours(48),
        version: 0,
    };
    let mut pair = PairLock::new(&clan.clan_id, &war.defender_clan_id);
    pair.active_war_id = Some(war.war_id.clone());
    let mut idem = IdempotencyRecord {
        clan_id: clan.clan_id.clone(),
        key: "key-1/with:odd#chars".into(),
        request_hash: "abc".into(),
        war_id: war.war_id.clone(),
        expires_at: at(60 * 24),
        version: 0,
    };
    let mut plan = RewardPlan {
        war_id: war.war_id.clone(),
        status: RewardStatus::Pending,
        attacker_pool: 100,
        defender_pool: 20,
        grants: vec![],
        superseded: vec![],
        rescore: 0,
        attempt: 1,
        run: None,
        version: 0,
    };
    let mut tx = Transaction::new();
    tx.insert(&mut clan);
    tx.insert(&mut war);
    tx.insert(&mut territory);
    tx.insert(&mut battle);
    tx.insert(&mut alliance);
    tx.insert(&mut invitation);
    tx.insert(&mut pair);
    tx.insert(&mut idem);
    tx.insert(&mut plan);
    commit(backend, tx).await;

    let expected: Vec<Record> = vec![
        clan.into(),
        war.into(),
        territory.into(),
        battle.into(),
        alliance.into(),
        invitation.into(),
        pair.into(),
        idem.into(),
        plan.into(),
    ];
    for record in expected {
        assert_eq!(record.version(), 1, "insert sets version 1");
        let got = stored(backend, record.key()).await;
        assert_eq!(
            got.as_ref(),
            Some(&record),
            "round trip of {:?}",
            record.key()
        );
    }
}

/// One failed condition cancels the whole transaction and reports which write failed.
pub async fn a_failed_condition_writes_nothing(backend: &dyn Backend, tag: &str) {
    let mut existing = clan(tag, "cond-a");
    let mut tx = Transaction::new();
    tx.insert(&mut existing);
    commit(backend, tx).await;

    let mut fresh = clan(tag, "cond-b");
    let mut again = clan(tag, "cond-a");
    let mut tx = Transaction::new();
    tx.insert(&mut fresh);
    tx.emit(event(tag, "cond-event", 0));
    let failing = tx.insert(&mut again);
    let err = backend
        .commit(tx)
        .await
        .expect_err("inserting an existing record must fail");
    match err {
        StoreError::Conflict { index } => assert_eq!(index, Some(failing), "failing write index"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(
        stored(backend, RecordKey::Clan(fresh.clan_id))
            .await
            .is_none(),
        "nothing partial"
    );
    let pending = backend.pending(1_000).await.expect("pending");
    assert!(
        !pending
            .iter()
            .any(|e| e.event_id.as_str().ends_with("cond-event")),
        "no outbox entry"
    );
}

/// Optimistic locking: an update must name the stored version.
pub async fn stale_versions_are_refused(backend: &dyn Backend, tag: &str) {
    let mut clan = clan(tag, "stale");
    let mut tx = Transaction::new();
    tx.insert(&mut clan);
    commit(backend, tx).await;
    let mut first = clan.clone();
    let mut second = clan.clone();
    first.level = 5;
    let mut tx = Transaction::new();
    tx.update(&mut first);
    commit(backend, tx).await;
    second.level = 6;
    let mut tx = Transaction::new();
    tx.update(&mut second);
    assert!(matches!(
        backend.commit(tx).await,
        Err(StoreError::Conflict { .. })
    ));
    let got = stored(backend, RecordKey::Clan(clan.clan_id)).await;
    assert_eq!(got, Some(first.into()), "the first writer's version stays");
}

pub async fn deletes_check_the_version(backend: &dyn Backend, tag: &str) {
    let mut clan = clan(tag, "del");
    let mut tx = Transaction::new();
    tx.insert(&mut clan);
    commit(backend, tx).await;
    let key = RecordKey::Clan(clan.clan_id.clone());
    let mut tx = Transaction::new();
    tx.delete(key.clone(), 7);
    assert!(matches!(
        backend.commit(tx).await,
        Err(StoreError::Conflict { .. })
    ));
    let mut tx = Transaction::new();
    tx.delete(key.clone(), 1);
    commit(backend, tx).await;
    assert!(stored(backend, key).await.is_none());
}

pub async fn outbox_keeps_events_until_acknowledged(backend: &dyn Backend, tag: &str) {
    let first = event(tag, "ob-1", 1);
    let second = event(tag, "ob-2", 2);
    let mut tx = Transaction::new();
    tx.emit(second.clone());
    tx.emit(first.clone());
    commit(backend, tx).await;
    let mine = |events: Vec<EventEnvelope>| -> Vec<EventEnvelope> {
        events
            .into_iter()
            .filter(|e| e.event_id.as_str().starts_with(&format!("{tag}-ob-")))
            .collect()
    };
    let pending = mine(backend.pending(1_000).await.expect("pending"));
    assert_eq!(
        pending,
        vec![first.clone(), second.clone()],
        "oldest first, intact"
    );
    backend
        .acknowledge(std::slice::from_ref(&first))
        .await
        .expect("ack");
    let pending = mine(backend.pending(1_000).await.expect("pending"));
    assert_eq!(pending, vec![second]);
}

pub async fn scores_apply_exactly_once(backend: &dyn Backend, tag: &str) {
    let war: WarId = id(tag, "sc-war");
    let apply = |d| async move { backend.apply(d).await.expect("apply") };
    assert_eq!(
        apply(delta(tag, "sc-war", "e1", "p1", "att", 10)).await,
        ApplyOutcome::Applied
    );
    assert_eq!(
        apply(delta(tag, "sc-war", "e1", "p1", "att", 10)).await,
        ApplyOutcome::Duplicate
    );
    apply(delta(tag, "sc-war", "e2", "p2", "att", 7)).await;
    apply(delta(tag, "sc-war", "e3", "p3", "def", 12)).await;
    apply(delta(tag, "sc-war", "e4", "p1", "att", 3)).await;
    let mut kill = delta(tag, "sc-war", "e5", "p3", "def", 0);
    kill.battle_kill = Some((id(tag, "b1"), Side::Defender));
    apply(kill).await;

    let totals = backend.clan_totals(&war, SHARDS).await.expect("totals");
    assert_eq!(totals.get(&id(tag, "att")), Some(&20));
    assert_eq!(totals.get(&id(tag, "def")), Some(&12));
    let top = backend.top_players(&war, SHARDS, 2).await.expect("top");
    let top: Vec<(String, i64)> = top
        .into_iter()
        .map(|p| (p.player_id.to_string(), p.points))
        .collect();
    assert_eq!(
        top,
        vec![(format!("{tag}-p1"), 13), (format!("{tag}-p3"), 12)]
    );
    let p2 = backend
        .player_score(&war, &id(tag, "p2"))
        .await
        .expect("player");
    assert_eq!(p2.map(|p| (p.points, p.clan_id)), Some((7, id(tag, "att"))));
    assert_eq!(
        backend
            .player_score(&war, &id(tag, "nobody"))
            .await
            .expect("player"),
        None
    );
    assert_eq!(
        backend.all_players(&war, SHARDS).await.expect("all").len(),
        3
    );
    let kills = backend
        .battle_kills(&war, SHARDS, &id(tag, "b1"))
        .await
        .expect("kills");
    assert_eq!(
        kills,
        SideKills {
            attacker: 0,
            defender: 1
        }
    );
}

pub async fn the_farm_guard_scores_a_pair_once_per_window(backend: &dyn Backend, tag: &str) {
    let guarded = |dedupe: &str, minute: i64| {
        let mut d = delta(tag, "farm-war", dedupe, "killer", "att", 10);
        d.farm_guard = Some(FarmGuard {
            killer_id: id(tag, "killer"),
            victim_id: id(tag, "victim"),
            occurred_at: at(minute),
            window_s: 300,
        });
        d
    };
    let apply = |d| async move { backend.apply(d).await.expect("apply") };
    assert_eq!(apply(guarded("k1", 0)).await, ApplyOutcome::Applied);
    assert_eq!(apply(guarded("k2", 4)).await, ApplyOutcome::Farmed);
    assert_eq!(
        apply(guarded("k2", 4)).await,
        ApplyOutcome::Duplicate,
        "a farmed event is remembered"
    );
    assert_eq!(
        apply(guarded("k3", 5)).await,
        ApplyOutcome::Applied,
        "the window has passed"
    );
    let totals = backend
        .clan_totals(&id(tag, "farm-war"), SHARDS)
        .await
        .expect("totals");
    assert_eq!(totals.get(&id(tag, "att")), Some(&20));
}

pub async fn a_duplicate_score_in_a_transaction_cancels_it(backend: &dyn Backend, tag: &str) {
    backend
        .apply(delta(tag, "txs-war", "cap-1", "p", "att", 100))
        .await
        .expect("apply");
    let mut clan = clan(tag, "txs-clan");
    let mut tx = Transaction::new();
    tx.insert(&mut clan);
    let score = tx.score(delta(tag, "txs-war", "cap-1", "p", "att", 100));
    match backend.commit(tx).await {
        Err(StoreError::Conflict { index }) => assert_eq!(index, Some(score)),
        other => panic!("expected a conflict on the score write, got {other:?}"),
    }
    assert!(stored(backend, RecordKey::Clan(clan.clan_id))
        .await
        .is_none());
    let totals = backend
        .clan_totals(&id(tag, "txs-war"), SHARDS)
        .await
        .expect("totals");
    assert_eq!(totals.get(&id(tag, "att")), Some(&100));
}

pub async fn the_war_log_is_newest_first_filtered_and_paged(backend: &dyn Backend, tag: &str) {
    let mut wars: Vec<War> = (0..3)
        .map(|i| {
            war(
                tag,
                &format!("log-{i}"),
                "log-a",
                &format!("log-d{i}"),
                at(i),
            )
        })
        .collect();
    wars[1].status = WarStatus::Cancelled;
    let mut tx = Transaction::new();
    for w in &mut wars {
        tx.insert(w);
    }
    commit(backend, tx).await;
    let clan: ClanId = id(tag, "log-a");
    let clan = &clan;
    let page = |status, limit, cursor| async move {
        backend
            .wars_of_clan(clan, status, PageRequest { limit, cursor })
            .await
            .expect("wars_of_clan")
    };
    let first = page(None, 2, None).await;
    let ids: Vec<&WarId> = first.items.iter().map(|w| &w.war_id).collect();
    assert_eq!(ids, vec![&wars[2].war_id, &wars[1].war_id]);
    let rest = page(None, 2, first.next_cursor.clone()).await;
    assert_eq!(rest.items.first().map(|w| &w.war_id), Some(&wars[0].war_id));
    let cancelled = page(Some(WarStatus::Cancelled), 10, None).await;
    assert_eq!(cancelled.items.len(), 1);
    assert_eq!(cancelled.items[0].war_id, wars[1].war_id);
    let defender_log = backend
        .wars_of_clan(
            &id(tag, "log-d0"),
            None,
            PageRequest {
                limit: 5,
                cursor: None,
            },
        )
        .await
        .expect("defender log");
    assert_eq!(defender_log.items.len(), 1, "both sides see the war");
    let bad = backend
        .wars_of_clan(
            &id(tag, "log-a"),
            None,
            PageRequest {
                limit: 5,
                cursor: Some("forged".into()),
            },
        )
        .await;
    assert!(matches!(bad, Err(StoreError::BadCursor)));
}

pub async fn territories_are_found_by_cell(backend: &dyn Backend, tag: &str) {
    // Cells far from other tests' territories, chosen from the tag so runs don't overlap.
    let base = i64::from(
        tag.bytes()
            .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(u16::from(b))),
    ) * 10;
    let mut a = territory(tag, "cell-a", CellId { cx: base, cy: 1 });
    let mut b = territory(
        tag,
        "cell-b",
        CellId {
            cx: base + 1,
            cy: 1,
        },
    );
    let mut c = territory(
        tag,
        "cell-c",
        CellId {
            cx: base + 5,
            cy: 1,
        },
    );
    let mut tx = Transaction::new();
    tx.insert(&mut a);
    tx.insert(&mut b);
    tx.insert(&mut c);
    commit(backend, tx).await;
    let found = backend
        .territories_in_cells(&[
            CellId { cx: base, cy: 1 },
            CellId {
                cx: base + 1,
                cy: 1,
            },
        ])
        .await
        .expect("cells");
    let mut ids: Vec<String> = found
        .into_iter()
        .filter(|t| t.territory_id.as_str().starts_with(tag))
        .map(|t| t.territory_id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![format!("{tag}-cell-a"), format!("{tag}-cell-b")]);
}

pub async fn battles_and_invitations_are_listed(backend: &dyn Backend, tag: &str) {
    let war: WarId = id(tag, "list-war");
    let mut tx = Transaction::new();
    for i in 0..3 {
        let mut battle = Battle {
            battle_id: id(tag, &format!("lb-{i}")),
            war_id: war.clone(),
            territory_id: None,
            position: Some(crate::territory::Position { x: 1.0, y: 2.0 }),
            max_players: 10,
            status: BattleStatus::Open,
            created_at: at(i),
            expires_at: at(i + 30),
            resolved_at: None,
            winner_side: None,
            version: 0,
        };
        tx.insert(&mut battle);
    }
    let mut plan = RewardPlan {
        war_id: war.clone(),
        status: RewardStatus::Pending,
        attacker_pool: 0,
        defender_pool: 0,
        grants: vec![],
        superseded: vec![],
        rescore: 0,
        attempt: 1,
        run: None,
        version: 0,
    };
    tx.insert(&mut plan);
    let alliance: AllianceId = id(tag, "list-al");
    for guest in ["g1", "g2"] {
        let mut inv = Invitation {
            alliance_id: alliance.clone(),
            clan_id: id(tag, guest),
            invited_by: id(tag, "leader"),
            invited_at: at(0),
            expires_at: at(60),
            version: 0,
        };
        tx.insert(&mut inv);
    }
    commit(backend, tx).await;
    assert_eq!(
        backend.battles_of_war(&war).await.expect("battles").len(),
        3,
        "only battles"
    );
    assert_eq!(
        backend
            .invitations_of_alliance(&alliance)
            .await
            .expect("invitations")
            .len(),
        2
    );
}

/// The reward plan of the largest war (6,000 grants with ids as long as ids may be: more than
/// one DynamoDB item, or one query page, holds) round-trips, and so does each step of its
/// distribution and a correction that supersedes every grant; a stale step changes nothing.
pub async fn the_largest_reward_plan_round_trips_through_its_steps(
    backend: &dyn Backend,
    tag: &str,
) {
    let grant = |i: usize| Grant {
        player_id: PlayerId::new(format!("player-{i:0>57}")).expect("64 characters"),
        clan_id: ClanId::new(format!("clan-{:0>59}", i % 6)).expect("64 characters"),
        side: if i % 6 < 3 {
            Side::Attacker
        } else {
            Side::Defender
        },
        kind: "victory".into(),
        amount: 1_000 + i as u64,
        status: GrantStatus::Pending,
        rescore: 0,
        attempt: 1,
    };
    let mut plan = RewardPlan {
        war_id: id(tag, "largest-plan"),
        status: RewardStatus::Pending,
        attacker_pool: 5_000_000,
        defender_pool: 1_000_000,
        grants: (0..6_000).map(grant).collect(),
        superseded: vec![],
        rescore: 0,
        attempt: 1,
        run: None,
        version: 0,
    };
    let key = RecordKey::RewardPlan(plan.war_id.clone());
    let write = |plan: &mut RewardPlan| {
        let mut tx = Transaction::new();
        tx.upsert(plan);
        tx
    };
    commit(backend, write(&mut plan)).await;
    assert_eq!(
        stored(backend, key.clone()).await,
        Some(plan.clone().into()),
        "inserted"
    );

    let before = plan.clone();
    plan.begin().expect("begin");
    let chunk: Vec<PlayerId> = plan.grants[4_990..]
        .iter()
        .map(|g| g.player_id.clone())
        .collect();
    plan.mark_granted(&chunk).expect("mark");
    commit(backend, write(&mut plan)).await;
    assert_eq!(
        stored(backend, key.clone()).await,
        Some(plan.clone().into()),
        "one chunk granted"
    );

    let mut stale = before;
    stale.grants[0].amount = 1;
    assert!(
        matches!(
            backend.commit(write(&mut stale)).await,
            Err(StoreError::Conflict { .. })
        ),
        "a step on a stale plan is refused"
    );
    assert_eq!(
        stored(backend, key.clone()).await,
        Some(plan.clone().into()),
        "unchanged"
    );

    let everyone: Vec<PlayerId> = plan.grants.iter().map(|g| g.player_id.clone()).collect();
    plan.mark_granted(&everyone).expect("mark all");
    plan.complete().expect("complete");
    let mut target = plan.clone();
    for grant in &mut target.grants {
        grant.amount += 7;
    }
    assert!(
        plan.correct(&target, 1).expect("correct"),
        "every grant changes"
    );
    assert_eq!(plan.superseded.len(), 6_000);
    commit(backend, write(&mut plan)).await;
    assert_eq!(stored(backend, key).await, Some(plan.into()), "corrected");
}
