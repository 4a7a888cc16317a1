//! The write plan of a score batch (pure: no I/O). Given the batch's deltas and what the table
//! is known to hold for their keys, it judges each delta (duplicate, farmed, scoring) in order
//! and packs the writes into transactions that never share an item, so they can be sent side
//! by side. Cost grows with the distinct keys touched, plus one exactly-once item per event:
//!
//! - a scoring kill is recorded on its killer → victim pair item (the anti-farming guard, which
//!   also keeps the ids of the pair's scoring kills: it *is* the kill's exactly-once record);
//! - every other delta (assists, farmed kills, captures, bonuses) has its own marker item;
//! - points are aggregated: one ADD per player, per battle and per clan-counter shard in each
//!   transaction. Each parallel transaction uses a shard of its own, and only the shard item
//!   carries the seal condition of the war's final tally.
//!
//! `docs/scores.md` explains the design and its figures.

use crate::attributes::{invalid, key_item, n, s};
use crate::keys::*;
use crate::ledger;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use clanwar_domain::ids::{BattleId, ClanId, PlayerId, WarId};
use clanwar_domain::ledger::LedgerEntry;
use clanwar_domain::ports::{FarmGuard, ScoreDelta, StoreError};
use clanwar_domain::war::Side;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Most items one `TransactWriteItems` call takes.
pub(crate) const MAX_TRANSACTION_ITEMS: usize = 100;

pub(crate) type Pair = (PlayerId, PlayerId);

/// What the table holds for one killer → victim pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PairState {
    /// `occurred_at` (ms) of the pair's last scoring kill.
    pub last_at_ms: i64,
    /// The ids of the pair's scoring kills.
    pub ids: HashSet<String>,
}

/// What a read found for the keys of some deltas; empty when nothing was read yet (the first,
/// optimistic attempt assumes new events, and the conditions catch every other case).
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    /// Dedupe ids whose marker item exists.
    pub markers: HashSet<String>,
    pub pairs: HashMap<Pair, PairState>,
}

/// What becomes of one delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judgement {
    Duplicate,
    /// Refused by the farm guard: only its marker is written (a replay is then a duplicate).
    Farmed,
    Scores,
}

fn pair_of(guard: &FarmGuard) -> Pair {
    (guard.killer_id.clone(), guard.victim_id.clone())
}

/// Whether the guard lets a kill score after the pair's last scoring kill at `last_at_ms`.
pub(crate) fn guard_allows(guard: &FarmGuard, last_at_ms: i64) -> bool {
    last_at_ms <= cutoff_ms(guard)
}

fn cutoff_ms(guard: &FarmGuard) -> i64 {
    (guard.occurred_at - chrono::Duration::seconds(guard.window_s)).timestamp_millis()
}

/// Judges `deltas` in order against `known` and against each other.
pub(crate) fn judge(deltas: &[&ScoreDelta], known: &Known) -> Vec<Judgement> {
    let mut pairs = known.pairs.clone();
    let mut seen = HashSet::new();
    deltas
        .iter()
        .map(|delta| {
            let id = &delta.dedupe_id;
            if known.markers.contains(id) || !seen.insert(id.clone()) {
                return Judgement::Duplicate;
            }
            let Some(guard) = &delta.farm_guard else {
                return Judgement::Scores;
            };
            let state = pairs.entry(pair_of(guard)).or_insert_with(|| PairState {
                last_at_ms: i64::MIN,
                ids: HashSet::new(),
            });
            if state.ids.contains(id) {
                Judgement::Duplicate
            } else if !guard_allows(guard, state.last_at_ms) {
                Judgement::Farmed
            } else {
                state.last_at_ms = guard.occurred_at.timestamp_millis();
                state.ids.insert(id.clone());
                Judgement::Scores
            }
        })
        .collect()
}

/// What one item of a chunk is for, to read its cancellation reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The clan-counter shard: fails only when the war's counters are sealed.
    Seal,
    Other,
}

