//! The metrics function's work on one Kinesis batch, over the ports.
//!
//! Order of effects (each step idempotent; see [`super::batch`] for why replays and crashes
//! between steps leave the same state as one clean delivery):
//! 1. decode; poison records go to the error sink with their reason;
//! 2. accepted events go to the data lake (at least once: readers dedupe, docs/metrics.md);
//! 3. read the listings' states and plan the batch;
//! 4. per market: read, apply the contributions above its watermark, write its snapshots,
//!    then the aggregate (conditional on its revision; re-read and retry on conflict);
//! 5. write the listings' new states.
//!
//! Any store failure fails the whole batch from its first record, which Lambda re-delivers.

use std::collections::BTreeSet;
use std::time::Instant;

use serde::Serialize;

use super::aggregate::Scope;
use super::batch::{DecodedRecord, SequenceNumber, plan_batch, unapplied};
use super::ports::{
    EventArchive, ListingStore, MarketStore, Period, PoisonRecord, PoisonSink, PortError, Snapshot,
    StoredAggregate,
};
use crate::listing::{EventKind, ListingEvent};

/// Bytes of a poison record kept in the error sink.
pub const POISON_PREFIX_BYTES: usize = 2048;
/// Attempts at one market item under write contention before the batch is retried whole.
const MAX_CONFLICT_RETRIES: usize = 20;

/// One record of a Kinesis batch.
#[derive(Debug, Clone)]
pub struct InputRecord {
    pub sequence_number: String,
    pub data: Vec<u8>,
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
        match ListingEvent::decode(&record.data) {
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
    let plan = plan_batch(&decoded, &stored);
    stats.already_applied = plan.already_applied;

    let keys: Vec<String> = plan.scopes.keys().map(Scope::key).collect();
    let mut current = ports.markets.get_aggregates(&keys).await?;
    for (scope, contributions) in &plan.scopes {
        let key = scope.key();
        let mut attempts = 0;
        loop {
            let mut item = current.remove(&key).unwrap_or_default();
            let todo = unapplied(contributions, item.watermarks.get(shard));
            let Some(newest) = todo.iter().map(|(seq, _, _)| seq).max().cloned() else {
                stats.markets_already_applied += 1;
                break;
            };
            let expected = std::mem::take(&mut item.revision);
            let mut snapshots = Vec::new();
            for (_, observed_at, contribution) in &todo {
                // Crossing into a later hour or day closes the previous one: its snapshot is
                // the market as it stood then, whatever the batch boundaries.
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
            // The watermark is the newest contribution the item holds, not the batch's end,
            // so any split of the stream into batches leaves the item the same.
            item.watermarks.insert(shard.to_owned(), newest);
            item.revision = StoredAggregate::revision_of(&item.watermarks);
            // Snapshots before the aggregate: they derive from it, so writing them again after
            // a crash before the aggregate lands puts the same values.
            ports.markets.put_snapshots(&dedupe(snapshots)).await?;
            if ports.markets.put_aggregate(&key, &item, &expected).await? {
                stats.markets_updated += 1;
                break;
            }
            attempts += 1;
            stats.conflict_retries += 1;
            if attempts >= MAX_CONFLICT_RETRIES {
                return Err(PortError::new(
                    "put_aggregate",
                    format!("{key}: still contended after {attempts} attempts"),
                ));
            }
            let fresh = ports
                .markets
                .get_aggregates(std::slice::from_ref(&key))
                .await?;
            current.extend(fresh);
        }
    }
    ports.listings.put_states(&plan.states).await?;
    stats.listings_written = plan.states.len();
    Ok(())
}

/// The record as one line of the data lake: its JSON with line breaks escaped away.
fn archive_line(data: &[u8]) -> Vec<u8> {
    // A valid JSON event has no raw newline outside strings, and JSON strings cannot hold
    // one: stripping whitespace line breaks keeps it one line and the same value.
    let mut line: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| *b != b'\n' && *b != b'\r')
        .collect();
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

/// The last snapshot of each period.
fn dedupe(snapshots: Vec<Snapshot>) -> Vec<Snapshot> {
    let mut last = std::collections::BTreeMap::new();
    for s in snapshots {
        last.insert(s.period, s);
    }
    last.into_values().collect()
}
