use super::*;
use crate::battle::{fixtures::on_territory, Battle};
use crate::config::Rules;
use crate::config::DEFAULT_SCORE_SHARDS;
use crate::ids::PlayerId;
use crate::ids::{ClanId, TerritoryId};
use crate::ledger::{recompute, EffectKind};
use crate::memory::FakeClock;
use crate::ports::ScoreBoard;
use crate::scoring::fixtures::{active_war, assist, clan, kill, level, player, territory};
use crate::scoring::KillEvent;
use crate::services::{Deps, MemoryHandles};
use proptest::prelude::*;
use std::collections::BTreeMap;

struct World {
    svc: ScoreService,
    deps: Deps,
    h: MemoryHandles,
    war: War,
}

fn war_id() -> WarId {
    WarId::new("war-1").unwrap()
}

/// An ACTIVE war `att` + `att-ally` vs `def` over t1 (tier 1) and t2 (tier 2), both owned
/// by `def`; the clock 30 minutes into ACTIVE.
async fn world_with(rules: Rules) -> World {
    let mut war = active_war();
    let now = war.phase_deadlines.active_at + Duration::minutes(30);
    let (deps, h) = Deps::in_memory(rules, FakeClock::at(now));
    let mut tx = Transaction::new();
    tx.insert(&mut war);
    // The registry's rosters: `a0`..`a9` in att, `d0`..`d9` in def, `x0`..`x9` in
    // att-ally, `z0`..`z9` in other (a clan of no side).
    for (id, prefix) in [
        ("att", "a"),
        ("def", "d"),
        ("att-ally", "x"),
        ("other", "z"),
    ] {
        let mut roster = crate::clan::fixtures::clan(id, 2);
        roster.member_ids = (0..10).map(|i| player(&format!("{prefix}{i}"))).collect();
        tx.insert(&mut roster);
    }
    for (id, tier) in [("t1", 1), ("t2", 2)] {
        let mut t = territory(id, tier, Some("def"));
        t.contested_by = Some(war_id());
        t.version = 0;
        tx.insert(&mut t);
    }
    deps.commit(tx).await.unwrap();
    World {
        svc: ScoreService::new((&deps).into()),
        deps,
        h,
        war,
    }
}

async fn world() -> World {
    world_with(Rules::default()).await
}

impl World {
    /// `minutes` into ACTIVE.
    fn at(&self, minutes: i64) -> DateTime<Utc> {
        self.war.phase_deadlines.active_at + Duration::minutes(minutes)
    }

    async fn ingest(&self, events: Vec<BattleEvent>) -> BatchOutcome {
        self.svc.ingest(&war_id(), events).await.unwrap()
    }

    async fn totals(&self) -> BTreeMap<ClanId, i64> {
        self.h
            .store
            .clan_totals(&war_id(), DEFAULT_SCORE_SHARDS)
            .await
            .unwrap()
    }

    async fn points(&self, p: &str) -> Option<i64> {
        self.h
            .store
            .player_score(&war_id(), &player(p))
            .await
            .unwrap()
            .map(|s| s.points)
    }

    /// Moves the stored war (and the clock) to ENDING.
    async fn enter_ending(&mut self) {
        let mut war = self.deps.war(&war_id()).await.unwrap();
        war.advance(WarStatus::Ending, war.phase_deadlines.ending_at)
            .unwrap();
        let mut tx = Transaction::new();
        tx.update(&mut war);
        self.deps.commit(tx).await.unwrap();
        self.h.clock.set(war.phase_deadlines.ending_at);
        self.war = war;
    }

    async fn battle(&self) -> Battle {
        let mut battle = Battle::create(
            &self.war,
            BattleId::new("b1").unwrap(),
            on_territory("t1"),
            self.deps.clock.now(),
            &self.deps.rules,
        )
        .unwrap();
        let mut tx = Transaction::new();
        tx.insert(&mut battle);
        self.deps.commit(tx).await.unwrap();
        battle
    }
}

fn leveled(event: BattleEvent, killer: u32, victim: u32) -> BattleEvent {
    match event {
        BattleEvent::Kill(k) => BattleEvent::Kill(KillEvent {
            killer_level: level(killer),
            victim_level: level(victim),
            ..k
        }),
        other => other,
    }
}

fn in_battle(event: BattleEvent, battle: &str) -> BattleEvent {
    match event {
        BattleEvent::Kill(k) => BattleEvent::Kill(KillEvent {
            battle_id: Some(BattleId::new(battle).unwrap()),
            ..k
        }),
        other => other,
    }
}

fn capture(id: &str, at: DateTime<Utc>, territory: &str, by: &str) -> BattleEvent {
    BattleEvent::Capture(CaptureEvent {
        event_id: EventId::new(id).unwrap(),
        occurred_at: at,
        territory_id: TerritoryId::new(territory).unwrap(),
        clan_id: clan(by),
    })
}

