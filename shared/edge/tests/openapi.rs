//! `docs/openapi.json` against the implementation (SPEC §13: "An OpenAPI document describes the
//! HTTP API and is tested against the implementation").
//!
//! 1. The document's operations are exactly `routes::all_routes()`.
//! 2. The document is well formed for this API: every path parameter declared with the id
//!    pattern, every error response the shared `Error` schema, every example valid.
//! 3. The examples of the document are accepted by the handlers, and `x-actor-id` is documented
//!    exactly where a handler asks for it.
//! 4. A whole war (clans, territories, an alliance, declaration, allies, battles, events,
//!    captures, surrender, rewards, …) is played through the real route handlers over the
//!    in-memory adapters. Every answer's status must be documented for its operation and its
//!    body must validate against the documented schema of that status; every request body sent
//!    must validate against the documented request schema. Every operation must have been
//!    answered with a success, and every error class (400/403/404/409/422/429/503) seen.
//!    The domain events published on the way validate against the documented `EventEnvelope`
//!    (what the WebSocket API pushes).

use clanwar_domain::config::{Bounds, Rules};
use clanwar_domain::ids::WarId;
use clanwar_domain::memory::FakeClock;
use clanwar_domain::services::lifecycle::LifecycleService;
use clanwar_domain::services::rewards::RewardService;
use clanwar_domain::services::scores::ScoreService;
use clanwar_domain::services::wars::WarService;
use clanwar_domain::services::{Deps, MemoryHandles};
use clanwar_domain::war::WarStatus;
use clanwar_edge::http::{respond, HttpRequest, HttpResponse};
use clanwar_edge::routes;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];
const ERROR_CLASSES: &[u16] = &[400, 403, 404, 409, 422, 429, 503];

// ------------------------------------------------------------------------------------------
// The document
// ------------------------------------------------------------------------------------------

struct Spec {
    doc: Value,
}

