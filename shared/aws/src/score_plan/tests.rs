//! Unit tests of the score write plan: judging deltas and packing them into chunks and waves.

use super::*;
use chrono::{DateTime, Duration, Utc};
use clanwar_domain::ports::PlayerPoints;

fn t0() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn kill(id: &str, killer: &str, victim: &str, minute: i64) -> ScoreDelta {
    ScoreDelta {
        war_id: WarId::new("w").unwrap(),
        dedupe_id: id.into(),
        shards: 4,
        players: vec![PlayerPoints {
            player_id: PlayerId::new(killer).unwrap(),
            clan_id: ClanId::new("att").unwrap(),
            points: 10,
        }],
        clans: vec![(ClanId::new("att").unwrap(), 10)],
        battle_kill: Some((BattleId::new("b").unwrap(), Side::Attacker)),
        farm_guard: Some(FarmGuard {
            killer_id: PlayerId::new(killer).unwrap(),
            victim_id: PlayerId::new(victim).unwrap(),
            occurred_at: t0() + Duration::minutes(minute),
            window_s: 300,
        }),
        ledger: None,
    }
}

fn writer(war: &WarId) -> ItemWriter<'_> {
    ItemWriter {
        table: "t",
        war,
        shards: 4,
        expires_at: 0,
        recorded_ms: 0,
    }
}

#[test]
fn a_pair_scores_once_per_window_within_a_batch_and_against_the_table() {
    let deltas = [
        kill("k1", "a", "v", 0),
        kill("k2", "a", "v", 4),
        kill("k3", "a", "v", 5),
    ];
    let refs: Vec<&ScoreDelta> = deltas.iter().collect();
    use Judgement::*;
    assert_eq!(judge(&refs, &Known::default()), [Scores, Farmed, Scores]);

    let mut known = Known::default();
    known.pairs.insert(
        (PlayerId::new("a").unwrap(), PlayerId::new("v").unwrap()),
        PairState {
            last_at_ms: (t0() - Duration::minutes(2)).timestamp_millis(),
            ids: HashSet::from(["k0".to_owned()]),
        },
    );
    // k1 is 2 min after the stored kill; k2 is 6 min after it; k3 only 1 min after k2.
    assert_eq!(judge(&refs, &known), [Farmed, Scores, Farmed]);
}

#[test]
fn replays_are_duplicates_whether_they_scored_or_were_farmed() {
    let deltas = [kill("k1", "a", "v", 0), kill("k2", "a", "v", 1)];
    let refs: Vec<&ScoreDelta> = deltas.iter().collect();
    let mut known = Known::default();
    known.markers.insert("k2".into());
    known.pairs.insert(
        (PlayerId::new("a").unwrap(), PlayerId::new("v").unwrap()),
        PairState {
            last_at_ms: t0().timestamp_millis(),
            ids: HashSet::from(["k1".to_owned()]),
        },
    );
    assert_eq!(
        judge(&refs, &known),
        [Judgement::Duplicate, Judgement::Duplicate]
    );
}

#[test]
fn one_id_twice_in_a_batch_counts_once() {
    let deltas = [kill("k1", "a", "v", 0), kill("k1", "a", "v", 0)];
    let refs: Vec<&ScoreDelta> = deltas.iter().collect();
    assert_eq!(
        judge(&refs, &Known::default()),
        [Judgement::Scores, Judgement::Duplicate]
    );
}

#[test]
fn a_batch_of_distinct_kills_needs_one_item_per_kill_plus_its_distinct_keys() {
    let war = WarId::new("w").unwrap();
    // 500 kills by 50 killers on distinct victims, one battle.
    let deltas: Vec<ScoreDelta> = (0..500)
        .map(|i| {
            kill(
                &format!("e{i}"),
                &format!("k{}", i % 50),
                &format!("v{i}"),
                0,
            )
        })
        .collect();
    let positions: Vec<usize> = (0..deltas.len()).collect();
    let judged = vec![Judgement::Scores; deltas.len()];
    let waves = writer(&war).plan(&deltas, &positions, &judged, 0).unwrap();
    assert_eq!(waves.len(), 2, "the shard count (4) caps a wave");
    let chunks: Vec<&Chunk> = waves.iter().flatten().collect();
    let items: usize = chunks.iter().map(|c| c.items.len()).sum();
    // 500 pair records + 50 players (one more where a player's kills straddle two
    // chunks) + per chunk one clan shard and one battle item.
    let base = 500 + 50 + 2 * chunks.len();
    assert!(
        (base..base + chunks.len()).contains(&items),
        "{items} items"
    );
    assert!(chunks
        .iter()
        .all(|c| c.items.len() <= MAX_TRANSACTION_ITEMS));
    let decided: BTreeSet<usize> = chunks.iter().flat_map(|c| c.deltas.clone()).collect();
    assert_eq!(
        decided.len(),
        500,
        "every delta is decided by exactly one chunk"
    );

    let sixteen = ItemWriter {
        shards: 16,
        ..writer(&war)
    };
    let waves = sixteen.plan(&deltas, &positions, &judged, 0).unwrap();
    assert_eq!(
        waves.len(),
        1,
        "with 16 shards a 500-event batch is one round trip"
    );
}

#[test]
fn chunks_of_one_wave_share_no_player_and_use_distinct_shards() {
    let war = WarId::new("w").unwrap();
    // One player with more kills than a transaction holds, and a few others.
    let mut deltas: Vec<ScoreDelta> = (0..150)
        .map(|i| kill(&format!("a{i}"), "hero", &format!("v{i}"), 0))
        .collect();
    deltas.extend((0..30).map(|i| kill(&format!("b{i}"), &format!("p{i}"), "v", 0)));
    let positions: Vec<usize> = (0..deltas.len()).collect();
    let judged = vec![Judgement::Scores; deltas.len()];
    let waves = writer(&war).plan(&deltas, &positions, &judged, 3).unwrap();
    assert!(waves.len() >= 2, "the hero's second chunk must wait");
    for wave in &waves {
        let mut players = HashSet::new();
        let mut shards = HashSet::new();
        for chunk in wave {
            for d in &chunk.deltas {
                let p = deltas[*d].players[0].player_id.clone();
                let owned_here = wave
                    .iter()
                    .filter(|c| {
                        c.deltas
                            .iter()
                            .any(|x| deltas[*x].players[0].player_id == p)
                    })
                    .count();
                assert_eq!(owned_here, 1, "{p} is in two chunks of one wave");
                players.insert(p);
            }
            let key = chunk.items[0].update().unwrap().key()["pk"]
                .as_s()
                .unwrap()
                .clone();
            assert!(shards.insert(key), "two chunks of one wave on one shard");
            assert_eq!(chunk.roles[0], Role::Seal);
        }
    }
}
