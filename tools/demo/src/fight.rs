//! The ACTIVE phase of the demo war, as two flows running side by side:
//! - the game servers' event stream: a batch of kills and assists every interval (a capture
//!   event in one of them), until just before ACTIVE ends;
//! - the story's must-do steps: a capture through `POST /territories/{id}/capture`, then every
//!   battle resolved with the side that scored more kills in it.
//!
//! The steps fall due at fixed shares of the fighting time, or earlier when the API's current
//! latency says they would otherwise not finish inside ACTIVE (a shared local stack can take
//! seconds per call); a slow batch never holds them up.

use crate::api::{Api, DemoError};
use crate::cast::{Cast, Side, ATTACKER_ALLY};
use crate::config::DemoConfig;
use crate::live::Live;
use crate::model::{BatchAnswer, Battle, BattleState, CaptureAnswer, WarView};
use crate::stream::{CaptureOrder, EventStream};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};

/// Shares of the fighting time at which the story's ACTIVE steps happen.
const CAPTURE_BY_API_AT: f64 = 0.25;
const CAPTURE_BY_EVENT_AT: f64 = 0.4;
const RESOLVE_AT: f64 = 0.5;
/// No event happens closer than this to the end of ACTIVE (its `occurred_at` must be inside).
const LAST_EVENT_MARGIN_MS: i64 = 400;
/// Kills in the first batch, before the API's pace is known.
const FIRST_KILL_BUDGET: usize = 6;
/// How often a waiting step re-checks whether it is due.
const STEP_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// What the fight needs from the story.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub api: &'a Api,
    pub config: &'a DemoConfig,
    pub cast: &'a Cast,
    pub live: &'a Live,
}

/// A battle of the war and where it is.
struct BattleSite {
    id: String,
    place: String,
}

/// The fighting time: from when the story saw ACTIVE to the end of ACTIVE.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    begin: DateTime<Utc>,
    end: DateTime<Utc>,
    /// The last moment an event may have happened.
    stop: DateTime<Utc>,
}

impl Timeline {
    fn new(war: &WarView, begin: DateTime<Utc>) -> Self {
        let end = war.phase_deadlines.ending_at;
        Self {
            begin,
            end,
            stop: end - Duration::milliseconds(LAST_EVENT_MARGIN_MS),
        }
    }

    fn at(&self, share: f64) -> DateTime<Utc> {
        let span = (self.end - self.begin).num_milliseconds() as f64;
        self.begin + Duration::milliseconds((span * share) as i64)
    }

    /// Due at `share` of the fighting time, or once `calls` more requests at `latency` would
    /// otherwise run past the end of ACTIVE.
    fn due(
        &self,
        share: f64,
        calls: usize,
        latency: std::time::Duration,
        now: DateTime<Utc>,
    ) -> bool {
        now >= self.at(share) || now + reserve(latency, calls) >= self.end
    }
}

/// What `calls` more requests are likely to take at `latency`, with a margin.
fn reserve(latency: std::time::Duration, calls: usize) -> Duration {
    Duration::milliseconds((latency.as_millis() as f64 * calls as f64 * 2.5) as i64 + 2_000)
}

/// What the two flows tell each other.
#[derive(Debug, Default)]
struct Flags {
    /// The battles are resolved: later kills happen in the open world.
    resolved: AtomicBool,
    /// A story step is running: the stream holds its next batch so the step gets the stack.
    busy: AtomicBool,
}

/// Plays ACTIVE: opens the battles, then runs the event stream and the story's steps together.
pub(crate) async fn play(
    ctx: Ctx<'_>,
    stream: &mut EventStream,
    war: &WarView,
) -> Result<(), DemoError> {
    let timeline = Timeline::new(war, Utc::now());
    ctx.live.step("ACTIVE: opening battles");
    let sites = open_battles(ctx, war).await?;
    ctx.live.step(format!(
        "ACTIVE: a batch of battle events every {:?}",
        ctx.config.batch_interval
    ));
    let flags = Flags::default();
    // The steps are polled first: one already due marks the stack busy before any batch goes.
    tokio::try_join!(
        steps(ctx, war, &sites, &timeline, &flags),
        events(ctx, stream, war, &sites, &timeline, &flags)
    )?;
    Ok(())
}

