//! The single-table key design: how every record, counter and outbox entry is addressed.
//! README "DynamoDB design" documents the same table; keep the two in step.

use clanwar_domain::ids::{ClanId, PlayerId, WarId};
use clanwar_domain::ports::RecordKey;
use clanwar_domain::spatial::CellId;

/// Partition and sort key of a stored record.
pub(crate) fn record_key(key: &RecordKey) -> (String, String) {
    match key {
        RecordKey::Clan(c) => (format!("CLAN#{c}"), "CLAN".into()),
        RecordKey::War(w) => (format!("WAR#{w}"), "WAR".into()),
        RecordKey::Territory(t) => (format!("TERR#{t}"), "TERR".into()),
        RecordKey::Battle(w, b) => (format!("WAR#{w}"), format!("BATTLE#{b}")),
        RecordKey::Alliance(a) => (format!("ALLIANCE#{a}"), "ALLIANCE".into()),
        RecordKey::Invitation(a, c) => (format!("ALLIANCE#{a}"), format!("INVITE#{c}")),
        RecordKey::Pair(a, b) => (format!("PAIR#{a}#{b}"), "PAIR".into()),
        RecordKey::Idempotency(c, k) => (format!("IDEM#{c}#{k}"), "IDEM".into()),
        RecordKey::RewardPlan(w) => (format!("WAR#{w}"), "REWARDS".into()),
    }
}

/// The war-log entry of one clan: newest first by sort key.
pub(crate) fn war_log_key(clan: &ClanId, declared_at: &str, war: &WarId) -> (String, String) {
    (
        format!("CLAN#{clan}"),
        format!("{WAR_LOG_PREFIX}{declared_at}#{war}"),
    )
}
pub(crate) const WAR_LOG_PREFIX: &str = "WARLOG#";

/// GSI1 partition of the spatial index.
pub(crate) fn cell_partition(cell: &CellId) -> String {
    format!("CELL#{}:{}", cell.cx, cell.cy)
}

/// Exactly-once marker of an applied score delta.
pub(crate) fn dedupe_key(war: &WarId, dedupe_id: &str) -> (String, String) {
    (format!("APPLIED#{war}#{dedupe_id}"), "APPLIED".into())
}

/// Anti-farming guard of one killer → victim pair.
pub(crate) fn farm_key(war: &WarId, killer: &PlayerId, victim: &PlayerId) -> (String, String) {
    (format!("FARM#{war}#{killer}#{victim}"), "FARM".into())
}

/// One shard of a war's clan-points counters.
pub(crate) fn clan_shard_key(war: &WarId, shard: u32) -> (String, String) {
    (format!("SCORE#{war}#{shard}"), "CLANS".into())
}

/// A player's points item; GSI2 (`gsi2pk` = war and player shard, `gsi2sk` = points) serves
/// the top-N read without a hot index partition.
pub(crate) fn player_key(war: &WarId, player: &PlayerId) -> (String, String) {
    (format!("PSCORE#{war}#{player}"), "PSCORE".into())
}
pub(crate) fn player_index_partition(war: &WarId, shard: u32) -> String {
    format!("WARPTS#{war}#{shard}")
}

/// One shard of a battle's per-side kill tally (its own partition: the war's partition stays
/// cold however fast kills arrive).
pub(crate) fn battle_kills_key(
    war: &WarId,
    battle: &clanwar_domain::ids::BattleId,
    shard: u32,
) -> (String, String) {
    (format!("KILLS#{war}#{battle}#{shard}"), "KILLS".into())
}

/// One shard of a war's ledger: its pages, sorted by the time they were recorded.
pub(crate) fn ledger_partition(war: &WarId, shard: u32) -> String {
    format!("LEDGER#{war}#{shard}")
}

/// Outbox entries live in a few partitions so a burst of state changes does not heat one.
/// What every outbox entry's partition key starts with.
pub(crate) const OUTBOX_PREFIX: &str = "OUTBOX#";

pub(crate) fn outbox_partition(shard: u32) -> String {
    format!("{OUTBOX_PREFIX}{shard}")
}

/// A WebSocket connection's record (its player and the topics it subscribed to).
pub(crate) fn connection_key(connection: &str) -> (String, String) {
    (format!("{CONNECTION_PREFIX}{connection}"), "WSCONN".into())
}
pub(crate) const CONNECTION_PREFIX: &str = "WSCONN#";

/// One subscription: the topic's partition, sorted by connection id.
pub(crate) fn subscription_key(topic: &str, connection: &str) -> (String, String) {
    (topic_partition(topic), connection.to_owned())
}

/// The partition of a topic's subscriptions.
pub(crate) fn topic_partition(topic: &str) -> String {
    format!("{TOPIC_PREFIX}{topic}")
}
pub(crate) const TOPIC_PREFIX: &str = "WSTOPIC#";

/// The shard an input always lands on (the domain's one stable hash).
pub(crate) use clanwar_domain::hash::shard_of;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_keys_do_not_depend_on_direction() {
        let (a, b) = (ClanId::new("a").unwrap(), ClanId::new("b").unwrap());
        assert_eq!(
            record_key(&RecordKey::pair(&a, &b)),
            record_key(&RecordKey::pair(&b, &a))
        );
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        for i in 0..1000 {
            let id = format!("event-{i}");
            let s = shard_of(&id, 8);
            assert!(s < 8);
            assert_eq!(s, shard_of(&id, 8));
        }
        assert_eq!(shard_of("x", 0), 0);
    }
}
