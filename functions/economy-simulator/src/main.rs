//! `economy-simulator` Lambda: a local/dev stand-in for the game's economy service. It consumes
//! the economy grants queue (partial batch failures), keeps a ledger in the war table and
//! answers the reward saga with `SendTaskSuccess` / `SendTaskFailure` on the message's task
//! token. Deployed only with `DeployEconomySimulator=true`.

mod economy;
mod ledger;

use aws_lambda_events::sqs::SqsEvent;
use clanwar_edge::{sqs, telemetry};
use economy::Economy;
use lambda_runtime::{service_fn, LambdaEvent};
use ledger::DynamoDbLedger;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let table =
        std::env::var("TABLE_NAME").map_err(|_| "environment variable TABLE_NAME is required")?;
    let sdk = clanwar_edge::config::sdk().await;
    let ledger = DynamoDbLedger::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let economy = &Economy::new(ledger, aws_sdk_sfn::Client::new(&sdk));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(
            sqs::each_record(event.payload, |record| async move {
                economy
                    .handle(record.body.as_deref().unwrap_or_default())
                    .await
            })
            .await,
        )
    }))
    .await
}
