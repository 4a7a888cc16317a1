//! `battle-manager` Lambda: the `battles` routes of the HTTP API (see `clanwar_edge::routes::battles`).

use clanwar_edge::{deps_from_env, http, routes, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let deps = deps_from_env().await?;
    http::serve(|request| routes::battles::handle(&deps, request)).await
}
