//! The HTTP boundary (SPEC §10, §13): API Gateway HTTP API events in, JSON out. Bodies are
//! size-limited and parsed into `deny_unknown_fields` types before any service runs; every
//! error becomes the SPEC's `{ "error": { code, message, details } }` body here, in one place.

use crate::telemetry;
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use clanwar_aws::calls;
use clanwar_domain::ids::{IdError, PlayerId};
use clanwar_domain::{DomainError, DomainResult};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// Largest body accepted by ordinary routes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest body of a clan snapshot: a full roster ([`clanwar_domain::clan::MAX_ROSTER`] ids of
/// up to [`clanwar_domain::ids::MAX_ID_LEN`] characters, ~67 KB) with room for the rest.
pub const MAX_CLAN_BODY_BYTES: usize = 96 * 1024;
/// Largest body of an event batch (500 events of a few hundred bytes each).
pub const MAX_BATCH_BODY_BYTES: usize = 512 * 1024;

/// What a route handler sees of a request.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    /// API Gateway route key, e.g. `POST /wars/{war_id}/join`.
    pub route: String,
    pub path: HashMap<String, String>,
    pub query: HashMap<String, String>,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The caller's IAM principal (`requestContext.authorizer.iam.userArn`), present on AWS
    /// where the HTTP API authorises with IAM; the local gateway authorises nothing.
    pub principal: Option<String>,
    /// What is wrong with the request itself, found while mapping the event (a repeated query
    /// parameter, an event that is not an HTTP request): a 400 before any route runs.
    pub malformed: Option<Malformed>,
}

/// A defect of the request as a whole: the field it concerns and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub field: String,
    pub message: String,
}

/// A route's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Value,
    /// Headers beyond `content-type` (names in lower case).
    pub headers: Vec<(&'static str, String)>,
}

/// Seconds a client should wait before retrying a 503 (SPEC §10: "503 retry").
pub const RETRY_AFTER_S: u32 = 1;

impl HttpResponse {
    pub fn ok(body: impl Serialize) -> DomainResult<Self> {
        Self::with_status(200, body)
    }

    pub fn created(body: impl Serialize) -> DomainResult<Self> {
        Self::with_status(201, body)
    }

    pub fn with_status(status: u16, body: impl Serialize) -> DomainResult<Self> {
        let body =
            serde_json::to_value(body).map_err(|e| DomainError::invalid("body", e.to_string()))?;
        Ok(Self {
            status,
            body,
            headers: Vec::new(),
        })
    }

    pub fn error(err: &DomainError) -> Self {
        let mut headers = Vec::new();
        let status = crate::status::of(err);
        if status == 503 {
            headers.push(("retry-after", RETRY_AFTER_S.to_string()));
        }
        Self {
            status,
            body: err.to_body(),
            headers,
        }
    }

    pub fn no_route(route: &str) -> Self {
        Self {
            status: 404,
            body: serde_json::json!({ "error": {
                "code": "ROUTE_NOT_FOUND",
                "message": format!("no such route: {route}"),
                "details": {}
            }}),
            headers: Vec::new(),
        }
    }
}

impl HttpRequest {
    /// A path parameter parsed into an id type; a malformed id is a 400 naming the parameter.
    pub fn id<T>(&self, name: &str) -> DomainResult<T>
    where
        T: TryFrom<String, Error = IdError>,
    {
        let raw = self
            .path
            .get(name)
            .ok_or_else(|| DomainError::invalid(name, "missing path parameter"))?;
        T::try_from(raw.clone()).map_err(|source| DomainError::InvalidId {
            field: name.to_owned(),
            source,
        })
    }

    /// The acting player of a mutation (`x-actor-id`).
    pub fn actor(&self) -> DomainResult<PlayerId> {
        let raw = self
            .headers
            .get("x-actor-id")
            .ok_or(DomainError::MissingActor)?;
        PlayerId::new(raw.as_str()).map_err(|source| DomainError::InvalidId {
            field: "x-actor-id".into(),
            source,
        })
    }

    /// The operator of an admin route (`x-operator-id`, required) with the caller's IAM
    /// principal and the stated reason: what the war's audit trail records.
    pub fn operator(
        &self,
        reason: String,
    ) -> DomainResult<clanwar_domain::services::lifecycle::OperatorCommand> {
        let raw = self
            .headers
            .get("x-operator-id")
            .ok_or_else(|| DomainError::invalid("x-operator-id", "missing header"))?;
        let by = PlayerId::new(raw.as_str()).map_err(|source| DomainError::InvalidId {
            field: "x-operator-id".into(),
            source,
        })?;
        Ok(clanwar_domain::services::lifecycle::OperatorCommand {
            by,
            principal: self.principal.clone(),
            reason,
        })
    }

