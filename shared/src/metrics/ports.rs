//! What the metrics function needs from the outside world, as small traits. The AWS
//! adapters live in [`crate::adapters`]; [`super::memory`] holds in-memory ones for tests
//! and benchmarks.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::aggregate::{MarketAggregate, MarketFigures};
use super::batch::{ListingState, SequenceNumber};

/// A failure to reach a store. The batch is reported failed and re-delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct PortError {
    pub operation: &'static str,
    pub message: String,
}

impl PortError {
    pub fn new(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            message: message.into(),
        }
    }
}

/// A market's live aggregate as stored, with its concurrency and exactly-once bookkeeping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredAggregate {
    pub aggregate: MarketAggregate,
    /// Per shard, the highest sequence number whose contributions this item holds.
    pub watermarks: BTreeMap<String, SequenceNumber>,
    /// Digest of `watermarks`, empty for an item not yet stored. Writes are conditional on
    /// it (optimistic locking: listings of one market arrive through every shard). Every
    /// write raises a watermark, so the digest names the item's version, and the same
    /// history gives the same digest however it was batched.
    pub revision: String,
}

impl StoredAggregate {
    /// The revision of an item holding `watermarks` (FNV-1a, 64 bits, hex).
    pub fn revision_of(watermarks: &BTreeMap<String, SequenceNumber>) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (shard, seq) in watermarks {
            for b in shard
                .bytes()
                .chain([b'='])
                .chain(seq.padded().bytes())
                .chain([b';'])
            {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{hash:016x}")
    }
}

/// The period a snapshot stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// The hour starting at this instant.
    Hour(DateTime<Utc>),
    Day(NaiveDate),
}

impl Period {
    pub fn hour_of(t: DateTime<Utc>) -> Self {
        // Whole hours since the epoch: UTC has no leap seconds in chrono's arithmetic, and
        // this runs for every contribution (field-by-field truncation costs far more).
        let seconds = t.timestamp();
        let hour = DateTime::from_timestamp(seconds - seconds.rem_euclid(3600), 0).unwrap_or(t);
        Self::Hour(hour)
    }

    /// The sort key of the snapshot item: `H#2026-11-21T18`, `D#2026-11-21`. Hourly and daily
    /// snapshots of a market each come back, in time order, from one Query.
    pub fn sort_key(&self) -> String {
        match self {
            Self::Hour(t) => format!("H#{}", t.format("%Y-%m-%dT%H")),
            Self::Day(d) => format!("D#{}", d.format("%Y-%m-%d")),
        }
    }
}

/// A market's figures at the end of a period (the latest write within it wins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub scope_key: String,
    pub period: Period,
    pub figures: MarketFigures,
}

/// A record that can never be processed, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoisonRecord {
    pub shard: String,
    pub sequence_number: String,
    /// Short machine-readable reason (`malformed`, `unsupported_schema_version`, ...).
    pub reason_kind: String,
    pub reason: String,
    pub data_bytes: usize,
    /// The record's first bytes, lossily as UTF-8 (records can be up to 1 MB; the sink is
    /// for diagnosis, the stream still has the record for its retention period).
    pub data_prefix: String,
}

/// The listing table.
pub trait ListingStore {
    fn get_states(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, ListingState>, PortError>>;
    fn put_states(&self, states: &[ListingState]) -> impl Future<Output = Result<(), PortError>>;
}

/// The market table.
pub trait MarketStore {
    fn get_aggregates(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, StoredAggregate>, PortError>>;
    /// Writes `item` if the stored revision is still `expected_revision` (empty: no item
    /// yet). `Ok(false)` when another writer got there first.
    fn put_aggregate(
        &self,
        key: &str,
        item: &StoredAggregate,
        expected_revision: &str,
    ) -> impl Future<Output = Result<bool, PortError>>;
    fn put_snapshots(&self, snapshots: &[Snapshot]) -> impl Future<Output = Result<(), PortError>>;
}

/// The data lake (Firehose): one JSON line per accepted event (lines are newline-terminated;
/// the adapter may pack several into one record).
pub trait EventArchive {
    fn put_lines(&self, lines: &[Vec<u8>]) -> impl Future<Output = Result<(), PortError>>;
}

/// Where poison records go.
pub trait PoisonSink {
    fn send(&self, records: &[PoisonRecord]) -> impl Future<Output = Result<(), PortError>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hour_of_truncates_to_the_hour() {
        let at = |y, mo, d, h, mi, s| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap();
        let t = at(2026, 11, 21, 18, 42, 15) + chrono::Duration::milliseconds(250);
        assert_eq!(Period::hour_of(t), Period::Hour(at(2026, 11, 21, 18, 0, 0)));
        assert_eq!(
            Period::hour_of(at(1969, 12, 31, 23, 59, 59)),
            Period::Hour(at(1969, 12, 31, 23, 0, 0))
        );
        assert_eq!(
            Period::hour_of(at(2026, 1, 1, 0, 0, 0)),
            Period::Hour(at(2026, 1, 1, 0, 0, 0))
        );
    }
}
