//! Unit tests of the chunked reward plan: what a write puts and deletes, and how a read puts
//! the plan together again (or sees that it read across a write).

use super::*;
use crate::dynamodb::TableConfig;
use clanwar_domain::ids::{ClanId, PlayerId};
use clanwar_domain::rewards::GrantStatus;
use clanwar_domain::war::{RewardStatus, Side};

#[test]
fn the_cache_answers_a_chunk_only_at_the_digest_it_was_read_at() {
    let cache = ChunkCache::default();
    let war = WarId::new("w-1").unwrap();
    assert!(cache.get(&war, "REWARDS#G#0000".into(), "d1").is_none());
    cache.put(
        &war,
        "REWARDS#G#0000".into(),
        "d1".into(),
        plan(2, 0).grants,
    );
    assert_eq!(
        cache
            .get(&war, "REWARDS#G#0000".into(), "d1")
            .unwrap()
            .len(),
        2
    );
    assert!(
        cache.get(&war, "REWARDS#G#0000".into(), "d2").is_none(),
        "another digest"
    );
    assert!(
        cache.get(&war, "REWARDS#G#0001".into(), "d1").is_none(),
        "another chunk"
    );
    let other = WarId::new("w-2").unwrap();
    assert!(
        cache.get(&other, "REWARDS#G#0000".into(), "d1").is_none(),
        "another war"
    );
    for i in 0..CACHED_CHUNKS {
        cache.put(&other, format!("REWARDS#G#{i:04}"), "d".into(), Vec::new());
    }
    assert!(
        cache.get(&war, "REWARDS#G#0000".into(), "d1").is_none(),
        "bounded: starts over"
    );
}

fn store() -> DynamoDbStore {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .build();
    DynamoDbStore::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        TableConfig {
            table: "clanwar-test".into(),
        },
    )
}

/// A plan of `players` grants (ids as long as ids may be) and `superseded` superseded ones.
fn plan(players: usize, superseded: usize) -> RewardPlan {
    let grant = |i: usize, status| Grant {
        player_id: PlayerId::new(format!("{i:0>64}")).unwrap(),
        clan_id: ClanId::new(format!("{:c>64}", i % 6)).unwrap(),
        side: if i % 2 == 0 {
            Side::Attacker
        } else {
            Side::Defender
        },
        kind: "victory".into(),
        amount: 1_000 + i as u64,
        status,
        rescore: 0,
        attempt: 1,
    };
    RewardPlan {
        war_id: WarId::new("w-1").unwrap(),
        status: RewardStatus::Distributing,
        attacker_pool: 10_000,
        defender_pool: 2_000,
        grants: (0..players)
            .map(|i| grant(i, GrantStatus::Pending))
            .collect(),
        superseded: (0..superseded)
            .map(|i| grant(i, GrantStatus::Revoked))
            .collect(),
        rescore: 1,
        attempt: 1,
        run: Some("r1".into()),
        version: 3,
    }
}

fn items_of(plan: &RewardPlan, expect: Expect, stored: Option<&Layout>) -> Vec<TransactWriteItem> {
    let mut out = TxItems::default();
    store()
        .plan_items(0, plan, expect, stored, &mut out)
        .unwrap();
    assert!(
        out.owner.iter().all(|o| *o == 0),
        "every item is the plan's"
    );
    out.items
}

fn put_items(items: &[TransactWriteItem]) -> Vec<Item> {
    items
        .iter()
        .filter_map(|i| i.put().map(|p| p.item().clone()))
        .collect()
}

fn sort_keys(items: &[TransactWriteItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| match (i.put(), i.delete()) {
            (Some(put), _) => format!("put {}", string(put.item(), "sk").unwrap()),
            (_, Some(delete)) => format!("delete {}", string(delete.key(), "sk").unwrap()),
            _ => panic!("neither put nor delete"),
        })
        .collect()
}

fn layout(items: &[TransactWriteItem]) -> Layout {
    let header = &put_items(items)[0];
    Layout::of_header(header).expect("a chunked header")
}

/// What a read makes of these items (the header first, as the store reads it): the plan, or
/// `None` when a chunk the header lists is missing or at another digest (a torn read).
fn assembled(items: Vec<Item>) -> Option<RewardPlan> {
    let mut items = items.into_iter();
    let header = items.next().expect("a header");
    let Some(layout) = Layout::of_header(&header) else {
        let Record::RewardPlan(plan) = decode_record(header).unwrap() else {
            panic!("not a plan")
        };
        return Some(plan);
    };
    let chunks: HashMap<String, (String, Arc<Vec<Grant>>)> = items
        .map(|item| {
            let grants = serde_dynamo::from_attribute_value(item["grants"].clone()).unwrap();
            (
                string(&item, "sk").unwrap(),
                (string(&item, "digest").unwrap(), Arc::new(grants)),
            )
        })
        .collect();
    let chunk = |part: Part, i: usize, digest: &str| match chunks.get(&part.sort_key(i)) {
        Some((at, grants)) if at == digest => Some(grants.clone()),
        _ => None,
    };
    assemble(header, &layout, chunk).unwrap()
}

fn read(items: Vec<Item>) -> RewardPlan {
    assembled(items).expect("the whole plan")
}

