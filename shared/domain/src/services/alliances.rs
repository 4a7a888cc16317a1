//! Alliance operations (SPEC §8): create, invite, accept, decline, leave, dissolve.
//!
//! A clan's membership lives twice: in the alliance's member list and in the clan's
//! `alliance_id`. Every operation writes both in one transaction with versioned updates, so two
//! concurrent accepts of one clan into two alliances cannot both commit.
//!
//! Takes only the ports it uses ([`AlliancePorts`]): the store, the clock (invitation expiry),
//! the id generator (alliance and event ids) and the deployment's rules.

use super::require_role;
use super::ServicePorts;
use crate::alliance::{self, Alliance, Invitation};
use crate::clan::{Clan, Role};
use crate::config::Rules;
use crate::error::{DomainError, DomainResult};
use crate::events::{DomainEvent, EventEnvelope};
use crate::ids::{AllianceId, ClanId, PlayerId, WarId};
use crate::ports::{Clock, IdGenerator, RecordKey, Store, StoreExt, Transaction};
use crate::war::War;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// `GET /alliances/{alliance_id}`: the alliance and its invitations still open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllianceView {
    #[serde(flatten)]
    pub alliance: Alliance,
    /// Not yet expired, by clan id.
    pub invitations: Vec<Invitation>,
}

ports! {
    /// The ports the alliance operations use.
    pub struct AlliancePorts {
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        rules: Arc<Rules>,
    }
}

#[derive(Debug, Clone)]
pub struct AllianceService {
    ports: AlliancePorts,
}

impl AllianceService {
    pub fn new(ports: AlliancePorts) -> Self {
        Self { ports }
    }

    /// Founds an alliance whose only member is `founder_id`; the actor leads or officers it.
    pub async fn create(
        &self,
        name: &str,
        founder_id: &ClanId,
        actor: &PlayerId,
    ) -> DomainResult<Alliance> {
        let name = alliance::validate_name(name)?;
        let mut founder = self.ports.clan(founder_id).await?;
        require_role(&founder, actor, Role::Officer)?;
        require_unallied(&founder)?;
        let id = AllianceId::new(self.ports.ids.new_id()).expect("generated ids are valid");
        let mut alliance = Alliance::found(id.clone(), name, founder_id.clone(), self.now());
        founder.alliance_id = Some(id);
        let mut tx = Transaction::new();
        tx.insert(&mut alliance);
        tx.update(&mut founder);
        tx.emit(self.formed(&alliance, founder_id));
        self.ports.commit(tx).await?;
        Ok(alliance)
    }

    /// Invites `clan_id`; the actor leads or officers any member clan. An expired invitation of
    /// the same clan is replaced.
    pub async fn invite(
        &self,
        alliance_id: &AllianceId,
        clan_id: &ClanId,
        actor: &PlayerId,
    ) -> DomainResult<Invitation> {
        let mut fetched = self
            .ports
            .store
            .get_many(&[
                RecordKey::Alliance(alliance_id.clone()),
                RecordKey::Clan(clan_id.clone()),
                RecordKey::Invitation(alliance_id.clone(), clan_id.clone()),
            ])
            .await?;
        let alliance = found_alliance(alliance_id, fetched.one()?)?;
        let clan = found_clan(clan_id, fetched.one()?)?;
        let existing: Option<Invitation> = fetched.one()?;
        let (members, wars) = self.members_and_wars(&alliance, &clan).await?;
        require_officer_of_any(&alliance, &members, actor)?;
        if alliance.is_member(clan_id) {
            return Err(DomainError::AlreadyInAlliance(clan_id.clone()));
        }
        require_unallied(&clan)?;
        if existing.as_ref().is_some_and(|i| !i.is_expired(self.now())) {
            return Err(DomainError::AlreadyInvited {
                alliance_id: alliance_id.clone(),
                clan_id: clan_id.clone(),
            });
        }
        alliance.require_room(self.ports.rules.max_alliance_size)?;
        require_not_at_war(&clan, &members, &wars)?;
        let mut invitation = Invitation::new(
            alliance_id.clone(),
            clan_id.clone(),
            actor.clone(),
            self.now(),
            self.ports.rules.invitation_ttl(),
        );
        // Replacing an expired one is a versioned update of the same key.
        invitation.version = existing.map_or(0, |i| i.version);
        let mut tx = Transaction::new();
        tx.upsert(&mut invitation);
        let mut clan_ids = alliance.member_clan_ids.clone();
        clan_ids.push(clan_id.clone());
        tx.emit(self.ports.event(
            None,
            clan_ids,
            DomainEvent::AllianceInvited {
                alliance_id: alliance_id.clone(),
                clan_id: clan_id.clone(),
            },
        ));
        self.ports.commit(tx).await?;
        Ok(invitation)
    }

