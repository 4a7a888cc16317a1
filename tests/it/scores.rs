//! The score pipeline at the seed's load: AWS call budgets of batches and score reads (counted
//! by the functions themselves), exactly-once under concurrent callers, and the sealed final
//! tally under batches racing the end of the war.
//!
//! The store-level tests here run on the moto stack and again on AWS's DynamoDB Local, which
//! really runs transactions concurrently (and cancels them with `TransactionConflict`).

use chrono::{DateTime, Duration as Span, Utc};
use clanwar_aws::{DynamoDbStore, TableConfig};
use clanwar_domain::ids::{BattleId, ClanId, PlayerId, WarId};
use clanwar_domain::ports::{ApplyOutcome, FarmGuard, PlayerPoints, ScoreBoard, ScoreDelta};
use clanwar_domain::war::Side;
use clanwar_integration_tests::wait::{until, SLACK};
use clanwar_integration_tests::{
    aws_config, deadline, declaration, register_territory, unique_tag, Api, Resources,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The budgets: sequential AWS round trips per request.
const BATCH_ROUND_TRIPS: u32 = 4;
const SCOREBOARD_ROUND_TRIPS: u32 = 2;
const PLAYER_ROUND_TRIPS: u32 = 1;
const WAR_ROUND_TRIPS: u32 = 2;

fn kill(id: &str, at: DateTime<Utc>, killer: (&str, &str), victim: (&str, &str)) -> Value {
    json!({ "type": "kill", "event_id": id, "occurred_at": at, "killer_id": killer.0, "killer_clan_id": killer.1,
            "killer_level": 10, "victim_id": victim.0, "victim_clan_id": victim.1, "victim_level": 10 })
}

/// Killers and victims on the roster of each clan of these tests (SPEC §5: an event counts only
/// for players on the roster of the clan it names): `<clan>-k0`..`-k24`, `<clan>-v0`..`-v399`.
const KILLERS: usize = 25;
const VICTIMS: usize = 400;

/// `n` kills by the 25 killers of `by` on the victims of `on`, pairs `first..first + n` of the
/// `KILLERS × VICTIMS` pairs (distinct ranges never repeat a pair: none farmed).
fn kills(tag: &str, first: usize, n: usize, at: DateTime<Utc>, by: &str, on: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let pair = (first + i) % (KILLERS * VICTIMS);
            kill(
                &format!("{tag}-{i}"),
                at,
                (&format!("{by}-k{}", pair % KILLERS), by),
                (&format!("{on}-v{}", pair / KILLERS), on),
            )
        })
        .collect()
}

/// Registers a clan whose roster has the killers and victims [`kills`] names.
async fn register_roster_clan(api: &Api, id: &str) {
    let members: Vec<String> = (0..KILLERS)
        .map(|i| format!("{id}-k{i}"))
        .chain((0..VICTIMS).map(|i| format!("{id}-v{i}")))
        .collect();
    let body = json!({ "name": format!("Clan {id}"), "leader_id": format!("{id}-leader"),
                       "officer_ids": [format!("{id}-officer")], "member_ids": members,
                       "level": 20, "rating": 1000 });
    let (status, body) = api.put(&format!("/clans/{id}"), None, body).await;
    assert_eq!(status, 200, "PUT /clans/{id}: {body}");
}

/// A war between two new clans, just declared: `(war, attacker, defender)`.
async fn declared_war(
    api: &Api,
    tag: &str,
    active_s: u64,
    ending_s: u64,
) -> (Value, String, String) {
    let (att, def) = (format!("{tag}-att"), format!("{tag}-def"));
    register_roster_clan(api, &att).await;
    register_roster_clan(api, &def).await;
    let land = format!("{tag}-land");
    register_territory(api, &land, &def, 0.0).await;
    let (status, war) = api
        .post(
            "/wars",
            Some(&format!("{att}-leader")),
            declaration(&att, &def, &[land], active_s, ending_s),
        )
        .await;
    assert_eq!(status, 201, "{war}");
    (war, att, def)
}

