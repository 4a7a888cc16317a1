use super::fixtures::*;
use super::*;

#[test]
fn lateness_is_the_move_minus_the_deadline_and_the_saga_duration_runs_from_the_close() {
    let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut w = War::declare(
        WarId::new("w").unwrap(),
        ClanId::new("a").unwrap(),
        ClanId::new("d").unwrap(),
        vec![],
        PhaseDurations {
            declared_s: 60,
            preparation_s: 60,
            active_s: 60,
            ending_s: 60,
        },
        now,
    );
    assert_eq!(w.lateness_of(WarStatus::Preparation), None);
    let deadline = w.phase_deadlines.preparation_at;
    w.advance(
        WarStatus::Preparation,
        deadline + Duration::milliseconds(1_500),
    )
    .unwrap();
    assert_eq!(
        w.lateness_of(WarStatus::Preparation),
        Some(Duration::milliseconds(1_500))
    );
    // An operator's early move is negative lateness.
    w.advance_now(WarStatus::Active, deadline + Duration::seconds(20))
        .unwrap();
    assert_eq!(
        w.lateness_of(WarStatus::Active),
        Some(Duration::seconds(-40))
    );
    assert_eq!(w.reward_saga_duration(now), None);
    w.cancel_by_operator(deadline + Duration::seconds(30))
        .unwrap();
    assert_eq!(
        w.reward_saga_duration(deadline + Duration::seconds(42)),
        Some(Duration::seconds(12))
    );
}

#[test]
fn the_scoring_window_opens_and_closes_with_an_operators_early_moves() {
    let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let hour = PhaseDurations {
        declared_s: 3_600,
        preparation_s: 3_600,
        active_s: 3_600,
        ending_s: 600,
    };
    let mut w = War::declare(
        WarId::new("w").unwrap(),
        ClanId::new("a").unwrap(),
        ClanId::new("d").unwrap(),
        vec![],
        hour,
        now,
    );
    let at = |minutes: i64| now + Duration::minutes(minutes);
    w.advance_now(WarStatus::Preparation, at(1)).unwrap();
    assert!(!w.in_active_window(at(2)), "PREPARATION does not score");
    w.advance_now(WarStatus::Active, at(3)).unwrap();
    assert!(!w.in_active_window(at(2)), "before ACTIVE opened");
    assert!(
        w.in_active_window(at(3)),
        "ACTIVE opened early, at the move"
    );
    assert!(
        w.in_active_window(at(150)),
        "the scheduled ACTIVE still counts"
    );
    w.advance_now(WarStatus::Ending, at(10)).unwrap();
    assert!(w.in_active_window(at(9)));
    assert!(
        !w.in_active_window(at(10)),
        "ENDING opened early, at the move"
    );
    // A timer's late move keeps the scheduled window.
    let mut late = War::declare(
        WarId::new("w2").unwrap(),
        ClanId::new("a").unwrap(),
        ClanId::new("d").unwrap(),
        vec![],
        hour,
        now,
    );
    late.advance(WarStatus::Preparation, at(61)).unwrap();
    late.advance(WarStatus::Active, at(125)).unwrap();
    assert!(
        late.in_active_window(at(120)),
        "from the deadline, not the late move"
    );
}
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn result() -> WarResult {
    WarResult {
        attacker_score: 10,
        defender_score: 5,
        winner: WinnerSide::Attacker,
        outcome: Outcome::Score,
    }
}

#[test]
fn deadlines_are_absolute_and_cumulative() {
    let w = war(t0());
    let d = w.phase_deadlines;
    assert_eq!(d.preparation_at, t0() + Duration::seconds(60));
    assert_eq!(d.active_at, t0() + Duration::seconds(120));
    assert_eq!(d.ending_at, t0() + Duration::seconds(180));
    assert_eq!(d.ended_at, t0() + Duration::seconds(240));
}

#[test]
fn a_war_walks_every_phase_in_order_on_its_deadlines() {
    let mut w = war(t0());
    let d = w.phase_deadlines;
    for (target, at) in [
        (WarStatus::Preparation, d.preparation_at),
        (WarStatus::Active, d.active_at),
        (WarStatus::Ending, d.ending_at),
    ] {
        let from = w.status;
        assert_eq!(
            w.advance(target, at).unwrap(),
            Advance::Moved { from, to: target }
        );
    }
    w.conclude(result(), d.ended_at).unwrap();
    assert_eq!(w.status, WarStatus::Ended);
    assert_eq!(w.transitions.len(), 4);
    assert_eq!(w.winner_side, Some(WinnerSide::Attacker));
    assert_eq!(w.closed_at, Some(d.ended_at));
}

