//! `reward-distributor` Lambda: the rewards route of the HTTP API, and the steps of the reward
//! saga (Step Functions tasks).

use clanwar_edge::{deps_from_env, routes, tasks, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let deps = &deps_from_env().await?;
    tasks::serve_with_http(
        |task| routes::rewards::task(deps, task),
        |request| routes::rewards::handle(deps, request),
    )
    .await
}
