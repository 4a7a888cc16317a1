//! `territory-manager`: territory upserts and reads, the nearby query, capture and fortify.

use crate::http::{HttpRequest, HttpResponse, MAX_BODY_BYTES};
use clanwar_domain::ids::{ClanId, WarId};
use clanwar_domain::services::territories::{CaptureCommand, TerritoryService};
use clanwar_domain::services::Deps;
use clanwar_domain::territory::TerritoryInput;
use clanwar_domain::{DomainError, DomainResult};
use serde::Deserialize;
use serde_json::json;

pub const ROUTES: &[&str] = &[
    "PUT /territories/{territory_id}",
    "GET /territories/{territory_id}",
    "GET /territories",
    "POST /territories/{territory_id}/capture",
    "POST /territories/{territory_id}/fortify",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureBody {
    war_id: WarId,
    clan_id: ClanId,
    /// When the capture happened in the game (a late report during ENDING still counts).
    #[serde(default)]
    occurred_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FortifyBody {
    clan_id: ClanId,
}

pub async fn handle(deps: &Deps, req: HttpRequest) -> DomainResult<HttpResponse> {
    let territories = TerritoryService::new(deps.into());
    match req.route.as_str() {
        "PUT /territories/{territory_id}" => {
            let input: TerritoryInput = req.json(MAX_BODY_BYTES)?;
            HttpResponse::ok(territories.upsert(req.id("territory_id")?, input).await?)
        }
        "GET /territories/{territory_id}" => {
            HttpResponse::ok(territories.get(&req.id("territory_id")?).await?)
        }
        "GET /territories" => {
            req.only_query(&["x", "y", "radius"])?;
            let need = |name: &str| -> DomainResult<f64> {
                req.query::<f64>(name)?
                    .ok_or_else(|| DomainError::invalid(name, "required query parameter"))
            };
            let found = territories
                .nearby(need("x")?, need("y")?, need("radius")?)
                .await?;
            let items: Vec<_> = found
                .into_iter()
                .map(
                    |(territory, distance)| json!({ "territory": territory, "distance": distance }),
                )
                .collect();
            HttpResponse::ok(json!({ "territories": items }))
        }
        "POST /territories/{territory_id}/capture" => {
            let body: CaptureBody = req.json(MAX_BODY_BYTES)?;
            let territory_id = req.id("territory_id")?;
            // A retried capture of the same request counts once (Idempotency-Key); without one,
            // a repeat is refused anyway because the clan already owns the territory.
            let dedupe_id = match req.idempotency_key()? {
                Some(key) => format!("api-capture#{territory_id}#{key}"),
                None => format!("api-capture#{territory_id}#{}", deps.ids.new_id()),
            };
            let receipt = territories
                .capture(CaptureCommand {
                    territory_id,
                    war_id: body.war_id,
                    clan_id: body.clan_id,
                    actor: Some(req.actor()?),
                    dedupe_id,
                    occurred_at: body.occurred_at,
                })
                .await?;
            HttpResponse::ok(json!({ "territory": receipt.territory, "points": receipt.points }))
        }
        "POST /territories/{territory_id}/fortify" => {
            let body: FortifyBody = req.json(MAX_BODY_BYTES)?;
            HttpResponse::ok(
                territories
                    .fortify(req.id("territory_id")?, body.clan_id, req.actor()?)
                    .await?,
            )
        }
        other => Ok(HttpResponse::no_route(other)),
    }
}
