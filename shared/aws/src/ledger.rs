//! DynamoDB side of the war ledger. A transaction that applies points also puts one **ledger
//! page**: the entries of the effects it applied, as one item in the war's ledger partition of
//! the transaction's shard (`LEDGER#<war>#<shard>`, sort key `<recorded ms>#<page id>`). So an
//! entry lands exactly when its points do (a cancelled transaction writes neither) and the
//! ledger costs one item per transaction, not per event. `expires_at` (TTL) is set at write
//! time from the war's end deadline plus the retention.
//!
//! Reads merge the war's shard partitions newest first: each shard is queried side by side for
//! its next few pages; pages are emitted only down to the *frontier* (the oldest page any
//! still-unfinished shard returned), so no page of another shard can be skipped; then the next
//! round starts from there. A cursor is `<page sort key>|<entries of that page passed>`.

use crate::attributes::{corrupt, invalid, key_item, n, number, s, string, Item};
use crate::dynamodb::DynamoDbStore;
use crate::keys::ledger_partition;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{DateTime, TimeZone, Utc};
use clanwar_domain::ids::{ClanId, PlayerId, WarId};
use clanwar_domain::ledger::{sort_page, EffectKind, LedgerEntry, LedgerFilter};
use clanwar_domain::ports::{Page, PageRequest, StoreError};
use clanwar_domain::war::Side;
use futures_util::future::try_join_all;

/// Pages each shard is asked for per round of a read.
const PAGES_PER_QUERY: i32 = 4;
/// Rounds of one read: a sparse filter answers fewer entries (with a cursor) rather than
/// reading on without bound.
const MAX_ROUNDS: usize = 4;
/// A `skip` past every entry of a page (a page holds at most one transaction's effects).
const PAST_PAGE: usize = 1_000;

/// One stored entry: `[event_id, occurred_at ms, kind, player_id | null, clan_id, side, points]`
/// (positional, to keep the page small: it is written at transactional cost).
type Stored = (String, i64, String, Option<String>, String, String, i64);

/// The item of a ledger page of `entries` (newest first), recorded at `recorded_ms`.
pub(crate) fn page_item(
    war: &WarId,
    shard: u32,
    recorded_ms: i64,
    page_id: &str,
    entries: &[LedgerEntry],
) -> Result<Item, StoreError> {
    let mut entries = entries.to_vec();
    sort_page(&mut entries);
    let stored: Vec<Stored> = entries
        .iter()
        .map(|e| {
            (
                e.event_id.clone(),
                e.occurred_at.timestamp_millis(),
                e.kind.as_str().to_owned(),
                e.player_id.as_ref().map(ToString::to_string),
                e.clan_id.to_string(),
                side_code(e.side).to_owned(),
                e.points,
            )
        })
        .collect();
    let expires_at = entries
        .iter()
        .map(|e| e.retained_until.timestamp())
        .max()
        .unwrap_or_default();
    let mut item = key_item((
        ledger_partition(war, shard),
        page_sort_key(recorded_ms, page_id),
    ));
    item.insert(
        "entries".into(),
        s(serde_json::to_string(&stored).map_err(invalid)?),
    );
    item.insert("expires_at".into(), n(expires_at));
    Ok(item)
}

/// The transactional put of a new ledger page (its key is new: the condition only guards
/// against an id collision).
pub(crate) fn page_put(table: &str, item: Item) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(invalid)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn page_sort_key(recorded_ms: i64, page_id: &str) -> String {
    format!("{recorded_ms:013}#{page_id}")
}

fn side_code(side: Side) -> &'static str {
    match side {
        Side::Attacker => "a",
        Side::Defender => "d",
    }
}

/// The entries of a stored page, newest first.
fn page_entries(item: &Item) -> Result<Vec<LedgerEntry>, StoreError> {
    let key = string(item, "sk").unwrap_or_default();
    let raw = string(item, "entries").unwrap_or_default();
    let stored: Vec<Stored> = serde_json::from_str(&raw).map_err(|e| corrupt(&key, e))?;
    let retained_until = Utc
        .timestamp_opt(number(item, "expires_at"), 0)
        .single()
        .unwrap_or_default();
    stored
        .into_iter()
        .map(|(event_id, at, kind, player, clan, side, points)| {
            let bad = |what: &str| corrupt(&key, format!("ledger entry {event_id}: bad {what}"));
            Ok(LedgerEntry {
                kind: EffectKind::parse(&kind).ok_or_else(|| bad("kind"))?,
                occurred_at: DateTime::from_timestamp_millis(at).ok_or_else(|| bad("time"))?,
                player_id: player
                    .map(PlayerId::new)
                    .transpose()
                    .map_err(|_| bad("player"))?,
                clan_id: ClanId::new(clan).map_err(|_| bad("clan"))?,
                side: match side.as_str() {
                    "a" => Side::Attacker,
                    "d" => Side::Defender,
                    _ => return Err(bad("side")),
                },
                points,
                retained_until,
                voided_by: None,
                event_id,
            })
        })
        .collect()
}

/// A read position: pages above `sk` and the first `skip` entries of page `sk` were passed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bound {
    sk: String,
    skip: usize,
}

