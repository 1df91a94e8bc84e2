//! What the API reads: the market table (live items and snapshots), and the poller's
//! configuration store (watched markets, last polls) through
//! [`crate::poller::ports::ConfigStore`].

use std::future::Future;

use crate::ports::PortError;
use crate::store::{MarketLiveItem, MarketSnapshotItem};

/// The market table, read only.
pub trait MarketReader {
    /// The live item of a market scope (`city#nashville-tn`).
    fn live(
        &self,
        scope_key: &str,
    ) -> impl Future<Output = Result<Option<MarketLiveItem>, PortError>>;
    /// The snapshots of a scope between two sort keys (`D#2026-11-01`..`D#2026-11-23`),
    /// oldest first.
    fn snapshots(
        &self,
        scope_key: &str,
        from_sort_key: &str,
        to_sort_key: &str,
    ) -> impl Future<Output = Result<Vec<MarketSnapshotItem>, PortError>>;
}
