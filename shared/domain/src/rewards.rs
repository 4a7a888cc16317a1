//! Rewards (SPEC §7): the deterministic reward plan the reward saga executes.

use crate::ids::{ClanId, PlayerId, WarId};
use crate::war::{RewardStatus, Side};
use serde::{Deserialize, Serialize};

/// Where one grant stands with the economy service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GrantStatus {
    Pending,
    Granted,
    Revoked,
}

/// One payment to one player.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub player_id: PlayerId,
    pub clan_id: ClanId,
    pub side: Side,
    pub kind: String,
    pub amount: u64,
    pub status: GrantStatus,
}

/// The plan of a war's rewards and its distribution state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardPlan {
    pub war_id: WarId,
    pub status: RewardStatus,
    pub attacker_pool: u64,
    pub defender_pool: u64,
    pub grants: Vec<Grant>,
    pub version: u64,
}
