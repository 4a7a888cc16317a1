//! The open loop: request `i` of a step is sent at `start + i / rate` whatever the answers
//! before it are doing (each in its own task), and its latency counts from that scheduled
//! time. A step is bounded in count (`rate × window` requests) and in time (every request
//! has a timeout, so the step ends at most `window + timeout` after it began).

use crate::stats::Outcome;
use crate::timing::ServerTiming;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// What a request reports back to the loop (the loop adds the timing).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub timing: ServerTiming,
}

/// Requests in one step.
pub fn count(rate: f64, window: Duration) -> u64 {
    (rate * window.as_secs_f64()).ceil().max(1.0) as u64
}

/// Offers `rate` requests per second for `window`; `request(i)` makes the i-th. Returns the
/// outcomes and how long the step took until its last answer.
pub async fn open_loop<F, Fut>(
    rate: f64,
    window: Duration,
    timeout: Duration,
    request: F,
) -> (Vec<Outcome>, Duration)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<Answer, String>> + Send + 'static,
{
    let n = count(rate, window);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(scheduled).await;
        let fut = request(i);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let result = tokio::time::timeout(timeout, fut).await;
            let done = Instant::now();
            let (status, error, timing) = match result {
                Ok(Ok(answer)) => (Some(answer.status), None, answer.timing),
                Ok(Err(e)) => (None, Some(e), ServerTiming::default()),
                Err(_) => (
                    None,
                    Some(format!("no answer within {timeout:?}")),
                    ServerTiming::default(),
                ),
            };
            let error = match status {
                Some(s) if !(200..300).contains(&s) => Some(format!("HTTP {s}")),
                _ => error,
            };
            Outcome {
                status,
                error,
                latency: done - scheduled,
                service: done - sent,
                timing,
            }
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => outcomes.push(Outcome {
                status: None,
                error: Some(format!("request task failed: {e}")),
                latency: timeout,
                service: timeout,
                timing: ServerTiming::default(),
            }),
        }
    }
    (outcomes, start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_sends_rate_times_window_requests() {
        assert_eq!(count(10.0, Duration::from_secs(5)), 50);
        assert_eq!(count(2.5, Duration::from_secs(1)), 3);
        assert_eq!(count(0.1, Duration::from_secs(1)), 1);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_stalled_server_shows_as_latency_from_the_schedule() {
        // Every answer takes 1 s, requests are due every 100 ms: latency is the 1 s of the
        // answer, counted from each request's own slot, and no request is held back.
        let (outcomes, elapsed) = open_loop(
            10.0,
            Duration::from_secs(1),
            Duration::from_secs(5),
            |_| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(Answer {
                    status: 200,
                    timing: ServerTiming::default(),
                })
            },
        )
        .await;
        assert_eq!(outcomes.len(), 10);
        assert!(outcomes.iter().all(
            |o| o.latency >= Duration::from_secs(1) && o.latency < Duration::from_millis(1_050)
        ));
        assert!(elapsed < Duration::from_millis(2_000), "{elapsed:?}");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_request_past_its_timeout_is_a_failure_that_ends_the_step() {
        let (outcomes, elapsed) = open_loop(
            1.0,
            Duration::from_secs(1),
            Duration::from_secs(2),
            |_| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Err::<Answer, String>("never".into())
            },
        )
        .await;
        assert_eq!(outcomes.len(), 1);
        assert!(outcomes[0].status.is_none());
        assert!(elapsed <= Duration::from_secs(3));
    }
}
