use super::fixtures::*;
use super::*;
use crate::war::fixtures::war;
use chrono::{DateTime, Utc};

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn clan(id: &str) -> ClanId {
    ClanId::new(id).unwrap()
}

/// The fixture war ("att" vs "def", contesting "t1") moved to `status`.
fn war_in(status: WarStatus) -> War {
    let mut w = war(t0());
    let d = w.phase_deadlines;
    for (target, at) in [
        (WarStatus::Preparation, d.preparation_at),
        (WarStatus::Active, d.active_at),
        (WarStatus::Ending, d.ending_at),
    ] {
        if w.status >= status {
            break;
        }
        w.advance(target, at).unwrap();
    }
    assert_eq!(w.status, status);
    w
}

fn contested(tier: u8, defense_level: u8, w: &War) -> Territory {
    let mut t = territory("t1", "def", tier);
    t.defense_level = defense_level;
    t.contest(&w.war_id).unwrap();
    t
}

#[test]
fn a_new_territory_starts_unfortified_uncontested_in_its_cell() {
    let t = Territory::new(
        TerritoryId::new("t1").unwrap(),
        input(None, -1.0, 2_500.0, 2),
        &Rules::default(),
    )
    .unwrap();
    assert_eq!((t.defense_level, t.contested_by.clone()), (1, None));
    assert_eq!(t.cell, CellId { cx: -1, cy: 2 });
    assert_eq!(t.version, 0);
}

#[test]
fn upsert_bodies_reject_unknown_fields_and_out_of_range_values() {
    let body = serde_json::json!({
        "name": "A", "region": "r", "x": 0.0, "y": 0.0, "tier": 1, "resource_yield": 1,
        "color": "red"
    });
    assert!(serde_json::from_value::<TerritoryInput>(body).is_err());
    let ok = input(None, 0.0, 0.0, 1);
    assert!(ok.validate().is_ok());
    let cases: Vec<(&str, TerritoryInput)> = vec![
        (
            "name",
            TerritoryInput {
                name: " ".into(),
                ..ok.clone()
            },
        ),
        (
            "name",
            TerritoryInput {
                name: "n".repeat(MAX_NAME_LEN + 1),
                ..ok.clone()
            },
        ),
        (
            "name",
            TerritoryInput {
                name: "a\nb".into(),
                ..ok.clone()
            },
        ),
        (
            "region",
            TerritoryInput {
                region: String::new(),
                ..ok.clone()
            },
        ),
        (
            "region",
            TerritoryInput {
                region: "r".repeat(MAX_REGION_LEN + 1),
                ..ok.clone()
            },
        ),
        (
            "x",
            TerritoryInput {
                x: f64::NAN,
                ..ok.clone()
            },
        ),
        (
            "y",
            TerritoryInput {
                y: f64::NEG_INFINITY,
                ..ok.clone()
            },
        ),
        (
            "tier",
            TerritoryInput {
                tier: 0,
                ..ok.clone()
            },
        ),
        (
            "tier",
            TerritoryInput {
                tier: 4,
                ..ok.clone()
            },
        ),
        (
            "resource_yield",
            TerritoryInput {
                resource_yield: MAX_RESOURCE_YIELD + 1,
                ..ok.clone()
            },
        ),
    ];
    for (field, bad) in cases {
        let err = bad.validate().unwrap_err();
        assert_eq!(
            (err.class(), err.details()["field"].as_str()),
            (crate::ErrorClass::Malformed, Some(field))
        );
        assert!(Territory::new(TerritoryId::new("t").unwrap(), bad, &Rules::default()).is_err());
    }
}

#[test]
fn applying_input_moves_the_cell_and_keeps_defense_and_contest() {
    let w = war(t0());
    let mut t = contested(1, 3, &w);
    t.apply_input(input(Some("def"), 4_200.0, 10.0, 3), &Rules::default())
        .unwrap();
    assert_eq!(t.cell, CellId { cx: 4, cy: 0 });
    assert_eq!((t.tier, t.defense_level), (3, 3));
    assert_eq!(t.contested_by, Some(w.war_id));
}

