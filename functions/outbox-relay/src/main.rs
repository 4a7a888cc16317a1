//! `outbox-relay` Lambda: on a schedule, publishes outbox events whose first publish failed.

use clanwar_domain::services::outbox::relay;
use clanwar_edge::{deps_from_env, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};

/// Events per run; a backlog drains over consecutive runs.
const BATCH: usize = 500;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let deps = deps_from_env().await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let report = relay(deps, BATCH).await?;
            tracing::info!(
                published = report.published,
                failed = report.failed,
                "outbox relayed"
            );
            Ok::<_, lambda_runtime::Error>(serde_json::json!({
                "published": report.published,
                "failed": report.failed
            }))
        },
    ))
    .await
}
