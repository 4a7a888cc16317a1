//! `event-handler` Lambda: pushes each domain event of the fan-out queue (EventBridge → SQS) to
//! the WebSocket clients subscribed to its war or clans; failed records are retried by SQS.

use aws_lambda_events::sqs::SqsEvent;
use clanwar_edge::config::realtime_from_env;
use clanwar_edge::{routes, sqs, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let realtime = &realtime_from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let response = sqs::each_record(event.payload, |record| async move {
            let body = record.body.as_deref().unwrap_or_default();
            routes::realtime::fan_out(realtime, body).await.map(drop)
        })
        .await;
        Ok::<_, lambda_runtime::Error>(response)
    }))
    .await
}
