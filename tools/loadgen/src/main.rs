//! `clanwar-loadgen`: open-loop load against the local stack. For each operation (war status,
//! scoreboard and player reads, event batches, declarations) and each offered rate it runs a
//! step through the HTTP API and then a step of the raw emulator calls that operation makes,
//! at the same rate, and prints throughput and p50/p95/p99 of both, the functions' own split
//! of each request (`Server-Timing`: handler time, AWS-call time, our code) and the calls and
//! round trips the functions counted. Results go to a JSON file for `scripts/bench.sh`.
//!
//! Loopback only: it refuses any other target.

mod api;
mod config;
mod raw;
mod run;
mod stats;
mod timing;

use api::{declaration, leader, register_clan, register_territory, Api, ScoredWar};
use config::{Config, Op, USAGE};
use raw::{DeclareShape, Raw, RawKill};
use reqwest::Method;
use run::{count, open_loop, Answer};
use serde::Serialize;
use serde_json::Value;
use stats::{summarize, Summary};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_args(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    match run_all(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    run_id: String,
    started_at: String,
    finished_at: String,
    duration_s: f64,
    machine: Machine,
    window_s: f64,
    timeout_s: f64,
    batch: usize,
    war_id: String,
    score_shards: u32,
    /// Events of the API's batches that the service refused (should be none).
    rejected_events: u64,
    ops: Vec<OpReport>,
}

#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    load_before: String,
    load_after: String,
    /// Where the stack's Lambda binaries came from (`CLANWAR_BIN_DIR`), if set.
    binaries: Option<String>,
}