/// One transaction of the plan.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    /// Positions (in the batch) of the deltas this chunk decides.
    pub deltas: Vec<usize>,
    pub items: Vec<TransactWriteItem>,
    pub roles: Vec<Role>,
}

/// The writes of one planned chunk, aggregated by key before they become items.
#[derive(Debug, Default)]
struct Draft {
    deltas: Vec<usize>,
    markers: BTreeSet<String>,
    /// pair → (cutoff of its first scoring kill, last scoring time, ids).
    pairs: BTreeMap<Pair, (i64, i64, BTreeSet<String>)>,
    players: BTreeMap<PlayerId, (ClanId, i64)>,
    clans: BTreeMap<ClanId, i64>,
    battles: BTreeMap<BattleId, (i64, i64)>,
    /// The ledger entries of the scoring deltas: one ledger page item.
    ledger: Vec<LedgerEntry>,
}

impl Draft {
    fn item_count(&self) -> usize {
        self.markers.len()
            + self.pairs.len()
            + self.players.len()
            + self.battles.len()
            + usize::from(!self.clans.is_empty())
            + usize::from(!self.ledger.is_empty())
    }

    /// Items `delta` would add to this draft.
    fn added_by(&self, delta: &ScoreDelta, judgement: Judgement) -> usize {
        match judgement {
            Judgement::Duplicate => 0,
            Judgement::Farmed => 1,
            Judgement::Scores => {
                let record = match &delta.farm_guard {
                    Some(g) => usize::from(!self.pairs.contains_key(&pair_of(g))),
                    None => 1,
                };
                let players = delta
                    .players
                    .iter()
                    .filter(|p| !self.players.contains_key(&p.player_id))
                    .count();
                let battle = delta
                    .battle_kill
                    .as_ref()
                    .is_some_and(|(b, _)| !self.battles.contains_key(b));
                let shard = !delta.clans.is_empty() && self.clans.is_empty();
                let page = delta.ledger.is_some() && self.ledger.is_empty();
                record + players + usize::from(battle) + usize::from(shard) + usize::from(page)
            }
        }
    }

    fn add(&mut self, position: usize, delta: &ScoreDelta, judgement: Judgement) {
        self.deltas.push(position);
        match judgement {
            Judgement::Duplicate => {}
            Judgement::Farmed => {
                self.markers.insert(delta.dedupe_id.clone());
            }
            Judgement::Scores => {
                match &delta.farm_guard {
                    Some(guard) => {
                        let at = guard.occurred_at.timestamp_millis();
                        let entry = self.pairs.entry(pair_of(guard)).or_insert((
                            cutoff_ms(guard),
                            at,
                            BTreeSet::new(),
                        ));
                        entry.1 = entry.1.max(at);
                        entry.2.insert(delta.dedupe_id.clone());
                    }
                    None => {
                        self.markers.insert(delta.dedupe_id.clone());
                    }
                }
                for p in &delta.players {
                    self.players
                        .entry(p.player_id.clone())
                        .or_insert((p.clan_id.clone(), 0))
                        .1 += p.points;
                }
                for (clan, points) in &delta.clans {
                    *self.clans.entry(clan.clone()).or_default() += points;
                }
                self.ledger
                    .extend(delta.ledger.iter().map(|e| (**e).clone()));
                if let Some((battle, side)) = &delta.battle_kill {
                    let kills = self.battles.entry(battle.clone()).or_default();
                    match side {
                        Side::Attacker => kills.0 += 1,
                        Side::Defender => kills.1 += 1,
                    }
                }
            }
        }
    }
}

/// Builds the items of score writes for one table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemWriter<'a> {
    pub table: &'a str,
    pub war: &'a WarId,
    pub shards: u32,
    /// TTL (epoch s) of exactly-once records: longer than any war lasts.
    pub expires_at: i64,
    /// When the writes are recorded (ms): the sort key of their ledger pages.
    pub recorded_ms: i64,
}

