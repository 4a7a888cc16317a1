use super::*;
use crate::config::Rules;
use crate::scoring::{rescore, Rescored};
use crate::war::{Outcome, War, WinnerSide};

fn entry(
    id: &str,
    kind: EffectKind,
    player: Option<&str>,
    clan: &str,
    side: Side,
    points: i64,
) -> LedgerEntry {
    LedgerEntry {
        event_id: id.into(),
        kind,
        occurred_at: "2026-06-01T12:00:00Z".parse().unwrap(),
        player_id: player.map(|p| PlayerId::new(p).unwrap()),
        clan_id: ClanId::new(clan).unwrap(),
        side,
        points,
        retained_until: "2026-09-01T12:00:00Z".parse().unwrap(),
        voided_by: None,
    }
}

#[test]
fn recompute_sums_players_clans_and_sides_and_counts_an_id_once() {
    let ledger = [
        entry(
            "k1",
            EffectKind::Kill,
            Some("a1"),
            "att",
            Side::Attacker,
            10,
        ),
        entry(
            "k1",
            EffectKind::Kill,
            Some("a1"),
            "att",
            Side::Attacker,
            10,
        ),
        entry(
            "s1",
            EffectKind::Assist,
            Some("a2"),
            "ally",
            Side::Attacker,
            3,
        ),
        entry("c1", EffectKind::Capture, None, "def", Side::Defender, 100),
        entry("hold#att", EffectKind::Hold, None, "att", Side::Attacker, 5),
    ];
    let totals = recompute(&ledger);
    assert_eq!(totals.attacker, 18);
    assert_eq!(totals.defender, 100);
    assert_eq!(totals.clans[&ClanId::new("att").unwrap()], 15);
    assert_eq!(totals.clans[&ClanId::new("ally").unwrap()], 3);
    assert_eq!(
        totals.players[&PlayerId::new("a1").unwrap()],
        (ClanId::new("att").unwrap(), 10)
    );
    assert_eq!(totals.players.len(), 2);
}

#[test]
fn a_filter_keeps_the_entries_of_that_player_and_clan() {
    let e = entry(
        "k1",
        EffectKind::Kill,
        Some("a1"),
        "att",
        Side::Attacker,
        10,
    );
    let by = |p: Option<&str>, c: Option<&str>| LedgerFilter {
        player_id: p.map(|p| PlayerId::new(p).unwrap()),
        clan_id: c.map(|c| ClanId::new(c).unwrap()),
    };
    assert!(e.matches(&by(None, None)));
    assert!(e.matches(&by(Some("a1"), Some("att"))));
    assert!(!e.matches(&by(Some("a2"), None)));
    assert!(!e.matches(&by(None, Some("def"))));
}

