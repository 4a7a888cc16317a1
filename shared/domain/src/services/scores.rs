//! Battle event ingestion and score reads (SPEC §5, §6).
//!
//! A batch is judged event by event against one read of the war: kills and assists become
//! exactly-once score deltas keyed by their `event_id`, captures go through the territory
//! rules with the same key. Because every effect is keyed by its event id, a batch that fails
//! half way (store outage) can simply be sent again: what was applied counts as duplicate.

use super::territories::{CaptureCommand, TerritoryService};
use super::Deps;
use crate::clan::Clan;
use crate::error::{DomainError, DomainResult};
use crate::events::DomainEvent;
use crate::ids::{BattleId, ClanId, EventId, PlayerId, WarId};
use crate::ledger::{LedgerEntry, LedgerFilter, MAX_LEDGER_LIMIT};
use crate::ports::{
    ApplyOutcome, Page, PageRequest, PlayerScore, RecordKey, ScoreDelta, Transaction,
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
    deps: Deps,
    last_snapshots: Arc<Mutex<HashMap<WarId, DateTime<Utc>>>>,
}

impl ScoreService {
    pub fn new(deps: Deps) -> Self {
        Self {
            deps,
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
        let max = self.deps.rules.max_events_per_batch;
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
        let now = self.deps.clock.now();
        let rules = self.deps.rules_for(&war);

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
            self.deps.scores.apply_batch(deltas.clone()).await
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
            let mut fetched = self.deps.store.get_many(&keys).await?;
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
            let war = self.deps.war(war_id).await?;
            let wanted = named
                .into_iter()
                .filter(|c| war.side_of(c).is_some())
                .cloned()
                .collect();
            (war, wanted)
        };
        let keys: Vec<RecordKey> = wanted.iter().cloned().map(RecordKey::Clan).collect();
        let records: Vec<Option<Clan>> = self.deps.store.get_many(&keys).await?.many(keys.len())?;
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
        let battles = self.deps.store.battles_of_war(war_id).await?;
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
                self.deps.rules.refarm_window_s,
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
        match TerritoryService::new(self.deps.clone())
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
        match self.deps.store.commit(tx).await {
            Err(crate::ports::StoreError::Conflict { index }) => Ok(index == Some(score_write)),
            Err(other) => Err(other.into()),
            Ok(()) => Ok(false),
        }
    }

    /// Emits a `ScoreSnapshot` of the war when one is due (see the type's docs); true if it did.
    pub async fn maybe_snapshot(&self, war_id: &WarId) -> DomainResult<bool> {
        let war = self.deps.war(war_id).await?;
        self.snapshot_if_due(&war).await
    }

    async fn snapshot_if_due(&self, war: &War) -> DomainResult<bool> {
        let now = self.deps.clock.now();
        let interval = self.deps.rules.score_snapshot_interval_s.max(1);
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
            self.deps.scores.clan_totals(&war.war_id, war.score_shards),
            self.deps.scores.apply(slot),
        )
        .await;
        let (totals, claim) = (totals?, claim?);
        self.remember_snapshot(&war.war_id, now, interval);
        if claim != ApplyOutcome::Applied {
            // Another instance took this slot.
            return Ok(false);
        }
        let (attacker_score, defender_score) = scoring::side_totals(war, &totals);
        let event = self.deps.event(
            Some(&war.war_id),
            war.all_clans(),
            DomainEvent::ScoreSnapshot {
                attacker_score,
                defender_score,
            },
        );
        // A snapshot is a reading, not a state change: it goes out directly, not through the
        // outbox. If publishing fails, this slot has none and the next slot makes it up.
        self.deps
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
        let war = self.deps.war(war_id).await?;
        let shards = war.score_shards;
        let (totals, top_players) = join(
            self.deps.scores.clan_totals(war_id, shards),
            self.deps.scores.top_players(war_id, shards, limit),
        )
        .await;
        let (mut totals, top_players) = (totals?, top_players?);
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
            self.deps.war(war_id),
            self.deps.scores.player_score(war_id, player_id),
        )
        .await;
        war?;
        score?.ok_or_else(|| DomainError::PlayerNotFound {
            war_id: war_id.clone(),
            player_id: player_id.clone(),
        })
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
        let war = self.deps.war(war_id).await?;
        let page = PageRequest { limit, cursor };
        Ok(self
            .deps
            .scores
            .ledger(war_id, war.score_shards, filter, page)
            .await?)
    }
}

