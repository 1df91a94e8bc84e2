//! The poller as Lambda builds it: the HTTP client and the AWS adapters behind the poller's
//! ports (settings and keys: [`realty_core::poller::config`]), and the keys read again at a
//! run while a source has none, so that a key set with `realty secrets set` is used at the
//! next run without a cold start.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::adapters::config::DynamoConfigStore;
use crate::adapters::kinesis::KinesisPublisher;
use crate::adapters::poll_state::S3PollStateStore;
use crate::adapters::raw_pages::S3RawPageStore;
use crate::adapters::retry::RetryPolicy;
use crate::adapters::secrets::SecretsManagerSource;
use realty_core::config::{ConfigError, StackResources};
use realty_core::poller::config::{ApiKeys, PollerConfig, load_api_keys};
use realty_core::poller::fetch::{RateLimiter, http_client};
use realty_core::poller::run::{PollRequest, PollSummary, Poller};

/// The poller over Kinesis, S3 (poll states and the raw layer) and the ConfigTable.
pub type LambdaPoller =
    Poller<KinesisPublisher, S3PollStateStore, DynamoConfigStore, S3RawPageStore>;

pub fn build_poller(
    sdk: &SdkConfig,
    resources: &StackResources,
    config: &PollerConfig,
    keys: &ApiKeys,
) -> Result<LambdaPoller, ConfigError> {
    let (endpoints, unkeyed) = config.endpoints(keys);
    let client = http_client(config.http.timeout).map_err(|e| ConfigError::Invalid {
        name: "http client".into(),
        value: String::new(),
        reason: e.to_string(),
    })?;
    let limiters: BTreeMap<String, RateLimiter> = config
        .sources
        .iter()
        .map(|kind| {
            (
                kind.as_str().to_owned(),
                RateLimiter::per_second(config.requests_per_second_of(*kind)),
            )
        })
        .collect();
    Ok(Poller {
        client,
        endpoints,
        unkeyed,
        secret: resources.api_key_secret.clone(),
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
        config: DynamoConfigStore {
            client: aws_sdk_dynamodb::Client::new(sdk),
            table: resources.config_table.clone(),
        },
        raw: S3RawPageStore {
            client: crate::sdk::s3_client(sdk),
            bucket: resources.data_lake_bucket.clone(),
        },
        concurrency: config.concurrency,
        delisting_guard: config.delisting_guard,
        run_budget: realty_core::poller::run::POLL_RUN_BUDGET,
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

/// The poller function: built once per container, its keys read again at a run while a
/// source has none.
pub struct PollerFunction {
    sdk: SdkConfig,
    config: PollerConfig,
    /// The variables the keys are found by, read at start-up.
    env: BTreeMap<String, String>,
    poller: Mutex<LambdaPoller>,
}

/// The variables [`load_api_keys`] reads.
const KEY_VARIABLES: [&str; 2] = ["REALTY_LISTING_API_SECRET_ARN", "REALTY_LISTING_API_KEYS"];

impl PollerFunction {
    /// Builds the poller. Keys that cannot be read leave every source unkeyed (each poll says
    /// so, per source) rather than failing every cold start.
    pub async fn new(
        sdk: &SdkConfig,
        resources: &StackResources,
        config: PollerConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = KEY_VARIABLES
            .iter()
            .filter_map(|name| lookup(name).map(|v| ((*name).to_owned(), v)))
            .collect();
        let keys = read_keys(sdk, &env).await;
        let poller = build_poller(sdk, resources, &config, &keys)?;
        Ok(Self {
            sdk: sdk.clone(),
            config,
            env,
            poller: Mutex::new(poller),
        })
    }

    pub async fn handle(&self, request: &PollRequest, now: DateTime<Utc>) -> PollSummary {
        let mut poller = self.poller.lock().await;
        if !poller.unkeyed.is_empty() {
            let keys = read_keys(&self.sdk, &self.env).await;
            let (mut endpoints, unkeyed) = self.config.endpoints(&keys);
            // The portals' crawlers keep their robots.txt and their one-request gate.
            for endpoint in &mut endpoints {
                if let Some(kept) = poller
                    .endpoints
                    .iter()
                    .find(|e| e.kind == endpoint.kind && e.crawler.is_some())
                {
                    endpoint.crawler.clone_from(&kept.crawler);
                }
            }
            poller.endpoints = endpoints;
            poller.unkeyed = unkeyed;
        }
        poller.poll(request, now).await
    }
}

async fn read_keys(sdk: &SdkConfig, env: &BTreeMap<String, String>) -> ApiKeys {
    match api_keys(sdk, |name| env.get(name).cloned()).await {
        Ok(keys) => keys,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the listing-API keys; every source is reported without a key");
            ApiKeys::default()
        }
    }
}
