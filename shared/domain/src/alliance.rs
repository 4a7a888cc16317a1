//! Alliances (SPEC §8): invitations with expiry, size limit, one alliance per clan.

use crate::ids::{AllianceId, ClanId, PlayerId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An alliance of clans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alliance {
    pub alliance_id: AllianceId,
    pub name: String,
    pub founder_clan_id: ClanId,
    /// Founder first.
    pub member_clan_ids: Vec<ClanId>,
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

/// A pending invitation; stored on its own so the table's TTL can remove it once expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub alliance_id: AllianceId,
    pub clan_id: ClanId,
    pub invited_by: PlayerId,
    pub invited_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub version: u64,
}
