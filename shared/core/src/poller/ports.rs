//! What the poller needs from AWS.

use std::future::Future;

use super::detect::PollState;
use super::markets::{ConfigSnapshot, PollRecord, WatchedMarket};
use crate::listing::ListingEvent;
use crate::ports::PortError;

/// An event that could not be published, by its index in the published slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishFailure {
    pub index: usize,
    pub error: String,
}

/// The listing-events stream.
pub trait EventPublisher {
    /// Publishes every event, retrying what fails; returns those that never went through.
    fn publish(
        &self,
        events: &[ListingEvent],
    ) -> impl Future<Output = Result<Vec<PublishFailure>, PortError>>;
}

/// A poll state and the version it was read at (for the conditional write).
#[derive(Debug, Clone, Default)]
pub struct StoredPollState {
    pub state: PollState,
    pub version: Option<String>,
}

/// Where the last complete read of each market is kept.
pub trait PollStateStore {
    fn load(&self, key: &str) -> impl Future<Output = Result<StoredPollState, PortError>>;
    /// Writes `state` if the stored version is still `expected_version` (`None`: no state yet).
    /// `Ok(false)` when another poll got there first.
    fn save(
        &self,
        key: &str,
        state: &PollState,
        expected_version: Option<&str>,
    ) -> impl Future<Output = Result<bool, PortError>>;
}

/// Where the listing-API keys are kept (Secrets Manager in AWS).
pub trait SecretSource {
    /// The text of secret `id`.
    fn secret_string(&self, id: &str) -> impl Future<Output = Result<String, PortError>>;
}

/// The stack's poller configuration (a DynamoDB table in AWS): the watched markets, the
/// sources' budgets, the requests used each month and the last poll of each market.
pub trait ConfigStore {
    /// Everything, with the requests used in `month` (`2026-11`).
    fn load(&self, month: &str) -> impl Future<Output = Result<ConfigSnapshot, PortError>>;
    /// Adds or replaces a watched market.
    fn put_market(&self, market: &WatchedMarket) -> impl Future<Output = Result<(), PortError>>;
    /// Stops watching a market; `Ok(false)` when it was not watched.
    fn remove_market(&self, market: &str) -> impl Future<Output = Result<bool, PortError>>;
    /// Sets a source's monthly budget (`None` removes it).
    fn set_budget(
        &self,
        source: &str,
        monthly_requests: Option<u64>,
    ) -> impl Future<Output = Result<(), PortError>>;
    /// Adds `requests` to a source's count for `month`, atomically; returns the new count.
    fn add_usage(
        &self,
        source: &str,
        month: &str,
        requests: u64,
    ) -> impl Future<Output = Result<u64, PortError>>;
    fn record_poll(&self, poll: &PollRecord) -> impl Future<Output = Result<(), PortError>>;
}
