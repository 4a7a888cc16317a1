//! DynamoDB adapter of the store, outbox and score-board ports (single-table design; see
//! `keys.rs` and the README). Owns every `AttributeValue` mapping, the 100-item transaction
//! and 25/100-item batch limits, and the translation of cancellation reasons into conflicts.

use crate::keys::*;
use crate::score_plan::{ItemWriter, Role, MAX_TRANSACTION_ITEMS};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, KeysAndAttributes, Put, TransactWriteItem, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, Utc};
use clanwar_domain::events::EventEnvelope;
use clanwar_domain::ids::{AllianceId, ClanId, PlayerId, WarId};
use clanwar_domain::ports::*;
use clanwar_domain::spatial::CellId;
use clanwar_domain::territory::Territory;
use clanwar_domain::war::{Side, War, WarStatus};
use clanwar_domain::{alliance::Invitation, battle::Battle};
use std::collections::{BTreeMap, HashMap};

type Item = HashMap<String, AttributeValue>;

/// Most keys one `BatchGetItem` call takes.
const MAX_BATCH_GET: usize = 100;
/// Most requests one `BatchWriteItem` call takes.
const MAX_BATCH_WRITE: usize = 25;
/// Outbox partitions: every state change of every war writes (and the relay deletes) entries
/// here, so they are spread wide — at 1,000 war operations/s with 2 events each, about 190 of a
/// partition's 1,000 write units per second each (`make capacity`).
pub(crate) const OUTBOX_SHARDS: u32 = 32;

/// Pages one query reads at most (1 MB each: far beyond any query of this code). Reached only
/// by a backend that keeps answering a next page; an error then, never an endless loop.
pub(crate) const MAX_QUERY_PAGES: u32 = 1_000;

/// How long exactly-once markers and farm guards are kept (longer than any war can last).
pub(crate) const SCORE_MARKER_TTL_DAYS: i64 = 30;

/// A query that did not end within [`MAX_QUERY_PAGES`] pages.
pub(crate) fn too_many_pages(operation: &str) -> StoreError {
    StoreError::Invalid(format!(
        "{operation} did not end within {MAX_QUERY_PAGES} pages"
    ))
}

/// Where the table is. (The shard count of a war's counters is stamped on the war.)
#[derive(Debug, Clone)]
pub struct TableConfig {
    pub table: String,
}

/// The store, outbox and score board on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    pub(crate) client: Client,
    pub(crate) config: TableConfig,
}

impl DynamoDbStore {
    pub fn new(client: Client, config: TableConfig) -> Self {
        Self { client, config }
    }

    pub(crate) fn table(&self) -> &str {
        &self.config.table
    }
}

// ---- item mapping ---------------------------------------------------------------------------

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn key_item((pk, sk): (String, String)) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn epoch(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp())
}

pub(crate) fn corrupt(key: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        message: err.to_string(),
    }
}

fn record_item(record: &Record) -> Result<Item, StoreError> {
    let key = record_key(&record.key());
    let mut item: Item = serde_dynamo::to_item(record).map_err(|e| corrupt(&key.0, e))?;
    item.insert("ver".into(), n(record.version()));
    match record {
        Record::Territory(t) => {
            item.insert("gsi1pk".into(), s(cell_partition(&t.cell)));
            item.insert("gsi1sk".into(), s(key.0.clone()));
        }
        Record::Invitation(i) => {
            item.insert("expires_at".into(), epoch(i.expires_at));
        }
        Record::Idempotency(i) => {
            item.insert("expires_at".into(), epoch(i.expires_at));
        }
        _ => {}
    }
    item.extend(key_item(key));
    Ok(item)
}

fn decode_record(item: Item) -> Result<Record, StoreError> {
    let pk = item
        .get("pk")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    serde_dynamo::from_item(item).map_err(|e| corrupt(&pk, e))
}

