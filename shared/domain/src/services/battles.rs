//! Battle operations (SPEC §5): create, read, resolve.
//!
//! A battle is written together with its war: the war's `open_battles` list is what enforces
//! `max_concurrent_battles`, and the versioned war write makes two concurrent creations unable
//! to both take the last slot. A lost race is re-checked on fresh reads.
//!
//! Takes only the ports it uses ([`WarPorts`]): the store, the score board (kills per side,
//! the win bonus), the clock, the id generator (battle and event ids) and the deployment's rules.

use super::ServicePorts;
use super::WarPorts;
use crate::battle::{Battle, BattleStatus};
use crate::error::{DomainError, DomainResult};
use crate::events::DomainEvent;
use crate::ids::{BattleId, WarId};
use crate::ledger::{EffectKind, LedgerEntry};
use crate::ports::{RecordKey, ScoreDelta, SideKills, StoreExt, Transaction};
use crate::war::{OpenBattle, Side, War};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crate::battle::{BattleInput, ResolveInput};

/// `GET /wars/{war_id}/battles/{battle_id}`: the battle, its state now and the kills per side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BattleView {
    pub battle: Battle,
    pub state: BattleStatus,
    pub kills: SideKills,
}

/// The dedupe id of a battle's win bonus: a battle pays its bonus once, whatever the retries.
pub fn bonus_dedupe_id(battle_id: &BattleId) -> String {
    format!("battle-bonus#{battle_id}")
}

/// Battle operations over the ports.
#[derive(Debug, Clone)]
pub struct BattleService {
    ports: WarPorts,
}

impl BattleService {
    pub fn new(ports: WarPorts) -> Self {
        Self { ports }
    }

    /// Opens a battle: the battle, the war's open-battle slot and `BattleCreated` in one commit.
    pub async fn create(&self, war_id: &WarId, input: BattleInput) -> DomainResult<Battle> {
        input.validate(&self.ports.rules)?;
        let battle_id = BattleId::new(self.ports.ids.new_id()).expect("generated ids are valid");
        self.retrying(|| self.try_create(war_id, &battle_id, &input))
            .await
    }

    async fn try_create(
        &self,
        war_id: &WarId,
        battle_id: &BattleId,
        input: &BattleInput,
    ) -> DomainResult<(Battle, Transaction)> {
        let mut war = self.ports.war(war_id).await?;
        let now = self.ports.clock.now();
        let rules = self.ports.rules_for(&war);
        let mut battle = Battle::create(&war, battle_id.clone(), input.clone(), now, &rules)?;
        // Expired entries no longer count against the limit; dropping them keeps the war small.
        war.open_battles.retain(|b| b.expires_at > now);
        war.open_battles.push(OpenBattle {
            battle_id: battle.battle_id.clone(),
            expires_at: battle.expires_at,
        });
        let mut tx = Transaction::new();
        tx.update(&mut war);
        tx.insert(&mut battle);
        tx.emit(self.ports.event(
            Some(war_id),
            war.all_clans(),
            DomainEvent::BattleCreated {
                battle_id: battle.battle_id.clone(),
                territory_id: battle.territory_id.clone(),
                position: battle.position,
                max_players: battle.max_players,
            },
        ));
        Ok((battle, tx))
    }

    /// The battle with its state at the clock's time and the kills recorded per side.
    pub async fn get(&self, war_id: &WarId, battle_id: &BattleId) -> DomainResult<BattleView> {
        let (battle, war) =
            futures_util::future::join(self.load(war_id, battle_id), self.ports.war(war_id)).await;
        let (battle, war) = (battle?, war?);
        let kills = self
            .ports
            .scores
            .battle_kills(war_id, war.score_shards, battle_id)
            .await?;
        Ok(BattleView {
            state: battle.state_at(self.ports.clock.now(), kills),
            battle,
            kills,
        })
    }

