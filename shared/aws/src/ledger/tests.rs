//! Unit tests of the ledger pages: their encoding, cursors and the newest-first merge.

use super::*;

fn entry(id: &str, second: i64, player: &str) -> LedgerEntry {
    LedgerEntry {
        event_id: id.into(),
        kind: EffectKind::Kill,
        occurred_at: DateTime::from_timestamp(1_780_000_000 + second, 0).unwrap(),
        player_id: Some(PlayerId::new(player).unwrap()),
        clan_id: ClanId::new("att").unwrap(),
        side: Side::Attacker,
        points: 10,
        retained_until: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
        voided_by: None,
    }
}

fn sk(ms: i64) -> String {
    page_sort_key(ms, "00000000-0000-0000-0000-000000000000")
}

#[test]
fn a_page_round_trips_newest_first_with_its_retention() {
    let war = WarId::new("w").unwrap();
    let entries = [entry("e1", 1, "p1"), entry("e2", 2, "p2")];
    let item = page_item(&war, 3, 5, "00000000-0000-0000-0000-000000000000", &entries).unwrap();
    assert_eq!(string(&item, "pk").unwrap(), "LEDGER#w#3");
    assert_eq!(number(&item, "expires_at"), 1_790_000_000);
    let read = page_entries(&item).unwrap();
    assert_eq!(read, vec![entries[1].clone(), entries[0].clone()]);
}

#[test]
fn cursors_must_be_well_formed() {
    let good = Bound { sk: sk(7), skip: 2 };
    assert_eq!(Bound::parse(&good.encode()).unwrap(), good);
    for bad in ["", "x|1", "0000000000007#zz|1", &format!("{}|-1", sk(7))] {
        assert!(Bound::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn merging_stops_at_the_frontier_of_a_shard_with_more_pages() {
    let filter = LedgerFilter::default();
    // Shard 0 has more pages below 50; shard 1 is complete with pages at 60 and 10.
    let reads = vec![
        ShardRead {
            pages: vec![
                (sk(90), vec![entry("a", 9, "p")]),
                (sk(50), vec![entry("b", 5, "p")]),
            ],
            more: true,
        },
        ShardRead {
            pages: vec![
                (sk(60), vec![entry("c", 6, "p")]),
                (sk(10), vec![entry("d", 1, "p")]),
            ],
            more: false,
        },
    ];
    let mut items = Vec::new();
    let Merged::Next(next) = merge(reads, None, &filter, 10, &mut items) else {
        panic!("the round must stop at the frontier");
    };
    let ids: Vec<&str> = items.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        ids,
        ["a", "c", "b"],
        "page 10 waits for shard 0's older pages"
    );
    assert_eq!(next.sk, sk(50));
}

#[test]
fn a_full_page_resumes_inside_the_page_it_stopped_in_and_filters_apply() {
    let reads = || {
        vec![ShardRead {
            pages: vec![(
                sk(90),
                vec![
                    entry("a", 3, "p1"),
                    entry("b", 2, "p2"),
                    entry("c", 1, "p1"),
                ],
            )],
            more: false,
        }]
    };
    let only_p1 = LedgerFilter {
        player_id: Some(PlayerId::new("p1").unwrap()),
        clan_id: None,
    };
    let mut items = Vec::new();
    let Merged::Full(next) = merge(reads(), None, &only_p1, 1, &mut items) else {
        panic!("one entry fills the page");
    };
    assert_eq!(items[0].event_id, "a");
    let mut rest = Vec::new();
    assert!(matches!(
        merge(reads(), Some(&next), &only_p1, 1, &mut rest),
        Merged::Done
    ));
    assert_eq!(rest[0].event_id, "c");
}