pub(crate) fn number(item: &Item, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|raw| raw.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn string(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// Transaction items plus, for each, the index of the domain write it came from and its role.
#[derive(Default)]
struct TxItems {
    items: Vec<TransactWriteItem>,
    owner: Vec<usize>,
    roles: Vec<Role>,
}

impl TxItems {
    fn push(&mut self, owner: usize, item: TransactWriteItem) {
        self.push_with(owner, item, Role::Other);
    }

    fn push_with(&mut self, owner: usize, item: TransactWriteItem, role: Role) {
        self.items.push(item);
        self.owner.push(owner);
        self.roles.push(role);
    }
}

pub(crate) fn invalid(err: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(err.to_string())
}

impl DynamoDbStore {
    fn put(
        &self,
        item: Item,
        condition: Option<(&str, Option<u64>)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder().table_name(self.table()).set_item(Some(item));
        if let Some((expr, version)) = condition {
            put = put.condition_expression(expr);
            if let Some(v) = version {
                put = put.expression_attribute_values(":v", n(v));
            }
        }
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(invalid)?)
            .build())
    }

    fn expect_condition(expect: Expect) -> (&'static str, Option<u64>) {
        match expect {
            Expect::Absent => ("attribute_not_exists(pk)", None),
            Expect::Version(v) => ("ver = :v", Some(v)),
        }
    }

    fn write_items(
        &self,
        index: usize,
        write: &Write,
        out: &mut TxItems,
    ) -> Result<(), StoreError> {
        match write {
            Write::Put { record, expect } => {
                let item = record_item(record)?;
                out.push(
                    index,
                    self.put(item, Some(Self::expect_condition(*expect)))?,
                );
                if let Record::War(war) = record {
                    for entry in self.war_log_items(war) {
                        out.push(index, self.put(entry, None)?);
                    }
                }
            }
            Write::Delete { key, expect } => {
                let (expr, version) = Self::expect_condition(*expect);
                let mut delete = Delete::builder()
                    .table_name(self.table())
                    .set_key(Some(key_item(record_key(key))))
                    .condition_expression(expr);
                if let Some(v) = version {
                    delete = delete.expression_attribute_values(":v", n(v));
                }
                let item = TransactWriteItem::builder()
                    .delete(delete.build().map_err(invalid)?)
                    .build();
                out.push(index, item);
            }
            Write::Emit(event) => out.push(index, self.put(self.outbox_item(event)?, None)?),
            Write::Score(delta) => {
                for (item, role) in self.score_items(delta)? {
                    out.push_with(index, item, role);
                }
            }
            Write::Ledger(write) => {
                // Shard 0: these (hold points) are written once per war, at its final tally.
                let page = self
                    .writer(&write.war_id, 1)
                    .ledger_page(0, &write.entries)?;
                out.push(index, page);
            }
        }
        Ok(())
    }

    /// One war-log entry per clan of the war, rewritten on every war write so the status
    /// filter of the log stays exact.
    fn war_log_items(&self, war: &War) -> Vec<Item> {
        let declared = war
            .declared_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        war.all_clans()
            .iter()
            .map(|clan| {
                let mut item = key_item(war_log_key(clan, &declared, &war.war_id));
                item.insert("war_id".into(), s(war.war_id.as_str()));
                item.insert("status".into(), s(war.status.as_str()));
                item
            })
            .collect()
    }

    fn outbox_item(&self, event: &EventEnvelope) -> Result<Item, StoreError> {
        let id = event.event_id.as_str();
        let body = serde_json::to_string(event).map_err(|e| corrupt(id, e))?;
        let sk = format!(
            "{}#{id}",
            event
                .occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
        let mut item = key_item((outbox_partition(shard_of(id, OUTBOX_SHARDS)), sk));
        item.insert("event".into(), s(body));
        Ok(item)
    }

    pub(crate) fn writer<'a>(&'a self, war: &'a WarId, shards: u32) -> ItemWriter<'a> {
        ItemWriter {
            table: self.table(),
            war,
            shards,
            expires_at: (Utc::now() + Duration::days(SCORE_MARKER_TTL_DAYS)).timestamp(),
            recorded_ms: Utc::now().timestamp_millis(),
        }
    }

    /// Items applying one score delta inside a state change (a capture, a battle bonus, a
    /// snapshot's slot): its exactly-once record, the clan-counter shard (with the seal
    /// condition), each player's item and the battle's kill tally, on the shard its id hashes
    /// to. Batches of events take the planned path of `scoreboard.rs` instead.
    fn score_items(
        &self,
        delta: &ScoreDelta,
    ) -> Result<Vec<(TransactWriteItem, Role)>, StoreError> {
        let writer = self.writer(&delta.war_id, delta.shards);
        let shard = shard_of(&delta.dedupe_id, delta.shards);
        let mut items = Vec::new();
        match &delta.farm_guard {
            Some(guard) => {
                let at = guard.occurred_at.timestamp_millis();
                let cutoff =
                    (guard.occurred_at - Duration::seconds(guard.window_s)).timestamp_millis();
                let pair = (guard.killer_id.clone(), guard.victim_id.clone());
                items.push((
                    writer.pair(&pair, cutoff, at, [delta.dedupe_id.clone()])?,
                    Role::Other,
                ));
            }
            None => items.push((writer.marker(&delta.dedupe_id)?, Role::Other)),
        }
        let mut clans: BTreeMap<ClanId, i64> = BTreeMap::new();
        for (clan, points) in &delta.clans {
            *clans.entry(clan.clone()).or_default() += points;
        }
        if !clans.is_empty() {
            items.push((writer.clan_shard(shard, &clans)?, Role::Seal));
        }
        let mut players: BTreeMap<&PlayerId, (&ClanId, i64)> = BTreeMap::new();
        for p in &delta.players {
            players.entry(&p.player_id).or_insert((&p.clan_id, 0)).1 += p.points;
        }
        for (player, (clan, points)) in players {
            items.push((writer.player(player, clan, points)?, Role::Other));
        }
        if let Some((battle, side)) = &delta.battle_kill {
            let kills = match side {
                Side::Attacker => (1, 0),
                Side::Defender => (0, 1),
            };
            items.push((writer.battle(battle, shard, kills)?, Role::Other));
        }
        if let Some(entry) = &delta.ledger {
            let page = writer.ledger_page(shard, std::slice::from_ref(&**entry))?;
            items.push((page, Role::Other));
        }
        Ok(items)
    }

    /// One `TransactWriteItems`. Its `ClientRequestToken` is new for every call and kept by the
    /// SDK across its own retries: a retry after a lost response is answered as the success it
    /// was, not mistaken for a duplicate or a conflict.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), TransactFailure> {
        if items.len() > MAX_TRANSACTION_ITEMS {
            return Err(TransactFailure::Other(StoreError::Invalid(format!(
                "{} items exceed the {MAX_TRANSACTION_ITEMS}-item transaction limit",
                items.len()
            ))));
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(ctx)) => match ctx.err() {
                // Each item's reason: `ConditionalCheckFailed` names the write that lost,
                // `TransactionConflict` a competing transaction on the same item, `None` the
                // items that were fine.
                TransactWriteItemsError::TransactionCanceledException(ex) => {
                    Err(TransactFailure::Cancelled(
                        ex.cancellation_reasons()
                            .iter()
                            .map(|r| r.code().map(str::to_owned))
                            .collect(),
                    ))
                }
                other => Err(TransactFailure::Other(StoreError::unavailable(
                    format!("TransactWriteItems: {}", other.code().unwrap_or("unknown")),
                    ctx.into_err(),
                ))),
            },
            Err(err) => Err(TransactFailure::Other(StoreError::unavailable(
                "TransactWriteItems",
                err,
            ))),
        }
    }

    /// `BatchGetItem` of any number of keys: 100-key requests side by side, each asking again
    /// (bounded, with backoff) for the keys DynamoDB left unprocessed under throttling.
    pub(crate) async fn batch_get(
        &self,
        keys: Vec<Item>,
        consistent: bool,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let requests = keys.chunks(MAX_BATCH_GET).map(|chunk| async move {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(consistent)
                .set_projection_expression(projection.map(str::to_owned))
                .build()
                .map_err(invalid)?;
            let pages = crate::retry::until_processed(request, |request| async move {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(self.table(), request)
                    .send()
                    .await
                    .map_err(|e| StoreError::unavailable("BatchGetItem", e))?;
                let found = out
                    .responses
                    .and_then(|mut r| r.remove(self.table()))
                    .unwrap_or_default();
                let pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(self.table()))
                    .filter(|k| !k.keys().is_empty());
                Ok((found, pending))
            })
            .await?;
            Ok::<_, StoreError>(pages.into_iter().flatten().collect::<Vec<_>>())
        });
        let found = futures_util::future::try_join_all(requests).await?;
        Ok(found.into_iter().flatten().collect())
    }

    pub(crate) async fn query_all(
        &self,
        build: impl Fn() -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        for _ in 0..MAX_QUERY_PAGES {
            let out = build()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::unavailable("Query", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
        Err(too_many_pages("Query"))
    }

    fn query_prefix(
        &self,
        pk: String,
        prefix: &'static str,
    ) -> impl Fn() -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder + '_ {
        move || {
            self.client
                .query()
                .table_name(self.table())
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(prefix))
        }
    }

    async fn records_with_prefix(
        &self,
        pk: String,
        prefix: &'static str,
    ) -> Result<Vec<Record>, StoreError> {
        self.query_all(self.query_prefix(pk, prefix))
            .await?
            .into_iter()
            .map(decode_record)
            .collect()
    }
}

