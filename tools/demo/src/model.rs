//! The API's answers as the demo reads them (SPEC §13 field names). Only the fields the demo
//! shows are declared; anything else in an answer is ignored.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// `GET /wars/{war_id}` (and the declaration's 201 body).
#[derive(Debug, Clone, Deserialize)]
pub struct WarView {
    pub war_id: String,
    pub status: String,
    pub attacker_clan_id: String,
    pub defender_clan_id: String,
    #[serde(default)]
    pub declared_at: Option<DateTime<Utc>>,
    pub phase_deadlines: Deadlines,
    pub sides: Sides,
    pub territory_ids: Vec<String>,
    #[serde(default)]
    pub captures: Vec<CaptureView>,
    #[serde(default)]
    pub winner_side: Option<String>,
    #[serde(default)]
    pub outcome: Option<String>,
    /// Grows with every change: orders concurrent reads.
    #[serde(default)]
    pub version: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Deadlines {
    pub preparation_at: DateTime<Utc>,
    pub active_at: DateTime<Utc>,
    pub ending_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Sides {
    pub attacker: SideView,
    pub defender: SideView,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SideView {
    pub clan_ids: Vec<String>,
    #[serde(default)]
    pub score: i64,
}

/// A territory that changed hands during the war.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CaptureView {
    pub territory_id: String,
    #[serde(default)]
    pub from_clan_id: Option<String>,
    pub to_clan_id: String,
    pub side: String,
}

/// `GET /wars/{war_id}/scoreboard`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Scoreboard {
    pub sides: ScoreSides,
    #[serde(default)]
    pub clans: Vec<ClanScore>,
    #[serde(default)]
    pub top_players: Vec<PlayerScore>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct ScoreSides {
    pub attacker: Score,
    pub defender: Score,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Score {
    pub score: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClanScore {
    pub clan_id: String,
    pub side: String,
    pub score: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlayerScore {
    pub player_id: String,
    pub clan_id: String,
    pub points: i64,
}

/// `POST /wars/{war_id}/events`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BatchAnswer {
    pub accepted: u64,
    pub duplicates: u64,
    #[serde(default)]
    pub rejected: Vec<RejectedEvent>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RejectedEvent {
    pub event_id: String,
    pub code: String,
    #[serde(default)]
    pub reason: String,
}

/// `GET /wars/{war_id}/rewards`.
#[derive(Debug, Clone, Deserialize)]
pub struct RewardsView {
    pub status: String,
    #[serde(default)]
    pub grants: Vec<GrantView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GrantView {
    pub player_id: String,
    pub kind: String,
    pub amount: u64,
    pub status: String,
}

/// `GET /clans/{clan_id}` (the fields the result shows).
#[derive(Debug, Clone, Deserialize)]
pub struct ClanView {
    pub clan_id: String,
    pub rating: i64,
}

/// `POST /wars/{war_id}/battles` (and the resolve answer).
#[derive(Debug, Clone, Deserialize)]
pub struct Battle {
    pub battle_id: String,
}

/// `GET /wars/{war_id}/battles/{battle_id}`: the battle, its derived state and kills per side.
#[derive(Debug, Clone, Deserialize)]
pub struct BattleState {
    pub state: String,
    pub kills: SideKills,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct SideKills {
    pub attacker: i64,
    pub defender: i64,
}

/// `POST /alliances`.
#[derive(Debug, Clone, Deserialize)]
pub struct AllianceView {
    pub alliance_id: String,
}

/// `POST /territories/{id}/capture`.
#[derive(Debug, Clone, Deserialize)]
pub struct CaptureAnswer {
    pub points: i64,
}