#[derive(Debug, Serialize)]
struct OpReport {
    op: &'static str,
    route: &'static str,
    /// The raw replica's calls.
    raw_calls: String,
    steps: Vec<Step>,
    /// The first offered rate the API did not keep up with, and why.
    saturated_at: Option<f64>,
    saturation: Option<String>,
    /// Rates not run (after saturation, or past the time budget).
    skipped: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Step {
    rate: f64,
    api: Summary,
    raw: Summary,
    /// Items in the table when the step began.
    table_items: Option<i64>,
    /// Seconds the stack took to drain after the API step and after the raw step.
    settle_s: [f64; 2],
}

/// Waits (at most 30 s) until the stack has worked off what a step left queued: a raw read of
/// the war answers within 50 ms and the API's war read within 250 ms. Returns the wait.
async fn settle(api: &Api, raw: &Raw, war: &str) -> f64 {
    let began = Instant::now();
    let path = format!("/wars/{war}");
    while began.elapsed() < Duration::from_secs(30) {
        let t = Instant::now();
        let raw_ok = raw.probe(war).await.is_ok() && t.elapsed() < Duration::from_millis(50);
        let t = Instant::now();
        let api_ok = api.call(Method::GET, &path, None, None).await.is_ok()
            && t.elapsed() < Duration::from_millis(250);
        if raw_ok && api_ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    began.elapsed().as_secs_f64()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Why a step shows the API past what it sustains, if it does.
fn saturation(s: &Summary) -> Option<String> {
    if s.failed as f64 > 0.01 * s.sent as f64 {
        let statuses: Vec<String> = s
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        return Some(format!(
            "{} of {} requests failed ({})",
            s.failed,
            s.sent,
            statuses.join(", ")
        ));
    }
    if s.achieved_rps < 0.9 * s.offered_rps {
        return Some(format!(
            "{:.1}/s answered of {:.0}/s offered",
            s.achieved_rps, s.offered_rps
        ));
    }
    if s.latency_ms.p99 > 2_000.0 {
        return Some(format!("p99 {:.0} ms (queueing)", s.latency_ms.p99));
    }
    None
}

fn line(op: Op, api: &Summary, raw: &Summary) -> String {
    let share = api
        .own_share()
        .map_or("-".to_owned(), |s| format!("{:.0}%", s * 100.0));
    let shape = |s: &Summary| match (s.calls, s.round_trips) {
        (Some(c), Some(r)) => format!("{c}/{r}"),
        _ => "-".into(),
    };
    format!(
        "{:<10} {:>5}/s ok {:>4}/{:<4} {:>6.1}/s | p50 {:>7.1} p95 {:>7.1} p99 {:>7.1} ms | \
         app {:>6.1} aws {:>6.1} own {:>5.2} (p99 {:>5.2}, {share}) gw {:>5.1} | {} || raw p50 {:>6.1} p99 {:>6.1} ({}) {:>5.1}/s",
        op.name(),
        api.offered_rps,
        api.ok,
        api.sent,
        api.achieved_rps,
        api.latency_ms.p50,
        api.latency_ms.p95,
        api.latency_ms.p99,
        api.app_ms.p50,
        api.aws_ms.p50,
        api.own_ms.p50,
        api.own_ms.p99,
        api.overhead_ms.p50,
        shape(api),
        raw.latency_ms.p50,
        raw.latency_ms.p99,
        shape(raw),
        raw.achieved_rps,
    )
}

/// A declaration's clans and territory, registered before its step.
#[derive(Debug, Clone)]
struct Contenders {
    attacker: String,
    defender: String,
    territory: String,
}

async fn contenders(api: &Api, prefix: &str, n: u64) -> Result<Vec<Contenders>, String> {
    let pool: Vec<Contenders> = (0..n)
        .map(|i| Contenders {
            attacker: format!("{prefix}-{i}a"),
            defender: format!("{prefix}-{i}b"),
            territory: format!("{prefix}-{i}t"),
        })
        .collect();
    let jobs = pool
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, c)| {
            let api = api.clone();
            async move {
                register_clan(&api, &c.attacker, 10).await?;
                register_clan(&api, &c.defender, 10).await?;
                register_territory(&api, &c.territory, &c.defender, 10.0 * i as f64).await
            }
        })
        .collect();
    api::in_parallel(6, jobs).await?;
    Ok(pool)
}

/// The kills `first..first + batch` as the API's JSON and as the raw replica's records.
fn kills(war: &ScoredWar, first: u64, batch: usize, prefix: &str) -> Vec<Value> {
    (first..first + batch as u64)
        .map(|k| war.kill(k, prefix))
        .collect()
}

fn raw_kills(events: &[Value]) -> Vec<RawKill> {
    let text = |e: &Value, f: &str| e[f].as_str().unwrap_or_default().to_owned();
    events
        .iter()
        .map(|e| RawKill {
            event_id: text(e, "event_id"),
            killer: text(e, "killer_id"),
            killer_clan: text(e, "killer_clan_id"),
            victim: text(e, "victim_id"),
        })
        .collect()
}

async fn run_all(config: Config) -> Result<(), String> {
    let began = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let load_before = loadavg();
    let run_id = format!("lg{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "loadgen {run_id}: API {} | emulator {} | table {} | {cores} cores, load {load_before}",
        config.api, config.aws_endpoint, config.table
    );
    let api = Api::new(&config.api, config.timeout)?;
    let raw = Raw::new(&config.aws_endpoint, &config.table, &run_id).await?;

    let war = Arc::new(ScoredWar::set_up(&api, &run_id, config.members).await?);
    let status = api.get(&format!("/wars/{}", war.war_id)).await?;
    let shards = status["score_shards"].as_u64().unwrap_or(16) as u32;
    println!(
        "setup: war {} ACTIVE ({} members a side, {shards} score shards) after {:.1} s",
        war.war_id,
        config.members,
        began.elapsed().as_secs_f64()
    );
    // Scores to read: a few batches first, so the scoreboard has players in every shard.
    let next_kill = Arc::new(AtomicU64::new(0));
    let event_prefix = format!("{run_id}-e");
    let mut players = Vec::new();
    for _ in 0..20 {
        let first = next_kill.fetch_add(config.batch as u64, Ordering::Relaxed);
        let batch = kills(&war, first, config.batch, &event_prefix);
        players.extend(
            batch
                .iter()
                .filter_map(|e| e["killer_id"].as_str().map(str::to_owned)),
        );
        api.post(
            &format!("/wars/{}/events", war.war_id),
            "unused",
            &Value::Array(batch),
        )
        .await?;
    }
    let players = Arc::new(players);
    let rejected = Arc::new(AtomicU64::new(0));
    let next_raw_kill = Arc::new(AtomicU64::new(0));

    let mut reports = Vec::new();
    for &op in &config.ops {
        let mut report = OpReport {
            op: op.name(),
            route: op.route(),
            raw_calls: String::new(),
            steps: Vec::new(),
            saturated_at: None,
            saturation: None,
            skipped: Vec::new(),
        };
        for (step_no, &rate) in config.rates_of(op).iter().enumerate() {
            let step_time = 2 * config.window + Duration::from_secs(4);
            if report.saturated_at.is_some() || began.elapsed() + step_time > config.budget {
                report.skipped.push(rate);
                continue;
            }
            let n = count(rate, config.window);
            let table_items = raw.table_items().await;
            let pool = if op == Op::Declare {
                let prefix = format!("{run_id}-d{step_no}");
                Arc::new(contenders(&api, &prefix, n).await?)
            } else {
                Arc::new(Vec::new())
            };
            let (outcomes, elapsed) = {
                let api = api.clone();
                let war = war.clone();
                let players = players.clone();
                let next_kill = next_kill.clone();
                let rejected = rejected.clone();
                let pool = pool.clone();
                let (batch, prefix) = (config.batch, event_prefix.clone());
                open_loop(rate, config.window, config.timeout, move |i| {
                    let (api, war, players) = (api.clone(), war.clone(), players.clone());
                    let (next_kill, rejected, pool) =
                        (next_kill.clone(), rejected.clone(), pool.clone());
                    let prefix = prefix.clone();
                    async move {
                        let w = &war.war_id;
                        let (answer, body) = match op {
                            Op::WarStatus => {
                                api.call(Method::GET, &format!("/wars/{w}"), None, None)
                                    .await?
                            }
                            Op::Scoreboard => {
                                let path = format!("/wars/{w}/scoreboard?limit=10");
                                api.call(Method::GET, &path, None, None).await?
                            }
                            Op::Player => {
                                let p = &players[i as usize % players.len()];
                                let path = format!("/wars/{w}/players/{p}");
                                api.call(Method::GET, &path, None, None).await?
                            }
                            Op::Events => {
                                let first = next_kill.fetch_add(batch as u64, Ordering::Relaxed);
                                let events = Value::Array(kills(&war, first, batch, &prefix));
                                let path = format!("/wars/{w}/events");
                                api.call(Method::POST, &path, None, Some(&events)).await?
                            }
                            Op::Declare => {
                                let c = &pool[i as usize];
                                let body = declaration(
                                    &c.attacker,
                                    &c.defender,
                                    &c.territory,
                                    [3_600, 3_600, 3_600, 60],
                                );
                                let actor = leader(&c.attacker);
                                api.call(Method::POST, "/wars", Some(&actor), Some(&body))
                                    .await?
                            }
                        };
                        if let Some(refused) = body["rejected"].as_array() {
                            rejected.fetch_add(refused.len() as u64, Ordering::Relaxed);
                        }
                        Ok::<Answer, String>(answer)
                    }
                })
                .await
            };
            let api_summary = summarize(&outcomes, rate, config.window, elapsed);
            let settle_api = settle(&api, &raw, &war.war_id).await;

            let shape = DeclareShape::from_reported(
                api_summary.calls.unwrap_or(8),
                api_summary.round_trips.unwrap_or(8),
            );
            report.raw_calls = match op {
                Op::WarStatus => format!("GetItem(war) → BatchGetItem({shards} clan shards)"),
                Op::Scoreboard => format!(
                    "GetItem(war) → BatchGetItem({shards} shards) ∥ {shards} × Query(gsi2, limit 10)"
                ),
                Op::Player => "GetItem(war) ∥ GetItem(player)".into(),
                Op::Events => format!(
                    "GetItem(war) → TransactWriteItems({} items)",
                    1 + 2 * config.batch
                ),
                Op::Declare => format!(
                    "GetItem × {} in {} wave(s) {:?} → TransactWriteItems({} items) → StartExecution",
                    shape.read_waves.iter().sum::<usize>(),
                    shape.read_waves.len(),
                    shape.read_waves,
                    shape.tx_items
                ),
            };
            let (raw_outcomes, raw_elapsed) = {
                let raw = raw.clone();
                let war = war.clone();
                let players = players.clone();
                let next_raw_kill = next_raw_kill.clone();
                let pool = pool.clone();
                let (batch, run_id) = (config.batch, run_id.clone());
                let shape = shape.clone();
                open_loop(rate, config.window, config.timeout, move |i| {
                    let (raw, war, players) = (raw.clone(), war.clone(), players.clone());
                    let (next_raw_kill, pool, shape) =
                        (next_raw_kill.clone(), pool.clone(), shape.clone());
                    let id = format!("{run_id}-raw{step_no}-{i}");
                    async move {
                        let w = &war.war_id;
                        match op {
                            Op::WarStatus => raw.war_status(w, shards).await,
                            Op::Scoreboard => raw.scoreboard(w, shards, 10).await,
                            Op::Player => raw.player(w, &players[i as usize % players.len()]).await,
                            Op::Events => {
                                let first =
                                    next_raw_kill.fetch_add(batch as u64, Ordering::Relaxed);
                                let events = kills(&war, first, batch, "raw");
                                let shard = (i % u64::from(shards.max(1))) as u32;
                                raw.events(w, shards, shard, &raw_kills(&events)).await
                            }
                            Op::Declare => {
                                let c = &pool[i as usize];
                                raw.declare(&shape, &c.attacker, &c.defender, &c.territory, &id)
                                    .await
                            }
                        }
                    }
                })
                .await
            };
            let raw_summary = summarize(&raw_outcomes, rate, config.window, raw_elapsed);
            println!("{}", line(op, &api_summary, &raw_summary));
            for e in api_summary.errors.iter().chain(&raw_summary.errors) {
                println!("           error: {e}");
            }
            if let Some(why) = saturation(&api_summary) {
                println!("           {} saturates at {rate}/s: {why}", op.name());
                report.saturated_at = Some(rate);
                report.saturation = Some(why);
            }
            let settle_raw = settle(&api, &raw, &war.war_id).await;
            report.steps.push(Step {
                rate,
                api: api_summary,
                raw: raw_summary,
                table_items,
                settle_s: [settle_api, settle_raw],
            });
        }
        if !report.skipped.is_empty() {
            println!("{:<10} not run at {:?}/s", op.name(), report.skipped);
        }
        reports.push(report);
    }

    let report = Report {
        run_id,
        started_at,
        finished_at: chrono::Utc::now().to_rfc3339(),
        duration_s: began.elapsed().as_secs_f64(),
        machine: Machine {
            cores,
            load_before,
            load_after: loadavg(),
            binaries: std::env::var("CLANWAR_BIN_DIR").ok(),
        },
        window_s: config.window.as_secs_f64(),
        timeout_s: config.timeout.as_secs_f64(),
        batch: config.batch,
        war_id: war.war_id.clone(),
        score_shards: shards,
        rejected_events: rejected.load(Ordering::Relaxed),
        ops: reports,
    };
    if let Some(dir) = config.out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&config.out, json).map_err(|e| format!("{}: {e}", config.out.display()))?;
    println!(
        "loadgen: {:.0} s, load {} → {}; {} refused events; results in {}",
        report.duration_s,
        report.machine.load_before,
        report.machine.load_after,
        report.rejected_events,
        config.out.display()
    );
    Ok(())
}
