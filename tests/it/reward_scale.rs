//! A war of 5,000 scoring players (issue 13, item 6), through the public HTTP API: three clans a
//! side (each primary clan and its two allies), every player scores one kill, an operator ends
//! the war, and the reward saga pays every player exactly once. Its plan (5,000 grants) is more
//! than one DynamoDB item may hold, so this runs on the plan's chunks (`reward_plan.rs`).
//!
//! Every player gets a grant only if every share is at least 1: the winners (3,000 players, the
//! full rosters of three clans) split the winner's pool of 10,000, the losers (2,000) the
//! loser's 2,000 (SPEC §7; zero shares are left out of a plan).

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::Utc;
use clanwar_domain::clan::MAX_ROSTER;
use clanwar_integration_tests::wait::{wait_until, Seen};
use clanwar_integration_tests::{aws_config, register_territory, unique_tag, Api, Resources};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const PLAYERS: usize = 5_000;

/// The rosters of one side's three clans (its primary clan and two allies):
/// `<tag>-<side><c>-p<j>`, `sizes` players each.
fn rosters(tag: &str, side: char, sizes: [usize; 3]) -> Vec<(String, Vec<String>)> {
    sizes
        .iter()
        .enumerate()
        .map(|(c, size)| {
            let clan = format!("{tag}-{side}{c}");
            let players = (0..*size).map(|j| format!("{clan}-p{j}")).collect();
            (clan, players)
        })
        .collect()
}

async fn register_roster(api: &Api, clan: &str, players: &[String]) {
    let body = json!({ "name": format!("Clan {clan}"), "leader_id": format!("{clan}-leader"),
                       "officer_ids": [], "member_ids": players,
                       "level": 20, "rating": 1000 });
    let (status, body) = api.put(&format!("/clans/{clan}"), None, body).await;
    assert_eq!(status, 200, "PUT /clans/{clan}: {body}");
}

/// An alliance of `founder` and `allies`, each invited and accepting.
async fn alliance(api: &Api, founder: &str, allies: &[&str]) {
    let (status, alliance) = api
        .post(
            "/alliances",
            Some(&format!("{founder}-leader")),
            json!({ "name": format!("Allies of {founder}"), "founder_clan_id": founder }),
        )
        .await;
    assert_eq!(status, 201, "{alliance}");
    let aid = alliance["alliance_id"].as_str().unwrap();
    for ally in allies {
        let path = format!("/alliances/{aid}/invitations");
        let (status, body) = api
            .post(
                &path,
                Some(&format!("{founder}-leader")),
                json!({ "clan_id": ally }),
            )
            .await;
        assert_eq!(status, 201, "invite {ally}: {body}");
        let path = format!("/alliances/{aid}/invitations/{ally}/accept");
        let (status, body) = api
            .post(&path, Some(&format!("{ally}-leader")), json!({}))
            .await;
        assert_eq!(status, 200, "accept {ally}: {body}");
    }
}

async fn as_operator(api: &Api, war: &str, action: &str, body: Value) {
    let (status, answer) = api
        .post_as_operator(&format!("/admin/wars/{war}/{action}"), "ops-scale", body)
        .await;
    assert_eq!(status, 200, "{action}: {answer}");
}

/// One kill by each player of `killers` on a player of `victims` (distinct killers: no pair
/// repeats, nothing is farmed), in batches of the API's largest size.
fn kills(
    tag: &str,
    killers: &[(String, Vec<String>)],
    victims: &(String, Vec<String>),
) -> Vec<Value> {
    let now = Utc::now();
    killers
        .iter()
        .flat_map(|(clan, players)| players.iter().map(move |p| (clan, p)))
        .enumerate()
        .map(|(i, (clan, killer))| {
            let victim = &victims.1[i % victims.1.len()];
            json!({ "type": "kill", "event_id": format!("{tag}-kill-{i}"), "occurred_at": now,
                    "killer_id": killer, "killer_clan_id": clan, "killer_level": 10,
                    "victim_id": victim, "victim_clan_id": victims.0, "victim_level": 10 })
        })
        .collect()
}

/// The economy simulator's ledger of these keys (`ECON#<key>`): key → (net paid, grant
/// requests), read 100 keys a request.
async fn economy_ledger(keys: &[String]) -> HashMap<String, (i64, i64)> {
    let ddb = aws_sdk_dynamodb::Client::new(&aws_config().await);
    let table = Resources::load().name("WarTable");
    let mut ledger = HashMap::new();
    for chunk in keys.chunks(100) {
        let mut wanted = KeysAndAttributes::builder().consistent_read(true);
        for key in chunk {
            wanted = wanted.keys(HashMap::from([
                ("pk".to_owned(), AttributeValue::S(format!("ECON#{key}"))),
                ("sk".to_owned(), AttributeValue::S("ECON".into())),
            ]));
        }
        let mut request = Some(wanted.build().unwrap());
        while let Some(keys) = request.take() {
            let out = ddb
                .batch_get_item()
                .request_items(&table, keys)
                .send()
                .await
                .expect("read the economy ledger");
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&table)
                .unwrap_or_default()
            {
                let number = |name: &str| {
                    item.get(name)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0)
                };
                let key = item["pk"]
                    .as_s()
                    .unwrap()
                    .trim_start_matches("ECON#")
                    .to_owned();
                ledger.insert(key, (number("net"), number("grant_requests")));
            }
            request = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&table))
                .filter(|k| !k.keys().is_empty());
        }
    }
    ledger
}

