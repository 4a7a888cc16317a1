//! Fault injection in the SDK's HTTP path, for the fault and delivery tests (issue 13): a
//! wrapper around the HTTP client that, following a plan file, answers a call with the error
//! AWS would send (throttling, a transaction conflict, a 5xx), fails to connect, or lets the
//! call reach AWS and then loses its answer (a timeout after a write may have landed) or kills
//! the process (a crash right after a commit).
//!
//! It is switched on by configuration only: the environment variable `CLANWAR_FAULTS` names
//! a directory of plan files (`*.json`), and only a Lambda function (`AWS_LAMBDA_FUNCTION_NAME`
//! set) obeys them. The plans are read at every call, so a test arms and disarms faults by
//! writing and removing its own file while the stack runs. Without the variable [`wrap`]
//! returns the client unchanged.
//!
//! ```json
//! {"id": "crash-1", "rules": [
//!   {"function": "war-manager", "operation": "TransactWriteItems",
//!    "fault": "crash_after_write", "times": 1}
//! ]}
//! ```
//! `operation` is the `X-Amz-Target` operation (`TransactWriteItems`, `PutEvents`,
//! `StartExecution`, ...) or `*`; `function` a substring of the function's name (all when
//! absent); `body_contains` a text the request body must contain (a test's own ids);
//! `times` how often the rule fires across every process of the stack (marker files beside
//! the plan, named after its `id`, by default the file's name; unlimited when absent);
//! `probability` (0..1, 1 when absent) how likely a matching call is hit.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The environment variable naming the directory of plans.
pub const PLANS_VARIABLE: &str = "CLANWAR_FAULTS";

/// What happens to a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// `ProvisionedThroughputExceededException` from DynamoDB, `ThrottlingException` elsewhere.
    Throttle,
    /// A `TransactWriteItems` cancelled for a `TransactionConflict` on its first item.
    TransactionConflict,
    /// HTTP 500 `InternalServerError`.
    ServerError,
    /// HTTP 503 `ServiceUnavailable`.
    Unavailable,
    /// The endpoint cannot be reached (nothing is sent).
    Unreachable,
    /// The call reaches AWS, its answer is lost: a timeout after the write may have landed.
    TimeoutAfterWrite,
    /// The call reaches AWS, then the process dies before it sees the answer.
    CrashAfterWrite,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub operation: String,
    #[serde(default)]
    pub function: Option<String>,
    pub fault: Fault,
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(default)]
    pub probability: Option<f64>,
    /// Only calls whose request body contains this text (e.g. a test's own ids, so that
    /// tests running side by side never hit each other's calls).
    #[serde(default)]
    pub body_contains: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Names this plan's marker files, so a new plan's `times` start from zero.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

impl Rule {
    fn matches(&self, function: &str, operation: &str, body: &[u8]) -> bool {
        let contains = |text: &str| {
            body.windows(text.len().max(1))
                .any(|w| w == text.as_bytes())
        };
        (self.operation == "*" || self.operation == operation)
            && self
                .function
                .as_deref()
                .is_none_or(|f| function.contains(f))
            && self.body_contains.as_deref().is_none_or(contains)
    }
}

/// The operation of an AWS JSON-protocol request: `X-Amz-Target: DynamoDB_20120810.PutItem`
/// → `PutItem`; empty for the REST protocols.
fn operation_of(request: &HttpRequest) -> &str {
    request
        .headers()
        .get("x-amz-target")
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or_default()
}

/// Wraps `client` in the fault layer when the environment asks for it.
pub fn wrap(client: SharedHttpClient) -> SharedHttpClient {
    match (
        std::env::var_os(PLANS_VARIABLE),
        std::env::var("AWS_LAMBDA_FUNCTION_NAME"),
    ) {
        (Some(dir), Ok(function)) if !dir.is_empty() => {
            tracing::warn!(plans = ?dir, "fault injection is on");
            SharedHttpClient::new(FaultyClient {
                inner: client,
                faults: Arc::new(Faults {
                    dir: PathBuf::from(dir),
                    function,
                }),
            })
        }
        _ => client,
    }
}

#[derive(Debug)]
struct Faults {
    /// Every `*.json` file in it is a plan (one per test, so tests side by side never
    /// overwrite each other's); the marker files of `times` live beside them.
    dir: PathBuf,
    function: String,
}

