//! Bounded, jittered exponential backoff between retries of AWS calls that competing writers
//! or throttling refused (the SDK's own retries cover transport errors and throttled calls).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// First delay; doubles each round up to [`MAX_DELAY`].
const BASE_DELAY: Duration = Duration::from_millis(10);
const MAX_DELAY: Duration = Duration::from_millis(400);

/// The delay before retry `round` (1, 2, ...): "full jitter" between half and all of
/// `BASE_DELAY × 2^(round-1)`, capped, so competing writers spread out instead of colliding
/// again in step.
pub(crate) fn delay(round: u32) -> Duration {
    let ceiling = BASE_DELAY
        .saturating_mul(1 << round.saturating_sub(1).min(16))
        .min(MAX_DELAY);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = 0.5 + (random % 1_000) as f64 / 2_000.0;
    ceiling.mul_f64(fraction)
}

pub(crate) async fn backoff(round: u32) {
    tokio::time::sleep(delay(round)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
