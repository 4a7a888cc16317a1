//! A war's membership (SPEC §2, §8): an allied clan joining a side, a side surrendering, and a
//! primary leader's request to cancel (the war is cancelled once both leaders asked). The loop
//! over the war and the writes that close it are shared with [`super::lifecycle`]
//! ([`super::closing`]).
//!
//! Takes only the ports it uses ([`WarPorts`]): the store, the score board (a surrender
//! seals the war's counters), the clock, the id generator (event ids) and the deployment's
//! rules.

use super::closing::{final_scores, Close, WarWriter};
use super::require_role;
use super::ServicePorts;
use super::WarPorts;
use crate::clan::{Clan, Role};
use crate::error::{DomainError, DomainResult};
use crate::events::DomainEvent;
use crate::ids::{ClanId, PlayerId, WarId};
use crate::ports::{RecordKey, Transaction};
use crate::scoring;
use crate::war::{Side, War, WarStatus};
use serde::{Deserialize, Serialize};

/// `POST /wars/{id}/join` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub clan_id: ClanId,
    pub side: Side,
}

/// `POST /wars/{id}/surrender` and `/cancel` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClanRequest {
    pub clan_id: ClanId,
}

#[derive(Debug, Clone)]
pub struct MembershipService {
    ports: WarPorts,
    writer: WarWriter,
}

impl MembershipService {
    pub fn new(ports: WarPorts) -> Self {
        let writer = WarWriter::new(&ports);
        Self { ports, writer }
    }

    /// An allied clan joins a side during DECLARED/PREPARATION.
    pub async fn join(
        &self,
        war_id: &WarId,
        req: JoinRequest,
        actor: &PlayerId,
    ) -> DomainResult<War> {
        let joining = RecordKey::Clan(req.clan_id.clone());
        self.writer
            .retrying_with_records(war_id, vec![joining], |mut war, mut fetched| {
                let req = req.clone();
                async move {
                    let mut clan: Clan = fetched
                        .one()?
                        .ok_or_else(|| DomainError::ClanNotFound(req.clan_id.clone()))?;
                    require_role(&clan, actor, Role::Officer)?;
                    let primary = self.writer.clan(war.primary_clan(req.side)).await?;
                    war.add_ally(&clan, req.side, &primary, &self.writer.rules_for(&war))?;
                    clan.enter_war(war_id);
                    let mut tx = Transaction::new();
                    tx.update(&mut war);
                    tx.update(&mut clan);
                    tx.emit(self.writer.war_event(
                        &war,
                        DomainEvent::AllyJoined {
                            clan_id: req.clan_id.clone(),
                            side: req.side,
                        },
                    ));
                    Ok((war, Some(tx), ()))
                }
            })
            .await
            .map(|(war, ())| war)
    }

    /// The surrendering side loses at once; scores freeze; timers stop; rewards start.
    /// Repeating a surrender that already happened returns the ended war.
    ///
    /// The surrender is checked first, then the war's counters are sealed (no later score
    /// write lands), and the frozen scores are the sealed values themselves.
    pub async fn surrender(
        &self,
        war_id: &WarId,
        clan_id: &ClanId,
        actor: &PlayerId,
    ) -> DomainResult<War> {
        let mut fetched = self
            .ports
            .store
            .get_many(&[
                RecordKey::War(war_id.clone()),
                RecordKey::Clan(clan_id.clone()),
            ])
            .await?;
        let war: War = fetched
            .one()?
            .ok_or_else(|| DomainError::WarNotFound(war_id.clone()))?;
        if war.surrendered_by.as_ref() == Some(clan_id) {
            // A repeated surrender: what followed the first (timers stopped, rewards started)
            // is driven by its committed events, which are delivered at least once.
            return Ok(war);
        }
        let clan: Clan = fetched
            .one()?
            .ok_or_else(|| DomainError::ClanNotFound(clan_id.clone()))?;
        require_role(&clan, actor, Role::Officer)?;
        war.clone().surrender(clan_id, (0, 0), self.writer.now())?;
        let (sealed, closing) = futures_util::future::try_join(
            async { Ok(self.ports.scores.seal(war_id, war.score_shards).await?) },
            self.writer.closing(&war),
        )
        .await?;
        let sealed = &sealed;
        let (war, ()) = self
            .writer
            .retrying_from(war, closing, |mut war, closing| async move {
                if war.surrendered_by.as_ref() == Some(clan_id) {
                    return Ok((war, None, ()));
                }
                let now = self.writer.now();
                let side = war.surrender(clan_id, scoring::side_totals(&war, sealed), now)?;
                war.final_clan_scores = final_scores(&war, sealed);
                let winner = war.winner_side.expect("set by surrender");
                let mut tx = self.writer.close(&mut war, Close::Ended(winner), closing);
                tx.emit(self.writer.war_event(
                    &war,
                    DomainEvent::WarSurrendered {
                        clan_id: clan_id.clone(),
                        side,
                    },
                ));
                tx.emit(self.writer.war_ended_event(&war));
                Ok((war, Some(tx), ()))
            })
            .await?;
        Ok(war)
    }

    /// Records a primary leader's cancel request; the war is CANCELLED once both asked.
    pub async fn cancel(
        &self,
        war_id: &WarId,
        clan_id: &ClanId,
        actor: &PlayerId,
    ) -> DomainResult<War> {
        let leader = RecordKey::Clan(clan_id.clone());
        let (war, ()) = self
            .writer
            .retrying_with_records(war_id, vec![leader], |mut war, mut fetched| async move {
                if war.status == WarStatus::Cancelled && war.cancel_requests.contains(clan_id) {
                    return Ok((war, None, ()));
                }
                let clan: Clan = fetched
                    .one()?
                    .ok_or_else(|| DomainError::ClanNotFound(clan_id.clone()))?;
                require_role(&clan, actor, Role::Leader)?;
                let now = self.writer.now();
                if !war.request_cancel(clan_id, now)? {
                    let mut tx = Transaction::new();
                    tx.update(&mut war);
                    return Ok((war, Some(tx), ()));
                }
                let closing = self.writer.closing(&war).await?;
                let mut tx = self.writer.close(&mut war, Close::Abandoned, closing);
                tx.emit(self.writer.war_event(
                    &war,
                    DomainEvent::WarCancelled {
                        outcome: war.outcome.expect("set by cancel"),
                    },
                ));
                Ok((war, Some(tx), ()))
            })
            .await?;
        Ok(war)
    }
}

#[cfg(test)]
mod tests;
