//! Battles (SPEC §5): PvP zone instances inside an ACTIVE war. Pure rules for creating,
//! reading and resolving one; `services::battles` loads, checks and commits.

use crate::config::Rules;
use crate::error::{DomainError, DomainResult};
use crate::ids::{BattleId, TerritoryId, WarId};
use crate::spatial::validate_coordinate;
use crate::territory::Position;
use crate::war::{Side, War};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Fewest players a PvP instance makes sense with.
pub const MIN_BATTLE_PLAYERS: u32 = 2;

/// Stored battle state. IN_PROGRESS and EXPIRED are also derived on read (see `Battle::state_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BattleStatus {
    Open,
    InProgress,
    Resolved,
    Expired,
}

impl BattleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BattleStatus::Open => "OPEN",
            BattleStatus::InProgress => "IN_PROGRESS",
            BattleStatus::Resolved => "RESOLVED",
            BattleStatus::Expired => "EXPIRED",
        }
    }
}

/// The body of `POST /wars/{war_id}/battles`: a territory of the war or a free position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BattleInput {
    #[serde(default)]
    pub territory_id: Option<TerritoryId>,
    #[serde(default)]
    pub position: Option<Position>,
    pub max_players: u32,
}

impl BattleInput {
    /// Shape checks (400): exactly one place, a sane player cap, a finite position.
    pub fn validate(&self, rules: &Rules) -> DomainResult<()> {
        if !(MIN_BATTLE_PLAYERS..=rules.max_battle_players).contains(&self.max_players) {
            return Err(DomainError::invalid(
                "max_players",
                format!(
                    "must be between {MIN_BATTLE_PLAYERS} and {}",
                    rules.max_battle_players
                ),
            ));
        }
        match (&self.territory_id, &self.position) {
            (Some(_), None) => Ok(()),
            (None, Some(p)) => {
                validate_coordinate("position.x", p.x)?;
                validate_coordinate("position.y", p.y)
            }
            _ => Err(DomainError::invalid(
                "territory_id",
                "give exactly one of territory_id and position",
            )),
        }
    }
}

/// The body of `POST /wars/{war_id}/battles/{battle_id}/resolve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveInput {
    pub winner_side: Side,
    /// When the battle ended in the game; a result reported late, during ENDING, counts if
    /// this lies inside ACTIVE (SPEC §2). Defaults to the time of the request.
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
}

/// A battle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Battle {
    pub battle_id: BattleId,
    pub war_id: WarId,
    pub territory_id: Option<TerritoryId>,
    pub position: Option<Position>,
    pub max_players: u32,
    pub status: BattleStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub winner_side: Option<Side>,
    pub version: u64,
}

impl Battle {
    /// A new OPEN battle in an ACTIVE war that still has room for one more live battle.
    pub fn create(
        war: &War,
        battle_id: BattleId,
        input: BattleInput,
        now: DateTime<Utc>,
        rules: &Rules,
    ) -> DomainResult<Battle> {
        input.validate(rules)?;
        war.require_active()?;
        if let Some(territory_id) = &input.territory_id {
            if !war.territory_ids.contains(territory_id) {
                return Err(DomainError::TerritoryNotInWar {
                    territory_id: territory_id.clone(),
                    war_id: war.war_id.clone(),
                });
            }
        }
        if war.live_battles(now) >= rules.max_concurrent_battles {
            return Err(DomainError::BattleLimitReached {
                war_id: war.war_id.clone(),
                max: rules.max_concurrent_battles,
            });
        }
        Ok(Battle {
            battle_id,
            war_id: war.war_id.clone(),
            territory_id: input.territory_id,
            position: input.position,
            max_players: input.max_players,
            status: BattleStatus::Open,
            created_at: now,
            expires_at: now + rules.battle_max_duration(),
            resolved_at: None,
            winner_side: None,
            version: 0,
        })
    }

    /// The state as seen at `now`: RESOLVED sticks; otherwise EXPIRED past `expires_at`,
    /// IN_PROGRESS once a kill was recorded, else OPEN.
    pub fn state_at(&self, now: DateTime<Utc>, kills: SideKills) -> BattleStatus {
        match self.status {
            BattleStatus::Resolved | BattleStatus::Expired => self.status,
            _ if now >= self.expires_at => BattleStatus::Expired,
            _ if kills.attacker + kills.defender > 0 => BattleStatus::InProgress,
            _ => self.status,
        }
    }

    /// Records the winner of an OPEN or IN_PROGRESS battle that has not expired.
    pub fn resolve(&mut self, winner: Side, now: DateTime<Utc>) -> DomainResult<()> {
        // Kills do not matter here: only RESOLVED and EXPIRED refuse a result.
        let state = self.state_at(now, SideKills::default());
        if matches!(state, BattleStatus::Resolved | BattleStatus::Expired) {
            return Err(DomainError::BattleNotOpen {
                battle_id: self.battle_id.clone(),
                state: state.as_str(),
            });
        }
        self.status = BattleStatus::Resolved;
        self.resolved_at = Some(now);
        self.winner_side = Some(winner);
        Ok(())
    }
}

/// Kills per side in a battle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideKills {
    pub attacker: i64,
    pub defender: i64,
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn on_territory(id: &str) -> BattleInput {
        BattleInput {
            territory_id: Some(TerritoryId::new(id).unwrap()),
            position: None,
            max_players: 40,
        }
    }

    pub fn at_position(x: f64, y: f64) -> BattleInput {
        BattleInput {
            territory_id: None,
            position: Some(Position { x, y }),
            max_players: 40,
        }
    }
}

#[cfg(test)]
mod tests;