/// A war between two new clans, already ACTIVE: `(war, attacker, defender)`.
async fn active_war(api: &Api, tag: &str, active_s: u64, ending_s: u64) -> (Value, String, String) {
    let (war, att, def) = declared_war(api, tag, active_s, ending_s).await;
    let id = war["war_id"].as_str().unwrap().to_owned();
    let war = api
        .wait_for_status(&id, "ACTIVE", until(deadline(&war, "active_at")) + SLACK)
        .await;
    (war, att, def)
}

#[tokio::test]
async fn score_batches_and_reads_stay_within_their_aws_call_budgets() {
    let api = Api::local();
    let t = unique_tag("budget");
    let (war, att, def) = active_war(&api, &t, 600, 2).await;
    let id = war["war_id"].as_str().unwrap();
    let events = format!("/wars/{id}/events");
    let now = Utc::now();
    for (first, n) in [(0, 1), (1, 100), (101, 500)] {
        let batch = kills(&format!("{t}-{n}"), first, n, now, &att, &def);
        let ((status, body), calls) = api.post_counted(&events, None, json!(batch)).await;
        assert_eq!(
            (status, body["accepted"].as_u64()),
            (200, Some(n as u64)),
            "{body}"
        );
        calls.within(&format!("POST events, {n} new kills"), BATCH_ROUND_TRIPS);
        // The writes grow with the keys touched (one transaction per 100 items), not per event.
        assert!(
            calls.calls as usize <= 4 + (2 * n + 25).div_ceil(90),
            "{n} kills took {calls:?}"
        );
        let ((status, body), calls) = api.post_counted(&events, None, json!(batch)).await;
        assert_eq!(
            (status, body["duplicates"].as_u64()),
            (200, Some(n as u64)),
            "{body}"
        );
        calls.within(&format!("POST events, the {n} replayed"), BATCH_ROUND_TRIPS);
    }
    // A batch mixing new kills, replays and kills farmed against the table's pair records.
    let mut mixed = kills(&format!("{t}-100"), 1, 50, now, &att, &def);
    let fresh = kills(&format!("{t}-mix"), 601, 50, now, &att, &def);
    mixed.extend(fresh);
    let farmed: Vec<Value> = kills(&format!("{t}-500"), 101, 50, now, &att, &def)
        .into_iter()
        .enumerate()
        .map(|(i, mut k)| {
            k["event_id"] = json!(format!("{t}-farm-{i}"));
            k
        })
        .collect();
    mixed.extend(farmed);
    let ((status, body), calls) = api.post_counted(&events, None, json!(mixed)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["duplicates"].as_u64()),
        (Some(50), Some(50)),
        "{body}"
    );
    let farmed = body["rejected"].as_array().unwrap();
    assert_eq!(farmed.len(), 50);
    assert!(farmed.iter().all(|r| r["code"] == "ANTI_FARMING"), "{body}");
    calls.within(
        "POST events, 50 new + 50 replayed + 50 farmed",
        BATCH_ROUND_TRIPS,
    );

    let ((status, board), calls) = api.get_counted(&format!("/wars/{id}/scoreboard")).await;
    assert_eq!(status, 200);
    assert_eq!(
        board["sides"]["attacker"]["score"],
        json!(10 * (1 + 100 + 500 + 50))
    );
    calls.within("GET scoreboard", SCOREBOARD_ROUND_TRIPS);
    let ((status, player), calls) = api
        .get_counted(&format!("/wars/{id}/players/{att}-k0"))
        .await;
    assert_eq!(status, 200, "{player}");
    calls.within("GET player", PLAYER_ROUND_TRIPS);
    let ((status, _), calls) = api.get_counted(&format!("/wars/{id}")).await;
    assert_eq!(status, 200);
    calls.within("GET war", WAR_ROUND_TRIPS);
}

