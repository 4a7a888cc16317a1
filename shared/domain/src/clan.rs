//! Clans as the guild service reports them, plus the war bookkeeping this service keeps on them.

use crate::error::{DomainError, DomainResult};
use crate::ids::{AllianceId, ClanId, PlayerId, WarId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Starting war rating of a clan the guild service reports without one.
pub const DEFAULT_RATING: i32 = 1_000;

/// A player's role in their clan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Officer,
    Leader,
}

/// Longest clan name accepted.
pub const MAX_CLAN_NAME_LEN: usize = 64;
/// Most players a snapshot may list (officers and members together).
pub const MAX_ROSTER: usize = 1_000;
/// Highest clan level accepted.
pub const MAX_CLAN_LEVEL: u32 = 1_000;
/// Accepted war-rating range.
pub const RATING_RANGE: std::ops::RangeInclusive<i32> = 0..=10_000;

/// What the guild service upserts (`PUT /clans/{clan_id}`); it never touches war bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClanSnapshot {
    pub name: String,
    pub leader_id: PlayerId,
    #[serde(default)]
    pub officer_ids: Vec<PlayerId>,
    #[serde(default)]
    pub member_ids: Vec<PlayerId>,
    pub level: u32,
    #[serde(default)]
    pub rating: Option<i32>,
    #[serde(default = "active_by_default")]
    pub active: bool,
}

fn active_by_default() -> bool {
    true
}

impl ClanSnapshot {
    /// Field checks (400s) before anything is written.
    pub fn validate(&self) -> crate::DomainResult<()> {
        use crate::DomainError;
        crate::error::validate_label("name", &self.name, MAX_CLAN_NAME_LEN)?;
        if self.officer_ids.len() + self.member_ids.len() > MAX_ROSTER {
            return Err(DomainError::invalid(
                "member_ids",
                format!("at most {MAX_ROSTER} players"),
            ));
        }
        if self.level > MAX_CLAN_LEVEL {
            return Err(DomainError::invalid(
                "level",
                format!("must be 0..={MAX_CLAN_LEVEL}"),
            ));
        }
        if self.rating.is_some_and(|r| !RATING_RANGE.contains(&r)) {
            return Err(DomainError::invalid("rating", "must be 0..=10000"));
        }
        Ok(())
    }
}

/// A clan: registry snapshot + war rating + alliance + war bookkeeping used by the rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clan {
    pub clan_id: ClanId,
    pub name: String,
    pub leader_id: PlayerId,
    pub officer_ids: Vec<PlayerId>,
    pub member_ids: Vec<PlayerId>,
    pub level: u32,
    pub rating: i32,
    pub active: bool,
    pub alliance_id: Option<AllianceId>,
    /// Wars not yet ENDED/CANCELLED this clan fights in, as a primary clan or as an ally.
    pub active_war_ids: Vec<WarId>,
    /// Declarations this clan made, newest last; trimmed to the last 24 h on every write.
    pub recent_declarations: Vec<DateTime<Utc>>,
    pub last_war_ended_at: Option<DateTime<Utc>>,
    pub version: u64,
}

impl Clan {
    /// A clan first seen through a registry snapshot.
    pub fn from_snapshot(clan_id: ClanId, snapshot: ClanSnapshot) -> Self {
        let mut clan = Self {
            clan_id,
            name: String::new(),
            leader_id: snapshot.leader_id.clone(),
            officer_ids: Vec::new(),
            member_ids: Vec::new(),
            level: 0,
            rating: DEFAULT_RATING,
            active: true,
            alliance_id: None,
            active_war_ids: Vec::new(),
            recent_declarations: Vec::new(),
            last_war_ended_at: None,
            version: 0,
        };
        clan.apply_snapshot(snapshot);
        clan
    }

    /// Replaces the registry fields; war bookkeeping and alliance stay as they are.
    pub fn apply_snapshot(&mut self, snapshot: ClanSnapshot) {
        self.name = snapshot.name;
        self.leader_id = snapshot.leader_id;
        self.officer_ids = snapshot.officer_ids;
        self.member_ids = snapshot.member_ids;
        self.level = snapshot.level;
        if let Some(rating) = snapshot.rating {
            self.rating = rating;
        }
        self.active = snapshot.active;
    }

    /// The player's role, or `None` when the player is not in the clan.
    pub fn role_of(&self, player: &PlayerId) -> Option<Role> {
        if &self.leader_id == player {
            Some(Role::Leader)
        } else if self.officer_ids.contains(player) {
            Some(Role::Officer)
        } else if self.member_ids.contains(player) {
            Some(Role::Member)
        } else {
            None
        }
    }

    /// Distinct players in the clan (leader and officers count even if not listed as members).
    pub fn member_count(&self) -> usize {
        let mut all: BTreeSet<&PlayerId> = self.member_ids.iter().collect();
        all.extend(self.officer_ids.iter());
        all.insert(&self.leader_id);
        all.len()
    }

    /// Declarations within the trailing window ending at `now`.
    pub fn declarations_since(&self, since: DateTime<Utc>) -> usize {
        self.recent_declarations
            .iter()
            .filter(|at| **at > since)
            .count()
    }

    pub fn is_in_war(&self, war_id: &WarId) -> bool {
        self.active_war_ids.contains(war_id)
    }

    /// Records a war this clan now fights in (declaration or joining as ally).
    pub fn enter_war(&mut self, war_id: &WarId) {
        if !self.is_in_war(war_id) {
            self.active_war_ids.push(war_id.clone());
        }
    }

