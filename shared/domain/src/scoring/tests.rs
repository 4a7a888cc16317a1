use super::fixtures::*;
use super::*;
use crate::war::WarStatus;
use proptest::prelude::*;
use serde_json::json;

fn rules() -> Rules {
    Rules::default()
}

fn mid_active(war: &War) -> DateTime<Utc> {
    war.phase_deadlines.active_at + Duration::minutes(30)
}

fn score(e: Result<Evaluation, Rejection>) -> ScoreDelta {
    match e {
        Ok(Evaluation::Score(d)) => d,
        other => panic!("expected a score, got {other:?}"),
    }
}

fn rejection(e: Result<Evaluation, Rejection>) -> &'static str {
    match e {
        Err(r) => r.code,
        Ok(other) => panic!("expected a rejection, got {other:?}"),
    }
}

// ---- kill points --------------------------------------------------------------------------

#[test]
fn a_kill_of_an_equal_level_is_worth_the_base() {
    assert_eq!(kill_points(level(40), level(40), &rules()), 10);
}

#[test]
fn kill_weight_follows_the_level_ratio_and_is_clamped() {
    let r = rules();
    assert_eq!(kill_points(level(10), level(15), &r), 15);
    assert_eq!(kill_points(level(10), level(100), &r), 20);
    assert_eq!(kill_points(level(100), level(10), &r), 5);
    assert_eq!(kill_points(level(3), level(2), &r), 7); // 6.67 rounds up
    assert_eq!(kill_points(level(8), level(5), &r), 6); // 6.25 rounds down
}

#[test]
fn kill_weight_uses_the_configured_base() {
    let r = Rules {
        kill_base_points: 20,
        ..Rules::default()
    };
    assert_eq!(kill_points(level(10), level(10), &r), 20);
}

#[test]
fn levels_outside_one_to_a_thousand_are_refused() {
    assert_eq!(Level::new(0), Err(LevelError(0)));
    assert_eq!(Level::new(1_001), Err(LevelError(1_001)));
    assert!(Level::new(1).is_ok() && Level::new(1_000).is_ok());
}

// ---- wire format --------------------------------------------------------------------------

fn kill_json() -> serde_json::Value {
    json!({
        "type": "kill", "event_id": "e1", "occurred_at": "2026-01-01T00:30:00Z",
        "killer_id": "p1", "killer_clan_id": "att", "killer_level": 10,
        "victim_id": "p2", "victim_clan_id": "def", "victim_level": 20, "battle_id": "b1"
    })
}

#[test]
fn a_kill_event_parses_from_its_wire_format() {
    let event: BattleEvent = serde_json::from_value(kill_json()).unwrap();
    let BattleEvent::Kill(kill) = &event else {
        panic!("not a kill: {event:?}")
    };
    assert_eq!(kill.victim_level, level(20));
    assert_eq!(kill.battle_id, Some(BattleId::new("b1").unwrap()));
    assert_eq!(event.event_id().as_str(), "e1");
    assert_eq!(serde_json::to_value(&event).unwrap(), kill_json());
}

#[test]
fn assist_and_capture_events_parse_without_optional_fields() {
    let assist: BattleEvent = serde_json::from_value(json!({
        "type": "assist", "event_id": "e2", "occurred_at": "2026-01-01T00:30:00+01:00",
        "player_id": "p3", "clan_id": "att"
    }))
    .unwrap();
    assert!(matches!(
        assist,
        BattleEvent::Assist(AssistEvent {
            battle_id: None,
            ..
        })
    ));
    assert_eq!(
        assist.occurred_at(),
        "2025-12-31T23:30:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    let capture: BattleEvent = serde_json::from_value(json!({
        "type": "capture", "event_id": "e3", "occurred_at": "2026-01-01T00:30:00Z",
        "territory_id": "t1", "clan_id": "att"
    }))
    .unwrap();
    assert!(matches!(capture, BattleEvent::Capture(_)));
}

#[test]
fn unknown_fields_are_refused() {
    let mut body = kill_json();
    body["headshot"] = json!(true);
    let err = serde_json::from_value::<BattleEvent>(body).unwrap_err();
    assert!(err.to_string().contains("headshot"), "{err}");
}

#[test]
fn fields_of_another_event_type_are_refused() {
    let mut body = kill_json();
    body["territory_id"] = json!("t1");
    assert!(serde_json::from_value::<BattleEvent>(body).is_err());
}

#[test]
fn unknown_or_missing_types_are_refused() {
    let mut body = kill_json();
    body["type"] = json!("heal");
    assert!(serde_json::from_value::<BattleEvent>(body.clone()).is_err());
    body.as_object_mut().unwrap().remove("type");
    assert!(serde_json::from_value::<BattleEvent>(body).is_err());
}

