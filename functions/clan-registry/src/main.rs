//! `clan-registry` Lambda: the `clans` routes of the HTTP API and the players' session tokens
//! (see `clanwar_edge::routes::clans`).

use clanwar_edge::config::sessions_from_env;
use clanwar_edge::{deps_from_env, http, routes, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let deps = deps_from_env().await?;
    let sessions = sessions_from_env().await?;
    http::serve(|request| routes::clans::handle(&deps, &sessions, request)).await
}
