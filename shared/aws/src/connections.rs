//! DynamoDB adapter of the connections port: WebSocket connections and their subscriptions in
//! the table (with TTL: API Gateway drops a connection after two hours at most).

use crate::attributes::{key_item, s};
use crate::keys::{connection_key, subscription_key, topic_partition};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use chrono::{DateTime, Duration, Utc};
use clanwar_domain::ids::PlayerId;
use clanwar_domain::ports::StoreError;
use clanwar_domain::realtime::{Connections, Topic};

/// API Gateway closes WebSocket connections after 2 hours; keep records a little longer.
const CONNECTION_TTL_HOURS: i64 = 3;

#[derive(Debug, Clone)]
pub struct DynamoDbConnections {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbConnections {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn expires(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(
        (at + Duration::hours(CONNECTION_TTL_HOURS))
            .timestamp()
            .to_string(),
    )
}

#[async_trait]
impl Connections for DynamoDbConnections {
    async fn connect(
        &self,
        connection: &str,
        player: &PlayerId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut item = key_item(connection_key(connection));
        item.insert("player_id".into(), s(player.to_string()));
        item.insert("connected_at".into(), s(at.to_rfc3339()));
        item.insert("expires_at".into(), expires(at));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::unavailable("PutItem connection", e))?;
        Ok(())
    }

    async fn player_of(&self, connection: &str) -> Result<Option<PlayerId>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(connection_key(connection))))
            .projection_expression("player_id")
            .send()
            .await
            .map_err(|e| StoreError::unavailable("GetItem connection", e))?;
        let Some(raw) = out
            .item
            .and_then(|i| i.get("player_id").and_then(|v| v.as_s().ok()).cloned())
        else {
            return Ok(None);
        };
        PlayerId::new(raw)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                key: connection_key(connection).0,
                message: e.to_string(),
            })
    }

    async fn subscribe(&self, connection: &str, topic: &Topic) -> Result<(), StoreError> {
        let topic = topic.to_string();
        let mut item = key_item(subscription_key(&topic, connection));
        item.insert("expires_at".into(), expires(Utc::now()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::unavailable("PutItem subscription", e))?;
        // The connection remembers its topics so a disconnect can remove them without a scan.
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(connection_key(connection))))
            .update_expression("ADD topics :t")
            .expression_attribute_values(":t", AttributeValue::Ss(vec![topic]))
            .send()
            .await
            .map_err(|e| StoreError::unavailable("UpdateItem connection", e))?;
        Ok(())
    }

    async fn disconnect(&self, connection: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(connection_key(connection))))
            .send()
            .await
            .map_err(|e| StoreError::unavailable("GetItem connection", e))?;
        let topics = out
            .item
            .and_then(|i| i.get("topics").and_then(|t| t.as_ss().ok()).cloned())
            .unwrap_or_default();
        let mut keys: Vec<_> = topics
            .iter()
            .map(|t| key_item(subscription_key(t, connection)))
            .collect();
        keys.push(key_item(connection_key(connection)));
        // BatchWriteItem takes 25 requests a call.
        for chunk in keys.chunks(25) {
            let requests = chunk
                .iter()
                .map(|key| {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map_err(|e| StoreError::Invalid(e.to_string()))?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            crate::retry::until_processed(requests, |pending| async move {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| StoreError::unavailable("BatchWriteItem", e))?;
                let pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|items| !items.is_empty());
                Ok(((), pending))
            })
            .await?;
        }
        Ok(())
    }

    async fn subscribers(&self, topic: &Topic) -> Result<Vec<String>, StoreError> {
        let mut connections = Vec::new();
        let mut start = None;
        for _ in 0..crate::dynamodb::MAX_QUERY_PAGES {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(topic_partition(&topic.to_string())))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError::unavailable("Query subscribers", e))?;
            connections.extend(
                out.items()
                    .iter()
                    .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned()),
            );
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(connections),
            }
        }
        Err(crate::dynamodb::too_many_pages("Query subscribers"))
    }
}