#[test]
fn out_of_range_levels_bad_ids_and_bad_times_are_refused() {
    for (field, value) in [
        ("killer_level", json!(0)),
        ("victim_level", json!(1_001)),
        ("victim_level", json!(-3)),
        ("killer_id", json!("bad id")),
        ("occurred_at", json!("yesterday")),
    ] {
        let mut body = kill_json();
        body[field] = value;
        assert!(
            serde_json::from_value::<BattleEvent>(body).is_err(),
            "{field} accepted"
        );
    }
}

// ---- evaluation ---------------------------------------------------------------------------

#[test]
fn a_kill_inside_active_scores_the_killer_and_its_clan() {
    let war = active_war();
    let at = mid_active(&war);
    let delta = score(evaluate(
        &war,
        &kill("k1", at, ("p1", "att"), ("p2", "def")),
        at,
        &rules(),
    ));
    assert_eq!(delta.dedupe_id, "k1");
    assert_eq!(delta.players.len(), 1);
    assert_eq!(
        (delta.players[0].player_id.as_str(), delta.players[0].points),
        ("p1", 10)
    );
    assert_eq!(delta.clans, vec![(clan("att"), 10)]);
    assert_eq!(delta.battle_kill, None);
    let guard = delta.farm_guard.unwrap();
    assert_eq!(
        (guard.victim_id, guard.occurred_at, guard.window_s),
        (player("p2"), at, 300)
    );
}

#[test]
fn a_kill_in_a_battle_is_tallied_for_the_killers_side() {
    let war = active_war();
    let at = mid_active(&war);
    let mut event = kill("k1", at, ("p2", "def"), ("p1", "att-ally"));
    if let BattleEvent::Kill(k) = &mut event {
        k.battle_id = Some(BattleId::new("b1").unwrap());
    }
    let delta = score(evaluate(&war, &event, at, &rules()));
    assert_eq!(
        delta.battle_kill,
        Some((BattleId::new("b1").unwrap(), Side::Defender))
    );
}

#[test]
fn an_assist_scores_its_player_and_clan() {
    let war = active_war();
    let at = mid_active(&war);
    let delta = score(evaluate(
        &war,
        &assist("a1", at, ("p9", "att-ally")),
        at,
        &rules(),
    ));
    assert_eq!(delta.players[0].points, 3);
    assert_eq!(delta.clans, vec![(clan("att-ally"), 3)]);
    assert_eq!(delta.farm_guard, None);
}

#[test]
fn kills_between_allies_of_one_side_are_refused() {
    let war = active_war();
    let at = mid_active(&war);
    let event = kill("k1", at, ("p1", "att"), ("p2", "att-ally"));
    assert_eq!(
        rejection(evaluate(&war, &event, at, &rules())),
        codes::SAME_SIDE
    );
}

#[test]
fn clans_outside_the_war_are_refused() {
    let war = active_war();
    let at = mid_active(&war);
    let r = rules();
    let as_killer = kill("k1", at, ("p1", "other"), ("p2", "def"));
    let as_victim = kill("k2", at, ("p1", "att"), ("p2", "other"));
    let as_assister = assist("a1", at, ("p1", "other"));
    for event in [as_killer, as_victim, as_assister] {
        assert_eq!(
            rejection(evaluate(&war, &event, at, &r)),
            codes::NOT_A_PARTICIPANT
        );
    }
}

#[test]
fn events_before_active_are_refused() {
    let mut war = active_war();
    war.status = WarStatus::Preparation;
    let at = mid_active(&war);
    let event = kill("k1", at, ("p1", "att"), ("p2", "def"));
    assert_eq!(
        rejection(evaluate(&war, &event, at, &rules())),
        codes::WAR_NOT_ACCEPTING_EVENTS
    );
}

#[test]
fn an_event_that_happened_before_active_is_refused_during_active() {
    let war = active_war();
    let at = war.phase_deadlines.active_at - Duration::seconds(1);
    let event = kill("k1", at, ("p1", "att"), ("p2", "def"));
    assert_eq!(
        rejection(evaluate(&war, &event, mid_active(&war), &rules())),
        codes::OUTSIDE_ACTIVE_WINDOW
    );
}

#[test]
fn a_late_event_from_active_counts_during_the_ending_grace() {
    let mut war = active_war();
    let d = war.phase_deadlines;
    war.advance(WarStatus::Ending, d.ending_at).unwrap();
    let happened = d.ending_at - Duration::seconds(1);
    let now = d.ended_at - Duration::seconds(1);
    let event = kill("k1", happened, ("p1", "att"), ("p2", "def"));
    assert_eq!(score(evaluate(&war, &event, now, &rules())).clans[0].1, 10);
}

