//! Territories (SPEC §4): ownership, contest/release, capture and fortify rules.

use crate::ids::{ClanId, TerritoryId, WarId};
use crate::spatial::CellId;
use serde::{Deserialize, Serialize};

/// A point on the world map, in metres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub x: f64,
    pub y: f64,
}

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
