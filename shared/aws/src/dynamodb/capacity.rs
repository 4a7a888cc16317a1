//! The capacity model of the war operations and the score reads (`make capacity`).

use crate::outbox::OUTBOX_SHARDS;

const PARTITION_WCU: f64 = 1_000.0;
const PARTITION_RCU: f64 = 3_000.0;
/// Score counter shards of a war (the template's default).
const SHARDS: f64 = 16.0;

/// Write units of one write of `kb` kilobytes (transactions cost double).
fn wcu(kb: f64, transactional: bool) -> f64 {
    kb.ceil() * if transactional { 2.0 } else { 1.0 }
}
/// Read units of one read of `kb` kilobytes (eventually consistent reads cost half).
fn rcu(kb: f64, consistent: bool) -> f64 {
    (kb / 4.0).ceil() * if consistent { 1.0 } else { 0.5 }
}

#[test]
fn no_partition_key_exceeds_half_its_capacity_under_war_operations_and_score_reads() {
    // Seed load: 1,000 war operations/s over 100+ wars, each writing the war item and
    // about 2 outbox entries (deleted again by the relay); 2,000 score reads/s, all on one
    // war (the worst case: a final everybody watches).
    let war_ops = 1_000.0;
    let wars = 100.0;
    let events_per_op = 2.0;
    let score_reads = 2_000.0;
    // Sizes: a busy war item 4 KB (captures, open battles, transitions), an outbox entry
    // under 1 KB, a clan counter shard 332 B, top-10 page of an index shard 2.4 KB.
    let (war_kb, outbox_kb, shard_kb, top_kb) = (4.0, 1.0, 0.33, 2.4);
    let outbox = f64::from(OUTBOX_SHARDS);
    let writes = [
        (
            "WAR#<war> (one war's item)",
            war_ops / wars * wcu(war_kb, true),
        ),
        (
            "OUTBOX#<n> (entries + the relay's deletes)",
            war_ops * events_per_op * (wcu(outbox_kb, true) + wcu(outbox_kb, false)) / outbox,
        ),
    ];
    let reads = [
        (
            "SCORE#<war>#<shard> (scoreboard: every shard)",
            score_reads * rcu(shard_kb, false),
        ),
        (
            "gsi2 WARPTS#<war>#<shard> (top players)",
            score_reads * rcu(top_kb, false),
        ),
        (
            "WAR#<war> (war reads, 1,000/s over 100 wars)",
            war_ops / wars * rcu(war_kb, true),
        ),
        (
            "OUTBOX#<n> (the sweep: a query a minute)",
            rcu(outbox_kb * 100.0, true) / 60.0,
        ),
    ];
    println!(
        "\nwar operations: 1,000/s over 100 wars, 2 events each; {OUTBOX_SHARDS} outbox partitions"
    );
    println!("  {:<48} {:>9} {:>7}", "partition key", "WCU/s", "of 1000");
    for (key, load) in writes {
        println!(
            "  {key:<48} {load:>9.1} {:>6.1}%",
            100.0 * load / PARTITION_WCU
        );
        assert!(load <= PARTITION_WCU / 2.0, "{key}: {load} WCU/s");
    }
    println!("\nscore reads: 2,000/s on one war ({SHARDS} shards), eventually consistent");
    println!("  {:<48} {:>9} {:>7}", "partition key", "RCU/s", "of 3000");
    for (key, load) in reads {
        println!(
            "  {key:<48} {load:>9.1} {:>6.1}%",
            100.0 * load / PARTITION_RCU
        );
        assert!(load <= PARTITION_RCU / 2.0, "{key}: {load} RCU/s");
    }
}
