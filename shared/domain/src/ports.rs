//! Port traits: everything the domain needs from the outside world. Adapters live in
//! `crate::memory` (in-process fakes) and in the AWS adapter crate (DynamoDB, EventBridge, SFN).

// The value types of the port signatures, re-exported so adapters name them in one place; each
// lives with the module that owns it.
pub use crate::battle::SideKills;
pub use crate::declaration::{IdempotencyRecord, PairLock};
pub use crate::port_error::{PublishError, StoreError, WorkflowError};
pub use crate::scoring::{
    leaderboard, ApplyOutcome, FarmGuard, PlayerPoints, PlayerScore, ScoreDelta,
};

use crate::alliance::{Alliance, Invitation};
use crate::battle::Battle;
use crate::clan::Clan;
use crate::events::EventEnvelope;
use crate::ids::{AllianceId, BattleId, ClanId, PlayerId, TerritoryId, WarId};
use crate::ledger::{LedgerEntry, LedgerFilter, LedgerWrite};
use crate::rewards::RewardPlan;
use crate::spatial::CellId;
use crate::territory::Territory;
use crate::war::{War, WarStatus};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Identifies one stored record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecordKey {
    Clan(ClanId),
    War(WarId),
    Territory(TerritoryId),
    Battle(WarId, BattleId),
    Alliance(AllianceId),
    Invitation(AllianceId, ClanId),
    /// The unordered pair of clans (stored sorted) — guards rules 4 and 6.
    Pair(ClanId, ClanId),
    /// A declaration's `Idempotency-Key`, scoped to the attacker clan.
    Idempotency(ClanId, String),
    RewardPlan(WarId),
}

impl RecordKey {
    /// The pair key with the clans in canonical order, so either direction finds it.
    pub fn pair(a: &ClanId, b: &ClanId) -> Self {
        if a <= b {
            RecordKey::Pair(a.clone(), b.clone())
        } else {
            RecordKey::Pair(b.clone(), a.clone())
        }
    }
}

/// Anything the store keeps under a [`RecordKey`].
// Records are read and written one at a time, briefly: the war (the largest, with its frozen
// ruleset, audit trails and tally) inline costs less than a box on every other record.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data")]
pub enum Record {
    Clan(Clan),
    War(War),
    Territory(Territory),
    Battle(Battle),
    Alliance(Alliance),
    Invitation(Invitation),
    Pair(PairLock),
    Idempotency(IdempotencyRecord),
    RewardPlan(RewardPlan),
}

/// Records carry a version that every write bumps (optimistic locking).
pub trait Versioned: Clone + Into<Record> {
    fn version(&self) -> u64;
    fn set_version(&mut self, version: u64);
}

macro_rules! record_kind {
    ($ty:ty, $variant:ident) => {
        impl From<$ty> for Record {
            fn from(r: $ty) -> Record {
                Record::$variant(r)
            }
        }
        impl Versioned for $ty {
            fn version(&self) -> u64 {
                self.version
            }
            fn set_version(&mut self, version: u64) {
                self.version = version;
            }
        }
        impl TryFrom<Record> for $ty {
            type Error = StoreError;
            fn try_from(r: Record) -> Result<Self, StoreError> {
                match r {
                    Record::$variant(inner) => Ok(inner),
                    other => Err(StoreError::Corrupt {
                        key: format!("{:?}", other.key()),
                        message: concat!("expected ", stringify!($variant)).to_owned(),
                    }),
                }
            }
        }
    };
}

record_kind!(Clan, Clan);
record_kind!(War, War);
record_kind!(Territory, Territory);
record_kind!(Battle, Battle);
record_kind!(Alliance, Alliance);
record_kind!(Invitation, Invitation);
record_kind!(PairLock, Pair);
record_kind!(IdempotencyRecord, Idempotency);
record_kind!(RewardPlan, RewardPlan);

impl Record {
    pub fn key(&self) -> RecordKey {
        match self {
            Record::Clan(c) => RecordKey::Clan(c.clan_id.clone()),
            Record::War(w) => RecordKey::War(w.war_id.clone()),
            Record::Territory(t) => RecordKey::Territory(t.territory_id.clone()),
            Record::Battle(b) => RecordKey::Battle(b.war_id.clone(), b.battle_id.clone()),
            Record::Alliance(a) => RecordKey::Alliance(a.alliance_id.clone()),
            Record::Invitation(i) => {
                RecordKey::Invitation(i.alliance_id.clone(), i.clan_id.clone())
            }
            Record::Pair(p) => RecordKey::Pair(p.first.clone(), p.second.clone()),
            Record::Idempotency(i) => RecordKey::Idempotency(i.clan_id.clone(), i.key.clone()),
            Record::RewardPlan(p) => RecordKey::RewardPlan(p.war_id.clone()),
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Record::Clan(r) => r.version,
            Record::War(r) => r.version,
            Record::Territory(r) => r.version,
            Record::Battle(r) => r.version,
            Record::Alliance(r) => r.version,
            Record::Invitation(r) => r.version,
            Record::Pair(r) => r.version,
            Record::Idempotency(r) => r.version,
            Record::RewardPlan(r) => r.version,
        }
    }
}