fn codes_of(outcome: &BatchOutcome) -> Vec<(&str, &str)> {
    outcome
        .rejected
        .iter()
        .map(|r| (r.event_id.as_str(), r.code.as_str()))
        .collect()
}

// ---- a whole war ------------------------------------------------------------------------

#[tokio::test]
async fn a_war_fed_with_kills_assists_and_battle_kills_adds_up_exactly() {
    let w = world().await;
    w.battle().await;
    let outcome = w
        .ingest(vec![
            leveled(kill("k1", w.at(1), ("a1", "att"), ("d1", "def")), 10, 10), // 10
            leveled(kill("k2", w.at(2), ("a1", "att"), ("d2", "def")), 10, 15), // 15
            leveled(
                kill("k3", w.at(3), ("x1", "att-ally"), ("d1", "def")),
                50,
                10,
            ), // 5
            in_battle(
                leveled(kill("k4", w.at(4), ("d1", "def"), ("a1", "att")), 10, 30), // 20
                "b1",
            ),
            in_battle(kill("k5", w.at(5), ("d2", "def"), ("x1", "att-ally")), "b1"), // 10
            assist("s1", w.at(5), ("a2", "att")),                                    // 3
            assist("s2", w.at(6), ("d3", "def")),                                    // 3
        ])
        .await;
    assert_eq!(
        outcome,
        BatchOutcome {
            accepted: 7,
            duplicates: 0,
            rejected: vec![],
            // The clock is 30 min into ACTIVE; the events happened 1..6 min into it:
            // 29 min at most, 184 min / 7 on average (the ScoreIngestionLag metric).
            lag_ms: Some((29 * 60_000, 184 * 60_000 / 7)),
        }
    );
    assert_eq!(
        w.totals().await,
        BTreeMap::from([(clan("att"), 28), (clan("att-ally"), 5), (clan("def"), 33)])
    );
    assert_eq!(w.points("a1").await, Some(25));
    assert_eq!(w.points("d1").await, Some(20));
    assert_eq!(w.points("a2").await, Some(3));
    let kills =
        w.h.store
            .battle_kills(
                &war_id(),
                DEFAULT_SCORE_SHARDS,
                &BattleId::new("b1").unwrap(),
            )
            .await
            .unwrap();
    assert_eq!((kills.attacker, kills.defender), (0, 2));

    let board = w.svc.scoreboard(&war_id(), 3).await.unwrap();
    assert_eq!(
        (board.sides.attacker.score, board.sides.defender.score),
        (33, 33)
    );
    let players: Vec<(&str, i64)> = board
        .top_players
        .iter()
        .map(|p| (p.player_id.as_str(), p.points))
        .collect();
    assert_eq!(players, vec![("a1", 25), ("d1", 20), ("d2", 10)]);
    assert_eq!(
        board.clans,
        vec![
            ClanScore {
                clan_id: clan("att"),
                side: Side::Attacker,
                score: 28
            },
            ClanScore {
                clan_id: clan("att-ally"),
                side: Side::Attacker,
                score: 5
            },
            ClanScore {
                clan_id: clan("def"),
                side: Side::Defender,
                score: 33
            },
        ]
    );
}

// ---- duplicates ---------------------------------------------------------------------------

#[tokio::test]
async fn an_event_id_repeated_inside_one_batch_counts_once() {
    let w = world().await;
    let k = kill("k1", w.at(1), ("a1", "att"), ("d1", "def"));
    let s = assist("s1", w.at(1), ("a2", "att"));
    let outcome = w.ingest(vec![k.clone(), s.clone(), k.clone(), s, k]).await;
    assert_eq!((outcome.accepted, outcome.duplicates), (2, 3));
    assert!(outcome.rejected.is_empty());
    assert_eq!(w.totals().await, BTreeMap::from([(clan("att"), 13)]));
}

#[tokio::test]
async fn a_batch_sent_again_changes_nothing() {
    let w = world().await;
    let batch = vec![
        kill("k1", w.at(1), ("a1", "att"), ("d1", "def")),
        assist("s1", w.at(1), ("a2", "att")),
    ];
    w.ingest(batch.clone()).await;
    let before = (w.totals().await, w.points("a1").await);
    let outcome = w.ingest(batch).await;
    assert_eq!((outcome.accepted, outcome.duplicates), (0, 2));
    assert_eq!((w.totals().await, w.points("a1").await), before);
}

#[tokio::test]
async fn a_replayed_kill_is_a_duplicate_not_farming() {
    let w = world().await;
    let k = kill("k1", w.at(1), ("a1", "att"), ("d1", "def"));
    w.ingest(vec![k.clone()]).await;
    let outcome = w.ingest(vec![k]).await;
    assert_eq!((outcome.accepted, outcome.duplicates), (0, 1));
    assert!(outcome.rejected.is_empty());
}

// ---- anti-farming -------------------------------------------------------------------------

