//! The market table, read: live items, snapshots and the listings of interest, as the API,
//! the report and the lake's curator read them.

use std::future::Future;

use serde::de::DeserializeOwned;

use crate::items::{MarketLiveItem, MarketSnapshotItem};
use realty_model::ports::PortError;

/// The market table, read only.
pub trait MarketReader {
    /// The live item of a market scope (`city#nashville-tn`).
    fn live(
        &self,
        scope_key: &str,
    ) -> impl Future<Output = Result<Option<MarketLiveItem>, PortError>>;
    /// The stored snapshots of a scope between two sort keys (`D#2026-11-01`..`D#2026-11-23`),
    /// oldest first: the closed periods'.
    fn stored_snapshots(
        &self,
        scope_key: &str,
        from_sort_key: &str,
        to_sort_key: &str,
    ) -> impl Future<Output = Result<Vec<MarketSnapshotItem>, PortError>>;
    /// The snapshots of a scope between two sort keys, oldest first: the stored ones of closed
    /// periods, and the open hour's and day's from the live item
    /// ([`crate::process::with_open_periods`]).
    fn snapshots(
        &self,
        scope_key: &str,
        from_sort_key: &str,
        to_sort_key: &str,
    ) -> impl Future<Output = Result<Vec<MarketSnapshotItem>, PortError>> {
        async move {
            let stored = self
                .stored_snapshots(scope_key, from_sort_key, to_sort_key)
                .await?;
            let live = match self.live(scope_key).await? {
                Some(item) => Some(
                    item.into_stored()
                        .map_err(|e| PortError::new("decode market item", e.to_string()))?
                        .aggregate,
                ),
                None => None,
            };
            Ok(crate::process::with_open_periods(
                scope_key,
                stored,
                live.as_ref(),
                from_sort_key,
                to_sort_key,
            ))
        }
    }
    /// Items of partition `partition_key` whose sort keys start with `prefix`, highest sort
    /// key first, below `below` when given, at most `limit`; with the sort key to continue
    /// below when more may follow (the listings of interest, the alert feed). Items under a
    /// lease (an alert's claim, not yet published) are left out.
    fn latest<T: DeserializeOwned>(
        &self,
        partition_key: &str,
        prefix: &str,
        below: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<T>, Option<String>), PortError>>;
}
