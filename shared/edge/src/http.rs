//! The HTTP boundary (SPEC §10, §13): API Gateway HTTP API events in, JSON out. Bodies are
//! size-limited and parsed into `deny_unknown_fields` types before any service runs; every
//! error becomes the SPEC's `{ "error": { code, message, details } }` body here, in one place.

use crate::telemetry;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use clanwar_aws::calls;
use clanwar_domain::ids::{IdError, PlayerId};
use clanwar_domain::{DomainError, DomainResult};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// Largest body accepted by ordinary routes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
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
        if err.status() == 503 {
            headers.push(("retry-after", RETRY_AFTER_S.to_string()));
        }
        Self {
            status: err.status(),
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
    ) -> DomainResult<clanwar_domain::services::wars::OperatorCommand> {
        let raw = self
            .headers
            .get("x-operator-id")
            .ok_or_else(|| DomainError::invalid("x-operator-id", "missing header"))?;
        let by = PlayerId::new(raw.as_str()).map_err(|source| DomainError::InvalidId {
            field: "x-operator-id".into(),
            source,
        })?;
        Ok(clanwar_domain::services::wars::OperatorCommand {
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
        serde_json::from_slice(&self.body).map_err(|e| DomainError::invalid("body", e.to_string()))
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

/// Converts an API Gateway HTTP API (payload format 2.0) event.
pub fn from_apigw(event: ApiGatewayV2httpRequest) -> HttpRequest {
    let headers = event
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_owned())))
        .collect();
    let query = event
        .query_string_parameters
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
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
        query,
        headers,
        body,
        principal,
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
        move |event: lambda_runtime::LambdaEvent<ApiGatewayV2httpRequest>| async move {
            let response = respond(from_apigw(event.payload), handler).await;
            Ok::<_, std::convert::Infallible>(to_apigw(response))
        },
    ))
    .await
}

/// Runs a route table and turns its error into the SPEC's body; logs every failure with its code.
pub async fn respond<F, Fut>(request: HttpRequest, handle: F) -> HttpResponse
where
    F: FnOnce(HttpRequest) -> Fut,
    Fut: std::future::Future<Output = DomainResult<HttpResponse>>,
{
    let started = std::time::Instant::now();
    let route = request.route.clone();
    calls::reset();
    let mut response = match handle(request).await {
        Ok(response) => response,
        Err(err) => {
            if err.status() >= 500 {
                tracing::error!(route, code = err.code(), error = ?err, "request failed");
            } else {
                tracing::info!(
                    route,
                    code = err.code(),
                    status = err.status(),
                    "request refused"
                );
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
                .status(),
            400
        );
        assert_eq!(
            request(r#"{"n": 300}"#)
                .json::<Body>(100)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            request(r#"{"n": 1}"#).json::<Body>(4).unwrap_err().code(),
            "INVALID_REQUEST"
        );
        assert_eq!(request("").json::<Body>(100).unwrap_err().status(), 400);
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
        assert_eq!(req.only_query(&["limit"]).unwrap_err().status(), 400);
    }
}
