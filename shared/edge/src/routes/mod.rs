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
