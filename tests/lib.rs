//! Test helpers shared by the integration tests: AWS clients on `AWS_ENDPOINT_URL`, resource
//! names from the local stack's `resources.json` (or environment overrides), unique test tags,
//! an HTTP API client, and waiting on conditions with deadlines ([`wait`]).

pub mod wait;

use std::path::PathBuf;
use std::time::Duration;
use wait::{wait_until, Seen};

/// Resources of the running stack, keyed by the template's logical ids (as the local stack's
/// provisioner recorded them: `Ref`, `Arn`, `Name`, `QueueUrl`, ...).
#[derive(Debug, Clone)]
pub struct Resources {
    resources: serde_json::Map<String, serde_json::Value>,
    /// The local stack's state directory (its function logs are in `logs/`).
    dir: PathBuf,
}

impl Resources {
    /// Reads `$LOCALAWS_STATE_DIR/resources.json` (default `.localaws/` at the repository root).
    pub fn load() -> Self {
        let dir = std::env::var("LOCALAWS_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.localaws"));
        let path = dir.join("resources.json");
        // Missing is fine while every name comes from the environment (DynamoDB Local runs).
        let resources = std::fs::read_to_string(&path)
            .ok()
            .and_then(|raw| serde_json::from_str::<serde_json::Value>(&raw).ok())
            .and_then(|json| json.get("resources").and_then(|r| r.as_object()).cloned())
            .unwrap_or_default();
        Self { resources, dir }
    }

    /// The `AwsCalls` metric lines (EMF) a function of the stack has logged so far, as
    /// CloudWatch would extract them: one per invocation, with its `Operation`, `AwsCalls`,
    /// `AwsRoundTrips` and context such as the task's `WarId`.
    pub fn aws_call_metrics(&self, function_logical: &str) -> Vec<serde_json::Value> {
        self.log_json(function_logical)
            .into_iter()
            .filter(|metric| metric.get("AwsRoundTrips").is_some())
            .collect()
    }

    /// The EMF lines of metric `name` a function of the stack has logged so far.
    pub fn metric_lines(&self, function_logical: &str, name: &str) -> Vec<serde_json::Value> {
        self.log_json(function_logical)
            .into_iter()
            .filter(|metric| metric.get(name).is_some() && metric.get("_aws").is_some())
            .collect()
    }

    /// Every JSON line a function of the stack has logged so far (its tracing events and EMF
    /// metrics), e.g. to count how often a queue message was handled.
    pub fn log_json(&self, function_logical: &str) -> Vec<serde_json::Value> {
        let log = self
            .dir
            .join("logs")
            .join(format!("{}.log", self.name(function_logical)));
        let text = std::fs::read_to_string(&log)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", log.display()));
        text.lines()
            .filter_map(|line| line.find('{').map(|at| &line[at..]))
            .filter_map(|json| serde_json::from_str::<serde_json::Value>(json).ok())
            .collect()
    }

    fn attribute(&self, logical: &str, names: &[&str]) -> String {
        let entry = self.resources.get(logical).unwrap_or_else(|| {
            panic!(
                "resource {logical} is unknown: start the local stack (make emulator-up) so that \
                 .localaws/resources.json exists, or set CLANWAR_{}",
                logical.to_ascii_uppercase()
            )
        });
        names
            .iter()
            .find_map(|n| entry.get(*n).and_then(|v| v.as_str()))
            .unwrap_or_else(|| panic!("resource {logical} has none of {names:?}"))
            .to_owned()
    }

    /// A resource's physical name; `CLANWAR_<LOGICAL_ID>` in the environment overrides it
    /// (for example to point the store tests at DynamoDB Local).
    pub fn name(&self, logical: &str) -> String {
        let var = format!("CLANWAR_{}", logical.to_ascii_uppercase());
        std::env::var(&var)
            .unwrap_or_else(|_| self.attribute(logical, &["Name", "QueueName", "Ref"]))
    }

    pub fn queue_url(&self, logical: &str) -> String {
        self.attribute(logical, &["QueueUrl", "Ref"])
    }

    /// A URL the local stack recorded (`Url` of the HTTP API, `Url`/`ManagementUrl` of the
    /// WebSocket API).
    pub fn url(&self, logical: &str) -> String {
        self.attribute(logical, &["Url", "Endpoint"])
    }

    pub fn arn(&self, logical: &str) -> String {
        self.attribute(logical, &["Arn"])
    }
}

/// SDK configuration for whatever `AWS_ENDPOINT_URL` names (the SDK reads it natively).
pub async fn aws_config() -> aws_config::SdkConfig {
    clanwar_aws::sdk::load().await
}

