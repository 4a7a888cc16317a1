//! The capacity model of the score path (`make capacity`).

use super::*;

/// DynamoDB's item size: attribute names plus values (numbers: ~1 byte per two digits + 1).
fn size(attributes: &[(&str, usize)]) -> usize {
    attributes
        .iter()
        .map(|(name, value)| name.len() + value)
        .sum()
}
fn number(digits: usize) -> usize {
    digits.div_ceil(2) + 1
}
/// Write units of one write of an item of `bytes` (transactional writes cost double).
fn wcu(bytes: usize, transactional: bool) -> f64 {
    let units = bytes.div_ceil(1024) as f64;
    if transactional {
        2.0 * units
    } else {
        units
    }
}

/// Table write units one accepted kill may cost. 3.0 before the war ledger; its page (one
/// per transaction, about 150 B per entry at transactional cost) adds 0.1–0.35 (measured
/// below), which is the price of keeping every effect with its points exactly once.
const MAX_WCU_PER_KILL: f64 = 3.25;
const ID: usize = 36; // a UUID
const PARTITION_WCU: f64 = 1_000.0;

struct Sizes {
    pair: usize,
    player: usize,
    clan_shard: usize,
    battle_shard: usize,
    /// A ledger page without its entries, and one entry (their sizes add up).
    ledger_page: usize,
    ledger_entry: usize,
}

fn sizes(clans_per_war: usize, kills_per_pair: usize) -> Sizes {
    let war = WarId::new("0".repeat(ID)).unwrap();
    let p = PlayerId::new("0".repeat(ID)).unwrap();
    let b = BattleId::new("0".repeat(ID)).unwrap();
    let key = |(pk, sk): (String, String)| [("pk", pk.len()), ("sk", sk.len())];
    let pair = size(&[
        key(farm_key(&war, &p, &p))[0],
        key(farm_key(&war, &p, &p))[1],
        ("last_at", number(13)),
        ("expires_at", number(10)),
        ("ids", ID * kills_per_pair),
    ]);
    let player = size(&[
        key(player_key(&war, &p))[0],
        key(player_key(&war, &p))[1],
        ("player_id", ID),
        ("clan_id", ID),
        ("gsi2pk", player_index_partition(&war, 15).len()),
        ("gsi2sk", number(7)),
    ]);
    let clan = (2 + ID, number(9));
    let mut shard = vec![
        key(clan_shard_key(&war, 15))[0],
        key(clan_shard_key(&war, 15))[1],
        ("sealed", number(13)),
    ];
    shard.extend(std::iter::repeat_n(
        ("c_", clan.0 + clan.1 - 2),
        clans_per_war,
    ));
    let battle_shard = size(&[
        key(battle_kills_key(&war, &b, 15))[0],
        key(battle_kills_key(&war, &b, 15))[1],
        ("attacker_kills", number(6)),
        ("defender_kills", number(6)),
    ]);
    // The real encoding of a kill's entry (ids of 36 characters), measured.
    let entry = clanwar_domain::ledger::LedgerEntry {
        event_id: "0".repeat(ID),
        kind: clanwar_domain::ledger::EffectKind::Kill,
        occurred_at: chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap(),
        player_id: Some(p.clone()),
        clan_id: ClanId::new("0".repeat(ID)).unwrap(),
        side: Side::Attacker,
        points: 10,
        retained_until: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
        voided_by: None,
    };
    let page_of = |entries: usize| {
        let item = ledger::page_item(
            &war,
            15,
            1_780_000_000_000,
            &"0".repeat(ID),
            &vec![entry.clone(); entries],
        )
        .unwrap();
        item.iter()
            .map(|(name, value)| {
                name.len()
                    + match value {
                        AttributeValue::S(text) => text.len(),
                        AttributeValue::N(digits) => number(digits.len()),
                        _ => 0,
                    }
            })
            .sum::<usize>()
    };
    Sizes {
        pair,
        player,
        clan_shard: size(&shard),
        battle_shard,
        ledger_page: page_of(0),
        ledger_entry: page_of(1) - page_of(0),
    }
}