#[tokio::test]
async fn the_same_killer_and_victim_score_once_per_refarm_window() {
    let w = world().await;
    let outcome = w
        .ingest(vec![
            kill("k1", w.at(10), ("a1", "att"), ("d1", "def")),
            kill("k2", w.at(14), ("a1", "att"), ("d1", "def")), // inside 5 min: farmed
            kill("k3", w.at(14), ("a1", "att"), ("d2", "def")), // another victim: counts
            kill("k4", w.at(14), ("d1", "def"), ("a1", "att")), // the other way: counts
            kill("k5", w.at(15), ("a1", "att"), ("d1", "def")), // 5 min after k1: counts
        ])
        .await;
    assert_eq!(outcome.accepted, 4);
    assert_eq!(codes_of(&outcome), vec![("k2", "ANTI_FARMING")]);
    assert!(outcome.rejected[0]
        .reason
        .contains("a1 already scored on d1"));
    assert_eq!(w.points("a1").await, Some(30));
}

#[tokio::test]
async fn the_refarm_window_follows_the_configuration() {
    let w = world_with(Rules {
        refarm_window_s: 60,
        ..Rules::default()
    })
    .await;
    let outcome = w
        .ingest(vec![
            kill("k1", w.at(1), ("a1", "att"), ("d1", "def")),
            kill("k2", w.at(2), ("a1", "att"), ("d1", "def")),
        ])
        .await;
    assert_eq!(outcome.accepted, 2);
}

// ---- the war's frozen ruleset ----------------------------------------------------------------

#[tokio::test]
async fn a_war_is_scored_by_the_ruleset_frozen_at_its_declaration_not_the_live_one() {
    // Declared when kills were worth 20 and the refarm window was 1 minute; the deployment
    // has since gone back to the defaults (10 points, 5 minutes).
    let frozen = Rules {
        kill_base_points: 20,
        refarm_window_s: 60,
        ..Rules::default()
    };
    let w = world_with(Rules::default()).await;
    let mut war = w.deps.war(&war_id()).await.unwrap();
    war.ruleset = Some(Box::new(frozen.current_ruleset()));
    let mut tx = Transaction::new();
    tx.update(&mut war);
    w.deps.commit(tx).await.unwrap();
    let outcome = w
        .ingest(vec![
            kill("k1", w.at(1), ("a1", "att"), ("d1", "def")),
            kill("k2", w.at(2), ("a1", "att"), ("d1", "def")), // outside the war's 1 min
        ])
        .await;
    assert_eq!(outcome.accepted, 2, "{:?}", outcome.rejected);
    assert_eq!(w.points("a1").await, Some(40));
    let farmed = w
        .ingest(vec![kill("k3", w.at(2), ("a1", "att"), ("d1", "def"))])
        .await;
    assert!(farmed.rejected[0].reason.contains("last 60 s"));
}

#[tokio::test]
async fn a_war_without_a_ruleset_follows_the_live_rules() {
    // Wars written before rulesets were snapshotted (the fixture has none).
    let w = world_with(Rules {
        kill_base_points: 15,
        ..Rules::default()
    })
    .await;
    assert!(w.deps.war(&war_id()).await.unwrap().ruleset.is_none());
    w.ingest(vec![kill("k1", w.at(1), ("a1", "att"), ("d1", "def"))])
        .await;
    assert_eq!(w.points("a1").await, Some(15));
}

// ---- the scoring window -------------------------------------------------------------------

#[tokio::test]
async fn events_before_the_war_is_active_are_refused() {
    let mut w = world().await;
    let mut war = w.deps.war(&war_id()).await.unwrap();
    war.status = WarStatus::Preparation;
    let mut tx = Transaction::new();
    tx.update(&mut war);
    w.deps.commit(tx).await.unwrap();
    w.war = war;
    let outcome = w
        .ingest(vec![kill("k1", w.at(1), ("a1", "att"), ("d1", "def"))])
        .await;
    assert_eq!(codes_of(&outcome), vec![("k1", "WAR_NOT_ACCEPTING_EVENTS")]);
    assert!(w.totals().await.is_empty());
}

#[tokio::test]
async fn an_event_that_happened_before_active_is_refused() {
    let w = world().await;
    let outcome = w
        .ingest(vec![kill("k1", w.at(-1), ("a1", "att"), ("d1", "def"))])
        .await;
    assert_eq!(codes_of(&outcome), vec![("k1", "OUTSIDE_ACTIVE_WINDOW")]);
}

#[tokio::test]
async fn late_events_from_active_count_during_the_ending_grace() {
    let mut w = world().await;
    w.enter_ending().await;
    w.h.clock
        .set(w.war.phase_deadlines.ended_at - Duration::seconds(1));
    let last_minute = w.war.phase_deadlines.ending_at - Duration::seconds(30);
    let outcome = w
        .ingest(vec![
            kill("k1", last_minute, ("a1", "att"), ("d1", "def")),
            kill(
                "k2",
                w.war.phase_deadlines.ending_at,
                ("a1", "att"),
                ("d2", "def"),
            ),
        ])
        .await;
    assert_eq!(outcome.accepted, 1);
    assert_eq!(codes_of(&outcome), vec![("k2", "OUTSIDE_ACTIVE_WINDOW")]);
    assert_eq!(w.totals().await, BTreeMap::from([(clan("att"), 10)]));
}

