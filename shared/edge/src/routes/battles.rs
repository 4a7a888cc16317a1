//! `battle-manager`: battle creation, state and resolution.

use crate::http::{HttpRequest, HttpResponse, MAX_BODY_BYTES};
use clanwar_domain::battle::{BattleInput, ResolveInput};
use clanwar_domain::services::battles::BattleService;
use clanwar_domain::services::Deps;
use clanwar_domain::DomainResult;

pub const ROUTES: &[&str] = &[
    "POST /wars/{war_id}/battles",
    "GET /wars/{war_id}/battles/{battle_id}",
    "POST /wars/{war_id}/battles/{battle_id}/resolve",
];

pub async fn handle(deps: &Deps, req: HttpRequest) -> DomainResult<HttpResponse> {
    let battles = BattleService::new(deps.into());
    match req.route.as_str() {
        "POST /wars/{war_id}/battles" => {
            let input: BattleInput = req.json(MAX_BODY_BYTES)?;
            HttpResponse::created(battles.create(&req.id("war_id")?, input).await?)
        }
        "GET /wars/{war_id}/battles/{battle_id}" => HttpResponse::ok(
            battles
                .get(&req.id("war_id")?, &req.id("battle_id")?)
                .await?,
        ),
        "POST /wars/{war_id}/battles/{battle_id}/resolve" => {
            let input: ResolveInput = req.json(MAX_BODY_BYTES)?;
            let battle = battles
                .resolve(&req.id("war_id")?, &req.id("battle_id")?, input)
                .await?;
            HttpResponse::ok(battle)
        }
        other => Ok(HttpResponse::no_route(other)),
    }
}
