//! The metrics function's work on one Kinesis batch, over the ports.
//!
//! Order of effects (each step idempotent; docs/metrics.md has why replays, crashes and
//! discards between steps leave the same state as one clean delivery):
//! 1. decode; poison records (and events whose listing item would be over DynamoDB's item
//!    limit) go to the error sink with their reason;
//! 2. read the listings' states and plan the batch, read its markets;
//! 3. write the shard's journal: the events, and per market the count of contributions from
//!    this shard it held. The write is conditional on the shard having none: a journal an
//!    earlier batch left (see 3-7) is answered instead, that batch finished, and this one
//!    planned again from 2 (a batch with nothing to write reads for such a journal and
//!    finishes it);
//! 4. accepted events go to the data lake (at least once: readers dedupe, docs/metrics.md;
//!    a finished journal sends its events again), in a call beside those of 5 and 6;
//! 5. markets: apply the batch to each whose count is unchanged, write every market's
//!    snapshots (one call), then the aggregates, concurrently, each conditional on its
//!    revision; those that lost a conflict are re-read together and retried;
//! 6. write the listings' new states;
//! 7. delete the journal.
//!
//! Any store failure fails the whole batch from its first record, which Lambda re-delivers;
//! if Lambda gives up on it instead, the shard's next batch finishes it in step 3.
//!
//! Here the entry point ([`process_batch`]) and the batch's flow; in their own files the
//! decoding and the records set aside as poison (`decode`), the journaled writes and the
//! finishing of a journal left part-way (`journal`), the market writes (`markets`), and the
//! snapshots of a market's closed and open periods (`periods`).

mod decode;
mod journal;
mod markets;
mod periods;

pub use decode::{DecodedBatch, MAX_EVENT_BYTES, POISON_PREFIX_BYTES, decode_records};
pub use periods::{open_snapshots, with_open_periods};

use std::time::Instant;

use serde::Serialize;

use super::interest::InterestRules;
use super::ports::{EventArchive, MarketStore, PoisonSink};
use decode::storable;
use journal::{apply_journaled, finish_journal};
use realty_model::listing::EventKind;
use realty_model::ports::PortError;
use realty_model::state::ListingStore;

/// Attempts at one market item under write contention before the batch is retried whole.
pub(crate) const MAX_CONFLICT_RETRIES: usize = 20;

/// One record of a Kinesis batch.
#[derive(Debug, Clone)]
pub struct InputRecord {
    pub sequence_number: String,
    pub data: Vec<u8>,
    /// When the record reached Kinesis: fixed per record, the reference of the event's
    /// time window (`ListingEvent::check_observed_at`), so replays decide the same.
    pub approximate_arrival: chrono::DateTime<chrono::Utc>,
}

/// What happened to a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchStats {
    pub records: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub new: usize,
    pub changed: usize,
    pub delisted: usize,
    /// Events whose listing already reflected them (re-deliveries).
    pub already_applied: usize,
    /// Events dropped because their listing holds an observation more than the clock skew
    /// newer (an old poll's event put late).
    pub superseded: usize,
    /// Batches of this shard left part-way (crash, retry, discard) that this one finished.
    pub journals_finished: usize,
    /// Removals a market could not make: its figures had drifted from its listings.
    pub market_underflows: usize,
    pub markets_updated: usize,
    /// Markets that already held every contribution (re-deliveries).
    pub markets_already_applied: usize,
    pub listings_written: usize,
    pub conflict_retries: usize,
    pub duration_ms: u64,
}

/// The batch's result: stats, and where Lambda must re-deliver from if it failed.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    pub stats: BatchStats,
    /// Sequence number of the first record not processed (`batchItemFailures`).
    pub failed_from: Option<String>,
    pub error: Option<PortError>,
}

/// All the ports the metrics function uses, and how it judges listings of interest.
pub struct MetricsPorts<'a, L, M, A, S> {
    pub listings: &'a L,
    pub markets: &'a M,
    pub archive: &'a A,
    pub poison: &'a S,
    pub rules: InterestRules,
}

/// Processes one batch of one shard.
pub async fn process_batch<L, M, A, S>(
    ports: &MetricsPorts<'_, L, M, A, S>,
    shard: &str,
    records: &[InputRecord],
) -> BatchOutcome
where
    L: ListingStore,
    M: MarketStore,
    A: EventArchive,
    S: PoisonSink,
{
    let started = Instant::now();
    let mut stats = BatchStats {
        records: records.len(),
        ..BatchStats::default()
    };
    let result = run(ports, shard, records, &mut stats).await;
    stats.duration_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(()) => BatchOutcome {
            stats,
            failed_from: None,
            error: None,
        },
        Err(error) => BatchOutcome {
            stats,
            failed_from: records.first().map(|r| r.sequence_number.clone()),
            error: Some(error),
        },
    }
}

async fn run<L, M, A, S>(
    ports: &MetricsPorts<'_, L, M, A, S>,
    shard: &str,
    records: &[InputRecord],
    stats: &mut BatchStats,
) -> Result<(), PortError>
where
    L: ListingStore,
    M: MarketStore,
    A: EventArchive,
    S: PoisonSink,
{
    let DecodedBatch {
        events: decoded,
        accepted,
        mut poison,
    } = decode_records(shard, records);
    let (decoded, accepted, journal_events) = storable(
        ports.listings,
        shard,
        records,
        decoded,
        accepted,
        &mut poison,
    );
    stats.accepted = decoded.len();
    stats.rejected = poison.len();
    for r in &decoded {
        match r.event.kind {
            EventKind::New => stats.new += 1,
            EventKind::Changed { .. } => stats.changed += 1,
            EventKind::Delisted => stats.delisted += 1,
        }
    }
    if !poison.is_empty() {
        for p in &poison {
            tracing::warn!(shard, sequence_number = %p.sequence_number, reason = %p.reason, "poison record sent to the error sink");
        }
        ports.poison.send(&poison).await?;
    }
    if decoded.is_empty() {
        // Nothing to journal: a batch this shard left part-way is finished all the same.
        return finish_journal(ports, shard, stats).await;
    }
    let lines: Vec<Vec<u8>> = accepted
        .iter()
        .map(|&i| archive_line(&records[i].data))
        .collect();
    apply_journaled(ports, shard, decoded, journal_events, lines, false, stats).await
}

/// The record as one line of the data lake: its JSON with line breaks escaped away.
fn archive_line(data: &[u8]) -> Vec<u8> {
    // A valid JSON event has no raw newline outside strings, and JSON strings cannot hold
    // one: stripping whitespace line breaks keeps it one line and the same value.
    let mut line = Vec::with_capacity(data.len() + 1);
    if memchr::memchr2(b'\n', b'\r', data).is_some() {
        line.extend(data.iter().filter(|b| **b != b'\n' && **b != b'\r'));
    } else {
        line.extend_from_slice(data);
    }
    line.push(b'\n');
    line
}
