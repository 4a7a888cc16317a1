//! Property campaign at the edge (issue 13): every route, fed hostile requests as raw API
//! Gateway events through the entry the Lambdas use (`http::answer`), answers a 4xx with the
//! SPEC §10 error body — never a 5xx, never a panic. Hostile means: malformed JSON, bodies of
//! the wrong type, deeply nested bodies, unknown fields and enum values, control characters in
//! path ids and in `x-actor-id`, junk headers, repeated query parameters.

use clanwar_domain::config::Rules;
use clanwar_domain::memory::FakeClock;
use clanwar_domain::services::Deps;
use clanwar_edge::{http, routes};
use proptest::prelude::*;
use serde_json::{json, Value};

/// A hostile body (or none, for the cases where the hostility is elsewhere).
fn hostile_body() -> impl Strategy<Value = String> {
    let deep = (60usize..3_000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)));
    let deep_object =
        (130usize..600).prop_map(|n| format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n)));
    prop_oneof![
        Just("{not json".to_owned()),
        Just("[".to_owned()),
        Just("null".to_owned()),
        Just("42".to_owned()),
        Just(r#""a string""#.to_owned()),
        Just("[]".to_owned()),
        Just("\u{0}".to_owned()),
        deep,
        deep_object,
        // Unknown fields and enum values, wrong types.
        Just(r#"{"unknown_field": 1}"#.to_owned()),
        Just(r#"{"winner_side": "sideways"}"#.to_owned()),
        Just(r#"{"side": "middle", "clan_id": "c-1"}"#.to_owned()),
        Just(r#"{"clan_id": 5}"#.to_owned()),
        Just(r#"{"clan_id": ["c-1"]}"#.to_owned()),
        Just(r#"[{"type": "teleport", "event_id": "e1"}]"#.to_owned()),
        Just(r#"[{"type": "kill", "event_id": "e\u0001"}]"#.to_owned()),
        Just(r#"{"max_players": 40.5}"#.to_owned()),
        Just(r#"{"max_players": "40"}"#.to_owned()),
        "[\\PC\\p{Cc}]{1,40}",
    ]
}

/// A path id that is not an id: control characters, spaces, over-long.
fn hostile_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,5}[\\x00-\\x1f\\x7f][a-z]{0,5}",
        "[a-z]{1,5} [a-z]{1,5}",
        Just("x".repeat(65)),
        Just(String::new()),
        "[a-z]{1,3}/[a-z]{1,3}",
    ]
}

#[derive(Debug, Clone)]
enum Hostility {
    /// A valid-looking request whose body is hostile (every route that takes a body, and the
    /// ones that take none).
    Body(String),
    /// Every path parameter malformed.
    Ids(String),
    /// A malformed `x-actor-id` (and a hostile body or none).
    Actor(String),
    /// A query parameter given twice.
    RepeatedQuery,
}

fn hostility() -> impl Strategy<Value = Hostility> {
    prop_oneof![
        hostile_body().prop_map(Hostility::Body),
        hostile_id().prop_map(Hostility::Ids),
        "[a-z]{0,3}[\\x00-\\x1f\\x7f ][a-z]{0,3}".prop_map(Hostility::Actor),
        Just(Hostility::RepeatedQuery),
    ]
}

/// The raw payload format 2.0 event of `route` with `hostility`, plus junk headers.
fn event(route: &str, hostility: &Hostility, junk: &str) -> Value {
    let (method, template) = route.split_once(' ').unwrap();
    let id = match hostility {
        Hostility::Ids(bad) => bad.clone(),
        _ => "id-1".to_owned(),
    };
    let path: serde_json::Map<String, Value> = template
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| (name.to_owned(), json!(id)))
        .collect();
    let mut headers = json!({ "x-junk": junk, "content-type": "application/json" });
    let actor = match hostility {
        Hostility::Actor(bad) => bad.clone(),
        _ => "p-1".to_owned(),
    };
    headers["x-actor-id"] = json!(actor);
    let body = match hostility {
        Hostility::Body(body) => Some(body.clone()),
        // A body the route cannot accept either: exercises its other checks first.
        _ if routes::takes_body(route) => Some("{not json".to_owned()),
        _ => None,
    };
    let query = match hostility {
        Hostility::RepeatedQuery => "limit=1&limit=2",
        _ => "",
    };
    json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": template,
        "rawQueryString": query,
        "headers": headers,
        "pathParameters": path,
        "requestContext": { "routeKey": route, "http": { "method": method, "path": template } },
        "body": body,
        "isBase64Encoded": false,
    })
}

async fn answer(deps: &Deps, route: &str, payload: Value) -> Value {
    let function = routes::all_routes()
        .into_iter()
        .find(|(_, r)| *r == route)
        .map(|(f, _)| f)
        .unwrap();
    let scores = routes::scores::service(deps);
    let sessions = &clanwar_domain::session::memory::sessions(deps.clock.clone());
    http::answer(payload, |request| async move {
        match function {
            "clan-registry" => routes::clans::handle(deps, sessions, request).await,
            "war-manager" => routes::wars::handle(deps, request).await,
            "territory-manager" => routes::territories::handle(deps, request).await,
            "battle-manager" => routes::battles::handle(deps, request).await,
            "score-calculator" => routes::scores::handle(&scores, request).await,
            "reward-distributor" => routes::rewards::handle(deps, request).await,
            "alliance-manager" => routes::alliances::handle(deps, request).await,
            other => panic!("test bug: no handler wired for `{other}`"),
        }
    })
    .await
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_route_answers_hostile_requests_with_a_4xx_and_the_error_body(
        route in proptest::sample::select(
            routes::all_routes().into_iter().map(|(_, r)| r).collect::<Vec<_>>()
        ),
        hostility in hostility(),
        junk in "[\\x00-\\x1f\\x7fa-z]{0,12}",
    ) {
        // Malformed path ids say nothing about a route without path parameters.
        prop_assume!(!matches!(hostility, Hostility::Ids(_)) || route.contains('{'));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (deps, _handles) = Deps::in_memory(Rules::default(), FakeClock::at(chrono::Utc::now()));
        let payload = event(route, &hostility, &junk);
        let answer = runtime.block_on(answer(&deps, route, payload));
        let status = answer["statusCode"].as_i64().unwrap();
        let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        prop_assert!((400..500).contains(&status), "{route} {hostility:?}: {status} {body}");
        prop_assert!(body["error"]["code"].is_string(), "{route}: {body}");
        prop_assert!(body["error"]["message"].is_string(), "{route}: {body}");
        prop_assert!(body["error"]["details"].is_object(), "{route}: {body}");
    }
}

/// The body limits hold the largest valid request: a clan snapshot of a full roster of the
/// longest ids is upserted, and one byte of roster past its limit is refused before any write.
#[tokio::test]
async fn a_full_roster_of_the_longest_ids_is_upserted_and_a_larger_body_refused() {
    use clanwar_domain::clan::MAX_ROSTER;
    use clanwar_domain::ids::MAX_ID_LEN;
    let (deps, _handles) = Deps::in_memory(Rules::default(), FakeClock::at(chrono::Utc::now()));
    let route = "PUT /clans/{clan_id}";
    let put = |members: Vec<String>| {
        let body = json!({ "name": "Full", "leader_id": "p-leader", "officer_ids": [],
                           "member_ids": members, "level": 3 });
        json!({
            "version": "2.0", "routeKey": route, "rawPath": "/clans/full", "rawQueryString": "",
            "headers": { "content-type": "application/json" },
            "pathParameters": { "clan_id": "full" },
            "requestContext": { "routeKey": route, "http": { "method": "PUT", "path": "/clans/full" } },
            "body": body.to_string(), "isBase64Encoded": false,
        })
    };
    let roster: Vec<String> = (0..MAX_ROSTER - 1)
        .map(|i| format!("{i:0>width$}", width = MAX_ID_LEN))
        .collect();
    let upserted = answer(&deps, route, put(roster.clone())).await;
    assert_eq!(upserted["statusCode"], 200, "{upserted}");

    let oversized: Vec<String> = roster
        .iter()
        .cloned()
        .chain(std::iter::repeat_n("x".repeat(MAX_ID_LEN), 600))
        .collect();
    let refused = answer(&deps, route, put(oversized)).await;
    assert_eq!(refused["statusCode"], 400, "{refused}");
    let body = refused["body"].as_str().unwrap();
    assert!(body.contains("byte limit"), "{body}");
}
