//! In-memory adapters of every port: the domain runs end to end in unit tests with them, and
//! the store contract suite runs against them as the reference implementation.

use crate::events::EventEnvelope;
use crate::ids::{AllianceId, BattleId, ClanId, EventId, PlayerId, WarId};
use crate::ledger::{sort_page, LedgerEntry, LedgerFilter};
use crate::ports::*;
use crate::spatial::CellId;
use crate::territory::Territory;
use crate::war::{Side, War, WarStatus};
use crate::{alliance::Invitation, battle::Battle};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct Inner {
    records: BTreeMap<RecordKey, Record>,
    outbox: Vec<EventEnvelope>,
    applied: HashSet<(WarId, String)>,
    last_scored_kill: HashMap<(WarId, PlayerId, PlayerId), DateTime<Utc>>,
    clan_points: HashMap<WarId, BTreeMap<ClanId, i64>>,
    player_points: HashMap<WarId, BTreeMap<PlayerId, (ClanId, i64)>>,
    battle_kills: HashMap<(WarId, BattleId), SideKills>,
    sealed: HashSet<WarId>,
    /// Per war, the ledger pages in the order they were committed (one per transaction or
    /// batch), each newest first, as on DynamoDB.
    ledger: HashMap<WarId, Vec<Vec<LedgerEntry>>>,
    unavailable: bool,
    /// Transactions attempted (committed or refused), for "nothing was written" checks.
    commits: usize,
}

/// The store, outbox and score board in one process-local map (they share transactions).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    /// Like the table's stream and its relay: committed events are delivered here at once.
    stream: Option<MemoryPublisher>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose committed outbox events reach `publisher` right after each commit, as
    /// the stream relay does on AWS; events it refuses stay in the outbox.
    pub fn streaming_to(publisher: MemoryPublisher) -> Self {
        Self {
            stream: Some(publisher),
            ..Self::default()
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        let inner = self.inner.lock().expect("memory store poisoned");
        if inner.unavailable {
            return Err(StoreError::Unavailable {
                message: "memory store switched off".into(),
                source: None,
            });
        }
        Ok(inner)
    }

    /// Applies every write or none.
    fn commit_now(&self, tx: Transaction) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.commits += 1;
        // DynamoDB refuses two operations on one item in a transaction; so do we, to catch bugs.
        let mut seen = HashSet::new();
        for write in &tx.writes {
            if let Some(key) = write_key(write) {
                if !seen.insert(key.clone()) {
                    return Err(StoreError::Invalid(format!("two writes to {key}")));
                }
            }
        }
        for (index, write) in tx.writes.iter().enumerate() {
            inner.check(index, write)?;
        }
        for write in tx.writes {
            inner.apply(write);
        }
        Ok(())
    }

    /// How many transactions were sent to this store so far.
    pub fn commits(&self) -> usize {
        self.inner.lock().expect("memory store poisoned").commits
    }

    /// Fault injection: every call fails with `Unavailable` while switched off.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.inner
            .lock()
            .expect("memory store poisoned")
            .unavailable = unavailable;
    }
}

impl Inner {
    fn check(&self, index: usize, write: &Write) -> Result<(), StoreError> {
        let conflict = Err(StoreError::Conflict { index: Some(index) });
        match write {
            Write::Put { record, expect } => self.check_expect(index, &record.key(), *expect),
            Write::Delete { key, expect } => self.check_expect(index, key, *expect),
            Write::Emit(_) | Write::Ledger(_) => Ok(()),
            Write::Score(delta) => {
                if self.refuses_points(delta) {
                    return Err(StoreError::Sealed(delta.war_id.clone()));
                }
                if self
                    .applied
                    .contains(&(delta.war_id.clone(), delta.dedupe_id.clone()))
                {
                    return conflict;
                }
                if delta
                    .farm_guard
                    .as_ref()
                    .is_some_and(|g| self.farmed(&delta.war_id, g))
                {
                    return conflict;
                }
                Ok(())
            }
        }
    }

    fn check_expect(
        &self,
        index: usize,
        key: &RecordKey,
        expect: Expect,
    ) -> Result<(), StoreError> {
        let stored = self.records.get(key).map(Record::version);
        let ok = match expect {
            Expect::Absent => stored.is_none(),
            Expect::Version(v) => stored == Some(v),
        };
        if ok {
            Ok(())
        } else {
            Err(StoreError::Conflict { index: Some(index) })
        }
    }