    /// The `Idempotency-Key` header, validated (400 naming the header when malformed).
    pub fn idempotency_key(&self) -> DomainResult<Option<String>> {
        match self.header("idempotency-key") {
            Some(key) => {
                clanwar_domain::declaration::validate_idempotency_key(key)?;
                Ok(Some(key.to_owned()))
            }
            None => Ok(None),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The JSON body as `T`, within `limit` bytes. Unknown fields, wrong types and out-of-range
    /// values are 400s that say what is wrong.
    pub fn json<T: DeserializeOwned>(&self, limit: usize) -> DomainResult<T> {
        if self.body.len() > limit {
            return Err(DomainError::invalid(
                "body",
                format!(
                    "body of {} bytes exceeds the {limit}-byte limit",
                    self.body.len()
                ),
            ));
        }
        if self.body.is_empty() {
            return Err(DomainError::invalid("body", "a JSON body is required"));
        }
        parse_json(&self.body).map_err(|e| DomainError::invalid("body", e.to_string()))
    }

    /// An optional query parameter parsed as `T` (400 when present but malformed).
    pub fn query<T: std::str::FromStr>(&self, name: &str) -> DomainResult<Option<T>> {
        match self.query.get(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|_| DomainError::invalid(name, format!("malformed value {raw:?}"))),
        }
    }

    /// Query parameters other than `allowed` are refused, like unknown body fields.
    pub fn only_query(&self, allowed: &[&str]) -> DomainResult<()> {
        match self.query.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(unknown) => Err(DomainError::invalid(unknown, "unknown query parameter")),
            None => Ok(()),
        }
    }
}

/// The parts of an API Gateway HTTP API (payload format 2.0) event that the routes use. Header
/// values are taken as the JSON strings they arrive as: API Gateway passes control characters
/// through, and `http::HeaderValue` (what `aws_lambda_events` parses headers into) refuses
/// them, which failed the whole invocation with a 500 before any route ran.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawHttpEvent {
    route_key: Option<String>,
    raw_query_string: Option<String>,
    #[serde(deserialize_with = "nullish")]
    headers: HashMap<String, Value>,
    #[serde(deserialize_with = "nullish")]
    query_string_parameters: HashMap<String, String>,
    #[serde(deserialize_with = "nullish")]
    path_parameters: HashMap<String, String>,
    request_context: RawContext,
    body: Option<String>,
    is_base64_encoded: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawContext {
    route_key: Option<String>,
    authorizer: Option<RawAuthorizer>,
}

/// `requestContext.authorizer`: with IAM authorisation, the caller's identity.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAuthorizer {
    iam: Option<RawIam>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawIam {
    user_arn: Option<String>,
}

/// `null` reads as an empty map (API Gateway sends `null` for absent parameters).
fn nullish<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Converts an API Gateway HTTP API (payload format 2.0) event, as raw JSON. Never fails: an
/// event that cannot be read is a request with [`HttpRequest::malformed`] set.
pub fn from_payload(payload: Value) -> HttpRequest {
    let event: RawHttpEvent = match serde_json::from_value(payload) {
        Ok(event) => event,
        Err(e) => {
            return HttpRequest {
                malformed: Some(Malformed {
                    field: "request".into(),
                    message: format!("not an HTTP API request: {e}"),
                }),
                ..HttpRequest::default()
            }
        }
    };
    // Names in lower case; a header whose value is not text (never sent by API Gateway) is dropped.
    let headers = event
        .headers
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(v) => Some((k.to_ascii_lowercase(), v)),
            _ => None,
        })
        .collect();
    // JSON arrives as text; a base64 body means a binary content type, which no route accepts.
    let body = match (event.body, event.is_base64_encoded) {
        (Some(_), true) => b"\0binary".to_vec(),
        (Some(text), false) => text.into_bytes(),
        (None, _) => Vec::new(),
    };
    let principal = event
        .request_context
        .authorizer
        .as_ref()
        .and_then(|a| a.iam.as_ref())
        .and_then(|iam| iam.user_arn.clone());
    HttpRequest {
        route: event
            .route_key
            .or(event.request_context.route_key)
            .unwrap_or_default(),
        path: event.path_parameters,
        query: event.query_string_parameters,
        headers,
        body,
        principal,
        malformed: event
            .raw_query_string
            .as_deref()
            .and_then(repeated_parameter),
    }
}