/// Side totals as the API shows them after the end: the war, the scoreboard's sides, its clans
/// per side and its players per side.
async fn final_views(api: &Api, id: &str, att: &str) -> [(i64, i64); 5] {
    let (_, war) = api.get(&format!("/wars/{id}")).await;
    let (_, board) = api.get(&format!("/wars/{id}/scoreboard?limit=100")).await;
    let score = |v: &Value| v.as_i64().unwrap_or(i64::MIN);
    let per_side = |rows: &Value, clan: &dyn Fn(&Value) -> bool, points: &str| {
        rows.as_array().unwrap().iter().fold((0, 0), |(a, d), row| {
            if clan(row) {
                (a + score(&row[points]), d)
            } else {
                (a, d + score(&row[points]))
            }
        })
    };
    let players = &board["top_players"];
    assert!(
        players.as_array().unwrap().len() < 100,
        "every player is listed"
    );
    [
        (
            score(&war["sides"]["attacker"]["score"]),
            score(&war["sides"]["defender"]["score"]),
        ),
        (
            score(&board["sides"]["attacker"]["score"]),
            score(&board["sides"]["defender"]["score"]),
        ),
        per_side(&board["clans"], &|r| r["side"] == "attacker", "score"),
        per_side(players, &|r| r["clan_id"] == att, "points"),
        // The ledger: an entry exactly for each effect whose points landed.
        per_side(
            &json!(whole_ledger(api, id, "", 100).await),
            &|r| r["side"] == "attacker",
            "points",
        ),
    ]
}

