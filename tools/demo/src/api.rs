//! A small client of the public HTTP API: JSON in and out, `x-actor-id` on mutations, and
//! every non-2xx answer turned into an error carrying the SPEC error body (code + message).

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest a single request may take. Generous: on a loaded laptop or CI machine the local
/// stack (one Python process emulating every service) can stall for tens of seconds, and a
/// slow answer is not a broken one; a dead stack is still reported, just later.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The API answered with an error status.
    #[error("{0}")]
    Api(ApiError),
    /// The API could not be reached or answered something that is not the expected JSON.
    #[error("{method} {path}: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    /// Something did not happen in time (a phase timer, the reward saga).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The war took a turn the demo cannot continue from (cancelled, bad configuration...).
    #[error("{0}")]
    Unexpected(String),
}

/// An error answer of the API: status and the SPEC body `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} answered {} {}: {}",
            self.method, self.path, self.status, self.code, self.message
        )
    }
}

impl DemoError {
    /// The API's `409 INVALID_WAR_STATE`: the war is not in the phase the call needs.
    pub fn is_invalid_war_state(&self) -> bool {
        matches!(self, DemoError::Api(e) if e.status == 409 && e.code == "INVALID_WAR_STATE")
    }
}

impl ApiError {
    /// Reads the SPEC error body; the gateway's own `{"message": ...}` answers and empty bodies
    /// become `HTTP_<status>` with whatever text there was.
    pub fn from_body(method: &str, path: &str, status: u16, body: &str) -> Self {
        let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let error = &json["error"];
        let code = error["code"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP_{status}"));
        let message = error["message"]
            .as_str()
            .or_else(|| json["message"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| body.chars().take(300).collect());
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            code,
            message,
        }
    }
}

/// The HTTP API at one base URL.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    /// Exponentially weighted answer times per route, in milliseconds (shared by the clones).
    latency_ms: Arc<Mutex<HashMap<String, f64>>>,
}

/// Latency assumed before the first answer.
const FIRST_GUESS_MS: f64 = 300.0;
/// Weight of the newest answer in the latency average.
const LATENCY_WEIGHT: f64 = 0.3;

/// The route of a call, ids blanked: `POST /wars/w-1/battles/b-2/resolve` →
/// `POST /wars/{}/battles/{}/resolve`. The API's paths alternate collection and id, so every
/// second segment is an id; the query string is dropped.
pub fn route(method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .enumerate()
        .map(|(i, segment)| if i % 2 == 1 { "{}" } else { segment })
        .collect();
    format!("{method} /{}", segments.join("/"))
}