/// Why a transaction did not apply.
pub(crate) enum TransactFailure {
    /// Cancelled: each item's reason code, in item order (empty if DynamoDB gave none).
    Cancelled(Vec<Option<String>>),
    Other(StoreError),
}

#[async_trait]
impl Store for DynamoDbStore {
    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key_item(record_key(key))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::unavailable("GetItem", e))?;
        out.item.map(decode_record).transpose()
    }

    async fn get_many(&self, keys: &[RecordKey]) -> Result<Fetched, StoreError> {
        let wanted: Vec<(String, String)> = keys.iter().map(record_key).collect();
        // One request may not name a key twice.
        let distinct: std::collections::BTreeSet<&(String, String)> = wanted.iter().collect();
        let request = distinct.into_iter().cloned().map(key_item).collect();
        let mut found: HashMap<(String, String), Record> = HashMap::new();
        for item in self.batch_get(request, true, None).await? {
            let key = (
                string(&item, "pk").unwrap_or_default(),
                string(&item, "sk").unwrap_or_default(),
            );
            found.insert(key, decode_record(item)?);
        }
        Ok(Fetched::new(
            wanted.iter().map(|key| found.get(key).cloned()).collect(),
        ))
    }

    async fn commit(&self, tx: Transaction) -> Result<(), StoreError> {
        let mut items = TxItems::default();
        for (index, write) in tx.writes.iter().enumerate() {
            self.write_items(index, write, &mut items)?;
        }
        if items.items.is_empty() {
            return Ok(());
        }
        let TxItems {
            items,
            owner,
            roles,
        } = items;
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(TransactFailure::Cancelled(reasons)) => {
                let failed = |i: &usize| reasons[*i].as_deref() == Some("ConditionalCheckFailed");
                let positions = 0..reasons.len().min(owner.len());
                if let Some(i) = positions
                    .clone()
                    .filter(failed)
                    .find(|i| roles[*i] == Role::Seal)
                {
                    if let Some(Write::Score(delta)) = tx.writes.get(owner[i]) {
                        return Err(StoreError::Sealed(delta.war_id.clone()));
                    }
                }
                Err(StoreError::Conflict {
                    index: positions.filter(failed).map(|i| owner[i]).next(),
                })
            }
            Err(TransactFailure::Other(err)) => Err(err),
        }
    }

    async fn wars_of_clan(
        &self,
        clan: &ClanId,
        status: Option<WarStatus>,
        page: PageRequest,
    ) -> Result<Page<War>, StoreError> {
        let pk = format!("CLAN#{clan}");
        let start = match page.cursor {
            Some(cursor) if cursor.starts_with(WAR_LOG_PREFIX) && cursor.len() < 256 => {
                Some(key_item((pk.clone(), cursor)))
            }
            Some(_) => return Err(StoreError::BadCursor),
            None => None,
        };
        let mut query = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(WAR_LOG_PREFIX))
            .scan_index_forward(false)
            .limit(i32::try_from(page.limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start);
        if let Some(status) = status {
            query = query
                .filter_expression("#st = :st")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":st", s(status.as_str()));
        }
        let out = query
            .send()
            .await
            .map_err(|e| StoreError::unavailable("Query", e))?;
        let war_ids: Vec<String> = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|i| string(i, "war_id"))
            .collect();
        let keys = war_ids
            .iter()
            .map(|w| key_item((format!("WAR#{w}"), "WAR".into())))
            .collect();
        let mut by_id: HashMap<WarId, War> = HashMap::new();
        for item in self.batch_get(keys, false, None).await? {
            if let Record::War(war) = decode_record(item)? {
                by_id.insert(war.war_id.clone(), war);
            }
        }
        // BatchGetItem does not keep order; the log's order is the query's.
        let items = war_ids
            .iter()
            .filter_map(|id| {
                WarId::new(id.as_str())
                    .ok()
                    .and_then(|id| by_id.remove(&id))
            })
            .collect();
        let next_cursor = out.last_evaluated_key.and_then(|k| string(&k, "sk"));
        Ok(Page { items, next_cursor })
    }

    /// Every cell's query side by side: one round trip however many cells the circle touches.
    async fn territories_in_cells(&self, cells: &[CellId]) -> Result<Vec<Territory>, StoreError> {
        let partitions: Vec<String> = cells.iter().map(cell_partition).collect();
        let queries = partitions.iter().map(|partition| {
            self.query_all(move || {
                self.client
                    .query()
                    .table_name(self.table())
                    .index_name("gsi1")
                    .key_condition_expression("gsi1pk = :cell")
                    .expression_attribute_values(":cell", s(partition.clone()))
            })
        });
        let mut territories = Vec::new();
        for item in futures_util::future::try_join_all(queries)
            .await?
            .into_iter()
            .flatten()
        {
            if let Record::Territory(t) = decode_record(item)? {
                territories.push(t);
            }
        }
        Ok(territories)
    }

    async fn battles_of_war(&self, war: &WarId) -> Result<Vec<Battle>, StoreError> {
        self.records_with_prefix(format!("WAR#{war}"), "BATTLE#")
            .await?
            .into_iter()
            .map(Battle::try_from)
            .collect()
    }

    async fn invitations_of_alliance(
        &self,
        alliance: &AllianceId,
    ) -> Result<Vec<Invitation>, StoreError> {
        self.records_with_prefix(format!("ALLIANCE#{alliance}"), "INVITE#")
            .await?
            .into_iter()
            .map(Invitation::try_from)
            .collect()
    }
}