    /// Sealed counters take no points (as on DynamoDB, where the clan shard item carries the
    /// seal condition).
    fn refuses_points(&self, delta: &ScoreDelta) -> bool {
        !delta.clans.is_empty() && self.sealed.contains(&delta.war_id)
    }

    /// One delta of a batch, judged against everything applied before it.
    fn apply_one(&mut self, delta: ScoreDelta) -> ApplyOutcome {
        let dedupe = (delta.war_id.clone(), delta.dedupe_id.clone());
        if self.applied.contains(&dedupe) {
            return ApplyOutcome::Duplicate;
        }
        if self.refuses_points(&delta) {
            return ApplyOutcome::Sealed;
        }
        if delta
            .farm_guard
            .as_ref()
            .is_some_and(|g| self.farmed(&delta.war_id, g))
        {
            self.applied.insert(dedupe);
            return ApplyOutcome::Farmed;
        }
        self.apply_score(delta);
        ApplyOutcome::Applied
    }

    fn farmed(&self, war: &WarId, guard: &FarmGuard) -> bool {
        let key = (
            war.clone(),
            guard.killer_id.clone(),
            guard.victim_id.clone(),
        );
        let cutoff = guard.occurred_at - Duration::seconds(guard.window_s);
        self.last_scored_kill
            .get(&key)
            .is_some_and(|last| *last > cutoff)
    }

    fn apply(&mut self, write: Write) {
        match write {
            Write::Put { record, .. } => {
                self.records.insert(record.key(), record);
            }
            Write::Delete { key, .. } => {
                self.records.remove(&key);
            }
            Write::Emit(event) => self.outbox.push(event),
            Write::Score(delta) => {
                let (war, entry) = (delta.war_id.clone(), delta.ledger.clone());
                self.apply_score(delta);
                self.record(&war, entry.into_iter().map(|e| *e).collect());
            }
            Write::Ledger(write) => self.record(&write.war_id, write.entries),
        }
    }

    /// Adds one ledger page (newest first within it).
    fn record(&mut self, war: &WarId, mut entries: Vec<LedgerEntry>) {
        if entries.is_empty() {
            return;
        }
        sort_page(&mut entries);
        self.ledger.entry(war.clone()).or_default().push(entries);
    }

    fn apply_score(&mut self, delta: ScoreDelta) {
        let war = delta.war_id;
        self.applied.insert((war.clone(), delta.dedupe_id));
        if let Some(g) = delta.farm_guard {
            self.last_scored_kill
                .insert((war.clone(), g.killer_id, g.victim_id), g.occurred_at);
        }
        let clans = self.clan_points.entry(war.clone()).or_default();
        for (clan, points) in delta.clans {
            *clans.entry(clan).or_default() += points;
        }
        let players = self.player_points.entry(war.clone()).or_default();
        for p in delta.players {
            let entry = players.entry(p.player_id).or_insert((p.clan_id, 0));
            entry.1 += p.points;
        }
        if let Some((battle, side)) = delta.battle_kill {
            let kills = self.battle_kills.entry((war, battle)).or_default();
            match side {
                Side::Attacker => kills.attacker += 1,
                Side::Defender => kills.defender += 1,
            }
        }
    }

    fn wars(&self) -> impl Iterator<Item = &War> {
        self.records.values().filter_map(|r| match r {
            Record::War(w) => Some(w),
            _ => None,
        })
    }
}

fn write_key(write: &Write) -> Option<String> {
    match write {
        Write::Put { record, .. } => Some(format!("{:?}", record.key())),
        Write::Delete { key, .. } => Some(format!("{key:?}")),
        Write::Score(d) => Some(format!("score/{}/{}", d.war_id, d.dedupe_id)),
        Write::Emit(e) => Some(format!("event/{}", e.event_id)),
        Write::Ledger(_) => None,
    }
}

