//! `war-manager` Lambda: the `wars` routes of the HTTP API (see `clanwar_edge::routes::wars`),
//! and the steps of the declare-war saga (Step Functions tasks).

use clanwar_edge::{deps_from_env, routes, tasks, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let deps = &deps_from_env().await?;
    tasks::serve_with_http(
        |task| routes::wars::task(deps, task),
        |request| routes::wars::handle(deps, request),
    )
    .await
}
