//! Territory operations (SPEC §4): upsert by the world service, reads, the nearby query over the
//! cell index, capture, fortify, and the release of a war's territories when it closes.
//!
//! Takes only the ports it uses ([`TerritoryPorts`]): the store, the clock (capture times,
//! retry back-off), the id generator (event ids) and the deployment's rules.

use super::require_role;
use super::ServicePorts;
use crate::clan::{Clan, Role};
use crate::config::Rules;
use crate::error::{DomainError, DomainResult};
use crate::events::{DomainEvent, EventEnvelope};
use crate::ids::{ClanId, PlayerId, TerritoryId, WarId};
use crate::ledger::{EffectKind, LedgerEntry};
use crate::ports::{
    Clock, IdGenerator, RecordKey, ScoreDelta, Store, StoreError, StoreExt, Transaction,
};
use crate::spatial::{cells_covering, validate_query};
use crate::territory::{nearest_first, CaptureChange, Position, Territory, TerritoryInput};
use crate::war::{Capture, War};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Longest accepted capture dedupe id (it becomes part of a score-board key).
/// Room for `api-capture#<territory id>#<Idempotency-Key>` (12 + 64 + 1 + 128 bytes).
const MAX_DEDUPE_ID_LEN: usize = 256;

/// A capture, from the API (`actor` set) or from batch ingestion (trusted game server, no actor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureCommand {
    pub territory_id: TerritoryId,
    pub war_id: WarId,
    pub clan_id: ClanId,
    pub actor: Option<PlayerId>,
    /// Makes the capture's points count once: the event id, or an id derived from the request.
    pub dedupe_id: String,
    /// When it happened, as the game server reports it (batch events always say; the API may):
    /// the time its hold points count from, and what lets a late report count during ENDING.
    pub occurred_at: Option<DateTime<Utc>>,
}

/// A committed capture: the territory as stored now, and the points it scored.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureReceipt {
    pub territory: Territory,
    pub points: i64,
}

/// How one capture attempt ended.
enum Attempt {
    Committed(CaptureReceipt),
    /// The score write's dedupe id was applied before: this capture already happened.
    Duplicate,
    /// A territory or war write lost the version race.
    Conflict,
}

ports! {
    /// The ports the territory operations use.
    pub struct TerritoryPorts {
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        rules: Arc<Rules>,
    }
}

/// Territory operations over the ports.
#[derive(Debug, Clone)]
pub struct TerritoryService {
    ports: TerritoryPorts,
}

impl TerritoryService {
    pub fn new(ports: TerritoryPorts) -> Self {
        Self { ports }
    }

    async fn load(&self, id: &TerritoryId) -> DomainResult<Option<Territory>> {
        Ok(self
            .ports
            .store
            .load(RecordKey::Territory(id.clone()))
            .await?)
    }

    /// The territory, or `TerritoryNotFound`.
    pub async fn get(&self, id: &TerritoryId) -> DomainResult<Territory> {
        self.load(id)
            .await?
            .ok_or_else(|| DomainError::TerritoryNotFound(id.clone()))
    }

    /// `PUT /territories/{id}`: inserts, or updates at the read version. A PUT that changes
    /// nothing writes nothing (retries keep the version). The owner clan is not required to be
    /// known yet: the guild and world services sync independently. No event: SPEC §9 has none.
    pub async fn upsert(&self, id: TerritoryId, input: TerritoryInput) -> DomainResult<Territory> {
        input.validate()?;
        let rules = &self.ports.rules;
        let mut tx = Transaction::new();
        let territory = match self.load(&id).await? {
            Some(existing) if existing.matches_input(&input, rules) => return Ok(existing),
            Some(mut existing) => {
                existing.apply_input(input, rules)?;
                tx.update(&mut existing);
                existing
            }
            None => {
                let mut created = Territory::new(id, input, rules)?;
                tx.insert(&mut created);
                created
            }
        };
        self.ports.store.commit(tx).await?;
        Ok(territory)
    }

    /// Territories within `radius` of `(x, y)`, nearest first (ties by id), with their
    /// distances. Reads only the cells the circle touches.
    pub async fn nearby(&self, x: f64, y: f64, radius: f64) -> DomainResult<Vec<(Territory, f64)>> {
        validate_query(x, y, radius, &self.ports.rules)?;
        let cells = cells_covering(x, y, radius, self.ports.rules.cell_size_m);
        let candidates = self.ports.store.territories_in_cells(&cells).await?;
        Ok(nearest_first(Position { x, y }, radius, candidates))
    }