#[test]
fn a_plan_is_written_as_its_header_and_chunks_and_reads_back_whole() {
    let plan = plan(450, 30);
    let items = items_of(&plan, Expect::Absent, None);
    assert_eq!(
        sort_keys(&items),
        [
            "put REWARDS",
            "put REWARDS#G#0000",
            "put REWARDS#G#0001",
            "put REWARDS#G#0002",
            "put REWARDS#S#0000"
        ]
    );
    let header = items[0].put().unwrap();
    assert_eq!(
        header.condition_expression(),
        Some("attribute_not_exists(pk)")
    );
    assert!(items[1..]
        .iter()
        .all(|i| i.put().unwrap().condition_expression().is_none()));
    assert_eq!(read(put_items(&items)), plan);
}

#[test]
fn a_step_that_changes_one_grant_writes_the_header_and_that_chunk_only() {
    let mut plan = plan(1_000, 0);
    let stored = layout(&items_of(&plan, Expect::Absent, None));
    plan.grants[450].status = GrantStatus::Granted;
    let items = items_of(&plan, Expect::Version(3), Some(&stored));
    assert_eq!(sort_keys(&items), ["put REWARDS", "put REWARDS#G#0002"]);
    assert_eq!(
        items[0].put().unwrap().condition_expression(),
        Some("ver = :v")
    );
}

#[test]
fn a_correction_writes_the_chunks_it_changed_appended_and_deletes_those_past_the_end() {
    let before = plan(450, 150);
    let stored = layout(&items_of(&before, Expect::Absent, None));
    // Grants shrink to 250 (chunk 0 unchanged), superseded grow past one chunk.
    let mut after = before.clone();
    after.grants.truncate(250);
    after.grants[249].amount += 1;
    after.superseded.extend(plan(100, 0).grants);
    let items = items_of(&after, Expect::Version(3), Some(&stored));
    assert_eq!(
        sort_keys(&items),
        [
            "put REWARDS",
            "put REWARDS#G#0001",
            "delete REWARDS#G#0002",
            "put REWARDS#S#0000",
            "put REWARDS#S#0001"
        ]
    );
}

#[test]
fn the_largest_war_and_a_correction_of_all_its_grants_fit_one_transaction() {
    // Every grant of the largest war superseded by a correction that flips the winner.
    let players =
        2 * (1 + clanwar_domain::config::MAX_ALLIES_PER_SIDE) * clanwar_domain::clan::MAX_ROSTER;
    let before = plan(players, 0);
    let stored = layout(&items_of(&before, Expect::Absent, None));
    let mut after = before.clone();
    after.superseded = before.grants.clone();
    for grant in &mut after.grants {
        grant.amount += 1;
        grant.rescore = 1;
    }
    let items = items_of(&after, Expect::Version(3), Some(&stored));
    assert_eq!(items.len(), 1 + 40 + 40);
    // With the war, its eight war-log entries and an event, the commit stays within 100 items.
    assert!(items.len() + 10 <= crate::score_plan::MAX_TRANSACTION_ITEMS);
    let sizes: Vec<usize> = put_items(&items).iter().map(item_size).collect();
    let total: usize = sizes.iter().sum();
    assert!(
        total < 3_600_000,
        "{total} bytes of the 4 MB a transaction takes"
    );
    let largest = sizes.iter().max().unwrap();
    assert!(*largest < 50_000, "a chunk item of {largest} bytes");
}

/// An item's size as DynamoDB counts it: names and values, numbers at most 21 bytes, 3 bytes
/// for each list or map and 1 for each of its elements.
fn item_size(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::L(list) => 3 + list.iter().map(|e| 1 + value(e)).sum::<usize>(),
            AttributeValue::M(map) => {
                3 + map
                    .iter()
                    .map(|(k, e)| 1 + k.len() + value(e))
                    .sum::<usize>()
            }
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

#[test]
fn chunks_that_do_not_match_the_header_are_a_torn_read() {
    let mut plan = plan(450, 0);
    let old = put_items(&items_of(&plan, Expect::Absent, None));
    plan.grants[0].status = GrantStatus::Granted;
    let new = put_items(&items_of(&plan, Expect::Absent, None));
    // The new header with a chunk written before it.
    let mut torn = new.clone();
    torn[1] = old[1].clone();
    assert_eq!(assembled(torn), None);
    // A chunk the header lists is missing.
    let mut missing = new.clone();
    missing.remove(2);
    assert_eq!(assembled(missing), None);
    // The old header with the new chunk 0: torn too, and never a mix.
    let mut mixed = old.clone();
    mixed[1] = new[1].clone();
    assert_eq!(assembled(mixed), None);
    assert_eq!(assembled(new), Some(plan));
}

#[test]
fn a_plan_stored_as_one_item_reads_as_before_and_its_next_write_chunks_it() {
    let plan = plan(300, 2);
    let legacy = record_item(&Record::RewardPlan(plan.clone())).unwrap();
    assert_eq!(read(vec![legacy.clone()]), plan);
    assert_eq!(Layout::of_header(&legacy), None);
    // No layout: every chunk is written, and the header replaces the whole item.
    let items = items_of(&plan, Expect::Version(3), None);
    assert_eq!(items.len(), 1 + 2 + 1);
}
