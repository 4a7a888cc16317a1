//! `phase-controller` Lambda: tasks of the war-lifecycle state machine.

use clanwar_edge::{deps_from_env, routes, tasks, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let deps = deps_from_env().await?;
    tasks::serve(|task| routes::phases::handle(&deps, task)).await
}
