//! Territories (SPEC §4): ownership, contest/release, capture and fortify rules.
//! Pure functions over the aggregate; `services::territories` loads, checks and commits.

use crate::config::Rules;
use crate::error::validate_label;
use crate::error::{DomainError, DomainResult};
use crate::ids::{ClanId, TerritoryId, WarId};
pub use crate::spatial::Position;
use crate::spatial::{cell_of, distance, validate_coordinate, CellId};
use crate::war::{Side, War, WarStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest territory name, in characters.
pub const MAX_NAME_LEN: usize = 100;
/// Longest region name, in characters.
pub const MAX_REGION_LEN: usize = 64;
/// Highest tier (tiers are 1..=3).
pub const MAX_TIER: u8 = 3;
/// Highest resource yield per hour accepted from the world service.
pub const MAX_RESOURCE_YIELD: u32 = 1_000_000;

/// A territory on the world map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Territory {
    pub territory_id: TerritoryId,
    pub name: String,
    pub region: String,
    pub x: f64,
    pub y: f64,
    /// 1..=3
    pub tier: u8,
    /// Resources per hour for the owner.
    pub resource_yield: u32,
    pub owner_clan_id: Option<ClanId>,
    /// 1..=max_defense_level
    pub defense_level: u8,
    pub contested_by: Option<WarId>,
    /// Grid cell of the spatial index, derived from the position.
    pub cell: CellId,
    pub version: u64,
}

/// The body of `PUT /territories/{territory_id}`: what the world service owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerritoryInput {
    pub name: String,
    pub region: String,
    pub x: f64,
    pub y: f64,
    pub tier: u8,
    pub resource_yield: u32,
    #[serde(default)]
    pub owner_clan_id: Option<ClanId>,
}

impl TerritoryInput {
    /// Every field in range; each failure names its field (400).
    pub fn validate(&self) -> DomainResult<()> {
        validate_label("name", &self.name, MAX_NAME_LEN)?;
        validate_label("region", &self.region, MAX_REGION_LEN)?;
        validate_coordinate("x", self.x)?;
        validate_coordinate("y", self.y)?;
        if !(1..=MAX_TIER).contains(&self.tier) {
            return Err(DomainError::invalid(
                "tier",
                format!("must be between 1 and {MAX_TIER}"),
            ));
        }
        if self.resource_yield > MAX_RESOURCE_YIELD {
            return Err(DomainError::invalid(
                "resource_yield",
                format!("must be at most {MAX_RESOURCE_YIELD}"),
            ));
        }
        Ok(())
    }
}

/// What a capture changed, for the war's capture log, the score and the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureChange {
    pub territory_id: TerritoryId,
    pub from: Option<ClanId>,
    pub to: ClanId,
    pub side: Side,
    pub defense_level_before: u8,
    pub points: i64,
}

/// `capture_base_points × tier × (1 + 0.25 × (defense_level − 1))`, in integers:
/// `base × tier × (defense_level + 3) / 4`, rounded half up (exact for the default base 100).
pub fn capture_points(base_points: i64, tier: u8, defense_level: u8) -> i64 {
    let quarters = base_points * i64::from(tier) * (i64::from(defense_level) + 3);
    (quarters + 2).div_euclid(4)
}

impl Territory {
    /// A territory first put by the world service: defense level 1, not contested.
    pub fn new(
        territory_id: TerritoryId,
        input: TerritoryInput,
        rules: &Rules,
    ) -> DomainResult<Self> {
        input.validate()?;
        Ok(Self {
            territory_id,
            cell: cell_of(input.x, input.y, rules.cell_size_m),
            name: input.name,
            region: input.region,
            x: input.x,
            y: input.y,
            tier: input.tier,
            resource_yield: input.resource_yield,
            owner_clan_id: input.owner_clan_id,
            defense_level: 1,
            contested_by: None,
            version: 0,
        })
    }

    /// Replaces the world-service fields. Defense level and contest are this service's state
    /// and stay. Reassigning the owner of a contested territory would pull it out from under
    /// its war, so that is refused (any phase: the declaration checked the owner).
    pub fn apply_input(&mut self, input: TerritoryInput, rules: &Rules) -> DomainResult<()> {
        input.validate()?;
        if input.owner_clan_id != self.owner_clan_id && self.contested_by.is_some() {
            return Err(DomainError::TerritoryUnderAttack(self.territory_id.clone()));
        }
        self.cell = cell_of(input.x, input.y, rules.cell_size_m);
        self.name = input.name;
        self.region = input.region;
        self.x = input.x;
        self.y = input.y;
        self.tier = input.tier;
        self.resource_yield = input.resource_yield;
        self.owner_clan_id = input.owner_clan_id;
        Ok(())
    }

    /// Whether applying `input` would change nothing (a retried PUT then writes nothing).
    pub fn matches_input(&self, input: &TerritoryInput, rules: &Rules) -> bool {
        self.cell == cell_of(input.x, input.y, rules.cell_size_m)
            && self.name == input.name
            && self.region == input.region
            && self.x == input.x
            && self.y == input.y
            && self.tier == input.tier
            && self.resource_yield == input.resource_yield
            && self.owner_clan_id == input.owner_clan_id
    }

    pub fn position(&self) -> Position {
        Position {
            x: self.x,
            y: self.y,
        }
    }

