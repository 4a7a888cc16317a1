//! Battles (SPEC §5): PvP zone instances inside an ACTIVE war.

use crate::ids::{BattleId, TerritoryId, WarId};
use crate::territory::Position;
use crate::war::Side;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Stored battle state. IN_PROGRESS and EXPIRED are also derived on read (see `Battle::state_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BattleStatus {
    Open,
    InProgress,
    Resolved,
    Expired,
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
