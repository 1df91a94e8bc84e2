//! What the poller keeps of a market between polls ([`PollState`], one per source, market and
//! offer), and its stored form.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::listing::Listing;

/// What the poller remembers of a market (per source): every listing of the last poll, and,
/// for incremental sources, where to resume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PollState {
    pub listings: BTreeMap<String, Listing>,
    /// Incremental sources (RESO): the newest modification time read so far.
    #[serde(default)]
    pub cursor: Option<DateTime<Utc>>,
    /// Listings a complete read missed while it missed too many at once (more than the
    /// delisting share): kept, and delisted only if the complete reads keep missing them for
    /// [`MASS_LOSS_CONFIRMATION`](super::detect::MASS_LOSS_CONFIRMATION).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub unconfirmed_delistings: BTreeSet<String>,
    /// When the reads began missing the listings held in `unconfirmed_delistings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconfirmed_since: Option<DateTime<Utc>>,
    /// When the last complete read was (RESO: the last full reconciliation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_complete_read: Option<DateTime<Utc>>,
    /// RESO: when the market was last asked for whole, complete or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_read: Option<DateTime<Utc>>,
    /// Portals: listings the reads no longer reach whose own page was asked for and not found
    /// gone, and when (the next checks go to those unseen and not asked about longest).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub page_checked_at: BTreeMap<String, DateTime<Utc>>,
    /// Listings delisted in the last [`DELISTINGS_REMEMBERED`](super::detect::DELISTINGS_REMEMBERED) and when (the newest
    /// [`MAX_DELISTINGS_REMEMBERED`](super::detect::MAX_DELISTINGS_REMEMBERED)): a replayed row of one observed before its delisting
    /// is stale, not the listing back on the market. Forgotten when the listing is seen again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delisted_at: BTreeMap<String, DateTime<Utc>>,
    /// The watch of the market's source the state was last read under
    /// ([`WatchedMarket::watched_since`](super::markets::WatchedMarket::watched_since)): a
    /// different one (the market re-added, its search widened) makes the next read a
    /// baseline ([`super::baseline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watched_since: Option<DateTime<Utc>>,
    /// While the reads record the market's inventory rather than news, since when: from a
    /// watch's first read to its first whole one ([`super::baseline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_since: Option<DateTime<Utc>>,
}

/// A stored state that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("unreadable poll state: {0}")]
pub struct StateDecodeError(String);

impl PollState {
    /// Gzipped JSON: a few hundred KB for a market of thousands of listings.
    pub fn encode(&self) -> Result<Vec<u8>, StateDecodeError> {
        let json = serde_json::to_vec(self).map_err(|e| StateDecodeError(e.to_string()))?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&json)
            .map_err(|e| StateDecodeError(e.to_string()))?;
        gz.finish().map_err(|e| StateDecodeError(e.to_string()))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StateDecodeError> {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut json)
            .map_err(|e| StateDecodeError(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| StateDecodeError(e.to_string()))
    }
}