/// Whether a stream record's key is an outbox entry's (the relay's event source filter
/// selects these on AWS; this check keeps the relay right wherever the filter is not applied).
pub fn is_outbox_key(pk: &str) -> bool {
    pk.starts_with(OUTBOX_PREFIX)
}

/// The event an outbox entry carries, from the entry's item image (a stream record's
/// `NewImage`); `None` when the image is not an outbox entry.
pub fn outbox_event(image: &serde_dynamo::Item) -> Result<Option<EventEnvelope>, StoreError> {
    let pk = match image.get("pk") {
        Some(serde_dynamo::AttributeValue::S(pk)) if is_outbox_key(pk) => pk,
        _ => return Ok(None),
    };
    match image.get("event") {
        Some(serde_dynamo::AttributeValue::S(body)) => serde_json::from_str(body)
            .map(Some)
            .map_err(|e| corrupt(pk, e)),
        _ => Err(corrupt(pk, "outbox entry without its event")),
    }
}

impl DynamoDbStore {
    async fn rehome_outbox_entry(
        &self,
        old: &Item,
        event: &EventEnvelope,
    ) -> Result<(), StoreError> {
        let old_key: Item = old
            .iter()
            .filter(|(k, _)| *k == "pk" || *k == "sk")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(self.outbox_item(event)?))
            .build()
            .map_err(invalid)?;
        let delete = Delete::builder()
            .table_name(self.table())
            .set_key(Some(old_key))
            .build()
            .map_err(invalid)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .send()
            .await
            .map_err(|e| StoreError::unavailable("TransactWriteItems outbox move", e))?;
        Ok(())
    }
}