/// A query parameter named twice (`radius=10&radius=20`): API Gateway joins the values with a
/// comma, which could be read as one value, so the raw query string is checked.
fn repeated_parameter(raw_query: &str) -> Option<Malformed> {
    let mut seen = std::collections::HashSet::new();
    raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
        .find(|name| !seen.insert(*name))
        .map(|name| Malformed {
            field: name.to_owned(),
            message: "query parameter given more than once".into(),
        })
}

/// One HTTP API invocation, raw event in, raw response out: what every HTTP-facing Lambda
/// runs ([`serve`], and the functions that also take other events).
pub async fn answer<F, Fut>(payload: Value, handle: F) -> Value
where
    F: FnOnce(HttpRequest) -> Fut,
    Fut: std::future::Future<Output = DomainResult<HttpResponse>>,
{
    let response = respond(from_payload(payload), handle).await;
    serde_json::to_value(to_apigw(response)).expect("responses serialise")
}

/// Parses JSON as `T`, reading an integer-valued number written with a fraction (`40.0`,
/// `4e1`) as the integer it is: JSON has one number type, and `docs/openapi.json`'s `integer`
/// (JSON Schema) accepts such numbers, so integer fields do too. Non-integral numbers still
/// fail integer fields; nesting deeper than serde_json's recursion limit (128) is an error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let mut value: Value = serde_json::from_slice(bytes)?;
    integral_floats_as_integers(&mut value);
    T::deserialize(value)
}

/// Largest magnitude below which every integer is exact in an `f64` (2^53).
const EXACT_F64_INTEGERS: f64 = 9_007_199_254_740_992.0;

fn integral_floats_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() < EXACT_F64_INTEGERS {
                    // Exact: |f| < 2^53 is an integer an i64 holds.
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// Converts a route's answer into the API Gateway response.
pub fn to_apigw(response: HttpResponse) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in &response.headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(response.status);
    out.headers = headers;
    out.body = Some(Body::Text(response.body.to_string()));
    out
}

/// The Lambda entry of an HTTP-facing function: every request goes through `handler`.
pub async fn serve<H, Fut>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(HttpRequest) -> Fut,
    Fut: std::future::Future<Output = DomainResult<HttpResponse>> + Send,
{
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| async move {
            Ok::<_, std::convert::Infallible>(answer(event.payload, handler).await)
        },
    ))
    .await
}

/// Runs a route table and turns its error into the SPEC's body; logs every failure with its code.
pub async fn respond<F, Fut>(mut request: HttpRequest, handle: F) -> HttpResponse
where
    F: FnOnce(HttpRequest) -> Fut,
    Fut: std::future::Future<Output = DomainResult<HttpResponse>>,
{
    let started = std::time::Instant::now();
    let route = request.route.clone();
    calls::reset();
    let checked = match request.malformed.take() {
        Some(m) => Err(DomainError::invalid(m.field, m.message)),
        // A malformed actor is refused on every route, also those that do not read it.
        None if request.headers.contains_key("x-actor-id") => request
            .actor()
            .and_then(|_| crate::routes::check_body(&request)),
        None => crate::routes::check_body(&request),
    };
    let outcome = match checked {
        Ok(()) => handle(request).await,
        Err(err) => Err(err),
    };
    let mut response = match outcome {
        Ok(response) => response,
        Err(err) => {
            let status = crate::status::of(&err);
            if status >= 500 {
                tracing::error!(route, code = err.code(), error = ?err, "request failed");
            } else {
                tracing::info!(route, code = err.code(), status, "request refused");
            }
            HttpResponse::error(&err)
        }
    };
    let tally = calls::snapshot();
    telemetry::aws_calls(&route, &tally, &[]);
    response
        .headers
        .push(("server-timing", server_timing(&tally, started.elapsed())));
    response
}

