//! DynamoDB adapter of the store port: records as items (`keys.rs` names their keys; a reward
//! plan is a header and chunk items, `reward_plan.rs`), reads and queries, and `commit`: one
//! `TransactWriteItems` (built in `unit_of_work.rs`) whose
//! cancellation reasons become conflicts (`ConditionalCheckFailed` names the write that lost),
//! or a sealed score board when the seal condition of a counter shard failed.

use crate::attributes::*;
use crate::dynamodb::{DynamoDbStore, TransactFailure};
use crate::keys::*;
use crate::reward_plan::plans_in;
use crate::score_plan::Role;
use crate::unit_of_work::TxItems;
use async_trait::async_trait;
use clanwar_domain::ids::{AllianceId, ClanId, WarId};
use clanwar_domain::ports::*;
use clanwar_domain::spatial::CellId;
use clanwar_domain::territory::Territory;
use clanwar_domain::war::{War, WarStatus};
use clanwar_domain::{alliance::Invitation, battle::Battle};
use std::collections::HashMap;

pub(crate) fn record_item(record: &Record) -> Result<Item, StoreError> {
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

pub(crate) fn decode_record(item: Item) -> Result<Record, StoreError> {
    let pk = item
        .get("pk")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    serde_dynamo::from_item(item).map_err(|e| corrupt(&pk, e))
}

#[async_trait]
impl Store for DynamoDbStore {
    async fn get(&self, key: &RecordKey) -> Result<Option<Record>, StoreError> {
        if let RecordKey::RewardPlan(war) = key {
            return self.reward_plan(war).await;
        }
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
        if keys.iter().any(|k| matches!(k, RecordKey::RewardPlan(_))) {
            // A plan is many items (`reward_plan.rs`): each key is read on its own.
            let reads = keys.iter().map(|key| self.get(key));
            return Ok(Fetched::new(
                futures_util::future::try_join_all(reads).await?,
            ));
        }
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
        let plans = self.plan_layouts(plans_in(&tx)).await?;
        let mut items = TxItems::default();
        for (index, write) in tx.writes.iter().enumerate() {
            self.write_items(index, write, &plans, &mut items)?;
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
