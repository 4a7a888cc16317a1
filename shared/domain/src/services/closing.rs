//! What the services that write a war share ([`super::lifecycle`], [`super::membership`]): the
//! optimistic-locking loop over a war, and the writes that take a war off the stage (end,
//! surrender, cancellation, failed declaration). One definition, both services use it.
//!
//! Every operation follows the same loop: load → check the pure rules → commit one transaction
//! guarded by the versions it read. A conflict means somebody else changed what we read, so we
//! load and check again (up to [`crate::retry::MAX_ATTEMPTS`], backing off with jitter): the
//! second pass reports the precise rule the concurrent change now violates, or succeeds.

use super::territories::{TerritoryPorts, TerritoryService};
use super::ServicePorts;
use crate::clan::Clan;
use crate::config::Rules;
use crate::error::{DomainError, DomainResult};
use crate::events::{DomainEvent, EventEnvelope};
use crate::ids::{ClanId, WarId};
use crate::ports::{Clock, Fetched, IdGenerator, PairLock, RecordKey, Store, Transaction};
use crate::scoring;
use crate::territory::Territory;
use crate::war::{RatingChange, Tally, War, WinnerSide};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a war leaves the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Close {
    /// Ended with a result: ratings move, peace shield and pair cooldown start.
    Ended(WinnerSide),
    /// Never really fought (mutual cancel, failed declaration): no shield, no cooldown.
    Abandoned,
}

/// What closing a war changes besides the war, as read before the change.
#[derive(Debug, Clone)]
pub(super) struct Closing {
    clans: BTreeMap<ClanId, Clan>,
    pair: Option<PairLock>,
    /// The war's territories that exist (sorted by id).
    pub(super) territories: Vec<Territory>,
}

/// Loads a war, lets a step decide, commits (again on a lost race); and writes a war's close.
/// Over the ports this takes: the store, the clock ("now", back-off), the id generator (event
/// ids) and the deployment's rules (a war's own, through its ruleset).
#[derive(Clone)]
pub(super) struct WarWriter {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    rules: Arc<Rules>,
}

impl std::fmt::Debug for WarWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarWriter")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl ServicePorts for WarWriter {
    fn store(&self) -> &dyn Store {
        &*self.store
    }
    fn clock(&self) -> &dyn Clock {
        &*self.clock
    }
    fn ids(&self) -> &dyn IdGenerator {
        &*self.ids
    }
    fn deployment_rules(&self) -> &Arc<Rules> {
        &self.rules
    }
}

