//! `make soak` (issue 13): wars side by side for a bounded time, each under injected faults
//! (throttling everywhere, EventBridge 5xx, lost answers after writes, an unreachable Step
//! Functions), with every score batch delivered one to three times in shuffled order over HTTP
//! and the ingestion queue, replayed again after the end, and hostile requests in between.
//! Then the invariants of every war are checked. `#[ignore]`d: scripts/soak.sh runs it on its
//! own stack (`SOAK_SECONDS`, `SOAK_WARS`) and writes `docs/reliability.md` from its report.

use clanwar_integration_tests::wait::{until, SLACK};
use clanwar_integration_tests::{
    aws_config, deadline, declaration, register_clan, register_territory, unique_tag, Api,
    ArmedFaults, Reply, Resources,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Points of a kill between equal levels (SPEC §6).
const KILL_POINTS: i64 = 10;
const CLAN_MEMBERS: usize = 10;

#[derive(Default)]
struct Counts {
    wars: AtomicU64,
    requests: AtomicU64,
    server_errors: AtomicU64,
    events: AtomicU64,
    deliveries: AtomicU64,
    hostile: AtomicU64,
    faults: AtomicU64,
    /// Wars whose push watcher a fault kept from connecting.
    unwatched: AtomicU64,
}

/// How long each pushed event took from its `occurred_at` to a subscribed client (the war's
/// attacking leader, connected once the war is declared), in milliseconds.
#[derive(Default)]
struct PushLatencies(std::sync::Mutex<Vec<(String, f64)>>);

impl PushLatencies {
    /// Records the latency of every event pushed on `socket` until the task is aborted.
    fn record(self: &Arc<Self>, mut socket: crate::realtime::Socket) -> AbortOnDrop {
        let latencies = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut pushes = crate::realtime::pushes(&mut socket);
            while let Some(push) = futures_util::StreamExt::next(&mut pushes).await {
                let Some(at) = push["occurred_at"].as_str() else {
                    continue;
                };
                let at = chrono::DateTime::parse_from_rfc3339(at).expect("occurred_at");
                let ms = (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_microseconds();
                let kind = push["type"].as_str().unwrap_or_default().to_owned();
                let ms = ms.unwrap_or(i64::MAX) as f64 / 1e3;
                latencies.0.lock().unwrap().push((kind, ms));
            }
        }))
    }

    /// `{count, p50_ms, p95_ms, max_ms, by_type}` of what was seen.
    fn summary(&self) -> Value {
        let seen = self.0.lock().unwrap().clone();
        let mut by_type: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        for (kind, ms) in &seen {
            by_type.entry(kind.clone()).or_default().push(*ms);
        }
        let mut all = summary_of(seen.into_iter().map(|(_, ms)| ms).collect());
        all["by_type"] = by_type
            .into_iter()
            .map(|(kind, ms)| (kind, summary_of(ms)))
            .collect();
        all
    }
}

/// `{count, p50_ms, p95_ms, max_ms}` of `ms`.
fn summary_of(mut ms: Vec<f64>) -> Value {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    json!({ "count": ms.len(), "p50_ms": at(0.5), "p95_ms": at(0.95), "max_ms": ms.last() })
}

/// A spawned task that stops with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every answer goes through here: 5xx are counted (and must stay at zero).
fn seen(counts: &Counts, violations: &std::sync::Mutex<Vec<String>>, what: &str, reply: &Reply) {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    if reply.0 >= 500 {
        counts.server_errors.fetch_add(1, Ordering::Relaxed);
        violations
            .lock()
            .unwrap()
            .push(format!("{what}: {} {}", reply.0, reply.1));
    }
}

fn kill(id: &str, at: &str, killer: (&str, &str), victim: (&str, &str)) -> Value {
    json!({ "type": "kill", "event_id": id, "occurred_at": at, "killer_id": killer.0,
            "killer_clan_id": killer.1, "killer_level": 10, "victim_id": victim.0,
            "victim_clan_id": victim.1, "victim_level": 10 })
}

struct Soak {
    api: Api,
    sqs: aws_sdk_sqs::Client,
    ddb: aws_sdk_dynamodb::Client,
    queue: String,
    table: String,
    websocket: String,
    /// Whether faults are armed (`SOAK_FAULTS=0`: the same load without them).
    faults: bool,
    counts: Counts,
    pushes: Arc<PushLatencies>,
    violations: std::sync::Mutex<Vec<String>>,
}

impl Soak {
    fn violate(&self, war: &str, what: String) {
        self.violations
            .lock()
            .unwrap()
            .push(format!("war {war}: {what}"));
    }