impl Faults {
    /// The plans as the directory holds them now (read at every call: a few small files, and
    /// only in a test stack). An unreadable plan injects nothing.
    fn plans(&self) -> Vec<Plan> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .filter_map(|path| {
                let bytes = std::fs::read(&path).ok()?;
                let mut plan: Plan = serde_json::from_slice(&bytes)
                    .map_err(|err| tracing::error!(?path, %err, "fault plan ignored"))
                    .ok()?;
                if plan.id.is_empty() {
                    plan.id = path.file_stem()?.to_string_lossy().into_owned();
                }
                Some(plan)
            })
            .collect()
    }

    /// The fault for this call, if a rule fires.
    fn pick(&self, operation: &str, body: &[u8]) -> Option<Fault> {
        for plan in self.plans() {
            for (index, rule) in plan.rules.iter().enumerate() {
                if !rule.matches(&self.function, operation, body)
                    || rule.probability.is_some_and(|p| fastrand::f64() >= p)
                    || rule
                        .times
                        .is_some_and(|times| !claim(&self.dir, &plan.id, index, times))
                {
                    continue;
                }
                tracing::warn!(operation, fault = ?rule.fault, plan = plan.id, "injecting a fault");
                return Some(rule.fault);
            }
        }
        None
    }
}

/// Takes one of the `times` firings of a rule, across processes: the first creator of a marker
/// file owns that firing.
fn claim(dir: &Path, id: &str, rule: usize, times: u32) -> bool {
    (0..times).any(|n| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(format!("{id}.{rule}.{n}.fired")))
            .is_ok()
    })
}

#[derive(Debug, Clone)]
struct FaultyClient {
    inner: SharedHttpClient,
    faults: Arc<Faults>,
}

impl HttpClient for FaultyClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultyConnector {
            inner: self.inner.http_connector(settings, components),
            faults: self.faults.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultyConnector {
    inner: SharedHttpConnector,
    faults: Arc<Faults>,
}

impl HttpConnector for FaultyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let operation = operation_of(&request).to_owned();
        let body = request.body().bytes().unwrap_or_default();
        let Some(fault) = self.faults.pick(&operation, body) else {
            return self.inner.call(request);
        };
        match fault {
            Fault::Unreachable => HttpConnectorFuture::ready(Err(ConnectorError::io(
                "injected fault: connection refused".into(),
            ))),
            Fault::TimeoutAfterWrite | Fault::CrashAfterWrite => {
                let sent = self.inner.call(request);
                HttpConnectorFuture::new(async move {
                    let answer = sent.await;
                    if fault == Fault::CrashAfterWrite {
                        tracing::error!(operation, ?answer, "injected fault: the process dies");
                        std::process::abort();
                    }
                    drop(answer);
                    Err(ConnectorError::timeout(
                        "injected fault: the answer was lost".into(),
                    ))
                })
            }
            _ => HttpConnectorFuture::ready(Ok(error_response(fault, &operation, &request))),
        }
    }
}

/// The answer AWS gives for `fault` (JSON protocols: the error's name in `__type`).
fn error_response(fault: Fault, operation: &str, request: &HttpRequest) -> HttpResponse {
    let dynamodb = request
        .headers()
        .get("x-amz-target")
        .is_some_and(|t| t.starts_with("DynamoDB"));
    let (status, body) = match fault {
        Fault::Throttle if dynamodb => (
            400,
            error_body(
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "injected fault",
            ),
        ),
        Fault::Throttle => (400, error_body("ThrottlingException", "injected fault")),
        Fault::TransactionConflict if operation == "TransactWriteItems" => {
            (400, cancelled_for_conflict(request))
        }
        Fault::TransactionConflict => (
            400,
            error_body(
                "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                "injected fault",
            ),
        ),
        Fault::ServerError => (500, error_body("InternalServerError", "injected fault")),
        _ => (503, error_body("ServiceUnavailable", "injected fault")),
    };
    let mut response = HttpResponse::new(
        StatusCode::try_from(status).expect("a valid status"),
        SdkBody::from(body),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response
}

fn error_body(error_type: &str, message: &str) -> String {
    serde_json::json!({ "__type": error_type, "message": message }).to_string()
}

/// `TransactionCanceledException` with one reason per item: a conflict on the first.
fn cancelled_for_conflict(request: &HttpRequest) -> String {
    let items = request
        .body()
        .bytes()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| {
            v.get("TransactItems")
                .and_then(|i| i.as_array())
                .map(Vec::len)
        })
        .unwrap_or(1)
        .max(1);
    let reasons: Vec<_> = (0..items)
        .map(|i| {
            if i == 0 {
                serde_json::json!({"Code": "TransactionConflict", "Message": "injected fault"})
            } else {
                serde_json::json!({"Code": "None"})
            }
        })
        .collect();
    serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
        "CancellationReasons": reasons,
    })
    .to_string()
}

#[cfg(test)]
mod tests;
