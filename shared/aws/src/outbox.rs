//! DynamoDB adapter of the outbox port: every state change's events are written as entries in
//! the same transaction as the change (in `OUTBOX_SHARDS` partitions), read back by the relay's
//! sweep and deleted once published (25-request batches, unprocessed deletes re-sent).

use crate::attributes::*;
use crate::dynamodb::{DynamoDbStore, MAX_BATCH_WRITE};
use crate::keys::*;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, DeleteRequest, Put, TransactWriteItem, WriteRequest};
use clanwar_domain::events::EventEnvelope;
use clanwar_domain::ports::*;

/// Outbox partitions: every state change of every war writes (and the relay deletes) entries
/// here, so they are spread wide — at 1,000 war operations/s with 2 events each, about 190 of a
/// partition's 1,000 write units per second each (`make capacity`).
pub(crate) const OUTBOX_SHARDS: u32 = 32;

impl DynamoDbStore {
    pub(crate) fn outbox_item(&self, event: &EventEnvelope) -> Result<Item, StoreError> {
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