    /// Subscribes a client of `player` to the war and records its pushes' latency; `None`
    /// (counted) when a fault kept it from connecting.
    async fn watch(&self, war: &str, player: &str) -> Option<AbortOnDrop> {
        let path = format!("/players/{player}/session-token");
        let (status, body) = self.post(&path, None, json!({})).await;
        let token = body["token"].as_str().filter(|_| status == 200);
        let url = format!("{}?token={}", self.websocket, token.unwrap_or_default());
        let socket = match (token, crate::realtime::open(&url).await) {
            (Some(_), Ok(mut socket)) => {
                let topic = json!({ "war_id": war });
                let reply = crate::realtime::request_subscription(&mut socket, topic).await;
                reply["subscribed"].is_string().then_some(socket)
            }
            _ => None,
        };
        if socket.is_none() {
            self.counts.unwatched.fetch_add(1, Ordering::Relaxed);
        }
        Some(self.pushes.record(socket?))
    }

    async fn get(&self, path: &str) -> Reply {
        let reply = self.api.get(path).await;
        seen(&self.counts, &self.violations, path, &reply);
        reply
    }

    async fn post(&self, path: &str, actor: Option<&str>, body: Value) -> Reply {
        let reply = self.api.post(path, actor, body).await;
        seen(&self.counts, &self.violations, path, &reply);
        reply
    }

    /// Hostile requests: all must be refused with a 4xx and the SPEC §10 body.
    async fn hostile(&self, war: &str, land: &str, att: &str) {
        let events = format!("/wars/{war}/events");
        let member = format!("{att}-m0");
        let at = "2026-01-01T00:00:00Z";
        let cases: Vec<(&str, Value)> = vec![
            ("an object instead of the batch", json!({"events": []})),
            ("wrong type", json!("many")),
            (
                "unknown event type",
                json!([{"type": "nuke", "event_id": "x"}]),
            ),
            (
                "unknown field",
                json!([{"type": "assist", "event_id": "x", "occurred_at": at,
                        "player_id": member, "clan_id": att, "junk": 1}]),
            ),
            (
                "control characters in an id",
                json!([kill("a\u{1}b", at, ("p\u{0}", att), ("v", att))]),
            ),
            ("deeply nested", (0..200).fold(json!(1), |v, _| json!([v]))),
            ("huge", json!(["x".repeat(2_000_000)])),
        ];
        for (what, body) in cases {
            self.counts.hostile.fetch_add(1, Ordering::Relaxed);
            let reply = self.post(&events, None, body).await;
            if !(400..500).contains(&reply.0) || reply.1["error"]["code"].as_str().is_none() {
                self.violate(
                    war,
                    format!("hostile '{what}' answered {} {}", reply.0, reply.1),
                );
            }
        }
        // An unknown war, a declaration by a plain member, a capture claimed for an unknown war.
        for (what, reply) in [
            ("unknown war", self.get(&format!("/wars/{war}-nope")).await),
            (
                "member declares",
                self.post("/wars", Some(&format!("{att}-m1")), json!({}))
                    .await,
            ),
            (
                "capture for an unknown war",
                self.post(
                    &format!("/territories/{land}/capture"),
                    Some(&format!("{att}-leader")),
                    json!({"war_id": format!("{war}-other"), "clan_id": att}),
                )
                .await,
            ),
        ] {
            self.counts.hostile.fetch_add(1, Ordering::Relaxed);
            if !(400..500).contains(&reply.0) {
                self.violate(
                    war,
                    format!("hostile '{what}' answered {} {}", reply.0, reply.1),
                );
            }
        }
    }

