//! What the alerts function needs from the outside world, as small traits. The AWS adapters
//! live in [`crate::adapters`] (`idempotency`, `market_median`, `sns`).

use std::collections::BTreeMap;
use std::future::Future;

use super::message::AlertMessage;
pub use crate::metrics::ports::PortError;

/// The result of claiming an alert's idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody published this alert: the caller publishes it.
    Acquired,
    /// An alert under this key was published already: the caller skips it.
    AlreadyPublished,
}

/// Records of alerts published (the IdempotencyTable). A key is `pending` from its claim to
/// its publication, then `published`; docs/alerts.md explains why a pending claim can be
/// taken over.
pub trait IdempotencyStore {
    /// Claims `key` for the caller (`token` names the claim), unless it is published.
    fn claim(&self, key: &str, token: &str) -> impl Future<Output = Result<Claim, PortError>>;
    /// Records that the alert under `key` is published.
    fn mark_published(&self, key: &str, token: &str)
    -> impl Future<Output = Result<(), PortError>>;
    /// Drops the caller's pending claim (its alert could not be published), so nothing says
    /// it was.
    fn release(&self, key: &str, token: &str) -> impl Future<Output = Result<(), PortError>>;
}

/// Market medians, from the market table's live items.
pub trait MarketMedians {
    /// Median price per sqft (dollars) of each scope key that has a live item with one;
    /// scopes without are left out.
    fn medians_per_sqft(
        &self,
        scope_keys: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, f64>, PortError>>;
}

/// What a publisher could not publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Indices (into the messages given) of those never published, ascending.
    pub unpublished: Vec<usize>,
    /// The last error seen, when some were not published.
    pub error: Option<String>,
    /// Calls re-sent for partly failed batches.
    pub retries: u32,
}

/// The alert topic.
pub trait AlertPublisher {
    /// Publishes every message, re-sending those that fail for a while; reports the rest.
    fn publish(&self, messages: &[AlertMessage]) -> impl Future<Output = PublishReport>;
}
