//! Waiting on the local stack without assuming it is fast: poll a condition until it holds or
//! a deadline passes, or read a stream until the awaited item comes, and fail with what was
//! awaited and what was last seen. Deadlines are generous — a healthy machine returns as soon
//! as the condition holds, a loaded one gets the time it needs — and nothing here sleeps to
//! synchronise: every wait ends on an observed condition.

use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// How far behind its deadline a phase timer or a saga may run on a loaded machine.
pub const SLACK: Duration = Duration::from_secs(60);
/// How long a single step of the stack (a request, a saga step, a pushed event) may take on a
/// loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// First pause between two looks; it grows to [`MAX_POLL`] so a slow stack is not read harder.
const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(1);

/// One look at the stack: the awaited value, or what was there instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen<T> {
    Ready(T),
    NotYet(String),
}

impl<T: Debug> Seen<T> {
    /// `Ready(value)` when `ready`, else the value as what was seen.
    pub fn ready_if(ready: bool, value: T) -> Self {
        if ready {
            Seen::Ready(value)
        } else {
            Seen::NotYet(format!("{value:?}"))
        }
    }
}

/// `within` times `CLANWAR_TEST_PATIENCE_SCALE` (default 1): a slower emulator (LocalStack, one
/// Python process serving every service, on a shared 2-core machine) gets proportionally longer
/// deadlines; a passing wait still returns as soon as its condition holds.
pub fn scaled(within: Duration) -> Duration {
    let scale = std::env::var("CLANWAR_TEST_PATIENCE_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 1.0)
        .unwrap_or(1.0);
    within.mul_f64(scale)
}

/// The time from now until `at` (zero once it passed): a deadline tied to a war's own clock,
/// e.g. `until(war.phase_deadlines.ended_at) + SLACK`.
pub fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or_default()
}

/// Looks with `probe` until it sees the awaited value and returns it; panics after `within`
/// naming `what` and the last observation.
pub async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Seen<T>>,
{
    let within = scaled(within);
    let started = Instant::now();
    let mut pause = FIRST_POLL;
    let mut looks = 0;
    loop {
        looks += 1;
        let last = match probe().await {
            Seen::Ready(value) => return value,
            Seen::NotYet(observation) => observation,
        };
        let elapsed = started.elapsed();
        if elapsed >= within {
            panic!(
                "timed out after {:.1} s ({looks} looks) waiting for {what}; last seen: {last}",
                elapsed.as_secs_f64()
            );
        }
        tokio::time::sleep(pause.min(within - elapsed)).await;
        pause = (pause * 3 / 2).min(MAX_POLL);
    }
}

/// Reads `items` until one is `wanted` and returns it; panics after `within` (or when the
/// stream ends) naming `what` and the items read meanwhile.
pub async fn next_matching<S, T>(
    what: &str,
    within: Duration,
    items: &mut S,
    mut wanted: impl FnMut(&T) -> bool,
) -> T
where
    S: Stream<Item = T> + Unpin,
    T: Debug,
{
    let within = scaled(within);
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, items.next()).await {
            Ok(Some(item)) if wanted(&item) => return item,
            Ok(Some(item)) => seen.push(item),
            Ok(None) => panic!("the stream ended while waiting for {what}; read: {seen:?}"),
            Err(_) => panic!(
                "timed out after {:.1} s waiting for {what}; read: {seen:?}",
                within.as_secs_f64()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_wait_returns_the_value_as_soon_as_the_condition_holds() {
        let looks = AtomicU32::new(0);
        let value = wait_until("the third look", Duration::from_secs(5), || async {
            let n = looks.fetch_add(1, Ordering::SeqCst) + 1;
            Seen::ready_if(n == 3, n)
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for a war to end; last seen: \"ACTIVE\"")]
    async fn a_wait_that_times_out_says_what_it_awaited_and_what_it_saw() {
        wait_until("a war to end", Duration::from_millis(300), || async {
            Seen::<()>::NotYet("\"ACTIVE\"".into())
        })
        .await;
    }

    #[tokio::test]
    async fn a_stream_is_read_up_to_the_wanted_item() {
        let mut items = futures_util::stream::iter([1, 2, 3, 4]);
        let found = next_matching(
            "an even number over 2",
            Duration::from_secs(1),
            &mut items,
            |n| n % 2 == 0 && *n > 2,
        )
        .await;
        assert_eq!(found, 4);
    }

    #[tokio::test]
    #[should_panic(expected = "the stream ended while waiting for a 9; read: [1, 2]")]
    async fn a_stream_that_ends_first_fails_with_what_it_read() {
        let mut items = futures_util::stream::iter([1, 2]);
        next_matching("a 9", Duration::from_secs(1), &mut items, |n| *n == 9).await;
    }

    #[test]
    fn a_past_deadline_leaves_no_time() {
        assert_eq!(
            until(Utc::now() - chrono::Duration::seconds(1)),
            Duration::ZERO
        );
        assert!(until(Utc::now() + chrono::Duration::seconds(10)) > Duration::from_secs(9));
    }
}