impl Spec {
    fn load() -> Self {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "docs/openapi.json must be OpenAPI 3.1"
        );
        Self { doc }
    }

    /// Every `"METHOD /path"` the document describes.
    fn routes(&self) -> BTreeSet<String> {
        let paths = self.doc["paths"].as_object().expect("`paths` is an object");
        paths
            .iter()
            .flat_map(|(path, item)| {
                let item = item.as_object().expect("path item is an object");
                item.keys()
                    .filter(|k| HTTP_METHODS.contains(&k.as_str()))
                    .map(move |method| format!("{} {path}", method.to_uppercase()))
            })
            .collect()
    }

    fn operation(&self, route: &str) -> &Value {
        let (method, path) = route.split_once(' ').expect("route key is `METHOD /path`");
        let op = &self.doc["paths"][path][method.to_lowercase()];
        assert!(
            op.is_object(),
            "docs/openapi.json has no operation for `{route}`"
        );
        op
    }

    /// Follows a local `$ref` (`#/components/...`), repeatedly.
    fn deref<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local references are used, found {reference}"));
            value = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling reference {reference}"));
        }
        value
    }

    /// Path-level and operation-level parameters, resolved.
    fn parameters(&self, route: &str) -> Vec<&Value> {
        let (_, path) = route.split_once(' ').expect("route key");
        let shared = self.doc["paths"][path]["parameters"]
            .as_array()
            .into_iter()
            .flatten();
        let own = self.operation(route)["parameters"]
            .as_array()
            .into_iter()
            .flatten();
        shared.chain(own).map(|p| self.deref(p)).collect()
    }

    fn parameter(&self, route: &str, location: &str, name: &str) -> Option<&Value> {
        self.parameters(route).into_iter().find(|p| {
            p["in"] == location
                && p["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    }

    fn requires_actor(&self, route: &str) -> bool {
        self.parameter(route, "header", "x-actor-id")
            .is_some_and(|p| p["required"] == true)
    }

    fn statuses(&self, route: &str) -> BTreeSet<u16> {
        self.operation(route)["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("`{route}` has no responses"))
            .keys()
            .map(|k| {
                k.parse()
                    .unwrap_or_else(|_| panic!("`{route}`: response key {k} is not a status code"))
            })
            .collect()
    }

    fn response(&self, route: &str, status: u16) -> Option<&Value> {
        let response = &self.operation(route)["responses"][status.to_string()];
        (!response.is_null()).then(|| self.deref(response))
    }

    fn response_schema(&self, route: &str, status: u16) -> Option<&Value> {
        let schema = &self.response(route, status)?["content"]["application/json"]["schema"];
        (!schema.is_null()).then_some(schema)
    }

    fn request_body(&self, route: &str) -> Option<&Value> {
        let body = &self.operation(route)["requestBody"];
        (!body.is_null()).then(|| &self.deref(body)["content"]["application/json"])
    }

    fn schema(&self, name: &str) -> Value {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// Validation errors of `instance` against `schema` (which may use `#/components/...`
    /// references): the schema is checked as JSON Schema 2020-12, formats asserted.
    fn violations(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"));
        validator
            .iter_errors(instance)
            .map(|e| format!("at `{}`: {e}", e.instance_path()))
            .collect()
    }

    fn assert_valid(&self, what: &str, schema: &Value, instance: &Value) {
        let errors = self.violations(schema, instance);
        assert!(
            errors.is_empty(),
            "{what} does not match docs/openapi.json:\n  - {}\nschema: {schema}\nbody: {}",
            errors.join("\n  - "),
            serde_json::to_string_pretty(instance).unwrap_or_default()
        );
    }
}

/// `{name}` segments of a path template.
fn template_names(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

// ------------------------------------------------------------------------------------------
// Calling the handlers
// ------------------------------------------------------------------------------------------

/// One request to a route handler.
#[derive(Debug, Clone)]
struct Req {
    route: String,
    path: Vec<(String, String)>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

fn req(route: &str) -> Req {
    assert!(
        routes::all_routes().iter().any(|(_, r)| *r == route),
        "test bug: `{route}` is not a route"
    );
    Req {
        route: route.to_owned(),
        path: Vec::new(),
        query: Vec::new(),
        headers: Vec::new(),
        body: None,
    }
}

impl Req {
    fn path(mut self, name: &str, value: &str) -> Self {
        self.path.push((name.into(), value.into()));
        self
    }
    fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }
    /// Header names are lower case, as `http::from_apigw` hands them over.
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }
    fn actor(self, player: &str) -> Self {
        self.header("x-actor-id", player)
    }
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn to_http(&self) -> HttpRequest {
        let (_, template) = self.route.split_once(' ').expect("route key");
        let given: BTreeSet<String> = self.path.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            template_names(template),
            given,
            "test bug: path parameters of `{}`",
            self.route
        );
        HttpRequest {
            route: self.route.clone(),
            path: self.path.iter().cloned().collect(),
            query: self.query.iter().cloned().collect(),
            headers: self.headers.iter().cloned().collect(),
            body: self
                .body
                .as_ref()
                .map(|b| b.to_string().into_bytes())
                .unwrap_or_default(),
            principal: None,
            malformed: None,
        }
    }
}

/// The world the handlers run in, and what they answered.
struct Api {
    spec: Spec,
    deps: Deps,
    h: MemoryHandles,
    scores: ScoreService,
    sessions: clanwar_domain::session::Sessions,
    /// (route, status, error code) of every answer.
    log: Vec<(String, u16, Option<String>)>,
}

fn t0() -> chrono::DateTime<chrono::Utc> {
    "2026-05-01T10:00:00Z".parse().expect("fixed time")
}

fn rules() -> Rules {
    Rules {
        // Per-war phase lengths of an hour in the scenario (the local stack allows ≥ 1 s).
        phase_bounds: Bounds {
            min_s: 1,
            max_s: 86_400,
        },
        // Small, so that the 429 of the battle limit is reached.
        max_concurrent_battles: 2,
        ..Rules::default()
    }
}

impl Api {
    fn new(spec: Spec, rules: Rules) -> Self {
        let (deps, h) = Deps::in_memory(rules, FakeClock::at(t0()));
        let scores = routes::scores::service(&deps);
        let sessions = clanwar_domain::session::memory::sessions(deps.clock.clone());
        Self {
            spec,
            deps,
            h,
            scores,
            sessions,
            log: Vec::new(),
        }
    }

    /// Runs the request through the route table of the function that serves it, exactly as
    /// the Lambda entry does (`http::respond` turns errors into the SPEC's body).
    async fn dispatch(&self, request: HttpRequest) -> HttpResponse {
        let function = routes::all_routes()
            .into_iter()
            .find(|(_, r)| *r == request.route)
            .map(|(f, _)| f)
            .expect("a served route");
        let deps = &self.deps;
        let scores = &self.scores;
        let sessions = &self.sessions;
        respond(request, |request| async move {
            match function {
                "clan-registry" => routes::clans::handle(deps, sessions, request).await,
                "war-manager" => routes::wars::handle(deps, request).await,
                "territory-manager" => routes::territories::handle(deps, request).await,
                "battle-manager" => routes::battles::handle(deps, request).await,
                "score-calculator" => routes::scores::handle(scores, request).await,
                "reward-distributor" => routes::rewards::handle(deps, request).await,
                "alliance-manager" => routes::alliances::handle(deps, request).await,
                other => panic!("test bug: no handler wired for function `{other}`"),
            }
        })
        .await
    }

    /// Sends the request; its body (if any) must match the documented request schema, the
    /// answer's status must be documented and its body must match that status' schema.
    async fn send(&mut self, r: Req) -> HttpResponse {
        if let Some(body) = &r.body {
            let content = self
                .spec
                .request_body(&r.route)
                .unwrap_or_else(|| panic!("`{}` is sent a body but documents none", r.route));
            self.spec.assert_valid(
                &format!("request body of `{}`", r.route),
                &content["schema"],
                body,
            );
        }
        self.send_unchecked(r).await
    }

    /// As `send`, for a request body the document itself must refuse (a deliberately bad one).
    async fn send_invalid_body(&mut self, r: Req) -> HttpResponse {
        let body = r.body.as_ref().expect("a body");
        let content = self.spec.request_body(&r.route).expect("a documented body");
        assert!(
            !self.spec.violations(&content["schema"], body).is_empty(),
            "docs/openapi.json accepts the body that `{}` must refuse: {body}",
            r.route
        );
        self.send_unchecked(r).await
    }

    async fn send_unchecked(&mut self, r: Req) -> HttpResponse {
        let response = self.dispatch(r.to_http()).await;
        self.check_response(&r.route, &response);
        let code = response.body["error"]["code"].as_str().map(str::to_owned);
        self.log.push((r.route.clone(), response.status, code));
        response
    }

    fn check_response(&self, route: &str, response: &HttpResponse) {
        let documented = self.spec.statuses(route);
        assert!(
            documented.contains(&response.status),
            "`{route}` answered {} which docs/openapi.json does not document (documented: {documented:?}); body: {}",
            response.status,
            response.body
        );
        let schema = self
            .spec
            .response_schema(route, response.status)
            .unwrap_or_else(|| {
                panic!(
                    "`{route}` {}: no application/json schema documented",
                    response.status
                )
            });
        self.spec.assert_valid(
            &format!("`{route}` {} response", response.status),
            schema,
            &response.body,
        );
    }

    /// Sends and insists on `status`; returns the body.
    async fn expect(&mut self, status: u16, r: Req) -> Value {
        let route = r.route.clone();
        let response = self.send(r).await;
        assert_eq!(
            response.status, status,
            "`{route}` answered {} instead of {status}: {}",
            response.status, response.body
        );
        response.body
    }

    /// Sends and insists on an error with `status` and `code`.
    async fn expect_error(&mut self, status: u16, code: &str, r: Req) {
        let route = r.route.clone();
        let response = self.send(r).await;
        assert_error(&route, &response, status, code);
    }

    /// Sends a body the document refuses and insists that the handler refuses it too (400).
    async fn expect_bad_body(&mut self, r: Req) {
        let route = r.route.clone();
        let response = self.send_invalid_body(r).await;
        assert_error(&route, &response, 400, "INVALID_REQUEST");
    }

    /// Moves the clock to the deadline of `target` and runs the phase controller (a Step
    /// Functions task, not an HTTP route).
    async fn reach(&self, war_id: &str, target: WarStatus) {
        let wars = WarService::new((&self.deps).into());
        let id = WarId::new(war_id).expect("war id");
        let war = wars.get(&id).await.expect("war");
        let at = war
            .phase_deadlines
            .deadline_of(target)
            .expect("a timed phase");
        self.h.clock.set(at);
        LifecycleService::new((&self.deps).into())
            .advance(&id, target)
            .await
            .expect("phase move");
    }
}

fn assert_error(route: &str, response: &HttpResponse, status: u16, code: &str) {
    assert_eq!(
        (response.status, response.body["error"]["code"].as_str()),
        (status, Some(code)),
        "`{route}`: unexpected answer {}",
        response.body
    );
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
        .to_owned()
}

// ------------------------------------------------------------------------------------------
// 1. Same operations
// ------------------------------------------------------------------------------------------

#[test]
fn the_document_has_exactly_the_routes_of_the_implementation() {
    let spec = Spec::load();
    let documented = spec.routes();
    let implemented: BTreeSet<String> = routes::all_routes()
        .iter()
        .map(|(_, r)| (*r).to_owned())
        .collect();
    assert_eq!(
        implemented.len(),
        routes::all_routes().len(),
        "a route key is served twice"
    );
    let missing: Vec<_> = implemented.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&implemented).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/openapi.json and routes::all_routes() differ\n  served but not documented: {missing:#?}\n  documented but not served: {extra:#?}"
    );
}

// ------------------------------------------------------------------------------------------
// 2. Well-formed for this API
// ------------------------------------------------------------------------------------------

#[test]
fn the_routes_without_a_documented_body_are_the_ones_that_refuse_a_body() {
    let spec = Spec::load();
    for (_, route) in routes::all_routes() {
        assert_eq!(
            routes::takes_body(route),
            spec.request_body(route).is_some(),
            "`{route}`: documented request body and routes::takes_body disagree"
        );
    }
}

#[test]
fn every_operation_documents_its_parameters_responses_and_errors() {
    let spec = Spec::load();
    let mut operation_ids = BTreeSet::new();
    for route in spec.routes() {
        let (method, path) = route.split_once(' ').expect("route key");
        let op = spec.operation(&route);
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("`{route}` has no operationId"));
        assert!(
            operation_ids.insert(id.to_owned()),
            "operationId {id} is used twice"
        );

        // Path parameters: one per template segment, required, with the id pattern.
        let declared: BTreeSet<String> = spec
            .parameters(&route)
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| text(&p["name"]))
            .collect();
        assert_eq!(declared, template_names(path), "`{route}`: path parameters");
        for p in spec.parameters(&route) {
            let name = text(&p["name"]);
            if p["in"] == "path" {
                assert_eq!(
                    p["required"], true,
                    "`{route}`: path parameter {name} must be required"
                );
            }
            if p["in"] == "path" || name.eq_ignore_ascii_case("x-actor-id") {
                let schema = spec.deref(&p["schema"]);
                assert_eq!(
                    schema["pattern"], ID_PATTERN,
                    "`{route}`: {name} must carry the id pattern"
                );
            }
            if let Some(example) = p.get("example") {
                spec.assert_valid(
                    &format!("example of `{route}` parameter {name}"),
                    &p["schema"],
                    example,
                );
            }
        }

        // Request bodies: only on mutations, an example that validates.
        if let Some(content) = spec.request_body(&route) {
            assert!(
                method != "GET" && method != "DELETE",
                "`{route}` documents a body"
            );
            let example = content
                .get("example")
                .unwrap_or_else(|| panic!("`{route}`: request body without example"));
            spec.assert_valid(
                &format!("request example of `{route}`"),
                &content["schema"],
                example,
            );
        }

        // Responses: a success, the error classes of SPEC §10 only, every error answered with
        // the shared `Error` schema.
        let statuses = spec.statuses(&route);
        assert!(
            statuses.iter().any(|s| (200..300).contains(s)),
            "`{route}`: no success response"
        );
        for status in &statuses {
            let schema = spec
                .response_schema(&route, *status)
                .unwrap_or_else(|| panic!("`{route}` {status}: no application/json schema"));
            if *status >= 400 {
                assert!(
                    ERROR_CLASSES.contains(status),
                    "`{route}`: {status} is not an error class of SPEC §10"
                );
                assert_eq!(
                    schema,
                    &spec.schema("Error"),
                    "`{route}` {status} must use the Error schema"
                );
                let response = spec.response(&route, *status).expect("response");
                if let Some(example) = response["content"]["application/json"].get("example") {
                    spec.assert_valid(&format!("`{route}` {status} example"), schema, example);
                }
            }
        }
        // Every operation parses an id or a query (400) and reads the store (503 on an outage).
        for status in [400, 503] {
            assert!(
                statuses.contains(&status),
                "`{route}` must document {status}"
            );
        }
        if spec.requires_actor(&route) {
            assert!(
                statuses.contains(&403),
                "`{route}` checks a role: it must document 403"
            );
        }
    }

    // The idempotent declaration and capture take `Idempotency-Key`.
    for route in ["POST /wars", "POST /territories/{territory_id}/capture"] {
        let key = spec
            .parameter(route, "header", "Idempotency-Key")
            .unwrap_or_else(|| panic!("`{route}` must document Idempotency-Key"));
        assert_eq!(
            key["required"], false,
            "Idempotency-Key is optional on `{route}`"
        );
    }
    assert!(
        spec.statuses("POST /wars")
            .is_superset(&BTreeSet::from([200, 201])),
        "POST /wars: 201, and 200 on a replay"
    );

    // The description tells callers what no schema can.
    let description = text(&spec.doc["info"]["description"]);
    for needle in [
        "IAM",
        "x-actor-id",
        "Idempotency-Key",
        "next_cursor",
        "500",
        "WebSocket",
        "\"action\": \"subscribe\"",
    ] {
        assert!(
            description.contains(needle),
            "info.description must explain {needle}"
        );
    }
}

#[test]
fn the_documented_error_schema_is_what_the_error_model_serialises() {
    let spec = Spec::load();
    let error = spec.schema("Error");
    let clan = clanwar_domain::ids::ClanId::new("wolves").expect("id");
    let samples = [
        clanwar_domain::DomainError::invalid("body", "unknown field"),
        clanwar_domain::DomainError::MissingActor,
        clanwar_domain::DomainError::ClanNotFound(clan.clone()),
        clanwar_domain::DomainError::PairCooldownActive(clan.clone(), clan.clone(), t0()),
        clanwar_domain::DomainError::RatingGapTooLarge { gap: 600, max: 500 },
        clanwar_domain::DomainError::ConcurrentWarLimit {
            clan_id: clan,
            max: 3,
        },
        clanwar_domain::DomainError::ConcurrentModification,
    ];
    for err in samples {
        spec.assert_valid(
            &format!("error body of {}", err.code()),
            &error,
            &err.to_body(),
        );
    }
    spec.assert_valid(
        "the unknown-route body",
        &error,
        &HttpResponse::no_route("GET /nope").body,
    );
    // The shape is strict: a renamed or missing member is caught.
    assert!(!spec
        .violations(&error, &json!({"error": {"code": "X", "message": "m"}}))
        .is_empty());
    assert!(!spec
        .violations(&error, &json!({"code": "X", "message": "m", "details": {}}))
        .is_empty());
}

// ------------------------------------------------------------------------------------------
// 3. Examples accepted; the actor header documented exactly where it is needed
// ------------------------------------------------------------------------------------------

/// A request built from the document's own examples (path, query, optionally headers, body).
fn from_examples(spec: &Spec, route: &str, with_headers: bool) -> Req {
    let mut r = req(route);
    for p in spec.parameters(route) {
        let Some(example) = p.get("example") else {
            continue;
        };
        let value = match example {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let name = text(&p["name"]);
        match p["in"].as_str() {
            Some("path") => r = r.path(&name, &value),
            Some("query") => r = r.query(&name, &value),
            Some("header") if with_headers => r = r.header(&name, &value),
            _ => {}
        }
    }
    if let Some(content) = spec.request_body(route) {
        r = r.body(content["example"].clone());
    }
    r
}

#[tokio::test]
async fn the_documented_examples_are_accepted_and_the_actor_header_is_documented_where_needed() {
    // The production defaults: the examples must hold for a deployed stack.
    let mut api = Api::new(Spec::load(), Rules::default());
    let routes: Vec<String> = api.spec.routes().into_iter().collect();

    // Without headers: a handler that needs an actor says so (400 MISSING_ACTOR) — and only
    // the operations documenting a required `x-actor-id` may say so.
    for route in &routes {
        let request = from_examples(&api.spec, route, false);
        let response = api.send(request).await;
        let asks = response.status == 400 && response.body["error"]["code"] == "MISSING_ACTOR";
        assert_eq!(
            asks,
            api.spec.requires_actor(route),
            "`{route}`: the handler {} an x-actor-id but docs/openapi.json {} it",
            if asks { "requires" } else { "does not require" },
            if api.spec.requires_actor(route) {
                "requires"
            } else {
                "does not require"
            },
        );
    }

    // With the documented headers: every example is well formed for the handler (whatever the
    // world says about it, it is never a 400).
    for route in &routes {
        let request = from_examples(&api.spec, route, true);
        let response = api.send(request).await;
        assert_ne!(
            response.status, 400,
            "`{route}` refuses the document's example: {}",
            response.body
        );
    }
}

// ------------------------------------------------------------------------------------------
// 4. A whole war through the handlers
// ------------------------------------------------------------------------------------------

fn members(clan: &str) -> Vec<String> {
    (0..11).map(|i| format!("{clan}-m{i}")).collect()
}

fn hourly() -> Value {
    json!({ "declared_s": 3600, "preparation_s": 3600, "active_s": 7200, "ending_s": 600 })
}

#[tokio::test]
async fn every_response_of_a_whole_war_matches_the_document() {
    let mut api = Api::new(Spec::load(), rules());

    // ---- clans ------------------------------------------------------------------------------
    for clan in ["att", "def", "ally", "other"] {
        let body = api
            .expect(
                200,
                req("PUT /clans/{clan_id}")
                    .path("clan_id", clan)
                    .body(json!({
                        "name": format!("Clan {clan}"),
                        "leader_id": format!("{clan}-leader"),
                        "officer_ids": [format!("{clan}-officer")],
                        "member_ids": members(clan),
                        "level": 5,
                        "rating": 1000
                    })),
            )
            .await;
        assert_eq!(body["clan_id"], clan);
    }
    api.expect_bad_body(
        req("PUT /clans/{clan_id}")
            .path("clan_id", "att")
            .body(json!({"name": "A", "leader_id": "p1", "level": 1, "colour": "red"})),
    )
    .await;
    api.expect(200, req("GET /clans/{clan_id}").path("clan_id", "att"))
        .await;

    // ---- territories ------------------------------------------------------------------------
    for (id, x, y, tier, owner) in [
        ("t1", 0.0, 0.0, 1, "def"),
        ("t2", 300.0, 400.0, 2, "def"),
        ("t3", 9_000.0, 9_000.0, 3, "other"),
    ] {
        api.expect(
            200,
            req("PUT /territories/{territory_id}")
                .path("territory_id", id)
                .body(json!({
                    "name": format!("Territory {id}"),
                    "region": "north",
                    "x": x,
                    "y": y,
                    "tier": tier,
                    "resource_yield": 120,
                    "owner_clan_id": owner
                })),
        )
        .await;
    }
    api.expect(
        200,
        req("GET /territories/{territory_id}").path("territory_id", "t1"),
    )
    .await;
    let nearby = api
        .expect(
            200,
            req("GET /territories")
                .query("x", "10")
                .query("y", "10")
                .query("radius", "1000"),
        )
        .await;
    assert_eq!(
        nearby["territories"].as_array().map(Vec::len),
        Some(2),
        "{nearby}"
    );
    api.expect_error(
        400,
        "INVALID_REQUEST",
        req("GET /territories")
            .query("x", "0")
            .query("y", "0")
            .query("radius", "-1"),
    )
    .await;
    api.expect_error(
        404,
        "TERRITORY_NOT_FOUND",
        req("GET /territories/{territory_id}").path("territory_id", "nowhere"),
    )
    .await;

    // ---- an alliance: def founds it, ally joins, other declines ------------------------------
    let alliance = api
        .expect(
            201,
            req("POST /alliances")
                .actor("def-leader")
                .body(json!({"name": "North Pact", "founder_clan_id": "def"})),
        )
        .await;
    let alliance_id = text(&alliance["alliance_id"]);
    for clan in ["ally", "other"] {
        api.expect(
            201,
            req("POST /alliances/{alliance_id}/invitations")
                .path("alliance_id", &alliance_id)
                .actor("def-officer")
                .body(json!({ "clan_id": clan })),
        )
        .await;
    }
    api.expect_error(
        403,
        "FORBIDDEN_ROLE",
        req("POST /alliances/{alliance_id}/invitations")
            .path("alliance_id", &alliance_id)
            .actor("def-m0")
            .body(json!({ "clan_id": "att" })),
    )
    .await;
    let view = api
        .expect(
            200,
            req("GET /alliances/{alliance_id}").path("alliance_id", &alliance_id),
        )
        .await;
    assert_eq!(
        view["invitations"].as_array().map(Vec::len),
        Some(2),
        "{view}"
    );
    api.expect(
        200,
        req("POST /alliances/{alliance_id}/invitations/{clan_id}/accept")
            .path("alliance_id", &alliance_id)
            .path("clan_id", "ally")
            .actor("ally-leader"),
    )
    .await;
    api.expect(
        200,
        req("POST /alliances/{alliance_id}/invitations/{clan_id}/decline")
            .path("alliance_id", &alliance_id)
            .path("clan_id", "other")
            .actor("other-officer"),
    )
    .await;
    api.expect_error(
        404,
        "INVITATION_NOT_FOUND",
        req("POST /alliances/{alliance_id}/invitations/{clan_id}/accept")
            .path("alliance_id", &alliance_id)
            .path("clan_id", "other")
            .actor("other-leader"),
    )
    .await;

    // ---- declarations -------------------------------------------------------------------------
    let declare = json!({
        "attacker_clan_id": "att",
        "defender_clan_id": "def",
        "territory_ids": ["t1", "t2"],
        "phase_durations": hourly()
    });
    let current = api.expect(200, req("GET /rulesets/current")).await;
    let verdict = api
        .expect(
            200,
            req("POST /wars")
                .query("dry_run", "true")
                .actor("att-leader")
                .body(declare.clone()),
        )
        .await;
    assert_eq!(verdict["valid"], true, "{verdict}");
    api.expect_error(
        400,
        "INVALID_REQUEST",
        req("POST /wars")
            .query("dry_run", "maybe")
            .actor("att-leader")
            .body(declare.clone()),
    )
    .await;
    let war = api
        .expect(
            201,
            req("POST /wars")
                .actor("att-leader")
                .header("Idempotency-Key", "declare-1")
                .body(declare.clone()),
        )
        .await;
    let war_id = text(&war["war_id"]);
    assert_eq!(
        war["ruleset"], current,
        "the war is frozen with the live ruleset"
    );
    let verdict = api
        .expect(
            200,
            req("POST /wars")
                .query("dry_run", "true")
                .actor("att-m0")
                .body(declare.clone()),
        )
        .await;
    let codes: Vec<&Value> = verdict["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["code"])
        .collect();
    assert_eq!(
        codes,
        [
            "FORBIDDEN_ROLE",
            "WAR_ALREADY_EXISTS",
            "TERRITORY_ALREADY_CONTESTED",
            "TERRITORY_ALREADY_CONTESTED"
        ],
        "{verdict}"
    );
    let replay = api
        .expect(
            200,
            req("POST /wars")
                .actor("att-leader")
                .header("Idempotency-Key", "declare-1")
                .body(declare.clone()),
        )
        .await;
    assert_eq!(
        replay["war_id"], war["war_id"],
        "a replay returns the same war"
    );
    api.expect_error(
        422,
        "SAME_CLAN",
        req("POST /wars").actor("att-leader").body(json!({
            "attacker_clan_id": "att",
            "defender_clan_id": "att",
            "territory_ids": ["t1"],
            "phase_durations": hourly()
        })),
    )
    .await;
    api.expect_error(
        409,
        "WAR_ALREADY_EXISTS",
        req("POST /wars").actor("att-officer").body(declare.clone()),
    )
    .await;
    api.expect_bad_body(
        req("POST /wars")
            .actor("att-leader")
            .body(json!({"attacker_clan_id": "att", "defender_clan_id": "def", "territory_ids": ["t1"], "surprise": true})),
    )
    .await;
    api.expect_error(
        400,
        "MISSING_ACTOR",
        req("POST /wars").body(declare.clone()),
    )
    .await;

    // A second war, cancelled by both leaders while DECLARED.
    let war2 = api
        .expect(
            201,
            req("POST /wars").actor("att-officer").body(json!({
                "attacker_clan_id": "att",
                "defender_clan_id": "other",
                "territory_ids": ["t3"],
                "phase_durations": hourly()
            })),
        )
        .await;
    let war2_id = text(&war2["war_id"]);
    let asked = api
        .expect(
            200,
            req("POST /wars/{war_id}/cancel")
                .path("war_id", &war2_id)
                .actor("att-leader")
                .body(json!({"clan_id": "att"})),
        )
        .await;
    assert_eq!(asked["status"], "DECLARED");
    let cancelled = api
        .expect(
            200,
            req("POST /wars/{war_id}/cancel")
                .path("war_id", &war2_id)
                .actor("other-leader")
                .body(json!({"clan_id": "other"})),
        )
        .await;
    assert_eq!(cancelled["status"], "CANCELLED");

    // Operator controls on a third war: advance, a repeat, a skip, an early end, a cancel.
    let war3 = api
        .expect(
            201,
            req("POST /wars").actor("att-officer").body(json!({
                "attacker_clan_id": "att",
                "defender_clan_id": "other",
                "territory_ids": ["t3"],
                "phase_durations": hourly()
            })),
        )
        .await;
    let war3_id = text(&war3["war_id"]);
    let admin = |route: &str, body: Value| {
        req(route)
            .path("war_id", &war3_id)
            .header("x-operator-id", "ops-alice")
            .body(body)
    };
    let moved = api
        .expect(
            200,
            admin(
                "POST /admin/wars/{war_id}/advance",
                json!({"to": "PREPARATION", "reason": "starts early"}),
            ),
        )
        .await;
    assert_eq!(
        (&moved["moved"], &moved["war"]["status"]),
        (&json!(true), &json!("PREPARATION"))
    );
    assert_eq!(moved["war"]["operator_actions"][0]["by"], "ops-alice");
    let again = api
        .expect(
            200,
            admin(
                "POST /admin/wars/{war_id}/advance",
                json!({"to": "PREPARATION", "reason": "double click"}),
            ),
        )
        .await;
    assert_eq!(again["moved"], false);
    api.expect_error(
        409,
        "INVALID_WAR_STATE",
        admin(
            "POST /admin/wars/{war_id}/advance",
            json!({"to": "ENDING", "reason": "skip"}),
        ),
    )
    .await;
    api.expect_error(
        409,
        "INVALID_WAR_STATE",
        admin(
            "POST /admin/wars/{war_id}/end",
            json!({"reason": "too early"}),
        ),
    )
    .await;
    api.expect_error(
        400,
        "INVALID_REQUEST",
        req("POST /admin/wars/{war_id}/cancel")
            .path("war_id", &war3_id)
            .body(json!({"reason": "who am I"})),
    )
    .await;
    api.expect_bad_body(admin(
        "POST /admin/wars/{war_id}/cancel",
        json!({"reason": "ok", "force": true}),
    ))
    .await;
    let gone = api
        .expect(
            200,
            admin(
                "POST /admin/wars/{war_id}/cancel",
                json!({"reason": "dispute"}),
            ),
        )
        .await;
    assert_eq!(gone["war"]["outcome"], "OPERATOR_CANCELLED");
    // No cooldown after an operator's cancel: the pair fights again, and an operator ends it.
    let war4 = api
        .expect(
            201,
            req("POST /wars").actor("att-officer").body(json!({
                "attacker_clan_id": "att",
                "defender_clan_id": "other",
                "territory_ids": ["t3"],
                "phase_durations": hourly()
            })),
        )
        .await;
    let war4_id = text(&war4["war_id"]);
    for to in ["PREPARATION", "ACTIVE"] {
        api.expect(
            200,
            req("POST /admin/wars/{war_id}/advance")
                .path("war_id", &war4_id)
                .header("x-operator-id", "ops-alice")
                .body(json!({"to": to, "reason": "tournament schedule"})),
        )
        .await;
    }
    let ended4 = api
        .expect(
            200,
            req("POST /admin/wars/{war_id}/end")
                .path("war_id", &war4_id)
                .header("x-operator-id", "ops-alice")
                .body(json!({"reason": "servers under maintenance"})),
        )
        .await;
    assert_eq!(ended4["war"]["status"], "ENDED");
    assert_eq!(
        ended4["war"]["operator_actions"].as_array().map(Vec::len),
        Some(3)
    );

    // The war log, paginated.
    let page = api
        .expect(
            200,
            req("GET /clans/{clan_id}/wars")
                .path("clan_id", "att")
                .query("limit", "1"),
        )
        .await;
    assert_eq!(page["wars"].as_array().map(Vec::len), Some(1), "{page}");
    let cursor = text(&page["next_cursor"]);
    api.expect(
        200,
        req("GET /clans/{clan_id}/wars")
            .path("clan_id", "att")
            .query("limit", "1")
            .query("cursor", &cursor),
    )
    .await;
    api.expect(
        200,
        req("GET /clans/{clan_id}/wars")
            .path("clan_id", "att")
            .query("status", "CANCELLED"),
    )
    .await;
    api.expect_error(
        400,
        "INVALID_REQUEST",
        req("GET /clans/{clan_id}/wars")
            .path("clan_id", "att")
            .query("status", "WON"),
    )
    .await;

    // An ally joins the defender; the defender fortifies a target before the fighting.
    let joined = api
        .expect(
            200,
            req("POST /wars/{war_id}/join")
                .path("war_id", &war_id)
                .actor("ally-officer")
                .body(json!({"clan_id": "ally", "side": "defender"})),
        )
        .await;
    assert_eq!(
        joined["sides"]["defender"]["clan_ids"],
        json!(["def", "ally"])
    );
    api.expect_error(
        422,
        "NOT_ALLIED",
        req("POST /wars/{war_id}/join")
            .path("war_id", &war_id)
            .actor("other-leader")
            .body(json!({"clan_id": "other", "side": "attacker"})),
    )
    .await;
    let fortified = api
        .expect(
            200,
            req("POST /territories/{territory_id}/fortify")
                .path("territory_id", "t1")
                .actor("def-officer")
                .body(json!({"clan_id": "def"})),
        )
        .await;
    assert_eq!(fortified["defense_level"], 2);
    api.expect(200, req("GET /clans/{clan_id}").path("clan_id", "def"))
        .await;
    api.expect(200, req("GET /wars/{war_id}").path("war_id", &war_id))
        .await;

    // ---- the fighting -------------------------------------------------------------------------
    api.reach(&war_id, WarStatus::Preparation).await;
    api.reach(&war_id, WarStatus::Active).await;
    let active_at = api.h.clock_now();
    api.h.clock.set(active_at + chrono::Duration::seconds(60));
    let occurred = (active_at + chrono::Duration::seconds(30)).to_rfc3339();

    api.expect_error(
        409,
        "INVALID_WAR_STATE",
        req("POST /wars/{war_id}/cancel")
            .path("war_id", &war_id)
            .actor("att-leader")
            .body(json!({"clan_id": "att"})),
    )
    .await;
    api.expect_error(
        409,
        "TERRITORY_UNDER_ATTACK",
        req("POST /territories/{territory_id}/fortify")
            .path("territory_id", "t1")
            .actor("def-leader")
            .body(json!({"clan_id": "def"})),
    )
    .await;

    let battle = api
        .expect(
            201,
            req("POST /wars/{war_id}/battles")
                .path("war_id", &war_id)
                .body(json!({"territory_id": "t1", "max_players": 40})),
        )
        .await;
    let battle_id = text(&battle["battle_id"]);
    api.expect(
        201,
        req("POST /wars/{war_id}/battles")
            .path("war_id", &war_id)
            .body(json!({"position": {"x": 10.5, "y": -3.25}, "max_players": 10})),
    )
    .await;
    api.expect_error(
        422,
        "TERRITORY_NOT_IN_WAR",
        req("POST /wars/{war_id}/battles")
            .path("war_id", &war_id)
            .body(json!({"territory_id": "t3", "max_players": 10})),
    )
    .await;
    api.expect_error(
        429,
        "BATTLE_LIMIT_REACHED",
        req("POST /wars/{war_id}/battles")
            .path("war_id", &war_id)
            .body(json!({"territory_id": "t2", "max_players": 10})),
    )
    .await;

    let kill = |event_id: &str,
                killer: &str,
                killer_clan: &str,
                victim: &str,
                victim_clan: &str,
                battle: Option<&str>| {
        let mut event = json!({
            "type": "kill",
            "event_id": event_id,
            "occurred_at": occurred,
            "killer_id": killer,
            "killer_clan_id": killer_clan,
            "killer_level": 10,
            "victim_id": victim,
            "victim_clan_id": victim_clan,
            "victim_level": 12
        });
        if let Some(battle) = battle {
            event["battle_id"] = json!(battle);
        }
        event
    };
    let batch = json!([
        kill("e1", "att-m0", "att", "def-m0", "def", Some(&battle_id)),
        {"type": "assist", "event_id": "e2", "occurred_at": occurred, "player_id": "att-m1", "clan_id": "att", "battle_id": battle_id},
        kill("e3", "ally-m0", "ally", "att-m2", "att", None),
        {"type": "capture", "event_id": "e4", "occurred_at": occurred, "territory_id": "t2", "clan_id": "att"},
        kill("e5", "att-m0", "att", "def-m0", "def", Some(&battle_id)),
        kill("e6", "att-m4", "att", "def-m4", "def", Some("ghost-battle")),
        kill("e1", "att-m0", "att", "def-m0", "def", Some(&battle_id)),
    ]);
    let outcome = api
        .expect(
            200,
            req("POST /wars/{war_id}/events")
                .path("war_id", &war_id)
                .body(batch),
        )
        .await;
    for counter in ["accepted", "duplicates"] {
        assert!(
            outcome[counter].as_u64().is_some_and(|n| n > 0),
            "{counter}: {outcome}"
        );
    }
    assert!(
        outcome["rejected"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "{outcome}"
    );
    api.expect_bad_body(
        req("POST /wars/{war_id}/events")
            .path("war_id", &war_id)
            .body(json!([{"type": "heal", "event_id": "e9", "occurred_at": occurred}])),
    )
    .await;

    let view = api
        .expect(
            200,
            req("GET /wars/{war_id}/battles/{battle_id}")
                .path("war_id", &war_id)
                .path("battle_id", &battle_id),
        )
        .await;
    assert_eq!(view["state"], "IN_PROGRESS", "{view}");
    let resolved = api
        .expect(
            200,
            req("POST /wars/{war_id}/battles/{battle_id}/resolve")
                .path("war_id", &war_id)
                .path("battle_id", &battle_id)
                .body(json!({"winner_side": "attacker"})),
        )
        .await;
    assert_eq!(resolved["status"], "RESOLVED");
    api.expect_error(
        409,
        "BATTLE_NOT_OPEN",
        req("POST /wars/{war_id}/battles/{battle_id}/resolve")
            .path("war_id", &war_id)
            .path("battle_id", &battle_id)
            .body(json!({"winner_side": "defender"})),
    )
    .await;
    api.expect_error(
        404,
        "BATTLE_NOT_FOUND",
        req("GET /wars/{war_id}/battles/{battle_id}")
            .path("war_id", &war_id)
            .path("battle_id", "no-such-battle"),
    )
    .await;

    let capture = req("POST /territories/{territory_id}/capture")
        .path("territory_id", "t1")
        .actor("att-m3")
        .header("Idempotency-Key", "capture-1")
        .body(json!({"war_id": war_id, "clan_id": "att"}));
    let receipt = api.expect(200, capture.clone()).await;
    assert_eq!(receipt["territory"]["owner_clan_id"], "att");
    api.expect_error(409, "ALREADY_OWNER", capture).await;

    api.expect(
        200,
        req("GET /wars/{war_id}/scoreboard")
            .path("war_id", &war_id)
            .query("limit", "5"),
    )
    .await;
    api.expect_error(
        400,
        "INVALID_REQUEST",
        req("GET /wars/{war_id}/scoreboard")
            .path("war_id", &war_id)
            .query("limit", "0"),
    )
    .await;
    api.expect(
        200,
        req("GET /wars/{war_id}/players/{player_id}")
            .path("war_id", &war_id)
            .path("player_id", "att-m0"),
    )
    .await;
    api.expect_error(
        404,
        "PLAYER_NOT_FOUND",
        req("GET /wars/{war_id}/players/{player_id}")
            .path("war_id", &war_id)
            .path("player_id", "nobody"),
    )
    .await;
    // The ledger: everything accepted so far, newest first; pages, filters and bad input.
    let ledger = api
        .expect(
            200,
            req("GET /wars/{war_id}/ledger").path("war_id", &war_id),
        )
        .await;
    let entries = ledger["entries"].as_array().expect("entries");
    assert!(
        entries.iter().any(|e| e["kind"] == "capture"),
        "the capture is in the ledger: {ledger}"
    );
    let first = api
        .expect(
            200,
            req("GET /wars/{war_id}/ledger")
                .path("war_id", &war_id)
                .query("limit", "1"),
        )
        .await;
    assert_eq!(first["entries"].as_array().map(Vec::len), Some(1));
    if entries.len() > 1 {
        let cursor = first["next_cursor"]
            .as_str()
            .expect("a next page")
            .to_owned();
        let second = api
            .expect(
                200,
                req("GET /wars/{war_id}/ledger")
                    .path("war_id", &war_id)
                    .query("limit", "1")
                    .query("cursor", &cursor),
            )
            .await;
        assert_eq!(second["entries"][0], entries[1]);
    }
    let by_clan = api
        .expect(
            200,
            req("GET /wars/{war_id}/ledger")
                .path("war_id", &war_id)
                .query("clan_id", "att")
                .query("player_id", "nobody"),
        )
        .await;
    assert_eq!(by_clan["entries"], json!([]));
    for (name, value, code) in [
        ("limit", "0", "INVALID_REQUEST"),
        ("limit", "101", "INVALID_REQUEST"),
        ("cursor", "not-a-cursor", "INVALID_REQUEST"),
        ("player_id", "bad id", "INVALID_ID"),
        ("sort", "asc", "INVALID_REQUEST"),
    ] {
        api.expect_error(
            400,
            code,
            req("GET /wars/{war_id}/ledger")
                .path("war_id", &war_id)
                .query(name, value),
        )
        .await;
    }
    api.expect_error(
        404,
        "WAR_NOT_FOUND",
        req("GET /wars/{war_id}/ledger").path("war_id", "no-such-war"),
    )
    .await;
    api.expect_error(
        400,
        "INVALID_ID",
        req("GET /wars/{war_id}").path("war_id", "bad id"),
    )
    .await;
    api.expect_error(
        404,
        "WAR_NOT_FOUND",
        req("GET /wars/{war_id}").path("war_id", "no-such-war"),
    )
    .await;

    api.h.store.set_unavailable(true);
    api.expect_error(
        503,
        "SERVICE_UNAVAILABLE",
        req("GET /wars/{war_id}").path("war_id", &war_id),
    )
    .await;
    api.h.store.set_unavailable(false);

    // ---- the end: surrender, rewards ----------------------------------------------------------
    api.expect_error(
        403,
        "FORBIDDEN_ROLE",
        req("POST /wars/{war_id}/surrender")
            .path("war_id", &war_id)
            .actor("def-m3")
            .body(json!({"clan_id": "def"})),
    )
    .await;
    let ended = api
        .expect(
            200,
            req("POST /wars/{war_id}/surrender")
                .path("war_id", &war_id)
                .actor("def-leader")
                .body(json!({"clan_id": "def"})),
        )
        .await;
    assert_eq!(
        (&ended["status"], &ended["winner_side"]),
        (&json!("ENDED"), &json!("attacker"))
    );
    api.expect_error(
        404,
        "REWARDS_NOT_FOUND",
        req("GET /wars/{war_id}/rewards").path("war_id", &war_id),
    )
    .await;
    // The reward saga's first step (a Step Functions task) stores the plan.
    RewardService::new((&api.deps).into())
        .prepare(&WarId::new(war_id.as_str()).expect("war id"))
        .await
        .expect("reward plan");
    let rewards = api
        .expect(
            200,
            req("GET /wars/{war_id}/rewards").path("war_id", &war_id),
        )
        .await;
    assert!(
        rewards["grants"].as_array().is_some_and(|g| !g.is_empty()),
        "{rewards}"
    );

    // ---- operators after the end: a void, a re-drive ------------------------------------------
    let ledger = api
        .expect(
            200,
            req("GET /wars/{war_id}/ledger").path("war_id", &war_id),
        )
        .await;
    let voided = ledger["entries"][0]["event_id"]
        .as_str()
        .expect("a ledger entry")
        .to_owned();
    let void = |body: Value| {
        req("POST /admin/wars/{war_id}/void")
            .path("war_id", &war_id)
            .header("x-operator-id", "ops-1")
            .body(body)
    };
    let rescored = api
        .expect(
            200,
            void(json!({"event_ids": [voided.clone()], "reason": "dispute 12"})),
        )
        .await;
    assert_eq!(rescored["rescored"], json!(true), "{rescored}");
    let again = api
        .expect(
            200,
            void(json!({"event_ids": [voided], "reason": "dispute 12"})),
        )
        .await;
    assert_eq!(again["rescored"], json!(false), "{again}");
    api.expect_error(
        404,
        "LEDGER_ENTRIES_NOT_FOUND",
        void(json!({"event_ids": ["no-such-entry"], "reason": "dispute 13"})),
    )
    .await;
    api.expect_error(
        400,
        "INVALID_REQUEST",
        void(json!({"player_id": "att-m1", "clan_id": "att", "reason": "two selectors"})),
    )
    .await;
    let redrive = || {
        req("POST /admin/wars/{war_id}/rewards/redrive")
            .path("war_id", &war_id)
            .header("x-operator-id", "ops-1")
            .body(json!({"reason": "economy is back"}))
    };
    api.expect_error(409, "INVALID_REWARD_STATE", redrive())
        .await;
    let rewards_service = RewardService::new((&api.deps).into());
    let id = WarId::new(war_id.as_str()).expect("war id");
    rewards_service.begin(&id).await.expect("begin");
    rewards_service
        .fail(&id, "economy down")
        .await
        .expect("fail");
    let redriven = api.expect(200, redrive()).await;
    assert_eq!(
        (&redriven["status"], &redriven["attempt"]),
        (&json!("PENDING"), &json!(2))
    );

    let final_war = api
        .expect(200, req("GET /wars/{war_id}").path("war_id", &war_id))
        .await;
    for list in ["captures", "transitions"] {
        assert!(
            final_war[list].as_array().is_some_and(|l| !l.is_empty()),
            "{list}: {final_war}"
        );
    }

    // ---- the alliance breaks up ---------------------------------------------------------------
    api.expect(
        200,
        req("POST /alliances/{alliance_id}/leave")
            .path("alliance_id", &alliance_id)
            .actor("ally-leader")
            .body(json!({"clan_id": "ally"})),
    )
    .await;
    api.expect_error(
        422,
        "FOUNDER_CANNOT_LEAVE",
        req("POST /alliances/{alliance_id}/leave")
            .path("alliance_id", &alliance_id)
            .actor("def-leader")
            .body(json!({"clan_id": "def"})),
    )
    .await;
    api.expect(
        200,
        req("DELETE /alliances/{alliance_id}")
            .path("alliance_id", &alliance_id)
            .actor("def-leader"),
    )
    .await;
    api.expect_error(
        404,
        "ALLIANCE_NOT_FOUND",
        req("GET /alliances/{alliance_id}").path("alliance_id", &alliance_id),
    )
    .await;

    // ---- player sessions ------------------------------------------------------------------
    api.expect(
        200,
        req("POST /players/{player_id}/session-token").path("player_id", "att-m0"),
    )
    .await;
    api.expect_error(
        400,
        "INVALID_ID",
        req("POST /players/{player_id}/session-token").path("player_id", "not an id!"),
    )
    .await;

    // ---- coverage -------------------------------------------------------------------------
    let mut answered: BTreeMap<&str, BTreeSet<u16>> = BTreeMap::new();
    for (route, status, _) in &api.log {
        answered.entry(route.as_str()).or_default().insert(*status);
    }
    let without_success: Vec<&str> = routes::all_routes()
        .iter()
        .map(|(_, r)| *r)
        .filter(|r| {
            !answered
                .get(r)
                .is_some_and(|s| s.iter().any(|s| (200..300).contains(s)))
        })
        .collect();
    assert!(
        without_success.is_empty(),
        "operations whose success response was never validated: {without_success:?}"
    );
    let seen: BTreeSet<u16> = api.log.iter().map(|(_, s, _)| *s).collect();
    for class in ERROR_CLASSES {
        assert!(
            seen.contains(class),
            "no {class} answer was validated against the Error schema"
        );
    }

    // ---- what the WebSocket API pushes ------------------------------------------------------
    let envelope = api.spec.schema("EventEnvelope");
    let published = api.h.events.published();
    let mut types = BTreeSet::new();
    for event in &published {
        let json = serde_json::to_value(event).expect("envelope serialises");
        types.insert(event.event_type());
        api.spec.assert_valid(
            &format!("pushed event {}", event.event_type()),
            &envelope,
            &json,
        );
    }
    for expected in [
        "WarDeclared",
        "AllyJoined",
        "WarPhaseChanged",
        "BattleCreated",
        "TerritoryCaptured",
        "WarEnded",
    ] {
        assert!(
            types.contains(expected),
            "no {expected} event was checked (got {types:?})"
        );
    }
}

/// The fake clock's time (the handles expose the clock; `Clock::now` needs the trait).
trait ClockNow {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc>;
}

impl ClockNow for MemoryHandles {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use clanwar_domain::ports::Clock;
        self.clock.now()
    }
}
