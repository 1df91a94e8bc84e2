//! The poller as Lambda builds it: the HTTP client and the AWS adapters behind the poller's
//! ports (settings and keys: [`realty_core::poller::config`]).

use std::collections::BTreeMap;

use aws_config::SdkConfig;

use crate::adapters::kinesis::KinesisPublisher;
use crate::adapters::poll_state::S3PollStateStore;
use crate::adapters::retry::RetryPolicy;
use crate::adapters::secrets::SecretsManagerSource;
use realty_core::config::{ConfigError, StackResources};
use realty_core::poller::config::{ApiKeys, PollerConfig, load_api_keys};
use realty_core::poller::fetch::{RateLimiter, http_client};
use realty_core::poller::run::Poller;

/// The poller over Kinesis and S3.
pub type LambdaPoller = Poller<KinesisPublisher, S3PollStateStore>;

pub fn build_poller(
    sdk: &SdkConfig,
    resources: &StackResources,
    config: &PollerConfig,
    keys: &ApiKeys,
) -> Result<LambdaPoller, ConfigError> {
    let endpoints = config.endpoints(keys)?;
    let client = http_client(config.http.timeout).map_err(|e| ConfigError::Invalid {
        name: "http client".into(),
        value: String::new(),
        reason: e.to_string(),
    })?;
    let limiters: BTreeMap<String, RateLimiter> = endpoints
        .iter()
        .map(|e| {
            (
                e.kind.as_str().to_owned(),
                RateLimiter::per_second(config.requests_per_second),
            )
        })
        .collect();
    Ok(Poller {
        client,
        endpoints,
        policy: config.http,
        limiters,
        publisher: KinesisPublisher {
            client: aws_sdk_kinesis::Client::new(sdk),
            stream: resources.listing_events_stream.clone(),
            retry: RetryPolicy::default(),
        },
        states: S3PollStateStore {
            client: crate::sdk::s3_client(sdk),
            bucket: resources.data_lake_bucket.clone(),
        },
        concurrency: config.concurrency,
        delisting_guard: config.delisting_guard,
    })
}

/// The listing-API keys, from Secrets Manager (or, with an endpoint override, from
/// `REALTY_LISTING_API_KEYS`): [`realty_core::poller::config::load_api_keys`] over AWS.
pub async fn api_keys(
    sdk: &SdkConfig,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<ApiKeys, ConfigError> {
    let secrets = SecretsManagerSource {
        client: aws_sdk_secretsmanager::Client::new(sdk),
    };
    load_api_keys(&secrets, lookup, sdk.endpoint_url().is_some()).await
}
