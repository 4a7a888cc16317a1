//! The war ledger: every accepted score effect of a war (kill, assist, capture, battle bonus,
//! hold), recorded in the same transaction as its points, so a war's totals can be audited and
//! recomputed from it. `recompute` is the one rule that turns a ledger into totals.

use crate::config::Rules;
use crate::ids::{ClanId, PlayerId, WarId};
use crate::war::{Side, War};
use chrono::{DateTime, Duration, Utc};
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
}

impl LedgerEntry {
    /// An entry of `war`, kept until its end deadline plus `rules.ledger_retention_days`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        war: &War,
        rules: &Rules,
        event_id: impl Into<String>,
        kind: EffectKind,
        occurred_at: DateTime<Utc>,
        player_id: Option<PlayerId>,
        clan_id: ClanId,
        side: Side,
        points: i64,
    ) -> Self {
        Self {
            event_id: event_id.into(),
            kind,
            occurred_at,
            player_id,
            clan_id,
            side,
            points,
            retained_until: retention_end(war, rules),
        }
    }

    pub fn matches(&self, filter: &LedgerFilter) -> bool {
        filter
            .player_id
            .as_ref()
            .is_none_or(|p| self.player_id.as_ref() == Some(p))
            && filter.clan_id.as_ref().is_none_or(|c| &self.clan_id == c)
    }
}

/// When a war's ledger entries may expire: the war's end deadline plus the retention. A war
/// that ends early (surrender) keeps them a little longer, never shorter.
pub fn retention_end(war: &War, rules: &Rules) -> DateTime<Utc> {
    war.phase_deadlines.ended_at + Duration::days(rules.ledger_retention_days)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        id: &str,
        kind: EffectKind,
        player: Option<&str>,
        clan: &str,
        side: Side,
        points: i64,
    ) -> LedgerEntry {
        LedgerEntry {
            event_id: id.into(),
            kind,
            occurred_at: "2026-06-01T12:00:00Z".parse().unwrap(),
            player_id: player.map(|p| PlayerId::new(p).unwrap()),
            clan_id: ClanId::new(clan).unwrap(),
            side,
            points,
            retained_until: "2026-09-01T12:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn recompute_sums_players_clans_and_sides_and_counts_an_id_once() {
        let ledger = [
            entry(
                "k1",
                EffectKind::Kill,
                Some("a1"),
                "att",
                Side::Attacker,
                10,
            ),
            entry(
                "k1",
                EffectKind::Kill,
                Some("a1"),
                "att",
                Side::Attacker,
                10,
            ),
            entry(
                "s1",
                EffectKind::Assist,
                Some("a2"),
                "ally",
                Side::Attacker,
                3,
            ),
            entry("c1", EffectKind::Capture, None, "def", Side::Defender, 100),
            entry("hold#att", EffectKind::Hold, None, "att", Side::Attacker, 5),
        ];
        let totals = recompute(&ledger);
        assert_eq!(totals.attacker, 18);
        assert_eq!(totals.defender, 100);
        assert_eq!(totals.clans[&ClanId::new("att").unwrap()], 15);
        assert_eq!(totals.clans[&ClanId::new("ally").unwrap()], 3);
        assert_eq!(
            totals.players[&PlayerId::new("a1").unwrap()],
            (ClanId::new("att").unwrap(), 10)
        );
        assert_eq!(totals.players.len(), 2);
    }

    #[test]
    fn a_filter_keeps_the_entries_of_that_player_and_clan() {
        let e = entry(
            "k1",
            EffectKind::Kill,
            Some("a1"),
            "att",
            Side::Attacker,
            10,
        );
        let by = |p: Option<&str>, c: Option<&str>| LedgerFilter {
            player_id: p.map(|p| PlayerId::new(p).unwrap()),
            clan_id: c.map(|c| ClanId::new(c).unwrap()),
        };
        assert!(e.matches(&by(None, None)));
        assert!(e.matches(&by(Some("a1"), Some("att"))));
        assert!(!e.matches(&by(Some("a2"), None)));
        assert!(!e.matches(&by(None, Some("def"))));
    }

    #[test]
    fn effect_kinds_round_trip_through_their_names() {
        for kind in [
            EffectKind::Kill,
            EffectKind::Assist,
            EffectKind::Capture,
            EffectKind::BattleBonus,
            EffectKind::Hold,
        ] {
            assert_eq!(EffectKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EffectKind::parse("nope"), None);
    }
}