#[async_trait]
impl Outbox for DynamoDbStore {
    async fn pending(&self, limit: usize) -> Result<Vec<EventEnvelope>, StoreError> {
        // Every partition side by side: a sweep costs one round trip.
        let queries = (0..OUTBOX_SHARDS).map(|shard| {
            self.client
                .query()
                .table_name(self.table())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(outbox_partition(shard)))
                .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
                .consistent_read(true)
                .send()
        });
        let pages = futures_util::future::try_join_all(queries)
            .await
            .map_err(|e| StoreError::unavailable("Query outbox", e))?;
        let mut events = Vec::new();
        for item in pages.iter().flat_map(|page| page.items()) {
            let body = string(item, "event").unwrap_or_default();
            let event: EventEnvelope =
                serde_json::from_str(&body).map_err(|e| corrupt("outbox", e))?;
            if string(item, "pk") != string(&self.outbox_item(&event)?, "pk") {
                // Written under an earlier partition count: moved to its key first, so that
                // acknowledging it finds it.
                self.rehome_outbox_entry(item, &event).await?;
            }
            events.push(event);
        }
        events.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
        events.truncate(limit);
        Ok(events)
    }

    async fn acknowledge(&self, events: &[EventEnvelope]) -> Result<(), StoreError> {
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(events.len());
        for event in events {
            let key = self
                .outbox_item(event)?
                .into_iter()
                .filter(|(k, _)| k == "pk" || k == "sk")
                .collect();
            let delete = DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .map_err(invalid)?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        let batches = requests.chunks(MAX_BATCH_WRITE).map(|chunk| {
            crate::retry::until_processed(chunk.to_vec(), |pending| async move {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(self.table(), pending)
                    .send()
                    .await
                    .map_err(|e| StoreError::unavailable("BatchWriteItem", e))?;
                let pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(self.table()))
                    .filter(|items| !items.is_empty());
                Ok(((), pending))
            })
        });
        futures_util::future::try_join_all(batches).await?;
        Ok(())
    }
}

