//! The reward plan on DynamoDB: a header item and chunk items.
//!
//! One item per plan passes DynamoDB's 400 KB item limit at a few thousand grants, and every
//! saga step would rewrite all of it. So a plan is stored as
//!
//! - its header (`WAR#<war>` / `REWARDS`): the record without its grants, carrying the version
//!   and the digest of each chunk in order (`grant_chunks`, `superseded_chunks`);
//! - its chunks (`REWARDS#G#<index>` for the grants, `REWARDS#S#<index>` for the superseded
//!   ones): up to [`GRANTS_PER_ITEM`] grants each, in plan order, with their digest.
//!
//! A write puts the header under its version condition and, in the same transaction, only the
//! chunks whose digest changed (the stored digests are read from the header first), and deletes
//! the chunks past the new end: a saga step that marks one chunk of grants writes the header
//! and one or two chunks. A read gets the header, then only the chunks it has not decoded
//! before (one `BatchGetItem`): a chunk's digest names its content, so chunks read earlier by
//! the same process are reused from memory and a saga step reads the header and the one or
//! two chunks the step before it changed. A fetched chunk that does not match the header's
//! digest was read across a concurrent write, and the read is repeated. A plan stored as one
//! item (before chunks) reads as it always did and is chunked by its next write.
//!
//! A war has at most 8,000 players (4 clans a side of 1,000 at `MAX_ALLIES_PER_SIDE`): its
//! plan is 40 chunks, and a correction that supersedes every grant writes at most 81 — with
//! the war, its war-log entries and an event, within one transaction's 100 items and 4 MB.

use crate::attributes::*;
use crate::dynamodb::DynamoDbStore;
use crate::keys::record_key;
use crate::store::{decode_record, record_item};
use crate::unit_of_work::TxItems;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem};
use clanwar_domain::ids::WarId;
use clanwar_domain::ports::{Expect, Record, RecordKey, StoreError, Transaction, Write};
use clanwar_domain::rewards::{Grant, RewardPlan};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Grants per chunk item: ~26 KB at the ids' usual length, far below the item limit.
pub(crate) const GRANTS_PER_ITEM: usize = 200;

const HEADER: &str = "REWARDS";

/// Reads that met a concurrent write before one saw the plan whole (each is a new query).
const READ_ATTEMPTS: u32 = 5;

/// One of a plan's two lists of grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Grants,
    Superseded,
}

impl Part {
    const BOTH: [Part; 2] = [Part::Grants, Part::Superseded];

    fn sort_key(self, index: usize) -> String {
        let prefix = match self {
            Part::Grants => "REWARDS#G#",
            Part::Superseded => "REWARDS#S#",
        };
        format!("{prefix}{index:04}")
    }

    /// The header's attribute listing this part's chunk digests.
    fn digests(self) -> &'static str {
        match self {
            Part::Grants => "grant_chunks",
            Part::Superseded => "superseded_chunks",
        }
    }
}

/// The chunks a stored plan is made of, by their digests in order.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Layout {
    grants: Vec<String>,
    superseded: Vec<String>,
}

impl Layout {
    /// Every chunk: part, index and digest.
    fn chunks(&self) -> impl Iterator<Item = (Part, usize, &String)> {
        Part::BOTH.into_iter().flat_map(move |part| {
            self.of(part)
                .iter()
                .enumerate()
                .map(move |(i, digest)| (part, i, digest))
        })
    }

    /// The layout a header lists; `None` for a plan stored as one item.
    fn of_header(item: &Item) -> Option<Self> {
        let digests = |part: Part| {
            let list = item.get(part.digests())?.as_l().ok()?;
            Some(list.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        };
        Some(Self {
            grants: digests(Part::Grants)?,
            superseded: digests(Part::Superseded).unwrap_or_default(),
        })
    }

    fn of(&self, part: Part) -> &[String] {
        match part {
            Part::Grants => &self.grants,
            Part::Superseded => &self.superseded,
        }
    }
}

/// One chunk as it is written: its sort key, digest and grants.
struct Chunk<'a> {
    sort_key: String,
    digest: String,
    grants: &'a [Grant],
}

fn chunks(part: Part, grants: &[Grant]) -> Result<Vec<Chunk<'_>>, StoreError> {
    grants
        .chunks(GRANTS_PER_ITEM)
        .enumerate()
        .map(|(index, grants)| {
            let bytes = serde_json::to_vec(grants).map_err(invalid)?;
            Ok(Chunk {
                sort_key: part.sort_key(index),
                digest: digest(&bytes),
                grants,
            })
        })
        .collect()
}