#[test]
fn an_event_that_happened_during_ending_is_refused() {
    let mut war = active_war();
    let d = war.phase_deadlines;
    war.advance(WarStatus::Ending, d.ending_at).unwrap();
    let event = kill("k1", d.ending_at, ("p1", "att"), ("p2", "def"));
    assert_eq!(
        rejection(evaluate(&war, &event, d.ending_at, &rules())),
        codes::OUTSIDE_ACTIVE_WINDOW
    );
}

#[test]
fn events_arriving_after_ending_closes_are_refused() {
    let mut war = active_war();
    let d = war.phase_deadlines;
    war.advance(WarStatus::Ending, d.ending_at).unwrap();
    let event = kill("k1", mid_active(&war), ("p1", "att"), ("p2", "def"));
    assert_eq!(
        rejection(evaluate(&war, &event, d.ended_at, &rules())),
        codes::WAR_NOT_ACCEPTING_EVENTS
    );
    war.status = WarStatus::Ended;
    assert_eq!(
        rejection(evaluate(&war, &event, d.ending_at, &rules())),
        codes::WAR_NOT_ACCEPTING_EVENTS
    );
}

#[test]
fn events_from_the_future_beyond_the_clock_skew_are_refused() {
    let war = active_war();
    let now = mid_active(&war);
    let r = rules();
    let within = kill(
        "k1",
        now + Duration::seconds(5),
        ("p1", "att"),
        ("p2", "def"),
    );
    let beyond = kill(
        "k2",
        now + Duration::seconds(6),
        ("p1", "att"),
        ("p2", "def"),
    );
    assert!(evaluate(&war, &within, now, &r).is_ok());
    assert_eq!(
        rejection(evaluate(&war, &beyond, now, &r)),
        codes::FUTURE_EVENT
    );
}

#[test]
fn a_capture_inside_the_window_is_handed_to_the_territory_rules() {
    let war = active_war();
    let now = mid_active(&war);
    let capture_at = |occurred_at| {
        BattleEvent::Capture(CaptureEvent {
            event_id: EventId::new("c1").unwrap(),
            occurred_at,
            territory_id: TerritoryId::new("t1").unwrap(),
            clan_id: clan("att"),
        })
    };
    assert!(matches!(
        evaluate(&war, &capture_at(now), now, &rules()),
        Ok(Evaluation::Capture(_))
    ));
    let early = capture_at(war.phase_deadlines.preparation_at);
    assert_eq!(
        rejection(evaluate(&war, &early, now, &rules())),
        codes::OUTSIDE_ACTIVE_WINDOW
    );
}

#[test]
fn events_naming_a_battle_of_another_war_are_refused() {
    let at = t0();
    let mut event = kill("k1", at, ("p1", "att"), ("p2", "def"));
    let known: BTreeSet<BattleId> = [BattleId::new("b1").unwrap()].into();
    assert!(require_known_battle(&event, &known).is_ok());
    if let BattleEvent::Kill(k) = &mut event {
        k.battle_id = Some(BattleId::new("b2").unwrap());
    }
    assert_eq!(
        require_known_battle(&event, &known).unwrap_err().code,
        codes::UNKNOWN_BATTLE
    );
    if let BattleEvent::Kill(k) = &mut event {
        k.battle_id = Some(BattleId::new("b1").unwrap());
    }
    assert!(require_known_battle(&event, &known).is_ok());
}

#[test]
fn a_domain_error_becomes_a_rejection_with_its_code() {
    let err = DomainError::AlreadyOwner(clan("att"));
    let r = Rejection::from(&err);
    assert_eq!(r.code, "ALREADY_OWNER");
    assert!(r.reason.contains("att"));
}

// ---- hold points, totals, territories ------------------------------------------------------

fn capture(war: &War, t: &str, from: Option<&str>, to: &str, after_min: i64) -> Capture {
    Capture {
        territory_id: TerritoryId::new(t).unwrap(),
        from_clan_id: from.map(clan),
        to_clan_id: clan(to),
        side: war.side_of(&clan(to)).unwrap(),
        at: war.phase_deadlines.active_at + Duration::minutes(after_min),
    }
}

#[test]
fn an_untouched_territory_scores_its_owner_every_full_hour() {
    let war = active_war();
    let territories = [
        territory("t1", 2, Some("def")),
        territory("t2", 1, Some("def")),
    ];
    let end = war.phase_deadlines.ending_at;
    let points = hold_points(&war, &territories, end, &rules());
    // 3 hours × 5 × (tier 2 + tier 1)
    assert_eq!(points, BTreeMap::from([(clan("def"), 45)]));
}