impl Bound {
    fn parse(cursor: &str) -> Result<Self, StoreError> {
        let (sk, skip) = cursor.split_once('|').ok_or(StoreError::BadCursor)?;
        let well_formed = sk.len() == 13 + 1 + 36
            && sk.as_bytes()[13] == b'#'
            && sk[..13].bytes().all(|b| b.is_ascii_digit())
            && sk[14..].bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        let skip: usize = skip.parse().map_err(|_| StoreError::BadCursor)?;
        if !well_formed || skip > PAST_PAGE {
            return Err(StoreError::BadCursor);
        }
        Ok(Self {
            sk: sk.to_owned(),
            skip,
        })
    }

    fn encode(&self) -> String {
        format!("{}|{}", self.sk, self.skip)
    }
}

/// One shard's answer in a round: its pages (newest first) and whether it has more below.
struct ShardRead {
    pages: Vec<(String, Vec<LedgerEntry>)>,
    more: bool,
}

/// Takes up to `limit` matching entries from one round's reads, newest first. Returns the
/// cursor to go on from when `limit` was reached, or `None` with every safe page consumed
/// (then `next` tells where the next round starts, if any shard has more).
fn merge(
    reads: Vec<ShardRead>,
    bound: Option<&Bound>,
    filter: &LedgerFilter,
    limit: usize,
    items: &mut Vec<LedgerEntry>,
) -> Merged {
    let frontier = reads
        .iter()
        .filter(|r| r.more)
        .filter_map(|r| r.pages.last().map(|(sk, _)| sk.clone()))
        .max();
    let mut pages: Vec<(String, Vec<LedgerEntry>)> = reads
        .into_iter()
        .flat_map(|r| r.pages)
        .filter(|(sk, _)| frontier.as_ref().is_none_or(|f| sk >= f))
        .collect();
    pages.sort_by(|a, b| b.0.cmp(&a.0));
    for (sk, entries) in pages {
        let start = match bound {
            Some(b) if b.sk == sk => b.skip,
            _ => 0,
        };
        for (i, entry) in entries.into_iter().enumerate().skip(start) {
            if items.len() == limit {
                return Merged::Full(Bound { sk, skip: i });
            }
            if entry.matches(filter) {
                items.push(entry);
            }
        }
    }
    match frontier {
        // Everything at and above the frontier page was passed, that page included.
        Some(sk) => Merged::Next(Bound {
            sk,
            skip: PAST_PAGE,
        }),
        None => Merged::Done,
    }
}

enum Merged {
    Full(Bound),
    Next(Bound),
    Done,
}

impl DynamoDbStore {
    /// The next pages of one shard at or below `bound`, newest first.
    async fn ledger_shard(
        &self,
        war: &WarId,
        shard: u32,
        bound: Option<&Bound>,
    ) -> Result<ShardRead, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(self.table())
            .expression_attribute_values(":pk", s(ledger_partition(war, shard)))
            .scan_index_forward(false)
            .limit(PAGES_PER_QUERY);
        query = match bound {
            Some(b) => query
                .key_condition_expression("pk = :pk AND sk <= :b")
                .expression_attribute_values(":b", s(b.sk.clone())),
            None => query.key_condition_expression("pk = :pk"),
        };
        let out = query
            .send()
            .await
            .map_err(|e| StoreError::unavailable("Query ledger", e))?;
        let mut pages = Vec::new();
        for item in out.items() {
            pages.push((string(item, "sk").unwrap_or_default(), page_entries(item)?));
        }
        let more = out.last_evaluated_key().is_some_and(|k| !k.is_empty());
        Ok(ShardRead { pages, more })
    }

    pub(crate) async fn read_ledger(
        &self,
        war: &WarId,
        shards: u32,
        filter: &LedgerFilter,
        page: PageRequest,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        let mut bound = page.cursor.as_deref().map(Bound::parse).transpose()?;
        let limit = page.limit.max(1);
        let mut items = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let reads =
                (0..shards.max(1)).map(|shard| self.ledger_shard(war, shard, bound.as_ref()));
            let reads = try_join_all(reads).await?;
            match merge(reads, bound.as_ref(), filter, limit, &mut items) {
                Merged::Full(next) => {
                    return Ok(Page {
                        items,
                        next_cursor: Some(next.encode()),
                    })
                }
                Merged::Done => {
                    return Ok(Page {
                        items,
                        next_cursor: None,
                    })
                }
                Merged::Next(next) => bound = Some(next),
            }
        }
        // A sparse filter over a long ledger: answer what was found and where to go on.
        Ok(Page {
            items,
            next_cursor: bound.map(|b| b.encode()),
        })
    }

    pub(crate) async fn read_whole_ledger(
        &self,
        war: &WarId,
        shards: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let partitions: Vec<String> = (0..shards.max(1))
            .map(|shard| ledger_partition(war, shard))
            .collect();
        let reads = partitions.iter().map(|partition| {
            self.query_all(move || {
                self.client
                    .query()
                    .table_name(self.table())
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", s(partition.clone()))
                    .consistent_read(true)
            })
        });
        let mut entries = Vec::new();
        for item in try_join_all(reads).await?.iter().flatten() {
            entries.extend(page_entries(item)?);
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests;
