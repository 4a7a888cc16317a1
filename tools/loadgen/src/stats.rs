//! What one step measured: HdrHistograms (microseconds) of the latency from each request's
//! *scheduled* send time (so a stalled server shows as latency, not as fewer requests: no
//! coordinated omission), of the service time from the actual send, and of the functions' own
//! account (`Server-Timing`): handler time, AWS-call time and our own code's time.

use crate::timing::ServerTiming;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How one request ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// HTTP status (raw calls: 200 on success); `None`: transport error or timeout.
    pub status: Option<u16>,
    pub error: Option<String>,
    /// From the scheduled send time to the end of the answer.
    pub latency: Duration,
    /// From the actual send to the end of the answer.
    pub service: Duration,
    pub timing: ServerTiming,
}

/// Percentiles of one quantity, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// Everything a step reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub offered_rps: f64,
    pub window_s: f64,
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    /// Successful answers per second over the step (window and drain).
    pub achieved_rps: f64,
    pub statuses: BTreeMap<String, u64>,
    /// A few distinct error messages, for the log.
    pub errors: Vec<String>,
    pub latency_ms: Percentiles,
    pub service_ms: Percentiles,
    /// The functions' own timing (`Server-Timing`), successful answers only.
    pub app_ms: Percentiles,
    pub aws_ms: Percentiles,
    pub own_ms: Percentiles,
    /// Client service time less handler time: local gateway, Lambda bridge, runtime API,
    /// event (de)serialization, queueing for a free function process.
    pub overhead_ms: Percentiles,
    /// `(calls, round trips)` → answers.
    pub call_shapes: BTreeMap<String, u64>,
    /// The most frequent `(calls, round trips)`.
    pub calls: Option<u32>,
    pub round_trips: Option<u32>,
}

impl Summary {
    /// Own time ÷ AWS-call time at the median and in sum, as a share (0.05 = 5 %).
    pub fn own_share(&self) -> Option<f64> {
        (self.aws_ms.mean > 0.0).then(|| self.own_ms.mean / self.aws_ms.mean)
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds are valid")
}

fn record(h: &mut Histogram<u64>, ms: f64) {
    let us = (ms * 1_000.0).round().clamp(1.0, 600_000_000.0) as u64;
    h.saturating_record(us);
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |us: u64| us as f64 / 1_000.0;
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: h.len(),
        p50: ms(h.value_at_quantile(0.50)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
        mean: h.mean() / 1_000.0,
    }
}

/// Sums up the outcomes of one step that offered `offered_rps` for `window`, whose last
/// answer came `elapsed` after its start.
pub fn summarize(
    outcomes: &[Outcome],
    offered_rps: f64,
    window: Duration,
    elapsed: Duration,
) -> Summary {
    let (mut latency, mut service, mut app, mut aws, mut own, mut overhead) = (
        histogram(),
        histogram(),
        histogram(),
        histogram(),
        histogram(),
        histogram(),
    );
    let mut summary = Summary {
        offered_rps,
        window_s: window.as_secs_f64(),
        sent: outcomes.len() as u64,
        ..Summary::default()
    };
    let mut shapes: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    for o in outcomes {
        let status = o.status.map_or("error".to_owned(), |s| s.to_string());
        *summary.statuses.entry(status).or_default() += 1;
        let ok = o.status.is_some_and(|s| (200..300).contains(&s));
        if !ok {
            summary.failed += 1;
            if let Some(e) = &o.error {
                if summary.errors.len() < 5 && !summary.errors.contains(e) {
                    summary.errors.push(e.clone());
                }
            }
            // A failed request still took its time: it stays in the latency distribution.
            record(&mut latency, o.latency.as_secs_f64() * 1_000.0);
            continue;
        }
        summary.ok += 1;
        let service_ms = o.service.as_secs_f64() * 1_000.0;
        record(&mut latency, o.latency.as_secs_f64() * 1_000.0);
        record(&mut service, service_ms);
        let t = &o.timing;
        if let Some(ms) = t.app_ms {
            record(&mut app, ms);
            record(&mut overhead, (service_ms - ms).max(0.0));
        }
        if let Some(ms) = t.aws_ms {
            record(&mut aws, ms);
        }
        if let Some(ms) = t.own_ms() {
            record(&mut own, ms);
        }
        if let (Some(c), Some(r)) = (t.calls, t.round_trips) {
            *shapes.entry((c, r)).or_default() += 1;
        }
    }
    let span = elapsed.max(window).as_secs_f64();
    summary.achieved_rps = summary.ok as f64 / span;
    summary.latency_ms = percentiles(&latency);
    summary.service_ms = percentiles(&service);
    summary.app_ms = percentiles(&app);
    summary.aws_ms = percentiles(&aws);
    summary.own_ms = percentiles(&own);
    summary.overhead_ms = percentiles(&overhead);
    if let Some(((c, r), _)) = shapes.iter().max_by_key(|(shape, n)| (**n, *shape)) {
        summary.calls = Some(*c);
        summary.round_trips = Some(*r);
    }
    summary.call_shapes = shapes
        .into_iter()
        .map(|((c, r), n)| (format!("{c} calls / {r} round trips"), n))
        .collect();
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(latency_ms: u64, app: f64, aws: f64, calls: u32) -> Outcome {
        Outcome {
            status: Some(200),
            error: None,
            latency: Duration::from_millis(latency_ms),
            service: Duration::from_millis(latency_ms),
            timing: ServerTiming {
                aws_ms: Some(aws),
                app_ms: Some(app),
                calls: Some(calls),
                round_trips: Some(1),
            },
        }
    }

    #[test]
    fn percentiles_come_from_every_request_and_failures_count() {
        let mut outcomes: Vec<Outcome> = (1..=100).map(|i| ok(i, 2.0, 1.5, 2)).collect();
        outcomes.push(Outcome {
            status: None,
            error: Some("timed out".into()),
            latency: Duration::from_secs(10),
            service: Duration::from_secs(10),
            timing: ServerTiming::default(),
        });
        let s = summarize(
            &outcomes,
            20.0,
            Duration::from_secs(5),
            Duration::from_secs(6),
        );
        assert_eq!((s.sent, s.ok, s.failed), (101, 100, 1));
        assert!((s.latency_ms.p50 - 51.0).abs() < 0.1, "{:?}", s.latency_ms);
        assert!(s.latency_ms.max > 9_990.0, "the timeout is in the tail");
        assert!((s.achieved_rps - 100.0 / 6.0).abs() < 1e-9);
        assert!((s.own_ms.p50 - 0.5).abs() < 0.01);
        assert!((s.own_share().unwrap() - 0.5 / 1.5).abs() < 0.01);
        assert_eq!((s.calls, s.round_trips), (Some(2), Some(1)));
        assert_eq!(s.errors, vec!["timed out".to_owned()]);
    }

    #[test]
    fn the_usual_call_shape_is_the_most_frequent() {
        let mut outcomes: Vec<Outcome> = (0..9).map(|_| ok(5, 2.0, 1.0, 2)).collect();
        outcomes.push(ok(5, 2.0, 1.0, 3));
        let s = summarize(&outcomes, 10.0, Duration::from_secs(1), Duration::ZERO);
        assert_eq!(s.calls, Some(2));
        assert_eq!(s.call_shapes.len(), 2);
    }
}
