//! The ACTIVE phase of the demo war. The story's must-do steps come first, each paced by the
//! war (see [`crate::pace`]): the battles opened (in parallel), two rounds of battle kills (the
//! first with a capture event), a capture through `POST /territories/{id}/capture`, and every
//! battle resolved for the side that scored more kills in it (in parallel). Then the game
//! servers' event stream fills the rest of ACTIVE: a batch of open-world kills and assists every
//! interval, sized by the API's pace, the last one sent while it can still land inside ACTIVE.
//! A step the clock leaves no time for is reported as missed; the war goes on without it.

use crate::api::{Api, DemoError};
use crate::cast::{Cast, Side, ATTACKER_ALLY};
use crate::config::DemoConfig;
use crate::live::Live;
use crate::model::{BatchAnswer, Battle, BattleState, CaptureAnswer, WarView};
use crate::pace::{fits, Pacer, StepKind, Window};
use crate::stream::{CaptureOrder, EventStream};
use chrono::{DateTime, Duration, Utc};
use futures_util::future::try_join_all;
use serde_json::{json, Value};

/// Rounds of battle kills before the battles are resolved (the second always carries a refarmed
/// kill and a replayed event, so the service's guards show early).
const BATTLE_ROUNDS: usize = 2;
/// No event happens closer than this to the end of ACTIVE (its `occurred_at` must be inside).
const LAST_EVENT_MARGIN_MS: i64 = 400;
/// Kills in the first batch, before the API's pace is known.
const FIRST_KILL_BUDGET: usize = 6;

/// What the fight needs from the story.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub api: &'a Api,
    pub config: &'a DemoConfig,
    pub cast: &'a Cast,
    pub live: &'a Live,
}

impl<'a> Ctx<'a> {
    fn pacer(&self, war: &'a WarView) -> Pacer<'a> {
        Pacer {
            api: self.api,
            live: self.live,
            war_id: &war.war_id,
        }
    }
}

/// A battle of the war and where it is.
struct BattleSite {
    id: String,
    place: String,
}

/// The event stream and where it is on the war's timeline.
struct Flow<'s> {
    stream: &'s mut EventStream,
    /// Where the next batch's events begin.
    from: DateTime<Utc>,
    /// The last moment an event may have happened.
    stop: DateTime<Utc>,
    /// The capture event the next batch carries.
    capture: Option<CaptureOrder>,
}

impl<'s> Flow<'s> {
    fn new(stream: &'s mut EventStream, war: &WarView, cast: &Cast) -> Self {
        let active_at = war.phase_deadlines.active_at + Duration::milliseconds(1);
        stream.set_max_kills(FIRST_KILL_BUDGET);
        Self {
            stream,
            from: (Utc::now() - Duration::milliseconds(900)).max(active_at),
            stop: war.phase_deadlines.ending_at - Duration::milliseconds(LAST_EVENT_MARGIN_MS),
            capture: Some(capture_order(cast)),
        }
    }

    /// The next batch's time span: from the end of the last one to now (never past `stop`).
    fn window(&mut self) -> (DateTime<Utc>, DateTime<Utc>) {
        let to = Utc::now().min(self.stop);
        let from = std::mem::replace(&mut self.from, to);
        (from, to)
    }
}

/// Plays ACTIVE: the must-do steps, then the event stream until the end of the phase.
pub(crate) async fn play(
    ctx: Ctx<'_>,
    stream: &mut EventStream,
    war: &WarView,
) -> Result<(), DemoError> {
    let pacer = ctx.pacer(war);
    let mut flow = Flow::new(stream, war, ctx.cast);
    ctx.live.step("ACTIVE: opening battles");
    let sites = open_battles(ctx, pacer, war).await?;
    ctx.live.step("ACTIVE: the battles report their kills");
    score_battles(ctx, pacer, war, &sites, &mut flow).await?;
    ctx.live.step("ACTIVE: capturing through the API");
    capture_by_api(ctx, pacer, war).await?;
    ctx.live.step("ACTIVE: resolving the battles");
    resolve_battles(ctx, pacer, war, &sites).await?;
    ctx.live.step(format!(
        "ACTIVE: open-world skirmishes every {:?}",
        ctx.config.batch_interval
    ));
    skirmishes(ctx, pacer, war, &mut flow).await
}