#[tokio::test]
async fn events_arriving_after_ending_closes_are_refused() {
    let mut w = world().await;
    w.enter_ending().await;
    w.h.clock.set(w.war.phase_deadlines.ended_at);
    let outcome = w
        .ingest(vec![kill("k1", w.at(100), ("a1", "att"), ("d1", "def"))])
        .await;
    assert_eq!(codes_of(&outcome), vec![("k1", "WAR_NOT_ACCEPTING_EVENTS")]);
    assert!(w.totals().await.is_empty());
}

#[tokio::test]
async fn every_rule_rejects_with_its_own_code_and_the_rest_of_the_batch_counts() {
    let w = world().await;
    let now = w.deps.clock.now();
    let outcome = w
        .ingest(vec![
            kill("same", w.at(1), ("a1", "att"), ("x1", "att-ally")),
            kill("stranger", w.at(1), ("a1", "att"), ("z1", "other")),
            assist("stranger-assist", w.at(1), ("z1", "other")),
            kill(
                "future",
                now + Duration::minutes(1),
                ("a1", "att"),
                ("d1", "def"),
            ),
            in_battle(
                kill("battle", w.at(1), ("a1", "att"), ("d1", "def")),
                "b404",
            ),
            kill("fine", w.at(1), ("a1", "att"), ("d1", "def")),
        ])
        .await;
    assert_eq!(outcome.accepted, 1);
    assert_eq!(
        codes_of(&outcome),
        vec![
            ("same", "SAME_SIDE"),
            ("stranger", "NOT_A_PARTICIPANT"),
            ("stranger-assist", "NOT_A_PARTICIPANT"),
            ("future", "FUTURE_EVENT"),
            ("battle", "UNKNOWN_BATTLE"),
        ]
    );
    assert!(outcome.rejected.iter().all(|r| !r.reason.is_empty()));
    assert_eq!(w.totals().await, BTreeMap::from([(clan("att"), 10)]));
}

#[tokio::test]
async fn players_must_be_on_the_roster_of_the_clan_they_are_credited_to() {
    let w = world().await;
    let outcome = w
        .ingest(vec![
            // Not in the registry at all, claiming the attacker.
            kill("nobody", w.at(1), ("ghost", "att"), ("d1", "def")),
            // A defender claiming to kill for the attacker (of a defender!).
            kill("turncoat", w.at(1), ("d2", "att"), ("d3", "def")),
            // A real attacker on a victim who is not in the clan named for them.
            kill("fake-victim", w.at(1), ("a1", "att"), ("a2", "def")),
            // A player of the no-side clan credited to the ally.
            assist("borrowed", w.at(1), ("z1", "att-ally")),
            assist("ghost-assist", w.at(1), ("ghost", "def")),
            kill("fine", w.at(1), ("a1", "att"), ("d1", "def")),
            assist("fine-assist", w.at(1), ("x1", "att-ally")),
        ])
        .await;
    assert_eq!(
        codes_of(&outcome),
        vec![
            ("nobody", "NOT_A_MEMBER"),
            ("turncoat", "NOT_A_MEMBER"),
            ("fake-victim", "NOT_A_MEMBER"),
            ("borrowed", "NOT_A_MEMBER"),
            ("ghost-assist", "NOT_A_MEMBER"),
        ]
    );
    assert_eq!(outcome.accepted, 2);
    assert!(outcome.rejected[0].reason.contains("ghost"));
    assert_eq!(
        w.totals().await,
        BTreeMap::from([(clan("att"), 10), (clan("att-ally"), 3)]),
        "nothing credited for the refused events"
    );
}

#[tokio::test]
async fn a_batch_naming_many_clans_still_checks_the_members_of_the_war_s_clans() {
    let w = world().await;
    let mut events: Vec<BattleEvent> = (0..MAX_CLANS_WITH_WAR + 5)
        .map(|i| {
            kill(
                &format!("x{i}"),
                w.at(1),
                ("a1", "att"),
                ("v", &format!("c{i}")),
            )
        })
        .collect();
    events.push(kill("ghost", w.at(1), ("ghost", "att"), ("d1", "def")));
    events.push(kill("fine", w.at(1), ("a1", "att"), ("d1", "def")));
    let outcome = w.ingest(events).await;
    assert_eq!(outcome.accepted, 1);
    let codes = codes_of(&outcome);
    assert_eq!(codes.last(), Some(&("ghost", "NOT_A_MEMBER")));
    assert!(codes[..codes.len() - 1]
        .iter()
        .all(|(_, code)| *code == "NOT_A_PARTICIPANT"));
}

// ---- batch limits and errors --------------------------------------------------------------

