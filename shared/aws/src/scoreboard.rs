//! DynamoDB adapter of the score-board port: batch ingestion through the write plan of
//! `score_plan.rs`, the seal of a war's final tally, and the score reads (every shard read side
//! by side, so a read costs one round trip however many shards a war has).
//!
//! A batch is first written optimistically (as if every event were new): one wave of
//! item-disjoint transactions, side by side. Only the transactions that a condition or a
//! competing transaction cancelled go round again: their keys are read back, their events
//! judged again against what the table now holds, and written again — a bounded number of
//! passes with jittered backoff, then `Contention` (503 with a retry hint at the edge).

use crate::attributes::{corrupt, key_item, n, number, s, string, Item};
use crate::dynamodb::{DynamoDbStore, TransactFailure};
use crate::keys::*;
use crate::score_plan::{judge, Judgement, Known, Pair, PairState, Role};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use clanwar_domain::ids::{BattleId, ClanId, PlayerId, WarId};
use clanwar_domain::ledger::{LedgerEntry, LedgerFilter};
use clanwar_domain::ports::*;
use futures_util::future::{join_all, try_join_all};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Passes of one batch: the optimistic write, then re-judged retries of what was cancelled.
const MAX_PASSES: u32 = 5;

/// Points per clan in shard items (`c_<clan>` attributes), summed.
fn clan_points<'a>(
    items: impl IntoIterator<Item = &'a Item>,
) -> Result<BTreeMap<ClanId, i64>, StoreError> {
    let mut totals: BTreeMap<ClanId, i64> = BTreeMap::new();
    for item in items {
        for (name, value) in item {
            let Some(clan) = name.strip_prefix("c_") else {
                continue;
            };
            let points: i64 = value.as_n().ok().and_then(|v| v.parse().ok()).unwrap_or(0);
            let clan = ClanId::new(clan).map_err(|e| corrupt(name, e))?;
            *totals.entry(clan).or_default() += points;
        }
    }
    Ok(totals)
}

fn player_score(item: &Item) -> Result<PlayerScore, StoreError> {
    let player = string(item, "player_id").unwrap_or_default();
    Ok(PlayerScore {
        player_id: PlayerId::new(player.as_str()).map_err(|e| corrupt(&player, e))?,
        clan_id: ClanId::new(string(item, "clan_id").unwrap_or_default())
            .map_err(|e| corrupt(&player, e))?,
        points: number(item, "gsi2sk"),
    })
}

fn random_below(bound: u32) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    u32::try_from(random % u64::from(bound.max(1))).expect("below bound")
}

impl DynamoDbStore {
    /// What the table holds for the exactly-once records of `deltas[positions]`: one strongly
    /// consistent read of their markers and pair items, side by side.
    async fn read_known(
        &self,
        war: &WarId,
        deltas: &[ScoreDelta],
        positions: &[usize],
    ) -> Result<Known, StoreError> {
        enum Owner {
            Marker(String),
            Pair(Pair),
        }
        let mut owners: HashMap<String, Owner> = HashMap::new();
        for &p in positions {
            let delta = &deltas[p];
            let (pk, _) = dedupe_key(war, &delta.dedupe_id);
            owners.insert(pk, Owner::Marker(delta.dedupe_id.clone()));
            if let Some(g) = &delta.farm_guard {
                let (pk, _) = farm_key(war, &g.killer_id, &g.victim_id);
                owners.insert(pk, Owner::Pair((g.killer_id.clone(), g.victim_id.clone())));
            }
        }
        let keys = owners
            .keys()
            .map(|pk| {
                let sk = if pk.starts_with("FARM#") {
                    "FARM"
                } else {
                    "APPLIED"
                };
                key_item((pk.clone(), sk.to_owned()))
            })
            .collect();
        let mut known = Known::default();
        for item in self.batch_get(keys, true, Some("pk, last_at, ids")).await? {
            let pk = string(&item, "pk").unwrap_or_default();
            match owners.remove(&pk) {
                Some(Owner::Marker(id)) => {
                    known.markers.insert(id);
                }
                Some(Owner::Pair(pair)) => {
                    let ids = item
                        .get("ids")
                        .and_then(|v| v.as_ss().ok())
                        .map(|ids| ids.iter().cloned().collect())
                        .unwrap_or_default();
                    known.pairs.insert(
                        pair,
                        PairState {
                            last_at_ms: number(&item, "last_at"),
                            ids,
                        },
                    );
                }
                None => {}
            }
        }
        Ok(known)
    }