    /// The invited clan (its leader or an officer) joins the alliance.
    pub async fn accept(
        &self,
        alliance_id: &AllianceId,
        clan_id: &ClanId,
        actor: &PlayerId,
    ) -> DomainResult<Alliance> {
        let mut fetched = self
            .ports
            .store
            .get_many(&[
                RecordKey::Clan(clan_id.clone()),
                RecordKey::Alliance(alliance_id.clone()),
                RecordKey::Invitation(alliance_id.clone(), clan_id.clone()),
            ])
            .await?;
        let mut clan = found_clan(clan_id, fetched.one()?)?;
        require_role(&clan, actor, Role::Officer)?;
        let mut alliance = found_alliance(alliance_id, fetched.one()?)?;
        let invitation = found_invitation(alliance_id, clan_id, fetched.one()?)?;
        invitation.require_live(self.now())?;
        require_unallied(&clan)?;
        alliance.require_room(self.ports.rules.max_alliance_size)?;
        // A war may have started since the invitation: the rule holds at joining time too.
        let (members, wars) = self.members_and_wars(&alliance, &clan).await?;
        require_not_at_war(&clan, &members, &wars)?;
        alliance.admit(clan_id);
        clan.alliance_id = Some(alliance_id.clone());
        let mut tx = Transaction::new();
        tx.delete(
            RecordKey::Invitation(alliance_id.clone(), clan_id.clone()),
            invitation.version,
        );
        tx.update(&mut alliance);
        tx.update(&mut clan);
        tx.emit(self.formed(&alliance, clan_id));
        self.ports.commit(tx).await?;
        Ok(alliance)
    }

    /// The invited clan (its leader or an officer) turns the invitation down. No event: nothing
    /// changed for anyone but the two parties, who made or received the call.
    pub async fn decline(
        &self,
        alliance_id: &AllianceId,
        clan_id: &ClanId,
        actor: &PlayerId,
    ) -> DomainResult<()> {
        let mut fetched = self
            .ports
            .store
            .get_many(&[
                RecordKey::Clan(clan_id.clone()),
                RecordKey::Invitation(alliance_id.clone(), clan_id.clone()),
            ])
            .await?;
        let clan = found_clan(clan_id, fetched.one()?)?;
        require_role(&clan, actor, Role::Officer)?;
        let invitation = found_invitation(alliance_id, clan_id, fetched.one()?)?;
        let mut tx = Transaction::new();
        tx.delete(
            RecordKey::Invitation(alliance_id.clone(), clan_id.clone()),
            invitation.version,
        );
        self.ports.commit(tx).await
    }

    /// A member clan other than the founder leaves (its leader or an officer asks).
    pub async fn leave(
        &self,
        alliance_id: &AllianceId,
        clan_id: &ClanId,
        actor: &PlayerId,
    ) -> DomainResult<Alliance> {
        let mut fetched = self
            .ports
            .store
            .get_many(&[
                RecordKey::Clan(clan_id.clone()),
                RecordKey::Alliance(alliance_id.clone()),
            ])
            .await?;
        let mut clan = found_clan(clan_id, fetched.one()?)?;
        require_role(&clan, actor, Role::Officer)?;
        let mut alliance = found_alliance(alliance_id, fetched.one()?)?;
        alliance.remove(clan_id)?;
        let mut tx = Transaction::new();
        tx.update(&mut alliance);
        if clan.alliance_id.as_ref() == Some(alliance_id) {
            clan.alliance_id = None;
            tx.update(&mut clan);
        }
        let mut clan_ids = alliance.member_clan_ids.clone();
        clan_ids.push(clan_id.clone());
        tx.emit(self.ports.event(
            None,
            clan_ids,
            DomainEvent::AllianceLeft {
                alliance_id: alliance_id.clone(),
                clan_id: clan_id.clone(),
            },
        ));
        self.ports.commit(tx).await?;
        Ok(alliance)
    }

    /// The founder clan's leader ends the alliance; every member is free again. Open invitations
    /// are left to the table's TTL: accepting one now finds no alliance.
    pub async fn dissolve(&self, alliance_id: &AllianceId, actor: &PlayerId) -> DomainResult<()> {
        let alliance = self.alliance(alliance_id).await?;
        let (members, _) = self.members_and_wars(&alliance, None).await?;
        let founder = members
            .iter()
            .find(|c| c.clan_id == alliance.founder_clan_id)
            .ok_or_else(|| DomainError::ClanNotFound(alliance.founder_clan_id.clone()))?;
        require_role(founder, actor, Role::Leader)?;
        let mut tx = Transaction::new();
        for mut clan in members {
            if clan.alliance_id.as_ref() == Some(alliance_id) {
                clan.alliance_id = None;
                tx.update(&mut clan);
            }
        }
        tx.delete(RecordKey::Alliance(alliance_id.clone()), alliance.version);
        tx.emit(self.ports.event(
            None,
            alliance.member_clan_ids.clone(),
            DomainEvent::AllianceDissolved {
                alliance_id: alliance_id.clone(),
                member_clan_ids: alliance.member_clan_ids.clone(),
            },
        ));
        self.ports.commit(tx).await
    }