fn war_cursor(war: &War) -> String {
    format!("{}|{}", war.declared_at.to_rfc3339(), war.war_id)
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        Ok(self.lock()?.records.get(key).cloned())
    }

    async fn commit(&self, tx: Transaction) -> Result<(), StoreError> {
        let events = tx.events();
        self.commit_now(tx)?;
        if let Some(stream) = self.stream.as_ref().filter(|_| !events.is_empty()) {
            if stream.publish(&events).await.is_ok() {
                self.acknowledge(&events).await?;
            }
        }
        Ok(())
    }

    async fn wars_of_clan(
        &self,
        clan: &ClanId,
        status: Option<WarStatus>,
        page: PageRequest,
    ) -> Result<Page<War>, StoreError> {
        let inner = self.lock()?;
        let mut wars: Vec<&War> = inner
            .wars()
            .filter(|w| w.side_of(clan).is_some())
            .filter(|w| status.is_none_or(|s| w.status == s))
            .collect();
        wars.sort_by_key(|w| std::cmp::Reverse(war_cursor(w)));
        let start = match &page.cursor {
            Some(cursor) if !cursor.contains('|') => return Err(StoreError::BadCursor),
            Some(cursor) => wars
                .iter()
                .position(|w| war_cursor(w) < *cursor)
                .unwrap_or(wars.len()),
            None => 0,
        };
        let limit = page.limit.max(1);
        let items: Vec<War> = wars
            .iter()
            .skip(start)
            .take(limit)
            .map(|w| (*w).clone())
            .collect();
        let next_cursor = (start + items.len() < wars.len())
            .then(|| items.last().map(war_cursor))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    async fn territories_in_cells(&self, cells: &[CellId]) -> Result<Vec<Territory>, StoreError> {
        let wanted: HashSet<&CellId> = cells.iter().collect();
        Ok(self
            .lock()?
            .records
            .values()
            .filter_map(|r| match r {
                Record::Territory(t) if wanted.contains(&t.cell) => Some(t.clone()),
                _ => None,
            })
            .collect())
    }

    async fn battles_of_war(&self, war: &WarId) -> Result<Vec<Battle>, StoreError> {
        Ok(self
            .lock()?
            .records
            .values()
            .filter_map(|r| match r {
                Record::Battle(b) if &b.war_id == war => Some(b.clone()),
                _ => None,
            })
            .collect())
    }

    async fn invitations_of_alliance(
        &self,
        alliance: &AllianceId,
    ) -> Result<Vec<Invitation>, StoreError> {
        Ok(self
            .lock()?
            .records
            .values()
            .filter_map(|r| match r {
                Record::Invitation(i) if &i.alliance_id == alliance => Some(i.clone()),
                _ => None,
            })
            .collect())
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn pending(&self, limit: usize) -> Result<Vec<EventEnvelope>, StoreError> {
        let mut pending = self.lock()?.outbox.clone();
        pending.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
        pending.truncate(limit);
        Ok(pending)
    }

    async fn acknowledge(&self, events: &[EventEnvelope]) -> Result<(), StoreError> {
        let ids: HashSet<&EventId> = events.iter().map(|e| &e.event_id).collect();
        self.lock()?.outbox.retain(|e| !ids.contains(&e.event_id));
        Ok(())
    }
}

#[async_trait]
impl ScoreBoard for MemoryStore {
    async fn apply_batch(&self, deltas: Vec<ScoreDelta>) -> Result<Vec<ApplyOutcome>, StoreError> {
        let mut inner = self.lock()?;
        let Some(war) = deltas.first().map(|d| d.war_id.clone()) else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::new();
        let outcomes = deltas
            .into_iter()
            .map(|d| {
                let entry = d.ledger.clone();
                let outcome = inner.apply_one(d);
                if outcome == ApplyOutcome::Applied {
                    entries.extend(entry.map(|e| *e));
                }
                outcome
            })
            .collect();
        inner.record(&war, entries);
        Ok(outcomes)
    }

    async fn ledger(
        &self,
        war: &WarId,
        _shards: u32,
        filter: &LedgerFilter,
        page: PageRequest,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        let inner = self.lock()?;
        let empty = Vec::new();
        let pages = inner.ledger.get(war).unwrap_or(&empty);
        // Cursor `p:i`: the last entry answered, as (page counted from the oldest, index in
        // it), so it stays valid while newer pages are added.
        let after = match &page.cursor {
            None => None,
            Some(c) => {
                let (a, b) = c.split_once(':').ok_or(StoreError::BadCursor)?;
                let a: usize = a.parse().map_err(|_| StoreError::BadCursor)?;
                let b: usize = b.parse().map_err(|_| StoreError::BadCursor)?;
                if pages.get(a).is_none_or(|p| b >= p.len()) {
                    return Err(StoreError::BadCursor);
                }
                Some((a, b))
            }
        };
        let newest_first = (0..pages.len())
            .rev()
            .flat_map(|p| (0..pages[p].len()).map(move |i| (p, i)));
        let mut matching = newest_first
            .skip_while(|&(p, i)| after.is_some_and(|(a, b)| (p, i) != (a, b)))
            .skip(usize::from(after.is_some()))
            .filter(|&(p, i)| pages[p][i].matches(filter));
        let limit = page.limit.max(1);
        let taken: Vec<(usize, usize)> = matching.by_ref().take(limit).collect();
        let next_cursor = match (taken.last(), matching.next()) {
            (Some((p, i)), Some(_)) => Some(format!("{p}:{i}")),
            _ => None,
        };
        let items = taken.iter().map(|&(p, i)| pages[p][i].clone()).collect();
        Ok(Page { items, next_cursor })
    }

    async fn ledger_all(&self, war: &WarId, _shards: u32) -> Result<Vec<LedgerEntry>, StoreError> {
        Ok(self
            .lock()?
            .ledger
            .get(war)
            .map(|pages| pages.iter().flatten().cloned().collect())
            .unwrap_or_default())
    }

    async fn seal(&self, war: &WarId, _shards: u32) -> Result<BTreeMap<ClanId, i64>, StoreError> {
        let mut inner = self.lock()?;
        inner.sealed.insert(war.clone());
        Ok(inner.clan_points.get(war).cloned().unwrap_or_default())
    }

    async fn clan_totals(
        &self,
        war: &WarId,
        _shards: u32,
    ) -> Result<BTreeMap<ClanId, i64>, StoreError> {
        Ok(self
            .lock()?
            .clan_points
            .get(war)
            .cloned()
            .unwrap_or_default())
    }

    async fn top_players(
        &self,
        war: &WarId,
        shards: u32,
        limit: usize,
    ) -> Result<Vec<PlayerScore>, StoreError> {
        Ok(leaderboard(self.all_players(war, shards).await?, limit))
    }

    async fn player_score(
        &self,
        war: &WarId,
        player: &PlayerId,
    ) -> Result<Option<PlayerScore>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .player_points
            .get(war)
            .and_then(|m| m.get(player))
            .map(|(clan, points)| PlayerScore {
                player_id: player.clone(),
                clan_id: clan.clone(),
                points: *points,
            }))
    }

    async fn all_players(&self, war: &WarId, _shards: u32) -> Result<Vec<PlayerScore>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .player_points
            .get(war)
            .map(|m| {
                m.iter()
                    .map(|(player, (clan, points))| PlayerScore {
                        player_id: player.clone(),
                        clan_id: clan.clone(),
                        points: *points,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn battle_kills(
        &self,
        war: &WarId,
        _shards: u32,
        battle: &BattleId,
    ) -> Result<SideKills, StoreError> {
        Ok(self
            .lock()?
            .battle_kills
            .get(&(war.clone(), battle.clone()))
            .copied()
            .unwrap_or_default())
    }
}

/// A store where another writer wins the race: the rival transaction given to
/// [`RacingStore::race_next_commit`] is committed just before the next commit it is asked for,
/// as if another Lambda had written between the service's reads and its write. For testing
/// optimistic locking and the services' reload-and-recheck loops.
#[derive(Debug, Default)]
pub struct RacingStore {
    inner: MemoryStore,
    rival: Mutex<Option<Transaction>>,
}

impl RacingStore {
    pub fn new(inner: MemoryStore) -> Self {
        Self {
            inner,
            rival: Mutex::new(None),
        }
    }

    pub fn race_next_commit(&self, rival: Transaction) {
        *self.rival.lock().expect("poisoned") = Some(rival);
    }
}

#[async_trait]
impl Store for RacingStore {
    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        self.inner.get(key).await
    }
    async fn commit(&self, tx: Transaction) -> Result<(), StoreError> {
        let rival = self.rival.lock().expect("poisoned").take();
        if let Some(rival) = rival {
            self.inner.commit(rival).await?;
        }
        self.inner.commit(tx).await
    }
    async fn wars_of_clan(
        &self,
        clan: &ClanId,
        status: Option<WarStatus>,
        page: PageRequest,
    ) -> Result<Page<War>, StoreError> {
        self.inner.wars_of_clan(clan, status, page).await
    }
    async fn territories_in_cells(&self, cells: &[CellId]) -> Result<Vec<Territory>, StoreError> {
        self.inner.territories_in_cells(cells).await
    }
    async fn battles_of_war(&self, war: &WarId) -> Result<Vec<Battle>, StoreError> {
        self.inner.battles_of_war(war).await
    }
    async fn invitations_of_alliance(
        &self,
        alliance: &AllianceId,
    ) -> Result<Vec<Invitation>, StoreError> {
        self.inner.invitations_of_alliance(alliance).await
    }
}

/// Records what was published; can be told to fail (the outbox must then keep the events).
#[derive(Debug, Clone, Default)]
pub struct MemoryPublisher {
    published: Arc<Mutex<Vec<EventEnvelope>>>,
    failing: Arc<Mutex<bool>>,
}

impl MemoryPublisher {
    pub fn published(&self) -> Vec<EventEnvelope> {
        self.published.lock().expect("poisoned").clone()
    }
    pub fn types(&self) -> Vec<&'static str> {
        self.published()
            .iter()
            .map(EventEnvelope::event_type)
            .collect()
    }
    pub fn set_failing(&self, failing: bool) {
        *self.failing.lock().expect("poisoned") = failing;
    }
}

#[async_trait]
impl EventPublisher for MemoryPublisher {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<(), PublishError> {
        if *self.failing.lock().expect("poisoned") {
            return Err(PublishError {
                failed: events.iter().map(|e| e.event_id.clone()).collect(),
                message: "publisher switched off".into(),
            });
        }
        self.published
            .lock()
            .expect("poisoned")
            .extend_from_slice(events);
        Ok(())
    }
}

/// A workflow call as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowCall {
    StartDeclaration(WarId),
    StartLifecycle(WarId),
    StopLifecycle(WarId),
    StartRewards(WarId),
    /// A later run of the reward saga (`<war_id>-<run>`: a correction or a re-drive).
    StartRewardsRun(WarId, String),
}