impl Api {
    pub fn new(base: &str) -> Result<Self, DemoError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| DemoError::Transport {
                method: "-".into(),
                path: base.into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            latency_ms: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// How long a call of this route has been taking lately (a slow, shared stack shows here
    /// first). A route not called yet is assumed as slow as the slowest one so far.
    pub fn latency(&self, method: &str, path: &str) -> Duration {
        let routes = self.latency_ms.lock().unwrap_or_else(|p| p.into_inner());
        let ms = routes
            .get(&route(method, path))
            .copied()
            .or_else(|| routes.values().copied().reduce(f64::max))
            .unwrap_or(FIRST_GUESS_MS);
        Duration::from_millis(ms as u64)
    }

    fn observe(&self, method: &str, path: &str, took: Duration) {
        let mut routes = self.latency_ms.lock().unwrap_or_else(|p| p.into_inner());
        let took = took.as_millis() as f64;
        routes
            .entry(route(method, path))
            .and_modify(|ms| *ms = (1.0 - LATENCY_WEIGHT) * *ms + LATENCY_WEIGHT * took)
            .or_insert(took);
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, DemoError> {
        self.call(reqwest::Method::GET, path, None, None, None)
            .await
    }

    /// A GET whose 404 is an expected answer (for example a reward plan not written yet).
    pub async fn get_if_exists<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, DemoError> {
        match self.get(path).await {
            Ok(found) => Ok(Some(found)),
            Err(DemoError::Api(e)) if e.status == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn put<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, DemoError> {
        self.call(reqwest::Method::PUT, path, None, None, Some(body))
            .await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        actor: Option<&str>,
        body: &Value,
    ) -> Result<T, DemoError> {
        self.call(reqwest::Method::POST, path, actor, None, Some(body))
            .await
    }

    /// A POST with an `Idempotency-Key`, so a retried call has one effect.
    pub async fn post_once<T: DeserializeOwned>(
        &self,
        path: &str,
        actor: &str,
        key: &str,
        body: &Value,
    ) -> Result<T, DemoError> {
        self.call(
            reqwest::Method::POST,
            path,
            Some(actor),
            Some(key),
            Some(body),
        )
        .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        actor: Option<&str>,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<T, DemoError> {
        let transport = |message: String| DemoError::Transport {
            method: method.to_string(),
            path: path.to_owned(),
            message,
        };
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(actor) = actor {
            request = request.header("x-actor-id", actor);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = std::time::Instant::now();
        let response = request.send().await.map_err(|e| transport(chain(&e)))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| transport(chain(&e)))?;
        self.observe(method.as_str(), path, started.elapsed());
        if !(200..300).contains(&status) {
            return Err(DemoError::Api(ApiError::from_body(
                method.as_str(),
                path,
                status,
                &text,
            )));
        }
        serde_json::from_str(&text)
            .map_err(|e| transport(format!("unexpected answer ({e}): {text}")))
    }
}

/// An error with its causes (`error sending request …: operation timed out`).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_error_bodies_keep_code_and_message() {
        let body = r#"{"error":{"code":"PAIR_COOLDOWN_ACTIVE","message":"wait","details":{}}}"#;
        let e = ApiError::from_body("POST", "/wars", 422, body);
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("PAIR_COOLDOWN_ACTIVE", "wait")
        );
        assert_eq!(
            e.to_string(),
            "POST /wars answered 422 PAIR_COOLDOWN_ACTIVE: wait"
        );
    }

    #[test]
    fn routes_blank_their_ids_and_drop_the_query() {
        assert_eq!(
            route("POST", "/wars/w-1/battles/b-2/resolve"),
            "POST /wars/{}/battles/{}/resolve"
        );
        assert_eq!(
            route("GET", "/wars/w-1/scoreboard?limit=5"),
            "GET /wars/{}/scoreboard"
        );
        assert_eq!(route("POST", "/wars"), "POST /wars");
    }

    #[test]
    fn latency_is_measured_per_route() {
        let api = Api::new("http://127.0.0.1:1").unwrap();
        let resolve = "/wars/w-1/battles/b-1/resolve";
        assert_eq!(api.latency("POST", resolve), Duration::from_millis(300));
        api.observe("GET", "/wars/w-1", Duration::from_millis(100));
        for _ in 0..20 {
            api.observe(
                "POST",
                "/wars/w-1/battles/b-9/resolve",
                Duration::from_secs(2),
            );
        }
        let slow = api.latency("POST", resolve);
        assert!(slow > Duration::from_millis(1_900), "{slow:?}");
        assert_eq!(api.latency("GET", "/wars/w-2"), Duration::from_millis(100));
        assert_eq!(
            api.latency("POST", "/territories/t-1/capture"),
            slow,
            "an unknown route is assumed as slow as the slowest"
        );
    }

    #[test]
    fn only_a_409_invalid_war_state_is_a_phase_conflict() {
        let error = |status, code: &str| {
            DemoError::Api(ApiError {
                method: "POST".into(),
                path: "/x".into(),
                status,
                code: code.into(),
                message: String::new(),
            })
        };
        assert!(error(409, "INVALID_WAR_STATE").is_invalid_war_state());
        assert!(!error(409, "CONCURRENT_MODIFICATION").is_invalid_war_state());
        assert!(!error(422, "INVALID_WAR_STATE").is_invalid_war_state());
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("error sending request")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn transport_errors_name_their_causes() {
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "operation timed out");
        assert_eq!(
            chain(&Outer(timeout)),
            "error sending request: operation timed out"
        );
    }

    #[test]
    fn gateway_and_empty_bodies_still_say_something() {
        let e = ApiError::from_body("GET", "/x", 500, r#"{"message":"Internal Server Error"}"#);
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("HTTP_500", "Internal Server Error")
        );
        let e = ApiError::from_body("GET", "/x", 502, "");
        assert_eq!(e.code, "HTTP_502");
    }
}