fn events_path(war: &WarView) -> String {
    format!("/wars/{}/events", war.war_id)
}

// ---- the must-do steps ------------------------------------------------------------------------

async fn open_battles(
    ctx: Ctx<'_>,
    pacer: Pacer<'_>,
    war: &WarView,
) -> Result<Vec<BattleSite>, DemoError> {
    let targets = ctx.cast.targets();
    let mut requests: Vec<(Value, String)> = targets
        .iter()
        .take(2)
        .map(|t| {
            (
                json!({ "territory_id": t.id, "max_players": 40 }),
                t.name.clone(),
            )
        })
        .collect();
    let field = targets.last().expect("the war has targets");
    requests.push((
        json!({ "position": { "x": field.x + 60.0, "y": field.y - 45.0 }, "max_players": 24 }),
        format!("open field near {}", field.name),
    ));
    let path = format!("/wars/{}/battles", war.war_id);
    let needed = pacer.needed(&[("POST", &path)]);
    let opened = try_join_all(requests.into_iter().map(|(body, place)| {
        let path = &path;
        let what = format!("battle at {place}");
        pacer.step(
            StepKind::OpenBattle,
            what,
            Window::Fighting,
            needed,
            move || async move {
                let battle: Battle = ctx.api.post(path, None, &body).await?;
                Ok(BattleSite {
                    id: battle.battle_id,
                    place,
                })
            },
        )
    }))
    .await?;
    let sites: Vec<BattleSite> = opened.into_iter().flatten().collect();
    let places: Vec<&str> = sites.iter().map(|s| s.place.as_str()).collect();
    if !sites.is_empty() {
        ctx.live.milestone(format!(
            "{} battles opened: {}",
            sites.len(),
            places.join(", ")
        ));
    }
    Ok(sites)
}

/// A few rounds of kills in the battles, a batch an interval; the first carries a capture event.
async fn score_battles(
    ctx: Ctx<'_>,
    pacer: Pacer<'_>,
    war: &WarView,
    sites: &[BattleSite],
    flow: &mut Flow<'_>,
) -> Result<(), DemoError> {
    let battles: Vec<String> = sites.iter().map(|s| s.id.clone()).collect();
    let path = events_path(war);
    for round in 1..=BATTLE_ROUNDS {
        let tick = tokio::time::Instant::now();
        let needed = pacer.needed(&[("POST", &path)]);
        let what = format!("battle kills, round {round} of {BATTLE_ROUNDS}");
        let sent = pacer
            .step(
                StepKind::ScoreBattles,
                what,
                Window::Fighting,
                needed,
                || send_batch(ctx, flow, war, &battles),
            )
            .await?;
        let Some(sent) = sent else {
            return Ok(());
        };
        flow.stream
            .set_max_kills(kill_budget(ctx.config.batch_interval, &sent));
        if round < BATTLE_ROUNDS {
            pause(ctx.config.batch_interval, tick, flow.stop).await;
        }
    }
    Ok(())
}

/// The attacker takes the first target through `POST /territories/{id}/capture`.
async fn capture_by_api(ctx: Ctx<'_>, pacer: Pacer<'_>, war: &WarView) -> Result<(), DemoError> {
    let (territory, clan) = (ctx.cast.targets()[0], ctx.cast.attacker());
    let body = json!({ "war_id": war.war_id, "clan_id": clan.id });
    let key = format!("{}-capture-{}", ctx.cast.run_id, territory.id);
    let path = format!("/territories/{}/capture", territory.id);
    let needed = pacer.needed(&[("POST", &path)]);
    let answer = pacer
        .step(
            StepKind::Capture,
            format!("capture of {}", territory.name),
            Window::Fighting,
            needed,
            || {
                ctx.api
                    .post_once::<CaptureAnswer>(&path, &clan.officer, &key, &body)
            },
        )
        .await?;
    if let Some(answer) = answer {
        ctx.live.milestone(format!(
            "{} captured by {} (capture API, +{} points)",
            territory.name, clan.name, answer.points
        ));
    }
    Ok(())
}