    /// Captures a contested territory for `cmd.clan_id` (rules in [`Territory::capture`]).
    ///
    /// One transaction: the capture's score delta (dedupe id `cmd.dedupe_id`), the territory,
    /// the war (its capture log; the versioned write also makes a capture lose against a
    /// concurrent phase change), and `TerritoryCaptured`. A lost version race is retried on
    /// fresh reads, so the rules are always checked against the state that is committed.
    ///
    /// Duplicates answer `AlreadyOwner` (409), never `ConcurrentModification`: retrying a
    /// duplicate cannot succeed, and the capture it repeats did take effect. That is the answer
    /// when the rules see the clan already owning the territory, when the store reports the
    /// dedupe id as applied, and when a conflict's re-read finds this capture recorded.
    pub async fn capture(&self, cmd: CaptureCommand) -> DomainResult<CaptureReceipt> {
        if cmd.dedupe_id.is_empty() || cmd.dedupe_id.len() > MAX_DEDUPE_ID_LEN {
            return Err(DomainError::invalid(
                "dedupe_id",
                format!("must be 1..={MAX_DEDUPE_ID_LEN} bytes"),
            ));
        }
        let skew = chrono::Duration::seconds(self.ports.rules.max_clock_skew_s);
        if cmd
            .occurred_at
            .is_some_and(|at| at > self.ports.clock.now() + skew)
        {
            return Err(DomainError::invalid("occurred_at", "lies in the future"));
        }
        // Another write to the territory or war (another capture, a battle, a phase change)
        // winning the optimistic-lock race is re-tried on fresh reads.
        let cmd = &cmd;
        crate::retry::optimistic(&*self.ports.clock, || async move {
            match self.try_capture(cmd).await? {
                Attempt::Committed(receipt) => Ok(receipt),
                Attempt::Duplicate => Err(DomainError::AlreadyOwner(cmd.clan_id.clone())),
                Attempt::Conflict if self.capture_recorded(cmd).await? => {
                    Err(DomainError::AlreadyOwner(cmd.clan_id.clone()))
                }
                Attempt::Conflict => Err(DomainError::ConcurrentModification),
            }
        })
        .await
    }

    /// One read (the territory, the war and, for a player, their clan), one transaction.
    async fn try_capture(&self, cmd: &CaptureCommand) -> DomainResult<Attempt> {
        let mut keys = vec![
            RecordKey::Territory(cmd.territory_id.clone()),
            RecordKey::War(cmd.war_id.clone()),
        ];
        if cmd.actor.is_some() {
            keys.push(RecordKey::Clan(cmd.clan_id.clone()));
        }
        let mut fetched = self.ports.store.get_many(&keys).await?;
        let territory: Option<Territory> = fetched.one()?;
        let war: Option<War> = fetched.one()?;
        if let Some(actor) = &cmd.actor {
            let clan: Clan = fetched
                .one()?
                .ok_or_else(|| DomainError::ClanNotFound(cmd.clan_id.clone()))?;
            require_role(&clan, actor, Role::Member)?;
        }
        let mut territory =
            territory.ok_or_else(|| DomainError::TerritoryNotFound(cmd.territory_id.clone()))?;
        let mut war = war.ok_or_else(|| DomainError::WarNotFound(cmd.war_id.clone()))?;
        let at = cmd.occurred_at.unwrap_or_else(|| self.ports.clock.now());
        let change = territory.capture(
            &war,
            &cmd.clan_id,
            at,
            &super::rules_for(&self.ports.rules, &war),
        )?;
        war.captures.push(Capture {
            territory_id: change.territory_id.clone(),
            from_clan_id: change.from.clone(),
            to_clan_id: change.to.clone(),
            side: change.side,
            at,
        });
        let mut tx = Transaction::new();
        // First, so a backend reporting only the first failed condition names the duplicate.
        let score_write = tx.score(ScoreDelta {
            war_id: war.war_id.clone(),
            dedupe_id: cmd.dedupe_id.clone(),
            shards: war.score_shards,
            players: Vec::new(),
            clans: vec![(change.to.clone(), change.points)],
            battle_kill: None,
            farm_guard: None,
            ledger: Some(Box::new(LedgerEntry::new(
                &war,
                &self.ports.rules,
                cmd.dedupe_id.clone(),
                EffectKind::Capture,
                at,
                None,
                change.to.clone(),
                change.side,
                change.points,
            ))),
        });
        tx.update(&mut territory);
        tx.update(&mut war);
        tx.emit(self.captured_event(&war.war_id, &change));
        match self.ports.store.commit(tx).await {
            Ok(()) => Ok(Attempt::Committed(CaptureReceipt {
                territory,
                points: change.points,
            })),
            Err(StoreError::Conflict { index: Some(i) }) if i == score_write => {
                Ok(Attempt::Duplicate)
            }
            Err(StoreError::Conflict { .. }) => Ok(Attempt::Conflict),
            Err(other) => Err(other.into()),
        }
    }