/// The first 128 bits of the SHA-256 of a chunk's grants, in hex.
fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The header of `plan`: the record without its grants, with the digests of its chunks.
fn header_item(
    plan: &RewardPlan,
    grants: &[Chunk],
    superseded: &[Chunk],
) -> Result<Item, StoreError> {
    let header = RewardPlan {
        war_id: plan.war_id.clone(),
        status: plan.status,
        attacker_pool: plan.attacker_pool,
        defender_pool: plan.defender_pool,
        grants: Vec::new(),
        superseded: Vec::new(),
        rescore: plan.rescore,
        attempt: plan.attempt,
        run: plan.run.clone(),
        version: plan.version,
    };
    let mut item = record_item(&Record::RewardPlan(header))?;
    let list = |chunks: &[Chunk]| AttributeValue::L(chunks.iter().map(|c| s(&c.digest)).collect());
    item.insert(Part::Grants.digests().into(), list(grants));
    item.insert(Part::Superseded.digests().into(), list(superseded));
    Ok(item)
}

/// The stored plans a transaction rewrites or deletes: their writes need the layout each
/// has now ([`DynamoDbStore::plan_layouts`]).
pub(crate) fn plans_in(tx: &Transaction) -> Vec<WarId> {
    tx.writes
        .iter()
        .filter_map(|write| match write {
            Write::Put {
                record: Record::RewardPlan(plan),
                expect: Expect::Version(_),
            } => Some(plan.war_id.clone()),
            Write::Delete {
                key: RecordKey::RewardPlan(war),
                ..
            } => Some(war.clone()),
            _ => None,
        })
        .collect()
}

