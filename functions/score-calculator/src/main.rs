//! `score-calculator` Lambda: battle-event batches from the HTTP API and from the ingestion
//! queue (partial batch failures), and the scoreboard reads.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use clanwar_edge::{deps_from_env, http, routes, sqs, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};
use serde::Serialize;

/// The two event sources of this function; SQS events are recognised by their `Records`.
enum Input {
    Queue(SqsEvent),
    Http(serde_json::Value),
}

#[derive(Serialize)]
#[serde(untagged)]
enum Output {
    Queue(SqsBatchResponse),
    Http(serde_json::Value),
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let deps = deps_from_env().await?;
    let scores = &routes::scores::service(&deps);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let input = match event.payload.get("Records") {
                Some(_) => Input::Queue(serde_json::from_value(event.payload)?),
                None => Input::Http(event.payload),
            };
            Ok::<_, lambda_runtime::Error>(match input {
                Input::Queue(batch) => Output::Queue(
                    sqs::each_record(batch, |record| async move {
                        routes::queue::handle(scores, record.body.as_deref().unwrap_or_default())
                            .await
                    })
                    .await,
                ),
                Input::Http(request) => {
                    Output::Http(http::answer(request, |r| routes::scores::handle(scores, r)).await)
                }
            })
        },
    ))
    .await
}