/// A short unique prefix for the ids one test writes, so tests can share a table.
pub fn unique_tag(test: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{test}-{}", &id[..8])
}

/// What one request cost in AWS calls, as the function counted them (`clanwar_aws::calls`)
/// and reported in `Server-Timing: aws;dur=..;desc="calls=N round-trips=M"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AwsCalls {
    pub calls: u32,
    pub round_trips: u32,
}

impl AwsCalls {
    /// Prints the request's calls and fails the test if its sequential round trips exceed
    /// `budget`.
    pub fn within(self, what: &str, budget: u32) {
        println!(
            "{what:<42} {:>3} AWS calls, {:>2} sequential round trips (budget {budget})",
            self.calls, self.round_trips
        );
        assert!(
            self.round_trips <= budget,
            "{what}: {self:?} exceeds {budget} round trips"
        );
    }

    fn parse(header: &str) -> Self {
        let field = |name: &str| {
            header
                .split(|c: char| c == '"' || c.is_whitespace() || c == ';')
                .find_map(|part| part.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
                .unwrap_or(u32::MAX)
        };
        Self {
            calls: field("calls"),
            round_trips: field("round-trips"),
        }
    }
}

/// Registers a clan of twelve: a leader, an officer and ten members (`<clan>-m0` .. `-m9`).
pub async fn register_clan(api: &Api, id: &str, rating: i32) {
    let members: Vec<String> = (0..10).map(|i| format!("{id}-m{i}")).collect();
    let body = serde_json::json!({
        "name": format!("Clan {id}"), "leader_id": format!("{id}-leader"),
        "officer_ids": [format!("{id}-officer")], "member_ids": members, "level": 20, "rating": rating
    });
    let (status, body) = api.put(&format!("/clans/{id}"), None, body).await;
    assert_eq!(status, 200, "PUT /clans/{id}: {body}");
}

/// Registers a tier-2 territory owned by `owner` at `(x, 0)`.
pub async fn register_territory(api: &Api, id: &str, owner: &str, x: f64) {
    let body = serde_json::json!({ "name": id, "region": "north", "x": x, "y": 0.0, "tier": 2,
                       "resource_yield": 50, "owner_clan_id": owner });
    let (status, body) = api.put(&format!("/territories/{id}"), None, body).await;
    assert_eq!(status, 200, "PUT /territories/{id}: {body}");
}

/// A declaration with `active_s` seconds of fighting, `ending_s` of ENDING and one second
/// for each phase before.
pub fn declaration(
    attacker: &str,
    defender: &str,
    territories: &[String],
    active_s: u64,
    ending_s: u64,
) -> serde_json::Value {
    serde_json::json!({
        "attacker_clan_id": attacker, "defender_clan_id": defender, "territory_ids": territories,
        "phase_durations": { "declared_s": 1, "preparation_s": 1, "active_s": active_s, "ending_s": ending_s }
    })
}

/// When the war (as the API answered it) is due to enter a phase: `"active_at"`, `"ended_at"`.
pub fn deadline(war: &serde_json::Value, phase: &str) -> chrono::DateTime<chrono::Utc> {
    serde_json::from_value(war["phase_deadlines"][phase].clone())
        .unwrap_or_else(|e| panic!("no {phase} deadline ({e}) in {war}"))
}

/// A client of the local HTTP API (`HttpApi` in resources.json, or `CLANWAR_API_URL`).
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

/// Status and JSON body of a response (`Null` for an empty body).
pub type Reply = (u16, serde_json::Value);

impl Api {
    pub fn local() -> Self {
        let base =
            std::env::var("CLANWAR_API_URL").unwrap_or_else(|_| Resources::load().url("HttpApi"));
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        self.send_counted(request).await.0
    }

    /// The reply and the AWS calls the function made for it (its `Server-Timing` header).
    async fn send_counted(&self, request: reqwest::RequestBuilder) -> (Reply, AwsCalls) {
        let response = request.send().await.expect("the local API answers");
        let status = response.status().as_u16();
        let calls = response
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .map(AwsCalls::parse)
            .unwrap_or_default();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        ((status, body), calls)
    }

