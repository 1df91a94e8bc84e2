//! The metrics function's work on one Kinesis batch, over the ports.
//!
//! Order of effects (each step idempotent; see [`super::batch`] for why replays and crashes
//! between steps leave the same state as one clean delivery):
//! 1. decode; poison records go to the error sink with their reason;
//! 2. accepted events go to the data lake (at least once: readers dedupe, docs/metrics.md);
//! 3. read the listings' states and plan the batch;
//! 4. markets: read them all, apply to each the contributions above its watermark, write
//!    every market's snapshots (one call), then the aggregates, concurrently, each
//!    conditional on its revision; those that lost a conflict are re-read together and
//!    retried;
//! 5. write the listings' new states.
//!
//! Any store failure fails the whole batch from its first record, which Lambda re-delivers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::aggregate::Scope;
use super::batch::{DecodedRecord, ScopeContributions, SequenceNumber, plan_batch, unapplied};
use super::ports::{
    EventArchive, ListingStore, MarketStore, Period, PoisonRecord, PoisonSink, PortError, Snapshot,
    StoredAggregate,
};
use crate::listing::{EventKind, ListingEvent};

/// Largest event accepted: its data-lake line (plus the newline) must fit one Firehose
/// record (1,000 KiB), below Kinesis's 1 MiB. A larger record would fail every delivery and
/// block its shard, so it goes to the error sink instead.
pub const MAX_EVENT_BYTES: usize = 1_000 * 1024 - 1;
/// Bytes of a poison record kept in the error sink.
pub const POISON_PREFIX_BYTES: usize = 2048;
/// Attempts at one market item under write contention before the batch is retried whole.
pub(crate) const MAX_CONFLICT_RETRIES: usize = 20;
/// Conditional puts of live market items in flight at once. A 1,000-record batch touches
/// about 175 markets: 32 at a time writes them in about 6 round trips instead of 175, while
/// keeping the connections (and TLS handshakes on a cold start) to DynamoDB few. Every put
/// is to a different item, so they never contend with each other.
const MARKET_WRITE_CONCURRENCY: usize = 32;

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

/// All the ports the metrics function uses.
pub struct MetricsPorts<'a, L, M, A, S> {
    pub listings: &'a L,
    pub markets: &'a M,
    pub archive: &'a A,
    pub poison: &'a S,
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

/// A batch split into decodable events and poison records.
#[derive(Debug, Default)]
pub struct DecodedBatch {
    pub events: Vec<DecodedRecord>,
    /// Index in the batch of each of `events`.
    pub accepted: Vec<usize>,
    pub poison: Vec<PoisonRecord>,
}

/// Splits a batch into decodable events and poison records.
pub fn decode_records(shard: &str, records: &[InputRecord]) -> DecodedBatch {
    let mut out = DecodedBatch {
        events: Vec::with_capacity(records.len()),
        accepted: Vec::with_capacity(records.len()),
        poison: Vec::new(),
    };
    for (index, record) in records.iter().enumerate() {
        let reject = |kind: &str, reason: String| PoisonRecord {
            shard: shard.to_owned(),
            sequence_number: record.sequence_number.clone(),
            reason_kind: kind.to_owned(),
            reason,
            data_bytes: record.data.len(),
            data_prefix: String::from_utf8_lossy(
                &record.data[..record.data.len().min(POISON_PREFIX_BYTES)],
            )
            .into_owned(),
        };
        let Some(sequence) = SequenceNumber::parse(&record.sequence_number) else {
            out.poison.push(reject(
                "bad_sequence_number",
                format!("not a sequence number: {:?}", record.sequence_number),
            ));
            continue;
        };
        if record.data.len() > MAX_EVENT_BYTES {
            out.poison.push(reject(
                "too_large",
                format!(
                    "{} bytes: the data lake takes events up to {MAX_EVENT_BYTES} bytes (Firehose's record limit)",
                    record.data.len()
                ),
            ));
            continue;
        }
        match ListingEvent::decode_arrived_at(&record.data, record.approximate_arrival) {
            Ok(event) => {
                out.events.push(DecodedRecord { sequence, event });
                out.accepted.push(index);
            }
            Err(e) => out.poison.push(reject(e.kind(), e.to_string())),
        }
    }
    out
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
        poison,
    } = decode_records(shard, records);
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
        return Ok(());
    }
    let lines: Vec<Vec<u8>> = accepted
        .iter()
        .map(|&i| archive_line(&records[i].data))
        .collect();
    ports.archive.put_lines(&lines).await?;

    let ids: Vec<String> = decoded
        .iter()
        .map(|d| d.event.listing.id.as_str().to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let stored = ports.listings.get_states(&ids).await?;
    let plan = plan_batch(decoded, &stored);
    stats.already_applied = plan.already_applied;

    write_markets(ports.markets, shard, &plan.scopes, stats).await?;
    ports.listings.put_states(&plan.states).await?;
    stats.listings_written = plan.states.len();
    Ok(())
}

/// One market's next live item, computed from the stored one, with its snapshots.
struct MarketWrite<'a> {
    key: String,
    contributions: &'a ScopeContributions,
    item: StoredAggregate,
    /// The revision the item was computed from: the put is conditional on it.
    expected: String,
    snapshots: Vec<Snapshot>,
}

