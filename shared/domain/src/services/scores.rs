//! Battle event ingestion and score reads (SPEC §5, §6).
//!
//! A batch is judged event by event against one read of the war: kills and assists become
//! exactly-once score deltas keyed by their `event_id`, captures go through the territory
//! rules with the same key. Because every effect is keyed by its event id, a batch that fails
//! half way (store outage) can simply be sent again: what was applied counts as duplicate.
//!
//! Takes only the ports it uses ([`ScorePorts`]): the store, the score board, the event publisher
//! (score snapshots), the clock, the id generator (event ids) and the deployment's rules.

use super::territories::{CaptureCommand, TerritoryPorts, TerritoryService};
use super::ServicePorts;
use crate::clan::Clan;
use crate::config::Rules;
use crate::error::{DomainError, DomainResult};
use crate::events::DomainEvent;
use crate::ids::{BattleId, ClanId, EventId, PlayerId, WarId};
use crate::ledger::{LedgerEntry, LedgerFilter, MAX_LEDGER_LIMIT};
use crate::ports::{
    ApplyOutcome, Clock, EventPublisher, IdGenerator, Page, PageRequest, PlayerScore, RecordKey,
    ScoreBoard, ScoreDelta, Store, Transaction,
};
use crate::scoring::{self, codes, BattleEvent, CaptureEvent, Evaluation, Rejection};
use crate::war::{Side, War, WarStatus};
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Top players shown when the caller does not say.
pub const DEFAULT_TOP_PLAYERS: usize = 10;
/// Most clans a batch may name and still have their records read with the war.
pub const MAX_CLANS_WITH_WAR: usize = 32;
/// Most top players one scoreboard read returns.
pub const MAX_TOP_PLAYERS: usize = 100;

/// The answer to a batch: `{accepted, duplicates, rejected: [{event_id, code, reason}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<RejectedEvent>,
    /// Ingestion lag of the accepted events (processing time − `occurred_at`), milliseconds:
    /// `(max, mean)`, for the `ScoreIngestionLag` metric; not part of the answer.
    #[serde(skip)]
    pub lag_ms: Option<(i64, i64)>,
}

/// `(max, mean)` of the accepted events' lags in milliseconds, if any was accepted.
pub fn ingestion_lag(lags_ms: &[i64]) -> Option<(i64, i64)> {
    let max = *lags_ms.iter().max()?;
    let mean = lags_ms.iter().sum::<i64>() / lags_ms.len() as i64;
    Some((max, mean))
}

/// One event that does not count, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedEvent {
    pub event_id: EventId,
    pub code: String,
    pub reason: String,
}