    /// The items of `war`'s `shards` counter shards of some kind, read side by side.
    async fn shard_items(
        &self,
        shards: u32,
        key: impl Fn(u32) -> (String, String),
    ) -> Result<Vec<Item>, StoreError> {
        let keys = (0..shards.max(1))
            .map(|shard| key_item(key(shard)))
            .collect();
        self.batch_get(keys, false, None).await
    }
}

#[async_trait]
impl ScoreBoard for DynamoDbStore {
    async fn apply_batch(&self, deltas: Vec<ScoreDelta>) -> Result<Vec<ApplyOutcome>, StoreError> {
        let Some(first) = deltas.first() else {
            return Ok(Vec::new());
        };
        let (war, shards) = (first.war_id.clone(), first.shards.max(1));
        if deltas
            .iter()
            .any(|d| d.war_id != war || d.shards != first.shards)
        {
            return Err(StoreError::Invalid(
                "a score batch belongs to one war".into(),
            ));
        }
        let writer = self.writer(&war, shards);
        // Batches from many callers start on different shards.
        let offset = random_below(shards);
        let mut outcomes: Vec<Option<ApplyOutcome>> = vec![None; deltas.len()];
        let mut pending: Vec<usize> = (0..deltas.len()).collect();
        let mut known = Known::default();
        for pass in 0..MAX_PASSES {
            if pass > 0 {
                crate::retry::backoff(pass).await;
                known = self.read_known(&war, &deltas, &pending).await?;
            }
            let refs: Vec<&ScoreDelta> = pending.iter().map(|&p| &deltas[p]).collect();
            let judged = judge(&refs, &known);
            let judgement: HashMap<usize, Judgement> = pending
                .iter()
                .copied()
                .zip(judged.iter().copied())
                .collect();
            let mut cancelled = Vec::new();
            for wave in writer.plan(&deltas, &pending, &judged, offset + pass)? {
                let sent = wave.into_iter().map(|chunk| async move {
                    let result = if chunk.items.is_empty() {
                        Ok(())
                    } else {
                        self.transact(chunk.items).await
                    };
                    (chunk.deltas, chunk.roles, result)
                });
                for (positions, roles, result) in join_all(sent).await {
                    match result {
                        Ok(()) => {
                            for p in positions {
                                outcomes[p] = Some(match judgement[&p] {
                                    Judgement::Duplicate => ApplyOutcome::Duplicate,
                                    Judgement::Farmed => ApplyOutcome::Farmed,
                                    Judgement::Scores => ApplyOutcome::Applied,
                                });
                            }
                        }
                        Err(TransactFailure::Cancelled(reasons)) => {
                            let sealed = reasons.iter().zip(&roles).any(|(reason, role)| {
                                *role == Role::Seal
                                    && reason.as_deref() == Some("ConditionalCheckFailed")
                            });
                            if sealed {
                                for p in positions {
                                    outcomes[p] = Some(match judgement[&p] {
                                        Judgement::Duplicate => ApplyOutcome::Duplicate,
                                        _ => ApplyOutcome::Sealed,
                                    });
                                }
                            } else {
                                tracing::debug!(?reasons, "score chunk cancelled; judging again");
                                cancelled.extend(positions);
                            }
                        }
                        Err(TransactFailure::Other(err)) => return Err(err),
                    }
                }
            }
            if cancelled.is_empty() {
                return Ok(outcomes
                    .into_iter()
                    .map(|o| o.expect("every delta is decided"))
                    .collect());
            }
            cancelled.sort_unstable();
            pending = cancelled;
        }
        Err(StoreError::Contention {
            attempts: MAX_PASSES,
        })
    }