#[test]
fn a_timer_before_its_deadline_is_refused() {
    let mut w = war(t0());
    let err = w.advance(WarStatus::Preparation, t0()).unwrap_err();
    assert_eq!(err.code(), "PHASE_DEADLINE_NOT_REACHED");
    assert_eq!(w.status, WarStatus::Declared);
}

#[test]
fn a_duplicate_or_late_timer_is_a_no_op() {
    let mut w = war(t0());
    let at = w.phase_deadlines.active_at;
    w.advance(WarStatus::Preparation, at).unwrap();
    let before = w.clone();
    assert_eq!(
        w.advance(WarStatus::Preparation, at).unwrap(),
        Advance::AlreadyDone
    );
    assert_eq!(w, before);
}

#[test]
fn phases_cannot_be_skipped() {
    let mut w = war(t0());
    let err = w
        .advance(WarStatus::Active, w.phase_deadlines.ended_at)
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_WAR_STATE");
}

#[test]
fn conclude_needs_ending_and_its_deadline() {
    let mut w = war(t0());
    assert_eq!(
        w.conclude(result(), w.phase_deadlines.ended_at)
            .unwrap_err()
            .code(),
        "INVALID_WAR_STATE"
    );
    let d = w.phase_deadlines;
    w.advance(WarStatus::Preparation, d.preparation_at).unwrap();
    w.advance(WarStatus::Active, d.active_at).unwrap();
    w.advance(WarStatus::Ending, d.ending_at).unwrap();
    assert_eq!(
        w.conclude(result(), d.ending_at).unwrap_err().code(),
        "PHASE_DEADLINE_NOT_REACHED"
    );
}

#[test]
fn surrender_ends_the_war_at_once_for_the_other_side() {
    let mut w = war(t0());
    let d = w.phase_deadlines;
    w.advance(WarStatus::Preparation, d.preparation_at).unwrap();
    w.advance(WarStatus::Active, d.active_at).unwrap();
    let side = w
        .surrender(&ClanId::new("def").unwrap(), (30, 40), d.active_at)
        .unwrap();
    assert_eq!(side, Side::Defender);
    assert_eq!(w.status, WarStatus::Ended);
    assert_eq!(w.winner_side, Some(WinnerSide::Attacker));
    assert_eq!(w.outcome, Some(Outcome::Surrender));
    assert_eq!((w.sides.attacker.score, w.sides.defender.score), (30, 40));
    // A timer firing afterwards changes nothing.
    assert_eq!(
        w.advance(WarStatus::Ending, d.ended_at).unwrap(),
        Advance::AlreadyDone
    );
}

#[test]
fn only_primary_clans_may_surrender_or_cancel() {
    let mut w = war(t0());
    let stranger = ClanId::new("ally").unwrap();
    assert_eq!(
        w.surrender(&stranger, (0, 0), t0()).unwrap_err().code(),
        "NOT_A_PARTICIPANT"
    );
    assert_eq!(
        w.request_cancel(&stranger, t0()).unwrap_err().code(),
        "NOT_A_PARTICIPANT"
    );
}

#[test]
fn cancel_needs_both_leaders_and_an_early_phase() {
    let mut w = war(t0());
    assert!(!w
        .request_cancel(&ClanId::new("att").unwrap(), t0())
        .unwrap());
    assert!(!w
        .request_cancel(&ClanId::new("att").unwrap(), t0())
        .unwrap());
    assert_eq!(w.status, WarStatus::Declared);
    assert!(w
        .request_cancel(&ClanId::new("def").unwrap(), t0())
        .unwrap());
    assert_eq!(w.status, WarStatus::Cancelled);
    assert_eq!(w.outcome, Some(Outcome::MutualCancel));

    let mut active = war(t0());
    let d = active.phase_deadlines;
    active
        .advance(WarStatus::Preparation, d.preparation_at)
        .unwrap();
    active.advance(WarStatus::Active, d.active_at).unwrap();
    assert_eq!(
        active
            .request_cancel(&ClanId::new("att").unwrap(), d.active_at)
            .unwrap_err()
            .code(),
        "INVALID_WAR_STATE"
    );
}

#[test]
fn phase_durations_outside_bounds_are_rejected() {
    let rules = Rules::default();
    assert!(PhaseDurations::from_rules(&rules).validate(&rules).is_ok());
    let err = seconds(1).validate(&rules).unwrap_err();
    assert_eq!(err.code(), "PHASE_DURATION_OUT_OF_RANGE");
    assert_eq!(err.class(), crate::ErrorClass::Malformed);
}

#[test]
fn the_scoring_window_is_active_and_grace_is_ending() {
    let w = war(t0());
    let d = w.phase_deadlines;
    assert!(!w.in_active_window(d.preparation_at));
    assert!(w.in_active_window(d.active_at));
    assert!(!w.in_active_window(d.ending_at));
}

