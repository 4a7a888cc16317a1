//! The simulator's ledger in the war table: one item per idempotency key, so a repeated grant
//! pays once and a revocation reverses it, plus the per-war failure switch tests write.
//!
//! Items (pk / sk):
//! - `ECON#<idempotency key>` / `ECON`: `war_id, player_id, kind, amount, status (PAID |
//!   REVOKED), net` (what the key pays now: `amount` while PAID, 0 once REVOKED),
//!   `grant_requests`, `revoke_requests` (every request counted, duplicates included).
//! - `ECONCFG#<war_id>` / `ECONCFG`: `fail_on_grant` (N > 0: the N-th distinct grant of the
//!   war and every later new one are refused), `paid` (distinct grants paid so far).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

pub const LEDGER_PREFIX: &str = "ECON#";
pub const SWITCH_PREFIX: &str = "ECONCFG#";

/// A ledger call failed; the message is retried by SQS.
#[derive(Debug, thiserror::Error)]
#[error("ledger {operation} failed")]
pub struct LedgerError {
    operation: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl LedgerError {
    fn new(
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            operation,
            source: Box::new(source),
        }
    }
}

/// One payment as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub war_id: &'a str,
    pub key: &'a str,
    pub player_id: &'a str,
    pub kind: &'a str,
    pub amount: u64,
}

/// What a grant did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paid {
    /// First grant of the key: paid now.
    Now,
    /// The key was granted (or revoked) before: nothing paid.
    Already,
}

/// The per-war failure switch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Switch {
    pub fail_on_grant: u64,
    pub paid: u64,
}

#[async_trait]
pub trait Ledger: Send + Sync {
    async fn switch(&self, war_id: &str) -> Result<Option<Switch>, LedgerError>;
    /// Counts one more distinct paid grant on the war's switch.
    async fn count_paid(&self, war_id: &str) -> Result<(), LedgerError>;
    async fn knows(&self, key: &str) -> Result<bool, LedgerError>;
    async fn grant(&self, line: &Line<'_>) -> Result<Paid, LedgerError>;
    /// Returns whether a payment was reversed (false: the key never paid, or was revoked).
    async fn revoke(&self, line: &Line<'_>) -> Result<bool, LedgerError>;
}

#[derive(Debug, Clone)]
pub struct DynamoDbLedger {
    client: Client,
    table: String,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl DynamoDbLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("pk".to_owned(), s(&pk)), ("sk".to_owned(), s(sk))])
    }

    fn entry(key: &str) -> HashMap<String, AttributeValue> {
        Self::key(format!("{LEDGER_PREFIX}{key}"), "ECON")
    }
}

#[async_trait]
impl Ledger for DynamoDbLedger {
    async fn switch(&self, war_id: &str) -> Result<Option<Switch>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                format!("{SWITCH_PREFIX}{war_id}"),
                "ECONCFG",
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| LedgerError::new("read switch", e))?;
        Ok(out.item().map(|item| Switch {
            fail_on_grant: number(item, "fail_on_grant"),
            paid: number(item, "paid"),
        }))
    }

    async fn count_paid(&self, war_id: &str) -> Result<(), LedgerError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                format!("{SWITCH_PREFIX}{war_id}"),
                "ECONCFG",
            )))
            .update_expression("ADD paid :one")
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|e| LedgerError::new("count paid", e))?;
        Ok(())
    }

    async fn knows(&self, key: &str) -> Result<bool, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::entry(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| LedgerError::new("read entry", e))?;
        Ok(out.item().is_some())
    }

    async fn grant(&self, line: &Line<'_>) -> Result<Paid, LedgerError> {
        let mut item = Self::entry(line.key);
        item.extend([
            ("war_id".to_owned(), s(line.war_id)),
            ("player_id".to_owned(), s(line.player_id)),
            ("kind".to_owned(), s(line.kind)),
            ("amount".to_owned(), n(line.amount)),
            ("net".to_owned(), n(line.amount)),
            ("status".to_owned(), s("PAID")),
            ("grant_requests".to_owned(), n(1)),
            ("revoke_requests".to_owned(), n(0)),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(Paid::Now),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                // Paid (or revoked) before: count the duplicate request, pay nothing.
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(Self::entry(line.key)))
                    .update_expression("ADD grant_requests :one")
                    .expression_attribute_values(":one", n(1))
                    .send()
                    .await
                    .map_err(|e| LedgerError::new("count duplicate grant", e))?;
                Ok(Paid::Already)
            }
            Err(err) => Err(LedgerError::new("grant", err)),
        }
    }

    async fn revoke(&self, line: &Line<'_>) -> Result<bool, LedgerError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::entry(line.key)))
            .update_expression(
                "SET #status = :revoked, net = :zero, war_id = if_not_exists(war_id, :war), \
                 player_id = if_not_exists(player_id, :player), kind = if_not_exists(kind, :kind), \
                 amount = if_not_exists(amount, :amount), grant_requests = if_not_exists(grant_requests, :zero) \
                 ADD revoke_requests :one",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":revoked", s("REVOKED"))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":war", s(line.war_id))
            .expression_attribute_values(":player", s(line.player_id))
            .expression_attribute_values(":kind", s(line.kind))
            .expression_attribute_values(":amount", n(line.amount))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await
            .map_err(|e| LedgerError::new("revoke", e))?;
        let was_paid = out
            .attributes()
            .and_then(|a| a.get("status"))
            .and_then(|v| v.as_s().ok())
            .is_some_and(|status| status == "PAID");
        Ok(was_paid)
    }
}