impl ItemWriter<'_> {
    fn update(&self, key: (String, String)) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder()
            .table_name(self.table)
            .set_key(Some(key_item(key)))
    }

    /// The exactly-once marker of a delta: it must not exist yet.
    pub fn marker(&self, dedupe_id: &str) -> Result<TransactWriteItem, StoreError> {
        let mut item = key_item(dedupe_key(self.war, dedupe_id));
        item.insert("expires_at".into(), n(self.expires_at));
        let put = Put::builder()
            .table_name(self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(invalid)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A pair's scoring kills: allowed if the pair never scored, or last scored no later than
    /// the cutoff of the first of these kills. A replay always fails the condition (the pair's
    /// last score is then at or after its own time).
    pub fn pair(
        &self,
        (killer, victim): &Pair,
        cutoff_ms: i64,
        last_at_ms: i64,
        ids: impl IntoIterator<Item = String>,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self
            .update(farm_key(self.war, killer, victim))
            .update_expression("SET last_at = :t, expires_at = :e ADD ids :ids")
            .condition_expression("attribute_not_exists(pk) OR last_at <= :cutoff")
            .expression_attribute_values(":t", n(last_at_ms))
            .expression_attribute_values(":cutoff", n(cutoff_ms))
            .expression_attribute_values(":e", n(self.expires_at))
            .expression_attribute_values(":ids", AttributeValue::Ss(ids.into_iter().collect()))
            .build()
            .map_err(invalid)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Points of some clans on one counter shard, refused once the shard is sealed.
    pub fn clan_shard(
        &self,
        shard: u32,
        clans: &BTreeMap<ClanId, i64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = self
            .update(clan_shard_key(self.war, shard))
            .condition_expression("attribute_not_exists(sealed)");
        let mut adds = Vec::new();
        for (i, (clan, points)) in clans.iter().enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            update = update
                .expression_attribute_names(format!("#c{i}"), format!("c_{clan}"))
                .expression_attribute_values(format!(":c{i}"), n(points));
        }
        let update = update
            .update_expression(format!("ADD {}", adds.join(", ")))
            .build()
            .map_err(invalid)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A player's points; the item is also the player's entry in the top-N index.
    pub fn player(
        &self,
        player: &PlayerId,
        clan: &ClanId,
        points: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let index_shard = shard_of(player.as_str(), self.shards);
        let update = self
            .update(player_key(self.war, player))
            .update_expression("SET player_id = :p, clan_id = :c, gsi2pk = :g ADD gsi2sk :n")
            .expression_attribute_values(":p", s(player.as_str()))
            .expression_attribute_values(":c", s(clan.as_str()))
            .expression_attribute_values(":g", s(player_index_partition(self.war, index_shard)))
            .expression_attribute_values(":n", n(points))
            .build()
            .map_err(invalid)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Kills per side of one battle, on one shard of its tally.
    pub fn battle(
        &self,
        battle: &BattleId,
        shard: u32,
        (attacker, defender): (i64, i64),
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self
            .update(battle_kills_key(self.war, battle, shard))
            .update_expression("ADD attacker_kills :a, defender_kills :d")
            .expression_attribute_values(":a", n(attacker))
            .expression_attribute_values(":d", n(defender))
            .build()
            .map_err(invalid)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A new ledger page of `entries` in the shard's ledger partition.
    pub fn ledger_page(
        &self,
        shard: u32,
        entries: &[LedgerEntry],
    ) -> Result<TransactWriteItem, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let item = ledger::page_item(self.war, shard, self.recorded_ms, &id, entries)?;
        ledger::page_put(self.table, item)
    }

    fn chunk(&self, draft: Draft, shard: u32) -> Result<Chunk, StoreError> {
        let mut chunk = Chunk {
            deltas: draft.deltas,
            ..Chunk::default()
        };
        let mut push = |item: TransactWriteItem, role: Role| {
            chunk.items.push(item);
            chunk.roles.push(role);
        };
        if !draft.clans.is_empty() {
            push(self.clan_shard(shard, &draft.clans)?, Role::Seal);
        }
        for (pair, (cutoff, last, ids)) in &draft.pairs {
            push(self.pair(pair, *cutoff, *last, ids.clone())?, Role::Other);
        }
        for id in &draft.markers {
            push(self.marker(id)?, Role::Other);
        }
        for (player, (clan, points)) in &draft.players {
            push(self.player(player, clan, *points)?, Role::Other);
        }
        for (battle, kills) in &draft.battles {
            push(self.battle(battle, shard, *kills)?, Role::Other);
        }
        if !draft.ledger.is_empty() {
            push(self.ledger_page(shard, &draft.ledger)?, Role::Other);
        }
        Ok(chunk)
    }

    /// Packs the judged deltas at `positions` into waves of item-disjoint chunks: the chunks of
    /// one wave can run side by side (each on its own counter shard, starting at `offset`), and
    /// a wave runs only after the one before it. Realistic batches fit in one wave; a player
    /// with more events than one transaction holds spills into the next.
    pub fn plan(
        &self,
        deltas: &[ScoreDelta],
        positions: &[usize],
        judged: &[Judgement],
        offset: u32,
    ) -> Result<Vec<Vec<Chunk>>, StoreError> {
        // Group by the credited player, so each player item sits in one chunk.
        let mut order: Vec<(usize, Judgement)> = positions
            .iter()
            .copied()
            .zip(judged.iter().copied())
            .collect();
        let group = |p: usize| deltas[p].players.first().map(|pl| pl.player_id.to_string());
        order.sort_by_key(|(p, _)| group(*p));

        let mut drafts: Vec<Draft> = vec![Draft::default()];
        for members in order.chunk_by(|a, b| group(a.0) == group(b.0)) {
            // A player's events go into one chunk whenever they fit in one: split players
            // would put one item into two chunks, which then cannot run side by side.
            let mut alone = Draft::default();
            for &(p, j) in members {
                alone.add(p, &deltas[p], j);
            }
            let current = drafts.last().expect("never empty");
            if !current.deltas.is_empty()
                && current.item_count() + alone.item_count() > MAX_TRANSACTION_ITEMS
            {
                drafts.push(Draft::default());
            }
            for &(position, judgement) in members {
                let delta = &deltas[position];
                let current = drafts.last_mut().expect("never empty");
                if current.item_count() + current.added_by(delta, judgement) > MAX_TRANSACTION_ITEMS
                {
                    drafts.push(Draft::default());
                }
                drafts
                    .last_mut()
                    .expect("never empty")
                    .add(position, delta, judgement);
            }
        }

        // Waves: a chunk joins the first wave whose chunks share none of its players (and so
        // none of its pairs) and that still has a free shard.
        let shards = self.shards.max(1) as usize;
        let mut waves: Vec<Vec<Draft>> = Vec::new();
        for draft in drafts.into_iter().filter(|d| !d.deltas.is_empty()) {
            let fits = |wave: &Vec<Draft>| {
                wave.len() < shards
                    && wave
                        .iter()
                        .all(|other| other.players.keys().all(|p| !draft.players.contains_key(p)))
            };
            match waves.iter_mut().find(|w| fits(w)) {
                Some(wave) => wave.push(draft),
                None => waves.push(vec![draft]),
            }
        }
        waves
            .into_iter()
            .map(|wave| {
                wave.into_iter()
                    .enumerate()
                    .map(|(i, draft)| {
                        let shard = (offset as usize + i) % shards;
                        self.chunk(draft, u32::try_from(shard).expect("below shards"))
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;

/// The capacity model of the score path (SPEC §6, §12): write units per partition key from
/// the sizes of the items this module writes, for the seed's load. Run it with
/// `make capacity` (it prints its tables); it fails if any key exceeds half its limit or a
/// kill costs more than `MAX_WCU_PER_KILL` write units.
#[cfg(test)]
mod capacity;
