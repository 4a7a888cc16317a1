//! `ws-connections` Lambda: the WebSocket API's $connect, $disconnect and subscribe routes.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use clanwar_edge::config::realtime_from_env;
use clanwar_edge::{routes, telemetry};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let realtime = &realtime_from_env().await?;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, lambda_runtime::Error>(
                routes::realtime::handle_ws(realtime, event.payload).await,
            )
        },
    ))
    .await
}