#[tokio::test]
async fn a_war_of_5000_scoring_players_pays_every_player_exactly_once() {
    let api = Api::local();
    let t = unique_tag("scale");
    let attackers = rosters(&t, 'a', [MAX_ROSTER; 3]);
    let defenders = rosters(&t, 'd', [667, 667, 666]);
    for (clan, players) in attackers.iter().chain(&defenders) {
        register_roster(&api, clan, players).await;
    }
    let (att, def) = (attackers[0].0.as_str(), defenders[0].0.as_str());
    let land = format!("{t}-land");
    register_territory(&api, &land, def, 0.0).await;
    alliance(&api, att, &[&attackers[1].0, &attackers[2].0]).await;
    alliance(&api, def, &[&defenders[1].0, &defenders[2].0]).await;

    // Long phases: the allies join during DECLARED, then an operator moves the war on.
    let (status, war) = api
        .post(
            "/wars",
            Some(&format!("{att}-leader")),
            json!({ "attacker_clan_id": att, "defender_clan_id": def, "territory_ids": [land],
                    "phase_durations": { "declared_s": 3600, "preparation_s": 3600,
                                         "active_s": 3600, "ending_s": 600 } }),
        )
        .await;
    assert_eq!(status, 201, "{war}");
    let id = war["war_id"].as_str().unwrap().to_owned();
    for (side, clans) in [("attacker", &attackers), ("defender", &defenders)] {
        for (ally, _) in &clans[1..] {
            let (status, body) = api
                .post(
                    &format!("/wars/{id}/join"),
                    Some(&format!("{ally}-leader")),
                    json!({ "clan_id": ally, "side": side }),
                )
                .await;
            assert_eq!(status, 200, "{ally} joins: {body}");
        }
    }
    for to in ["PREPARATION", "ACTIVE"] {
        let reason = format!("scale test: to {to}");
        as_operator(&api, &id, "advance", json!({ "to": to, "reason": reason })).await;
    }

    // Every player of each side kills one of the other side's primary clan.
    let events = [
        kills(&format!("{t}-a"), &attackers, &defenders[0]),
        kills(&format!("{t}-d"), &defenders, &attackers[0]),
    ]
    .concat();
    assert_eq!(events.len(), PLAYERS);
    let path = format!("/wars/{id}/events");
    for batch in events.chunks(500) {
        let (status, outcome) = api.post(&path, None, json!(batch)).await;
        assert_eq!(
            (status, outcome["accepted"].as_u64()),
            (200, Some(batch.len() as u64)),
            "first refusal: {}",
            outcome["rejected"][0]
        );
    }
    as_operator(&api, &id, "end", json!({ "reason": "scale test" })).await;

    // The reward saga: 5,000 grants in 50 chunks (read on the war: the plan is large).
    wait_until(
        "the rewards of 5,000 players distributed",
        Duration::from_secs(600),
        || async {
            let (status, war) = api.get(&format!("/wars/{id}")).await;
            Seen::ready_if(
                status == 200 && war["rewards_status"] == "DISTRIBUTED",
                (status, war["status"].clone(), war["rewards_status"].clone()),
            )
        },
    )
    .await;
    let (status, rewards) = api.get(&format!("/wars/{id}/rewards")).await;
    assert_eq!((status, &rewards["status"]), (200, &json!("DISTRIBUTED")));

    let grants = rewards["grants"].as_array().unwrap();
    assert_eq!(grants.len(), PLAYERS, "one grant a scoring player");
    let players: BTreeSet<&str> = grants
        .iter()
        .map(|g| g["player_id"].as_str().unwrap())
        .collect();
    let everyone: BTreeSet<&str> = attackers
        .iter()
        .chain(&defenders)
        .flat_map(|(_, players)| players.iter().map(String::as_str))
        .collect();
    assert_eq!(players, everyone, "every player, once");
    assert!(grants.iter().all(|g| g["status"] == "GRANTED"));
    let keys: Vec<String> = grants
        .iter()
        .map(|g| g["idempotency_key"].as_str().unwrap().to_owned())
        .collect();
    let ledger = economy_ledger(&keys).await;
    let mut unpaid = Vec::new();
    for grant in grants {
        let key = grant["idempotency_key"].as_str().unwrap();
        let paid = ledger.get(key).map_or(0, |(net, _)| *net);
        if paid != grant["amount"].as_i64().unwrap() {
            unpaid.push(format!("{key}: paid {paid} of {}", grant["amount"]));
        }
    }
    assert!(
        unpaid.is_empty(),
        "{} grants not paid exactly once: {:?}",
        unpaid.len(),
        &unpaid[..unpaid.len().min(5)]
    );
    let requests: i64 = ledger.values().map(|(_, n)| n).sum();
    println!(
        "5,000 players: {} grants paid once, {requests} grant requests to the economy",
        ledger.len()
    );
}
