//! The live state the view shows, shared by the story (which reports what it does), the poller
//! (which reads the war and its scoreboard from the API twice a second) and the renderer.

use crate::api::Api;
use crate::cast::Cast;
use crate::model::{BatchAnswer, Scoreboard, WarView};
use crate::pace::MissedStep;
use crate::stream::Mix;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Lines kept in the view's event log.
const RECENT_LINES: usize = 5;
/// WebSocket pushes kept in the view.
const PUSH_LINES: usize = 3;
/// How often the poller reads the war and the scoreboard (the countdown ticks locally in
/// between; a shared local stack is slow enough without more reads).
const POLL_EVERY: Duration = Duration::from_secs(1);
/// The shortest pause between two reads.
const POLL_GAP: Duration = Duration::from_millis(250);
/// Top players shown.
pub const TOP_PLAYERS: usize = 5;

/// Event counts over the whole war.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub batches: u64,
    pub sent: u64,
    pub accepted: u64,
    pub duplicates: u64,
    /// Rejected events per reason code.
    pub rejected: BTreeMap<String, u64>,
}

impl Totals {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Everything the view shows.
#[derive(Debug)]
pub struct LiveState {
    pub cast: Arc<Cast>,
    pub war: Option<WarView>,
    pub board: Option<Scoreboard>,
    /// What the story is doing right now.
    pub step: String,
    pub recent: VecDeque<String>,
    pub pushes: VecDeque<String>,
    /// WebSocket pushes received so far.
    pub pushes_received: u64,
    pub totals: Totals,
    /// Timed steps the war's clock left no time for (the story went on without them).
    pub missed: Vec<MissedStep>,
    /// Reward saga progress, once the war ended.
    pub rewards: Option<String>,
    /// The poller's last failure (shown, never hidden; the story fails on its own errors).
    pub poll_error: Option<String>,
    /// Lines for the progress sink to print once (milestones of the story).
    milestones: Vec<String>,
}

/// A handle on the shared live state.
#[derive(Debug, Clone)]
pub struct Live {
    state: Arc<Mutex<LiveState>>,
}

impl Live {
    pub fn new(cast: Arc<Cast>) -> Self {
        let state = LiveState {
            cast,
            war: None,
            board: None,
            step: "starting".into(),
            recent: VecDeque::new(),
            pushes: VecDeque::new(),
            pushes_received: 0,
            totals: Totals::default(),
            missed: Vec::new(),
            rewards: None,
            poll_error: None,
            milestones: Vec::new(),
        };
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LiveState> {
        // A panic while holding the lock only ever interrupts a display update.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the state (the renderer's view of it).
    pub fn read<R>(&self, f: impl FnOnce(&LiveState) -> R) -> R {
        f(&self.lock())
    }

    /// A story step worth a line of its own: printed once by the sink, and kept in the view's
    /// short event log.
    pub fn milestone(&self, line: impl Into<String>) {
        let line = line.into();
        let mut state = self.lock();
        push_bounded(&mut state.recent, line.clone(), RECENT_LINES);
        state.milestones.push(line);
    }

    pub fn take_milestones(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().milestones)
    }

    /// A timed step that could not happen inside its phase: shown in the view for the rest of
    /// the run, and printed once as a milestone.
    pub fn missed(&self, step: MissedStep) {
        let line = format!("MISSED {step}");
        let mut state = self.lock();
        push_bounded(&mut state.recent, line.clone(), RECENT_LINES);
        state.milestones.push(line);
        state.missed.push(step);
    }

    pub fn missed_steps(&self) -> Vec<MissedStep> {
        self.lock().missed.clone()
    }

    /// What the story is doing now (the view's status line).
    pub fn step(&self, text: impl Into<String>) {
        self.lock().step = text.into();
    }

    /// A WebSocket push.
    pub fn push(&self, line: impl Into<String>) {
        let mut state = self.lock();
        state.pushes_received += 1;
        push_bounded(&mut state.pushes, line.into(), PUSH_LINES);
    }

    pub fn set_rewards(&self, line: impl Into<String>) {
        self.lock().rewards = Some(line.into());
    }

    /// A fresh war read; a phase change becomes a milestone. A read older than the one shown
    /// (the poller and the story read concurrently) is ignored.
    pub fn set_war(&self, war: WarView) {
        let mut state = self.lock();
        if state
            .war
            .as_ref()
            .is_some_and(|shown| shown.version > war.version)
        {
            return;
        }
        let before = state.war.as_ref().map(|w| w.status.clone());
        if before.as_deref() != Some(war.status.as_str()) {
            let line = match before {
                Some(from) => format!("phase {from} → {}", war.status),
                None => format!("war {} is {}", war.war_id, war.status),
            };
            push_bounded(&mut state.recent, line.clone(), RECENT_LINES);
            state.milestones.push(line);
        }
        state.war = Some(war);
    }

    pub fn set_board(&self, board: Scoreboard) {
        self.lock().board = Some(board);
    }

    /// Adds one batch's answer to the totals and logs it; returns the log line.
    pub fn record_batch(
        &self,
        mix: &Mix,
        sent: usize,
        took: Duration,
        answer: &BatchAnswer,
    ) -> String {
        let mut state = self.lock();
        let totals = &mut state.totals;
        totals.batches += 1;
        totals.sent += sent as u64;
        totals.accepted += answer.accepted;
        totals.duplicates += answer.duplicates;
        for r in &answer.rejected {
            *totals.rejected.entry(r.code.clone()).or_default() += 1;
        }
        let line = batch_line(totals.batches, mix, sent, took, answer);
        push_bounded(&mut state.recent, line.clone(), RECENT_LINES);
        line
    }

    pub fn totals(&self) -> Totals {
        self.lock().totals.clone()
    }

    /// Reads the war and (once there can be scores) its scoreboard, and stores them.
    pub async fn refresh(&self, api: &Api, war_id: &str) {
        let scoring = self.read(|s| {
            s.war
                .as_ref()
                .is_some_and(|w| !matches!(w.status.as_str(), "DECLARED" | "PREPARATION"))
        });
        let war_path = format!("/wars/{war_id}");
        let board_path = format!("/wars/{war_id}/scoreboard?limit={TOP_PLAYERS}");
        let (war, board) = tokio::join!(api.get::<WarView>(&war_path), async {
            if scoring {
                Some(api.get::<Scoreboard>(&board_path).await)
            } else {
                None
            }
        });
        let mut failure = None;
        match war {
            Ok(war) => self.set_war(war),
            Err(e) => failure = Some(e.to_string()),
        }
        match board {
            Some(Ok(board)) => self.set_board(board),
            Some(Err(e)) => failure = failure.or(Some(e.to_string())),
            None => {}
        }
        self.lock().poll_error = failure;
    }

    /// Keeps the war and scoreboard fresh until aborted: a read about every second, and at
    /// least a short pause between reads, so a slow stack is not read any harder.
    pub fn spawn_poller(&self, api: Api, war_id: String) -> JoinHandle<()> {
        let live = self.clone();
        tokio::spawn(async move {
            loop {
                let started = tokio::time::Instant::now();
                live.refresh(&api, &war_id).await;
                let rest = POLL_EVERY.saturating_sub(started.elapsed()).max(POLL_GAP);
                tokio::time::sleep(rest).await;
            }
        })
    }
}

fn push_bounded(lines: &mut VecDeque<String>, line: String, max: usize) {
    if lines.len() == max {
        lines.pop_front();
    }
    lines.push_back(line);
}

/// `batch #4: 14 sent (9 kills, 4 assists, 1 replay) → 11 accepted, 1 duplicate, 2 rejected [ANTI_FARMING×2] in 420 ms`
pub fn batch_line(n: u64, mix: &Mix, sent: usize, took: Duration, answer: &BatchAnswer) -> String {
    let mut parts = vec![
        format!("{} kills", mix.kills),
        format!("{} assists", mix.assists),
    ];
    for (count, what) in [
        (mix.captures, "capture"),
        (mix.refarms, "refarm"),
        (mix.replays, "replay"),
    ] {
        if count > 0 {
            parts.push(format!("{count} {what}"));
        }
    }
    let mut codes: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &answer.rejected {
        *codes.entry(r.code.as_str()).or_default() += 1;
    }
    let reasons = if codes.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = codes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
        format!(" [{}]", list.join(", "))
    };
    format!(
        "batch #{n}: {sent} sent ({}) → {} accepted, {} duplicate, {} rejected{reasons} in {} ms",
        parts.join(", "),
        answer.accepted,
        answer.duplicates,
        answer.rejected.len(),
        took.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RejectedEvent;
    use crate::rng::Rng;

    fn live() -> Live {
        Live::new(Arc::new(Cast::new("dt", 10, &mut Rng::new(1))))
    }

    fn rejected(code: &str) -> RejectedEvent {
        RejectedEvent {
            event_id: "e".into(),
            code: code.into(),
            reason: String::new(),
        }
    }

    #[test]
    fn batches_add_up_and_read_as_one_line() {
        let live = live();
        let mix = Mix {
            kills: 9,
            assists: 4,
            captures: 0,
            refarms: 1,
            replays: 1,
        };
        let answer = BatchAnswer {
            accepted: 13,
            duplicates: 1,
            rejected: vec![rejected("ANTI_FARMING")],
        };
        let line = live.record_batch(&mix, 15, Duration::from_millis(420), &answer);
        assert_eq!(
            line,
            "batch #1: 15 sent (9 kills, 4 assists, 1 refarm, 1 replay) → 13 accepted, 1 duplicate, 1 rejected [ANTI_FARMING×1] in 420 ms"
        );
        live.record_batch(&mix, 15, Duration::from_millis(420), &answer);
        let totals = live.totals();
        assert_eq!(
            (
                totals.batches,
                totals.sent,
                totals.accepted,
                totals.duplicates
            ),
            (2, 30, 26, 2)
        );
        assert_eq!(totals.rejected.get("ANTI_FARMING"), Some(&2));
        assert_eq!(totals.rejected_total(), 2);
    }

    #[test]
    fn an_older_war_read_never_replaces_a_newer_one() {
        let live = live();
        let cast = live.read(|s| s.cast.clone());
        let mut newer = crate::render::tests::war(&cast, "ACTIVE");
        newer.version = 4;
        let mut older = crate::render::tests::war(&cast, "PREPARATION");
        older.version = 3;
        live.set_war(newer);
        live.set_war(older);
        assert_eq!(
            live.read(|s| s.war.as_ref().unwrap().status.clone()),
            "ACTIVE"
        );
        assert_eq!(live.take_milestones(), ["war w-1 is ACTIVE"]);
    }

    #[test]
    fn a_missed_step_stays_in_the_state_and_is_printed_once() {
        let live = live();
        live.missed(MissedStep {
            kind: crate::pace::StepKind::Resolve,
            what: "result of the battle at Iron Ford".into(),
            reason: "the war is already ENDING".into(),
        });
        assert_eq!(
            live.take_milestones(),
            ["MISSED result of the battle at Iron Ford: the war is already ENDING"]
        );
        assert_eq!(live.missed_steps().len(), 1);
        assert!(live.take_milestones().is_empty());
    }

    #[test]
    fn the_event_log_keeps_only_the_last_lines_and_milestones_are_taken_once() {
        let live = live();
        for i in 0..10 {
            live.milestone(format!("line {i}"));
        }
        live.read(|s| {
            assert_eq!(
                s.recent.iter().map(String::as_str).collect::<Vec<_>>(),
                ["line 5", "line 6", "line 7", "line 8", "line 9"]
            )
        });
        assert_eq!(live.take_milestones().len(), 10);
        assert!(live.take_milestones().is_empty());
    }
}
