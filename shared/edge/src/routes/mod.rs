//! Route tables, one per HTTP-facing function. Each maps the API Gateway route keys of
//! `infra/template.yaml` to one service call; `all_routes` lists them for the conformance test.

pub mod alliances;
pub mod battles;
pub mod clans;
pub mod phases;
pub mod queue;
pub mod realtime;
pub mod rewards;
pub mod scores;
pub mod territories;
pub mod wars;

/// Every route key served, with the function that serves it.
pub fn all_routes() -> Vec<(&'static str, &'static str)> {
    [
        ("clan-registry", clans::ROUTES),
        ("war-manager", wars::ROUTES),
        ("territory-manager", territories::ROUTES),
        ("battle-manager", battles::ROUTES),
        ("score-calculator", scores::ROUTES),
        ("reward-distributor", rewards::ROUTES),
        ("alliance-manager", alliances::ROUTES),
    ]
    .into_iter()
    .flat_map(|(function, routes)| routes.iter().map(move |r| (function, *r)))
    .collect()
}

/// Routes that take no body besides every `GET` and `DELETE` (their OpenAPI operations have no
/// `requestBody`; `tests/openapi.rs` checks the two agree).
const WITHOUT_BODY: &[&str] = &[
    "POST /alliances/{alliance_id}/invitations/{clan_id}/accept",
    "POST /alliances/{alliance_id}/invitations/{clan_id}/decline",
    "POST /players/{player_id}/session-token",
];

/// Whether `route` reads a JSON body.
pub fn takes_body(route: &str) -> bool {
    !(route.starts_with("GET ") || route.starts_with("DELETE ") || WITHOUT_BODY.contains(&route))
}

/// The body check of routes that take none, run before the route (SPEC §10: 400 before any
/// write): an absent body, or an empty JSON object, is all they accept; anything else (`{not
/// json`, an unknown field) is refused as an unknown field would be on any other route.
pub fn check_body(req: &crate::http::HttpRequest) -> clanwar_domain::DomainResult<()> {
    if takes_body(&req.route) || req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let refused = |message: String| {
        clanwar_domain::DomainError::invalid(
            "body",
            format!("this route takes no body (at most {{}}): {message}"),
        )
    };
    match req.json::<serde_json::Value>(crate::http::MAX_BODY_BYTES) {
        Ok(serde_json::Value::Object(fields)) if fields.is_empty() => Ok(()),
        Ok(serde_json::Value::Object(fields)) => Err(refused(format!(
            "unknown field `{}`",
            fields.keys().next().map_or("", String::as_str)
        ))),
        Ok(other) => Err(refused(format!("got {other}"))),
        Err(clanwar_domain::DomainError::InvalidRequest { message, .. }) => Err(refused(message)),
        Err(other) => Err(other),
    }
}
