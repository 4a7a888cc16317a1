//! `war-manager` Lambda: the `wars` routes of the HTTP API (see `clanwar_edge::routes::wars`),
//! and the steps of the declare-war saga (Step Functions tasks). API Gateway events carry a
//! `requestContext`; tasks do not.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use clanwar_domain::DomainError;
use clanwar_edge::tasks::TaskError;
use clanwar_edge::{deps_from_env, http, routes, telemetry};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let deps = &deps_from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        if event.payload.get("requestContext").is_some() {
            let request: ApiGatewayV2httpRequest = serde_json::from_value(event.payload)
                .map_err(|e| task_error(DomainError::invalid("event", e.to_string())))?;
            let response =
                http::respond(http::from_apigw(request), |r| routes::wars::handle(deps, r)).await;
            return Ok(serde_json::to_value(http::to_apigw(response)).expect("responses serialise"));
        }
        let task = serde_json::from_value(event.payload)
            .map_err(|e| task_error(DomainError::invalid("task", e.to_string())))?;
        let step = routes::wars::task(deps, task).await.map_err(task_error)?;
        Ok::<_, Diagnostic>(serde_json::to_value(step).expect("task outputs serialise"))
    }))
    .await
}

/// A failed task, reported under the domain code the state machine's Retry/Catch name.
fn task_error(err: DomainError) -> Diagnostic {
    tracing::warn!(code = err.code(), error = %err, "task failed");
    TaskError(err).into()
}
