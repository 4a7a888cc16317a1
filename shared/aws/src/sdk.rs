//! The SDK configuration every function and test loads once: the SDK's defaults (region,
//! credentials, `AWS_ENDPOINT_URL`, retries from the environment) with an explicitly chosen
//! HTTPS client — rustls with the ring crypto provider instead of the SDK's default aws-lc,
//! whose C sources need CMake and a C cross toolchain to build for arm64 (issue 11).
//!
//! The one difference from the SDK's default client: it does not read `HTTP(S)_PROXY` from the
//! environment (Lambda functions reach AWS directly or through VPC endpoints). The fault
//! layer of the tests (`crate::faults`) wraps it when `CLANWAR_FAULTS` is set.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Builder;

/// The SDK configuration from the environment, with the rustls/ring HTTPS client (which also
/// speaks plain HTTP, for an emulator's `http://` endpoint).
pub async fn load() -> SdkConfig {
    defaults().load().await
}

/// The loader [`load`] uses, for callers that set more (e.g. an explicit endpoint): without an
/// HTTP client of its own the SDK has none (its default client is not compiled in).
pub fn defaults() -> aws_config::ConfigLoader {
    let http_client = Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(crate::faults::wrap(http_client))
}