#[tokio::test]
async fn a_batch_over_the_limit_is_refused_before_anything_is_applied() {
    let w = world_with(Rules {
        max_events_per_batch: 2,
        ..Rules::default()
    })
    .await;
    let events = (0..3)
        .map(|i| assist(&format!("s{i}"), w.at(1), ("a1", "att")))
        .collect();
    let err = w.svc.ingest(&war_id(), events).await.unwrap_err();
    assert_eq!(
        (err.code(), err.class()),
        ("INVALID_REQUEST", crate::ErrorClass::Malformed)
    );
    assert!(w.totals().await.is_empty());
    let at_the_limit = (0..2)
        .map(|i| assist(&format!("s{i}"), w.at(1), ("a1", "att")))
        .collect();
    assert_eq!(
        w.svc
            .ingest(&war_id(), at_the_limit)
            .await
            .unwrap()
            .accepted,
        2
    );
}

#[tokio::test]
async fn the_default_batch_limit_is_five_hundred() {
    let w = world().await;
    let events: Vec<BattleEvent> = (0..501)
        .map(|i| assist(&format!("s{i}"), w.at(1), ("a1", "att")))
        .collect();
    assert!(w
        .svc
        .ingest(&war_id(), events[..500].to_vec())
        .await
        .is_ok());
    assert!(w.svc.ingest(&war_id(), events).await.is_err());
}

#[tokio::test]
async fn an_empty_batch_is_answered_with_zeros() {
    let w = world().await;
    assert_eq!(w.ingest(vec![]).await, BatchOutcome::default());
}

#[tokio::test]
async fn events_for_an_unknown_war_are_not_found() {
    let w = world().await;
    let err = w
        .svc
        .ingest(&WarId::new("nope").unwrap(), vec![])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "WAR_NOT_FOUND");
}

#[tokio::test]
async fn a_store_outage_fails_the_batch_and_a_resend_completes_it() {
    let w = world().await;
    w.h.store.set_unavailable(true);
    let batch = vec![kill("k1", w.at(1), ("a1", "att"), ("d1", "def"))];
    let err = w.svc.ingest(&war_id(), batch.clone()).await.unwrap_err();
    assert_eq!(err.class(), crate::ErrorClass::Unavailable);
    w.h.store.set_unavailable(false);
    assert_eq!(w.ingest(batch).await.accepted, 1);
}

#[tokio::test]
async fn the_batch_answer_uses_the_contract_field_names() {
    let outcome = BatchOutcome {
        lag_ms: Some((5, 4)),
        accepted: 2,
        duplicates: 1,
        rejected: vec![RejectedEvent {
            event_id: EventId::new("e1").unwrap(),
            code: "SAME_SIDE".into(),
            reason: "why".into(),
        }],
    };
    assert_eq!(
        serde_json::to_value(&outcome).unwrap(),
        serde_json::json!({
            "accepted": 2, "duplicates": 1,
            "rejected": [{"event_id": "e1", "code": "SAME_SIDE", "reason": "why"}]
        })
    );
}

// ---- captures -----------------------------------------------------------------------------

#[tokio::test]
async fn a_capture_event_moves_the_territory_and_scores_the_capturer() {
    let w = world().await;
    let outcome = w
        .ingest(vec![capture("c1", w.at(1), "t2", "att-ally")])
        .await;
    assert_eq!(outcome.accepted, 1, "{outcome:?}");
    // 100 × tier 2 × (1 + 0.25 × 0)
    assert_eq!(w.totals().await, BTreeMap::from([(clan("att-ally"), 200)]));
    let war = w.deps.war(&war_id()).await.unwrap();
    assert_eq!(war.captures.len(), 1);
    assert!(w.h.events.types().contains(&"TerritoryCaptured"));
}

#[tokio::test]
async fn a_replayed_capture_is_a_duplicate_even_after_active() {
    let mut w = world().await;
    let c = capture("c1", w.at(1), "t1", "att");
    w.ingest(vec![c.clone()]).await;
    let outcome = w.ingest(vec![c.clone()]).await;
    assert_eq!(
        (outcome.accepted, outcome.duplicates),
        (0, 1),
        "{outcome:?}"
    );
    w.enter_ending().await;
    let outcome = w.ingest(vec![c]).await;
    assert_eq!(
        (outcome.accepted, outcome.duplicates),
        (0, 1),
        "{outcome:?}"
    );
    assert_eq!(w.totals().await, BTreeMap::from([(clan("att"), 100)]));
}