impl DynamoDbStore {
    /// The stored layout of each of these plans, from their headers read side by side (one
    /// `GetItem` each, only the digests). A plan that is missing, or stored as one item, has
    /// none.
    pub(crate) async fn plan_layouts(
        &self,
        wars: Vec<WarId>,
    ) -> Result<HashMap<WarId, Layout>, StoreError> {
        let reads = wars.into_iter().map(|war| async move {
            let out = self
                .client
                .get_item()
                .table_name(self.table())
                .set_key(Some(key_item(record_key(&RecordKey::RewardPlan(
                    war.clone(),
                )))))
                .projection_expression("#g, #s")
                .expression_attribute_names("#g", Part::Grants.digests())
                .expression_attribute_names("#s", Part::Superseded.digests())
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| StoreError::unavailable("GetItem", e))?;
            Ok::<_, StoreError>(
                out.item
                    .as_ref()
                    .and_then(Layout::of_header)
                    .map(|l| (war, l)),
            )
        });
        Ok(futures_util::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    /// The items of one plan write: the header under `expect`, the chunks that differ from the
    /// stored ones (`stored`: the layout read before; none for a new plan or one stored as one
    /// item, whose chunks are all written) and deletes of the stored chunks past the new end.
    pub(crate) fn plan_items(
        &self,
        index: usize,
        plan: &RewardPlan,
        expect: Expect,
        stored: Option<&Layout>,
        out: &mut TxItems,
    ) -> Result<(), StoreError> {
        let grants = chunks(Part::Grants, &plan.grants)?;
        let superseded = chunks(Part::Superseded, &plan.superseded)?;
        let header = header_item(plan, &grants, &superseded)?;
        out.push(
            index,
            self.put(header, Some(Self::expect_condition(expect)))?,
        );
        let empty = Layout::default();
        let stored = stored.unwrap_or(&empty);
        for (part, chunks) in [(Part::Grants, grants), (Part::Superseded, superseded)] {
            let before = stored.of(part);
            let count = chunks.len();
            for (i, chunk) in chunks.into_iter().enumerate() {
                if before.get(i) == Some(&chunk.digest) {
                    continue;
                }
                let mut item = key_item((format!("WAR#{}", plan.war_id), chunk.sort_key));
                item.insert("digest".into(), s(chunk.digest));
                let grants = serde_dynamo::to_attribute_value(chunk.grants).map_err(invalid)?;
                item.insert("grants".into(), grants);
                out.push(index, self.put(item, None)?);
            }
            for i in count..before.len() {
                out.push(index, self.delete_chunk(&plan.war_id, part, i)?);
            }
        }
        Ok(())
    }

    /// The stored chunks of a plan that is deleted (its header's delete is the caller's).
    pub(crate) fn plan_chunk_deletes(
        &self,
        index: usize,
        war: &WarId,
        stored: Option<&Layout>,
        out: &mut TxItems,
    ) -> Result<(), StoreError> {
        let Some(stored) = stored else {
            return Ok(());
        };
        for part in Part::BOTH {
            for i in 0..stored.of(part).len() {
                out.push(index, self.delete_chunk(war, part, i)?);
            }
        }
        Ok(())
    }

    fn delete_chunk(
        &self,
        war: &WarId,
        part: Part,
        index: usize,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(self.table())
            .set_key(Some(key_item((format!("WAR#{war}"), part.sort_key(index)))))
            .build()
            .map_err(invalid)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// A war's reward plan: its header (consistent), then the chunks not in the cache
    /// (one consistent `BatchGetItem`), repeated while a fetched chunk does not match the
    /// header (read across a write).
    pub(crate) async fn reward_plan(&self, war: &WarId) -> Result<Option<Record>, StoreError> {
        let key = key_item(record_key(&RecordKey::RewardPlan(war.clone())));
        for attempt in 0..READ_ATTEMPTS {
            if attempt > 0 {
                crate::retry::backoff(attempt).await;
            }
            let header = self
                .client
                .get_item()
                .table_name(self.table())
                .set_key(Some(key.clone()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| StoreError::unavailable("GetItem", e))?
                .item;
            let Some(header) = header else {
                return Ok(None);
            };
            let Some(layout) = Layout::of_header(&header) else {
                // Stored as one item, grants inline.
                return decode_record(header).map(Some);
            };
            let missing: Vec<Item> = layout
                .chunks()
                .filter(|(part, i, digest)| {
                    self.plan_chunks
                        .get(war, part.sort_key(*i), digest)
                        .is_none()
                })
                .map(|(part, i, _)| key_item((format!("WAR#{war}"), part.sort_key(i))))
                .collect();
            if !missing.is_empty() {
                for item in self.batch_get(missing, true, None).await? {
                    let sort_key = string(&item, "sk").unwrap_or_default();
                    let digest = string(&item, "digest").unwrap_or_default();
                    let value = item
                        .get("grants")
                        .cloned()
                        .ok_or_else(|| corrupt(&sort_key, "chunk without grants"))?;
                    let grants: Vec<Grant> = serde_dynamo::from_attribute_value(value)
                        .map_err(|e| corrupt(&sort_key, e))?;
                    self.plan_chunks.put(war, sort_key, digest, grants);
                }
            }
            let chunk = |part: Part, i: usize, digest: &str| {
                self.plan_chunks.get(war, part.sort_key(i), digest)
            };
            match assemble(header, &layout, chunk)? {
                Some(plan) => return Ok(Some(Record::RewardPlan(plan))),
                None => {
                    tracing::info!(war_id = %war, attempt, "reward plan read across a write; reading again");
                }
            }
        }
        Err(StoreError::Contention {
            attempts: READ_ATTEMPTS,
        })
    }
}

/// Most chunks the cache keeps (~10 MB of grants at the ids' usual length); past it, it
/// starts over.
const CACHED_CHUNKS: usize = 256;

/// Decoded chunks by war and sort key, with the digest they were read at. A digest names a
/// chunk's content, so an entry is reused only while the header still lists that digest.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChunkCache(Arc<Mutex<HashMap<ChunkKey, CachedChunk>>>);

/// A chunk's war and sort key.
type ChunkKey = (WarId, String);
/// A chunk's digest and its grants.
type CachedChunk = (String, Arc<Vec<Grant>>);

impl ChunkCache {
    fn get(&self, war: &WarId, sort_key: String, digest: &str) -> Option<Arc<Vec<Grant>>> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(&(war.clone(), sort_key)) {
            Some((cached, grants)) if cached == digest => Some(grants.clone()),
            _ => None,
        }
    }

    fn put(&self, war: &WarId, sort_key: String, digest: String, grants: Vec<Grant>) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHED_CHUNKS {
            cache.clear();
        }
        cache.insert((war.clone(), sort_key), (digest, Arc::new(grants)));
    }
}

/// The plan from its header and the chunks `chunk` gives (by part, index and digest); `None`
/// when one the header lists is not there at its digest (read across a write).
fn assemble(
    header: Item,
    layout: &Layout,
    chunk: impl Fn(Part, usize, &str) -> Option<Arc<Vec<Grant>>>,
) -> Result<Option<RewardPlan>, StoreError> {
    let Record::RewardPlan(mut plan) = decode_record(header)? else {
        return Err(corrupt(HEADER, "not a reward plan"));
    };
    for part in Part::BOTH {
        let mut grants = Vec::new();
        for (i, digest) in layout.of(part).iter().enumerate() {
            let Some(read) = chunk(part, i, digest) else {
                return Ok(None);
            };
            grants.extend(read.iter().cloned());
        }
        match part {
            Part::Grants => plan.grants = grants,
            Part::Superseded => plan.superseded = grants,
        }
    }
    Ok(Some(plan))
}

#[cfg(test)]
mod tests;
