//! Where the live progress goes: a terminal block redrawn in place (ANSI cursor movement), plain
//! log lines for headless runs, or nowhere. A renderer task feeds the sink from the live state
//! at least twice a second until the story is over.

use crate::live::{Live, LiveState};
use crate::render::{status_line, view_lines};
use chrono::{DateTime, Utc};
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the view is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(250);
/// How often the headless log prints a status line (besides every phase change).
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// A sink for the demo's progress.
pub trait Progress: Send {
    /// A story milestone, shown once (declaration, joins, captures, phase changes...).
    fn milestone(&mut self, line: &str);
    /// The current live state; called several times a second.
    fn frame(&mut self, state: &LiveState, now: DateTime<Utc>);
    /// The story is over (the last frame stays on screen).
    fn finish(&mut self) {}
}

/// Redraws the live view in place on an ANSI terminal.
#[derive(Debug, Default)]
pub struct TerminalProgress {
    /// Lines of the block currently on screen (to move back over).
    drawn: usize,
}

impl TerminalProgress {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the cursor to the top of the drawn block and clears everything below it.
    fn erase(&mut self, out: &mut impl Write) {
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A\r\x1b[J", self.drawn);
        }
        self.drawn = 0;
    }
}

impl Progress for TerminalProgress {
    fn milestone(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        self.erase(&mut out);
        let _ = writeln!(out, "{} {line}", Utc::now().format("%H:%M:%S"));
        let _ = out.flush();
    }

    fn frame(&mut self, state: &LiveState, now: DateTime<Utc>) {
        let size =
            terminal_size::terminal_size().map(|(w, h)| (usize::from(w.0), usize::from(h.0)));
        let lines = fit(view_lines(state, now), size);
        let mut out = std::io::stdout().lock();
        self.erase(&mut out);
        for line in &lines {
            let _ = writeln!(out, "{line}\x1b[K");
        }
        let _ = out.flush();
        self.drawn = lines.len();
    }

    fn finish(&mut self) {
        self.drawn = 0;
    }
}

/// Cuts the block to the terminal (`(columns, rows)`), so no line wraps and the block never
/// scrolls: the cursor can always move back over exactly what was drawn.
pub fn fit(lines: Vec<String>, size: Option<(usize, usize)>) -> Vec<String> {
    let Some((columns, rows)) = size else {
        return lines;
    };
    let (width, height) = (
        columns.saturating_sub(1).max(20),
        rows.saturating_sub(1).max(5),
    );
    lines
        .into_iter()
        .take(height)
        .map(|line| {
            if line.chars().count() <= width {
                line
            } else {
                let mut cut: String = line.chars().take(width - 1).collect();
                cut.push('…');
                cut
            }
        })
        .collect()
}

/// Plain lines (no cursor movement): milestones, and a status line on every phase change and
/// every few seconds. For CI, pipes and tests.
#[derive(Debug)]
pub struct LogProgress {
    to_stderr: bool,
    last_status: Option<Instant>,
    last_phase: Option<String>,
}

impl LogProgress {
    pub fn stdout() -> Self {
        Self {
            to_stderr: false,
            last_status: None,
            last_phase: None,
        }
    }

    pub fn stderr() -> Self {
        Self {
            to_stderr: true,
            ..Self::stdout()
        }
    }

    fn print(&self, line: &str) {
        let line = format!("{} {line}", Utc::now().format("%H:%M:%S%.3f"));
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

impl Progress for LogProgress {
    fn milestone(&mut self, line: &str) {
        self.print(line);
    }

    fn frame(&mut self, state: &LiveState, now: DateTime<Utc>) {
        let phase = state.war.as_ref().map(|w| w.status.clone());
        let due = self
            .last_status
            .is_none_or(|at| at.elapsed() >= STATUS_EVERY);
        if state.war.is_some() && (due || phase != self.last_phase) {
            self.print(&status_line(state, now));
            self.last_status = Some(Instant::now());
            self.last_phase = phase;
        }
    }

    fn finish(&mut self) {}
}

/// Shows nothing.
#[derive(Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn milestone(&mut self, _line: &str) {}
    fn frame(&mut self, _state: &LiveState, _now: DateTime<Utc>) {}
}

/// The renderer task; `stop` draws a last frame and finishes the sink.
#[derive(Debug)]
pub struct Renderer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Renderer {
    pub fn spawn(live: Live, mut sink: Box<dyn Progress>) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(REDRAW_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let done = tokio::select! {
                    _ = tick.tick() => false,
                    _ = stopped.changed() => true,
                };
                draw(&live, sink.as_mut());
                if done {
                    sink.finish();
                    return;
                }
            }
        });
        Self { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn draw(live: &Live, sink: &mut dyn Progress) {
    for line in live.take_milestones() {
        sink.milestone(&line);
    }
    live.read(|state| sink.frame(state, Utc::now()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cast::Cast;
    use crate::rng::Rng;
    use std::sync::{Arc, Mutex};

    /// Records what the renderer hands to its sink.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Progress for Recorder {
        fn milestone(&mut self, line: &str) {
            self.0.lock().unwrap().push(format!("milestone {line}"));
        }
        fn frame(&mut self, state: &LiveState, _now: DateTime<Utc>) {
            self.0.lock().unwrap().push(format!("frame {}", state.step));
        }
        fn finish(&mut self) {
            self.0.lock().unwrap().push("finish".into());
        }
    }

    #[test]
    fn the_block_fits_the_terminal() {
        let mut lines = vec!["x".repeat(100), "short".into()];
        lines.extend((3..=8).map(|n| n.to_string()));
        let fitted = fit(lines.clone(), Some((41, 7)));
        assert_eq!(fitted.len(), 6, "one row stays free for the cursor");
        assert_eq!(fitted[0].chars().count(), 40);
        assert!(fitted[0].ends_with('…'));
        assert_eq!(fitted[1], "short");
        assert_eq!(fit(lines.clone(), None), lines);
    }

    #[tokio::test]
    async fn the_renderer_redraws_often_prints_milestones_once_and_finishes() {
        let live = Live::new(Arc::new(Cast::new("dt", 10, &mut Rng::new(1))));
        let recorder = Recorder::default();
        let renderer = Renderer::spawn(live.clone(), Box::new(recorder.clone()));
        live.milestone("war declared");
        live.step("waiting");
        // Waits for the frames rather than for a time, so a loaded machine is only slower.
        let frames = || {
            let seen = recorder.0.lock().unwrap();
            seen.iter().filter(|l| l.starts_with("frame")).count()
        };
        let give_up = Instant::now() + Duration::from_secs(30);
        while frames() < 4 && Instant::now() < give_up {
            tokio::time::sleep(REDRAW_EVERY).await;
        }
        renderer.stop().await;
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(
            seen.iter()
                .filter(|l| *l == "milestone war declared")
                .count(),
            1
        );
        assert!(
            seen.iter().filter(|l| l.starts_with("frame")).count() >= 4,
            "{seen:?}"
        );
        assert_eq!(seen.last().map(String::as_str), Some("finish"));
    }
}