#[tokio::test]
async fn refused_captures_carry_the_territory_rule_codes_and_stay_retryable() {
    let w = world().await;
    let outcome = w
        .ingest(vec![
            capture("c1", w.at(1), "t1", "def"),
            capture("c2", w.at(1), "t1", "other"),
            capture("c3", w.at(1), "t404", "att"),
            capture("c4", w.at(-5), "t1", "att"),
        ])
        .await;
    assert_eq!(
        codes_of(&outcome),
        vec![
            ("c1", "ALREADY_OWNER"),
            ("c2", "NOT_A_PARTICIPANT"),
            ("c3", "TERRITORY_NOT_FOUND"),
            ("c4", "OUTSIDE_ACTIVE_WINDOW"),
        ]
    );
    assert!(w.totals().await.is_empty());
    // Asking whether a refused capture was applied before consumed nothing.
    let outcome = w.ingest(vec![capture("c1", w.at(2), "t1", "att")]).await;
    assert_eq!(outcome.accepted, 1, "{outcome:?}");
}

// ---- reads --------------------------------------------------------------------------------

#[tokio::test]
async fn an_ended_war_shows_its_frozen_side_scores() {
    let w = world().await;
    w.ingest(vec![kill("k1", w.at(1), ("a1", "att"), ("d1", "def"))])
        .await;
    let mut war = w.deps.war(&war_id()).await.unwrap();
    war.status = WarStatus::Ended;
    war.sides.attacker.score = 40;
    war.sides.defender.score = 55;
    let mut tx = Transaction::new();
    tx.update(&mut war);
    w.deps.commit(tx).await.unwrap();
    let board = w.svc.scoreboard(&war_id(), 10).await.unwrap();
    assert_eq!(
        (board.sides.attacker.score, board.sides.defender.score),
        (40, 55)
    );
    assert_eq!(board.clans[0].score, 10);
}

#[tokio::test]
async fn the_scoreboard_uses_the_contract_field_names() {
    let w = world().await;
    w.ingest(vec![kill("k1", w.at(1), ("a1", "att"), ("d1", "def"))])
        .await;
    let json = serde_json::to_value(w.svc.scoreboard(&war_id(), 10).await.unwrap()).unwrap();
    assert_eq!(json["war_id"], "war-1");
    assert_eq!(json["sides"]["attacker"]["score"], 10);
    assert_eq!(json["sides"]["defender"]["score"], 0);
    assert_eq!(
        json["clans"][0],
        serde_json::json!({"clan_id": "att", "side": "attacker", "score": 10})
    );
    assert_eq!(
        json["top_players"][0],
        serde_json::json!({"player_id": "a1", "clan_id": "att", "points": 10})
    );
}

#[tokio::test]
async fn the_scoreboard_limit_must_be_between_one_and_a_hundred() {
    let w = world().await;
    for limit in [0, MAX_TOP_PLAYERS + 1] {
        let err = w.svc.scoreboard(&war_id(), limit).await.unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Malformed);
    }
    let err = w
        .svc
        .scoreboard(&WarId::new("nope").unwrap(), 10)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "WAR_NOT_FOUND");
}