/// Posts batches of 25 kills (13 by the attackers, 12 by the defenders: every accepted batch
/// scores for both sides, however few a loaded machine lets through) from four tasks, from the
/// declaration until the war has ENDED; returns the points the answers said were accepted, per
/// side. Every kill happened inside ACTIVE: those sent during ENDING are late reports, which
/// count until the tally seals. (Waiting for ACTIVE first would make the test depend on how
/// late a loaded machine's timers fire.)
async fn pound(api: &Api, war: &Value, att: &str, def: &str) -> (i64, i64) {
    let id = war["war_id"].as_str().unwrap();
    let (active_at, ending_at) = (deadline(war, "active_at"), deadline(war, "ending_at"));
    let posters = (0..4).map(|poster| {
        let (api, id, att, def) = (api.clone(), id.to_owned(), att.to_owned(), def.to_owned());
        tokio::spawn(async move {
            let (mut points, mut round) = ((0_i64, 0_i64), 0);
            loop {
                let at = Utc::now().clamp(active_at, ending_at - Span::milliseconds(200));
                // Each direction walks the pairs 100 at a time (25 per poster); a pair comes
                // round again only after 100 rounds (then ANTI_FARMING, not counted either).
                let first = round * 100 + poster * 25;
                let tag = format!("{id}-{poster}-{round}");
                let by_attackers = kills(&format!("{tag}-a"), first, 13, at, &att, &def);
                let by_defenders = kills(&format!("{tag}-d"), first, 12, at, &def, &att);
                let batch: Vec<Value> = by_attackers.iter().chain(&by_defenders).cloned().collect();
                let (status, body) = api
                    .post(&format!("/wars/{id}/events"), None, json!(batch))
                    .await;
                assert_eq!(
                    status, 200,
                    "a batch racing the end is answered, not failed: {body}"
                );
                let mut refused = std::collections::HashSet::new();
                for r in body["rejected"].as_array().unwrap() {
                    let code = r["code"].as_str().unwrap();
                    assert!(
                        ["SCORING_CLOSED", "WAR_NOT_ACCEPTING_EVENTS", "ANTI_FARMING"]
                            .contains(&code),
                        "unexpected rejection {r}"
                    );
                    refused.insert(r["event_id"].as_str().unwrap().to_owned());
                }
                let landed = |events: &[Value]| {
                    events
                        .iter()
                        .filter(|e| !refused.contains(e["event_id"].as_str().unwrap()))
                        .count() as i64
                };
                let (by_att, by_def) = (landed(&by_attackers), landed(&by_defenders));
                let accepted = body["accepted"].as_i64().unwrap();
                assert_eq!(
                    by_att + by_def,
                    accepted,
                    "accepted = sent - refused: {body}"
                );
                points.0 += 10 * by_att;
                points.1 += 10 * by_def;
                round += 1;
                if accepted == 0 {
                    let (_, war) = api.get(&format!("/wars/{id}")).await;
                    if war["status"] == "ENDED" {
                        return points;
                    }
                    // Not ACTIVE yet: no need to hammer the stack meanwhile.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        })
    });
    let mut total = (0, 0);
    for poster in futures_util::future::join_all(posters).await {
        let (a, d) = poster.expect("poster");
        total = (total.0 + a, total.1 + d);
    }
    total
}

#[tokio::test]
async fn batches_racing_the_end_of_the_war_are_counted_everywhere_or_refused() {
    let api = Api::local();
    // Two wars at once, each pounded by four callers across ACTIVE → ENDING → ENDED. ACTIVE
    // is long enough that timers firing late on a loaded machine still leave time to score.
    let wars = (0..2).map(|i| {
        let api = api.clone();
        async move {
            let t = unique_tag(&format!("seal{i}"));
            let (war, att, def) = declared_war(&api, &t, 20, 5).await;
            let id = war["war_id"].as_str().unwrap().to_owned();
            let accepted = pound(&api, &war, &att, &def).await;
            let views = final_views(&api, &id, &att).await;
            (id, accepted, views)
        }
    });
    for (id, accepted, views) in futures_util::future::join_all(wars).await {
        let [war, board, clans, players, ledger] = views;
        assert!(accepted.0 > 0 && accepted.1 > 0, "war {id} scored nothing");
        assert_eq!(
            war, accepted,
            "war {id}: side scores vs. what the answers accepted"
        );
        assert_eq!(board, war, "war {id}: scoreboard sides");
        assert_eq!(clans, war, "war {id}: clan scores per side");
        assert_eq!(players, war, "war {id}: player points per side");
        assert_eq!(ledger, war, "war {id}: ledger entries per side");
    }
}

/// Every page of the war's ledger (`limit` per page), in order.
async fn whole_ledger(api: &Api, id: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    loop {
        let mut path = format!("/wars/{id}/ledger?limit={limit}{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", urlencoding(c)));
        }
        let (status, page) = api.get(&path).await;
        assert_eq!(status, 200, "{path}: {page}");
        let items = page["entries"].as_array().unwrap();
        assert!(items.len() <= limit);
        entries.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            // A cursor seen before would page forever (a busy war has thousands of entries).
            Some(next) => {
                assert!(
                    seen.insert(next.to_owned()),
                    "the ledger pages come round again"
                );
                cursor = Some(next.to_owned());
            }
            None => return entries,
        }
    }
}

/// Percent-encodes a cursor for a query string.
fn urlencoding(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_played_wars_ledger_lists_every_accepted_effect_once_and_adds_up_to_its_scores() {
    let api = Api::local();
    let t = unique_tag("ledger");
    // A long ACTIVE that an operator closes once the batches are in: however slow the machine,
    // they land inside the window.
    let (war, att, def) = active_war(&api, &t, 600, 2).await;
    let id = war["war_id"].as_str().unwrap().to_owned();
    let land = war["territory_ids"][0].as_str().unwrap().to_owned();
    let now = Utc::now();
    let events = format!("/wars/{id}/events");
    let mut batch = kills(&format!("{t}-a"), 0, 3, now, &att, &def);
    batch.extend(kills(&format!("{t}-d"), 0, 2, now, &def, &att));
    batch.push(
        json!({ "type": "assist", "event_id": format!("{t}-s1"), "occurred_at": now,
                       "player_id": format!("{att}-k0"), "clan_id": att }),
    );
    // Same side: rejected, so not in the ledger.
    batch.push(kill(
        &format!("{t}-bad"),
        now,
        (&format!("{att}-k9"), &att),
        ("x", &att),
    ));
    let (status, body) = api.post(&events, None, json!(batch)).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(6)),
        "{body}"
    );
    // A replay and a capture in a second batch.
    let second = json!([
        batch[0].clone(),
        { "type": "capture", "event_id": format!("{t}-c1"), "occurred_at": Utc::now(),
          "territory_id": land, "clan_id": att },
    ]);
    let (status, body) = api.post(&events, None, second).await;
    assert_eq!(
        (
            status,
            body["accepted"].as_u64(),
            body["duplicates"].as_u64()
        ),
        (200, Some(1), Some(1)),
        "{body}"
    );

    let ((status, page), calls) = api.get_counted(&format!("/wars/{id}/ledger")).await;
    assert_eq!(status, 200, "{page}");
    calls.within("GET ledger", 2);
    let all = page["entries"].as_array().unwrap().clone();
    assert_eq!(all.len(), 7, "{page}");
    assert_eq!(
        all[0]["event_id"],
        json!(format!("{t}-c1")),
        "newest first: {page}"
    );
    assert_eq!(all[0]["kind"], "capture");
    assert!(all
        .iter()
        .all(|e| e["event_id"] != json!(format!("{t}-bad"))));
    // Paging one by one walks the same entries in the same order.
    assert_eq!(whole_ledger(&api, &id, "", 1).await, all);
    let k0 = format!("{att}-k0");
    let mine = whole_ledger(&api, &id, &format!("&player_id={k0}"), 50).await;
    let kinds: Vec<&str> = mine.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 2, "{mine:?}");
    assert!(
        kinds.contains(&"kill") && kinds.contains(&"assist"),
        "{mine:?}"
    );
    let theirs = whole_ledger(&api, &id, &format!("&clan_id={def}"), 50).await;
    assert_eq!(theirs.len(), 2);
    let (status, err) = api.get(&format!("/wars/{id}/ledger?limit=0")).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (400, &json!("INVALID_REQUEST"))
    );
    let (status, err) = api.get(&format!("/wars/{id}/ledger?cursor=nope")).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (400, &json!("INVALID_REQUEST"))
    );

    // After the war: the ledger adds up to the final scores, per side, clan and player.
    let (status, answer) = api
        .post_as_operator(
            &format!("/admin/wars/{id}/end"),
            "ops-ledger",
            json!({ "reason": "the batches are in" }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let ended = &answer["war"];
    assert_eq!(ended["status"], "ENDED", "{ended}");
    let ledger = whole_ledger(&api, &id, "", 100).await;
    let points = |e: &Value| e["points"].as_i64().unwrap();
    let sum =
        |keep: &dyn Fn(&Value) -> bool| ledger.iter().filter(|e| keep(e)).map(points).sum::<i64>();
    for side in ["attacker", "defender"] {
        assert_eq!(
            sum(&|e| e["side"] == side),
            ended["sides"][side]["score"].as_i64().unwrap(),
            "{side}: {ended}"
        );
    }
    let (_, board) = api.get(&format!("/wars/{id}/scoreboard?limit=100")).await;
    for clan in board["clans"].as_array().unwrap() {
        assert_eq!(
            sum(&|e| e["clan_id"] == clan["clan_id"]),
            clan["score"].as_i64().unwrap()
        );
    }
    for player in board["top_players"].as_array().unwrap() {
        assert_eq!(
            sum(&|e| e["player_id"] == player["player_id"]),
            player["points"].as_i64().unwrap()
        );
    }
    let retained = ledger[0]["retained_until"].as_str().unwrap();
    let retained: DateTime<Utc> = retained.parse().unwrap();
    // The TTL is kept in whole seconds.
    assert_eq!(
        retained.timestamp(),
        (deadline(&war, "ended_at") + Span::days(90)).timestamp()
    );
}

// ---- the store itself: moto stack, then DynamoDB Local ------------------------------------

/// Counter shards of the made-up wars of these tests.
const SHARDS: u32 = 8;

async fn store() -> DynamoDbStore {
    let client = aws_sdk_dynamodb::Client::new(&aws_config().await);
    DynamoDbStore::new(
        client,
        TableConfig {
            table: Resources::load().name("WarTable"),
        },
    )
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Span::seconds(seconds)
}

/// A kill of `victim` by `killer` (of `clan`) worth 10, in battle `b1`.
fn kill_delta(
    war: &WarId,
    id: &str,
    killer: &str,
    victim: &str,
    clan: &ClanId,
    s: i64,
) -> ScoreDelta {
    let killer_id = PlayerId::new(killer).unwrap();
    ScoreDelta {
        war_id: war.clone(),
        dedupe_id: id.to_owned(),
        shards: SHARDS,
        players: vec![PlayerPoints {
            player_id: killer_id.clone(),
            clan_id: clan.clone(),
            points: 10,
        }],
        clans: vec![(clan.clone(), 10)],
        battle_kill: Some((BattleId::new("b1").unwrap(), Side::Attacker)),
        farm_guard: Some(FarmGuard {
            killer_id,
            victim_id: PlayerId::new(victim).unwrap(),
            occurred_at: at(s),
            window_s: 300,
        }),
        ledger: None,
    }
}

#[tokio::test]
async fn one_batch_posted_by_eight_callers_at_once_after_a_crash_half_way_counts_once() {
    let store = Arc::new(store().await);
    let tag = unique_tag("eight");
    let war = WarId::new(format!("{tag}-war")).unwrap();
    let clan = ClanId::new(format!("{tag}-red")).unwrap();
    // 500 kills by 50 killers on distinct victims, and every 50th pair twice (farmed).
    let mut batch: Vec<ScoreDelta> = (0..500)
        .map(|i| {
            kill_delta(
                &war,
                &format!("k{i}"),
                &format!("p{}", i % 50),
                &format!("v{i}"),
                &clan,
                0,
            )
        })
        .collect();
    batch.extend((0..10).map(|i| {
        kill_delta(
            &war,
            &format!("again{i}"),
            &format!("p{}", (i * 50) % 50),
            &format!("v{}", i * 50),
            &clan,
            60,
        )
    }));
    // A caller that crashed half way through: the first half is applied, the rest is not.
    let half = store.apply_batch(batch[..250].to_vec()).await.unwrap();
    assert!(half.iter().all(|o| *o == ApplyOutcome::Applied));
    let callers = (0..8).map(|_| {
        let (store, batch) = (store.clone(), batch.clone());
        tokio::spawn(async move { store.apply_batch(batch).await })
    });
    let mut applied = vec![0; batch.len()];
    for outcome in futures_util::future::join_all(callers).await {
        let outcomes = outcome
            .expect("caller")
            .expect("a batch is applied or retried, never lost");
        for (i, o) in outcomes.iter().enumerate() {
            if *o == ApplyOutcome::Applied {
                applied[i] += 1;
            }
            if i >= 500 {
                assert_ne!(*o, ApplyOutcome::Applied, "a farmed kill scored");
            }
        }
    }
    assert!(
        applied[..250].iter().all(|n| *n == 0),
        "the half applied before the crash is not applied again"
    );
    assert!(
        applied[250..500].iter().all(|n| *n == 1),
        "each other kill applied by exactly one caller"
    );
    let totals = store.clan_totals(&war, SHARDS).await.unwrap();
    assert_eq!(totals[&clan], 5_000);
    let players = store.all_players(&war, SHARDS).await.unwrap();
    assert_eq!(players.len(), 50);
    assert!(
        players.iter().all(|p| p.points == 100),
        "10 kills of 10 points each"
    );
    let kills = store
        .battle_kills(&war, SHARDS, &BattleId::new("b1").unwrap())
        .await
        .unwrap();
    assert_eq!(kills.attacker, 500);
    // A replay afterwards: every one a duplicate, nothing changes.
    let replay = store.apply_batch(batch).await.unwrap();
    assert!(replay.iter().all(|o| *o == ApplyOutcome::Duplicate));
    assert_eq!(store.clan_totals(&war, SHARDS).await.unwrap()[&clan], 5_000);
}

#[tokio::test]
async fn batches_racing_the_seal_are_in_the_sealed_totals_or_refused_whole() {
    let store = Arc::new(store().await);
    let tag = unique_tag("seal");
    let war = WarId::new(format!("{tag}-war")).unwrap();
    let clan = ClanId::new(format!("{tag}-red")).unwrap();
    let sealed = Arc::new(AtomicBool::new(false));
    let writers = (0..4).map(|w| {
        let (store, war, clan, sealed) = (store.clone(), war.clone(), clan.clone(), sealed.clone());
        tokio::spawn(async move {
            let mut applied = 0_i64;
            let mut after_seal = 0;
            for round in 0.. {
                let seal_returned = sealed.load(Ordering::SeqCst);
                let batch: Vec<ScoreDelta> = (0..25)
                    .map(|i| {
                        let id = format!("w{w}-r{round}-{i}");
                        kill_delta(&war, &id, &format!("p{w}-{i}"), &id, &clan, 0)
                    })
                    .collect();
                let outcomes = store.apply_batch(batch).await.expect("applied or refused");
                applied += 10
                    * outcomes
                        .iter()
                        .filter(|o| **o == ApplyOutcome::Applied)
                        .count() as i64;
                // A batch started after the seal returned is refused whole.
                if seal_returned {
                    after_seal += 1;
                }
                if seal_returned {
                    assert!(
                        outcomes.iter().all(|o| *o == ApplyOutcome::Sealed),
                        "{outcomes:?}"
                    );
                }
                if after_seal == 3 {
                    return applied;
                }
            }
            unreachable!()
        })
    });
    let writers: Vec<_> = writers.collect();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let totals = store.seal(&war, SHARDS).await.unwrap();
    sealed.store(true, Ordering::SeqCst);
    let mut applied = 0;
    for writer in writers {
        applied += writer.await.expect("writer");
    }
    assert!(applied > 0, "some batches landed before the seal");
    assert_eq!(
        totals.get(&clan).copied().unwrap_or(0),
        applied,
        "sealed totals = what was accepted"
    );
    assert_eq!(
        store.clan_totals(&war, SHARDS).await.unwrap(),
        totals,
        "nothing landed after the seal"
    );
    let players: i64 = store
        .all_players(&war, SHARDS)
        .await
        .unwrap()
        .iter()
        .map(|p| p.points)
        .sum();
    assert_eq!(
        players, applied,
        "player points agree with the sealed totals"
    );
    assert_eq!(
        store.seal(&war, SHARDS).await.unwrap(),
        totals,
        "sealing again returns the same"
    );
}

/// Issue 13, queue semantics: in one mixed batch of the ingestion queue (undecodable messages,
/// valid ones and one whose event a rule refuses), each valid message is applied exactly once,
/// the judged ones are consumed (never retried, never dead-lettered) and only the undecodable
/// ones reach the DLQ after their receives; the refused event is counted as rejected.
#[tokio::test]
async fn a_poison_message_sends_only_itself_to_the_dlq_and_judged_messages_are_consumed_once() {
    let api = Api::local();
    let resources = Resources::load();
    let t = unique_tag("qmix");
    let (war, att, def) = active_war(&api, &t, 600, 2).await;
    let war_id = war["war_id"].as_str().unwrap().to_owned();
    let now = Utc::now();
    let message = |events: Vec<Value>| json!({ "war_id": war_id, "events": events }).to_string();
    let valid: Vec<String> = (0..4)
        .map(|i| {
            message(vec![kill(
                &format!("{t}-v{i}"),
                now,
                (&format!("{att}-k{i}"), &att),
                (&format!("{def}-v{i}"), &def),
            )])
        })
        .collect();
    // Well-formed events a rule refuses: judged, so consumed. A clan not in the war
    // (NOT_A_PARTICIPANT), and a defender credited to the attacker (NOT_A_MEMBER).
    let refused = [
        message(vec![kill(
            &format!("{t}-r0"),
            now,
            (&format!("{t}-stranger-k0"), &format!("{t}-stranger")),
            (&format!("{def}-v9"), &def),
        )]),
        message(vec![kill(
            &format!("{t}-r1"),
            now,
            (&format!("{def}-k0"), &att),
            (&format!("{def}-v8"), &def),
        )]),
    ];
    let poison: Vec<String> = (0..6).map(|i| format!("{{not json {t}-p{i}")).collect();
    // Interleaved, in one SendMessageBatch of 10 and one of 1, so batches mix them.
    let mut bodies = Vec::new();
    for (i, p) in poison.iter().enumerate() {
        bodies.push(p.clone());
        if let Some(v) = valid.get(i) {
            bodies.push(v.clone());
        }
    }
    bodies.extend(refused.iter().cloned());
    let sqs = aws_sdk_sqs::Client::new(&aws_config().await);
    let queue = resources.queue_url("ScoreEventsQueue");
    for chunk in bodies.chunks(10) {
        let mut send = sqs.send_message_batch().queue_url(&queue);
        for (i, body) in chunk.iter().enumerate() {
            send = send.entries(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(body)
                    .build()
                    .unwrap(),
            );
        }
        let out = send.send().await.unwrap();
        assert!(out.failed().is_empty(), "{:?}", out.failed());
    }

    // Every undecodable message reaches the DLQ (after maxReceiveCount receives), and nothing
    // else of this test does. Other tests' DLQ messages are made visible again at once.
    let dlq = resources.queue_url("ScoreEventsDlq");
    let mut dead: Vec<String> = Vec::new();
    let give_up = std::time::Instant::now() + SLACK;
    while dead.len() < poison.len() && std::time::Instant::now() < give_up {
        let out = sqs
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            let (body, handle) = (m.body().unwrap_or_default(), m.receipt_handle().unwrap());
            if body.contains(&t) {
                dead.push(body.to_owned());
                sqs.delete_message()
                    .queue_url(&dlq)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .unwrap();
            } else {
                // Another test's message: visible again after a moment (not at once, or the
                // next receive would return the same ten messages).
                sqs.change_message_visibility()
                    .queue_url(&dlq)
                    .receipt_handle(handle)
                    .visibility_timeout(2)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    dead.sort();
    assert_eq!(
        dead, poison,
        "only the undecodable messages are dead-lettered"
    );

    // The board: four kills of 10 points, once each; the refused kills counted nowhere.
    let (_, board) = api.get(&format!("/wars/{war_id}/scoreboard")).await;
    assert_eq!(board["sides"]["attacker"]["score"], 40, "{board}");
    assert_eq!(board["sides"]["defender"]["score"], 0, "{board}");

    // Each well-formed message was handled exactly once (the function logs one line per
    // applied message): 4 accepted, 2 rejected, none handled again.
    let applied: Vec<Value> = resources
        .log_json("ScoreCalculatorFunction")
        .into_iter()
        .filter(|line| {
            line["fields"]["message"] == "queue batch applied"
                && line["fields"]["war_id"] == war_id.as_str()
        })
        .collect();
    let count = |key: &str| -> u64 {
        applied
            .iter()
            .map(|l| l["fields"][key].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(
        (
            applied.len(),
            count("accepted"),
            count("duplicates"),
            count("rejected")
        ),
        (6, 4, 0, 2),
        "each judged message handled once: {applied:?}"
    );
    // The same refusal through the HTTP API says which rule: the turncoat is not a member.
    let (status, body) = api
        .post(
            &format!("/wars/{war_id}/events"),
            None,
            json!([
                kill(
                    &format!("{t}-h0"),
                    now,
                    (&format!("{def}-k1"), &att),
                    (&format!("{def}-v7"), &def)
                ),
                kill(
                    &format!("{t}-h1"),
                    now,
                    (&format!("{t}-nobody"), &att),
                    (&format!("{def}-v7"), &def)
                ),
                kill(
                    &format!("{t}-h2"),
                    now,
                    (&format!("{att}-k1"), &att),
                    (&format!("{att}-v7"), &def)
                )
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 0, "{body}");
    let codes: Vec<&str> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["NOT_A_MEMBER"; 3], "{body}");
    // Nothing of this war is left in the queue.
    let out = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    assert!(
        !out.messages()
            .iter()
            .any(|m| m.body().unwrap_or_default().contains(&t)),
        "a message of this test is still queued"
    );
}