/// The invocation's AWS calls and the handler's own wall time as `Server-Timing` entries
/// (shown by browser tools, read by the integration tests' call budgets and by the load
/// generator, `tools/loadgen`): `aws;dur=<ms busy>;desc="calls=N round-trips=M", app;dur=<ms>`.
/// `app − aws` is the time spent in our own code (and waiting for the CPU) during the request.
pub fn server_timing(tally: &calls::CallTally, app: std::time::Duration) -> String {
    format!(
        "aws;dur={:.1};desc=\"calls={} round-trips={}\", app;dur={:.1}",
        tally.busy.as_secs_f64() * 1_000.0,
        tally.calls,
        tally.round_trips,
        app.as_secs_f64() * 1_000.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::HttpStatus;
    use clanwar_domain::ids::WarId;

    fn request(body: &str) -> HttpRequest {
        HttpRequest {
            route: "POST /wars".into(),
            body: body.as_bytes().to_vec(),
            ..HttpRequest::default()
        }
    }

    #[test]
    fn a_503_tells_the_client_when_to_retry_and_others_do_not() {
        let busy = HttpResponse::error(&DomainError::Unavailable(
            clanwar_domain::ports::StoreError::Contention { attempts: 5 },
        ));
        assert_eq!(busy.status, 503);
        assert_eq!(
            busy.headers,
            vec![("retry-after", RETRY_AFTER_S.to_string())]
        );
        assert!(HttpResponse::error(&DomainError::ConcurrentModification)
            .headers
            .is_empty());
    }

    #[test]
    fn server_timing_names_the_calls_the_round_trips_and_the_handler_time() {
        let tally = calls::CallTally {
            calls: 7,
            round_trips: 2,
            busy: std::time::Duration::from_micros(4_260),
            ..Default::default()
        };
        assert_eq!(
            server_timing(&tally, std::time::Duration::from_micros(5_040)),
            "aws;dur=4.3;desc=\"calls=7 round-trips=2\", app;dur=5.0"
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        n: u8,
    }

    #[test]
    fn bodies_are_parsed_strictly_and_within_their_limit() {
        assert!(request(r#"{"n": 1}"#).json::<Body>(100).is_ok());
        assert_eq!(
            request(r#"{"n": 1, "x": 2}"#)
                .json::<Body>(100)
                .unwrap_err()
                .http_status(),
            400
        );
        assert_eq!(
            request(r#"{"n": 300}"#)
                .json::<Body>(100)
                .unwrap_err()
                .http_status(),
            400
        );
        assert_eq!(
            request(r#"{"n": 1}"#).json::<Body>(4).unwrap_err().code(),
            "INVALID_REQUEST"
        );
        assert_eq!(
            request("").json::<Body>(100).unwrap_err().http_status(),
            400
        );
    }

    #[test]
    fn ids_and_actors_are_validated() {
        let mut req = request("");
        req.path.insert("war_id".into(), "bad id".into());
        assert_eq!(req.id::<WarId>("war_id").unwrap_err().code(), "INVALID_ID");
        assert_eq!(req.actor().unwrap_err().code(), "MISSING_ACTOR");
        req.headers.insert("x-actor-id".into(), "p-1".into());
        assert_eq!(req.actor().unwrap().as_str(), "p-1");
    }

    #[test]
    fn unknown_query_parameters_are_refused() {
        let mut req = request("");
        req.query.insert("limit".into(), "5".into());
        assert!(req.only_query(&["limit"]).is_ok());
        assert_eq!(req.query::<usize>("limit").unwrap(), Some(5));
        req.query.insert("lmit".into(), "5".into());
        assert_eq!(req.only_query(&["limit"]).unwrap_err().http_status(), 400);
    }

    /// A raw payload format 2.0 event, as API Gateway hands it to the Lambda.
    fn event(route: &str, headers: Value, raw_query: &str, body: Option<&str>) -> Value {
        serde_json::json!({
            "version": "2.0",
            "routeKey": route,
            "rawPath": "/clans/c-1",
            "rawQueryString": raw_query,
            "headers": headers,
            "pathParameters": { "clan_id": "c-1" },
            "requestContext": {
                "routeKey": route,
                "http": { "method": "GET", "path": "/clans/c-1", "protocol": "HTTP/1.1",
                          "sourceIp": "127.0.0.1", "userAgent": "t" },
                "requestId": "r-1", "timeEpoch": 0
            },
            "body": body,
            "isBase64Encoded": false
        })
    }

    /// Answers 200 with the actor it was given (or the §10 error when the actor is refused).
    async fn echo_actor(request: HttpRequest) -> DomainResult<HttpResponse> {
        let actor = match request.header("x-actor-id") {
            Some(_) => Some(request.actor()?.as_str().to_owned()),
            None => None,
        };
        HttpResponse::ok(serde_json::json!({ "actor": actor, "route": request.route }))
    }

    #[tokio::test]
    async fn control_characters_in_headers_do_not_break_the_request() {
        for junk in ["a\u{1}b", "\u{0}", "x\u{7f}y", "\u{1b}[31m"] {
            let payload = event(
                "GET /clans/{clan_id}",
                serde_json::json!({ "x-junk": junk, "X-Other": "fine" }),
                "",
                None,
            );
            let answer = answer(payload, echo_actor).await;
            assert_eq!(answer["statusCode"], 200, "junk header {junk:?}: {answer}");
            let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
            assert_eq!(body["route"], "GET /clans/{clan_id}");
        }
    }

    #[tokio::test]
    async fn a_malformed_actor_header_is_a_400_with_the_error_body() {
        for actor in ["p\u{1}1", "\u{0}", "p-1\u{7f}", "p 1"] {
            let payload = event(
                "GET /clans/{clan_id}",
                serde_json::json!({ "x-actor-id": actor }),
                "",
                None,
            );
            let answer = answer(payload, echo_actor).await;
            assert_eq!(answer["statusCode"], 400, "actor {actor:?}: {answer}");
            let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "INVALID_ID");
            assert_eq!(body["error"]["details"]["field"], "x-actor-id");
            assert!(body["error"]["message"].is_string());
        }
        let fine = event(
            "GET /clans/{clan_id}",
            serde_json::json!({ "X-Actor-Id": "p-1" }),
            "",
            None,
        );
        let answer = answer(fine, echo_actor).await;
        assert_eq!(answer["statusCode"], 200);
        assert!(answer["body"].as_str().unwrap().contains("\"p-1\""));
    }

    #[tokio::test]
    async fn a_repeated_query_parameter_is_refused_before_the_route_runs() {
        let ran = std::sync::atomic::AtomicBool::new(false);
        let payload = event(
            "GET /clans/{clan_id}",
            serde_json::json!({}),
            "radius=10&radius=20",
            None,
        );
        let answer = answer(payload, |_| async {
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
            HttpResponse::ok(serde_json::json!({}))
        })
        .await;
        assert_eq!(answer["statusCode"], 400);
        assert!(answer["body"].as_str().unwrap().contains("\"radius\""));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(repeated_parameter("a=1&b=2&c"), None);
        assert_eq!(repeated_parameter("a=1&b=2&a").unwrap().field, "a");
    }

    #[tokio::test]
    async fn an_event_that_is_no_http_request_is_a_400_not_a_failed_invocation() {
        let answer = answer(serde_json::json!({ "headers": 5 }), echo_actor).await;
        assert_eq!(answer["statusCode"], 400);
    }

    #[tokio::test]
    async fn routes_without_a_body_refuse_one_before_they_run() {
        let route = "POST /alliances/{alliance_id}/invitations/{clan_id}/accept";
        for (body, status) in [
            (None, 200),
            (Some(""), 200),
            (Some("{}"), 200),
            (Some(" { } "), 200),
            (Some("{not json"), 400),
            (Some(r#"{"clan_id": "c-1"}"#), 400),
            (Some("[]"), 400),
            (Some("null"), 400),
        ] {
            let ran = std::sync::atomic::AtomicBool::new(false);
            let answer = answer(event(route, serde_json::json!({}), "", body), |_| async {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                HttpResponse::ok(serde_json::json!({}))
            })
            .await;
            assert_eq!(answer["statusCode"], status, "body {body:?}: {answer}");
            assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), status == 200);
        }
        let delete = event(
            "DELETE /alliances/{alliance_id}",
            serde_json::json!({}),
            "",
            Some("{x"),
        );
        assert_eq!(answer(delete, echo_actor).await["statusCode"], 400);
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Counted {
        max_players: u32,
        x: f64,
        #[serde(default)]
        nested: Vec<i64>,
    }

    #[test]
    fn integer_valued_floats_are_integers_and_fractions_are_not() {
        let parsed: Counted =
            parse_json(br#"{"max_players": 40.0, "x": 2.0, "nested": [1e2, -3.0]}"#).unwrap();
        assert_eq!(
            parsed,
            Counted {
                max_players: 40,
                x: 2.0,
                nested: vec![100, -3]
            }
        );
        assert!(parse_json::<Counted>(br#"{"max_players": 40.5, "x": 1}"#).is_err());
        assert!(parse_json::<Counted>(br#"{"max_players": -1.0, "x": 1}"#).is_err());
        assert!(parse_json::<Counted>(br#"{"max_players": 1e300, "x": 1}"#).is_err());
        let mut req = request(r#"{"max_players": 40.0, "x": 0.5}"#);
        assert_eq!(req.json::<Counted>(100).unwrap().max_players, 40);
        req.body = br#"{"max_players": 40.0, "x": 0.5, "y": 1}"#.to_vec();
        assert_eq!(req.json::<Counted>(100).unwrap_err().http_status(), 400);
    }

    #[test]
    fn deeply_nested_bodies_are_a_400_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            request(&deep)
                .json::<Counted>(usize::MAX)
                .unwrap_err()
                .http_status(),
            400
        );
    }
}