    /// One war, start to end, then its invariants.
    async fn war(&self, round: usize, slot: usize) {
        let t = unique_tag(&format!("soak{round}x{slot}"));
        let (att, def) = (format!("{t}-att"), format!("{t}-def"));
        register_clan(&self.api, &att, 1000).await;
        register_clan(&self.api, &def, 1000).await;
        let land = format!("{t}-land");
        register_territory(&self.api, &land, &def, 0.0).await;
        // One lost answer per function that writes for the war: the SDK's own retry resends
        // it (more in a row, and the caller is rightly told 503, retry).
        let mut rules = vec![
            json!({"operation": "*", "fault": "throttle", "probability": 0.02, "body_contains": att}),
            json!({"operation": "PutEvents", "fault": "server_error", "probability": 0.2, "body_contains": att}),
            json!({"function": "phase-controller", "operation": "StartExecution", "fault": "unreachable", "times": 1}),
        ];
        for function in [
            "war-manager",
            "phase-controller",
            "score-calculator",
            "reward-distributor",
        ] {
            rules.push(
                json!({"function": function, "operation": "TransactWriteItems",
                "fault": "timeout_after_write", "times": 1, "body_contains": att}),
            );
        }
        if !self.faults {
            rules.clear();
        }
        let counted = rules.len();
        let faults = ArmedFaults::arm(&t, Value::Array(rules));
        let (status, war) = self
            .post(
                "/wars",
                Some(&format!("{att}-leader")),
                declaration(&att, &def, std::slice::from_ref(&land), 30, 2),
            )
            .await;
        if status != 201 {
            self.violate(&t, format!("declaration answered {status} {war}"));
            return;
        }
        self.counts.wars.fetch_add(1, Ordering::Relaxed);
        let id = war["war_id"].as_str().unwrap().to_owned();
        let _watching = self.watch(&id, &format!("{att}-leader")).await;
        let active = self
            .api
            .wait_for_status(&id, "ACTIVE", until(deadline(&war, "active_at")) + SLACK)
            .await;
        let at = active["phase_deadlines"]["active_at"]
            .as_str()
            .unwrap()
            .to_owned();

        // Distinct killer → victim pairs (none farmed): attackers score more.
        let member = |clan: &str, i: usize| format!("{clan}-m{}", i % CLAN_MEMBERS);
        let mut batches: Vec<Vec<Value>> = Vec::new();
        let (mut att_kills, mut def_kills) = (0i64, 0i64);
        for b in 0..6 {
            let mut batch = Vec::new();
            for k in 0..8 {
                let n = b * 8 + k;
                let (killer, victim) = if n % 3 == 2 {
                    (&def, &att)
                } else {
                    (&att, &def)
                };
                if killer == &att {
                    att_kills += 1
                } else {
                    def_kills += 1
                }
                batch.push(kill(
                    &format!("{t}-e{n}"),
                    &at,
                    (&member(killer, n), killer),
                    (&member(victim, n / CLAN_MEMBERS + n), victim),
                ));
            }
            batches.push(batch);
        }
        self.counts
            .events
            .fetch_add((att_kills + def_kills) as u64, Ordering::Relaxed);
        // Each batch 1-3 times, in shuffled order, over HTTP or the queue.
        let mut deliveries: Vec<(usize, bool)> = Vec::new();
        for (i, _) in batches.iter().enumerate() {
            for _ in 0..1 + fastrand::usize(0..3) {
                deliveries.push((i, fastrand::bool()));
            }
        }
        fastrand::shuffle(&mut deliveries);
        for (i, by_queue) in &deliveries {
            self.counts.deliveries.fetch_add(1, Ordering::Relaxed);
            let body = Value::Array(batches[*i].clone());
            if *by_queue {
                let message = json!({"war_id": id, "events": batches[*i]});
                self.sqs
                    .send_message()
                    .queue_url(&self.queue)
                    .message_body(message.to_string())
                    .send()
                    .await
                    .expect("send to the ingestion queue");
            } else {
                self.post(&format!("/wars/{id}/events"), None, body).await;
            }
        }
        self.hostile(&id, &land, &att).await;

        let (_, war) = self.get(&format!("/wars/{id}")).await;
        let ended = self
            .api
            .wait_for_status(&id, "ENDED", until(deadline(&war, "ended_at")) + SLACK)
            .await;
        // Replayed after the end: nothing changes.
        for batch in &batches {
            self.post(
                &format!("/wars/{id}/events"),
                None,
                Value::Array(batch.clone()),
            )
            .await;
        }
        self.check(&id, &ended, att_kills, def_kills).await;
        let fired: usize = (0..counted).map(|r| faults.fired(r)).sum();
        self.counts
            .faults
            .fetch_add(fired as u64, Ordering::Relaxed);
    }

