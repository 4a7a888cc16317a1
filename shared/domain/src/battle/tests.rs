use super::fixtures::*;
use super::*;
use crate::scoring::fixtures::active_war;
use crate::war::{OpenBattle, WarStatus};
use chrono::Duration;
use serde_json::json;

fn rules() -> Rules {
    Rules::default()
}

fn id(n: usize) -> BattleId {
    BattleId::new(format!("b{n}")).unwrap()
}

fn now_in(war: &War) -> DateTime<Utc> {
    war.phase_deadlines.active_at + Duration::minutes(10)
}

fn code(result: DomainResult<Battle>) -> &'static str {
    result.unwrap_err().code()
}

#[test]
fn a_battle_on_a_territory_of_the_war_opens_for_the_max_duration() {
    let war = active_war();
    let now = now_in(&war);
    let battle = Battle::create(&war, id(1), on_territory("t1"), now, &rules()).unwrap();
    assert_eq!(battle.status, BattleStatus::Open);
    assert_eq!(battle.expires_at, now + Duration::minutes(30));
    assert_eq!(battle.war_id, war.war_id);
    assert_eq!(battle.max_players, 40);
}

#[test]
fn a_battle_at_a_free_position_opens_too() {
    let war = active_war();
    let battle =
        Battle::create(&war, id(1), at_position(10.0, -5.0), now_in(&war), &rules()).unwrap();
    assert_eq!(battle.position, Some(Position { x: 10.0, y: -5.0 }));
    assert_eq!(battle.territory_id, None);
}

#[test]
fn exactly_one_of_territory_and_position_is_required() {
    let war = active_war();
    let now = now_in(&war);
    let mut both = on_territory("t1");
    both.position = Some(Position { x: 0.0, y: 0.0 });
    let mut neither = on_territory("t1");
    neither.territory_id = None;
    for input in [both, neither] {
        let err = Battle::create(&war, id(1), input, now, &rules()).unwrap_err();
        assert_eq!(
            (err.code(), err.class()),
            ("INVALID_REQUEST", crate::ErrorClass::Malformed)
        );
    }
}

#[test]
fn a_position_must_be_finite_and_on_the_map() {
    let war = active_war();
    let err = Battle::create(
        &war,
        id(1),
        at_position(f64::NAN, 0.0),
        now_in(&war),
        &rules(),
    )
    .unwrap_err();
    assert_eq!(err.class(), crate::ErrorClass::Malformed);
}

#[test]
fn a_territory_outside_the_war_is_refused() {
    let war = active_war();
    let result = Battle::create(&war, id(1), on_territory("t9"), now_in(&war), &rules());
    assert_eq!(code(result), "TERRITORY_NOT_IN_WAR");
}

#[test]
fn the_player_cap_must_be_between_two_and_the_configured_maximum() {
    let war = active_war();
    let now = now_in(&war);
    for (cap, ok) in [(1, false), (2, true), (200, true), (201, false)] {
        let mut input = on_territory("t1");
        input.max_players = cap;
        let result = Battle::create(&war, id(1), input, now, &rules());
        assert_eq!(result.is_ok(), ok, "cap {cap}");
        if let Err(err) = result {
            assert_eq!(err.details()["field"], "max_players");
        }
    }
}

#[test]
fn battles_open_only_in_an_active_war() {
    let mut war = active_war();
    let now = now_in(&war);
    for status in [WarStatus::Preparation, WarStatus::Ending, WarStatus::Ended] {
        war.status = status;
        let result = Battle::create(&war, id(1), on_territory("t1"), now, &rules());
        assert_eq!(code(result), "INVALID_WAR_STATE");
    }
}

#[test]
fn at_most_the_configured_number_of_live_battles_are_open() {
    let mut war = active_war();
    let now = now_in(&war);
    let rules = Rules {
        max_concurrent_battles: 2,
        ..Rules::default()
    };
    for n in 0..2 {
        war.open_battles.push(OpenBattle {
            battle_id: id(n),
            expires_at: now + Duration::minutes(1),
        });
    }
    let err = Battle::create(&war, id(9), on_territory("t1"), now, &rules).unwrap_err();
    assert_eq!(
        (err.code(), err.class()),
        ("BATTLE_LIMIT_REACHED", crate::ErrorClass::LimitReached)
    );
    // Expired battles no longer count.
    war.open_battles[0].expires_at = now;
    assert!(Battle::create(&war, id(9), on_territory("t1"), now, &rules).is_ok());
}

#[test]
fn a_battle_is_in_progress_after_the_first_kill_and_expires_unresolved() {
    let war = active_war();
    let now = now_in(&war);
    let battle = Battle::create(&war, id(1), on_territory("t1"), now, &rules()).unwrap();
    let one_kill = SideKills {
        attacker: 0,
        defender: 1,
    };
    assert_eq!(
        battle.state_at(now, SideKills::default()),
        BattleStatus::Open
    );
    assert_eq!(battle.state_at(now, one_kill), BattleStatus::InProgress);
    assert_eq!(
        battle.state_at(battle.expires_at, one_kill),
        BattleStatus::Expired
    );
}

#[test]
fn resolving_records_the_winner_and_sticks() {
    let war = active_war();
    let now = now_in(&war);
    let mut battle = Battle::create(&war, id(1), on_territory("t1"), now, &rules()).unwrap();
    battle.resolve(Side::Defender, now).unwrap();
    assert_eq!(battle.winner_side, Some(Side::Defender));
    assert_eq!(battle.resolved_at, Some(now));
    let later = battle.expires_at + Duration::hours(1);
    assert_eq!(
        battle.state_at(later, SideKills::default()),
        BattleStatus::Resolved
    );
    let err = battle.resolve(Side::Attacker, now).unwrap_err();
    assert_eq!(err.code(), "BATTLE_NOT_OPEN");
    assert!(err.to_string().contains("RESOLVED"));
}

#[test]
fn an_expired_battle_cannot_be_resolved() {
    let war = active_war();
    let now = now_in(&war);
    let mut battle = Battle::create(&war, id(1), on_territory("t1"), now, &rules()).unwrap();
    let err = battle
        .resolve(Side::Attacker, battle.expires_at)
        .unwrap_err();
    assert_eq!(err.code(), "BATTLE_NOT_OPEN");
    assert!(err.to_string().contains("EXPIRED"));
    assert_eq!(battle.status, BattleStatus::Open);
}

#[test]
fn battle_bodies_refuse_unknown_fields_and_sides() {
    let ok: BattleInput =
        serde_json::from_value(json!({"territory_id": "t1", "max_players": 10})).unwrap();
    assert_eq!(ok.position, None);
    assert!(serde_json::from_value::<BattleInput>(
        json!({"territory_id": "t1", "max_players": 10, "mode": "ctf"})
    )
    .is_err());
    assert!(serde_json::from_value::<BattleInput>(json!({"max_players": -1})).is_err());
    let resolve: ResolveInput = serde_json::from_value(json!({"winner_side": "attacker"})).unwrap();
    assert_eq!(resolve.winner_side, Side::Attacker);
    assert!(serde_json::from_value::<ResolveInput>(json!({"winner_side": "draw"})).is_err());
}