mod allies {
    use super::*;
    use crate::clan::fixtures::clan;
    use crate::ids::AllianceId;

    fn allied(id: &str, alliance: &str) -> Clan {
        let mut c = clan(id, 12);
        c.alliance_id = Some(AllianceId::new(alliance).unwrap());
        c
    }

    #[test]
    fn an_ally_of_the_defender_joins_its_side() {
        let mut w = war(t0());
        let def = allied("def", "al");
        w.add_ally(
            &allied("friend", "al"),
            Side::Defender,
            &def,
            &Rules::default(),
        )
        .unwrap();
        assert_eq!(
            w.side_of(&ClanId::new("friend").unwrap()),
            Some(Side::Defender)
        );
    }

    #[test]
    fn a_clan_outside_the_alliance_cannot_join() {
        let mut w = war(t0());
        let err = w
            .add_ally(
                &allied("x", "other"),
                Side::Defender,
                &allied("def", "al"),
                &Rules::default(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "NOT_ALLIED");
        let err = w
            .add_ally(
                &clan("y", 12),
                Side::Defender,
                &clan("def", 12),
                &Rules::default(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "NOT_ALLIED");
    }

    #[test]
    fn a_clan_never_fights_on_both_sides() {
        let mut w = war(t0());
        let rules = Rules::default();
        let friend = allied("friend", "al");
        w.add_ally(&friend, Side::Defender, &allied("def", "al"), &rules)
            .unwrap();
        let err = w
            .add_ally(&friend, Side::Attacker, &allied("att", "al"), &rules)
            .unwrap_err();
        assert_eq!(err.code(), "ALREADY_IN_WAR");
    }

    #[test]
    fn each_side_takes_at_most_two_allies() {
        let mut w = war(t0());
        let rules = Rules::default();
        let def = allied("def", "al");
        for id in ["a1", "a2"] {
            w.add_ally(&allied(id, "al"), Side::Defender, &def, &rules)
                .unwrap();
        }
        let err = w
            .add_ally(&allied("a3", "al"), Side::Defender, &def, &rules)
            .unwrap_err();
        assert_eq!(err.code(), "ALLY_LIMIT_REACHED");
    }

    #[test]
    fn an_ally_at_its_war_limit_cannot_join() {
        let mut w = war(t0());
        let mut busy = allied("busy", "al");
        for i in 0..3 {
            busy.enter_war(&WarId::new(format!("w{i}")).unwrap());
        }
        let err = w
            .add_ally(
                &busy,
                Side::Defender,
                &allied("def", "al"),
                &Rules::default(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "CONCURRENT_WAR_LIMIT");
    }

    #[test]
    fn allies_cannot_join_once_the_war_is_active() {
        let mut w = war(t0());
        let d = w.phase_deadlines;
        w.advance(WarStatus::Preparation, d.preparation_at).unwrap();
        w.add_ally(
            &allied("f1", "al"),
            Side::Defender,
            &allied("def", "al"),
            &Rules::default(),
        )
        .unwrap();
        w.advance(WarStatus::Active, d.active_at).unwrap();
        let err = w
            .add_ally(
                &allied("f2", "al"),
                Side::Defender,
                &allied("def", "al"),
                &Rules::default(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_WAR_STATE");
    }
}

fn status_strategy() -> impl Strategy<Value = WarStatus> {
    prop_oneof![
        Just(WarStatus::Declared),
        Just(WarStatus::Preparation),
        Just(WarStatus::Active),
        Just(WarStatus::Ending),
        Just(WarStatus::Ended),
    ]
}

proptest! {
    /// Whatever timers fire, in whatever order and at whatever time, the war only ever moves
    /// forward and every recorded transition goes up.
    #[test]
    fn phases_only_move_forward(
        steps in proptest::collection::vec((status_strategy(), 0i64..400, any::<bool>()), 0..40)
    ) {
        let mut w = war(t0());
        let mut last = w.status;
        for (target, offset, surrender) in steps {
            let now = t0() + Duration::seconds(offset);
            if surrender {
                let _ = w.surrender(&ClanId::new("att").unwrap(), (0, 0), now);
            } else if target == WarStatus::Ended {
                let _ = w.conclude(result(), now);
            } else {
                let _ = w.advance(target, now);
            }
            prop_assert!(w.status >= last, "{:?} went back to {:?}", last, w.status);
            last = w.status;
        }
        for t in &w.transitions {
            prop_assert!(t.to > t.from);
        }
        for pair in w.transitions.windows(2) {
            prop_assert!(pair[1].from == pair[0].to);
        }
    }
}
