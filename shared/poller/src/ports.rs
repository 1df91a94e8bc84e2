//! What the poller needs from AWS.

use std::future::Future;

use super::state::PollState;
use realty_model::listing::ListingEvent;
use realty_model::ports::PortError;

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