    fn captured_event(&self, war_id: &WarId, change: &CaptureChange) -> EventEnvelope {
        let clan_ids = std::iter::once(change.to.clone())
            .chain(change.from.clone())
            .collect();
        self.ports.event(
            Some(war_id),
            clan_ids,
            DomainEvent::TerritoryCaptured {
                territory_id: change.territory_id.clone(),
                from_clan_id: change.from.clone(),
                to_clan_id: change.to.clone(),
                side: change.side,
                points: change.points,
            },
        )
    }

    /// Whether the territory is owned by the command's clan with that capture in the war's log.
    async fn capture_recorded(&self, cmd: &CaptureCommand) -> DomainResult<bool> {
        let territory = self.get(&cmd.territory_id).await?;
        let war = super::load_war(&*self.ports.store, &cmd.war_id).await?;
        Ok(territory.owner_clan_id.as_ref() == Some(&cmd.clan_id)
            && war
                .captures
                .iter()
                .any(|c| c.territory_id == cmd.territory_id && c.to_clan_id == cmd.clan_id))
    }

    /// `POST /territories/{id}/fortify` by a leader or officer of the owner clan (rules in
    /// [`Territory::fortify`]). When a not-yet-ACTIVE war contests the territory, the war is
    /// written back at its read version too: that makes the fortify fail rather than slip in if
    /// the war turns ACTIVE between the read and the commit.
    pub async fn fortify(
        &self,
        id: TerritoryId,
        clan_id: ClanId,
        actor: PlayerId,
    ) -> DomainResult<Territory> {
        let mut fetched = self
            .ports
            .store
            .get_many(&[
                RecordKey::Territory(id.clone()),
                RecordKey::Clan(clan_id.clone()),
            ])
            .await?;
        let territory: Option<Territory> = fetched.one()?;
        let clan: Option<Clan> = fetched.one()?;
        let mut territory = territory.ok_or_else(|| DomainError::TerritoryNotFound(id.clone()))?;
        let clan = clan.ok_or_else(|| DomainError::ClanNotFound(clan_id.clone()))?;
        require_role(&clan, &actor, Role::Officer)?;
        let mut war = self.contesting_war(&territory).await?;
        let level = territory.fortify(&clan_id, war.as_ref(), &self.ports.rules)?;
        let mut tx = Transaction::new();
        tx.update(&mut territory);
        if let Some(war) = war.as_mut().filter(|w| !w.status.is_terminal()) {
            tx.update(war);
        }
        tx.emit(self.ports.event(
            territory.contested_by.as_ref(),
            vec![clan_id],
            DomainEvent::TerritoryFortified {
                territory_id: id,
                defense_level: level,
            },
        ));
        self.ports.store.commit(tx).await?;
        Ok(territory)
    }

    /// The war named by `contested_by`; a dangling id (war gone) counts as not contested.
    async fn contesting_war(&self, territory: &Territory) -> DomainResult<Option<War>> {
        match &territory.contested_by {
            None => Ok(None),
            Some(war_id) => Ok(self
                .ports
                .store
                .load(RecordKey::War(war_id.clone()))
                .await?),
        }
    }

    /// For the code that closes a war (end, surrender, cancellation, failed declaration): adds
    /// to `tx` the release of every territory of `territories` (the war's, as just read) that
    /// `war` still contests — a versioned update with `contested_by` cleared (owners stay) and
    /// a `TerritoryReleased` event each — and returns them as they will be stored. Territories
    /// already released or contested by another war are skipped, so calling it again is
    /// harmless. The caller commits `tx` (with its own war update) and must not write these
    /// territories in the same transaction.
    pub fn release_for_war(
        &self,
        war: &War,
        territories: Vec<Territory>,
        tx: &mut Transaction,
    ) -> Vec<Territory> {
        let mut released = Vec::new();
        for mut territory in territories {
            if !war.territory_ids.contains(&territory.territory_id)
                || !territory.release(&war.war_id)
            {
                continue;
            }
            tx.update(&mut territory);
            tx.emit(self.ports.event(
                Some(&war.war_id),
                war.all_clans(),
                DomainEvent::TerritoryReleased {
                    territory_id: territory.territory_id.clone(),
                    owner_clan_id: territory.owner_clan_id.clone(),
                },
            ));
            released.push(territory);
        }
        released
    }
}

#[cfg(test)]
mod tests;