/// The condition a write needs to hold at commit time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No record under the key.
    Absent,
    /// The stored record has exactly this version.
    Version(u64),
}

/// One write of a [`Transaction`].
// A transaction holds at most 100 writes and lives for one commit: the inline `Put` (a war
// with its frozen ruleset and audit trail is the largest record) costs less than a box each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put {
        record: Record,
        expect: Expect,
    },
    Delete {
        key: RecordKey,
        expect: Expect,
    },
    /// An outbox entry: published after commit, never lost if publishing fails.
    Emit(EventEnvelope),
    /// Score counters (exactly once per dedupe id; the whole transaction fails on a duplicate).
    Score(ScoreDelta),
    /// Ledger entries without points of their own (hold points at the final tally).
    Ledger(LedgerWrite),
}

/// All-or-nothing set of writes: the unit every state change is committed in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transaction {
    pub writes: Vec<Write>,
}

impl Transaction {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts a new record (it must not exist); sets its version to 1. Returns the write index.
    pub fn insert<R: Versioned>(&mut self, record: &mut R) -> usize {
        record.set_version(1);
        self.push(Write::Put {
            record: record.clone().into(),
            expect: Expect::Absent,
        })
    }

    /// Replaces a record read at its current version, bumping the version in place.
    pub fn update<R: Versioned>(&mut self, record: &mut R) -> usize {
        let expected = record.version();
        record.set_version(expected + 1);
        self.push(Write::Put {
            record: record.clone().into(),
            expect: Expect::Version(expected),
        })
    }

    /// Inserts when `record.version() == 0` (never stored), updates otherwise.
    pub fn upsert<R: Versioned>(&mut self, record: &mut R) -> usize {
        if record.version() == 0 {
            self.insert(record)
        } else {
            self.update(record)
        }
    }

    pub fn delete(&mut self, key: RecordKey, expected_version: u64) -> usize {
        self.push(Write::Delete {
            key,
            expect: Expect::Version(expected_version),
        })
    }

    pub fn emit(&mut self, event: EventEnvelope) -> usize {
        self.push(Write::Emit(event))
    }

    pub fn score(&mut self, delta: ScoreDelta) -> usize {
        self.push(Write::Score(delta))
    }

    pub fn ledger(&mut self, write: LedgerWrite) -> usize {
        self.push(Write::Ledger(write))
    }