#[test]
fn captured_territories_split_hold_points_by_full_hours_of_each_owner() {
    let mut war = active_war();
    // t1: def for 90 min (1 full hour), att for 90 min (1 full hour), tier 3.
    war.captures
        .push(capture(&war, "t1", Some("def"), "att", 90));
    // t2: def 30 min (0 h), att-ally 100 min (1 h), def 50 min (0 h), tier 1.
    war.captures
        .push(capture(&war, "t2", Some("def"), "att-ally", 30));
    war.captures
        .push(capture(&war, "t2", Some("att-ally"), "def", 130));
    // The stored territory shows the latest owner only; captures tell the history.
    let territories = [
        territory("t1", 3, Some("att")),
        territory("t2", 1, Some("def")),
    ];
    let points = hold_points(&war, &territories, war.phase_deadlines.ending_at, &rules());
    assert_eq!(
        points,
        BTreeMap::from([(clan("att"), 15), (clan("att-ally"), 5), (clan("def"), 15)])
    );
}

#[test]
fn hold_points_stop_at_a_surrender_and_never_leave_active() {
    let war = active_war();
    let territories = [territory("t1", 1, Some("def"))];
    let active_at = war.phase_deadlines.active_at;
    let r = rules();
    let surrender = active_at + Duration::minutes(150);
    assert_eq!(
        hold_points(&war, &territories, surrender, &r)[&clan("def")],
        10
    );
    let long_after = war.phase_deadlines.ended_at + Duration::days(3);
    assert_eq!(
        hold_points(&war, &territories, long_after, &r)[&clan("def")],
        15
    );
    assert!(hold_points(&war, &territories, active_at - Duration::hours(5), &r).is_empty());
}

#[test]
fn only_clans_of_the_war_and_only_its_territories_earn_hold_points() {
    let war = active_war();
    let territories = [
        territory("t1", 1, Some("someone")),
        territory("t2", 1, None),
        territory("t9", 3, Some("def")),
    ];
    let points = hold_points(&war, &territories, war.phase_deadlines.ending_at, &rules());
    assert!(points.is_empty(), "{points:?}");
}

#[test]
fn side_totals_count_allies_for_their_side_and_ignore_strangers() {
    let war = active_war();
    let totals = BTreeMap::from([
        (clan("att"), 10),
        (clan("att-ally"), 7),
        (clan("def"), 12),
        (clan("other"), 100),
    ]);
    assert_eq!(side_totals(&war, &totals), (17, 12));
}

#[test]
fn territories_held_counts_owners_by_side() {
    let war = active_war();
    let territories = [
        territory("t1", 1, Some("att-ally")),
        territory("t2", 1, Some("def")),
        territory("t9", 1, Some("att")),
    ];
    assert_eq!(territories_held(&war, &territories), (1, 1));
}

// ---- winner -------------------------------------------------------------------------------

#[test]
fn the_higher_score_wins() {
    assert_eq!(
        decide_winner(10, 9, 0, 5),
        (WinnerSide::Attacker, Outcome::Score)
    );
    assert_eq!(
        decide_winner(9, 10, 5, 0),
        (WinnerSide::Defender, Outcome::Score)
    );
}

#[test]
fn equal_scores_are_decided_by_territories_held() {
    assert_eq!(
        decide_winner(10, 10, 2, 1),
        (WinnerSide::Attacker, Outcome::Territories)
    );
    assert_eq!(
        decide_winner(10, 10, 1, 2),
        (WinnerSide::Defender, Outcome::Territories)
    );
}

#[test]
fn equal_scores_and_territories_are_a_draw() {
    assert_eq!(decide_winner(0, 0, 1, 1), (WinnerSide::Draw, Outcome::Draw));
}

// ---- Elo ----------------------------------------------------------------------------------

#[test]
fn equal_ratings_move_by_half_of_k() {
    assert_eq!(rating_change(1_000.0, 1_000.0, 1.0, 32.0), 16);
    assert_eq!(rating_change(1_000.0, 1_000.0, 0.0, 32.0), -16);
    assert_eq!(rating_change(1_000.0, 1_000.0, 0.5, 32.0), 0);
    assert!((expected(1_000.0, 1_000.0) - 0.5).abs() < 1e-12);
}