/// `GET /wars/{war_id}/scoreboard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scoreboard {
    pub war_id: WarId,
    pub sides: SideScores,
    pub clans: Vec<ClanScore>,
    pub top_players: Vec<PlayerScore>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideScores {
    pub attacker: SideScore,
    pub defender: SideScore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideScore {
    pub score: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClanScore {
    pub clan_id: crate::ids::ClanId,
    pub side: Side,
    pub score: i64,
}

/// What became of one event.
enum Verdict {
    Accepted,
    Duplicate,
    Rejected(Rejection),
}

ports! {
    /// The ports ingestion and the score reads use.
    pub struct ScorePorts {
        store: Arc<dyn Store>,
        scores: Arc<dyn ScoreBoard>,
        events: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        rules: Arc<Rules>,
    }
}

impl ScorePorts {
    fn territory(&self) -> TerritoryPorts {
        TerritoryPorts {
            store: self.store.clone(),
            clock: self.clock.clone(),
            ids: self.ids.clone(),
            rules: self.rules.clone(),
        }
    }
}

/// Event ingestion and score reads.
///
/// `ScoreSnapshot` throttling: each service instance remembers when it last emitted a snapshot
/// per war (build the service once per cold start to make that memory useful), and a snapshot
/// additionally claims its time slot (`snapshot#<now / interval>`) through the score board's
/// exactly-once ids, side by side with reading the totals. So however many Lambda instances
/// ingest for one war, at most one snapshot goes out per slot. It is published directly: a
/// reading of the counters, not a state change, so it needs no outbox entry.
#[derive(Debug, Clone)]
pub struct ScoreService {
    ports: ScorePorts,
    last_snapshots: Arc<Mutex<HashMap<WarId, DateTime<Utc>>>>,
}

impl ScoreService {
    pub fn new(ports: ScorePorts) -> Self {
        Self {
            ports,
            last_snapshots: Arc::default(),
        }
    }

    /// Judges and applies a batch. Refused as a whole (400) when larger than
    /// `max_events_per_batch`; an event id repeated inside the batch counts once.
    ///
    /// The batch is judged in memory against one read of the war and of the clans the events
    /// name (one `BatchGetItem`: SPEC §5's membership rule costs no extra round trip), and of
    /// its battles, read in the same round trip when an event names one; every kill and assist is then handed to
    /// the score board in one call, which writes it with cost proportional to the distinct
    /// keys touched (see `docs/scores.md`). A due `ScoreSnapshot` is taken beside that write,
    /// not after it. Captures go through the territory rules one by one (they are rare).
    pub async fn ingest(
        &self,
        war_id: &WarId,
        events: Vec<BattleEvent>,
    ) -> DomainResult<BatchOutcome> {
        let max = self.ports.rules.max_events_per_batch;
        if events.len() > max {
            return Err(DomainError::invalid(
                "events",
                format!("at most {max} events per batch, got {}", events.len()),
            ));
        }
        let (war_and_clans, battles) = join(
            self.war_and_clans(war_id, &events),
            self.battles_named(war_id, &events),
        )
        .await;
        let ((war, clans), battles) = (war_and_clans?, battles?);
        let now = self.ports.clock.now();
        let rules = self.ports.rules_for(&war);

        let mut verdicts: Vec<Option<Verdict>> = Vec::with_capacity(events.len());
        let mut scored: Vec<(usize, ScoreDelta)> = Vec::new();
        let mut captures: Vec<(usize, CaptureEvent)> = Vec::new();
        let mut seen = HashSet::new();
        for (i, event) in events.iter().enumerate() {
            if !seen.insert(event.event_id()) {
                verdicts.push(Some(Verdict::Duplicate));
                continue;
            }
            let evaluation = scoring::evaluate(&war, event, now, &rules)
                .and_then(|e| scoring::require_members(event, &clans).map(|()| e))
                .and_then(|e| scoring::require_known_battle(event, &battles).map(|()| e));
            verdicts.push(match evaluation {
                Err(rejection) => Some(Verdict::Rejected(rejection)),
                Ok(Evaluation::Score(delta)) => {
                    scored.push((i, delta));
                    None
                }
                Ok(Evaluation::Capture(capture)) => {
                    captures.push((i, capture));
                    None
                }
            });
        }

        let (positions, deltas): (Vec<usize>, Vec<ScoreDelta>) = scored.into_iter().unzip();
        let snapshot = async {
            if deltas.is_empty() {
                return;
            }
            if let Err(err) = self.snapshot_if_due(&war).await {
                // A missed snapshot is made up by a later batch.
                tracing::warn!(war_id = %war_id, error = %err, "score snapshot skipped");
            }
        };
        let apply = async {
            if deltas.is_empty() {
                return Ok(Vec::new());
            }
            self.ports.scores.apply_batch(deltas.clone()).await
        };
        let (outcomes, ()) = join(apply, snapshot).await;
        for ((position, delta), outcome) in positions.iter().zip(&deltas).zip(outcomes?) {
            verdicts[*position] = Some(self.verdict_of(&war, delta, outcome));
        }
        for (position, capture) in captures {
            verdicts[position] = Some(self.capture(&war, capture).await?);
        }

        let mut outcome = BatchOutcome::default();
        let mut lags = Vec::new();
        for (event, verdict) in events.iter().zip(verdicts) {
            match verdict.expect("every event is judged") {
                Verdict::Accepted => {
                    outcome.accepted += 1;
                    lags.push((now - event.occurred_at()).num_milliseconds());
                }
                Verdict::Duplicate => outcome.duplicates += 1,
                Verdict::Rejected(r) => {
                    tracing::debug!(war_id = %war_id, event_id = %event.event_id(), code = r.code, "battle event rejected");
                    outcome.rejected.push(RejectedEvent {
                        event_id: event.event_id().clone(),
                        code: r.code.to_owned(),
                        reason: r.reason,
                    });
                }
            }
        }
        outcome.lag_ms = ingestion_lag(&lags);
        tracing::info!(
            war_id = %war_id,
            accepted = outcome.accepted,
            duplicates = outcome.duplicates,
            rejected = outcome.rejected.len(),
            "battle events ingested"
        );
        Ok(outcome)
    }

    /// The war's battle ids, read only when some event names a battle.
    /// The war and the registry records of the clans the events name (for the membership
    /// rule), in one `get_many` (one `BatchGetItem`, the round trip the war read takes
    /// anyway). A batch naming more than [`MAX_CLANS_WITH_WAR`] clans (never a game server's:
    /// a war has a handful) reads the war first and then only the named clans on its sides.
    async fn war_and_clans(
        &self,
        war_id: &WarId,
        events: &[BattleEvent],
    ) -> DomainResult<(War, BTreeMap<ClanId, Clan>)> {
        let named: BTreeSet<&ClanId> = events
            .iter()
            .flat_map(|e| e.claimed_players().into_iter().map(|(_, clan, _)| clan))
            .collect();
        let (war, wanted): (War, Vec<ClanId>) = if named.len() <= MAX_CLANS_WITH_WAR {
            let mut keys = vec![RecordKey::War(war_id.clone())];
            keys.extend(named.iter().map(|c| RecordKey::Clan((*c).clone())));
            let mut fetched = self.ports.store.get_many(&keys).await?;
            let war: War = fetched
                .one()?
                .ok_or_else(|| DomainError::WarNotFound(war_id.clone()))?;
            let records: Vec<Option<Clan>> = fetched.many(named.len())?;
            return Ok((
                war,
                records
                    .into_iter()
                    .flatten()
                    .map(|c| (c.clan_id.clone(), c))
                    .collect(),
            ));
        } else {
            let war = self.ports.war(war_id).await?;
            let wanted = named
                .into_iter()
                .filter(|c| war.side_of(c).is_some())
                .cloned()
                .collect();
            (war, wanted)
        };
        let keys: Vec<RecordKey> = wanted.iter().cloned().map(RecordKey::Clan).collect();
        let records: Vec<Option<Clan>> =
            self.ports.store.get_many(&keys).await?.many(keys.len())?;
        Ok((
            war,
            records
                .into_iter()
                .flatten()
                .map(|c| (c.clan_id.clone(), c))
                .collect(),
        ))
    }

    async fn battles_named(
        &self,
        war_id: &WarId,
        events: &[BattleEvent],
    ) -> DomainResult<BTreeSet<BattleId>> {
        if events.iter().all(|e| e.battle_id().is_none()) {
            return Ok(BTreeSet::new());
        }
        let battles = self.ports.store.battles_of_war(war_id).await?;
        Ok(battles.into_iter().map(|b| b.battle_id).collect())
    }

    fn verdict_of(&self, war: &War, delta: &ScoreDelta, outcome: ApplyOutcome) -> Verdict {
        match outcome {
            ApplyOutcome::Applied => Verdict::Accepted,
            ApplyOutcome::Duplicate => Verdict::Duplicate,
            ApplyOutcome::Farmed => Verdict::Rejected(self.farmed(delta)),
            ApplyOutcome::Sealed => Verdict::Rejected(Rejection::new(
                codes::SCORING_CLOSED,
                format!("war {} has ended and its final tally is sealed", war.war_id),
            )),
        }
    }

    fn farmed(&self, delta: &ScoreDelta) -> Rejection {
        // The guard carries the war's own window (its ruleset), not the deployment's.
        let (pair, window_s) = match &delta.farm_guard {
            Some(g) => (
                format!("{} already scored on {}", g.killer_id, g.victim_id),
                g.window_s,
            ),
            None => (
                "this pair already scored".to_owned(),
                self.ports.rules.refarm_window_s,
            ),
        };
        Rejection::new(
            codes::ANTI_FARMING,
            format!("{pair} within the last {window_s} s"),
        )
    }

    /// A capture through the territory rules, keyed by its event id. Transient failures fail
    /// the batch (it is safe to resend); a refused capture whose id was applied before is the
    /// replay of a capture that took effect, so it counts as a duplicate.
    async fn capture(&self, war: &War, event: CaptureEvent) -> DomainResult<Verdict> {
        let dedupe_id = event.event_id.to_string();
        let command = CaptureCommand {
            territory_id: event.territory_id,
            war_id: war.war_id.clone(),
            clan_id: event.clan_id,
            actor: None,
            dedupe_id: dedupe_id.clone(),
            occurred_at: Some(event.occurred_at),
        };
        match TerritoryService::new(self.ports.territory())
            .capture(command)
            .await
        {
            Ok(_) => Ok(Verdict::Accepted),
            Err(err) if is_transient(&err) => Err(err),
            Err(err) => {
                if self.already_applied(war, &dedupe_id).await? {
                    Ok(Verdict::Duplicate)
                } else {
                    Ok(Verdict::Rejected(Rejection::from(&err)))
                }
            }
        }
    }

    /// Whether a score write with this dedupe id was applied, without applying anything: the
    /// probe transaction always fails, and the store reports which write failed first — the
    /// score write when its id is taken, otherwise a delete that can never match.
    async fn already_applied(&self, war: &War, dedupe_id: &str) -> DomainResult<bool> {
        let war_id = &war.war_id;
        let mut tx = Transaction::new();
        let score_write = tx.score(ScoreDelta {
            war_id: war_id.clone(),
            dedupe_id: dedupe_id.to_owned(),
            shards: war.score_shards,
            players: Vec::new(),
            clans: Vec::new(),
            battle_kill: None,
            farm_guard: None,
            ledger: None,
        });
        let never = BattleId::new("dedupe-probe").expect("a valid id");
        tx.delete(RecordKey::Battle(war_id.clone(), never), u64::MAX);
        match self.ports.store.commit(tx).await {
            Err(crate::ports::StoreError::Conflict { index }) => Ok(index == Some(score_write)),
            Err(other) => Err(other.into()),
            Ok(()) => Ok(false),
        }
    }

    /// Emits a `ScoreSnapshot` of the war when one is due (see the type's docs); true if it did.
    pub async fn maybe_snapshot(&self, war_id: &WarId) -> DomainResult<bool> {
        let war = self.ports.war(war_id).await?;
        self.snapshot_if_due(&war).await
    }

    async fn snapshot_if_due(&self, war: &War) -> DomainResult<bool> {
        let now = self.ports.clock.now();
        let interval = self.ports.rules.score_snapshot_interval_s.max(1);
        if !war.accepts_score_events(now) || !self.locally_due(&war.war_id, now, interval) {
            return Ok(false);
        }
        let slot = ScoreDelta {
            war_id: war.war_id.clone(),
            dedupe_id: format!("snapshot#{}", now.timestamp().div_euclid(interval)),
            shards: war.score_shards,
            players: Vec::new(),
            clans: Vec::new(),
            battle_kill: None,
            farm_guard: None,
            ledger: None,
        };
        let (totals, claim) = join(
            self.ports.scores.clan_totals(&war.war_id, war.score_shards),
            self.ports.scores.apply(slot),
        )
        .await;
        let (totals, claim) = (totals?, claim?);
        self.remember_snapshot(&war.war_id, now, interval);
        if claim != ApplyOutcome::Applied {
            // Another instance took this slot.
            return Ok(false);
        }
        let (attacker_score, defender_score) = scoring::side_totals(war, &totals);
        let event = self.ports.event(
            Some(&war.war_id),
            war.all_clans(),
            DomainEvent::ScoreSnapshot {
                attacker_score,
                defender_score,
            },
        );
        // A snapshot is a reading, not a state change: it goes out directly, not through the
        // outbox. If publishing fails, this slot has none and the next slot makes it up.
        self.ports
            .events
            .publish(std::slice::from_ref(&event))
            .await
            .map_err(|e| DomainError::invalid("snapshot", e.to_string()))?;
        Ok(true)
    }

    fn locally_due(&self, war_id: &WarId, now: DateTime<Utc>, interval: i64) -> bool {
        let last = self.snapshots().get(war_id).copied();
        scoring::snapshot_due(last, now, interval)
    }

    fn remember_snapshot(&self, war_id: &WarId, now: DateTime<Utc>, interval: i64) {
        let mut last = self.snapshots();
        // Entries older than the interval decide nothing any more: keep the map small.
        last.retain(|_, at| now - *at < Duration::seconds(interval));
        last.insert(war_id.clone(), now);
    }

    fn snapshots(&self) -> std::sync::MutexGuard<'_, HashMap<WarId, DateTime<Utc>>> {
        // The map holds plain timestamps: a panic elsewhere cannot leave it inconsistent.
        self.last_snapshots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Side totals (frozen once ENDED, live otherwise), every clan's points and the top
    /// `limit` players (1..=[`MAX_TOP_PLAYERS`]).
    pub async fn scoreboard(&self, war_id: &WarId, limit: usize) -> DomainResult<Scoreboard> {
        if !(1..=MAX_TOP_PLAYERS).contains(&limit) {
            return Err(DomainError::invalid(
                "limit",
                format!("must be between 1 and {MAX_TOP_PLAYERS}"),
            ));
        }
        let war = self.ports.war(war_id).await?;
        let shards = war.score_shards;
        // Rescored players may fall down the board: read enough to rank the top `limit` after
        // their voids (every other player keeps the counters' points and order).
        let read = limit + war.rescored_players.len();
        let (totals, top_players) = join(
            self.ports.scores.clan_totals(war_id, shards),
            self.ports.scores.top_players(war_id, shards, read),
        )
        .await;
        let (mut totals, top_players) = (totals?, top_players?);
        let top_players = crate::ports::leaderboard(war.rescored(top_players), limit);
        let (attacker, defender) = if war.status == WarStatus::Ended {
            // The final tally: sealed counters plus what the tally itself added (hold points).
            if !war.final_clan_scores.is_empty() {
                totals = war.final_clan_scores.clone();
            }
            (war.sides.attacker.score, war.sides.defender.score)
        } else {
            scoring::side_totals(&war, &totals)
        };
        let clans = war
            .all_clans()
            .into_iter()
            .filter_map(|clan_id| {
                let side = war.side_of(&clan_id)?;
                let score = totals.get(&clan_id).copied().unwrap_or(0);
                Some(ClanScore {
                    clan_id,
                    side,
                    score,
                })
            })
            .collect();
        Ok(Scoreboard {
            war_id: war_id.clone(),
            sides: SideScores {
                attacker: SideScore { score: attacker },
                defender: SideScore { score: defender },
            },
            clans,
            top_players,
        })
    }

    /// One player's points in the war: the war (for a clear 404) and the player's counter are
    /// read side by side.
    pub async fn player(&self, war_id: &WarId, player_id: &PlayerId) -> DomainResult<PlayerScore> {
        let (war, score) = join(
            self.ports.war(war_id),
            self.ports.scores.player_score(war_id, player_id),
        )
        .await;
        let war = war?;
        let mut score = score?.ok_or_else(|| DomainError::PlayerNotFound {
            war_id: war_id.clone(),
            player_id: player_id.clone(),
        })?;
        if let Some(points) = war.rescored_players.get(player_id) {
            // Voided contributions no longer count (the sealed counter keeps what was scored).
            score.points = *points;
        }
        Ok(score)
    }
}

impl ScoreService {
    /// One page of the war's ledger, newest first (see [`crate::ports::ScoreBoard::ledger`]):
    /// the war is read first for a clear 404 and its shard count.
    pub async fn ledger(
        &self,
        war_id: &WarId,
        filter: &LedgerFilter,
        limit: usize,
        cursor: Option<String>,
    ) -> DomainResult<Page<LedgerEntry>> {
        if !(1..=MAX_LEDGER_LIMIT).contains(&limit) {
            return Err(DomainError::invalid(
                "limit",
                format!("must be 1..={MAX_LEDGER_LIMIT}"),
            ));
        }
        let war = self.ports.war(war_id).await?;
        let page = PageRequest { limit, cursor };
        let mut page = self
            .ports
            .scores
            .ledger(war_id, war.score_shards, filter, page)
            .await?;
        let voids = war.voids();
        for entry in &mut page.items {
            entry.voided_by = crate::ledger::voided_by(entry, &voids);
        }
        Ok(page)
    }
}

/// Failures that say nothing about the event itself: the whole batch is retried instead.
fn is_transient(err: &DomainError) -> bool {
    matches!(err, DomainError::ConcurrentModification)
        || err.class() == crate::ErrorClass::Unavailable
}

#[cfg(test)]
mod tests;
