//! Alliances (SPEC §8): invitations with expiry, size limit, one alliance per clan.
//!
//! The rules here are pure; `services::alliances` loads the records, asks these functions, and
//! commits the result in one transaction.

use crate::error::{DomainError, DomainResult};
use crate::ids::{AllianceId, ClanId, PlayerId};
use crate::war::War;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Longest alliance name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 64;

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

impl Alliance {
    /// A new alliance whose only member is its founder (version 0: not yet stored).
    pub fn found(
        alliance_id: AllianceId,
        name: String,
        founder: ClanId,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            alliance_id,
            name,
            member_clan_ids: vec![founder.clone()],
            founder_clan_id: founder,
            created_at: now,
            version: 0,
        }
    }

    pub fn is_member(&self, clan: &ClanId) -> bool {
        self.member_clan_ids.contains(clan)
    }

    /// Refuses a new member once `max` clans (founder included) are in.
    pub fn require_room(&self, max: usize) -> DomainResult<()> {
        if self.member_clan_ids.len() >= max {
            return Err(DomainError::AllianceFull {
                alliance_id: self.alliance_id.clone(),
                max,
            });
        }
        Ok(())
    }

    /// Adds a member after [`Alliance::require_room`] passed.
    pub fn admit(&mut self, clan: &ClanId) {
        if !self.is_member(clan) {
            self.member_clan_ids.push(clan.clone());
        }
    }

    /// Removes a member; the founder never leaves (the alliance is dissolved instead).
    pub fn remove(&mut self, clan: &ClanId) -> DomainResult<()> {
        if !self.is_member(clan) {
            return Err(DomainError::NotAllianceMember {
                alliance_id: self.alliance_id.clone(),
                clan_id: clan.clone(),
            });
        }
        if clan == &self.founder_clan_id {
            return Err(DomainError::FounderCannotLeave);
        }
        self.member_clan_ids.retain(|c| c != clan);
        Ok(())
    }
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

impl Invitation {
    pub fn new(
        alliance_id: AllianceId,
        clan_id: ClanId,
        invited_by: PlayerId,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Self {
        Self {
            alliance_id,
            clan_id,
            invited_by,
            invited_at: now,
            expires_at: now + ttl,
            version: 0,
        }
    }

    /// An invitation is dead from its expiry instant on; the TTL sweep may lag, so every read
    /// checks this rather than trusting the record's presence.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    /// Refuses an accept once the invitation has expired.
    pub fn require_live(&self, now: DateTime<Utc>) -> DomainResult<()> {
        if self.is_expired(now) {
            return Err(DomainError::InvitationExpired {
                alliance_id: self.alliance_id.clone(),
                clan_id: self.clan_id.clone(),
            });
        }
        Ok(())
    }
}

/// A trimmed, non-empty name of at most [`MAX_NAME_CHARS`] characters (400 otherwise).
pub fn validate_name(raw: &str) -> DomainResult<String> {
    let name = raw.trim();
    crate::error::validate_label("name", name, MAX_NAME_CHARS)?;
    Ok(name.to_owned())
}

/// Whether `a` and `b` fight on opposite sides of one of `wars` that is still going on.
pub fn at_war(a: &ClanId, b: &ClanId, wars: &[War]) -> bool {
    wars.iter().any(|w| {
        if w.status.is_terminal() {
            return false;
        }
        matches!((w.side_of(a), w.side_of(b)), (Some(x), Some(y)) if x != y)
    })
}

/// Refuses `clan` if it is at war with any of `members` (SPEC §8), naming the first such member.
pub fn require_not_at_war_with_members(
    clan: &ClanId,
    members: &[ClanId],
    wars: &[War],
) -> DomainResult<()> {
    match members.iter().find(|m| at_war(clan, m, wars)) {
        Some(member) => Err(DomainError::AtWarWithMember {
            clan_id: clan.clone(),
            member: member.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::war::fixtures::war;
    use crate::war::WarStatus;

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn clan(id: &str) -> ClanId {
        ClanId::new(id).unwrap()
    }

    fn alliance() -> Alliance {
        Alliance::found(
            AllianceId::new("al-1").unwrap(),
            "North".into(),
            clan("f"),
            t0(),
        )
    }

    #[test]
    fn a_new_alliance_holds_only_its_founder() {
        let a = alliance();
        assert_eq!(a.member_clan_ids, vec![clan("f")]);
        assert!(a.is_member(&clan("f")));
        assert_eq!(a.version, 0);
    }

    #[test]
    fn room_counts_the_founder_against_the_size_limit() {
        let mut a = alliance();
        for c in ["b", "c", "d"] {
            a.require_room(4).unwrap();
            a.admit(&clan(c));
        }
        let err = a.require_room(4).unwrap_err();
        assert_eq!(err.code(), "ALLIANCE_FULL");
        assert_eq!(a.member_clan_ids.len(), 4);
    }

    #[test]
    fn members_may_leave_but_the_founder_and_strangers_may_not() {
        let mut a = alliance();
        a.admit(&clan("b"));
        assert_eq!(
            a.remove(&clan("f")).unwrap_err().code(),
            "FOUNDER_CANNOT_LEAVE"
        );
        assert_eq!(
            a.remove(&clan("x")).unwrap_err().code(),
            "NOT_ALLIANCE_MEMBER"
        );
        a.remove(&clan("b")).unwrap();
        assert_eq!(a.member_clan_ids, vec![clan("f")]);
    }

    #[test]
    fn an_invitation_expires_exactly_at_its_ttl() {
        let inv = Invitation::new(
            AllianceId::new("al-1").unwrap(),
            clan("b"),
            PlayerId::new("p").unwrap(),
            t0(),
            Duration::hours(48),
        );
        assert!(inv
            .require_live(t0() + Duration::hours(48) - Duration::seconds(1))
            .is_ok());
        assert_eq!(
            inv.require_live(t0() + Duration::hours(48))
                .unwrap_err()
                .code(),
            "INVITATION_EXPIRED"
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  North  ").unwrap(), "North");
        assert_eq!(
            validate_name(" ").unwrap_err().class(),
            crate::ErrorClass::Malformed
        );
        assert!(validate_name(&"é".repeat(64)).is_ok());
        assert_eq!(
            validate_name("a\0b").unwrap_err().class(),
            crate::ErrorClass::Malformed
        );
        assert_eq!(
            validate_name(&"x".repeat(65)).unwrap_err().class(),
            crate::ErrorClass::Malformed
        );
    }

    #[test]
    fn clans_are_at_war_only_on_opposite_sides_of_a_live_war() {
        let mut w = war(t0());
        w.sides.attacker.clan_ids.push(clan("att-ally"));
        let wars = vec![w.clone()];
        assert!(at_war(&clan("att"), &clan("def"), &wars));
        assert!(at_war(&clan("def"), &clan("att-ally"), &wars));
        assert!(!at_war(&clan("att"), &clan("att-ally"), &wars));
        assert!(!at_war(&clan("att"), &clan("stranger"), &wars));
        w.status = WarStatus::Ended;
        assert!(!at_war(&clan("att"), &clan("def"), &[w]));
    }

    #[test]
    fn the_first_member_at_war_is_named() {
        let wars = vec![war(t0())];
        let err = require_not_at_war_with_members(&clan("def"), &[clan("x"), clan("att")], &wars)
            .unwrap_err();
        assert!(
            matches!(err, DomainError::AtWarWithMember { ref member, .. } if member == &clan("att"))
        );
        assert!(require_not_at_war_with_members(&clan("def"), &[clan("x")], &wars).is_ok());
    }
}
