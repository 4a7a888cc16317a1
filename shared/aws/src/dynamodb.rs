//! The DynamoDB table the store, outbox and score-board adapters share (single-table design;
//! see `keys.rs` and the README): its client and configuration, and the calls every adapter
//! builds on — one `TransactWriteItems` within the 100-item limit, `BatchGetItem` in 100-key
//! requests that re-ask for unprocessed keys, and paged queries with a bound. The ports
//! themselves are in `store.rs`, `unit_of_work.rs`, `outbox.rs` and `scoreboard.rs`.

use crate::attributes::*;
use crate::score_plan::{ItemWriter, MAX_TRANSACTION_ITEMS};
use crate::store::decode_record;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{KeysAndAttributes, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{Duration, Utc};
use clanwar_domain::ids::WarId;
use clanwar_domain::ports::*;

/// Most keys one `BatchGetItem` call takes.
const MAX_BATCH_GET: usize = 100;
/// Most requests one `BatchWriteItem` call takes.
pub(crate) const MAX_BATCH_WRITE: usize = 25;

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
    /// Reward-plan chunks read before, by digest (`reward_plan.rs`), shared by the clones.
    pub(crate) plan_chunks: crate::reward_plan::ChunkCache,
}

impl DynamoDbStore {
    pub fn new(client: Client, config: TableConfig) -> Self {
        Self {
            client,
            config,
            plan_chunks: Default::default(),
        }
    }

    pub(crate) fn table(&self) -> &str {
        &self.config.table
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

    pub(crate) async fn records_with_prefix(
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

/// The capacity model of the war operations and the score reads (`make capacity`, with the
/// score path's model in `score_plan.rs`): per partition key at the seed's load, against
/// DynamoDB's per-partition limits of 1,000 write and 3,000 read units per second.
#[cfg(test)]
mod capacity;
