//! Step Functions tasks: a typed input, a typed output, and errors whose `error_type` is the
//! domain's stable code (`PHASE_DEADLINE_NOT_REACHED`, `CONCURRENT_MODIFICATION`, ...), which
//! the state machines' Retry and Catch blocks name.

use clanwar_domain::{DomainError, DomainResult};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;

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

/// The Lambda entry of a task function: every invocation goes through `handler`.
pub async fn serve<I, O, H, Fut>(handler: H) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned + Send,
    O: Serialize,
    H: Fn(I) -> Fut,
    Fut: std::future::Future<Output = DomainResult<O>> + Send,
{
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<I>| async move {
            handler(event.payload).await.map_err(|err| {
                tracing::warn!(code = err.code(), error = %err, "task failed");
                TaskError(err)
            })
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
