//! `alliance-manager`: alliances, invitations, leaving and dissolving.

use crate::http::{HttpRequest, HttpResponse, MAX_BODY_BYTES};
use clanwar_domain::ids::ClanId;
use clanwar_domain::services::alliances::AllianceService;
use clanwar_domain::services::Deps;
use clanwar_domain::DomainResult;
use serde::Deserialize;
use serde_json::json;

pub const ROUTES: &[&str] = &[
    "POST /alliances",
    "GET /alliances/{alliance_id}",
    "POST /alliances/{alliance_id}/invitations",
    "POST /alliances/{alliance_id}/invitations/{clan_id}/accept",
    "POST /alliances/{alliance_id}/invitations/{clan_id}/decline",
    "POST /alliances/{alliance_id}/leave",
    "DELETE /alliances/{alliance_id}",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    founder_clan_id: ClanId,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClanBody {
    clan_id: ClanId,
}

pub async fn handle(deps: &Deps, req: HttpRequest) -> DomainResult<HttpResponse> {
    let alliances = AllianceService::new(deps.into());
    match req.route.as_str() {
        "POST /alliances" => {
            let body: CreateBody = req.json(MAX_BODY_BYTES)?;
            HttpResponse::created(
                alliances
                    .create(&body.name, &body.founder_clan_id, &req.actor()?)
                    .await?,
            )
        }
        "GET /alliances/{alliance_id}" => {
            HttpResponse::ok(alliances.get(&req.id("alliance_id")?).await?)
        }
        "POST /alliances/{alliance_id}/invitations" => {
            let body: ClanBody = req.json(MAX_BODY_BYTES)?;
            let invitation = alliances
                .invite(&req.id("alliance_id")?, &body.clan_id, &req.actor()?)
                .await?;
            HttpResponse::created(invitation)
        }
        "POST /alliances/{alliance_id}/invitations/{clan_id}/accept" => {
            let alliance = alliances
                .accept(&req.id("alliance_id")?, &req.id("clan_id")?, &req.actor()?)
                .await?;
            HttpResponse::ok(alliance)
        }
        "POST /alliances/{alliance_id}/invitations/{clan_id}/decline" => {
            alliances
                .decline(&req.id("alliance_id")?, &req.id("clan_id")?, &req.actor()?)
                .await?;
            HttpResponse::ok(json!({ "declined": true }))
        }
        "POST /alliances/{alliance_id}/leave" => {
            let body: ClanBody = req.json(MAX_BODY_BYTES)?;
            HttpResponse::ok(
                alliances
                    .leave(&req.id("alliance_id")?, &body.clan_id, &req.actor()?)
                    .await?,
            )
        }
        "DELETE /alliances/{alliance_id}" => {
            alliances
                .dissolve(&req.id("alliance_id")?, &req.actor()?)
                .await?;
            HttpResponse::ok(json!({ "dissolved": true }))
        }
        other => Ok(HttpResponse::no_route(other)),
    }
}
