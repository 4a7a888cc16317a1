//! API Gateway adapter of the pusher port: pushes through the WebSocket API's management API
//! (`@connections`), where 410 Gone means "forget this connection".

use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use clanwar_domain::realtime::{PushError, Pusher};

/// Pushes through the WebSocket API's management endpoint.
#[derive(Debug, Clone)]
pub struct ApiGatewayPusher {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ApiGatewayPusher {
    /// `endpoint`: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}` in AWS.
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .build();
        Self {
            client: aws_sdk_apigatewaymanagement::Client::from_conf(config),
        }
    }
}

#[async_trait]
impl Pusher for ApiGatewayPusher {
    async fn push(&self, connection: &str, payload: &[u8]) -> Result<(), PushError> {
        let result = self
            .client
            .post_to_connection()
            .connection_id(connection)
            .data(Blob::new(payload))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_gone_exception()) =>
            {
                Err(PushError::Gone)
            }
            Err(err) => Err(PushError::Failed(
                aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&err).to_string(),
            )),
        }
    }
}