    pub async fn get(&self, alliance_id: &AllianceId) -> DomainResult<AllianceView> {
        let (alliance, invitations) = futures_util::future::join(
            self.alliance(alliance_id),
            self.ports.store.invitations_of_alliance(alliance_id),
        )
        .await;
        let alliance = alliance?;
        let now = self.now();
        let mut invitations: Vec<Invitation> = invitations?
            .into_iter()
            .filter(|i| !i.is_expired(now))
            .collect();
        invitations.sort_by(|a, b| a.clan_id.cmp(&b.clan_id));
        Ok(AllianceView {
            alliance,
            invitations,
        })
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.ports.clock.now()
    }

    async fn alliance(&self, id: &AllianceId) -> DomainResult<Alliance> {
        found_alliance(
            id,
            self.ports
                .store
                .load(RecordKey::Alliance(id.clone()))
                .await?,
        )
    }

    /// In one read: the alliance's member clans and, when a clan is about to join, the wars it
    /// is fighting (only wars it shares with a member can put them on opposite sides; at most
    /// `max_concurrent_wars`). A war missing from the store is stale bookkeeping, not a war.
    async fn members_and_wars(
        &self,
        alliance: &Alliance,
        joining: impl Into<Option<&Clan>>,
    ) -> DomainResult<(Vec<Clan>, Vec<War>)> {
        let war_ids: Vec<WarId> = joining
            .into()
            .map(|clan| clan.active_war_ids.clone())
            .unwrap_or_default();
        let mut keys: Vec<RecordKey> = alliance
            .member_clan_ids
            .iter()
            .cloned()
            .map(RecordKey::Clan)
            .collect();
        keys.extend(war_ids.iter().cloned().map(RecordKey::War));
        let mut fetched = self.ports.store.get_many(&keys).await?;
        let mut members = Vec::with_capacity(alliance.member_clan_ids.len());
        for id in &alliance.member_clan_ids {
            members.push(found_clan(id, fetched.one()?)?);
        }
        let wars = fetched
            .many::<War>(war_ids.len())?
            .into_iter()
            .flatten()
            .collect();
        Ok((members, wars))
    }

    fn formed(&self, alliance: &Alliance, clan_id: &ClanId) -> EventEnvelope {
        self.ports.event(
            None,
            alliance.member_clan_ids.clone(),
            DomainEvent::AllianceFormed {
                alliance_id: alliance.alliance_id.clone(),
                name: alliance.name.clone(),
                clan_id: clan_id.clone(),
                member_clan_ids: alliance.member_clan_ids.clone(),
            },
        )
    }
}

fn found_alliance(id: &AllianceId, alliance: Option<Alliance>) -> DomainResult<Alliance> {
    alliance.ok_or_else(|| DomainError::AllianceNotFound(id.clone()))
}

fn found_clan(id: &ClanId, clan: Option<Clan>) -> DomainResult<Clan> {
    clan.ok_or_else(|| DomainError::ClanNotFound(id.clone()))
}

fn found_invitation(
    alliance_id: &AllianceId,
    clan_id: &ClanId,
    invitation: Option<Invitation>,
) -> DomainResult<Invitation> {
    invitation.ok_or_else(|| DomainError::InvitationNotFound {
        alliance_id: alliance_id.clone(),
        clan_id: clan_id.clone(),
    })
}

/// The joining clan must not be at war with any member (wars as read with the members).
fn require_not_at_war(clan: &Clan, members: &[Clan], wars: &[War]) -> DomainResult<()> {
    let shared: BTreeSet<&WarId> = members
        .iter()
        .flat_map(|m| &m.active_war_ids)
        .filter(|w| clan.is_in_war(w))
        .collect();
    let wars: Vec<War> = wars
        .iter()
        .filter(|w| shared.contains(&w.war_id))
        .cloned()
        .collect();
    let member_ids: Vec<ClanId> = members.iter().map(|m| m.clan_id.clone()).collect();
    alliance::require_not_at_war_with_members(&clan.clan_id, &member_ids, &wars)
}

fn require_unallied(clan: &Clan) -> DomainResult<()> {
    match clan.alliance_id {
        Some(_) => Err(DomainError::AlreadyInAlliance(clan.clan_id.clone())),
        None => Ok(()),
    }
}

/// Any member clan's leader or officer may invite.
fn require_officer_of_any(
    alliance: &Alliance,
    members: &[Clan],
    actor: &PlayerId,
) -> DomainResult<()> {
    if members
        .iter()
        .any(|c| require_role(c, actor, Role::Officer).is_ok())
    {
        return Ok(());
    }
    Err(DomainError::Forbidden {
        actor: actor.clone(),
        clan_id: alliance.founder_clan_id.clone(),
        required: "leader or officer of a member clan",
    })
}

#[cfg(test)]
mod tests;