/// Records workflow calls; can be told to fail starting declaration sagas and lifecycles.
#[derive(Debug, Clone, Default)]
pub struct MemoryWorkflows {
    calls: Arc<Mutex<Vec<WorkflowCall>>>,
    fail_start: Arc<Mutex<bool>>,
}

impl MemoryWorkflows {
    pub fn calls(&self) -> Vec<WorkflowCall> {
        self.calls.lock().expect("poisoned").clone()
    }
    pub fn set_fail_start(&self, fail: bool) {
        *self.fail_start.lock().expect("poisoned") = fail;
    }
    fn record(&self, call: WorkflowCall) {
        self.calls.lock().expect("poisoned").push(call);
    }
}

#[async_trait]
impl WorkflowStarter for MemoryWorkflows {
    async fn start_declaration(&self, war: &War) -> Result<(), WorkflowError> {
        if *self.fail_start.lock().expect("poisoned") {
            return Err(WorkflowError {
                message: "workflows switched off".into(),
            });
        }
        self.record(WorkflowCall::StartDeclaration(war.war_id.clone()));
        Ok(())
    }
    async fn start_lifecycle(&self, war: &War) -> Result<(), WorkflowError> {
        if *self.fail_start.lock().expect("poisoned") {
            return Err(WorkflowError {
                message: "workflows switched off".into(),
            });
        }
        self.record(WorkflowCall::StartLifecycle(war.war_id.clone()));
        Ok(())
    }
    async fn stop_lifecycle(&self, war: &WarId) -> Result<(), WorkflowError> {
        self.record(WorkflowCall::StopLifecycle(war.clone()));
        Ok(())
    }
    async fn start_rewards(&self, war: &WarId) -> Result<(), WorkflowError> {
        self.record(WorkflowCall::StartRewards(war.clone()));
        Ok(())
    }
    async fn start_rewards_run(&self, war: &WarId, run: &str) -> Result<(), WorkflowError> {
        self.record(WorkflowCall::StartRewardsRun(war.clone(), run.to_owned()));
        Ok(())
    }
}

/// A clock the test moves by hand.
#[derive(Debug, Clone)]
pub struct FakeClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl FakeClock {
    pub fn at(now: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(now)),
        }
    }
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().expect("poisoned") = now;
    }
    pub fn advance(&self, by: Duration) {
        *self.now.lock().expect("poisoned") += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("poisoned")
    }
    /// Returns at once: tests never wait on backoff (and the fake time does not move).
    fn pause(&self, _delay: std::time::Duration) -> futures_util::future::BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Ids `id-1`, `id-2`, … : readable and deterministic in tests.
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl IdGenerator for SequentialIds {
    fn new_id(&self) -> String {
        format!("id-{}", self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_memory_store_passes_the_store_contract() {
        crate::testkit::run_all(&super::MemoryStore::new(), "mem").await;
    }
}