    /// Forgets a war that never really started (failed declaration, mutual cancel): frees the
    /// slot without a peace shield.
    pub fn abandon_war(&mut self, war_id: &WarId) {
        self.active_war_ids.retain(|w| w != war_id);
    }

    /// Records the end of a war for this clan: frees the slot and starts the peace shield.
    pub fn leave_war(&mut self, war_id: &WarId, ended_at: DateTime<Utc>) {
        self.active_war_ids.retain(|w| w != war_id);
        self.last_war_ended_at = Some(ended_at);
    }
}

/// The actor must hold at least `min` in the clan (leader > officer > member).
pub fn require_role(clan: &Clan, actor: &PlayerId, min: Role) -> DomainResult<()> {
    match clan.role_of(actor) {
        Some(role) if role >= min => Ok(()),
        _ => Err(DomainError::Forbidden {
            actor: actor.clone(),
            clan_id: clan.clan_id.clone(),
            required: match min {
                Role::Leader => "leader",
                Role::Officer => "leader or officer",
                Role::Member => "a member",
            },
        }),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A clan with a leader `<id>-leader`, an officer `<id>-officer` and `size` members in all.
    pub fn clan(id: &str, size: usize) -> Clan {
        let pid = |s: String| PlayerId::new(s).unwrap();
        let members = (0..size.saturating_sub(2))
            .map(|i| pid(format!("{id}-m{i}")))
            .collect();
        Clan::from_snapshot(
            ClanId::new(id).unwrap(),
            ClanSnapshot {
                name: format!("Clan {id}"),
                leader_id: pid(format!("{id}-leader")),
                officer_ids: vec![pid(format!("{id}-officer"))],
                member_ids: members,
                level: 10,
                rating: None,
                active: true,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clan_names_follow_the_one_name_rule() {
        let snapshot = |name: &str| super::ClanSnapshot {
            name: name.to_owned(),
            leader_id: crate::ids::PlayerId::new("p-1").unwrap(),
            officer_ids: Vec::new(),
            member_ids: Vec::new(),
            level: 1,
            rating: None,
            active: true,
        };
        assert!(snapshot("Iron Wolves").validate().is_ok());
        for bad in [
            "",
            "  ",
            "a\0b",
            "x\u{1}",
            "esc\u{1b}[31m",
            "del\u{7f}",
            &"n".repeat(65),
        ] {
            let err = snapshot(bad).validate().unwrap_err();
            assert_eq!(
                (err.class(), err.code()),
                (crate::ErrorClass::Malformed, "INVALID_REQUEST"),
                "{bad:?}"
            );
        }
    }

    use super::fixtures::clan;
    use super::*;

    #[test]
    fn roles_are_resolved_from_the_snapshot() {
        let c = clan("a", 12);
        assert_eq!(
            c.role_of(&PlayerId::new("a-leader").unwrap()),
            Some(Role::Leader)
        );
        assert_eq!(
            c.role_of(&PlayerId::new("a-officer").unwrap()),
            Some(Role::Officer)
        );
        assert_eq!(
            c.role_of(&PlayerId::new("a-m0").unwrap()),
            Some(Role::Member)
        );
        assert_eq!(c.role_of(&PlayerId::new("stranger").unwrap()), None);
        assert_eq!(c.member_count(), 12);
    }

    #[test]
    fn snapshot_keeps_war_bookkeeping_and_rating_when_absent() {
        let mut c = clan("a", 12);
        let war = WarId::new("w1").unwrap();
        c.enter_war(&war);
        c.rating = 1234;
        let mut snap = ClanSnapshot {
            name: "Renamed".into(),
            leader_id: PlayerId::new("new-leader").unwrap(),
            officer_ids: vec![],
            member_ids: vec![],
            level: 11,
            rating: None,
            active: true,
        };
        c.apply_snapshot(snap.clone());
        assert_eq!((c.name.as_str(), c.rating), ("Renamed", 1234));
        assert_eq!(c.active_war_ids, vec![war]);
        snap.rating = Some(900);
        c.apply_snapshot(snap);
        assert_eq!(c.rating, 900);
    }

    #[test]
    fn snapshots_reject_unknown_fields_and_out_of_range_values() {
        let json = serde_json::json!({"name": "A", "leader_id": "p1", "level": 1, "colour": "red"});
        assert!(serde_json::from_value::<ClanSnapshot>(json).is_err());
        let json = serde_json::json!({"name": "A", "leader_id": "p1", "level": 1});
        let mut snap: ClanSnapshot = serde_json::from_value(json).unwrap();
        assert!(snap.active && snap.member_ids.is_empty());
        snap.validate().unwrap();
        snap.rating = Some(-1);
        assert_eq!(snap.validate().unwrap_err().code(), "INVALID_REQUEST");
        snap.rating = None;
        snap.name = "  ".into();
        assert_eq!(snap.validate().unwrap_err().code(), "INVALID_REQUEST");
    }

    #[test]
    fn leaving_a_war_frees_the_slot_and_records_the_end() {
        let mut c = clan("a", 12);
        let war = WarId::new("w1").unwrap();
        c.enter_war(&war);
        c.enter_war(&war);
        assert_eq!(c.active_war_ids.len(), 1);
        let now = Utc::now();
        c.leave_war(&war, now);
        assert!(c.active_war_ids.is_empty());
        assert_eq!(c.last_war_ended_at, Some(now));
    }
}
