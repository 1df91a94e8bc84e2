//! The poller as Lambda builds it: the HTTP client and the AWS adapters behind the poller's
//! ports (settings and keys: [`realty_poller::config`]), and the keys read again at a
//! run while a source has none, so that a key set with `realty secrets set` is used at the
//! next run without a cold start.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::adapters::config::DynamoConfigStore;
use crate::adapters::dynamodb::DynamoListingStore;
use crate::adapters::kinesis::KinesisPublisher;
use crate::adapters::poll_state::S3PollStateStore;
use crate::adapters::raw_pages::S3RawPageStore;
use crate::adapters::retry::RetryPolicy;
use crate::adapters::secrets::SecretsManagerSource;
use realty_model::config::{ConfigError, StackResources};
use realty_model::markets::SourceKind;
use realty_poller::anti_entropy::{AntiEntropyReport, LISTINGS_PER_PASS, run_pass};
use realty_poller::config::{ApiKeys, PollerConfig, load_api_keys};
use realty_poller::fetch::{RateLimiter, http_client};
use realty_poller::read::SourceEndpoint;
use realty_poller::run::{PollRequest, PollSummary, Poller};

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
        run_budget: realty_poller::run::POLL_RUN_BUDGET,
    })
}

/// The listing-API keys, from Secrets Manager (or, with an endpoint override, from
/// `REALTY_LISTING_API_KEYS`): [`realty_poller::config::load_api_keys`] over AWS.
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
    /// The listing table, read (never written) by the anti-entropy pass.
    listings: DynamoListingStore,
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
        let keys = read_keys(sdk, &env).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the listing-API keys; every source is reported without a key");
            ApiKeys::default()
        });
        let poller = build_poller(sdk, resources, &config, &keys)?;
        Ok(Self {
            sdk: sdk.clone(),
            config,
            env,
            poller: Mutex::new(poller),
            listings: DynamoListingStore {
                client: aws_sdk_dynamodb::Client::new(sdk),
                table: resources.listing_table.clone(),
                retry: RetryPolicy::default(),
            },
        })
    }

    /// One anti-entropy pass ([`realty_poller::anti_entropy`]) over the poll states,
    /// the listing table and the stream the polls publish to. Holds the poller: a pass never
    /// runs beside a poll of this container (nor of another: the function runs one at a time).
    pub async fn anti_entropy(
        &self,
        now: DateTime<Utc>,
    ) -> Result<AntiEntropyReport, realty_model::ports::PortError> {
        let poller = self.poller.lock().await;
        run_pass(
            &poller.states,
            &self.listings,
            &poller.publisher,
            LISTINGS_PER_PASS,
            now,
        )
        .await
    }

    pub async fn handle(&self, request: &PollRequest, now: DateTime<Utc>) -> PollSummary {
        let mut poller = self.poller.lock().await;
        if !poller.unkeyed.is_empty() {
            match read_keys(&self.sdk, &self.env).await {
                Ok(keys) => {
                    let (endpoints, unkeyed) = self.config.endpoints(&keys);
                    poller.endpoints = keyed_anew(&poller.endpoints, &poller.unkeyed, endpoints);
                    poller.unkeyed = unkeyed;
                }
                // The sources keyed already keep their keys: a read that failed once is no
                // evidence they were taken away.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the listing-API keys again; the sources without a key stay so for this run")
                }
            }
        }
        poller.poll(request, now).await
    }
}

/// The endpoints after the keys were read again: those of the sources that had no key are
/// the new ones; every other keeps its own, with its cached RESO access token, and the
/// portals their crawler (robots.txt, one-request gate).
fn keyed_anew(
    current: &[SourceEndpoint],
    unkeyed: &[SourceKind],
    fresh: Vec<SourceEndpoint>,
) -> Vec<SourceEndpoint> {
    fresh
        .into_iter()
        .map(
            |endpoint| match current.iter().find(|e| e.kind == endpoint.kind) {
                Some(kept) if !unkeyed.contains(&endpoint.kind) => kept.clone(),
                _ => endpoint,
            },
        )
        .collect()
}

async fn read_keys(
    sdk: &SdkConfig,
    env: &BTreeMap<String, String>,
) -> Result<ApiKeys, impl std::fmt::Display> {
    api_keys(sdk, |name| env.get(name).cloned()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(kind: SourceKind, key: &str) -> SourceEndpoint {
        SourceEndpoint {
            kind,
            base_url: "https://example.com".into(),
            key: key.into(),
            reso_auth: None,
            reso_full_read_every: chrono::TimeDelta::hours(24),
            crawler: None,
        }
    }

    fn keys(endpoints: &[SourceEndpoint]) -> Vec<(SourceKind, &str)> {
        endpoints.iter().map(|e| (e.kind, e.key.as_str())).collect()
    }

    /// Keys read again give a key to the sources that had none; the others keep theirs
    /// (and a RESO endpoint its cached token), and a source the read no longer keys goes.
    #[test]
    fn keys_read_again_key_only_the_sources_without_one() {
        let current = [endpoint(SourceKind::Zillow, "zillow-at-start")];
        let fresh = vec![
            endpoint(SourceKind::Zillow, "zillow-now"),
            endpoint(SourceKind::Realtor, "realtor-now"),
        ];
        assert_eq!(
            keys(&keyed_anew(&current, &[SourceKind::Realtor], fresh)),
            [
                (SourceKind::Zillow, "zillow-at-start"),
                (SourceKind::Realtor, "realtor-now")
            ]
        );
        let fresh = vec![endpoint(SourceKind::Realtor, "realtor-now")];
        assert_eq!(
            keys(&keyed_anew(&current, &[SourceKind::Realtor], fresh)),
            [(SourceKind::Realtor, "realtor-now")]
        );
    }
}