/// The capacity model of the war operations and the score reads (`make capacity`, with the
/// score path's model in `score_plan.rs`): per partition key at the seed's load, against
/// DynamoDB's per-partition limits of 1,000 write and 3,000 read units per second.
#[cfg(test)]
mod capacity {
    use super::OUTBOX_SHARDS;

    const PARTITION_WCU: f64 = 1_000.0;
    const PARTITION_RCU: f64 = 3_000.0;
    /// Score counter shards of a war (the template's default).
    const SHARDS: f64 = 16.0;

    /// Write units of one write of `kb` kilobytes (transactions cost double).
    fn wcu(kb: f64, transactional: bool) -> f64 {
        kb.ceil() * if transactional { 2.0 } else { 1.0 }
    }
    /// Read units of one read of `kb` kilobytes (eventually consistent reads cost half).
    fn rcu(kb: f64, consistent: bool) -> f64 {
        (kb / 4.0).ceil() * if consistent { 1.0 } else { 0.5 }
    }

    #[test]
    fn no_partition_key_exceeds_half_its_capacity_under_war_operations_and_score_reads() {
        // Seed load: 1,000 war operations/s over 100+ wars, each writing the war item and
        // about 2 outbox entries (deleted again by the relay); 2,000 score reads/s, all on one
        // war (the worst case: a final everybody watches).
        let war_ops = 1_000.0;
        let wars = 100.0;
        let events_per_op = 2.0;
        let score_reads = 2_000.0;
        // Sizes: a busy war item 4 KB (captures, open battles, transitions), an outbox entry
        // under 1 KB, a clan counter shard 332 B, top-10 page of an index shard 2.4 KB.
        let (war_kb, outbox_kb, shard_kb, top_kb) = (4.0, 1.0, 0.33, 2.4);
        let outbox = f64::from(OUTBOX_SHARDS);
        let writes = [
            (
                "WAR#<war> (one war's item)",
                war_ops / wars * wcu(war_kb, true),
            ),
            (
                "OUTBOX#<n> (entries + the relay's deletes)",
                war_ops * events_per_op * (wcu(outbox_kb, true) + wcu(outbox_kb, false)) / outbox,
            ),
        ];
        let reads = [
            (
                "SCORE#<war>#<shard> (scoreboard: every shard)",
                score_reads * rcu(shard_kb, false),
            ),
            (
                "gsi2 WARPTS#<war>#<shard> (top players)",
                score_reads * rcu(top_kb, false),
            ),
            (
                "WAR#<war> (war reads, 1,000/s over 100 wars)",
                war_ops / wars * rcu(war_kb, true),
            ),
            (
                "OUTBOX#<n> (the sweep: a query a minute)",
                rcu(outbox_kb * 100.0, true) / 60.0,
            ),
        ];
        println!("\nwar operations: 1,000/s over 100 wars, 2 events each; {OUTBOX_SHARDS} outbox partitions");
        println!("  {:<48} {:>9} {:>7}", "partition key", "WCU/s", "of 1000");
        for (key, load) in writes {
            println!(
                "  {key:<48} {load:>9.1} {:>6.1}%",
                100.0 * load / PARTITION_WCU
            );
            assert!(load <= PARTITION_WCU / 2.0, "{key}: {load} WCU/s");
        }
        println!("\nscore reads: 2,000/s on one war ({SHARDS} shards), eventually consistent");
        println!("  {:<48} {:>9} {:>7}", "partition key", "RCU/s", "of 3000");
        for (key, load) in reads {
            println!(
                "  {key:<48} {load:>9.1} {:>6.1}%",
                100.0 * load / PARTITION_RCU
            );
            assert!(load <= PARTITION_RCU / 2.0, "{key}: {load} RCU/s");
        }
    }
}
