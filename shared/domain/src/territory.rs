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
mod tests;
