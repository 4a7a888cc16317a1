//! Pacing by the war, not by a guess: before a timed step the story reads the war and checks
//! the time its phase has left against what the step's routes have been taking. A step that can
//! no longer land inside its phase is reported as missed and the story goes on; so is a step
//! refused with `409 INVALID_WAR_STATE` because a timer moved the war on between the check and
//! the call. Every other error still stops the demo.

use crate::api::{Api, DemoError};
use crate::live::Live;
use crate::model::WarView;
use chrono::{DateTime, Utc};
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// Margin on the measured latency: a loaded machine answers unevenly.
const SAFETY: f64 = 1.5;

/// The phase a timed step has to land in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    /// DECLARED or PREPARATION: allies may join.
    Rosters,
    /// ACTIVE: battles, captures, results, events.
    Fighting,
}

impl Window {
    fn contains(self, status: &str) -> bool {
        match self {
            Window::Rosters => matches!(status, "DECLARED" | "PREPARATION"),
            Window::Fighting => status == "ACTIVE",
        }
    }

    fn closes_at(self, war: &WarView) -> DateTime<Utc> {
        match self {
            Window::Rosters => war.phase_deadlines.active_at,
            Window::Fighting => war.phase_deadlines.ending_at,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Window::Rosters => "PREPARATION",
            Window::Fighting => "ACTIVE",
        }
    }
}

/// Which of the story's timed steps was missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// An ally joining a side.
    Join,
    /// A battle opened at the start of ACTIVE.
    OpenBattle,
    /// A round of battle kills before the results.
    ScoreBattles,
    /// The capture through `POST /territories/{id}/capture`.
    Capture,
    /// A battle result.
    Resolve,
    /// A batch of the open-world event stream.
    Batch,
}

/// A step the war's clock did not leave time for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissedStep {
    pub kind: StepKind,
    /// What the step would have done (`capture of Iron Ford`).
    pub what: String,
    /// Why it could not (`ACTIVE ends in 0.4 s, the step takes about 1.9 s`).
    pub reason: String,
}

impl fmt::Display for MissedStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.reason)
    }
}

/// What a step can still do, or why it cannot: the step needs `needed` inside `window`.
pub(crate) fn fits(
    war: &WarView,
    window: Window,
    needed: Duration,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if !window.contains(&war.status) {
        return Err(format!("the war is already {}", war.status));
    }
    let left = (window.closes_at(war) - now).to_std().unwrap_or_default();
    if left < needed {
        return Err(format!(
            "{} ends in {:.1} s, the step takes about {:.1} s",
            window.name(),
            left.as_secs_f64(),
            needed.as_secs_f64()
        ));
    }
    Ok(())
}

/// The API, the live view and the war the timed steps belong to.
#[derive(Clone, Copy)]
pub(crate) struct Pacer<'a> {
    pub api: &'a Api,
    pub live: &'a Live,
    pub war_id: &'a str,
}