    async fn seal(&self, war: &WarId, shards: u32) -> Result<BTreeMap<ClanId, i64>, StoreError> {
        let sealed_at = n(chrono::Utc::now().timestamp_millis());
        let seals = (0..shards.max(1)).map(|shard| {
            self.client
                .update_item()
                .table_name(&self.config.table)
                .set_key(Some(key_item(clan_shard_key(war, shard))))
                .update_expression("SET sealed = if_not_exists(sealed, :t)")
                .expression_attribute_values(":t", sealed_at.clone())
                // The values at the moment of sealing: nothing can be added after it.
                .return_values(ReturnValue::AllNew)
                .send()
        });
        let sealed = try_join_all(seals)
            .await
            .map_err(|e| StoreError::unavailable("UpdateItem seal", e))?;
        clan_points(sealed.iter().filter_map(|out| out.attributes()))
    }

    async fn clan_totals(
        &self,
        war: &WarId,
        shards: u32,
    ) -> Result<BTreeMap<ClanId, i64>, StoreError> {
        let items = self
            .shard_items(shards, |shard| clan_shard_key(war, shard))
            .await?;
        clan_points(&items)
    }

    async fn top_players(
        &self,
        war: &WarId,
        shards: u32,
        limit: usize,
    ) -> Result<Vec<PlayerScore>, StoreError> {
        let queries = (0..shards.max(1)).map(|shard| {
            self.client
                .query()
                .table_name(&self.config.table)
                .index_name("gsi2")
                .key_condition_expression("gsi2pk = :p")
                .expression_attribute_values(":p", s(player_index_partition(war, shard)))
                .scan_index_forward(false)
                .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
                .send()
        });
        let pages = try_join_all(queries)
            .await
            .map_err(|e| StoreError::unavailable("Query top players", e))?;
        let mut all = Vec::new();
        for item in pages.iter().flat_map(|p| p.items()) {
            all.push(player_score(item)?);
        }
        // Each shard's best `limit`, merged: the overall best `limit` are among them.
        Ok(leaderboard(all, limit))
    }

    async fn player_score(
        &self,
        war: &WarId,
        player: &PlayerId,
    ) -> Result<Option<PlayerScore>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.config.table)
            .set_key(Some(key_item(player_key(war, player))))
            .send()
            .await
            .map_err(|e| StoreError::unavailable("GetItem", e))?;
        out.item.as_ref().map(player_score).transpose()
    }

    async fn all_players(&self, war: &WarId, shards: u32) -> Result<Vec<PlayerScore>, StoreError> {
        let partitions: Vec<String> = (0..shards.max(1))
            .map(|shard| player_index_partition(war, shard))
            .collect();
        let reads = partitions.iter().map(|partition| {
            self.query_all(move || {
                self.client
                    .query()
                    .table_name(&self.config.table)
                    .index_name("gsi2")
                    .key_condition_expression("gsi2pk = :p")
                    .expression_attribute_values(":p", s(partition.clone()))
            })
        });
        let mut listed = HashSet::new();
        for item in try_join_all(reads).await?.iter().flatten() {
            listed.insert(player_score(item)?.player_id);
        }
        // The index is eventually consistent; the points come from the items themselves, read
        // strongly consistent (this read feeds the reward plan, right after the seal).
        let keys = listed
            .iter()
            .map(|player| key_item(player_key(war, player)))
            .collect();
        let mut all = self
            .batch_get(keys, true, None)
            .await?
            .iter()
            .map(player_score)
            .collect::<Result<Vec<_>, _>>()?;
        all.sort_by(|a, b| a.player_id.cmp(&b.player_id));
        Ok(all)
    }

    async fn ledger(
        &self,
        war: &WarId,
        shards: u32,
        filter: &LedgerFilter,
        page: PageRequest,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        self.read_ledger(war, shards, filter, page).await
    }

    async fn ledger_all(&self, war: &WarId, shards: u32) -> Result<Vec<LedgerEntry>, StoreError> {
        self.read_whole_ledger(war, shards).await
    }

    async fn battle_kills(
        &self,
        war: &WarId,
        shards: u32,
        battle: &BattleId,
    ) -> Result<SideKills, StoreError> {
        let items = self
            .shard_items(shards, |shard| battle_kills_key(war, battle, shard))
            .await?;
        Ok(items
            .iter()
            .fold(SideKills::default(), |kills, item| SideKills {
                attacker: kills.attacker + number(item, "attacker_kills"),
                defender: kills.defender + number(item, "defender_kills"),
            }))
    }
}