    /// The events this transaction writes to the outbox.
    pub fn events(&self) -> Vec<EventEnvelope> {
        self.writes
            .iter()
            .filter_map(|w| match w {
                Write::Emit(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn push(&mut self, write: Write) -> usize {
        self.writes.push(write);
        self.writes.len() - 1
    }
}

/// A page request: `cursor` is opaque, produced by the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Records, transactions and the queries the rules need.
#[async_trait]
pub trait Store: Send + Sync {
    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError>;
    /// Several records in one round trip (strongly consistent), in the order of `keys`.
    async fn get_many(&self, keys: &[RecordKey]) -> Result<Fetched, StoreError> {
        let mut records = Vec::with_capacity(keys.len());
        for key in keys {
            records.push(self.get(key).await?);
        }
        Ok(Fetched::new(records))
    }
    /// Applies every write or none; a failed condition is `StoreError::Conflict`.
    async fn commit(&self, tx: Transaction) -> Result<(), StoreError>;
    /// A clan's wars, newest declaration first, optionally only those in `status`.
    async fn wars_of_clan(
        &self,
        clan: &ClanId,
        status: Option<WarStatus>,
        page: PageRequest,
    ) -> Result<Page<War>, StoreError>;
    /// Territories whose spatial cell is one of `cells`.
    async fn territories_in_cells(&self, cells: &[CellId]) -> Result<Vec<Territory>, StoreError>;
    async fn battles_of_war(&self, war: &WarId) -> Result<Vec<Battle>, StoreError>;
    async fn invitations_of_alliance(
        &self,
        alliance: &AllianceId,
    ) -> Result<Vec<Invitation>, StoreError>;
}

/// Typed reads on top of [`Store::get`].
#[async_trait]
pub trait StoreExt: Store {
    async fn load<R>(&self, key: RecordKey) -> Result<Option<R>, StoreError>
    where
        R: TryFrom<Record, Error = StoreError> + Send,
    {
        match self.get(&key).await? {
            Some(record) => Ok(Some(R::try_from(record)?)),
            None => Ok(None),
        }
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// What [`Store::get_many`] found: one slot per key asked for, taken in that order.
#[derive(Debug)]
pub struct Fetched(std::vec::IntoIter<Option<Record>>);

impl Fetched {
    pub fn new(records: Vec<Option<Record>>) -> Self {
        Self(records.into_iter())
    }

    /// The next key's record, as its type (`None` if it does not exist).
    pub fn one<R>(&mut self) -> Result<Option<R>, StoreError>
    where
        R: TryFrom<Record, Error = StoreError>,
    {
        match self.0.next() {
            Some(Some(record)) => Ok(Some(R::try_from(record)?)),
            Some(None) => Ok(None),
            None => Err(StoreError::Invalid("fewer records than keys".into())),
        }
    }

    /// The records of the next `n` keys, as one type.
    pub fn many<R>(&mut self, n: usize) -> Result<Vec<Option<R>>, StoreError>
    where
        R: TryFrom<Record, Error = StoreError>,
    {
        (0..n).map(|_| self.one()).collect()
    }
}

/// The outbox: events committed but not yet confirmed as published.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Oldest first.
    async fn pending(&self, limit: usize) -> Result<Vec<EventEnvelope>, StoreError>;
    /// Removes published events from the outbox.
    async fn acknowledge(&self, events: &[EventEnvelope]) -> Result<(), StoreError>;
}

/// Score counters (sharded on DynamoDB) and their reads. `shards` is always the war's own
/// [`War::score_shards`].
#[async_trait]
pub trait ScoreBoard: Send + Sync {
    /// Applies the deltas of one batch (all of one war), each exactly once, judged in order:
    /// one outcome per delta. Cost grows with the distinct keys the batch touches, not with
    /// one round trip per delta. On `Err` some deltas may have been applied; applying the
    /// same deltas again is always safe (they then come back `Duplicate`).
    async fn apply_batch(&self, deltas: Vec<ScoreDelta>) -> Result<Vec<ApplyOutcome>, StoreError>;
    /// One delta: [`ScoreBoard::apply_batch`] of one.
    async fn apply(&self, delta: ScoreDelta) -> Result<ApplyOutcome, StoreError> {
        let outcomes = self.apply_batch(vec![delta]).await?;
        Ok(outcomes.first().copied().unwrap_or(ApplyOutcome::Duplicate))
    }
    /// Seals the war's counters and returns the points per clan they hold: every later score
    /// write to them fails as a whole. Sealing again returns the same totals.
    async fn seal(&self, war: &WarId, shards: u32) -> Result<BTreeMap<ClanId, i64>, StoreError>;
    /// Points per clan in the war (shards summed).
    async fn clan_totals(
        &self,
        war: &WarId,
        shards: u32,
    ) -> Result<BTreeMap<ClanId, i64>, StoreError>;
    /// Highest first; ties by player id.
    async fn top_players(
        &self,
        war: &WarId,
        shards: u32,
        limit: usize,
    ) -> Result<Vec<PlayerScore>, StoreError>;
    async fn player_score(
        &self,
        war: &WarId,
        player: &PlayerId,
    ) -> Result<Option<PlayerScore>, StoreError>;
    /// Every player with points in the war, by player id.
    async fn all_players(&self, war: &WarId, shards: u32) -> Result<Vec<PlayerScore>, StoreError>;
    async fn battle_kills(
        &self,
        war: &WarId,
        shards: u32,
        battle: &BattleId,
    ) -> Result<SideKills, StoreError>;
    /// One page of the war's ledger, newest first (the order entries were recorded in; a
    /// batch's entries by `occurred_at`, newest first), only entries matching `filter`.
    /// `page.cursor` is a cursor this method returned; anything else is `BadCursor`.
    async fn ledger(
        &self,
        war: &WarId,
        shards: u32,
        filter: &LedgerFilter,
        page: PageRequest,
    ) -> Result<Page<LedgerEntry>, StoreError>;
    /// The war's whole ledger, in no particular order (for recomputing its totals).
    async fn ledger_all(&self, war: &WarId, shards: u32) -> Result<Vec<LedgerEntry>, StoreError>;
}

/// Publishes committed events (EventBridge in AWS).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<(), PublishError>;
}

/// Starts and stops the Step Functions workflows.
#[async_trait]
pub trait WorkflowStarter: Send + Sync {
    /// Starts the declare-war saga of a war just written: it starts the war's lifecycle and
    /// compensates the declaration if that fails. Starting twice is a no-op.
    async fn start_declaration(&self, war: &War) -> Result<(), WorkflowError>;
    /// Starts the phase timers of a newly declared war. Starting twice is a no-op.
    async fn start_lifecycle(&self, war: &War) -> Result<(), WorkflowError>;
    /// Stops the timers of a war that ended early (surrender, cancellation).
    async fn stop_lifecycle(&self, war: &WarId) -> Result<(), WorkflowError>;
    /// Starts the reward saga of an ended war. Starting twice is a no-op.
    async fn start_rewards(&self, war: &WarId) -> Result<(), WorkflowError>;
    /// Starts a later run of the reward saga, named `<war_id>-<run>` (a rescore's correction
    /// `r<n>`, a re-drive `a<n>`). Starting the same run twice is a no-op.
    async fn start_rewards_run(&self, war: &WarId, run: &str) -> Result<(), WorkflowError> {
        let _ = (war, run);
        Err(WorkflowError {
            message: "this workflow starter cannot start later reward runs".into(),
        })
    }
}

/// The time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// Waits `delay` (the backoff between retries, [`crate::retry`]); test clocks return at
    /// once.
    fn pause(&self, delay: std::time::Duration) -> futures_util::future::BoxFuture<'static, ()>;
}

/// New unique ids.
pub trait IdGenerator: Send + Sync {
    fn new_id(&self) -> String;
}