/// Failures that say nothing about the event itself: the whole batch is retried instead.
fn is_transient(err: &DomainError) -> bool {
    matches!(err, DomainError::ConcurrentModification)
        || err.class() == crate::ErrorClass::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::battle::{fixtures::on_territory, Battle};
    use crate::config::Rules;
    use crate::config::DEFAULT_SCORE_SHARDS;
    use crate::ids::PlayerId;
    use crate::ids::{ClanId, TerritoryId};
    use crate::ledger::{recompute, EffectKind};
    use crate::memory::FakeClock;
    use crate::ports::ScoreBoard;
    use crate::scoring::fixtures::{active_war, assist, clan, kill, level, player, territory};
    use crate::scoring::KillEvent;
    use crate::services::MemoryHandles;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    struct World {
        svc: ScoreService,
        deps: Deps,
        h: MemoryHandles,
        war: War,
    }

    fn war_id() -> WarId {
        WarId::new("war-1").unwrap()
    }

    /// An ACTIVE war `att` + `att-ally` vs `def` over t1 (tier 1) and t2 (tier 2), both owned
    /// by `def`; the clock 30 minutes into ACTIVE.
    async fn world_with(rules: Rules) -> World {
        let mut war = active_war();
        let now = war.phase_deadlines.active_at + Duration::minutes(30);
        let (deps, h) = Deps::in_memory(rules, FakeClock::at(now));
        let mut tx = Transaction::new();
        tx.insert(&mut war);
        // The registry's rosters: `a0`..`a9` in att, `d0`..`d9` in def, `x0`..`x9` in
        // att-ally, `z0`..`z9` in other (a clan of no side).
        for (id, prefix) in [
            ("att", "a"),
            ("def", "d"),
            ("att-ally", "x"),
            ("other", "z"),
        ] {
            let mut roster = crate::clan::fixtures::clan(id, 2);
            roster.member_ids = (0..10).map(|i| player(&format!("{prefix}{i}"))).collect();
            tx.insert(&mut roster);
        }
        for (id, tier) in [("t1", 1), ("t2", 2)] {
            let mut t = territory(id, tier, Some("def"));
            t.contested_by = Some(war_id());
            t.version = 0;
            tx.insert(&mut t);
        }
        deps.commit(tx).await.unwrap();
        World {
            svc: ScoreService::new(deps.clone()),
            deps,
            h,
            war,
        }
    }

    async fn world() -> World {
        world_with(Rules::default()).await
    }

    impl World {
        /// `minutes` into ACTIVE.
        fn at(&self, minutes: i64) -> DateTime<Utc> {
            self.war.phase_deadlines.active_at + Duration::minutes(minutes)
        }

        async fn ingest(&self, events: Vec<BattleEvent>) -> BatchOutcome {
            self.svc.ingest(&war_id(), events).await.unwrap()
        }

        async fn totals(&self) -> BTreeMap<ClanId, i64> {
            self.h
                .store
                .clan_totals(&war_id(), DEFAULT_SCORE_SHARDS)
                .await
                .unwrap()
        }

        async fn points(&self, p: &str) -> Option<i64> {
            self.h
                .store
                .player_score(&war_id(), &player(p))
                .await
                .unwrap()
                .map(|s| s.points)
        }

        /// Moves the stored war (and the clock) to ENDING.
        async fn enter_ending(&mut self) {
            let mut war = self.deps.war(&war_id()).await.unwrap();
            war.advance(WarStatus::Ending, war.phase_deadlines.ending_at)
                .unwrap();
            let mut tx = Transaction::new();
            tx.update(&mut war);
            self.deps.commit(tx).await.unwrap();
            self.h.clock.set(war.phase_deadlines.ending_at);
            self.war = war;
        }

        async fn battle(&self) -> Battle {
            let mut battle = Battle::create(
                &self.war,
                BattleId::new("b1").unwrap(),
                on_territory("t1"),
                self.deps.clock.now(),
                &self.deps.rules,
            )
            .unwrap();
            let mut tx = Transaction::new();
            tx.insert(&mut battle);
            self.deps.commit(tx).await.unwrap();
            battle
        }
    }

    fn leveled(event: BattleEvent, killer: u32, victim: u32) -> BattleEvent {
        match event {
            BattleEvent::Kill(k) => BattleEvent::Kill(KillEvent {
                killer_level: level(killer),
                victim_level: level(victim),
                ..k
            }),
            other => other,
        }
    }

    fn in_battle(event: BattleEvent, battle: &str) -> BattleEvent {
        match event {
            BattleEvent::Kill(k) => BattleEvent::Kill(KillEvent {
                battle_id: Some(BattleId::new(battle).unwrap()),
                ..k
            }),
            other => other,
        }
    }

    fn capture(id: &str, at: DateTime<Utc>, territory: &str, by: &str) -> BattleEvent {
        BattleEvent::Capture(CaptureEvent {
            event_id: EventId::new(id).unwrap(),
            occurred_at: at,
            territory_id: TerritoryId::new(territory).unwrap(),
            clan_id: clan(by),
        })
    }

    fn codes_of(outcome: &BatchOutcome) -> Vec<(&str, &str)> {
        outcome
            .rejected
            .iter()
            .map(|r| (r.event_id.as_str(), r.code.as_str()))
            .collect()
    }

    // ---- a whole war ------------------------------------------------------------------------

    #[tokio::test]
    async fn a_war_fed_with_kills_assists_and_battle_kills_adds_up_exactly() {
        let w = world().await;
        w.battle().await;
        let outcome = w
            .ingest(vec![
                leveled(kill("k1", w.at(1), ("a1", "att"), ("d1", "def")), 10, 10), // 10
                leveled(kill("k2", w.at(2), ("a1", "att"), ("d2", "def")), 10, 15), // 15
                leveled(
                    kill("k3", w.at(3), ("x1", "att-ally"), ("d1", "def")),
                    50,
                    10,
                ), // 5
                in_battle(
                    leveled(kill("k4", w.at(4), ("d1", "def"), ("a1", "att")), 10, 30), // 20
                    "b1",
                ),
                in_battle(kill("k5", w.at(5), ("d2", "def"), ("x1", "att-ally")), "b1"), // 10
                assist("s1", w.at(5), ("a2", "att")),                                    // 3
                assist("s2", w.at(6), ("d3", "def")),                                    // 3
            ])
            .await;
        assert_eq!(
            outcome,
            BatchOutcome {
                accepted: 7,
                duplicates: 0,
                rejected: vec![],
                // The clock is 30 min into ACTIVE; the events happened 1..6 min into it:
                // 29 min at most, 184 min / 7 on average (the ScoreIngestionLag metric).
                lag_ms: Some((29 * 60_000, 184 * 60_000 / 7)),
            }
        );
        assert_eq!(
            w.totals().await,
            BTreeMap::from([(clan("att"), 28), (clan("att-ally"), 5), (clan("def"), 33)])
        );
        assert_eq!(w.points("a1").await, Some(25));
        assert_eq!(w.points("d1").await, Some(20));
        assert_eq!(w.points("a2").await, Some(3));
        let kills =
            w.h.store
                .battle_kills(
                    &war_id(),
                    DEFAULT_SCORE_SHARDS,
                    &BattleId::new("b1").unwrap(),
                )
                .await
                .unwrap();
        assert_eq!((kills.attacker, kills.defender), (0, 2));

        let board = w.svc.scoreboard(&war_id(), 3).await.unwrap();
        assert_eq!(
            (board.sides.attacker.score, board.sides.defender.score),
            (33, 33)
        );
        let players: Vec<(&str, i64)> = board
            .top_players
            .iter()
            .map(|p| (p.player_id.as_str(), p.points))
            .collect();
        assert_eq!(players, vec![("a1", 25), ("d1", 20), ("d2", 10)]);
        assert_eq!(
            board.clans,
            vec![
                ClanScore {
                    clan_id: clan("att"),
                    side: Side::Attacker,
                    score: 28
                },
                ClanScore {
                    clan_id: clan("att-ally"),
                    side: Side::Attacker,
                    score: 5
                },
                ClanScore {
                    clan_id: clan("def"),
                    side: Side::Defender,
                    score: 33
                },
            ]
        );
    }

    // ---- duplicates ---------------------------------------------------------------------------

    #[tokio::test]
    async fn an_event_id_repeated_inside_one_batch_counts_once() {
        let w = world().await;
        let k = kill("k1", w.at(1), ("a1", "att"), ("d1", "def"));
        let s = assist("s1", w.at(1), ("a2", "att"));
        let outcome = w.ingest(vec![k.clone(), s.clone(), k.clone(), s, k]).await;
        assert_eq!((outcome.accepted, outcome.duplicates), (2, 3));
        assert!(outcome.rejected.is_empty());
        assert_eq!(w.totals().await, BTreeMap::from([(clan("att"), 13)]));
    }

    #[tokio::test]
    async fn a_batch_sent_again_changes_nothing() {
        let w = world().await;
        let batch = vec![
            kill("k1", w.at(1), ("a1", "att"), ("d1", "def")),
            assist("s1", w.at(1), ("a2", "att")),
        ];
        w.ingest(batch.clone()).await;
        let before = (w.totals().await, w.points("a1").await);
        let outcome = w.ingest(batch).await;
        assert_eq!((outcome.accepted, outcome.duplicates), (0, 2));
        assert_eq!((w.totals().await, w.points("a1").await), before);
    }

    #[tokio::test]
    async fn a_replayed_kill_is_a_duplicate_not_farming() {
        let w = world().await;
        let k = kill("k1", w.at(1), ("a1", "att"), ("d1", "def"));
        w.ingest(vec![k.clone()]).await;
        let outcome = w.ingest(vec![k]).await;
        assert_eq!((outcome.accepted, outcome.duplicates), (0, 1));
        assert!(outcome.rejected.is_empty());
    }

    // ---- anti-farming -------------------------------------------------------------------------

    #[tokio::test]
    async fn the_same_killer_and_victim_score_once_per_refarm_window() {
        let w = world().await;
        let outcome = w
            .ingest(vec![
                kill("k1", w.at(10), ("a1", "att"), ("d1", "def")),
                kill("k2", w.at(14), ("a1", "att"), ("d1", "def")), // inside 5 min: farmed
                kill("k3", w.at(14), ("a1", "att"), ("d2", "def")), // another victim: counts
                kill("k4", w.at(14), ("d1", "def"), ("a1", "att")), // the other way: counts
                kill("k5", w.at(15), ("a1", "att"), ("d1", "def")), // 5 min after k1: counts
            ])
            .await;
        assert_eq!(outcome.accepted, 4);
        assert_eq!(codes_of(&outcome), vec![("k2", "ANTI_FARMING")]);
        assert!(outcome.rejected[0]
            .reason
            .contains("a1 already scored on d1"));
        assert_eq!(w.points("a1").await, Some(30));
    }

    #[tokio::test]
    async fn the_refarm_window_follows_the_configuration() {
        let w = world_with(Rules {
            refarm_window_s: 60,
            ..Rules::default()
        })
        .await;
        let outcome = w
            .ingest(vec![
                kill("k1", w.at(1), ("a1", "att"), ("d1", "def")),
                kill("k2", w.at(2), ("a1", "att"), ("d1", "def")),
            ])
            .await;
        assert_eq!(outcome.accepted, 2);
    }

    // ---- the war's frozen ruleset ----------------------------------------------------------------

    #[tokio::test]
    async fn a_war_is_scored_by_the_ruleset_frozen_at_its_declaration_not_the_live_one() {
        // Declared when kills were worth 20 and the refarm window was 1 minute; the deployment
        // has since gone back to the defaults (10 points, 5 minutes).
        let frozen = Rules {
            kill_base_points: 20,
            refarm_window_s: 60,
            ..Rules::default()
        };
        let w = world_with(Rules::default()).await;
        let mut war = w.deps.war(&war_id()).await.unwrap();
        war.ruleset = Some(Box::new(frozen.current_ruleset()));
        let mut tx = Transaction::new();
        tx.update(&mut war);
        w.deps.commit(tx).await.unwrap();
        let outcome = w
            .ingest(vec![
                kill("k1", w.at(1), ("a1", "att"), ("d1", "def")),
                kill("k2", w.at(2), ("a1", "att"), ("d1", "def")), // outside the war's 1 min
            ])
            .await;
        assert_eq!(outcome.accepted, 2, "{:?}", outcome.rejected);
        assert_eq!(w.points("a1").await, Some(40));
        let farmed = w
            .ingest(vec![kill("k3", w.at(2), ("a1", "att"), ("d1", "def"))])
            .await;
        assert!(farmed.rejected[0].reason.contains("last 60 s"));
    }

    #[tokio::test]
    async fn a_war_without_a_ruleset_follows_the_live_rules() {
        // Wars written before rulesets were snapshotted (the fixture has none).
        let w = world_with(Rules {
            kill_base_points: 15,
            ..Rules::default()
        })
        .await;
        assert!(w.deps.war(&war_id()).await.unwrap().ruleset.is_none());
        w.ingest(vec![kill("k1", w.at(1), ("a1", "att"), ("d1", "def"))])
            .await;
        assert_eq!(w.points("a1").await, Some(15));
    }

    // ---- the scoring window -------------------------------------------------------------------

    #[tokio::test]
    async fn events_before_the_war_is_active_are_refused() {
        let mut w = world().await;
        let mut war = w.deps.war(&war_id()).await.unwrap();
        war.status = WarStatus::Preparation;
        let mut tx = Transaction::new();
        tx.update(&mut war);
        w.deps.commit(tx).await.unwrap();
        w.war = war;
        let outcome = w
            .ingest(vec![kill("k1", w.at(1), ("a1", "att"), ("d1", "def"))])
            .await;
        assert_eq!(codes_of(&outcome), vec![("k1", "WAR_NOT_ACCEPTING_EVENTS")]);
        assert!(w.totals().await.is_empty());
    }

    #[tokio::test]
    async fn an_event_that_happened_before_active_is_refused() {
        let w = world().await;
        let outcome = w
            .ingest(vec![kill("k1", w.at(-1), ("a1", "att"), ("d1", "def"))])
            .await;
        assert_eq!(codes_of(&outcome), vec![("k1", "OUTSIDE_ACTIVE_WINDOW")]);
    }

    #[tokio::test]
    async fn late_events_from_active_count_during_the_ending_grace() {
        let mut w = world().await;
        w.enter_ending().await;
        w.h.clock
            .set(w.war.phase_deadlines.ended_at - Duration::seconds(1));
        let last_minute = w.war.phase_deadlines.ending_at - Duration::seconds(30);
        let outcome = w
            .ingest(vec![
                kill("k1", last_minute, ("a1", "att"), ("d1", "def")),
                kill(
                    "k2",
                    w.war.phase_deadlines.ending_at,
                    ("a1", "att"),
                    ("d2", "def"),
                ),
            ])
            .await;
        assert_eq!(outcome.accepted, 1);
        assert_eq!(codes_of(&outcome), vec![("k2", "OUTSIDE_ACTIVE_WINDOW")]);
        assert_eq!(w.totals().await, BTreeMap::from([(clan("att"), 10)]));
    }

    #[tokio::test]
    async fn events_arriving_after_ending_closes_are_refused() {
        let mut w = world().await;
        w.enter_ending().await;
        w.h.clock.set(w.war.phase_deadlines.ended_at);
        let outcome = w
            .ingest(vec![kill("k1", w.at(100), ("a1", "att"), ("d1", "def"))])
            .await;
        assert_eq!(codes_of(&outcome), vec![("k1", "WAR_NOT_ACCEPTING_EVENTS")]);
        assert!(w.totals().await.is_empty());
    }

    #[tokio::test]
    async fn every_rule_rejects_with_its_own_code_and_the_rest_of_the_batch_counts() {
        let w = world().await;
        let now = w.deps.clock.now();
        let outcome = w
            .ingest(vec![
                kill("same", w.at(1), ("a1", "att"), ("x1", "att-ally")),
                kill("stranger", w.at(1), ("a1", "att"), ("z1", "other")),
                assist("stranger-assist", w.at(1), ("z1", "other")),
                kill(
                    "future",
                    now + Duration::minutes(1),
                    ("a1", "att"),
                    ("d1", "def"),
                ),
                in_battle(
                    kill("battle", w.at(1), ("a1", "att"), ("d1", "def")),
                    "b404",
                ),
                kill("fine", w.at(1), ("a1", "att"), ("d1", "def")),
            ])
            .await;
        assert_eq!(outcome.accepted, 1);
        assert_eq!(
            codes_of(&outcome),
            vec![
                ("same", "SAME_SIDE"),
                ("stranger", "NOT_A_PARTICIPANT"),
                ("stranger-assist", "NOT_A_PARTICIPANT"),
                ("future", "FUTURE_EVENT"),
                ("battle", "UNKNOWN_BATTLE"),
            ]
        );
        assert!(outcome.rejected.iter().all(|r| !r.reason.is_empty()));
        assert_eq!(w.totals().await, BTreeMap::from([(clan("att"), 10)]));
    }

    #[tokio::test]
    async fn players_must_be_on_the_roster_of_the_clan_they_are_credited_to() {
        let w = world().await;
        let outcome = w
            .ingest(vec![
                // Not in the registry at all, claiming the attacker.
                kill("nobody", w.at(1), ("ghost", "att"), ("d1", "def")),
                // A defender claiming to kill for the attacker (of a defender!).
                kill("turncoat", w.at(1), ("d2", "att"), ("d3", "def")),
                // A real attacker on a victim who is not in the clan named for them.
                kill("fake-victim", w.at(1), ("a1", "att"), ("a2", "def")),
                // A player of the no-side clan credited to the ally.
                assist("borrowed", w.at(1), ("z1", "att-ally")),
                assist("ghost-assist", w.at(1), ("ghost", "def")),
                kill("fine", w.at(1), ("a1", "att"), ("d1", "def")),
                assist("fine-assist", w.at(1), ("x1", "att-ally")),
            ])
            .await;
        assert_eq!(
            codes_of(&outcome),
            vec![
                ("nobody", "NOT_A_MEMBER"),
                ("turncoat", "NOT_A_MEMBER"),
                ("fake-victim", "NOT_A_MEMBER"),
                ("borrowed", "NOT_A_MEMBER"),
                ("ghost-assist", "NOT_A_MEMBER"),
            ]
        );
        assert_eq!(outcome.accepted, 2);
        assert!(outcome.rejected[0].reason.contains("ghost"));
        assert_eq!(
            w.totals().await,
            BTreeMap::from([(clan("att"), 10), (clan("att-ally"), 3)]),
            "nothing credited for the refused events"
        );
    }

    #[tokio::test]
    async fn a_batch_naming_many_clans_still_checks_the_members_of_the_war_s_clans() {
        let w = world().await;
        let mut events: Vec<BattleEvent> = (0..MAX_CLANS_WITH_WAR + 5)
            .map(|i| {
                kill(
                    &format!("x{i}"),
                    w.at(1),
                    ("a1", "att"),
                    ("v", &format!("c{i}")),
                )
            })
            .collect();
        events.push(kill("ghost", w.at(1), ("ghost", "att"), ("d1", "def")));
        events.push(kill("fine", w.at(1), ("a1", "att"), ("d1", "def")));
        let outcome = w.ingest(events).await;
        assert_eq!(outcome.accepted, 1);
        let codes = codes_of(&outcome);
        assert_eq!(codes.last(), Some(&("ghost", "NOT_A_MEMBER")));
        assert!(codes[..codes.len() - 1]
            .iter()
            .all(|(_, code)| *code == "NOT_A_PARTICIPANT"));
    }

    // ---- batch limits and errors --------------------------------------------------------------

    #[tokio::test]
    async fn a_batch_over_the_limit_is_refused_before_anything_is_applied() {
        let w = world_with(Rules {
            max_events_per_batch: 2,
            ..Rules::default()
        })
        .await;
        let events = (0..3)
            .map(|i| assist(&format!("s{i}"), w.at(1), ("a1", "att")))
            .collect();
        let err = w.svc.ingest(&war_id(), events).await.unwrap_err();
        assert_eq!(
            (err.code(), err.class()),
            ("INVALID_REQUEST", crate::ErrorClass::Malformed)
        );
        assert!(w.totals().await.is_empty());
        let at_the_limit = (0..2)
            .map(|i| assist(&format!("s{i}"), w.at(1), ("a1", "att")))
            .collect();
        assert_eq!(
            w.svc
                .ingest(&war_id(), at_the_limit)
                .await
                .unwrap()
                .accepted,
            2
        );
    }

    #[tokio::test]
    async fn the_default_batch_limit_is_five_hundred() {
        let w = world().await;
        let events: Vec<BattleEvent> = (0..501)
            .map(|i| assist(&format!("s{i}"), w.at(1), ("a1", "att")))
            .collect();
        assert!(w
            .svc
            .ingest(&war_id(), events[..500].to_vec())
            .await
            .is_ok());
        assert!(w.svc.ingest(&war_id(), events).await.is_err());
    }

    #[tokio::test]
    async fn an_empty_batch_is_answered_with_zeros() {
        let w = world().await;
        assert_eq!(w.ingest(vec![]).await, BatchOutcome::default());
    }

    #[tokio::test]
    async fn events_for_an_unknown_war_are_not_found() {
        let w = world().await;
        let err = w
            .svc
            .ingest(&WarId::new("nope").unwrap(), vec![])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "WAR_NOT_FOUND");
    }

    #[tokio::test]
    async fn a_store_outage_fails_the_batch_and_a_resend_completes_it() {
        let w = world().await;
        w.h.store.set_unavailable(true);
        let batch = vec![kill("k1", w.at(1), ("a1", "att"), ("d1", "def"))];
        let err = w.svc.ingest(&war_id(), batch.clone()).await.unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Unavailable);
        w.h.store.set_unavailable(false);
        assert_eq!(w.ingest(batch).await.accepted, 1);
    }

    #[tokio::test]
    async fn the_batch_answer_uses_the_contract_field_names() {
        let outcome = BatchOutcome {
            lag_ms: Some((5, 4)),
            accepted: 2,
            duplicates: 1,
            rejected: vec![RejectedEvent {
                event_id: EventId::new("e1").unwrap(),
                code: "SAME_SIDE".into(),
                reason: "why".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&outcome).unwrap(),
            serde_json::json!({
                "accepted": 2, "duplicates": 1,
                "rejected": [{"event_id": "e1", "code": "SAME_SIDE", "reason": "why"}]
            })
        );
    }

    // ---- captures -----------------------------------------------------------------------------

    #[tokio::test]
    async fn a_capture_event_moves_the_territory_and_scores_the_capturer() {
        let w = world().await;
        let outcome = w
            .ingest(vec![capture("c1", w.at(1), "t2", "att-ally")])
            .await;
        assert_eq!(outcome.accepted, 1, "{outcome:?}");
        // 100 × tier 2 × (1 + 0.25 × 0)
        assert_eq!(w.totals().await, BTreeMap::from([(clan("att-ally"), 200)]));
        let war = w.deps.war(&war_id()).await.unwrap();
        assert_eq!(war.captures.len(), 1);
        assert!(w.h.events.types().contains(&"TerritoryCaptured"));
    }

    #[tokio::test]
    async fn a_replayed_capture_is_a_duplicate_even_after_active() {
        let mut w = world().await;
        let c = capture("c1", w.at(1), "t1", "att");
        w.ingest(vec![c.clone()]).await;
        let outcome = w.ingest(vec![c.clone()]).await;
        assert_eq!(
            (outcome.accepted, outcome.duplicates),
            (0, 1),
            "{outcome:?}"
        );
        w.enter_ending().await;
        let outcome = w.ingest(vec![c]).await;
        assert_eq!(
            (outcome.accepted, outcome.duplicates),
            (0, 1),
            "{outcome:?}"
        );
        assert_eq!(w.totals().await, BTreeMap::from([(clan("att"), 100)]));
    }

    #[tokio::test]
    async fn refused_captures_carry_the_territory_rule_codes_and_stay_retryable() {
        let w = world().await;
        let outcome = w
            .ingest(vec![
                capture("c1", w.at(1), "t1", "def"),
                capture("c2", w.at(1), "t1", "other"),
                capture("c3", w.at(1), "t404", "att"),
                capture("c4", w.at(-5), "t1", "att"),
            ])
            .await;
        assert_eq!(
            codes_of(&outcome),
            vec![
                ("c1", "ALREADY_OWNER"),
                ("c2", "NOT_A_PARTICIPANT"),
                ("c3", "TERRITORY_NOT_FOUND"),
                ("c4", "OUTSIDE_ACTIVE_WINDOW"),
            ]
        );
        assert!(w.totals().await.is_empty());
        // Asking whether a refused capture was applied before consumed nothing.
        let outcome = w.ingest(vec![capture("c1", w.at(2), "t1", "att")]).await;
        assert_eq!(outcome.accepted, 1, "{outcome:?}");
    }

    // ---- reads --------------------------------------------------------------------------------

    #[tokio::test]
    async fn an_ended_war_shows_its_frozen_side_scores() {
        let w = world().await;
        w.ingest(vec![kill("k1", w.at(1), ("a1", "att"), ("d1", "def"))])
            .await;
        let mut war = w.deps.war(&war_id()).await.unwrap();
        war.status = WarStatus::Ended;
        war.sides.attacker.score = 40;
        war.sides.defender.score = 55;
        let mut tx = Transaction::new();
        tx.update(&mut war);
        w.deps.commit(tx).await.unwrap();
        let board = w.svc.scoreboard(&war_id(), 10).await.unwrap();
        assert_eq!(
            (board.sides.attacker.score, board.sides.defender.score),
            (40, 55)
        );
        assert_eq!(board.clans[0].score, 10);
    }

    #[tokio::test]
    async fn the_scoreboard_uses_the_contract_field_names() {
        let w = world().await;
        w.ingest(vec![kill("k1", w.at(1), ("a1", "att"), ("d1", "def"))])
            .await;
        let json = serde_json::to_value(w.svc.scoreboard(&war_id(), 10).await.unwrap()).unwrap();
        assert_eq!(json["war_id"], "war-1");
        assert_eq!(json["sides"]["attacker"]["score"], 10);
        assert_eq!(json["sides"]["defender"]["score"], 0);
        assert_eq!(
            json["clans"][0],
            serde_json::json!({"clan_id": "att", "side": "attacker", "score": 10})
        );
        assert_eq!(
            json["top_players"][0],
            serde_json::json!({"player_id": "a1", "clan_id": "att", "points": 10})
        );
    }

    #[tokio::test]
    async fn the_scoreboard_limit_must_be_between_one_and_a_hundred() {
        let w = world().await;
        for limit in [0, MAX_TOP_PLAYERS + 1] {
            let err = w.svc.scoreboard(&war_id(), limit).await.unwrap_err();
            assert_eq!(err.class(), crate::ErrorClass::Malformed);
        }
        let err = w
            .svc
            .scoreboard(&WarId::new("nope").unwrap(), 10)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "WAR_NOT_FOUND");
    }

    #[tokio::test]
    async fn a_players_score_is_read_or_not_found() {
        let w = world().await;
        w.ingest(vec![assist("s1", w.at(1), ("a2", "att"))]).await;
        let score = w.svc.player(&war_id(), &player("a2")).await.unwrap();
        assert_eq!((score.clan_id, score.points), (clan("att"), 3));
        let err = w.svc.player(&war_id(), &player("ghost")).await.unwrap_err();
        assert_eq!(
            (err.code(), err.class()),
            ("PLAYER_NOT_FOUND", crate::ErrorClass::NotFound)
        );
        let err = w
            .svc
            .player(&WarId::new("nope").unwrap(), &player("a2"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "WAR_NOT_FOUND");
    }

    // ---- snapshots ----------------------------------------------------------------------------

    fn snapshots(w: &World) -> Vec<(i64, i64)> {
        w.h.events
            .published()
            .into_iter()
            .filter_map(|e| match e.event {
                DomainEvent::ScoreSnapshot {
                    attacker_score,
                    defender_score,
                } => Some((attacker_score, defender_score)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn accepted_events_emit_a_throttled_score_snapshot() {
        let w = world().await;
        let start = w.deps.clock.now();
        w.ingest(vec![kill("k1", w.at(1), ("a1", "att"), ("d1", "def"))])
            .await;
        assert_eq!(snapshots(&w), vec![(10, 0)]);
        w.h.clock.set(start + Duration::seconds(4));
        w.ingest(vec![kill("k2", w.at(1), ("d1", "def"), ("a1", "att"))])
            .await;
        assert_eq!(snapshots(&w).len(), 1);
        w.h.clock.set(start + Duration::seconds(5));
        w.ingest(vec![assist("s1", w.at(1), ("d2", "def"))]).await;
        assert_eq!(snapshots(&w), vec![(10, 0), (10, 13)]);
        let snapshot = w.h.events.published().pop().unwrap();
        assert_eq!(snapshot.war_id, Some(war_id()));
        assert_eq!(snapshot.clan_ids.len(), 3);
    }

    #[tokio::test]
    async fn a_batch_with_nothing_accepted_emits_no_snapshot() {
        let w = world().await;
        w.ingest(vec![kill("k1", w.at(-1), ("a1", "att"), ("d1", "def"))])
            .await;
        assert!(snapshots(&w).is_empty());
    }

    #[tokio::test]
    async fn instances_sharing_a_store_emit_one_snapshot_per_slot() {
        let w = world().await;
        let other = ScoreService::new(w.deps.clone());
        assert!(w.svc.maybe_snapshot(&war_id()).await.unwrap());
        assert!(!other.maybe_snapshot(&war_id()).await.unwrap());
        assert_eq!(snapshots(&w).len(), 1);
        w.h.clock.set(w.deps.clock.now() + Duration::seconds(5));
        assert!(other.maybe_snapshot(&war_id()).await.unwrap());
        assert_eq!(snapshots(&w).len(), 2);
    }

    #[tokio::test]
    async fn no_snapshot_once_the_war_takes_no_more_events() {
        let mut w = world().await;
        w.enter_ending().await;
        w.h.clock.set(w.war.phase_deadlines.ended_at);
        assert!(!w.svc.maybe_snapshot(&war_id()).await.unwrap());
    }

    // ---- property: replays never change a score -----------------------------------------------

    fn event_pool() -> impl Strategy<Value = Vec<(u8, u8, u8, u8)>> {
        // (kind, actor, victim, minute): few players, so the refarm window often applies.
        proptest::collection::vec((0u8..4, 0u8..3, 0u8..3, 0u8..30), 1..25)
    }

    fn build(w: &World, i: usize, (kind, actor, victim, minute): (u8, u8, u8, u8)) -> BattleEvent {
        let at = w.at(i64::from(minute));
        let id = format!("e{i}");
        let att = format!("a{actor}");
        let def = format!("d{victim}");
        let ally = format!("x{actor}");
        match kind {
            0 => kill(&id, at, (&att, "att"), (&def, "def")),
            1 => kill(&id, at, (&def, "def"), (&ally, "att-ally")),
            2 => assist(&id, at, (&ally, "att-ally")),
            _ => kill(&id, at, (&att, "att"), (&def, "att")), // same side: rejected
        }
    }

    async fn scores_of(w: &World) -> (BTreeMap<ClanId, i64>, Vec<PlayerScore>) {
        (
            w.totals().await,
            w.h.store
                .all_players(&war_id(), DEFAULT_SCORE_SHARDS)
                .await
                .unwrap(),
        )
    }

    // ---- the ledger ---------------------------------------------------------------------------

    #[tokio::test]
    async fn the_ledger_lists_accepted_effects_newest_first_and_pages_with_a_cursor() {
        let w = world().await;
        w.ingest(vec![
            kill("k1", w.at(1), ("a1", "att"), ("d1", "def")),
            assist("s1", w.at(2), ("x2", "att-ally")),
            kill("bad", w.at(3), ("a1", "att"), ("d1", "att")),
        ])
        .await;
        w.ingest(vec![capture("c1", w.at(4), "t1", "att")]).await;
        let all = w
            .svc
            .ledger(&war_id(), &LedgerFilter::default(), 50, None)
            .await
            .unwrap();
        let ids: Vec<&str> = all.items.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["c1", "s1", "k1"], "the rejected kill is not in it");
        assert_eq!(all.next_cursor, None);
        let kill_entry = &all.items[2];
        assert_eq!(
            (kill_entry.kind, kill_entry.points, kill_entry.side),
            (EffectKind::Kill, 10, crate::war::Side::Attacker)
        );
        assert_eq!(kill_entry.player_id, Some(player("a1")));
        assert_eq!(
            kill_entry.retained_until,
            w.war.phase_deadlines.ended_at + Duration::days(90)
        );

        let first = w
            .svc
            .ledger(&war_id(), &LedgerFilter::default(), 2, None)
            .await
            .unwrap();
        let rest = w
            .svc
            .ledger(&war_id(), &LedgerFilter::default(), 2, first.next_cursor)
            .await
            .unwrap();
        let paged: Vec<String> = first
            .items
            .iter()
            .chain(&rest.items)
            .map(|e| e.event_id.clone())
            .collect();
        assert_eq!(paged, ["c1", "s1", "k1"]);
        assert_eq!(rest.next_cursor, None);

        let of_ally = LedgerFilter {
            player_id: None,
            clan_id: Some(clan("att-ally")),
        };
        let ally = w.svc.ledger(&war_id(), &of_ally, 50, None).await.unwrap();
        assert_eq!(ally.items.len(), 1);
        assert_eq!(ally.items[0].event_id, "s1");
    }

    #[tokio::test]
    async fn a_ledger_read_refuses_bad_limits_cursors_and_unknown_wars() {
        let w = world().await;
        let none = LedgerFilter::default();
        for limit in [0, MAX_LEDGER_LIMIT + 1] {
            let err = w.svc.ledger(&war_id(), &none, limit, None).await;
            assert_eq!(err.unwrap_err().code(), "INVALID_REQUEST");
        }
        let err = w.svc.ledger(&war_id(), &none, 5, Some("junk".into())).await;
        assert_eq!(err.unwrap_err().code(), "INVALID_REQUEST");
        let err = w
            .svc
            .ledger(&WarId::new("nope").unwrap(), &none, 5, None)
            .await;
        assert_eq!(err.unwrap_err().code(), "WAR_NOT_FOUND");
    }

    /// Ends the war of `w` through the real final tally (hold points, winner).
    async fn finish(w: &mut World) -> War {
        // The clans are in the registry already (`world_with`'s rosters).
        w.enter_ending().await;
        w.h.clock.set(w.war.phase_deadlines.ended_at);
        let (war, _) = crate::services::wars::WarService::new(w.deps.clone())
            .finish(&war_id())
            .await
            .unwrap();
        war
    }

    fn pool_event(
        w: &World,
        i: usize,
        (kind, actor, victim, minute): (u8, u8, u8, u8),
    ) -> BattleEvent {
        let at = w.at(i64::from(minute));
        let id = format!("e{i}");
        match kind {
            4 => capture(&id, at, if actor == 0 { "t1" } else { "t2" }, "att"),
            5 => capture(&id, at, "t1", "def"),
            _ => build(w, i, (kind, actor, victim, minute)),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn replaying_events_never_changes_a_score(
            pool in event_pool(),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..60),
            cuts in proptest::collection::vec(1usize..8, 1..20),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let noisy = world().await;
                let events: Vec<BattleEvent> =
                    pool.iter().enumerate().map(|(i, e)| build(&noisy, i, *e)).collect();
                // A random stream over the pool (with repeats), cut into random batches.
                let stream: Vec<BattleEvent> =
                    picks.iter().map(|p| p.get(&events).clone()).collect();
                let mut rest = &stream[..];
                for cut in cuts.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (batch, tail) = rest.split_at((*cut).min(rest.len()));
                    noisy.svc.ingest(&war_id(), batch.to_vec()).await.unwrap();
                    rest = tail;
                }
                // Each distinct event once, in order of first appearance.
                let clean = world().await;
                let mut seen = HashSet::new();
                let unique: Vec<BattleEvent> = stream
                    .iter()
                    .filter(|e| seen.insert(e.event_id().clone()))
                    .cloned()
                    .collect();
                clean.svc.ingest(&war_id(), unique).await.unwrap();
                assert_eq!(scores_of(&noisy).await, scores_of(&clean).await);
            });
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever arrives (repeats, farmed kills, rejected events, captures back and forth,
        /// any batch cuts), the ledger recomputes the stored totals exactly: the war's final
        /// clan scores (hold points included), its side scores and every player's points.
        #[test]
        fn recomputing_a_war_from_its_ledger_reproduces_its_stored_totals(
            pool in proptest::collection::vec((0u8..6, 0u8..3, 0u8..3, 0u8..120), 1..25),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..60),
            cuts in proptest::collection::vec(1usize..8, 1..20),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let mut w = world().await;
                let events: Vec<BattleEvent> =
                    pool.iter().enumerate().map(|(i, e)| pool_event(&w, i, *e)).collect();
                let mut stream: Vec<BattleEvent> =
                    picks.iter().map(|p| p.get(&events).clone()).collect();
                // Captures must happen in time order to be accepted at all; keep the stream's
                // order otherwise.
                stream.sort_by_key(|e| e.occurred_at());
                let mut rest = &stream[..];
                for cut in cuts.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (batch, tail) = rest.split_at((*cut).min(rest.len()));
                    let now = batch.iter().map(BattleEvent::occurred_at).max().unwrap();
                    w.h.clock.set(now.max(w.deps.clock.now()));
                    w.svc.ingest(&war_id(), batch.to_vec()).await.unwrap();
                    rest = tail;
                }
                let war = finish(&mut w).await;
                let ledger = w.h.store.ledger_all(&war_id(), war.score_shards).await.unwrap();
                let totals = recompute(&ledger);
                let nonzero = |m: &BTreeMap<ClanId, i64>| -> BTreeMap<ClanId, i64> {
                    m.iter().filter(|(_, p)| **p != 0).map(|(c, p)| (c.clone(), *p)).collect()
                };
                assert_eq!(nonzero(&totals.clans), nonzero(&war.final_clan_scores));
                assert_eq!(
                    (totals.attacker, totals.defender),
                    (war.sides.attacker.score, war.sides.defender.score)
                );
                // Points per player (a player reported for two clans keeps one clan on its
                // item, which one is the store's choice; the points are what must agree).
                let stored: BTreeMap<PlayerId, i64> = w
                    .h
                    .store
                    .all_players(&war_id(), war.score_shards)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|p| (p.player_id, p.points))
                    .collect();
                let recomputed: BTreeMap<PlayerId, i64> =
                    totals.players.iter().map(|(p, (_, n))| (p.clone(), *n)).collect();
                assert_eq!(recomputed, stored);
                let mut ids: Vec<&str> = ledger.iter().map(|e| e.event_id.as_str()).collect();
                let count = ids.len();
                ids.sort_unstable();
                ids.dedup();
                assert_eq!(ids.len(), count, "an effect is recorded once");
            });
        }
    }
}