#[test]
fn the_owner_of_a_contested_territory_cannot_be_reassigned() {
    let w = war(t0());
    let mut t = contested(1, 1, &w);
    let before = t.clone();
    let err = t
        .apply_input(input(Some("other"), 0.0, 0.0, 1), &Rules::default())
        .unwrap_err();
    assert_eq!(
        (err.code(), err.class()),
        ("TERRITORY_UNDER_ATTACK", crate::ErrorClass::Conflict)
    );
    assert_eq!(t, before);
    let mut free = territory("t2", "def", 1);
    free.apply_input(input(Some("other"), 0.0, 0.0, 1), &Rules::default())
        .unwrap();
    assert_eq!(free.owner_clan_id, Some(clan("other")));
}

#[test]
fn capture_points_follow_the_spec_formula() {
    assert_eq!(capture_points(100, 1, 1), 100);
    assert_eq!(capture_points(100, 2, 3), 300);
    assert_eq!(capture_points(100, 3, 5), 600);
    assert_eq!(capture_points(10, 1, 2), 13); // 12.5 rounds half up
}

#[test]
fn an_attacker_captures_a_contested_territory_during_active() {
    let w = war_in(WarStatus::Active);
    let mut t = contested(3, 5, &w);
    let change = t
        .capture(&w, &clan("att"), in_active(&w), &Rules::default())
        .unwrap();
    assert_eq!(
        change,
        CaptureChange {
            territory_id: t.territory_id.clone(),
            from: Some(clan("def")),
            to: clan("att"),
            side: Side::Attacker,
            defense_level_before: 5,
            points: 600,
        }
    );
    assert_eq!(t.owner_clan_id, Some(clan("att")));
    assert_eq!(t.defense_level, 1);
    assert_eq!(t.contested_by, Some(w.war_id));
}

/// A time inside the war's ACTIVE phase.
fn in_active(w: &War) -> DateTime<Utc> {
    w.phase_deadlines.active_at
}

#[test]
fn capture_outside_active_is_an_invalid_war_state() {
    for status in [WarStatus::Declared, WarStatus::Preparation] {
        let w = war_in(status);
        let mut t = contested(1, 1, &w);
        let err = t
            .capture(&w, &clan("att"), in_active(&w), &Rules::default())
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_WAR_STATE");
        assert_eq!(t.owner_clan_id, Some(clan("def")));
    }
    let w = war_in(WarStatus::Ending);
    let mut t = contested(1, 1, &w);
    let after_active = w.phase_deadlines.ending_at;
    let err = t
        .capture(&w, &clan("att"), after_active, &Rules::default())
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_WAR_STATE");
    assert_eq!(t.owner_clan_id, Some(clan("def")));
}

#[test]
fn a_capture_reported_late_during_ending_counts_if_it_happened_during_active() {
    let w = war_in(WarStatus::Ending);
    let mut t = contested(1, 1, &w);
    let change = t
        .capture(&w, &clan("att"), in_active(&w), &Rules::default())
        .unwrap();
    assert_eq!(change.to, clan("att"));
    assert_eq!(t.owner_clan_id, Some(clan("att")));
}

#[test]
fn capture_rejections_change_nothing() {
    let w = war_in(WarStatus::Active);
    let rules = Rules::default();
    let mut elsewhere = territory("t1", "def", 1);
    elsewhere
        .contest(&WarId::new("other-war").unwrap())
        .unwrap();
    let mut uncontested = territory("t1", "def", 1);
    let mut target = contested(1, 2, &w);
    let cases = [
        (&mut elsewhere, "att", "TERRITORY_NOT_IN_WAR"),
        (&mut uncontested, "att", "TERRITORY_NOT_IN_WAR"),
        (&mut target, "stranger", "NOT_A_PARTICIPANT"),
    ];
    for (t, by, code) in cases {
        let before = t.clone();
        assert_eq!(
            t.capture(&w, &clan(by), in_active(&w), &rules)
                .unwrap_err()
                .code(),
            code
        );
        assert_eq!(*t, before);
    }
    let before = target.clone();
    let err = target
        .capture(&w, &clan("def"), in_active(&w), &rules)
        .unwrap_err();
    assert_eq!(
        (err.code(), err.class()),
        ("ALREADY_OWNER", crate::ErrorClass::Conflict)
    );
    assert_eq!(target, before);
}

