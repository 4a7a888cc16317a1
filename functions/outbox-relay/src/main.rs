//! `outbox-relay` Lambda: publishes outbox events to EventBridge off the callers' path — new
//! entries from the table's stream as they commit, and, on a schedule, any entry the stream
//! could not deliver.

use clanwar_edge::outbox::{relay_stream, sweep};
use clanwar_edge::{deps_from_env, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let deps = deps_from_env().await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Stream batches carry `Records`; the schedule's EventBridge event does not.
        if event.payload.get("Records").is_some() {
            let batch = serde_json::from_value(event.payload)?;
            let response = relay_stream(deps, batch).await?;
            return Ok::<_, lambda_runtime::Error>(serde_json::to_value(response)?);
        }
        let report = sweep(deps).await?;
        Ok(serde_json::json!({
            "published": report.published,
            "failed": report.failed.len()
        }))
    }))
    .await
}