// ---- the event stream -------------------------------------------------------------------------

async fn events(
    ctx: Ctx<'_>,
    stream: &mut EventStream,
    war: &WarView,
    sites: &[BattleSite],
    timeline: &Timeline,
    flags: &Flags,
) -> Result<(), DemoError> {
    let active_at = war.phase_deadlines.active_at + Duration::milliseconds(1);
    let mut last = (timeline.begin - Duration::milliseconds(900)).max(active_at);
    let mut captured = false;
    let mut batch_took = ctx.config.batch_interval;
    // Start small and let the API's pace set the size (`kill_budget`).
    stream.set_max_kills(FIRST_KILL_BUDGET);
    while Utc::now() < timeline.stop {
        let tick = tokio::time::Instant::now();
        if flags.busy.load(Ordering::Acquire) {
            tokio::time::sleep(STEP_CHECK).await;
            continue;
        }
        let open: Vec<String> = if flags.resolved.load(Ordering::Acquire) {
            Vec::new()
        } else {
            sites.iter().map(|s| s.id.clone()).collect()
        };
        let order = (!captured && timeline.due(CAPTURE_BY_EVENT_AT, 0, batch_took, Utc::now()))
            .then(|| capture_order(ctx.cast));
        let to = Utc::now().min(timeline.stop);
        let sent = send_batch(ctx, stream, war, &open, (last, to), order.as_ref()).await?;
        batch_took = sent.took;
        stream.set_max_kills(kill_budget(ctx.config.batch_interval, &sent));
        last = to;
        captured |= order.is_some();
        pause(ctx.config.batch_interval, tick, timeline.stop).await;
    }
    Ok(())
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

/// Sends one batch; returns its size and how long the API took to answer it.
async fn send_batch(
    ctx: Ctx<'_>,
    stream: &mut EventStream,
    war: &WarView,
    battles: &[String],
    window: (DateTime<Utc>, DateTime<Utc>),
    capture: Option<&CaptureOrder>,
) -> Result<Sent, DemoError> {
    let batch = stream.batch(ctx.cast, battles, window, capture);
    let body = Value::Array(batch.events.clone());
    let started = std::time::Instant::now();
    let answer: BatchAnswer = ctx
        .api
        .post(&format!("/wars/{}/events", war.war_id), None, &body)
        .await?;
    let took = started.elapsed();
    ctx.live
        .record_batch(&batch.mix, batch.events.len(), took, &answer);
    if let Some(order) = capture {
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

// ---- the story's steps ------------------------------------------------------------------------

async fn steps(
    ctx: Ctx<'_>,
    war: &WarView,
    sites: &[BattleSite],
    timeline: &Timeline,
    flags: &Flags,
) -> Result<(), DemoError> {
    // Reading the battles goes in parallel; the results one after the other.
    let results = 1 + sites.len();
    wait_until_due(ctx, timeline, CAPTURE_BY_API_AT, results + 1).await?;
    flags.busy.store(true, Ordering::Release);
    capture_by_api(ctx, war).await?;
    flags.busy.store(false, Ordering::Release);
    wait_until_due(ctx, timeline, RESOLVE_AT, results).await?;
    flags.busy.store(true, Ordering::Release);
    resolve_battles(ctx, war, sites).await?;
    flags.resolved.store(true, Ordering::Release);
    flags.busy.store(false, Ordering::Release);
    Ok(())
}

/// Waits until a step is due; a step that can no longer happen inside ACTIVE is an error.
async fn wait_until_due(
    ctx: Ctx<'_>,
    timeline: &Timeline,
    share: f64,
    calls: usize,
) -> Result<(), DemoError> {
    while !timeline.due(share, calls, ctx.api.latency(), Utc::now()) {
        tokio::time::sleep(STEP_CHECK).await;
    }
    if Utc::now() >= timeline.end {
        return Err(DemoError::Unexpected(
            "ACTIVE ended before the story's capture and battle results were in: use a longer active phase"
                .into(),
        ));
    }
    Ok(())
}

async fn open_battles(ctx: Ctx<'_>, war: &WarView) -> Result<Vec<BattleSite>, DemoError> {
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
    let mut sites = Vec::new();
    for (body, place) in requests {
        let battle: Battle = ctx
            .api
            .post(&format!("/wars/{}/battles", war.war_id), None, &body)
            .await?;
        sites.push(BattleSite {
            id: battle.battle_id,
            place,
        });
    }
    let places: Vec<&str> = sites.iter().map(|s| s.place.as_str()).collect();
    ctx.live.milestone(format!(
        "{} battles opened: {}",
        sites.len(),
        places.join(", ")
    ));
    Ok(sites)
}

/// The attacker takes the first target through `POST /territories/{id}/capture`.
async fn capture_by_api(ctx: Ctx<'_>, war: &WarView) -> Result<(), DemoError> {
    let (territory, clan) = (ctx.cast.targets()[0], ctx.cast.attacker());
    let body = json!({ "war_id": war.war_id, "clan_id": clan.id });
    let key = format!("{}-capture-{}", ctx.cast.run_id, territory.id);
    let path = format!("/territories/{}/capture", territory.id);
    let answer: CaptureAnswer = ctx.api.post_once(&path, &clan.officer, &key, &body).await?;
    ctx.live.milestone(format!(
        "{} captured by {} (capture API, +{} points)",
        territory.name, clan.name, answer.points
    ));
    Ok(())
}

/// Each battle goes to the side with more kills in it (ties to the defenders, who hold).
async fn resolve_battles(
    ctx: Ctx<'_>,
    war: &WarView,
    sites: &[BattleSite],
) -> Result<(), DemoError> {
    let path = |site: &BattleSite| format!("/wars/{}/battles/{}", war.war_id, site.id);
    let paths: Vec<String> = sites.iter().map(path).collect();
    let states: Vec<BattleState> =
        futures_util::future::try_join_all(paths.iter().map(|p| ctx.api.get::<BattleState>(p)))
            .await?;
    for ((site, path), state) in sites.iter().zip(&paths).zip(states) {
        let k = state.kills;
        let winner = if k.attacker > k.defender {
            Side::Attacker
        } else {
            Side::Defender
        };
        let body = json!({ "winner_side": winner.as_str() });
        let _: Value = ctx
            .api
            .post(&format!("{path}/resolve"), None, &body)
            .await?;
        ctx.live.milestone(format!(
            "battle at {} ({}) resolved: {} wins (kills {}–{}, battle bonus)",
            site.place,
            state.state,
            winner.as_str(),
            k.attacker,
            k.defender
        ));
    }
    ctx.live.step(format!(
        "ACTIVE: open-world skirmishes every {:?}",
        ctx.config.batch_interval
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    fn timeline(seconds: i64) -> (Timeline, DateTime<Utc>) {
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let end = now + Duration::seconds(seconds);
        (
            Timeline {
                begin: now,
                end,
                stop: end,
            },
            now,
        )
    }

    #[test]
    fn steps_fall_due_at_their_share_of_the_fighting_time() {
        let (t, now) = timeline(60);
        assert!(t.due(0.0, 0, Std::from_millis(300), now));
        assert!(!t.due(0.5, 6, Std::from_millis(300), now));
        assert!(t.due(0.5, 6, Std::from_millis(300), now + Duration::seconds(30)));
    }

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
    fn a_slow_stack_brings_the_must_do_steps_forward() {
        let (t, now) = timeline(20);
        assert!(
            !t.due(0.6, 6, Std::from_millis(300), now),
            "six quick calls fit easily"
        );
        assert!(
            t.due(0.6, 6, Std::from_secs(3), now),
            "six slow calls must start now"
        );
        assert!(reserve(Std::from_millis(300), 0) < reserve(Std::from_millis(300), 6));
    }
}