#[test]
fn an_upset_moves_ratings_more_than_an_expected_win() {
    // 400 points apart: the favourite expects 10/11 of the score.
    assert!((expected(1_400.0, 1_000.0) - 10.0 / 11.0).abs() < 1e-12);
    assert_eq!(rating_change(1_400.0, 1_000.0, 1.0, 32.0), 3);
    assert_eq!(rating_change(1_000.0, 1_400.0, 1.0, 32.0), 29);
    assert_eq!(rating_change(1_000.0, 1_400.0, 0.5, 32.0), 13);
}

#[test]
fn every_clan_is_rated_against_the_mean_of_the_other_side() {
    let war = active_war(); // att + att-ally vs def
    let ratings = BTreeMap::from([
        (clan("att"), 1_100),
        (clan("att-ally"), 900),
        (clan("def"), 1_000),
    ]);
    let changes = side_rating_changes(&war, &ratings, WinnerSide::Defender, 32.0);
    let def_vs_mean_1000 = 1_000 + rating_change(1_000.0, 1_000.0, 1.0, 32.0);
    assert_eq!(
        changes,
        vec![
            (
                clan("att"),
                1_100,
                1_100 + rating_change(1_100.0, 1_000.0, 0.0, 32.0)
            ),
            (
                clan("att-ally"),
                900,
                900 + rating_change(900.0, 1_000.0, 0.0, 32.0)
            ),
            (clan("def"), 1_000, def_vs_mean_1000),
        ]
    );
    assert_eq!(def_vs_mean_1000, 1_016);
}

#[test]
fn a_draw_scores_half_and_unknown_ratings_start_at_the_default() {
    let war = active_war();
    let ratings = BTreeMap::from([(clan("def"), 1_200)]);
    let changes = side_rating_changes(&war, &ratings, WinnerSide::Draw, 32.0);
    assert_eq!(
        changes[0],
        (clan("att"), DEFAULT_RATING, DEFAULT_RATING + 8)
    );
    assert_eq!(changes[2], (clan("def"), 1_200, 1_192));
}

// ---- snapshots ----------------------------------------------------------------------------

#[test]
fn snapshots_are_due_first_and_then_once_per_interval() {
    let now = t0();
    assert!(snapshot_due(None, now, 5));
    assert!(!snapshot_due(Some(now), now + Duration::seconds(4), 5));
    assert!(snapshot_due(Some(now), now + Duration::seconds(5), 5));
}

// ---- properties ---------------------------------------------------------------------------

proptest! {
    #[test]
    fn swapping_the_sides_swaps_the_winner(
        a in -1_000i64..1_000, d in -1_000i64..1_000, ta in 0usize..6, td in 0usize..6
    ) {
        let (winner, outcome) = decide_winner(a, d, ta, td);
        let (swapped, swapped_outcome) = decide_winner(d, a, td, ta);
        let expected = match winner {
            WinnerSide::Attacker => WinnerSide::Defender,
            WinnerSide::Defender => WinnerSide::Attacker,
            WinnerSide::Draw => WinnerSide::Draw,
        };
        prop_assert_eq!(swapped, expected);
        prop_assert_eq!(swapped_outcome, outcome);
    }

    #[test]
    fn elo_is_zero_sum_for_one_against_one(
        ra in 0i32..4_000, rb in 0i32..4_000, result in 0u8..3, k in 1u8..64
    ) {
        let score = f64::from(result) / 2.0;
        let k = f64::from(k);
        let a = rating_change(f64::from(ra), f64::from(rb), score, k);
        let b = rating_change(f64::from(rb), f64::from(ra), 1.0 - score, k);
        prop_assert_eq!(a + b, 0);
    }

    #[test]
    fn kill_points_stay_between_half_and_double_the_base(
        killer in MIN_LEVEL..=MAX_LEVEL, victim in MIN_LEVEL..=MAX_LEVEL
    ) {
        let points = kill_points(level(killer), level(victim), &Rules::default());
        prop_assert!((5..=20).contains(&points), "{}", points);
    }

    #[test]
    fn hold_points_never_exceed_full_ownership(
        minutes in proptest::collection::vec(0i64..180, 0..6), tier in 1u8..=3
    ) {
        let mut war = active_war();
        let mut owner = "def";
        let mut sorted = minutes;
        sorted.sort_unstable();
        for m in sorted {
            let next = if owner == "def" { "att" } else { "def" };
            war.captures.push(capture(&war, "t1", Some(owner), next, m));
            owner = next;
        }
        let territories = [territory("t1", tier, Some(owner))];
        let points = hold_points(&war, &territories, war.phase_deadlines.ending_at, &rules());
        let total: i64 = points.values().sum();
        prop_assert!(total <= 5 * i64::from(tier) * 3);
    }
}
