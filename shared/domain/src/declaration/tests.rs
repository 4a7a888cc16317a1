use super::*;
use crate::clan::fixtures::clan;
use crate::ids::{AllianceId, WarId};
use crate::spatial::CellId;

fn now() -> DateTime<Utc> {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

fn territory(id: &str, owner: &str) -> Territory {
    Territory {
        territory_id: TerritoryId::new(id).unwrap(),
        name: id.into(),
        region: "north".into(),
        x: 0.0,
        y: 0.0,
        tier: 1,
        resource_yield: 10,
        owner_clan_id: Some(ClanId::new(owner).unwrap()),
        defense_level: 1,
        contested_by: None,
        cell: CellId { cx: 0, cy: 0 },
        version: 1,
    }
}

struct Case {
    attacker: Clan,
    defender: Clan,
    pair: Option<PairLock>,
    territories: Vec<Territory>,
    cmd: DeclareCommand,
    rules: Rules,
}

impl Case {
    fn new() -> Self {
        Self {
            attacker: clan("att", 12),
            defender: clan("def", 12),
            pair: None,
            territories: vec![territory("t1", "def")],
            cmd: DeclareCommand {
                request: DeclareRequest {
                    attacker_clan_id: ClanId::new("att").unwrap(),
                    defender_clan_id: ClanId::new("def").unwrap(),
                    territory_ids: vec![TerritoryId::new("t1").unwrap()],
                    phase_durations: None,
                },
                actor: PlayerId::new("att-leader").unwrap(),
                idempotency_key: None,
            },
            rules: Rules::default(),
        }
    }

    fn run(&self) -> DomainResult<()> {
        validate(
            &self.cmd,
            &DeclarationContext {
                attacker: &self.attacker,
                defender: &self.defender,
                pair: self.pair.as_ref(),
                territories: &self.territories,
                now: now(),
                rules: &self.rules,
            },
        )
    }

    fn code(&self) -> &'static str {
        self.run().expect_err("expected a rejection").code()
    }
}

#[test]
fn a_valid_declaration_passes() {
    Case::new().run().unwrap();
}

#[test]
fn rule_1_same_clan_is_refused() {
    let mut c = Case::new();
    c.cmd.request.defender_clan_id = c.cmd.request.attacker_clan_id.clone();
    assert_eq!(
        check_distinct_clans(&c.cmd.request).unwrap_err().code(),
        "SAME_CLAN"
    );
}

#[test]
fn rule_1_inactive_clan_is_refused() {
    let mut c = Case::new();
    c.defender.active = false;
    assert_eq!(c.code(), "CLAN_INACTIVE");
}

#[test]
fn rule_2_a_plain_member_cannot_declare() {
    let mut c = Case::new();
    c.cmd.actor = PlayerId::new("att-m0").unwrap();
    assert_eq!(c.code(), "FORBIDDEN_ROLE");
    c.cmd.actor = PlayerId::new("att-officer").unwrap();
    c.run().unwrap();
    c.cmd.actor = PlayerId::new("def-leader").unwrap();
    assert_eq!(c.code(), "FORBIDDEN_ROLE");
}

#[test]
fn rule_3_small_clans_are_refused() {
    let mut c = Case::new();
    c.defender = clan("def", 9);
    assert_eq!(c.code(), "CLAN_TOO_SMALL");
}

#[test]
fn rule_4_a_running_war_between_the_pair_is_refused() {
    let mut c = Case::new();
    let mut pair = PairLock::new(&c.attacker.clan_id, &c.defender.clan_id);
    pair.active_war_id = Some(WarId::new("w0").unwrap());
    c.pair = Some(pair);
    assert_eq!(c.code(), "WAR_ALREADY_EXISTS");
}

#[test]
fn rule_5_concurrent_war_limit_counts_joined_wars() {
    let mut c = Case::new();
    for i in 0..3 {
        c.defender.enter_war(&WarId::new(format!("w{i}")).unwrap());
    }
    assert_eq!(c.code(), "CONCURRENT_WAR_LIMIT");
}

#[test]
fn rule_6_pair_cooldown_lasts_72_hours() {
    let mut c = Case::new();
    let mut pair = PairLock::new(&c.attacker.clan_id, &c.defender.clan_id);
    pair.last_ended_at = Some(now() - Duration::hours(71));
    c.pair = Some(pair.clone());
    assert_eq!(c.code(), "PAIR_COOLDOWN_ACTIVE");
    pair.last_ended_at = Some(now() - Duration::hours(72));
    c.pair = Some(pair);
    c.run().unwrap();
}

