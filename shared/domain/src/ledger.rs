//! The war ledger: every accepted score effect of a war (kill, assist, capture, battle bonus,
//! hold), recorded in the same transaction as its points, so a war's totals can be audited and
//! recomputed from it. `recompute` is the one rule that turns a ledger into totals.

use crate::ids::{ClanId, PlayerId, WarId};
use crate::status::Side;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most entries one ledger read answers.
pub const MAX_LEDGER_LIMIT: usize = 100;
/// Entries a ledger read answers when no `limit` is given.
pub const DEFAULT_LEDGER_LIMIT: usize = 50;

/// What kind of score effect an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectKind {
    Kill,
    Assist,
    Capture,
    BattleBonus,
    Hold,
}

impl EffectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Assist => "assist",
            Self::Capture => "capture",
            Self::BattleBonus => "battle_bonus",
            Self::Hold => "hold",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Kill,
            Self::Assist,
            Self::Capture,
            Self::BattleBonus,
            Self::Hold,
        ]
        .into_iter()
        .find(|k| k.as_str() == raw)
    }
}

/// One accepted score effect. `event_id` is the effect's exactly-once id: the battle event's id,
/// the capture's id, `bonus#<battle>` for a battle bonus, `hold#<clan>` for hold points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub event_id: String,
    pub kind: EffectKind,
    pub occurred_at: DateTime<Utc>,
    /// The credited player (kills and assists); clan-level effects have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub player_id: Option<PlayerId>,
    pub clan_id: ClanId,
    pub side: Side,
    pub points: i64,
    /// When the stores may drop the entry: the war's end deadline plus the ledger retention
    /// (a DynamoDB TTL set at write time).
    pub retained_until: DateTime<Utc>,
    /// The rescore whose void took this entry out (reads only: the stores keep entries as
    /// scored, and the war keeps its voids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voided_by: Option<u32>,
}

impl LedgerEntry {
    pub fn matches(&self, filter: &LedgerFilter) -> bool {
        filter
            .player_id
            .as_ref()
            .is_none_or(|p| self.player_id.as_ref() == Some(p))
            && filter.clan_id.as_ref().is_none_or(|c| &self.clan_id == c)
    }
}

/// The order of entries within a ledger page: newest `occurred_at` first, then by id.
pub fn sort_page(entries: &mut [LedgerEntry]) {
    entries.sort_by(|a, b| (b.occurred_at, &b.event_id).cmp(&(a.occurred_at, &a.event_id)));
}

/// Which entries a ledger read answers (both set: entries of that player in that clan).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    pub player_id: Option<PlayerId>,
    pub clan_id: Option<ClanId>,
}

/// Entries a transaction adds to a war's ledger apart from score deltas (hold points at the
/// final tally).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerWrite {
    pub war_id: WarId,
    pub entries: Vec<LedgerEntry>,
}

/// A war's totals as its ledger makes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Points per clan (only clans with an entry).
    pub clans: BTreeMap<ClanId, i64>,
    /// Points per player, with the clan the player scored for.
    pub players: BTreeMap<PlayerId, (ClanId, i64)>,
    pub attacker: i64,
    pub defender: i64,
}

/// The war's totals from its ledger: every entry counts once (entries are unique by
/// `event_id`; a repeated id is ignored, as the stores never record one twice). Pure and
/// order-independent.
pub fn recompute<'a>(entries: impl IntoIterator<Item = &'a LedgerEntry>) -> Totals {
    let mut totals = Totals::default();
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        if !seen.insert(entry.event_id.as_str()) {
            continue;
        }
        *totals.clans.entry(entry.clan_id.clone()).or_default() += entry.points;
        if let Some(player) = &entry.player_id {
            totals
                .players
                .entry(player.clone())
                .or_insert_with(|| (entry.clan_id.clone(), 0))
                .1 += entry.points;
        }
        match entry.side {
            Side::Attacker => totals.attacker += entry.points,
            Side::Defender => totals.defender += entry.points,
        }
    }
    totals
}

/// What an operator voids in one war: a player's or a clan's contributions, or named entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Void {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub player_id: Option<PlayerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clan_id: Option<ClanId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_ids: Vec<String>,
}

/// Most event ids one void names.
pub const MAX_VOID_EVENT_IDS: usize = 100;
/// Longest event id a void names (ledger ids are event ids, `bonus#<battle>`, `hold#<clan>`).
const MAX_EVENT_ID_LEN: usize = 200;

impl Void {
    /// Exactly one selector: a player, a clan, or 1..=100 distinct, well-formed event ids.
    pub fn validate(&self) -> crate::error::DomainResult<()> {
        let given = [
            self.player_id.is_some(),
            self.clan_id.is_some(),
            !self.event_ids.is_empty(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(crate::error::DomainError::invalid(
                "player_id, clan_id, event_ids",
                "give exactly one of player_id, clan_id or event_ids (non-empty)",
            ));
        }
        if self.event_ids.len() > MAX_VOID_EVENT_IDS {
            return Err(crate::error::DomainError::invalid(
                "event_ids",
                format!("at most {MAX_VOID_EVENT_IDS} event ids per void"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for id in &self.event_ids {
            let well_formed = !id.is_empty()
                && id.chars().count() <= MAX_EVENT_ID_LEN
                && !id.chars().any(char::is_control);
            if !well_formed || !seen.insert(id.as_str()) {
                return Err(crate::error::DomainError::invalid(
                    "event_ids",
                    format!(
                        "event ids must be distinct, 1 to {MAX_EVENT_ID_LEN} characters, without control characters"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The selector as the error messages name it.
    pub fn describe(&self) -> String {
        match (&self.player_id, &self.clan_id) {
            (Some(p), _) => format!("player {p}"),
            (None, Some(c)) => format!("clan {c}"),
            (None, None) => format!("event ids {}", self.event_ids.join(", ")),
        }
    }

    /// Whether the entry is voided by this.
    pub fn covers(&self, entry: &LedgerEntry) -> bool {
        self.player_id
            .as_ref()
            .is_some_and(|p| entry.player_id.as_ref() == Some(p))
            || self.clan_id.as_ref().is_some_and(|c| &entry.clan_id == c)
            || self.event_ids.iter().any(|id| id == &entry.event_id)
    }
}

/// The number (1-based) of the first of `voids` that covers the entry.
pub fn voided_by(entry: &LedgerEntry, voids: &[Void]) -> Option<u32> {
    voids
        .iter()
        .position(|v| v.covers(entry))
        .map(|i| u32::try_from(i + 1).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests;
