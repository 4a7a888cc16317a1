//! The WebSocket side: `ws-connections` ($connect, $disconnect, subscribe) and the
//! `event-handler` that pushes every domain event arriving on the fan-out queue.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use clanwar_domain::realtime::{FanoutReport, Realtime, SubscribeRequest};
use clanwar_domain::{DomainError, DomainResult};
use serde_json::json;

/// Handles one WebSocket route invocation.
pub async fn handle_ws(
    realtime: &Realtime,
    request: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let ctx = &request.request_context;
    let route = ctx.route_key.clone().unwrap_or_default();
    let connection = ctx.connection_id.clone().unwrap_or_default();
    let result = match route.as_str() {
        "$connect" => realtime
            .connect(&connection, chrono::Utc::now())
            .await
            .map(|()| json!({})),
        "$disconnect" => realtime.disconnect(&connection).await.map(|()| json!({})),
        _ => subscribe(realtime, &connection, request.body.as_deref()).await,
    };
    let (status, body) = match result {
        Ok(body) => (200, body),
        Err(err) => (crate::status::of(&err), err.to_body()),
    };
    tracing::info!(route, connection, status, "websocket route");
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.body = Some(Body::Text(body.to_string()));
    response
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

/// Pushes the domain event carried by one fan-out queue message (an EventBridge event whose
/// `detail` is the envelope).
pub async fn fan_out(realtime: &Realtime, body: &str) -> DomainResult<FanoutReport> {
    let event = crate::sqs::bus_event(body)?;
    let report = realtime.fan_out(&event).await?;
    tracing::info!(
        event_id = %event.event_id,
        event_type = event.event_type(),
        delivered = report.delivered,
        stale_removed = report.stale_removed,
        "event pushed"
    );
    Ok(report)
}
