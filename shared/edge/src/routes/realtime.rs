//! The WebSocket side: `ws-connections` ($connect, $disconnect, subscribe and $default), the
//! `$connect` authorizer (`ws-authorizer`) and the `event-handler` that pushes every domain event
//! arriving on the fan-out queue.

use crate::telemetry;
use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use clanwar_domain::ids::PlayerId;
use clanwar_domain::realtime::{Realtime, SubscribeRequest};
use clanwar_domain::session::{AuthError, Sessions};
use clanwar_domain::{DomainError, DomainResult};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The parts of an API Gateway WebSocket event the routes use. Read from the raw JSON, not
/// through `aws_lambda_events`' request type: that one parses the `$connect` headers into
/// `http::HeaderMap`, which refuses control characters API Gateway passes through, and so failed
/// the whole connect (a 500) for a header no route reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawWsEvent {
    request_context: RawWsContext,
    body: Option<String>,
    is_base64_encoded: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawWsContext {
    route_key: Option<String>,
    connection_id: Option<String>,
    /// What the `$connect` authorizer returned in `context` (plus API Gateway's `principalId`).
    #[serde(deserialize_with = "nullish")]
    authorizer: HashMap<String, Value>,
}

/// `null` reads as the default (API Gateway sends `null` for absent maps).
fn nullish<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The authorizer's context key naming the connection's player.
pub const PLAYER_CONTEXT_KEY: &str = "player_id";

/// Handles one WebSocket route invocation (the event as raw JSON; it never fails to read).
pub async fn handle_ws(realtime: &Realtime, payload: Value) -> ApiGatewayProxyResponse {
    let event: RawWsEvent = serde_json::from_value(payload).unwrap_or_default();
    let ctx = &event.request_context;
    let route = ctx.route_key.clone().unwrap_or_default();
    let connection = ctx.connection_id.clone().unwrap_or_default();
    let result = match route.as_str() {
        "$connect" => match authorized_player(&ctx.authorizer) {
            Some(player) => realtime
                .connect(&connection, &player, chrono::Utc::now())
                .await
                .map(|()| json!({})),
            // Only without the authorizer in front (a wiring mistake): refuse the handshake.
            None => return unauthenticated(&connection),
        },
        "$disconnect" => realtime.disconnect(&connection).await.map(|()| json!({})),
        // `subscribe`, and `$default`: anything whose `action` API Gateway could not select
        // (not JSON, nested too deeply, another action) gets the subscription's §10 refusal.
        _ => {
            let body = if event.is_base64_encoded {
                None // a binary frame: no JSON to read
            } else {
                event.body.as_deref()
            };
            subscribe(realtime, &connection, body).await
        }
    };
    let (status, body) = match result {
        Ok(body) => (200, body),
        Err(err) => (crate::status::of(&err), err.to_body()),
    };
    tracing::info!(route, connection, status, "websocket route");
    response(status, body)
}

fn response(status: u16, body: Value) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.body = Some(Body::Text(body.to_string()));
    response
}

fn authorized_player(context: &HashMap<String, Value>) -> Option<PlayerId> {
    context
        .get(PLAYER_CONTEXT_KEY)
        .and_then(Value::as_str)
        .and_then(|raw| PlayerId::new(raw).ok())
}

fn unauthenticated(connection: &str) -> ApiGatewayProxyResponse {
    tracing::warn!(
        connection,
        "$connect without an authorized player (is the authorizer attached to the route?)"
    );
    response(
        401,
        json!({ "error": {
            "code": "UNAUTHENTICATED",
            "message": "no authorized player: connect with ?token=<session token>",
            "details": {}
        }}),
    )
}

async fn subscribe(
    realtime: &Realtime,
    connection: &str,
    body: Option<&str>,
) -> DomainResult<serde_json::Value> {
    let request: SubscribeRequest = serde_json::from_str(body.unwrap_or_default())
        .map_err(|e| DomainError::invalid("body", e.to_string()))?;
    let topic = realtime.subscribe(connection, &request).await?;
    Ok(json!({ "subscribed": topic.to_string() }))
}

// ----- the $connect authorizer ----------------------------------------------------------------

/// The parts of API Gateway's REQUEST authorizer event for a WebSocket `$connect` that the
/// authorizer reads (raw JSON again, for the same reason as [`RawWsEvent`]).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawAuthorizerEvent {
    method_arn: String,
    #[serde(deserialize_with = "nullish")]
    query_string_parameters: HashMap<String, String>,
}

/// The query parameter carrying the session token (the template's `IdentitySource` is
/// `route.request.querystring.token`: browsers cannot set headers on a WebSocket).
pub const TOKEN_PARAMETER: &str = "token";

/// The authorizer's answer: an IAM policy on the `$connect` method and, when allowed, the
/// player in `context` (API Gateway hands it to every route as `requestContext.authorizer`).
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerResponse {
    pub principal_id: String,
    pub policy_document: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

impl AuthorizerResponse {
    fn new(principal: &str, effect: &str, method_arn: &str) -> Self {
        Self {
            principal_id: principal.to_owned(),
            policy_document: json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Action": "execute-api:Invoke",
                    "Effect": effect,
                    "Resource": method_arn,
                }],
            }),
            context: None,
        }
    }
}

