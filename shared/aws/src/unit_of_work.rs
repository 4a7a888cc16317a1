//! The unit of work on DynamoDB: the writes of one domain [`Transaction`] as the items of one
//! `TransactWriteItems` — each record's put or delete with its version condition, the war-log
//! entries of a war, outbox entries, score deltas and ledger pages — remembering which write
//! (and which role) every item came from, so a cancellation reason can be traced back.

use crate::attributes::*;
use crate::dynamodb::DynamoDbStore;
use crate::keys::*;
use crate::reward_plan::Layout;
use crate::score_plan::Role;
use crate::store::record_item;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use chrono::Duration;
use clanwar_domain::ids::{ClanId, PlayerId, WarId};
use clanwar_domain::ports::*;
use clanwar_domain::war::{Side, War};
use std::collections::{BTreeMap, HashMap};

/// Transaction items plus, for each, the index of the domain write it came from and its role.
#[derive(Default)]
pub(crate) struct TxItems {
    pub(crate) items: Vec<TransactWriteItem>,
    pub(crate) owner: Vec<usize>,
    pub(crate) roles: Vec<Role>,
}

impl TxItems {
    pub(crate) fn push(&mut self, owner: usize, item: TransactWriteItem) {
        self.push_with(owner, item, Role::Other);
    }

    fn push_with(&mut self, owner: usize, item: TransactWriteItem, role: Role) {
        self.items.push(item);
        self.owner.push(owner);
        self.roles.push(role);
    }
}

impl DynamoDbStore {
    pub(crate) fn put(
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

    pub(crate) fn expect_condition(expect: Expect) -> (&'static str, Option<u64>) {
        match expect {
            Expect::Absent => ("attribute_not_exists(pk)", None),
            Expect::Version(v) => ("ver = :v", Some(v)),
        }
    }

    /// The items of one domain write. `plans`: the stored layouts of the reward plans the
    /// transaction rewrites ([`DynamoDbStore::plan_layouts`]).
    pub(crate) fn write_items(
        &self,
        index: usize,
        write: &Write,
        plans: &HashMap<WarId, Layout>,
        out: &mut TxItems,
    ) -> Result<(), StoreError> {
        match write {
            Write::Put {
                record: Record::RewardPlan(plan),
                expect,
            } => self.plan_items(index, plan, *expect, plans.get(&plan.war_id), out)?,
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
                if let RecordKey::RewardPlan(war) = key {
                    self.plan_chunk_deletes(index, war, plans.get(war), out)?;
                }
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
}
