//! AWS adapters of the clan wars ports, one module per port: on DynamoDB the store
//! (`store`, with its unit of work in `unit_of_work`), the outbox, the score board (its write
//! plan in `score_plan`, the war ledger in `ledger`) and the WebSocket connections; the event
//! publisher on EventBridge, the workflow starter on Step Functions, the pusher on API
//! Gateway's management API and the session keys on Secrets Manager. `dynamodb` holds what the
//! DynamoDB adapters share (the table, its batch and transaction calls), `keys` the key design
//! and `attributes` the item helpers. Endpoints come from the SDK's own configuration
//! (`AWS_ENDPOINT_URL` selects an emulator); nothing here knows about "local".

mod attributes;
pub mod calls;
mod connections;
pub mod dynamodb;
pub mod faults;
mod keys;
mod ledger;
pub mod outbox;
pub mod publisher;
mod pusher;
mod retry;
mod reward_plan;
mod score_plan;
mod scoreboard;
pub mod sdk;
pub mod session_keys;
mod store;
mod unit_of_work;
pub mod workflows;

pub use connections::DynamoDbConnections;
pub use dynamodb::{DynamoDbStore, TableConfig};
pub use publisher::EventBridgePublisher;
pub use pusher::ApiGatewayPusher;
pub use session_keys::SecretsManagerSessionKeys;
pub use workflows::{StateMachines, StepFunctionsWorkflows};