/// Why the authorizer could not decide (API Gateway refuses the handshake with a 500).
#[derive(Debug, thiserror::Error)]
#[error("session keys unavailable")]
pub struct AuthorizerUnavailable(#[source] pub clanwar_domain::ports::StoreError);

/// The `$connect` authorizer: Allow with the token's player, or Deny (API Gateway answers 403)
/// for a missing, malformed, forged or expired token. Never logs the token.
pub async fn authorize(
    sessions: &Sessions,
    payload: Value,
) -> Result<AuthorizerResponse, AuthorizerUnavailable> {
    let event: RawAuthorizerEvent = serde_json::from_value(payload).unwrap_or_default();
    let token = event
        .query_string_parameters
        .get(TOKEN_PARAMETER)
        .map(String::as_str)
        .unwrap_or_default();
    match sessions.authenticate(token).await {
        Ok(player) => {
            tracing::info!(player = %player, "connection allowed");
            let mut answer = AuthorizerResponse::new(player.as_str(), "Allow", &event.method_arn);
            answer.context = Some(json!({ PLAYER_CONTEXT_KEY: player.as_str() }));
            Ok(answer)
        }
        Err(AuthError::Token(reason)) => {
            tracing::info!(reason = %reason, "connection denied");
            Ok(AuthorizerResponse::new(
                "anonymous",
                "Deny",
                &event.method_arn,
            ))
        }
        Err(AuthError::Unavailable(err)) => {
            tracing::error!(error = %err, "session keys unavailable");
            Err(AuthorizerUnavailable(err))
        }
    }
}

/// Pushes the domain events carried by a batch of fan-out queue messages (each an EventBridge
/// event whose `detail` is the envelope) with one [`Realtime::fan_out_all`]; a message that is
/// not an event, or whose event could not be pushed, goes back to the queue. Each pushed event
/// is logged with its lag (`lag_ms`: from `occurred_at` to pushed; `queued_ms`: from the
/// message's arrival on the queue), and the batch's largest lag is the `PushLag` metric.
pub async fn fan_out(realtime: &Realtime, batch: SqsEvent) -> SqsBatchResponse {
    crate::sqs::whole_batch(
        batch,
        |record| {
            let event = crate::sqs::bus_event(record.body.as_deref().unwrap_or_default())?;
            let sent = record
                .attributes
                .get("SentTimestamp")
                .and_then(|ms| ms.parse::<i64>().ok());
            Ok::<_, DomainError>((event, sent))
        },
        |records| async move {
            let events: Vec<_> = records.iter().map(|(event, _)| event.clone()).collect();
            let reports = realtime.fan_out_all(&events).await;
            let now = chrono::Utc::now();
            let mut worst: Option<i64> = None;
            let results = records
                .iter()
                .zip(reports)
                .map(|((event, sent), report)| {
                    let report = report?;
                    let lag_ms = (now - event.occurred_at).num_milliseconds();
                    worst = worst.max(Some(lag_ms));
                    tracing::info!(
                        event_id = %event.event_id,
                        event_type = event.event_type(),
                        delivered = report.delivered,
                        stale_removed = report.stale_removed,
                        failed = report.failed,
                        lag_ms,
                        queued_ms = sent.map(|ms| now.timestamp_millis() - ms),
                        "event pushed"
                    );
                    Ok(())
                })
                .collect::<Vec<DomainResult<()>>>();
            if let Some(lag) = worst {
                telemetry::metric(
                    telemetry::PUSH_LAG_METRIC,
                    lag as f64,
                    "Milliseconds",
                    &[("Stage", telemetry::stage())],
                );
            }
            results
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clanwar_domain::memory::MemoryStore;
    use clanwar_domain::realtime::memory::{MemoryConnections, RecordingPusher};
    use clanwar_domain::realtime::Connections;
    use clanwar_domain::session::memory::sessions;
    use clanwar_domain::system::SystemClock;
    use std::sync::Arc;

    fn realtime() -> (Realtime, Arc<MemoryConnections>) {
        let connections = Arc::new(MemoryConnections::default());
        let realtime = Realtime {
            connections: connections.clone(),
            pusher: Arc::new(RecordingPusher::default()),
            store: Arc::new(MemoryStore::new()),
        };
        (realtime, connections)
    }

    fn connect_event(headers: Value, authorizer: Value) -> Value {
        json!({
            "headers": headers,
            "multiValueHeaders": {},
            "requestContext": {
                "routeKey": "$connect", "eventType": "CONNECT", "connectionId": "c-1",
                "authorizer": authorizer,
            },
            "isBase64Encoded": false,
        })
    }

    #[tokio::test]
    async fn control_characters_in_connect_headers_do_not_fail_the_connect() {
        let (rt, connections) = realtime();
        let headers = json!({"X-Junk": "a\u{1}b", "X-Nul": "\u{0}", "X-Del": "\u{7f}"});
        let authorizer = json!({"player_id": "p-7", "principalId": "p-7"});
        let answer = handle_ws(&rt, connect_event(headers, authorizer)).await;
        assert_eq!(answer.status_code, 200);
        assert_eq!(
            connections.player_of("c-1").await.unwrap(),
            Some(PlayerId::new("p-7").unwrap())
        );
    }

    #[tokio::test]
    async fn a_connect_without_an_authorized_player_is_refused() {
        let (rt, connections) = realtime();
        for authorizer in [json!(null), json!({}), json!({"player_id": "not an id!"})] {
            let answer = handle_ws(&rt, connect_event(json!({}), authorizer)).await;
            assert_eq!(answer.status_code, 401);
        }
        assert_eq!(connections.player_of("c-1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn frames_that_are_no_subscription_get_the_error_body() {
        let (rt, _) = realtime();
        let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
        for (body, base64) in [
            (deep.as_str(), false),
            ("not json", false),
            (r#"{"action":"other"}"#, false),
            ("AJ+Slg==", true),
        ] {
            let event = json!({
                "requestContext": {"routeKey": "$default", "connectionId": "c-1"},
                "body": body, "isBase64Encoded": base64,
            });
            let answer = handle_ws(&rt, event).await;
            assert_eq!(answer.status_code, 400);
            let Some(Body::Text(text)) = answer.body else {
                panic!("no body")
            };
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(body["error"]["code"], "INVALID_REQUEST", "{body}");
        }
    }

    fn authorizer_event(token: Option<&str>) -> Value {
        json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:api1/dev/$connect",
            "headers": {"X-Junk": "a\u{1}b"},
            "queryStringParameters": token.map(|t| json!({"token": t})),
            "requestContext": {"routeKey": "$connect", "connectionId": "c-1"},
        })
    }

    #[tokio::test]
    async fn the_authorizer_allows_a_valid_token_with_its_player_and_denies_the_rest() {
        let sessions = sessions(Arc::new(SystemClock));
        let token = sessions
            .issue(&PlayerId::new("p-1").unwrap())
            .await
            .unwrap()
            .token;
        let allowed = authorize(&sessions, authorizer_event(Some(&token)))
            .await
            .unwrap();
        let arn = "arn:aws:execute-api:us-east-1:123456789012:api1/dev/$connect";
        assert_eq!(allowed.principal_id, "p-1");
        assert_eq!(allowed.policy_document["Statement"][0]["Effect"], "Allow");
        assert_eq!(allowed.policy_document["Statement"][0]["Resource"], arn);
        assert_eq!(allowed.context, Some(json!({"player_id": "p-1"})));
        let tampered = format!("{}x", &token[..token.len() - 1]);
        for bad in [None, Some(""), Some("junk"), Some(tampered.as_str())] {
            let denied = authorize(&sessions, authorizer_event(bad)).await.unwrap();
            assert_eq!(denied.policy_document["Statement"][0]["Effect"], "Deny");
            assert_eq!(denied.context, None);
        }
        // The answer is what API Gateway reads.
        let wire = serde_json::to_value(&allowed).unwrap();
        assert!(wire["principalId"].is_string() && wire["policyDocument"].is_object());
    }

    #[tokio::test]
    async fn a_batch_is_pushed_whole_and_only_its_unreadable_record_goes_back_to_the_queue() {
        use clanwar_domain::ids::WarId;
        use clanwar_domain::realtime::Topic;
        let connections = Arc::new(MemoryConnections::default());
        let pusher = Arc::new(RecordingPusher::default());
        let rt = Realtime {
            connections: connections.clone(),
            pusher: pusher.clone(),
            store: Arc::new(MemoryStore::new()),
        };
        let war = Topic::War(WarId::new("w1").unwrap());
        connections.subscribe("c-1", &war).await.unwrap();
        let envelope = |id: &str| {
            json!({"detail-type": "WarPhaseChanged", "source": "clanwar", "detail": {
                "event_id": id, "type": "WarPhaseChanged", "schema_version": 1,
                "occurred_at": "2026-01-01T00:00:00Z", "war_id": "w1", "clan_ids": [],
                "detail": {"from": "ACTIVE", "to": "ENDING", "version": 3}}})
            .to_string()
        };
        let batch: SqsEvent = serde_json::from_value(json!({"Records": [
            {"messageId": "m1", "body": envelope("e1")},
            {"messageId": "m2", "body": "{not json"},
            {"messageId": "m3", "body": envelope("e2")},
        ]}))
        .unwrap();
        let response = fan_out(&rt, batch).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m2"]);
        let pushed: Vec<Value> = pusher
            .pushed
            .lock()
            .unwrap()
            .iter()
            .map(|(c, body)| {
                assert_eq!(c, "c-1");
                serde_json::from_slice(body).unwrap()
            })
            .collect();
        assert_eq!(
            pushed
                .iter()
                .map(|p| p["event_id"].clone())
                .collect::<Vec<_>>(),
            [json!("e1"), json!("e2")]
        );
    }
}
