//! Bounded retries with jittered backoff: the one optimistic reload-and-retry loop of the
//! services ([`optimistic`], [`Attempts`]) and the delay schedule every retry in the code base
//! waits by ([`delay`], also used by the AWS adapters).
//!
//! A lost optimistic-locking race (a version changed between read and commit) is retried on
//! fresh reads, so the rules are always judged against what is committed. Competing writers
//! back off with jitter so they do not collide again in step; after [`MAX_ATTEMPTS`] attempts
//! the operation gives up with [`DomainError::ConcurrentModification`] (409, "retry").

use crate::error::{DomainError, DomainResult};
use crate::ports::Clock;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How often an operation loads, checks and commits before it gives up on a contended record.
pub const MAX_ATTEMPTS: u32 = 3;

/// First delay; doubles each round up to [`MAX_DELAY`].
pub const BASE_DELAY: Duration = Duration::from_millis(10);
pub const MAX_DELAY: Duration = Duration::from_millis(400);

/// The delay before retry `round` (1, 2, ...): jittered between half and all of
/// `BASE_DELAY × 2^(round-1)`, capped at [`MAX_DELAY`].
pub fn delay(round: u32) -> Duration {
    let ceiling = BASE_DELAY
        .saturating_mul(1 << round.saturating_sub(1).min(16))
        .min(MAX_DELAY);
    // A fresh `RandomState` is randomly keyed: enough jitter without a random-number crate.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = 0.5 + (random % 1_000) as f64 / 2_000.0;
    ceiling.mul_f64(fraction)
}

/// The budget of one optimistic operation: call [`Attempts::next`] before each attempt. The
/// first returns at once, later ones wait [`delay`] on the clock, and once the budget is spent
/// it refuses with [`DomainError::ConcurrentModification`].
pub struct Attempts<'c> {
    clock: &'c dyn Clock,
    max: u32,
    made: u32,
}

impl std::fmt::Debug for Attempts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempts")
            .field("max", &self.max)
            .field("made", &self.made)
            .finish()
    }
}

impl<'c> Attempts<'c> {
    pub fn new(clock: &'c dyn Clock) -> Self {
        Self::with_max(clock, MAX_ATTEMPTS)
    }

    pub fn with_max(clock: &'c dyn Clock, max: u32) -> Self {
        Self {
            clock,
            max: max.max(1),
            made: 0,
        }
    }

    /// Starts the next attempt, after backing off if it is a retry.
    pub async fn next(&mut self) -> DomainResult<()> {
        if self.made >= self.max {
            tracing::warn!(attempts = self.made, "optimistic retries exhausted");
            return Err(DomainError::ConcurrentModification);
        }
        if self.made > 0 {
            self.clock.pause(delay(self.made)).await;
        }
        self.made += 1;
        Ok(())
    }
}

/// Runs `attempt` (load, check, commit) until it does not lose a race: every answer but
/// [`DomainError::ConcurrentModification`] is final; at most [`MAX_ATTEMPTS`] attempts.
pub async fn optimistic<T, F, Fut>(clock: &dyn Clock, mut attempt: F) -> DomainResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = DomainResult<T>>,
{
    let mut attempts = Attempts::new(clock);
    loop {
        attempts.next().await?;
        match attempt().await {
            Err(DomainError::ConcurrentModification) => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use futures_util::future::BoxFuture;
    use std::sync::Mutex;

    /// A clock that records the pauses asked of it and returns at once.
    #[derive(Debug, Default)]
    struct Pauses(Mutex<Vec<Duration>>);

    impl Clock for Pauses {
        fn now(&self) -> DateTime<Utc> {
            Utc::now()
        }
        fn pause(&self, delay: Duration) -> BoxFuture<'static, ()> {
            self.0.lock().unwrap().push(delay);
            Box::pin(async {})
        }
    }

    #[test]
    fn delays_grow_are_jittered_and_capped() {
        for round in 1..20 {
            let d = delay(round);
            let ceiling = BASE_DELAY
                .saturating_mul(1 << (round - 1).min(16))
                .min(MAX_DELAY);
            assert!(d >= ceiling / 2 && d <= ceiling, "round {round}: {d:?}");
        }
        let samples: std::collections::HashSet<Duration> = (0..20).map(|_| delay(5)).collect();
        assert!(samples.len() > 1, "no jitter");
    }

    #[tokio::test]
    async fn a_race_lost_every_time_gives_up_after_the_bound_with_a_conflict() {
        let clock = Pauses::default();
        let mut calls = 0;
        let result: DomainResult<()> = optimistic(&clock, || {
            calls += 1;
            async { Err(DomainError::ConcurrentModification) }
        })
        .await;
        assert!(matches!(result, Err(DomainError::ConcurrentModification)));
        assert_eq!(calls, MAX_ATTEMPTS);
        let pauses = clock.0.lock().unwrap().clone();
        assert_eq!(
            pauses.len(),
            MAX_ATTEMPTS as usize - 1,
            "no pause before the first"
        );
        assert!(pauses.iter().all(|d| !d.is_zero() && *d <= MAX_DELAY));
    }

    #[tokio::test]
    async fn a_race_won_on_a_retry_returns_its_value() {
        let clock = Pauses::default();
        let mut calls = 0;
        let result = optimistic(&clock, || {
            calls += 1;
            let lost = calls < MAX_ATTEMPTS;
            async move {
                if lost {
                    Err(DomainError::ConcurrentModification)
                } else {
                    Ok(7)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls, MAX_ATTEMPTS);
    }

    #[tokio::test]
    async fn other_errors_are_final_at_once() {
        let clock = Pauses::default();
        let mut calls = 0;
        let result: DomainResult<()> = optimistic(&clock, || {
            calls += 1;
            async { Err(DomainError::SameClan) }
        })
        .await;
        assert!(matches!(result, Err(DomainError::SameClan)));
        assert_eq!(calls, 1);
        assert!(clock.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn attempts_count_down_from_their_own_bound() {
        let clock = Pauses::default();
        let mut attempts = Attempts::with_max(&clock, 5);
        for _ in 0..5 {
            attempts.next().await.unwrap();
        }
        assert!(matches!(
            attempts.next().await,
            Err(DomainError::ConcurrentModification)
        ));
        assert_eq!(clock.0.lock().unwrap().len(), 4);
    }
}
