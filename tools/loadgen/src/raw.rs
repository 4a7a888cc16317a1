//! The raw emulator calls of each operation, made directly with the AWS SDK against the
//! emulator: the same DynamoDB operations on the same kinds of items, in the same sequence of
//! round trips (calls side by side within one), as the functions make them
//! (`shared/aws/src/store.rs`, `unit_of_work.rs`, `scoreboard.rs`, `score_plan.rs`). Run at the same rates
//! as the API steps, they show what the calls alone cost on this machine, so that the API's
//! latency can be set against them.
//!
//! The declaration's replica follows the call count the API reported in the same run (reads in
//! `round trips − 2` sequential waves, then the declaration's transaction, then the start of
//! its workflow), since its reads are being reduced; the other replicas are fixed and the run
//! prints the API's own count next to theirs, so a change of shape shows.

use crate::run::Answer;
use crate::timing::ServerTiming;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use clanwar_domain::hash::shard_of;
use futures_util::future::try_join_all;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn err(what: &str, e: impl std::error::Error) -> String {
    let mut text = format!("{what}: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

fn answer(calls: u32, round_trips: u32) -> Answer {
    Answer {
        status: 200,
        timing: ServerTiming {
            calls: Some(calls),
            round_trips: Some(round_trips),
            ..ServerTiming::default()
        },
    }
}

/// One kill of a raw event batch: killer and victim ids and the killer's clan.
#[derive(Debug, Clone)]
pub struct RawKill {
    pub event_id: String,
    pub killer: String,
    pub killer_clan: String,
    pub victim: String,
}

/// How a declaration's calls fall into round trips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclareShape {
    /// Reads per sequential wave before the transaction.
    pub read_waves: Vec<usize>,
    /// Items of the declaration's transaction.
    pub tx_items: usize,
}

/// Items of the declaration transaction for one territory: war, pair lock, both clans, the
/// territory, both clans' war-log entries, the `WarDeclared` and `TerritoryContested` outbox
/// entries.
pub const DECLARE_TX_ITEMS: usize = 9;

impl DeclareShape {
    /// From the `(calls, round trips)` the API reported: every call but the transaction and
    /// the workflow start is a read, in `round_trips − 2` waves (extra reads side by side in
    /// the first wave).
    pub fn from_reported(calls: u32, round_trips: u32) -> Self {
        let waves = round_trips.saturating_sub(2).max(1) as usize;
        let reads = calls.saturating_sub(2) as usize;
        let mut read_waves = vec![1; waves.min(reads)];
        if let Some(first) = read_waves.first_mut() {
            *first += reads.saturating_sub(waves);
        }
        Self {
            read_waves,
            tx_items: DECLARE_TX_ITEMS,
        }
    }

    pub fn calls(&self) -> u32 {
        (self.read_waves.iter().sum::<usize>() + 2) as u32
    }

    pub fn round_trips(&self) -> u32 {
        (self.read_waves.len() + 2) as u32
    }
}

/// Raw calls against the emulator.
#[derive(Debug, Clone)]
pub struct Raw {
    pub ddb: Client,
    pub sfn: aws_sdk_sfn::Client,
    pub table: String,
    /// A one-state (`Pass`) workflow whose start stands in for the declare-war saga's start.
    pub state_machine: String,
}

impl Raw {
    pub async fn new(endpoint: &str, table: &str, run: &str) -> Result<Self, String> {
        let sdk = clanwar_aws::sdk::defaults()
            .endpoint_url(endpoint)
            .load()
            .await;
        let ddb = Client::new(&sdk);
        let sfn = aws_sdk_sfn::Client::new(&sdk);
        let definition =
            r#"{"StartAt":"Declared","States":{"Declared":{"Type":"Pass","End":true}}}"#;
        let created = sfn
            .create_state_machine()
            .name(format!("{run}-raw-declare"))
            .definition(definition)
            .role_arn("arn:aws:iam::123456789012:role/clanwar-loadgen")
            .send()
            .await
            .map_err(|e| err("CreateStateMachine", e))?;
        Ok(Self {
            ddb,
            sfn,
            table: table.to_owned(),
            state_machine: created.state_machine_arn().to_owned(),
        })
    }

    async fn get(&self, item: Item) -> Result<(), String> {
        self.ddb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item))
            .consistent_read(true)
            .send()
            .await
            .map(drop)
            .map_err(|e| err("GetItem", e))
    }

    async fn shards(&self, war: &str, shards: u32) -> Result<(), String> {
        let keys = (0..shards)
            .map(|i| key(format!("SCORE#{war}#{i}"), "CLANS"))
            .collect();
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .build()
            .map_err(|e| err("KeysAndAttributes", e))?;
        self.ddb
            .batch_get_item()
            .request_items(&self.table, request)
            .send()
            .await
            .map(drop)
            .map_err(|e| err("BatchGetItem", e))
    }

    async fn top(&self, war: &str, shard: u32, limit: i32) -> Result<(), String> {
        self.ddb
            .query()
            .table_name(&self.table)
            .index_name("gsi2")
            .key_condition_expression("gsi2pk = :p")
            .expression_attribute_values(":p", s(format!("WARPTS#{war}#{shard}")))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map(drop)
            .map_err(|e| err("Query", e))
    }

    /// One strongly consistent read of the war item: a probe of the emulator's backlog.
    pub async fn probe(&self, war: &str) -> Result<(), String> {
        self.get(Self::war_key(war)).await
    }

    /// Items in the table (the emulator counts them live); its index queries scan them all.
    pub async fn table_items(&self) -> Option<i64> {
        let out = self
            .ddb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .ok()?;
        out.table()?.item_count()
    }

    fn war_key(war: &str) -> Item {
        key(format!("WAR#{war}"), "WAR")
    }

    /// `GET /wars/{id}`: the war (strongly consistent), then its clan-counter shards.
    pub async fn war_status(&self, war: &str, shards: u32) -> Result<Answer, String> {
        self.get(Self::war_key(war)).await?;
        self.shards(war, shards).await?;
        Ok(answer(2, 2))
    }

    /// `GET /wars/{id}/scoreboard`: the war, then the shards and each shard's top players side
    /// by side.
    pub async fn scoreboard(&self, war: &str, shards: u32, limit: i32) -> Result<Answer, String> {
        self.get(Self::war_key(war)).await?;
        let tops = try_join_all((0..shards).map(|shard| self.top(war, shard, limit)));
        let (totals, tops) = futures_util::future::join(self.shards(war, shards), tops).await;
        totals?;
        tops?;
        Ok(answer(shards + 2, 2))
    }

    /// `GET /wars/{id}/players/{player}`: the war and the player's item side by side.
    pub async fn player(&self, war: &str, player: &str) -> Result<Answer, String> {
        let (war_read, player_read) = futures_util::future::join(
            self.get(Self::war_key(war)),
            self.get(key(format!("PSCORE#{war}#{player}"), "PSCORE")),
        )
        .await;
        war_read?;
        player_read?;
        Ok(answer(2, 1))
    }

    /// `POST /wars/{id}/events` of new kills by distinct killers: the war, then one
    /// transaction of the batch's items — the clan-counter shard (refused once sealed), each
    /// kill's killer → victim pair record (anti-farming guard and exactly-once record in one)
    /// and each killer's points item — written under a shadow war id, so the real war's
    /// scores stay as the API made them.
    pub async fn events(
        &self,
        war: &str,
        shards: u32,
        shard: u32,
        kills: &[RawKill],
    ) -> Result<Answer, String> {
        self.get(Self::war_key(war)).await?;
        let shadow = format!("raw-{war}");
        let now = chrono::Utc::now().timestamp_millis();
        let expires = chrono::Utc::now().timestamp() + 90 * 86_400;
        let invalid = |e| err("transaction item", e);
        let mut items = Vec::with_capacity(1 + 2 * kills.len());
        let mut clans: HashMap<&str, i64> = HashMap::new();
        for kill in kills {
            *clans.entry(kill.killer_clan.as_str()).or_default() += 10;
        }
        let mut shard_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(format!("SCORE#{shadow}#{shard}"), "CLANS")))
            .condition_expression("attribute_not_exists(sealed)");
        let mut adds = Vec::new();
        for (i, (clan, points)) in clans.iter().enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            shard_update = shard_update
                .expression_attribute_names(format!("#c{i}"), format!("c_{clan}"))
                .expression_attribute_values(format!(":c{i}"), n(points));
        }
        let shard_update = shard_update
            .update_expression(format!("ADD {}", adds.join(", ")))
            .build()
            .map_err(invalid)?;
        items.push(TransactWriteItem::builder().update(shard_update).build());
        for kill in kills {
            let pair = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(
                    format!("FARM#{shadow}#{}#{}", kill.killer, kill.victim),
                    "FARM",
                )))
                .update_expression("SET last_at = :t, expires_at = :e ADD ids :ids")
                .condition_expression("attribute_not_exists(pk) OR last_at <= :cutoff")
                .expression_attribute_values(":t", n(now))
                .expression_attribute_values(":cutoff", n(now - 300_000))
                .expression_attribute_values(":e", n(expires))
                .expression_attribute_values(
                    ":ids",
                    AttributeValue::Ss(vec![kill.event_id.clone()]),
                )
                .build()
                .map_err(invalid)?;
            items.push(TransactWriteItem::builder().update(pair).build());
            let index_shard = shard_of(&kill.killer, shards);
            let player = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(
                    format!("PSCORE#{shadow}#{}", kill.killer),
                    "PSCORE",
                )))
                .update_expression("SET player_id = :p, clan_id = :c, gsi2pk = :g ADD gsi2sk :n")
                .expression_attribute_values(":p", s(kill.killer.clone()))
                .expression_attribute_values(":c", s(kill.killer_clan.clone()))
                .expression_attribute_values(":g", s(format!("WARPTS#{shadow}#{index_shard}")))
                .expression_attribute_values(":n", n(10))
                .build()
                .map_err(invalid)?;
            items.push(TransactWriteItem::builder().update(player).build());
        }
        self.ddb
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await
            .map_err(|e| err("TransactWriteItems", e))?;
        Ok(answer(2, 2))
    }

    /// `POST /wars`: the declaration's reads (clans, pair lock, territory: real items of this
    /// declaration) in the API's waves, one transaction of [`DeclareShape::tx_items`] new items
    /// of the declaration's sizes, then the start of a workflow execution.
    pub async fn declare(
        &self,
        shape: &DeclareShape,
        attacker: &str,
        defender: &str,
        territory: &str,
        id: &str,
    ) -> Result<Answer, String> {
        let (a, b) = if attacker < defender {
            (attacker, defender)
        } else {
            (defender, attacker)
        };
        let reads = [
            key(format!("CLAN#{attacker}"), "CLAN"),
            key(format!("CLAN#{defender}"), "CLAN"),
            key(format!("PAIR#{a}#{b}"), "PAIR"),
            key(format!("TERR#{territory}"), "TERR"),
        ];
        let mut next = 0;
        for &width in &shape.read_waves {
            let wave = (0..width).map(|i| self.get(reads[(next + i) % reads.len()].clone()));
            try_join_all(wave).await?;
            next += width;
        }
        // The war item is about 1 KB of JSON; the others a few hundred bytes.
        let items = (0..shape.tx_items)
            .map(|i| {
                let mut item = key(format!("RAWDECL#{id}#{i}"), "RAW");
                let size = if i == 0 { 1_000 } else { 300 };
                item.insert("data".into(), s("x".repeat(size)));
                item.insert("ver".into(), n(1));
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map(|put| TransactWriteItem::builder().put(put).build())
                    .map_err(|e| err("transaction item", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.ddb
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await
            .map_err(|e| err("TransactWriteItems", e))?;
        self.sfn
            .start_execution()
            .state_machine_arn(&self.state_machine)
            .name(id)
            .input("{}")
            .send()
            .await
            .map_err(|e| err("StartExecution", e))?;
        Ok(answer(shape.calls(), shape.round_trips()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declaration_shape_follows_the_reported_calls() {
        // Today's declaration: six reads one after another, the transaction, the workflow.
        let today = DeclareShape::from_reported(8, 8);
        assert_eq!(today.read_waves, vec![1; 6]);
        assert_eq!((today.calls(), today.round_trips()), (8, 8));
        // Reads side by side in one wave.
        let fewer = DeclareShape::from_reported(6, 3);
        assert_eq!(fewer.read_waves, vec![4]);
        assert_eq!((fewer.calls(), fewer.round_trips()), (6, 3));
        let mixed = DeclareShape::from_reported(7, 4);
        assert_eq!(mixed.read_waves, vec![4, 1]);
        assert_eq!((mixed.calls(), mixed.round_trips()), (7, 4));
    }
}
