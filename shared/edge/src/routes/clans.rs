//! `clan-registry`: the guild service's clan snapshots, the clan views and the players'
//! WebSocket session tokens (issued to the game server acting for a player).

use crate::http::{HttpRequest, HttpResponse, MAX_CLAN_BODY_BYTES};
use clanwar_domain::clan::ClanSnapshot;
use clanwar_domain::ids::{ClanId, PlayerId};
use clanwar_domain::services::clans::ClanService;
use clanwar_domain::services::wars::WarService;
use clanwar_domain::services::Deps;
use clanwar_domain::session::Sessions;
use clanwar_domain::war::WarStatus;
use clanwar_domain::{DomainError, DomainResult};
use serde_json::json;

pub const ROUTES: &[&str] = &[
    "PUT /clans/{clan_id}",
    "GET /clans/{clan_id}",
    "GET /clans/{clan_id}/wars",
    "POST /players/{player_id}/session-token",
];

/// Default page size of the war log.
const DEFAULT_LIMIT: usize = 20;

pub async fn handle(
    deps: &Deps,
    sessions: &Sessions,
    req: HttpRequest,
) -> DomainResult<HttpResponse> {
    let clans = ClanService::new(deps.into());
    match req.route.as_str() {
        "POST /players/{player_id}/session-token" => {
            let player: PlayerId = req.id("player_id")?;
            HttpResponse::ok(sessions.issue(&player).await?)
        }
        "PUT /clans/{clan_id}" => {
            let snapshot: ClanSnapshot = req.json(MAX_CLAN_BODY_BYTES)?;
            HttpResponse::ok(clans.upsert(req.id("clan_id")?, snapshot).await?)
        }
        "GET /clans/{clan_id}" => HttpResponse::ok(clans.get(&req.id("clan_id")?).await?),
        "GET /clans/{clan_id}/wars" => {
            req.only_query(&["status", "limit", "cursor"])?;
            let status = match req.query.get("status") {
                Some(raw) => Some(
                    WarStatus::parse(raw)
                        .ok_or_else(|| DomainError::invalid("status", "unknown war status"))?,
                ),
                None => None,
            };
            let limit = req.query::<usize>("limit")?.unwrap_or(DEFAULT_LIMIT);
            let clan: ClanId = req.id("clan_id")?;
            let page = WarService::new(deps.into())
                .list_for_clan(&clan, status, limit, req.query.get("cursor").cloned())
                .await?;
            HttpResponse::ok(json!({ "wars": page.items, "next_cursor": page.next_cursor }))
        }
        other => Ok(HttpResponse::no_route(other)),
    }
}
