//! `phase-controller` Lambda: tasks of the war-lifecycle state machine, and the follow-up of a
//! declaration and of a war's end from the war-endings queue (make sure the declare-war saga runs,
//! start the reward saga, stop the timers).

use clanwar_edge::{deps_from_env, routes, tasks, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let deps = &deps_from_env().await?;
    tasks::serve_with_queue(
        |task| routes::phases::handle(deps, task),
        |record| async move {
            let body = record.body.as_deref().unwrap_or_default();
            routes::phases::react(deps, body).await
        },
    )
    .await
}
