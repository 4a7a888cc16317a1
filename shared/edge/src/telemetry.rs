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