    /// Marks the territory as a target of `war_id` (war declaration). Contesting again for the
    /// same war is a no-op so a retried declaration step succeeds; another war is refused.
    pub fn contest(&mut self, war_id: &WarId) -> DomainResult<()> {
        match &self.contested_by {
            Some(current) if current != war_id => Err(DomainError::TerritoryAlreadyContested {
                territory_id: self.territory_id.clone(),
                war_id: current.clone(),
            }),
            _ => {
                self.contested_by = Some(war_id.clone());
                Ok(())
            }
        }
    }

    /// Ends the contest of `war_id` (war ended or cancelled); ownership stays. Returns whether
    /// anything changed: a territory contested by another war, or by none, is left alone.
    pub fn release(&mut self, war_id: &WarId) -> bool {
        if self.contested_by.as_ref() == Some(war_id) {
            self.contested_by = None;
            true
        } else {
            false
        }
    }

    /// Capture by `clan` in `war` at `at`: only while ACTIVE (or reported late during ENDING,
    /// [`War::require_scoring_at`]), only a territory this war contests, only
    /// by a clan on a side of it, never by its owner — nor by a clan on the owner's side, which
    /// would let allies pass a territory back and forth for capture points (refused as
    /// `AlreadyOwner` naming the owner). Ownership moves and defense resets to 1.
    pub fn capture(
        &mut self,
        war: &War,
        clan: &ClanId,
        at: DateTime<Utc>,
        rules: &Rules,
    ) -> DomainResult<CaptureChange> {
        war.require_scoring_at(at)?;
        if self.contested_by.as_ref() != Some(&war.war_id) {
            return Err(DomainError::TerritoryNotInWar {
                territory_id: self.territory_id.clone(),
                war_id: war.war_id.clone(),
            });
        }
        let side = war
            .side_of(clan)
            .ok_or_else(|| DomainError::NotAParticipant {
                clan_id: clan.clone(),
                war_id: war.war_id.clone(),
            })?;
        if let Some(owner) = &self.owner_clan_id {
            if owner == clan || war.side_of(owner) == Some(side) {
                return Err(DomainError::AlreadyOwner(owner.clone()));
            }
        }
        let change = CaptureChange {
            territory_id: self.territory_id.clone(),
            from: self.owner_clan_id.replace(clan.clone()),
            to: clan.clone(),
            side,
            defense_level_before: self.defense_level,
            points: capture_points(rules.capture_base_points, self.tier, self.defense_level),
        };
        self.defense_level = 1;
        Ok(change)
    }

    /// Fortify by the owner: `defense_level + 1` up to `max_defense_level`, never while the war
    /// contesting it is ACTIVE or ENDING. `contesting_war` is the war named by `contested_by`
    /// (`None` when not contested or that war no longer exists); returns the new level.
    pub fn fortify(
        &mut self,
        clan: &ClanId,
        contesting_war: Option<&War>,
        rules: &Rules,
    ) -> DomainResult<u8> {
        if self.owner_clan_id.as_ref() != Some(clan) {
            return Err(DomainError::NotTerritoryOwner {
                territory_id: self.territory_id.clone(),
                clan_id: clan.clone(),
            });
        }
        let under_attack = contesting_war.is_some_and(|war| {
            self.contested_by.as_ref() == Some(&war.war_id)
                && matches!(war.status, WarStatus::Active | WarStatus::Ending)
        });
        if under_attack {
            return Err(DomainError::TerritoryUnderAttack(self.territory_id.clone()));
        }
        if self.defense_level >= rules.max_defense_level {
            return Err(DomainError::MaxDefenseLevel(self.territory_id.clone()));
        }
        self.defense_level += 1;
        Ok(self.defense_level)
    }
}

/// Keeps the candidates within `radius` of `center` (exact distance), nearest first; equal
/// distances are ordered by territory id so pages and tests are deterministic.
pub fn nearest_first(
    center: Position,
    radius: f64,
    candidates: Vec<Territory>,
) -> Vec<(Territory, f64)> {
    let mut found: Vec<(Territory, f64)> = candidates
        .into_iter()
        .map(|t| {
            let d = distance(center, t.position());
            (t, d)
        })
        .filter(|(_, d)| *d <= radius)
        .collect();
    found.sort_by(|(a, da), (b, db)| {
        da.total_cmp(db)
            .then_with(|| a.territory_id.cmp(&b.territory_id))
    });
    // Each territory lives in exactly one cell; this only guards against an adapter returning
    // the same item twice (e.g. from overlapping pages).
    found.dedup_by(|(a, _), (b, _)| a.territory_id == b.territory_id);
    found
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A valid upsert body at `(x, y)`.
    pub fn input(owner: Option<&str>, x: f64, y: f64, tier: u8) -> TerritoryInput {
        TerritoryInput {
            name: "Iron Hills".to_owned(),
            region: "north".to_owned(),
            x,
            y,
            tier,
            resource_yield: 120,
            owner_clan_id: owner.map(|o| ClanId::new(o).unwrap()),
        }
    }

    /// A stored-looking territory owned by `owner`.
    pub fn territory(id: &str, owner: &str, tier: u8) -> Territory {
        Territory::new(
            TerritoryId::new(id).unwrap(),
            input(Some(owner), 1_500.0, -250.0, tier),
            &Rules::default(),
        )
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
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
            assert!(
                Territory::new(TerritoryId::new("t").unwrap(), bad, &Rules::default()).is_err()
            );
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
}