    /// Records the winner of an open battle during ACTIVE: the battle, the war (slot freed),
    /// `battle_win_bonus` to the winning side's primary clan and `BattleResolved`, in one commit.
    pub async fn resolve(
        &self,
        war_id: &WarId,
        battle_id: &BattleId,
        input: ResolveInput,
    ) -> DomainResult<Battle> {
        let now = self.ports.clock.now();
        let at = input.occurred_at.unwrap_or(now);
        if at > now + chrono::Duration::seconds(self.ports.rules.max_clock_skew_s) {
            return Err(DomainError::invalid("occurred_at", "lies in the future"));
        }
        self.retrying(|| self.try_resolve(war_id, battle_id, input.winner_side, at))
            .await
    }

    async fn try_resolve(
        &self,
        war_id: &WarId,
        battle_id: &BattleId,
        winner_side: Side,
        at: DateTime<Utc>,
    ) -> DomainResult<(Battle, Transaction)> {
        let mut fetched = self
            .ports
            .store
            .get_many(&[
                RecordKey::War(war_id.clone()),
                RecordKey::Battle(war_id.clone(), battle_id.clone()),
            ])
            .await?;
        let mut war: War = fetched
            .one()?
            .ok_or_else(|| DomainError::WarNotFound(war_id.clone()))?;
        let mut battle: Battle = fetched
            .one()?
            .ok_or_else(|| DomainError::BattleNotFound(battle_id.clone()))?;
        // The bonus is a score event: it counts if the battle ended during ACTIVE (SPEC §2, §6).
        war.require_scoring_at(at)?;
        battle.resolve(winner_side, at)?;
        war.open_battles.retain(|b| &b.battle_id != battle_id);
        let bonus = self.ports.rules_for(&war).battle_win_bonus;
        let mut tx = Transaction::new();
        tx.update(&mut battle);
        tx.update(&mut war);
        tx.score(bonus_delta(
            &war,
            battle_id,
            winner_side,
            at,
            &self.ports.rules,
        ));
        tx.emit(self.ports.event(
            Some(war_id),
            war.all_clans(),
            DomainEvent::BattleResolved {
                battle_id: battle_id.clone(),
                winner_side,
                bonus,
            },
        ));
        Ok((battle, tx))
    }

    async fn load(&self, war_id: &WarId, battle_id: &BattleId) -> DomainResult<Battle> {
        self.ports
            .store
            .load(RecordKey::Battle(war_id.clone(), battle_id.clone()))
            .await?
            .ok_or_else(|| DomainError::BattleNotFound(battle_id.clone()))
    }

    /// Runs `attempt` and commits its transaction; a version conflict starts over on fresh
    /// reads, so the rules are always checked against what is actually committed.
    async fn retrying<F, Fut>(&self, mut attempt: F) -> DomainResult<Battle>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = DomainResult<(Battle, Transaction)>>,
    {
        crate::retry::optimistic(&*self.ports.clock, || {
            let attempt = attempt();
            async move {
                let (battle, tx) = attempt.await?;
                self.ports.commit(tx).await?;
                Ok(battle)
            }
        })
        .await
    }
}

fn bonus_delta(
    war: &War,
    battle_id: &BattleId,
    winner: Side,
    at: DateTime<Utc>,
    rules: &crate::config::Rules,
) -> ScoreDelta {
    let bonus = rules.battle_win_bonus;
    let clan = war.primary_clan(winner).clone();
    let dedupe_id = bonus_dedupe_id(battle_id);
    ScoreDelta {
        war_id: war.war_id.clone(),
        dedupe_id: dedupe_id.clone(),
        shards: war.score_shards,
        players: Vec::new(),
        clans: vec![(clan.clone(), bonus)],
        battle_kill: None,
        farm_guard: None,
        ledger: Some(Box::new(LedgerEntry::new(
            war,
            rules,
            dedupe_id,
            EffectKind::BattleBonus,
            at,
            None,
            clan,
            winner,
            bonus,
        ))),
    }
}

#[cfg(test)]
mod tests;
