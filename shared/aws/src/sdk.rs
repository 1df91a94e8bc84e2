//! SDK configuration shared by the functions and the operator tools.
//!
//! One rule decides where AWS is: an explicit endpoint (the CLI's local AWS), else
//! `AWS_ENDPOINT_URL` (LocalStack or any emulator, read by aws-config itself), else real AWS.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Region used against an emulator when none is configured.
pub const LOCAL_REGION: &str = "us-east-1";

/// Limit on opening a connection (the SDK's own default).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3_100);

/// Limit on one attempt of an SDK call, up to the response's headers. The SDK sets none, so a
/// connection that never answers holds a call forever (awslabs/aws-sdk-rust#611): in Lambda
/// that spends the whole function timeout and stalls the shard, locally it hangs a run. A
/// timed-out attempt is retried by the SDK like any transient error; every write we make is
/// idempotent, so a retry of an attempt that did land is harmless. Far above what any of our
/// calls takes (a 5 MiB PutRecords, a 4 MiB PutRecordBatch), well inside a function timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// The timeouts every client of ours runs with.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// The HTTPS client of every SDK client of ours: the SDK's default client (hyper 1, rustls,
/// the platform's root certificates, proxies from the environment) with rustls on ring
/// instead of aws-lc-rs. ring is in the functions already (the poller's listing-API client);
/// aws-lc-rs and the SDK's default features were about 3 MB of each function's 8-14 MB
/// (docs/capacity.md, "Where the cold start and the bytes go"). Certificates are verified
/// as before, against the same roots.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = aws_smithy_http_client::ConnectorBuilder::default().tls_provider(
            tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring),
        );
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// Loads the SDK configuration. With an endpoint override in play (explicit or from
/// `AWS_ENDPOINT_URL`), credentials default to static test ones, so a local run never
/// signs with, or needs, real credentials.
pub async fn sdk_config(endpoint: Option<&str>) -> SdkConfig {
    let overridden = endpoint.is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeout_config())
        .http_client(https_client());
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    if overridden {
        // Environment or us-east-1: never IMDS, which an emulator on a laptop does not have.
        loader = loader.region(
            RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
                .or_else(Region::new(LOCAL_REGION)),
        );
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "realty-local",
            ));
        }
    }
    loader.load().await
}

/// An S3 client; path-style addressing whenever an endpoint override is set, because
/// emulators on 127.0.0.1 cannot serve virtual-hosted bucket names.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_client_gets_connect_and_attempt_timeouts() {
        let config = sdk_config(Some("http://127.0.0.1:1")).await;
        let timeouts = config.timeout_config().expect("a timeout config");
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
    }

    #[tokio::test]
    async fn every_client_gets_the_rustls_ring_https_client() {
        // The SDK crates are built without a default HTTPS client: without this one, the
        // first call of any client would fail for want of one.
        let config = sdk_config(Some("http://127.0.0.1:1")).await;
        assert!(config.http_client().is_some());
    }
}