#[tokio::test]
async fn a_players_score_is_read_or_not_found() {
    let w = world().await;
    w.ingest(vec![assist("s1", w.at(1), ("a2", "att"))]).await;
    let score = w.svc.player(&war_id(), &player("a2")).await.unwrap();
    assert_eq!((score.clan_id, score.points), (clan("att"), 3));
    let err = w.svc.player(&war_id(), &player("ghost")).await.unwrap_err();
    assert_eq!(
        (err.code(), err.class()),
        ("PLAYER_NOT_FOUND", crate::ErrorClass::NotFound)
    );
    let err = w
        .svc
        .player(&WarId::new("nope").unwrap(), &player("a2"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "WAR_NOT_FOUND");
}

// ---- snapshots ----------------------------------------------------------------------------

fn snapshots(w: &World) -> Vec<(i64, i64)> {
    w.h.events
        .published()
        .into_iter()
        .filter_map(|e| match e.event {
            DomainEvent::ScoreSnapshot {
                attacker_score,
                defender_score,
            } => Some((attacker_score, defender_score)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn accepted_events_emit_a_throttled_score_snapshot() {
    let w = world().await;
    let start = w.deps.clock.now();
    w.ingest(vec![kill("k1", w.at(1), ("a1", "att"), ("d1", "def"))])
        .await;
    assert_eq!(snapshots(&w), vec![(10, 0)]);
    w.h.clock.set(start + Duration::seconds(4));
    w.ingest(vec![kill("k2", w.at(1), ("d1", "def"), ("a1", "att"))])
        .await;
    assert_eq!(snapshots(&w).len(), 1);
    w.h.clock.set(start + Duration::seconds(5));
    w.ingest(vec![assist("s1", w.at(1), ("d2", "def"))]).await;
    assert_eq!(snapshots(&w), vec![(10, 0), (10, 13)]);
    let snapshot = w.h.events.published().pop().unwrap();
    assert_eq!(snapshot.war_id, Some(war_id()));
    assert_eq!(snapshot.clan_ids.len(), 3);
}

#[tokio::test]
async fn a_batch_with_nothing_accepted_emits_no_snapshot() {
    let w = world().await;
    w.ingest(vec![kill("k1", w.at(-1), ("a1", "att"), ("d1", "def"))])
        .await;
    assert!(snapshots(&w).is_empty());
}

#[tokio::test]
async fn instances_sharing_a_store_emit_one_snapshot_per_slot() {
    let w = world().await;
    let other = ScoreService::new((&w.deps).into());
    assert!(w.svc.maybe_snapshot(&war_id()).await.unwrap());
    assert!(!other.maybe_snapshot(&war_id()).await.unwrap());
    assert_eq!(snapshots(&w).len(), 1);
    w.h.clock.set(w.deps.clock.now() + Duration::seconds(5));
    assert!(other.maybe_snapshot(&war_id()).await.unwrap());
    assert_eq!(snapshots(&w).len(), 2);
}

#[tokio::test]
async fn no_snapshot_once_the_war_takes_no_more_events() {
    let mut w = world().await;
    w.enter_ending().await;
    w.h.clock.set(w.war.phase_deadlines.ended_at);
    assert!(!w.svc.maybe_snapshot(&war_id()).await.unwrap());
}

// ---- property: replays never change a score -----------------------------------------------

fn event_pool() -> impl Strategy<Value = Vec<(u8, u8, u8, u8)>> {
    // (kind, actor, victim, minute): few players, so the refarm window often applies.
    proptest::collection::vec((0u8..4, 0u8..3, 0u8..3, 0u8..30), 1..25)
}

fn build(w: &World, i: usize, (kind, actor, victim, minute): (u8, u8, u8, u8)) -> BattleEvent {
    let at = w.at(i64::from(minute));
    let id = format!("e{i}");
    let att = format!("a{actor}");
    let def = format!("d{victim}");
    let ally = format!("x{actor}");
    match kind {
        0 => kill(&id, at, (&att, "att"), (&def, "def")),
        1 => kill(&id, at, (&def, "def"), (&ally, "att-ally")),
        2 => assist(&id, at, (&ally, "att-ally")),
        _ => kill(&id, at, (&att, "att"), (&def, "att")), // same side: rejected
    }
}

async fn scores_of(w: &World) -> (BTreeMap<ClanId, i64>, Vec<PlayerScore>) {
    (
        w.totals().await,
        w.h.store
            .all_players(&war_id(), DEFAULT_SCORE_SHARDS)
            .await
            .unwrap(),
    )
}

// ---- the ledger ---------------------------------------------------------------------------

#[tokio::test]
async fn the_ledger_lists_accepted_effects_newest_first_and_pages_with_a_cursor() {
    let w = world().await;
    w.ingest(vec![
        kill("k1", w.at(1), ("a1", "att"), ("d1", "def")),
        assist("s1", w.at(2), ("x2", "att-ally")),
        kill("bad", w.at(3), ("a1", "att"), ("d1", "att")),
    ])
    .await;
    w.ingest(vec![capture("c1", w.at(4), "t1", "att")]).await;
    let all = w
        .svc
        .ledger(&war_id(), &LedgerFilter::default(), 50, None)
        .await
        .unwrap();
    let ids: Vec<&str> = all.items.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["c1", "s1", "k1"], "the rejected kill is not in it");
    assert_eq!(all.next_cursor, None);
    let kill_entry = &all.items[2];
    assert_eq!(
        (kill_entry.kind, kill_entry.points, kill_entry.side),
        (EffectKind::Kill, 10, crate::war::Side::Attacker)
    );
    assert_eq!(kill_entry.player_id, Some(player("a1")));
    assert_eq!(
        kill_entry.retained_until,
        w.war.phase_deadlines.ended_at + Duration::days(90)
    );

    let first = w
        .svc
        .ledger(&war_id(), &LedgerFilter::default(), 2, None)
        .await
        .unwrap();
    let rest = w
        .svc
        .ledger(&war_id(), &LedgerFilter::default(), 2, first.next_cursor)
        .await
        .unwrap();
    let paged: Vec<String> = first
        .items
        .iter()
        .chain(&rest.items)
        .map(|e| e.event_id.clone())
        .collect();
    assert_eq!(paged, ["c1", "s1", "k1"]);
    assert_eq!(rest.next_cursor, None);

    let of_ally = LedgerFilter {
        player_id: None,
        clan_id: Some(clan("att-ally")),
    };
    let ally = w.svc.ledger(&war_id(), &of_ally, 50, None).await.unwrap();
    assert_eq!(ally.items.len(), 1);
    assert_eq!(ally.items[0].event_id, "s1");
}

#[tokio::test]
async fn a_ledger_read_refuses_bad_limits_cursors_and_unknown_wars() {
    let w = world().await;
    let none = LedgerFilter::default();
    for limit in [0, MAX_LEDGER_LIMIT + 1] {
        let err = w.svc.ledger(&war_id(), &none, limit, None).await;
        assert_eq!(err.unwrap_err().code(), "INVALID_REQUEST");
    }
    let err = w.svc.ledger(&war_id(), &none, 5, Some("junk".into())).await;
    assert_eq!(err.unwrap_err().code(), "INVALID_REQUEST");
    let err = w
        .svc
        .ledger(&WarId::new("nope").unwrap(), &none, 5, None)
        .await;
    assert_eq!(err.unwrap_err().code(), "WAR_NOT_FOUND");
}

/// Ends the war of `w` through the real final tally (hold points, winner).
async fn finish(w: &mut World) -> War {
    // The clans are in the registry already (`world_with`'s rosters).
    w.enter_ending().await;
    w.h.clock.set(w.war.phase_deadlines.ended_at);
    let (war, _) = crate::services::lifecycle::LifecycleService::new((&w.deps).into())
        .finish(&war_id())
        .await
        .unwrap();
    war
}

fn pool_event(w: &World, i: usize, (kind, actor, victim, minute): (u8, u8, u8, u8)) -> BattleEvent {
    let at = w.at(i64::from(minute));
    let id = format!("e{i}");
    match kind {
        4 => capture(&id, at, if actor == 0 { "t1" } else { "t2" }, "att"),
        5 => capture(&id, at, "t1", "def"),
        _ => build(w, i, (kind, actor, victim, minute)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replaying_events_never_changes_a_score(
        pool in event_pool(),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..60),
        cuts in proptest::collection::vec(1usize..8, 1..20),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let noisy = world().await;
            let events: Vec<BattleEvent> =
                pool.iter().enumerate().map(|(i, e)| build(&noisy, i, *e)).collect();
            // A random stream over the pool (with repeats), cut into random batches.
            let stream: Vec<BattleEvent> =
                picks.iter().map(|p| p.get(&events).clone()).collect();
            let mut rest = &stream[..];
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (batch, tail) = rest.split_at((*cut).min(rest.len()));
                noisy.svc.ingest(&war_id(), batch.to_vec()).await.unwrap();
                rest = tail;
            }
            // Each distinct event once, in order of first appearance.
            let clean = world().await;
            let mut seen = HashSet::new();
            let unique: Vec<BattleEvent> = stream
                .iter()
                .filter(|e| seen.insert(e.event_id().clone()))
                .cloned()
                .collect();
            clean.svc.ingest(&war_id(), unique).await.unwrap();
            assert_eq!(scores_of(&noisy).await, scores_of(&clean).await);
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever arrives (repeats, farmed kills, rejected events, captures back and forth,
    /// any batch cuts), the ledger recomputes the stored totals exactly: the war's final
    /// clan scores (hold points included), its side scores and every player's points.
    #[test]
    fn recomputing_a_war_from_its_ledger_reproduces_its_stored_totals(
        pool in proptest::collection::vec((0u8..6, 0u8..3, 0u8..3, 0u8..120), 1..25),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..60),
        cuts in proptest::collection::vec(1usize..8, 1..20),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let mut w = world().await;
            let events: Vec<BattleEvent> =
                pool.iter().enumerate().map(|(i, e)| pool_event(&w, i, *e)).collect();
            let mut stream: Vec<BattleEvent> =
                picks.iter().map(|p| p.get(&events).clone()).collect();
            // Captures must happen in time order to be accepted at all; keep the stream's
            // order otherwise.
            stream.sort_by_key(|e| e.occurred_at());
            let mut rest = &stream[..];
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (batch, tail) = rest.split_at((*cut).min(rest.len()));
                let now = batch.iter().map(BattleEvent::occurred_at).max().unwrap();
                w.h.clock.set(now.max(w.deps.clock.now()));
                w.svc.ingest(&war_id(), batch.to_vec()).await.unwrap();
                rest = tail;
            }
            let war = finish(&mut w).await;
            let ledger = w.h.store.ledger_all(&war_id(), war.score_shards).await.unwrap();
            let totals = recompute(&ledger);
            let nonzero = |m: &BTreeMap<ClanId, i64>| -> BTreeMap<ClanId, i64> {
                m.iter().filter(|(_, p)| **p != 0).map(|(c, p)| (c.clone(), *p)).collect()
            };
            assert_eq!(nonzero(&totals.clans), nonzero(&war.final_clan_scores));
            assert_eq!(
                (totals.attacker, totals.defender),
                (war.sides.attacker.score, war.sides.defender.score)
            );
            // Points per player (a player reported for two clans keeps one clan on its
            // item, which one is the store's choice; the points are what must agree).
            let stored: BTreeMap<PlayerId, i64> = w
                .h
                .store
                .all_players(&war_id(), war.score_shards)
                .await
                .unwrap()
                .into_iter()
                .map(|p| (p.player_id, p.points))
                .collect();
            let recomputed: BTreeMap<PlayerId, i64> =
                totals.players.iter().map(|(p, (_, n))| (p.clone(), *n)).collect();
            assert_eq!(recomputed, stored);
            let mut ids: Vec<&str> = ledger.iter().map(|e| e.event_id.as_str()).collect();
            let count = ids.len();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), count, "an effect is recorded once");
        });
    }
}
