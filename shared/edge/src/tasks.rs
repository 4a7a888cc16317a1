//! Step Functions tasks: a typed input, a typed output, and errors whose `error_type` is the
//! domain's stable code (`PHASE_DEADLINE_NOT_REACHED`, `CONCURRENT_MODIFICATION`, ...), which
//! the state machines' Retry and Catch blocks name.

use crate::http::{self, HttpRequest, HttpResponse};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use clanwar_domain::{DomainError, DomainResult};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A failed task, reported to Step Functions under the domain error's code.
#[derive(Debug)]
pub struct TaskError(pub DomainError);

impl From<TaskError> for Diagnostic {
    fn from(err: TaskError) -> Self {
        Diagnostic {
            error_type: err.0.code().to_owned(),
            error_message: err.0.to_string(),
        }
    }
}

/// Logs a failed task and reports it under its domain code.
fn failed(err: DomainError) -> TaskError {
    tracing::warn!(code = err.code(), error = %err, "task failed");
    TaskError(err)
}

/// Runs one task with its AWS calls counted and reported (`AwsCalls` metrics by the task's
/// `action`, with its `war_id` as a property).
async fn counted<T>(input: &Value, task: impl std::future::Future<Output = T>) -> T {
    clanwar_aws::calls::reset();
    let output = task.await;
    let field = |name: &str| input.get(name).and_then(Value::as_str).unwrap_or_default();
    let operation = format!("task {}", field("action"));
    crate::telemetry::aws_calls(
        operation.trim_end(),
        &clanwar_aws::calls::snapshot(),
        &[("WarId", field("war_id"))],
    );
    output
}

/// A task input that does not parse, reported like any failed task.
fn malformed(what: &str, err: serde_json::Error) -> TaskError {
    failed(DomainError::invalid(what, err.to_string()))
}

/// Runs one task on its raw input: parsed, counted, answered as JSON.
async fn run_task<I, O, T, Fut>(tasks: &T, payload: Value) -> Result<Value, TaskError>
where
    I: DeserializeOwned,
    O: Serialize,
    T: Fn(I) -> Fut,
    Fut: std::future::Future<Output = DomainResult<O>>,
{
    let input: I = serde_json::from_value(payload.clone()).map_err(|e| malformed("task", e))?;
    let output = counted(&payload, tasks(input)).await.map_err(failed)?;
    Ok(serde_json::to_value(output).expect("task outputs serialise"))
}

/// The Lambda entry of a task function: every invocation goes through `handler`.
pub async fn serve<I, O, H, Fut>(handler: H) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned,
    O: Serialize,
    H: Fn(I) -> Fut,
    Fut: std::future::Future<Output = DomainResult<O>>,
{
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| async move { run_task(handler, event.payload).await },
    ))
    .await
}

/// The Lambda entry of a function that serves both HTTP API routes and Step Functions tasks:
/// API Gateway events carry a `requestContext`, task inputs do not.
pub async fn serve_with_http<I, O, T, TFut, H, HFut>(
    tasks: T,
    routes: H,
) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned,
    O: Serialize,
    T: Fn(I) -> TFut,
    TFut: std::future::Future<Output = DomainResult<O>>,
    H: Fn(HttpRequest) -> HFut,
    HFut: std::future::Future<Output = DomainResult<HttpResponse>>,
{
    let (tasks, routes) = (&tasks, &routes);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| async move {
            if event.payload.get("requestContext").is_none() {
                return run_task(tasks, event.payload).await;
            }
            Ok(http::answer(event.payload, routes).await)
        },
    ))
    .await
}

/// The Lambda entry of a function that runs Step Functions tasks and consumes an SQS queue:
/// SQS events carry `Records`, task inputs do not. Queue records are handled one by one with
/// partial batch failures ([`crate::sqs::each_record`]).
pub async fn serve_with_queue<I, O, T, TFut, Q, QFut>(
    tasks: T,
    records: Q,
) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned,
    O: Serialize,
    T: Fn(I) -> TFut,
    TFut: std::future::Future<Output = DomainResult<O>>,
    Q: Fn(SqsMessage) -> QFut,
    QFut: std::future::Future<Output = DomainResult<()>>,
{
    let (tasks, records) = (&tasks, &records);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| async move {
            if event.payload.get("Records").is_none() {
                return run_task(tasks, event.payload).await;
            }
            let batch: SqsEvent =
                serde_json::from_value(event.payload).map_err(|e| malformed("event", e))?;
            let response = crate::sqs::each_record(batch, records).await;
            Ok(serde_json::to_value(response).expect("responses serialise"))
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_errors_carry_the_domain_code_as_their_type() {
        let diagnostic: Diagnostic = TaskError(DomainError::ConcurrentModification).into();
        assert_eq!(diagnostic.error_type, "CONCURRENT_MODIFICATION");
    }
}
