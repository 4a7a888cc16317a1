//! `score-calculator` (HTTP side): event batches, the scoreboard and one player's points.

use crate::http::{HttpRequest, HttpResponse, MAX_BATCH_BODY_BYTES};
use clanwar_domain::ids::{IdError, WarId};
use clanwar_domain::ledger::{LedgerFilter, DEFAULT_LEDGER_LIMIT};
use clanwar_domain::scoring::BattleEvent;
use clanwar_domain::services::scores::{ScoreService, DEFAULT_TOP_PLAYERS};
use clanwar_domain::services::Deps;
use clanwar_domain::{DomainError, DomainResult};
use serde_json::json;

pub const ROUTES: &[&str] = &[
    "POST /wars/{war_id}/events",
    "GET /wars/{war_id}/scoreboard",
    "GET /wars/{war_id}/players/{player_id}",
    "GET /wars/{war_id}/ledger",
];

pub async fn handle(scores: &ScoreService, req: HttpRequest) -> DomainResult<HttpResponse> {
    match req.route.as_str() {
        "POST /wars/{war_id}/events" => {
            let events: Vec<BattleEvent> = req.json(MAX_BATCH_BODY_BYTES)?;
            let started = std::time::Instant::now();
            let war_id: clanwar_domain::ids::WarId = req.id("war_id")?;
            let outcome = scores.ingest(&war_id, events).await?;
            score_update_latency(started);
            crate::telemetry::ingestion_lag(war_id.as_str(), outcome.lag_ms);
            HttpResponse::ok(outcome)
        }
        "GET /wars/{war_id}/scoreboard" => {
            req.only_query(&["limit"])?;
            let limit = req.query::<usize>("limit")?.unwrap_or(DEFAULT_TOP_PLAYERS);
            HttpResponse::ok(scores.scoreboard(&req.id("war_id")?, limit).await?)
        }
        "GET /wars/{war_id}/players/{player_id}" => HttpResponse::ok(
            scores
                .player(&req.id("war_id")?, &req.id("player_id")?)
                .await?,
        ),
        "GET /wars/{war_id}/ledger" => {
            req.only_query(&["player_id", "clan_id", "cursor", "limit"])?;
            let filter = LedgerFilter {
                player_id: query_id(&req, "player_id")?,
                clan_id: query_id(&req, "clan_id")?,
            };
            let limit = req.query::<usize>("limit")?.unwrap_or(DEFAULT_LEDGER_LIMIT);
            let war_id: WarId = req.id("war_id")?;
            let cursor = req.query.get("cursor").cloned();
            let page = scores.ledger(&war_id, &filter, limit, cursor).await?;
            HttpResponse::ok(json!({
                "war_id": war_id,
                "entries": page.items,
                "next_cursor": page.next_cursor,
            }))
        }
        other => Ok(HttpResponse::no_route(other)),
    }
}

/// An optional id in the query string, validated like a path id.
fn query_id<T>(req: &HttpRequest, name: &str) -> DomainResult<Option<T>>
where
    T: TryFrom<String, Error = IdError>,
{
    req.query
        .get(name)
        .map(|raw| {
            T::try_from(raw.clone()).map_err(|source| DomainError::InvalidId {
                field: name.to_owned(),
                source,
            })
        })
        .transpose()
}

/// EMF metric (namespace `ClanWars`, milliseconds): time to apply one event batch (HTTP or
/// ingestion queue); `infra/template.yaml` alarms on its p95.
pub const SCORE_UPDATE_LATENCY_METRIC: &str = "ScoreUpdateLatency";

/// Emits [`SCORE_UPDATE_LATENCY_METRIC`] for a batch applied since `started`.
pub fn score_update_latency(started: std::time::Instant) {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    crate::telemetry::metric(SCORE_UPDATE_LATENCY_METRIC, ms, "Milliseconds", &[]);
}

/// The score service is built once per cold start: it remembers when it last sent a snapshot.
pub fn service(deps: &Deps) -> ScoreService {
    ScoreService::new(deps.into())
}