/// Applies to `item` its contributions above its watermark for `shard`; `None` when it
/// already holds them all.
fn advance<'a>(
    shard: &str,
    key: String,
    mut item: StoredAggregate,
    contributions: &'a ScopeContributions,
) -> Option<MarketWrite<'a>> {
    let todo = unapplied(contributions, item.watermarks.get(shard));
    let newest = todo.iter().map(|(seq, _, _)| seq).max().cloned()?;
    let expected = std::mem::take(&mut item.revision);
    let mut snapshots = Vec::new();
    for (_, observed_at, contribution) in &todo {
        // Crossing into a later hour or day closes the previous one: its snapshot is the
        // market as it stood then, whatever the batch boundaries.
        if item
            .aggregate
            .as_of
            .is_some_and(|before| Period::hour_of(*observed_at) > Period::hour_of(before))
        {
            snapshots.extend(snapshots_of(&key, &item.aggregate));
        }
        item.aggregate.apply(contribution);
        item.aggregate.advance_to(*observed_at);
    }
    snapshots.extend(snapshots_of(&key, &item.aggregate));
    // The watermark is the newest contribution the item holds, not the batch's end, so any
    // split of the stream into batches leaves the item the same.
    item.watermarks.insert(shard.to_owned(), newest);
    item.revision = StoredAggregate::revision_of(&item.watermarks);
    Some(MarketWrite {
        key,
        contributions,
        item,
        expected,
        snapshots: dedupe(snapshots),
    })
}

/// Brings every market of the batch up to date: reads their live items, writes all their
/// snapshots in one call, then their live items concurrently, each conditional on the
/// revision it was computed from. Markets whose put lost to another writer (listings of one
/// market arrive through every shard) are re-read together, recomputed and written again,
/// for up to [`MAX_CONFLICT_RETRIES`] rounds.
async fn write_markets<M: MarketStore>(
    markets: &M,
    shard: &str,
    scopes: &BTreeMap<Scope, ScopeContributions>,
    stats: &mut BatchStats,
) -> Result<(), PortError> {
    let mut pending: Vec<(String, &ScopeContributions)> = scopes
        .iter()
        .map(|(scope, contributions)| (scope.key(), contributions))
        .collect();
    let mut attempts = 0;
    while !pending.is_empty() {
        let keys: Vec<String> = pending.iter().map(|(key, _)| key.clone()).collect();
        let mut current = markets.get_aggregates(&keys).await?;
        let mut writes = Vec::with_capacity(pending.len());
        for (key, contributions) in pending {
            let stored = current.remove(&key).unwrap_or_default();
            match advance(shard, key, stored, contributions) {
                Some(write) => writes.push(write),
                None => stats.markets_already_applied += 1,
            }
        }
        if writes.is_empty() {
            break;
        }
        // Every market's snapshots before any live item: they derive from the items, so
        // writing them again after a crash before an item lands puts the same values. One
        // call for all: the store splits it into its own batches.
        let snapshots: Vec<Snapshot> = writes
            .iter_mut()
            .flat_map(|w| std::mem::take(&mut w.snapshots))
            .collect();
        markets.put_snapshots(&snapshots).await?;
        // Then the live items, concurrently. Each is its own item, with its own watermark
        // and revision, so whichever of them land before a crash or an error (puts still in
        // flight are then dropped, and may land or not) leave a state a re-delivery
        // completes: it re-reads them, skips those holding its contributions and writes the
        // others, conditional on what it read. The order among them does not matter.
        let mut won = vec![false; writes.len()];
        let mut puts = stream::iter(writes.iter().enumerate().map(|(i, w)| async move {
            let landed = markets.put_aggregate(&w.key, &w.item, &w.expected).await?;
            Ok::<_, PortError>((i, landed))
        }))
        .buffer_unordered(MARKET_WRITE_CONCURRENCY);
        while let Some(put) = puts.next().await {
            let (i, landed) = put?;
            won[i] = landed;
        }
        drop(puts);
        let written = writes.len();
        pending = writes
            .into_iter()
            .zip(won)
            .filter(|(_, landed)| !landed)
            .map(|(w, _)| (w.key, w.contributions))
            .collect();
        stats.markets_updated += written - pending.len();
        if pending.is_empty() {
            break;
        }
        attempts += 1;
        stats.conflict_retries += pending.len();
        if attempts >= MAX_CONFLICT_RETRIES {
            let (key, _) = &pending[0];
            let others = match pending.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more markets)"),
            };
            return Err(PortError::new(
                "put_aggregate",
                format!("{key}{others}: still contended after {attempts} attempts"),
            ));
        }
    }
    Ok(())
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

/// The hourly and daily snapshots of `aggregate` as it stands.
fn snapshots_of(key: &str, aggregate: &super::aggregate::MarketAggregate) -> Vec<Snapshot> {
    let Some(as_of) = aggregate.as_of else {
        return Vec::new();
    };
    let figures = aggregate.figures();
    [Period::hour_of(as_of), Period::Day(as_of.date_naive())]
        .into_iter()
        .map(|period| Snapshot {
            scope_key: key.to_owned(),
            period,
            figures: figures.clone(),
        })
        .collect()
}

/// The last snapshot of each period (of one market).
fn dedupe(snapshots: Vec<Snapshot>) -> Vec<Snapshot> {
    let mut last = BTreeMap::new();
    for s in snapshots {
        last.insert(s.period, s);
    }
    last.into_values().collect()
}
