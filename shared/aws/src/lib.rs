//! AWS adapters of the clan wars ports: DynamoDB (store, outbox, score board), EventBridge
//! (event publisher), Step Functions (workflow starter) and Secrets Manager (session keys). Endpoints come from the SDK's own
//! configuration (`AWS_ENDPOINT_URL` selects an emulator); nothing here knows about "local".

pub mod calls;
pub mod dynamodb;
pub mod eventbridge;
pub mod faults;
mod keys;
mod ledger;
pub mod realtime;
mod retry;
mod score_plan;
mod scoreboard;
pub mod sdk;
pub mod session_keys;
pub mod stepfunctions;

pub use dynamodb::{DynamoDbStore, TableConfig};
pub use eventbridge::EventBridgePublisher;
pub use realtime::{ApiGatewayPusher, DynamoDbConnections};
pub use session_keys::SecretsManagerSessionKeys;
pub use stepfunctions::{StateMachines, StepFunctionsWorkflows};
