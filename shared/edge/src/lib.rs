//! The Lambda edge: turns API Gateway requests, SQS batches and Step Functions task inputs into
//! domain service calls, and their results into responses. Function `main.rs` files only wire
//! this up; no business rule lives here.

pub mod config;
pub mod http;
pub mod outbox;
pub mod routes;
pub mod sqs;
pub mod status;
pub mod tasks;
pub mod telemetry;

pub use config::deps_from_env;
