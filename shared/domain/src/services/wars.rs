//! War operations (SPEC §2, §3, §8) outside a war's lifecycle and membership: declare (the
//! saga around [`DeclarationService`]; its compensation is
//! [`LifecycleService::compensate_declaration`]), the reads (a war with live scores, a clan's
//! war log), and what follows a war's committed events (`react`: the declare-war saga's safety
//! net, the reward saga, stopping the phase timers).
//!
//! Phase moves, the final tally and the operator controls are [`super::lifecycle`]; joining,
//! surrendering and a leader's cancel are [`super::membership`].
//!
//! Takes only the ports it uses ([`WarServicePorts`]): the workflow starter, and what the
//! declaration, lifecycle and reward services it hands work to take (the store, the score
//! board, the clock, the id generator and the deployment's rules).

use super::declaration::{DeclarationPorts, DeclarationService, Declared};
use super::lifecycle::LifecycleService;
use super::rewards::RewardService;
use super::ServicePorts;
use super::WarPorts;
use crate::config::Rules;
use crate::declaration::DeclareCommand;
use crate::error::{DomainError, DomainResult};
use crate::events::{DomainEvent, EventEnvelope};
use crate::ids::{ClanId, WarId};
use crate::ports::{Clock, IdGenerator, Page, PageRequest, ScoreBoard, Store, WorkflowStarter};
use crate::scoring;
use crate::war::{OperatorActionKind, War, WarStatus};
use std::sync::Arc;

/// Largest page of the war log.
pub const MAX_PAGE: usize = 100;

ports! {
    /// The ports the war operations use, with what declare and react hand to the declaration,
    /// lifecycle and reward services.
    pub struct WarServicePorts {
        store: Arc<dyn Store>,
        scores: Arc<dyn ScoreBoard>,
        workflows: Arc<dyn WorkflowStarter>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        rules: Arc<Rules>,
    }
}

impl WarServicePorts {
    fn declaration(&self) -> DeclarationPorts {
        DeclarationPorts {
            store: self.store.clone(),
            clock: self.clock.clone(),
            ids: self.ids.clone(),
            rules: self.rules.clone(),
        }
    }

    /// The ports of the lifecycle and reward services this one hands work to.
    fn war_ports(&self) -> WarPorts {
        WarPorts {
            store: self.store.clone(),
            scores: self.scores.clone(),
            clock: self.clock.clone(),
            ids: self.ids.clone(),
            rules: self.rules.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WarService {
    ports: WarServicePorts,
}

impl WarService {
    pub fn new(ports: WarServicePorts) -> Self {
        Self { ports }
    }

    /// A declaration: validate and write the war, then start its declare-war saga (which
    /// starts the timers and compensates if they cannot start). If even the saga cannot start,
    /// compensate here (cancel the war, release everything) and report the outage.
    pub async fn declare(&self, cmd: DeclareCommand) -> DomainResult<Declared> {
        let declared = DeclarationService::new(self.ports.declaration())
            .create(cmd)
            .await?;
        if let Err(err) = self.ports.workflows.start_declaration(&declared.war).await {
            LifecycleService::new(self.ports.war_ports())
                .compensate_declaration(&declared.war.war_id)
                .await?;
            return Err(DomainError::WorkflowUnavailable(err));
        }
        Ok(declared)
    }

    /// A war with live side scores (frozen ones once it ended).
    pub async fn get(&self, war_id: &WarId) -> DomainResult<War> {
        let mut war = self.ports.war(war_id).await?;
        if !war.status.is_terminal() {
            let totals = self
                .ports
                .scores
                .clan_totals(war_id, war.score_shards)
                .await?;
            let (attacker, defender) = scoring::side_totals(&war, &totals);
            war.sides.attacker.score = attacker;
            war.sides.defender.score = defender;
        }
        Ok(war)
    }

    /// A clan's war log, newest first.
    pub async fn list_for_clan(
        &self,
        clan_id: &ClanId,
        status: Option<WarStatus>,
        limit: usize,
        cursor: Option<String>,
    ) -> DomainResult<Page<War>> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(DomainError::invalid(
                "limit",
                format!("must be 1..={MAX_PAGE}"),
            ));
        }
        // The clan must exist; its log is read side by side with that check.
        let (clan, page) = futures_util::future::join(
            self.ports.clan(clan_id),
            self.ports
                .store
                .wars_of_clan(clan_id, status, PageRequest { limit, cursor }),
        )
        .await;
        clan?;
        Ok(page?)
    }

    /// What follows a war's committed events (so it happens at least once, off the caller's
    /// path): `WarDeclared` makes sure the declare-war saga runs, `WarEnded` starts the reward
    /// saga, a surrender or a cancellation stops the phase timers. Every call is idempotent, so
    /// a redelivered event changes nothing.
    pub async fn react(&self, event: &EventEnvelope) -> DomainResult<()> {
        let Some(war_id) = &event.war_id else {
            return Ok(());
        };
        let workflows = &self.ports.workflows;
        let done = match &event.event {
            DomainEvent::WarDeclared { .. } => return self.ensure_declaration_saga(war_id).await,
            DomainEvent::WarEnded { .. } => workflows.start_rewards(war_id).await,
            DomainEvent::WarSurrendered { .. } | DomainEvent::WarCancelled { .. } => {
                workflows.stop_lifecycle(war_id).await
            }
            DomainEvent::WarRescored(_)
            | DomainEvent::RewardsDistributed { .. }
            | DomainEvent::RewardDistributionFailed { .. } => {
                return self.follow_rewards(war_id).await
            }
            DomainEvent::OperatorActed(action)
                if action.action == OperatorActionKind::RedriveRewards =>
            {
                return self.follow_rewards(war_id).await
            }
            _ => return Ok(()),
        };
        done.map_err(DomainError::WorkflowUnavailable)
    }

    /// After a rescore, a re-drive or the end of a distribution run: the reward plan follows
    /// the war's last rescore ([`RewardService::follow`]; a run still going is corrected when it
    /// ends) and the run waiting for it starts (`<war_id>-<run>`, once whatever the
    /// redeliveries).
    async fn follow_rewards(&self, war_id: &WarId) -> DomainResult<()> {
        let run = RewardService::new(self.ports.war_ports())
            .follow(war_id)
            .await?;
        if let Some(run) = run {
            self.ports
                .workflows
                .start_rewards_run(war_id, &run)
                .await
                .map_err(DomainError::WorkflowUnavailable)?;
        }
        Ok(())
    }

    /// The safety net of a declaration. The declaring request starts the saga right after its
    /// commit, but a process that dies (or times out) in between leaves a war that nothing
    /// moves. Its committed `WarDeclared` reaches here at least once: a war still DECLARED gets
    /// its saga (started under the war id, so when the request did start it, this is the same
    /// execution and nothing changes). A war past DECLARED, or cancelled by the request's own
    /// compensation, needs nothing.
    async fn ensure_declaration_saga(&self, war_id: &WarId) -> DomainResult<()> {
        let war = match self.ports.war(war_id).await {
            Ok(war) => war,
            Err(DomainError::WarNotFound(_)) => return Ok(()),
            Err(err) => return Err(err),
        };
        if war.status != WarStatus::Declared {
            return Ok(());
        }
        self.ports
            .workflows
            .start_declaration(&war)
            .await
            .map_err(DomainError::WorkflowUnavailable)
    }
}

#[cfg(test)]
mod tests;