/// One load profile: `events` kills per second in one war, in batches of `batch` events
/// (a battle's second), each with `players` distinct scoring players.
struct Profile {
    name: &'static str,
    events: f64,
    batch: usize,
    players: usize,
    shards: u32,
}

/// `(partition key, WCU/s)` rows of one war under `profile`, and WCU per kill.
fn model(profile: &Profile) -> (Vec<(&'static str, f64)>, f64) {
    let s = sizes(6, 3);
    let batches = profile.events / profile.batch as f64;
    // Chunks per batch: one item per kill, one per player, a shard and a battle item each.
    let items = profile.batch + profile.players;
    let chunks = items.div_ceil(MAX_TRANSACTION_ITEMS - 3) as f64;
    // One ledger page per chunk, holding that chunk's kills.
    let page = s.ledger_page + s.ledger_entry * (profile.batch as f64 / chunks).ceil() as usize;
    let per_batch = profile.batch as f64 * wcu(s.pair, true)
        + profile.players as f64 * wcu(s.player, true)
        + chunks * (wcu(s.clan_shard, true) + wcu(s.battle_shard, true) + wcu(page, true));
    let shards = f64::from(profile.shards);
    let player_updates = batches * profile.players as f64;
    let rows = vec![
        // A pair scores at most once per 5 min; each kill touches a new pair item.
        (
            "FARM#<war>#<killer>#<victim> (one pair)",
            wcu(s.pair, true) / 300.0,
        ),
        // A player is in at most one battle: one write per batch-second.
        ("PSCORE#<war>#<player> (one player)", wcu(s.player, true)),
        (
            "SCORE#<war>#<shard> (clan counters)",
            batches * chunks / shards * wcu(s.clan_shard, true),
        ),
        (
            "KILLS#<war>#<battle>#<shard>",
            chunks / shards * wcu(s.battle_shard, true),
        ),
        // Every chunk puts one page in its shard's ledger partition.
        (
            "LEDGER#<war>#<shard> (ledger pages)",
            batches * chunks / shards * wcu(page, true),
        ),
        // Moving a sort key in the index is a delete and a put, each of the projected item.
        (
            "gsi2 WARPTS#<war>#<shard> (top players)",
            player_updates * 2.0 * wcu(s.player, false) / shards,
        ),
    ];
    (rows, per_batch / profile.batch as f64)
}

#[test]
fn no_partition_key_exceeds_half_its_write_capacity_at_the_seeds_load() {
    let s = sizes(6, 3);
    println!(
        "item sizes (bytes): pair record {}, player {}, clan shard {} (6 clans), battle shard {}, ledger page {} + {} per entry",
        s.pair, s.player, s.clan_shard, s.battle_shard, s.ledger_page, s.ledger_entry
    );
    let profiles = [
        Profile { name: "burst: 10,000 kills/s in one war, 20 battles x 500 events/s, 40 scoring players each", events: 10_000.0, batch: 500, players: 40, shards: 16 },
        Profile { name: "busy battles: 10,000 kills/s, 100 players per battle-second", events: 10_000.0, batch: 500, players: 100, shards: 16 },
        Profile { name: "typical: 500 kills/s in one war (x 100 wars: separate keys)", events: 500.0, batch: 50, players: 20, shards: 16 },
    ];
    for profile in &profiles {
        let (rows, per_kill) = model(profile);
        println!("\n{} ({} shards)", profile.name, profile.shards);
        println!("  {:<44} {:>9} {:>7}", "partition key", "WCU/s", "of 1000");
        for (key, load) in &rows {
            println!(
                "  {key:<44} {load:>9.1} {:>6.1}%",
                100.0 * load / PARTITION_WCU
            );
            assert!(
                *load <= PARTITION_WCU / 2.0,
                "{key} at {load} WCU/s in '{}'",
                profile.name
            );
        }
        println!("  write units per accepted kill: {per_kill:.2} (table; index writes above)");
        assert!(
            per_kill <= MAX_WCU_PER_KILL,
            "{per_kill} WCU per kill in '{}'",
            profile.name
        );
    }
}