#[test]
fn effect_kinds_round_trip_through_their_names() {
    for kind in [
        EffectKind::Kill,
        EffectKind::Assist,
        EffectKind::Capture,
        EffectKind::BattleBonus,
        EffectKind::Hold,
    ] {
        assert_eq!(EffectKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(EffectKind::parse("nope"), None);
}

// ---- rescoring -----------------------------------------------------------------------------

fn war() -> War {
    crate::scoring::fixtures::active_war()
}

/// att (attacker) 30 from a cheater and 10 from an honest player; def (defender) 25.
fn played() -> Vec<LedgerEntry> {
    vec![
        entry(
            "k1",
            EffectKind::Kill,
            Some("cheat"),
            "att",
            Side::Attacker,
            20,
        ),
        entry(
            "k2",
            EffectKind::Kill,
            Some("cheat"),
            "att",
            Side::Attacker,
            10,
        ),
        entry(
            "k3",
            EffectKind::Kill,
            Some("honest"),
            "att",
            Side::Attacker,
            10,
        ),
        entry(
            "k4",
            EffectKind::Kill,
            Some("d1"),
            "def",
            Side::Defender,
            15,
        ),
        entry("c1", EffectKind::Capture, None, "def", Side::Defender, 10),
    ]
}

fn ratings() -> BTreeMap<ClanId, i32> {
    ["att", "att-ally", "def"]
        .into_iter()
        .map(|c| (ClanId::new(c).unwrap(), 1000))
        .collect()
}

fn cheater() -> Void {
    Void {
        player_id: Some(PlayerId::new("cheat").unwrap()),
        ..Void::default()
    }
}

fn rating_of(r: &Rescored, clan: &str) -> (i32, i32) {
    let (_, old, new) = r
        .ratings
        .iter()
        .find(|(c, _, _)| c.as_str() == clan)
        .unwrap();
    (*old, *new)
}

#[test]
fn voiding_a_cheater_flips_the_winner_and_the_rating_change() {
    let rules = Rules::default();
    let before = rescore(&war(), &played(), &[], (0, 2), &ratings(), &rules);
    assert_eq!((before.totals.attacker, before.totals.defender), (40, 25));
    assert_eq!(before.winner, WinnerSide::Attacker);
    assert_eq!(rating_of(&before, "att"), (1000, 1016));

    let after = rescore(&war(), &played(), &[cheater()], (0, 2), &ratings(), &rules);
    assert_eq!((after.totals.attacker, after.totals.defender), (10, 25));
    assert_eq!(
        (after.winner, after.outcome),
        (WinnerSide::Defender, Outcome::Score)
    );
    assert_eq!(rating_of(&after, "att"), (1000, 984));
    assert_eq!(rating_of(&after, "def"), (1000, 1016));
    assert!(!after
        .totals
        .players
        .contains_key(&PlayerId::new("cheat").unwrap()));
    assert_eq!(
        after.totals.players[&PlayerId::new("honest").unwrap()].1,
        10
    );
}

#[test]
fn a_void_that_ties_the_scores_falls_back_to_territories_then_to_a_draw() {
    let rules = Rules::default();
    let tie = Void {
        event_ids: vec!["k1".into(), "k3".into(), "k4".into()],
        ..Void::default()
    };
    // att 10 (k2) vs def 10 (c1).
    let by_land = rescore(
        &war(),
        &played(),
        std::slice::from_ref(&tie),
        (1, 0),
        &ratings(),
        &rules,
    );
    assert_eq!((by_land.totals.attacker, by_land.totals.defender), (10, 10));
    assert_eq!(
        (by_land.winner, by_land.outcome),
        (WinnerSide::Attacker, Outcome::Territories)
    );
    let draw = rescore(&war(), &played(), &[tie], (1, 1), &ratings(), &rules);
    assert_eq!(
        (draw.winner, draw.outcome),
        (WinnerSide::Draw, Outcome::Draw)
    );
    assert_eq!(
        rating_of(&draw, "att"),
        (1000, 1000),
        "equal ratings: a draw moves nothing"
    );
}

#[test]
fn rescoring_is_deterministic_and_voids_compose() {
    let rules = Rules::default();
    let mut shuffled = played();
    shuffled.reverse();
    let clan_void = Void {
        clan_id: Some(ClanId::new("def").unwrap()),
        ..Void::default()
    };
    let a = rescore(
        &war(),
        &played(),
        &[cheater(), clan_void.clone()],
        (0, 0),
        &ratings(),
        &rules,
    );
    let b = rescore(
        &war(),
        &shuffled,
        &[clan_void, cheater()],
        (0, 0),
        &ratings(),
        &rules,
    );
    assert_eq!(a, b);
    assert_eq!((a.totals.attacker, a.totals.defender), (10, 0));
    // Voiding the same player twice is voiding it once.
    let twice = rescore(
        &war(),
        &played(),
        &[cheater(), cheater()],
        (0, 2),
        &ratings(),
        &rules,
    );
    let once = rescore(&war(), &played(), &[cheater()], (0, 2), &ratings(), &rules);
    assert_eq!(twice, once);
}