    /// `GET`, with the AWS calls it cost.
    pub async fn get_counted(&self, path: &str) -> (Reply, AwsCalls) {
        self.send_counted(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST`, with the AWS calls it cost.
    pub async fn post_counted(
        &self,
        path: &str,
        actor: Option<&str>,
        body: serde_json::Value,
    ) -> (Reply, AwsCalls) {
        let request = self.http.post(format!("{}{path}", self.base)).json(&body);
        self.send_counted(Self::with_actor(request, actor)).await
    }

    /// `PUT`, with the AWS calls it cost.
    pub async fn put_counted(&self, path: &str, body: serde_json::Value) -> (Reply, AwsCalls) {
        let request = self.http.put(format!("{}{path}", self.base)).json(&body);
        self.send_counted(request).await
    }

    /// `DELETE`, with the AWS calls it cost.
    pub async fn delete_counted(&self, path: &str, actor: &str) -> (Reply, AwsCalls) {
        let request = self.http.delete(format!("{}{path}", self.base));
        self.send_counted(Self::with_actor(request, Some(actor)))
            .await
    }

    fn with_actor(
        request: reqwest::RequestBuilder,
        actor: Option<&str>,
    ) -> reqwest::RequestBuilder {
        match actor {
            Some(actor) => request.header("x-actor-id", actor),
            None => request,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn put(&self, path: &str, actor: Option<&str>, body: serde_json::Value) -> Reply {
        let request = self.http.put(format!("{}{path}", self.base)).json(&body);
        self.send(Self::with_actor(request, actor)).await
    }

    pub async fn post(&self, path: &str, actor: Option<&str>, body: serde_json::Value) -> Reply {
        let request = self.http.post(format!("{}{path}", self.base)).json(&body);
        self.send(Self::with_actor(request, actor)).await
    }

    pub async fn post_with_key(
        &self,
        path: &str,
        actor: &str,
        key: &str,
        body: serde_json::Value,
    ) -> Reply {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-actor-id", actor)
            .header("idempotency-key", key)
            .json(&body);
        self.send(request).await
    }

    /// `POST` to an admin route as operator `operator` (`x-operator-id`).
    pub async fn post_as_operator(
        &self,
        path: &str,
        operator: &str,
        body: serde_json::Value,
    ) -> Reply {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-operator-id", operator)
            .json(&body);
        self.send(request).await
    }

    /// Reads `GET /wars/{war}` until its status is `wanted` and returns it; fails after
    /// `within` with the last read.
    pub async fn wait_for_status(
        &self,
        war: &str,
        wanted: &str,
        within: Duration,
    ) -> serde_json::Value {
        let path = format!("/wars/{war}");
        wait_until(&format!("war {war} to be {wanted}"), within, || async {
            let (status, body) = self.get(&path).await;
            if status == 200 && body["status"] == wanted {
                Seen::Ready(body)
            } else {
                Seen::NotYet(format!("{status} {body}"))
            }
        })
        .await
    }

    pub async fn delete(&self, path: &str, actor: &str) -> Reply {
        let request = self
            .http
            .delete(format!("{}{path}", self.base))
            .header("x-actor-id", actor);
        self.send(request).await
    }

    /// A WebSocket session token for `player`, asked for as the game server does
    /// (`POST /players/{player_id}/session-token`).
    pub async fn session_token(&self, player: &str) -> String {
        let (status, body) = self
            .post(
                &format!("/players/{player}/session-token"),
                None,
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 200, "session token for {player}: {body}");
        body["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {body}"))
            .to_owned()
    }

    /// The stack's WebSocket URL with a session token of `player` (`?token=`), as that
    /// player's client connects.
    pub async fn websocket_url_as(&self, player: &str) -> String {
        let token = self.session_token(player).await;
        format!("{}?token={token}", Resources::load().url("WebSocketApi"))
    }
}

/// A fault plan armed in the local stack's functions (`clanwar_aws::faults`): written into the
/// directory `CLANWAR_FAULTS` names (scripts/test.sh sets it for the stack and the tests), and
/// removed when dropped. Rules should carry the test's own ids in `body_contains`, so tests
/// running side by side never hit each other's calls.
#[derive(Debug)]
pub struct ArmedFaults {
    path: PathBuf,
}

impl ArmedFaults {
    pub fn arm(name: &str, rules: serde_json::Value) -> Self {
        let dir = std::env::var_os("CLANWAR_FAULTS")
            .map(PathBuf::from)
            .expect(
                "CLANWAR_FAULTS is not set: the fault tests need the stack that scripts/test.sh \
             starts (it names the plans' directory for the functions and the tests)",
            );
        std::fs::create_dir_all(&dir).expect("the fault plans' directory");
        let path = dir.join(format!("{name}.json"));
        let plan = serde_json::json!({ "id": name, "rules": rules });
        std::fs::write(&path, plan.to_string()).expect("write the fault plan");
        Self { path }
    }

    /// How many firings of rule `index` (with `times`) were taken so far.
    pub fn fired(&self, index: usize) -> usize {
        let (Some(dir), Some(id)) = (self.path.parent(), self.path.file_stem()) else {
            return 0;
        };
        let prefix = format!("{}.{index}.", id.to_string_lossy());
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.starts_with(&prefix) && name.ends_with(".fired")
                    })
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for ArmedFaults {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