/// Every battle at once: each goes to the side with more kills in it (ties to the defenders,
/// who hold).
async fn resolve_battles(
    ctx: Ctx<'_>,
    pacer: Pacer<'_>,
    war: &WarView,
    sites: &[BattleSite],
) -> Result<(), DemoError> {
    try_join_all(sites.iter().map(|site| resolve(ctx, pacer, war, site))).await?;
    Ok(())
}

async fn resolve(
    ctx: Ctx<'_>,
    pacer: Pacer<'_>,
    war: &WarView,
    site: &BattleSite,
) -> Result<(), DemoError> {
    let path = format!("/wars/{}/battles/{}", war.war_id, site.id);
    let resolve = format!("{path}/resolve");
    let needed = pacer.needed(&[("GET", &path), ("POST", &resolve)]);
    let what = format!("result of the battle at {}", site.place);
    let resolved = pacer
        .step(
            StepKind::Resolve,
            what,
            Window::Fighting,
            needed,
            || async {
                let state: BattleState = ctx.api.get(&path).await?;
                let k = state.kills;
                let winner = if k.attacker > k.defender {
                    Side::Attacker
                } else {
                    Side::Defender
                };
                let body = json!({ "winner_side": winner.as_str() });
                let _: Value = ctx.api.post(&resolve, None, &body).await?;
                Ok((state, winner))
            },
        )
        .await?;
    if let Some((state, winner)) = resolved {
        ctx.live.milestone(format!(
            "battle at {} ({}) resolved: {} wins (kills {}–{}, battle bonus)",
            site.place,
            state.state,
            winner.as_str(),
            state.kills.attacker,
            state.kills.defender
        ));
    }
    Ok(())
}

// ---- the event stream -------------------------------------------------------------------------

/// Open-world batches until a batch could no longer land inside ACTIVE. The war as the poller
/// last read it and the batch route's latency decide; no extra read per batch.
async fn skirmishes(
    ctx: Ctx<'_>,
    pacer: Pacer<'_>,
    war: &WarView,
    flow: &mut Flow<'_>,
) -> Result<(), DemoError> {
    let path = events_path(war);
    let margin = Duration::milliseconds(LAST_EVENT_MARGIN_MS)
        .to_std()
        .unwrap_or_default();
    loop {
        let tick = tokio::time::Instant::now();
        let needed = pacer.needed(&[("POST", &path)]) + margin;
        let shown = ctx
            .live
            .read(|s| s.war.clone())
            .unwrap_or_else(|| war.clone());
        if let Err(reason) = fits(&shown, Window::Fighting, needed, Utc::now()) {
            ctx.live.milestone(format!(
                "the event stream stops before its next batch: {reason}"
            ));
            return Ok(());
        }
        let call = send_batch(ctx, flow, war, &[]);
        let sent = pacer
            .attempt(
                StepKind::Batch,
                "a batch of open-world events",
                Window::Fighting,
                call,
            )
            .await?;
        let Some(sent) = sent else {
            return Ok(());
        };
        flow.stream
            .set_max_kills(kill_budget(ctx.config.batch_interval, &sent));
        pause(ctx.config.batch_interval, tick, flow.stop).await;
    }
}

/// What one batch cost.
#[derive(Debug, Clone, Copy)]
struct Sent {
    events: usize,
    took: std::time::Duration,
}

/// Kills per batch the API digests within most of an interval at the pace of the last batch
/// (about 1.5 events per kill with assists), 2..=40.
fn kill_budget(interval: std::time::Duration, sent: &Sent) -> usize {
    let per_event_ms = (sent.took.as_millis() as f64 / sent.events.max(1) as f64).max(1.0);
    let events = 0.8 * interval.as_millis() as f64 / per_event_ms;
    ((events / 1.5) as usize).clamp(2, 40)
}

