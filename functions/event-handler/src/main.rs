//! `event-handler` Lambda: pushes each domain event of the fan-out queue (EventBridge → SQS) to
//! the WebSocket clients subscribed to its war or clans, a whole batch at once; failed records
//! are retried by SQS.

use aws_lambda_events::sqs::SqsEvent;
use clanwar_edge::config::realtime_from_env;
use clanwar_edge::{routes, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let realtime = &realtime_from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(routes::realtime::fan_out(realtime, event.payload).await)
    }))
    .await
}