impl Pacer<'_> {
    /// What `calls` (method, path), made one after the other, are likely to take.
    pub(crate) fn needed(&self, calls: &[(&str, &str)]) -> Duration {
        let sum: Duration = calls
            .iter()
            .map(|(method, path)| self.api.latency(method, path))
            .sum();
        sum.mul_f64(SAFETY)
    }

    async fn war(&self) -> Result<WarView, DemoError> {
        let war: WarView = self.api.get(&format!("/wars/{}", self.war_id)).await?;
        self.live.set_war(war.clone());
        Ok(war)
    }

    fn missed(&self, kind: StepKind, what: String, reason: String) {
        self.live.missed(MissedStep { kind, what, reason });
    }

    /// Runs one timed step: reads the war, checks that the `needed` time (see
    /// [`Pacer::needed`]) still fits into `window`, then `act`s. `None` when the step was
    /// missed (reported in the live view).
    pub(crate) async fn step<T, F, Fut>(
        &self,
        kind: StepKind,
        what: impl Into<String>,
        window: Window,
        needed: Duration,
        act: F,
    ) -> Result<Option<T>, DemoError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, DemoError>>,
    {
        let war = self.war().await?;
        if let Err(reason) = fits(&war, window, needed, Utc::now()) {
            self.missed(kind, what.into(), reason);
            return Ok(None);
        }
        self.attempt(kind, what, window, act()).await
    }

    /// Awaits a step already judged in time: a phase conflict because the war has meanwhile
    /// left `window` is a miss; any other error is the demo's error.
    pub(crate) async fn attempt<T>(
        &self,
        kind: StepKind,
        what: impl Into<String>,
        window: Window,
        call: impl Future<Output = Result<T, DemoError>>,
    ) -> Result<Option<T>, DemoError> {
        match call.await {
            Ok(done) => Ok(Some(done)),
            Err(error) if error.is_invalid_war_state() => {
                let war = self.war().await?;
                if window.contains(&war.status) {
                    return Err(error);
                }
                self.missed(
                    kind,
                    what.into(),
                    format!("the war became {} first ({error})", war.status),
                );
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cast::Cast;
    use crate::render::tests::{t, war};
    use crate::rng::Rng;
    use serde_json::{json, Value};
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};

    /// Canned answers per `METHOD /path`, served in order (the last one repeats), one request
    /// per connection; returns the base URL and the requests seen.
    fn fake_api(answers: Vec<(&str, Vec<(u16, Value)>)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut answers: HashMap<String, Vec<(u16, Value)>> = answers
            .into_iter()
            .map(|(route, replies)| (route.to_owned(), replies))
            .collect();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let route: Vec<&str> = line.split_whitespace().take(2).collect();
                let route = route.join(" ");
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                reader.read_exact(&mut vec![0; length]).unwrap();
                log.lock().unwrap().push(route.clone());
                let replies = answers.get_mut(&route).expect("an expected request");
                let (status, body) = if replies.len() > 1 {
                    replies.remove(0)
                } else {
                    replies[0].clone()
                };
                let body = body.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, seen)
    }

    fn war_json(status: &str) -> Value {
        let soon = |s: i64| Utc::now() + chrono::Duration::seconds(s);
        json!({
            "war_id": "w-1", "status": status, "attacker_clan_id": "a", "defender_clan_id": "d",
            "phase_deadlines": { "preparation_at": soon(-20), "active_at": soon(-10),
                                 "ending_at": soon(60), "ended_at": soon(70) },
            "sides": { "attacker": { "clan_ids": ["a"] }, "defender": { "clan_ids": ["d"] } },
            "territory_ids": ["t"]
        })
    }

    fn conflict(code: &str) -> (u16, Value) {
        (
            409,
            json!({ "error": { "code": code, "message": "war w-1 is Ending" } }),
        )
    }

    /// Plays one capture step against `answers`: what it returned, what was missed, the requests.
    async fn capture_step(
        answers: Vec<(&str, Vec<(u16, Value)>)>,
    ) -> (
        Result<Option<Value>, DemoError>,
        Vec<MissedStep>,
        Vec<String>,
    ) {
        let (url, seen) = fake_api(answers);
        let api = Api::new(&url).unwrap();
        let live = Live::new(std::sync::Arc::new(Cast::new("dt", 10, &mut Rng::new(1))));
        let pacer = Pacer {
            api: &api,
            live: &live,
            war_id: "w-1",
        };
        let (path, body) = ("/territories/t/capture", json!({}));
        let result = pacer
            .step(
                StepKind::Capture,
                "capture of t",
                Window::Fighting,
                Duration::from_millis(10),
                || api.post::<Value>(path, Some("p"), &body),
            )
            .await;
        let requests = seen.lock().unwrap().clone();
        (result, live.missed_steps(), requests)
    }

    #[tokio::test]
    async fn a_step_the_war_has_no_time_for_is_missed_without_being_tried() {
        let (result, missed, requests) =
            capture_step(vec![("GET /wars/w-1", vec![(200, war_json("ENDING"))])]).await;
        assert!(matches!(result, Ok(None)), "{result:?}");
        assert_eq!(missed.len(), 1);
        assert_eq!(missed[0].reason, "the war is already ENDING");
        assert_eq!(requests, ["GET /wars/w-1"]);
    }

    #[tokio::test]
    async fn a_phase_conflict_after_the_timer_fired_is_a_miss_not_an_error() {
        let (result, missed, _) = capture_step(vec![
            (
                "GET /wars/w-1",
                vec![(200, war_json("ACTIVE")), (200, war_json("ENDING"))],
            ),
            (
                "POST /territories/t/capture",
                vec![conflict("INVALID_WAR_STATE")],
            ),
        ])
        .await;
        assert!(matches!(result, Ok(None)), "{result:?}");
        assert_eq!(missed.len(), 1);
        assert!(
            missed[0].reason.starts_with("the war became ENDING first"),
            "{}",
            missed[0].reason
        );
    }

    #[tokio::test]
    async fn a_phase_conflict_while_the_war_is_still_in_its_phase_stays_an_error() {
        let (result, missed, _) = capture_step(vec![
            ("GET /wars/w-1", vec![(200, war_json("ACTIVE"))]),
            (
                "POST /territories/t/capture",
                vec![conflict("INVALID_WAR_STATE")],
            ),
        ])
        .await;
        assert!(result.is_err_and(|e| e.is_invalid_war_state()));
        assert!(missed.is_empty());
    }

    #[tokio::test]
    async fn any_other_error_stops_the_step() {
        let (result, missed, _) = capture_step(vec![
            ("GET /wars/w-1", vec![(200, war_json("ACTIVE"))]),
            (
                "POST /territories/t/capture",
                vec![conflict("CONCURRENT_MODIFICATION")],
            ),
        ])
        .await;
        assert!(result.is_err(), "{result:?}");
        assert!(missed.is_empty());
    }

    #[tokio::test]
    async fn a_step_in_time_runs_and_returns_its_answer() {
        let (result, missed, requests) = capture_step(vec![
            ("GET /wars/w-1", vec![(200, war_json("ACTIVE"))]),
            (
                "POST /territories/t/capture",
                vec![(200, json!({"points": 200}))],
            ),
        ])
        .await;
        assert_eq!(result.unwrap(), Some(json!({"points": 200})));
        assert!(missed.is_empty());
        assert_eq!(requests, ["GET /wars/w-1", "POST /territories/t/capture"]);
    }

    #[test]
    fn a_step_fits_while_its_phase_has_the_time_it_takes() {
        let cast = Cast::new("dt", 10, &mut Rng::new(1));
        let active = war(&cast, "ACTIVE"); // ACTIVE from t(10) to t(50)
        let second = Duration::from_secs(1);
        assert_eq!(fits(&active, Window::Fighting, second, t(20)), Ok(()));
        assert_eq!(
            fits(&active, Window::Fighting, 2 * second, t(49)),
            Err("ACTIVE ends in 1.0 s, the step takes about 2.0 s".into())
        );
        assert!(
            fits(&active, Window::Fighting, second, t(51)).is_err(),
            "a late timer leaves no time"
        );
        assert_eq!(
            fits(&war(&cast, "ENDING"), Window::Fighting, second, t(20)),
            Err("the war is already ENDING".into())
        );
        assert_eq!(
            fits(&war(&cast, "PREPARATION"), Window::Rosters, second, t(6)),
            Ok(())
        );
        assert!(fits(&active, Window::Rosters, second, t(6)).is_err());
    }

    #[test]
    fn the_time_a_step_needs_adds_its_calls_with_a_margin() {
        let api = Api::new("http://127.0.0.1:1").unwrap();
        let live = Live::new(std::sync::Arc::new(Cast::new("dt", 10, &mut Rng::new(1))));
        let pacer = Pacer {
            api: &api,
            live: &live,
            war_id: "w-1",
        };
        // Nothing measured yet: 300 ms a call.
        let two = [
            ("GET", "/wars/w-1/battles/b"),
            ("POST", "/wars/w-1/battles/b/resolve"),
        ];
        assert_eq!(pacer.needed(&two), Duration::from_millis(900));
        assert_eq!(pacer.needed(&[]), Duration::ZERO);
    }
}