#[test]
fn a_clan_cannot_capture_from_its_own_side() {
    let mut w = war_in(WarStatus::Active);
    w.sides.attacker.clan_ids.push(clan("ally"));
    let mut t = contested(1, 1, &w);
    t.capture(&w, &clan("att"), in_active(&w), &Rules::default())
        .unwrap();
    let err = t
        .capture(&w, &clan("ally"), in_active(&w), &Rules::default())
        .unwrap_err();
    assert_eq!(err.code(), "ALREADY_OWNER");
    assert_eq!(t.owner_clan_id, Some(clan("att")));
    // The other side may take it back.
    let back = t
        .capture(&w, &clan("def"), in_active(&w), &Rules::default())
        .unwrap();
    assert_eq!((back.side, back.from), (Side::Defender, Some(clan("att"))));
}

#[test]
fn contest_refuses_a_territory_held_by_another_war_and_repeats_for_the_same_one() {
    let w = war(t0());
    let mut t = contested(1, 1, &w);
    assert!(t.contest(&w.war_id).is_ok());
    let err = t.contest(&WarId::new("w2").unwrap()).unwrap_err();
    assert_eq!(
        (err.code(), err.class()),
        ("TERRITORY_ALREADY_CONTESTED", crate::ErrorClass::Conflict)
    );
    assert_eq!(t.contested_by, Some(w.war_id));
}

#[test]
fn release_clears_only_the_given_wars_contest_and_keeps_the_owner() {
    let w = war(t0());
    let mut t = contested(1, 1, &w);
    assert!(!t.release(&WarId::new("w2").unwrap()));
    assert_eq!(t.contested_by, Some(w.war_id.clone()));
    assert!(t.release(&w.war_id));
    assert_eq!(
        (t.contested_by.clone(), t.owner_clan_id.clone()),
        (None, Some(clan("def")))
    );
    assert!(!t.release(&w.war_id));
}

#[test]
fn the_owner_fortifies_up_to_the_maximum_level() {
    let rules = Rules::default();
    let mut t = territory("t1", "def", 1);
    for level in 2..=5 {
        assert_eq!(t.fortify(&clan("def"), None, &rules).unwrap(), level);
    }
    let err = t.fortify(&clan("def"), None, &rules).unwrap_err();
    assert_eq!(
        (err.code(), err.class()),
        ("MAX_DEFENSE_LEVEL", crate::ErrorClass::RuleViolated)
    );
    assert_eq!(t.defense_level, 5);
    let err = t.fortify(&clan("att"), None, &rules).unwrap_err();
    assert_eq!(err.code(), "NOT_TERRITORY_OWNER");
}

#[test]
fn fortify_is_refused_only_while_the_contesting_war_is_active_or_ending() {
    let rules = Rules::default();
    for (status, allowed) in [
        (WarStatus::Declared, true),
        (WarStatus::Preparation, true),
        (WarStatus::Active, false),
        (WarStatus::Ending, false),
    ] {
        let w = war_in(status);
        let mut t = contested(1, 1, &w);
        let result = t.fortify(&clan("def"), Some(&w), &rules);
        assert_eq!(result.is_ok(), allowed, "{status:?}");
        if !allowed {
            assert_eq!(result.unwrap_err().code(), "TERRITORY_UNDER_ATTACK");
            assert_eq!(t.defense_level, 1);
        }
    }
}
