//! Structured JSON logs for Lambda (CloudWatch), and CloudWatch Embedded Metric Format lines.

use serde_json::json;

/// JSON logs without ANSI colour or timestamps (Lambda adds its own); level from `RUST_LOG`.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_current_span(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}

/// Writes one metric in Embedded Metric Format: CloudWatch turns the log line into a metric.
pub fn metric(name: &str, value: f64, unit: &str, dimensions: &[(&str, &str)]) {
    let mut line = json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "ClanWars",
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": [{ "Name": name, "Unit": unit }]
            }]
        },
        name: value,
    });
    for (key, val) in dimensions {
        line[*key] = json!(val);
    }
    println!("{line}");
}

/// The deployment stage (`CLANWAR_STAGE`, set by the template for every function): the
/// `Stage` dimension of the war health metrics, so the alarms of two stages in one account
/// never watch each other's metrics. `unset` outside a deployment (tests).
pub fn stage() -> &'static str {
    static STAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STAGE.get_or_init(|| std::env::var("CLANWAR_STAGE").unwrap_or_else(|_| "unset".to_owned()))
}

/// One per-war health metric (issue 14): dimension `Stage`, the war id as a property (searchable
/// in Logs Insights, not a dimension: one metric per war would be unbounded).
pub fn war_metric(name: &str, value: f64, unit: &str, war_id: &str) {
    println!("{}", war_metric_line(name, value, unit, stage(), war_id));
}

/// The EMF line of [`war_metric`].
pub fn war_metric_line(
    name: &str,
    value: f64,
    unit: &str,
    stage: &str,
    war_id: &str,
) -> serde_json::Value {
    json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "ClanWars",
                "Dimensions": [["Stage"]],
                "Metrics": [{ "Name": name, "Unit": unit }]
            }]
        },
        "Stage": stage,
        "WarId": war_id,
        name: value,
    })
}

/// `PhaseTransitionLateness`, seconds: a timer's phase move minus the phase's deadline.
pub const PHASE_LATENESS_METRIC: &str = "PhaseTransitionLateness";
/// `ScoreIngestionLag`, milliseconds: processing time minus `occurred_at` of accepted events
/// (the batch's maximum; its mean is `ScoreIngestionLagMean`).
pub const INGESTION_LAG_METRIC: &str = "ScoreIngestionLag";
pub const INGESTION_LAG_MEAN_METRIC: &str = "ScoreIngestionLagMean";
/// `RewardSagaDuration`, seconds: from the war's close to the saga's DISTRIBUTED or
/// REWARDS_FAILED.
pub const REWARD_SAGA_DURATION_METRIC: &str = "RewardSagaDuration";

/// `PushLag`, milliseconds: from an event's `occurred_at` to its push to the subscribed
/// WebSocket clients (the batch's largest). The target is about a second, as for live reads
/// (SPEC §6: ≤ 1 s stale under load).
pub const PUSH_LAG_METRIC: &str = "PushLag";

/// The metric values of a batch's lag `(max, mean)` in milliseconds.
pub fn ingestion_lag(war_id: &str, lag_ms: Option<(i64, i64)>) {
    if let Some((max, mean)) = lag_ms {
        war_metric(INGESTION_LAG_METRIC, max as f64, "Milliseconds", war_id);
        war_metric(
            INGESTION_LAG_MEAN_METRIC,
            mean as f64,
            "Milliseconds",
            war_id,
        );
    }
}

/// Seconds of a duration, with millisecond precision.
pub fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// The AWS calls of one invocation (`clanwar_aws::calls`), as two metrics of one EMF line:
/// `AwsCalls` and `AwsRoundTrips` by `Operation` (the route, the task's action or the event
/// source). `context` adds searchable properties (not dimensions), such as the task's war.
pub fn aws_calls(operation: &str, tally: &clanwar_aws::calls::CallTally, context: &[(&str, &str)]) {
    let mut line = json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "ClanWars",
                "Dimensions": [["Operation"]],
                "Metrics": [
                    { "Name": "AwsCalls", "Unit": "Count" },
                    { "Name": "AwsRoundTrips", "Unit": "Count" }
                ]
            }]
        },
        "Operation": operation,
        "AwsCalls": tally.calls,
        "AwsRoundTrips": tally.round_trips,
        "AwsOperations": tally.operations,
    });
    for (key, value) in context {
        line[*key] = json!(value);
    }
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_war_metric_line_is_emf_with_the_stage_dimension_and_the_war_as_a_property() {
        let line = war_metric_line(PHASE_LATENESS_METRIC, 1.5, "Seconds", "prod", "w1");
        let spec = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], "ClanWars");
        assert_eq!(spec["Dimensions"], json!([["Stage"]]));
        assert_eq!(spec["Metrics"][0]["Name"], "PhaseTransitionLateness");
        assert_eq!(spec["Metrics"][0]["Unit"], "Seconds");
        assert_eq!(
            (
                &line["Stage"],
                &line["WarId"],
                &line["PhaseTransitionLateness"]
            ),
            (&json!("prod"), &json!("w1"), &json!(1.5))
        );
        assert_eq!(seconds(chrono::Duration::milliseconds(-250)), -0.25);
    }
}
