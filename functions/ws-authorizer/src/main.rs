//! `ws-authorizer` Lambda: the WebSocket API's `$connect` REQUEST authorizer. Verifies the
//! player session token of the `token` query parameter against the signing keys in Secrets
//! Manager (`clanwar_edge::routes::realtime::authorize`).

use clanwar_edge::config::sessions_from_env;
use clanwar_edge::{routes, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let sessions = &sessions_from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        routes::realtime::authorize(sessions, event.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
