//! What the poller keeps of a market between polls ([`PollState`], one per source, market and
//! offer), and its stored form.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use realty_model::listing::Listing;

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
    /// ([`WatchedMarket::watched_since`](realty_model::markets::WatchedMarket::watched_since)): a
    /// different one (the market re-added, its search widened) makes the next read a
    /// baseline ([`super::detect::baseline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watched_since: Option<DateTime<Utc>>,
    /// While the reads record the market's inventory rather than news, since when: from a
    /// watch's first read to its first whole one ([`super::detect::baseline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_since: Option<DateTime<Utc>>,
}

/// Most listings an import brings into one (source, market) state: more than any US city
/// lists for sale on one source (Realtor.com's read stops at the same 50,000), and the state
/// the poller's memory is sized for (docs/capacity.md, "The poller's memory"). Rows of new
/// listings past it are rejected by the import; a RESO read holding more fails.
pub const MAX_STATE_LISTINGS: usize = 50_000;

/// Largest state, as JSON, written or read: about twice what [`MAX_STATE_LISTINGS`] real
/// listings take (650 bytes each on average, measured over the Zillow fixture). A state past
/// it is never written (the market's delivery fails, saying so), and a stored one past it is
/// not read (a gzip bomb, or a state written before the bound): that market's poll fails
/// alone, the others go on.
pub const MAX_STATE_JSON_BYTES: usize = 64 * 1024 * 1024;

/// A stored state that cannot be read back, or a state too large to write.
#[derive(Debug, thiserror::Error)]
#[error("unreadable poll state: {0}")]
pub struct StateDecodeError(String);

/// A writer that refuses to take more than `left` bytes.
struct Bounded<W> {
    inner: W,
    left: usize,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.left {
            return Err(std::io::Error::other(format!(
                "over {MAX_STATE_JSON_BYTES} bytes of JSON, the bound of a market's state: narrow the market's filter"
            )));
        }
        self.left -= buf.len();
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl PollState {
    /// Gzipped JSON: a few hundred KB for a market of thousands of listings; streamed into
    /// the compressor (the JSON is never held whole), refused past [`MAX_STATE_JSON_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, StateDecodeError> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut json = Bounded {
            inner: std::io::BufWriter::with_capacity(64 * 1024, gz),
            left: MAX_STATE_JSON_BYTES,
        };
        serde_json::to_writer(&mut json, self).map_err(|e| StateDecodeError(e.to_string()))?;
        json.inner
            .into_inner()
            .map_err(|e| StateDecodeError(e.to_string()))?
            .finish()
            .map_err(|e| StateDecodeError(e.to_string()))
    }

    /// Reads a state back, streamed from the decompressor (the JSON is never held whole),
    /// refused past [`MAX_STATE_JSON_BYTES`] of JSON.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateDecodeError> {
        let json = flate2::read::GzDecoder::new(bytes).take(MAX_STATE_JSON_BYTES as u64 + 1);
        let mut reader = std::io::BufReader::with_capacity(64 * 1024, json);
        let state = serde_json::from_reader(&mut reader);
        if reader.get_ref().limit() == 0 {
            return Err(StateDecodeError(format!(
                "over {MAX_STATE_JSON_BYTES} bytes of JSON, the bound of a market's state"
            )));
        }
        state.map_err(|e| StateDecodeError(e.to_string()))
    }
}
