//! A plain client of the local HTTP API, and the data the load needs, set up through the API
//! as a game studio would (clans with members and officers, territories, wars with short
//! preparation), every id prefixed with the run's id so that runs never collide.

use crate::run::Answer;
use crate::timing::ServerTiming;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(512)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            base: base.to_owned(),
            http,
        })
    }

    /// One request; the answer's status, `Server-Timing` and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        actor: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(Answer, Value), String> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(actor) = actor {
            request = request.header("x-actor-id", actor);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {}", chain(&e)))?;
        let status = response.status().as_u16();
        let timing = response
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .map(ServerTiming::parse)
            .unwrap_or_default();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("{method} {path}: {}", chain(&e)))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((Answer { status, timing }, body))
    }

    /// A setup call that must succeed.
    async fn must(
        &self,
        method: reqwest::Method,
        path: &str,
        actor: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let (answer, json) = self.call(method.clone(), path, actor, body).await?;
        if (200..300).contains(&answer.status) {
            Ok(json)
        } else {
            Err(format!(
                "{method} {path} answered {}: {json}",
                answer.status
            ))
        }
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, String> {
        self.must(reqwest::Method::PUT, path, None, Some(body))
            .await
    }

    pub async fn get(&self, path: &str) -> Result<Value, String> {
        self.must(reqwest::Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, actor: &str, body: &Value) -> Result<Value, String> {
        self.must(reqwest::Method::POST, path, Some(actor), Some(body))
            .await
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// A clan's leader (who declares).
pub fn leader(clan: &str) -> String {
    format!("{clan}-leader")
}

/// Member `i` of a clan.
pub fn member(clan: &str, i: usize) -> String {
    format!("{clan}-m{i}")
}

/// Registers a clan: a leader, an officer and `members` members, all at rating 1,000.
pub async fn register_clan(api: &Api, id: &str, members: usize) -> Result<(), String> {
    let body = json!({
        "name": format!("Load {id}"), "leader_id": leader(id),
        "officer_ids": [format!("{id}-officer")],
        "member_ids": (0..members).map(|i| member(id, i)).collect::<Vec<_>>(),
        "level": 20, "rating": 1000
    });
    api.put(&format!("/clans/{id}"), &body).await.map(drop)
}

/// Registers a tier-2 territory owned by `owner`.
pub async fn register_territory(api: &Api, id: &str, owner: &str, x: f64) -> Result<(), String> {
    let body = json!({ "name": id, "region": "load", "x": x, "y": 0.0, "tier": 2,
                       "resource_yield": 50, "owner_clan_id": owner });
    api.put(&format!("/territories/{id}"), &body)
        .await
        .map(drop)
}

/// A declaration body with the given phase lengths (seconds).
pub fn declaration(attacker: &str, defender: &str, territory: &str, phases: [u64; 4]) -> Value {
    let [declared_s, preparation_s, active_s, ending_s] = phases;
    json!({
        "attacker_clan_id": attacker, "defender_clan_id": defender, "territory_ids": [territory],
        "phase_durations": { "declared_s": declared_s, "preparation_s": preparation_s,
                             "active_s": active_s, "ending_s": ending_s }
    })
}

/// Runs `jobs` with at most `parallel` at a time; the first error wins.
pub async fn in_parallel<F>(parallel: usize, jobs: Vec<F>) -> Result<(), String>
where
    F: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for job in jobs {
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            job.await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| format!("setup task failed: {e}"))??;
    }
    Ok(())
}

/// The war the reads and event batches load: two clans of `members` players, one contested
/// territory, declared with one-second DECLARED and PREPARATION phases and an hour of ACTIVE.
#[derive(Debug, Clone)]
pub struct ScoredWar {
    pub war_id: String,
    pub attacker: String,
    pub defender: String,
    pub members: usize,
}

impl ScoredWar {
    pub async fn set_up(api: &Api, run: &str, members: usize) -> Result<Self, String> {
        let (attacker, defender) = (format!("{run}-a"), format!("{run}-b"));
        let territory = format!("{run}-t");
        let registrations = vec![
            register_clan(api, &attacker, members),
            register_clan(api, &defender, members),
        ];
        for r in registrations {
            r.await?;
        }
        register_territory(api, &territory, &defender, 0.0).await?;
        let war = api
            .post(
                "/wars",
                &leader(&attacker),
                &declaration(&attacker, &defender, &territory, [1, 1, 3_600, 60]),
            )
            .await?;
        let war_id = war["war_id"]
            .as_str()
            .ok_or_else(|| format!("no war_id in {war}"))?
            .to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let war = api.get(&format!("/wars/{war_id}")).await?;
            if war["status"] == "ACTIVE" {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("war {war_id} not ACTIVE after 60 s: {war}"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(Self {
            war_id,
            attacker,
            defender,
            members,
        })
    }

    /// Kill number `k` of the run: killer → victim pairs never repeat for the first
    /// `2 × members²` kills (so anti-farming refuses none), alternating the attacking side.
    pub fn kill(&self, k: u64, event_prefix: &str) -> Value {
        let m = self.members as u64;
        let (killer_clan, victim_clan) = if k % 2 == 0 {
            (&self.attacker, &self.defender)
        } else {
            (&self.defender, &self.attacker)
        };
        let pair = k / 2;
        let killer = member(killer_clan, (pair % m) as usize);
        let victim = member(victim_clan, ((pair / m) % m) as usize);
        json!({
            "type": "kill", "event_id": format!("{event_prefix}-{k}"),
            "occurred_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "killer_id": killer, "killer_clan_id": killer_clan, "killer_level": 20,
            "victim_id": victim, "victim_clan_id": victim_clan, "victim_level": 20
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn kills_never_repeat_a_pair_within_the_run() {
        let war = ScoredWar {
            war_id: "w".into(),
            attacker: "a".into(),
            defender: "b".into(),
            members: 10,
        };
        let pairs: HashSet<(String, String)> = (0..200)
            .map(|k| {
                let e = war.kill(k, "x");
                (e["killer_id"].to_string(), e["victim_id"].to_string())
            })
            .collect();
        assert_eq!(pairs.len(), 200);
        let first = war.kill(0, "x");
        assert_eq!(first["killer_clan_id"], "a");
        assert_eq!(war.kill(1, "x")["killer_clan_id"], "b");
        // Ten consecutive kills of one side have ten different killers (one batch: one
        // player item each).
        let killers: HashSet<String> = (0..20)
            .step_by(2)
            .map(|k| war.kill(k, "x")["killer_id"].to_string())
            .collect();
        assert_eq!(killers.len(), 10);
    }
}
