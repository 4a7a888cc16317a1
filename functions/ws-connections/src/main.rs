//! `ws-connections` Lambda: the WebSocket API's $connect, $disconnect, subscribe and $default
//! routes (the event is read as raw JSON: see `clanwar_edge::routes::realtime`).

use clanwar_edge::config::realtime_from_env;
use clanwar_edge::{routes, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let realtime = &realtime_from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, lambda_runtime::Error>(routes::realtime::handle_ws(realtime, event.payload).await)
    }))
    .await
}