impl WarWriter {
    pub(super) fn new(ports: &super::WarPorts) -> Self {
        Self {
            store: ports.store.clone(),
            clock: ports.clock.clone(),
            ids: ports.ids.clone(),
            rules: ports.rules.clone(),
        }
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A new envelope about `war`, to all its clans, stamped now.
    pub(super) fn war_event(&self, war: &War, event: DomainEvent) -> EventEnvelope {
        self.event(Some(&war.war_id), war.all_clans(), event)
    }

    pub(super) fn war_ended_event(&self, war: &War) -> EventEnvelope {
        self.war_event(
            war,
            DomainEvent::WarEnded {
                winner_side: war.winner_side.expect("ended wars have a winner"),
                outcome: war.outcome.expect("ended wars have an outcome"),
                attacker_score: war.sides.attacker.score,
                defender_score: war.sides.defender.score,
            },
        )
    }

    /// Load the war, let `step` decide, commit; on a version conflict start over.
    pub(super) async fn retrying<F, Fut>(&self, war_id: &WarId, mut step: F) -> DomainResult<War>
    where
        F: FnMut(War) -> Fut,
        Fut: std::future::Future<Output = DomainResult<(War, Option<Transaction>)>>,
    {
        let (war, ()) = self
            .retrying_with(war_id, |war| {
                let attempt = step(war);
                async move {
                    let (war, tx) = attempt.await?;
                    Ok((war, tx, ()))
                }
            })
            .await?;
        Ok(war)
    }

    /// [`Self::retrying`] for steps that also report a value.
    pub(super) async fn retrying_with<F, Fut, T>(
        &self,
        war_id: &WarId,
        step: F,
    ) -> DomainResult<(War, T)>
    where
        F: FnMut(War) -> Fut,
        Fut: std::future::Future<Output = DomainResult<(War, Option<Transaction>, T)>>,
    {
        self.attempts(None, || self.war(war_id), step).await
    }

    /// [`Self::retrying_with`] where the step also needs `keys`: read with the war, in one
    /// round trip.
    pub(super) async fn retrying_with_records<F, Fut, T>(
        &self,
        war_id: &WarId,
        keys: Vec<RecordKey>,
        mut step: F,
    ) -> DomainResult<(War, T)>
    where
        F: FnMut(War, Fetched) -> Fut,
        Fut: std::future::Future<Output = DomainResult<(War, Option<Transaction>, T)>>,
    {
        let mut all = vec![RecordKey::War(war_id.clone())];
        all.extend(keys);
        let all = &all;
        let load = || async move {
            let mut fetched = self.store.get_many(all).await?;
            let war: War = fetched
                .one()?
                .ok_or_else(|| DomainError::WarNotFound(war_id.clone()))?;
            Ok((war, fetched))
        };
        self.attempts(None, load, |(war, fetched)| step(war, fetched))
            .await
    }

    /// [`Self::retrying_with`] for a war on its way out, whose first attempt runs on the war
    /// and [`Closing`] the caller already read; a retry reads both again.
    pub(super) async fn retrying_from<F, Fut, T>(
        &self,
        war: War,
        closing: Closing,
        mut step: F,
    ) -> DomainResult<(War, T)>
    where
        F: FnMut(War, Closing) -> Fut,
        Fut: std::future::Future<Output = DomainResult<(War, Option<Transaction>, T)>>,
    {
        let war_id = &war.war_id.clone();
        let load = || async move {
            let war = self.war(war_id).await?;
            let closing = self.closing(&war).await?;
            Ok((war, closing))
        };
        self.attempts(Some((war, closing)), load, |(war, closing)| {
            step(war, closing)
        })
        .await
    }

    /// The optimistic-locking loop: take the state (`first`, then `load` again after each
    /// lost race), let `step` decide, commit: [`crate::retry::Attempts`] bounds the rounds.
    async fn attempts<S, L, LFut, F, Fut, T>(
        &self,
        mut first: Option<S>,
        load: L,
        mut step: F,
    ) -> DomainResult<(War, T)>
    where
        L: Fn() -> LFut,
        LFut: std::future::Future<Output = DomainResult<S>>,
        F: FnMut(S) -> Fut,
        Fut: std::future::Future<Output = DomainResult<(War, Option<Transaction>, T)>>,
    {
        let mut attempts = crate::retry::Attempts::new(&*self.clock);
        loop {
            attempts.next().await?;
            let state = match first.take() {
                Some(state) => state,
                None => load().await?,
            };
            let (war, tx, value) = step(state).await?;
            let Some(tx) = tx else {
                return Ok((war, value));
            };
            match self.commit(tx).await {
                Ok(()) => return Ok((war, value)),
                Err(DomainError::ConcurrentModification) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// What closing `war` writes besides the war, read in one round trip.
    pub(super) async fn closing(&self, war: &War) -> DomainResult<Closing> {
        let clan_ids = war.all_clans();
        let mut territory_ids = war.territory_ids.clone();
        territory_ids.sort();
        territory_ids.dedup();
        let mut keys: Vec<RecordKey> = clan_ids.iter().cloned().map(RecordKey::Clan).collect();
        keys.push(RecordKey::pair(
            &war.attacker_clan_id,
            &war.defender_clan_id,
        ));
        keys.extend(territory_ids.iter().cloned().map(RecordKey::Territory));
        let mut fetched = self.store.get_many(&keys).await?;
        let mut clans = BTreeMap::new();
        for (id, clan) in clan_ids.iter().zip(fetched.many::<Clan>(clan_ids.len())?) {
            let clan = clan.ok_or_else(|| DomainError::ClanNotFound(id.clone()))?;
            clans.insert(id.clone(), clan);
        }
        let pair = fetched.one()?;
        let mut territories = Vec::with_capacity(territory_ids.len());
        for (id, territory) in territory_ids
            .iter()
            .zip(fetched.many::<Territory>(territory_ids.len())?)
        {
            match territory {
                Some(territory) => territories.push(territory),
                None => {
                    tracing::warn!(war_id = %war.war_id, territory_id = %id, "war territory missing")
                }
            }
        }
        Ok(Closing {
            clans,
            pair,
            territories,
        })
    }

    /// The writes that take a war off the stage: the war itself, every clan's bookkeeping (and
    /// ratings when it ended), the pair lock and the released territories.
    pub(super) fn close(&self, war: &mut War, how: Close, closing: Closing) -> Transaction {
        let now = self.now();
        let Closing {
            mut clans,
            pair,
            territories,
        } = closing;
        let mut tx = Transaction::new();
        if let Close::Ended(winner) = how {
            let ratings = clans.iter().map(|(id, c)| (id.clone(), c.rating)).collect();
            let changes =
                scoring::side_rating_changes(war, &ratings, winner, self.rules_for(war).elo_k);
            // What a rescore needs to recompute this result exactly (held land is read before
            // the territories are released below).
            let (held_attacker, held_defender) = scoring::territories_held(war, &territories);
            war.tally = Some(Tally {
                held_attacker,
                held_defender,
                ratings: changes
                    .iter()
                    .map(|(clan_id, old, new)| RatingChange {
                        clan_id: clan_id.clone(),
                        old_rating: *old,
                        new_rating: *new,
                    })
                    .collect(),
            });
            for (clan_id, old, new) in changes {
                if let Some(clan) = clans.get_mut(&clan_id) {
                    clan.rating = new;
                }
                tx.emit(self.war_event(
                    war,
                    DomainEvent::ClanRatingChanged {
                        clan_id,
                        old_rating: old,
                        new_rating: new,
                    },
                ));
            }
        }
        for clan in clans.values_mut() {
            match how {
                Close::Ended(_) => clan.leave_war(&war.war_id, now),
                Close::Abandoned => clan.abandon_war(&war.war_id),
            }
            tx.update(clan);
        }
        if let Some(mut pair) = pair.filter(|p| p.active_war_id.as_ref() == Some(&war.war_id)) {
            pair.active_war_id = None;
            if matches!(how, Close::Ended(_)) {
                pair.last_ended_at = Some(now);
            }
            tx.update(&mut pair);
        }
        self.territories()
            .release_for_war(war, territories, &mut tx);
        tx.update(war);
        tx
    }

    fn territories(&self) -> TerritoryService {
        TerritoryService::new(TerritoryPorts {
            store: self.store.clone(),
            clock: self.clock.clone(),
            ids: self.ids.clone(),
            rules: self.rules.clone(),
        })
    }
}

/// Every clan of the war with its final points (0 for a clan that scored none).
pub(super) fn final_scores(war: &War, totals: &BTreeMap<ClanId, i64>) -> BTreeMap<ClanId, i64> {
    war.all_clans()
        .into_iter()
        .map(|clan| {
            let points = totals.get(&clan).copied().unwrap_or(0);
            (clan, points)
        })
        .collect()
}