    async fn check(&self, id: &str, ended: &Value, att_kills: i64, def_kills: i64) {
        let moves: Vec<(String, String)> = ended["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["from"].as_str().unwrap().into(),
                    t["to"].as_str().unwrap().into(),
                )
            })
            .collect();
        let forward = [
            ("DECLARED", "PREPARATION"),
            ("PREPARATION", "ACTIVE"),
            ("ACTIVE", "ENDING"),
            ("ENDING", "ENDED"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
        if moves != forward {
            self.violate(id, format!("phases moved {moves:?}"));
        }
        let (_, war) = self.get(&format!("/wars/{id}")).await;
        let scores = (
            war["sides"]["attacker"]["score"].as_i64(),
            war["sides"]["defender"]["score"].as_i64(),
        );
        let want = (Some(att_kills * KILL_POINTS), Some(def_kills * KILL_POINTS));
        if scores != want {
            self.violate(
                id,
                format!("side scores {scores:?}, unique events say {want:?}"),
            );
        }
        let (_, board) = self.get(&format!("/wars/{id}/scoreboard?limit=100")).await;
        let players: i64 = board["top_players"].as_array().map_or(0, |p| {
            p.iter().map(|p| p["points"].as_i64().unwrap_or(0)).sum()
        });
        let clans: i64 = board["clans"].as_array().map_or(0, |c| {
            c.iter().map(|c| c["score"].as_i64().unwrap_or(0)).sum()
        });
        if players != clans || Some(clans) != want.0.zip(want.1).map(|(a, d)| a + d) {
            self.violate(
                id,
                format!("scoreboard players {players}, clans {clans}, sides {want:?}"),
            );
        }
        // Rewards: distributed, every grant paid exactly its amount once by the economy.
        let rewards = clanwar_integration_tests::wait::wait_until(
            &format!("war {id}'s rewards"),
            SLACK,
            || async {
                let reply = self.get(&format!("/wars/{id}/rewards")).await;
                match reply.1["status"].as_str() {
                    Some("DISTRIBUTED" | "REWARDS_FAILED") => {
                        clanwar_integration_tests::wait::Seen::Ready(reply.1)
                    }
                    _ => clanwar_integration_tests::wait::Seen::NotYet(format!(
                        "{} {}",
                        reply.0, reply.1
                    )),
                }
            },
        )
        .await;
        if rewards["status"] != "DISTRIBUTED" {
            self.violate(id, format!("rewards {rewards}"));
            return;
        }
        for grant in rewards["grants"].as_array().unwrap() {
            let key = format!(
                "{id}#{}#{}",
                grant["player_id"].as_str().unwrap(),
                grant["kind"].as_str().unwrap()
            );
            let item = self
                .ddb
                .get_item()
                .table_name(&self.table)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("ECON#{key}")),
                )
                .key(
                    "sk",
                    aws_sdk_dynamodb::types::AttributeValue::S("ECON".into()),
                )
                .consistent_read(true)
                .send()
                .await
                .expect("read the economy ledger");
            let net = item
                .item()
                .and_then(|i| i.get("net"))
                .and_then(|n| n.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok());
            if net != grant["amount"].as_i64() || grant["status"] != "GRANTED" {
                self.violate(id, format!("grant {key}: {grant}, economy paid {net:?}"));
            }
        }
    }
}

#[tokio::test]
#[ignore = "make soak runs it, on its own stack, for SOAK_SECONDS"]
async fn soak() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let wars: usize = std::env::var("SOAK_WARS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let config = aws_config().await;
    let resources = Resources::load();
    let soak = Arc::new(Soak {
        api: Api::local(),
        sqs: aws_sdk_sqs::Client::new(&config),
        ddb: aws_sdk_dynamodb::Client::new(&config),
        queue: resources.queue_url("ScoreEventsQueue"),
        table: resources.name("WarTable"),
        websocket: resources.url("WebSocketApi"),
        faults: std::env::var("SOAK_FAULTS").map_or(true, |v| v != "0"),
        counts: Counts::default(),
        pushes: Arc::default(),
        violations: Default::default(),
    });
    let began = Instant::now();
    let mut round = 0;
    while began.elapsed() < Duration::from_secs(seconds) {
        let tasks: Vec<_> = (0..wars)
            .map(|slot| {
                let soak = soak.clone();
                tokio::spawn(async move { soak.war(round, slot).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("a war task panicked");
        }
        round += 1;
    }
    let c = &soak.counts;
    let violations = soak.violations.lock().unwrap().clone();
    let report = json!({
        "seconds": began.elapsed().as_secs(),
        "faults": soak.faults,
        "rounds": round,
        "wars": c.wars.load(Ordering::Relaxed),
        "requests": c.requests.load(Ordering::Relaxed),
        "server_errors": c.server_errors.load(Ordering::Relaxed),
        "unique_events": c.events.load(Ordering::Relaxed),
        "batch_deliveries": c.deliveries.load(Ordering::Relaxed),
        "hostile_inputs": c.hostile.load(Ordering::Relaxed),
        "faults_with_a_count_fired": c.faults.load(Ordering::Relaxed),
        "push_latency": soak.pushes.summary(),
        "wars_unwatched": c.unwatched.load(Ordering::Relaxed),
        "violations": violations,
    });
    let out = std::env::var("SOAK_REPORT").unwrap_or_else(|_| "soak.json".into());
    std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).expect("write the report");
    println!("{report:#}");
    assert!(
        violations.is_empty(),
        "{} violated invariants: {violations:#?}",
        violations.len()
    );
}