/// Sleeps until the next batch is due (never past `stop`).
async fn pause(interval: std::time::Duration, tick: tokio::time::Instant, stop: DateTime<Utc>) {
    let until_stop = (stop - Utc::now()).to_std().unwrap_or_default();
    let next = (tick + interval).saturating_duration_since(tokio::time::Instant::now());
    tokio::time::sleep(next.min(until_stop)).await;
}

/// The attacker's ally takes the second target, reported as a capture event in a batch.
fn capture_order(cast: &Cast) -> CaptureOrder {
    CaptureOrder {
        territory_id: cast.targets()[1].id.clone(),
        clan_id: cast.clans[ATTACKER_ALLY].id.clone(),
    }
}

/// Sends the next batch (kills in `battles`, or the open world when there are none, and the
/// pending capture event); returns its size and how long the API took to answer it.
async fn send_batch(
    ctx: Ctx<'_>,
    flow: &mut Flow<'_>,
    war: &WarView,
    battles: &[String],
) -> Result<Sent, DemoError> {
    let window = flow.window();
    let capture = flow.capture.take();
    let batch = flow
        .stream
        .batch(ctx.cast, battles, window, capture.as_ref());
    let body = Value::Array(batch.events.clone());
    let started = std::time::Instant::now();
    let answer: BatchAnswer = ctx.api.post(&events_path(war), None, &body).await?;
    let took = started.elapsed();
    ctx.live
        .record_batch(&batch.mix, batch.events.len(), took, &answer);
    if let Some(order) = &capture {
        report_capture_event(ctx, order, &batch.events, &answer);
    }
    Ok(Sent {
        events: batch.events.len(),
        took,
    })
}

/// Says whether the batch's capture event counted (a refused one is shown with its reason).
fn report_capture_event(
    ctx: Ctx<'_>,
    order: &CaptureOrder,
    events: &[Value],
    answer: &BatchAnswer,
) {
    let id = events
        .iter()
        .rfind(|e| e["type"] == "capture")
        .and_then(|e| e["event_id"].as_str())
        .unwrap_or("");
    let territory = ctx.cast.territory_name(&order.territory_id);
    let clan = ctx.cast.clan_name(&order.clan_id);
    match answer.rejected.iter().find(|r| r.event_id == id) {
        None => ctx.live.milestone(format!(
            "{territory} captured by {clan} (capture event in a batch)"
        )),
        Some(r) => ctx.live.milestone(format!(
            "capture event for {territory} refused: {} {}",
            r.code, r.reason
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    #[test]
    fn batches_shrink_when_the_api_slows_down() {
        let second = Std::from_secs(1);
        let quick = Sent {
            events: 20,
            took: Std::from_millis(400),
        };
        let slow = Sent {
            events: 20,
            took: Std::from_secs(9),
        };
        assert_eq!(kill_budget(second, &quick), 26);
        assert_eq!(kill_budget(second, &slow), 2);
        assert_eq!(
            kill_budget(
                second,
                &Sent {
                    events: 0,
                    took: Std::ZERO
                }
            ),
            40
        );
    }

    #[test]
    fn the_event_windows_follow_each_other_and_stop_inside_active() {
        let cast = Cast::new("dt", 10, &mut crate::rng::Rng::new(1));
        let mut war = crate::render::tests::war(&cast, "ACTIVE");
        let now = Utc::now();
        war.phase_deadlines.active_at = now - Duration::seconds(5);
        war.phase_deadlines.ending_at = now + Duration::seconds(5);
        let mut stream = EventStream::new(1, "dt");
        let mut flow = Flow::new(&mut stream, &war, &cast);
        let (a, b) = flow.window();
        let (c, _) = flow.window();
        assert!(a < b && b == c, "{a} {b} {c}");
        assert!(a > war.phase_deadlines.active_at);
        assert!(flow.stop < war.phase_deadlines.ending_at);
        assert!(flow.capture.is_some());
    }
}