#[test]
fn rule_7_peace_shield_protects_the_defender_for_24_hours() {
    let mut c = Case::new();
    c.defender.last_war_ended_at = Some(now() - Duration::hours(23));
    assert_eq!(c.code(), "PEACE_SHIELD_ACTIVE");
    c.defender.last_war_ended_at = Some(now() - Duration::hours(24));
    c.run().unwrap();
}

#[test]
fn rule_8_a_much_stronger_attacker_is_refused_but_a_stronger_defender_is_fine() {
    let mut c = Case::new();
    c.attacker.rating = 1_501;
    c.defender.rating = 1_000;
    assert_eq!(c.code(), "RATING_GAP_TOO_LARGE");
    c.attacker.rating = 1_500;
    c.run().unwrap();
    c.attacker.rating = 1_000;
    c.defender.rating = 2_000;
    c.run().unwrap();
}

#[test]
fn rule_9_target_count_must_be_one_to_five_distinct() {
    let rules = Rules::default();
    let mut c = Case::new();
    c.cmd.request.territory_ids.clear();
    assert_eq!(
        check_target_count(&c.cmd.request, &rules)
            .unwrap_err()
            .code(),
        "INVALID_TARGET_TERRITORIES"
    );
    c.cmd.request.territory_ids = (0..6)
        .map(|i| TerritoryId::new(format!("t{i}")).unwrap())
        .collect();
    assert!(check_target_count(&c.cmd.request, &rules).is_err());
    let t = TerritoryId::new("t1").unwrap();
    c.cmd.request.territory_ids = vec![t.clone(), t];
    assert!(check_target_count(&c.cmd.request, &rules).is_err());
}

#[test]
fn rule_9_targets_must_belong_to_the_defender() {
    let mut c = Case::new();
    c.territories = vec![territory("t1", "someone-else")];
    assert_eq!(c.code(), "TERRITORY_NOT_OWNED_BY_DEFENDER");
}

#[test]
fn rule_9_targets_must_not_be_contested() {
    let mut c = Case::new();
    c.territories[0].contested_by = Some(WarId::new("other").unwrap());
    assert_eq!(c.code(), "TERRITORY_ALREADY_CONTESTED");
}

#[test]
fn rule_10_allies_cannot_declare_on_each_other() {
    let mut c = Case::new();
    let alliance = AllianceId::new("al").unwrap();
    c.attacker.alliance_id = Some(alliance.clone());
    c.defender.alliance_id = Some(alliance);
    assert_eq!(c.code(), "CANNOT_DECLARE_ON_ALLY");
}

#[test]
fn rule_11_five_declarations_a_day_at_most() {
    let mut c = Case::new();
    c.attacker.recent_declarations = (0..5).map(|h| now() - Duration::hours(h)).collect();
    assert_eq!(c.code(), "DECLARATION_RATE_LIMITED");
    c.attacker.recent_declarations[0] = now() - Duration::hours(25);
    c.run().unwrap();
}

#[test]
fn request_shape_rejects_unknown_fields_and_bad_durations() {
    let bad = serde_json::json!({
        "attacker_clan_id": "a", "defender_clan_id": "b", "territory_ids": ["t"], "extra": 1
    });
    assert!(serde_json::from_value::<DeclareRequest>(bad).is_err());
    let mut c = Case::new();
    c.cmd.request.phase_durations = Some(PhaseDurations {
        declared_s: 0,
        preparation_s: 60,
        active_s: 60,
        ending_s: 60,
    });
    assert_eq!(
        c.cmd.validate_shape(&c.rules).unwrap_err().code(),
        "PHASE_DURATION_OUT_OF_RANGE"
    );
    c.cmd.request.phase_durations = None;
    c.cmd.idempotency_key = Some(String::new());
    assert_eq!(
        c.cmd.validate_shape(&c.rules).unwrap_err().code(),
        "INVALID_REQUEST"
    );
}

#[test]
fn fingerprint_is_stable_and_tells_requests_apart() {
    let c = Case::new();
    let mut other = c.cmd.clone();
    assert_eq!(c.cmd.fingerprint(), other.fingerprint());
    other
        .request
        .territory_ids
        .push(TerritoryId::new("t2").unwrap());
    assert_ne!(c.cmd.fingerprint(), other.fingerprint());
}
