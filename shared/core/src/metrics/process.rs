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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde::Serialize;

use super::aggregate::{MarketFigures, Scope};
use super::batch::{
    AppliedEvent, DecodedRecord, ListingState, MAX_RECENT_EVENTS, ScopeContributions,
    SequenceNumber, Version, plan_batch, unapplied,
};
use super::interest::{InterestRules, judge};
use super::ports::{
    AggregatePut, EncodedJournal, EventArchive, Journal, JournalEntry, ListingStore,
    MAX_ARCHIVE_RECORD_BYTES, MAX_ITEM_BYTES, MAX_JOURNAL_BODY_BYTES, MarketStore, Period,
    PoisonRecord, PoisonSink, Snapshot, StoredAggregate, StoredStates, encode_journal,
};
use crate::listing::{EventKind, ListingEvent};
use crate::ports::PortError;

/// Largest event accepted: its data-lake line (plus the newline) must fit one Firehose
/// record (1,000 KiB), below Kinesis's 1 MiB. A larger record would fail every delivery and
/// block its shard, so it goes to the error sink instead.
pub const MAX_EVENT_BYTES: usize = MAX_ARCHIVE_RECORD_BYTES - 1;
/// Bytes of a poison record kept in the error sink.
pub const POISON_PREFIX_BYTES: usize = 2048;
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
        let reject = |kind: &str, reason: String| poison_of(shard, record, kind, reason);
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

/// An accepted event whose JSON is under this many bytes makes a listing item under
/// DynamoDB's limit (the item holds the listing, its id and market key, each no larger than
/// the event but for the optional fields a record may leave out and the item writes as
/// null, and a few small fields), so only larger ones are measured exactly.
const EVENT_BYTES_ALWAYS_STORABLE: usize = (MAX_ITEM_BYTES - 16 * 1024) / 3;

/// Splits off the events that could not be stored (their listing item over DynamoDB's item
/// limit, or the event alone over a journal's) into `poison`: written, they would fail every
/// delivery of their batch, and the innocent records with them. Returns the rest with their
/// journal entries (their records' JSON as it came, which the size check reads).
fn storable<'r, L: ListingStore>(
    listings: &L,
    shard: &str,
    records: &'r [InputRecord],
    decoded: Vec<DecodedRecord>,
    accepted: Vec<usize>,
    poison: &mut Vec<PoisonRecord>,
) -> (Vec<DecodedRecord>, Vec<usize>, Vec<JournalEntry<'r>>) {
    let mut kept = (
        Vec::with_capacity(decoded.len()),
        Vec::with_capacity(decoded.len()),
        Vec::with_capacity(decoded.len()),
    );
    for (record, index) in decoded.into_iter().zip(accepted) {
        // The record decoded, so it is JSON; only text in fields the decoder skipped (unknown
        // to this version) can still be other than UTF-8, which JSON text must be.
        let json = match std::str::from_utf8(&records[index].data) {
            Ok(json) => json,
            Err(e) => {
                let reason = format!("not UTF-8: {e}");
                poison.push(poison_of(shard, &records[index], "malformed", reason));
                continue;
            }
        };
        // The value without the whitespace around it (JSON's four kinds), which the journal
        // need not keep.
        let json = json.trim_matches([' ', '\t', '\n', '\r']);
        let entry = JournalEntry {
            sequence: record.sequence.clone(),
            json,
        };
        if json.len() > EVENT_BYTES_ALWAYS_STORABLE {
            let mut state = ListingState {
                listing: record.event.listing.clone(),
                first_price_minor: record.event.listing.price_minor,
                delisted: matches!(record.event.kind, EventKind::Delisted),
                version: Version {
                    observed_at: record.event.observed_at,
                    sequence: record.sequence.clone(),
                },
                recent_events: Vec::new(),
                interest: Vec::new(),
            };
            // The stored item keeps its latest events too: size it with a full list.
            let applied = AppliedEvent::from(&state);
            state.recent_events = vec![applied; MAX_RECENT_EVENTS];
            let too_large = listings.check_state(&state).err().or_else(|| {
                (json.len() > MAX_JOURNAL_BODY_BYTES).then(|| {
                    format!(
                        "event of {} bytes is over the {MAX_JOURNAL_BODY_BYTES}-byte journal item",
                        json.len()
                    )
                })
            });
            if let Some(reason) = too_large {
                poison.push(poison_of(shard, &records[index], "item_too_large", reason));
                continue;
            }
        }
        kept.2.push(entry);
        kept.0.push(record);
        kept.1.push(index);
    }
    kept
}

/// The poison record of `record`.
fn poison_of(shard: &str, record: &InputRecord, kind: &str, reason: String) -> PoisonRecord {
    PoisonRecord {
        shard: shard.to_owned(),
        sequence_number: record.sequence_number.clone(),
        reason_kind: kind.to_owned(),
        reason,
        data_bytes: record.data.len(),
        data_prefix: String::from_utf8_lossy(
            &record.data[..record.data.len().min(POISON_PREFIX_BYTES)],
        )
        .into_owned(),
    }
}

/// Applies accepted events through the shard's journal: plan them, read their markets, write
/// the journal (the events, and how many contributions from this shard each market held),
/// then the events to the data lake (`lines`, one per event), the markets, the listing
/// states, then delete the journal. A batch stopped anywhere after the journal is finished
/// by [`finish_left_journal`] from it; one stopped before wrote nothing to either table (only
/// reads and the journal's own write come before it, so a batch is lost to a discard only
/// when DynamoDB, or the error sink, failed it for the whole retry window). The journal is
/// written only where the shard has none: one left by an earlier batch is finished first,
/// then these events planned again against what it wrote (`left_finished`: that was done).
async fn apply_journaled<L, M, A, S>(
    ports: &MetricsPorts<'_, L, M, A, S>,
    shard: &str,
    events: Vec<DecodedRecord>,
    journal_events: Vec<JournalEntry<'_>>,
    lines: Vec<Vec<u8>>,
    left_finished: bool,
    stats: &mut BatchStats,
) -> Result<(), PortError>
where
    L: ListingStore,
    M: MarketStore,
    A: EventArchive,
    S: PoisonSink,
{
    let stored = ports.listings.get_states(&listing_ids(&events)).await?;
    let mut plan = plan_batch(events, &stored);
    let keys: Vec<String> = plan.scopes.keys().map(Scope::key).collect();
    let current = if keys.is_empty() {
        BTreeMap::new()
    } else {
        ports.markets.get_aggregates(&keys).await?
    };
    let applied_before: BTreeMap<String, u64> = keys
        .iter()
        .map(|k| {
            (
                k.clone(),
                current.get(k).map_or(0, |a| a.applied_from(shard)),
            )
        })
        .collect();
    let encoded = encode_journal(shard, &journal_events, &applied_before)?;
    if encoded.body.len() > MAX_JOURNAL_BODY_BYTES && journal_events.len() > 1 {
        // Too many events for one journal item: the halves one after the other, as two
        // batches (any cut of the stream into batches gives the same items).
        let middle = journal_events.len() / 2;
        let (first, second) = journal_events.split_at(middle);
        let (first_lines, second_lines) = lines.split_at(middle);
        for (half, half_lines) in [(first, first_lines), (second, second_lines)] {
            let events = journal_records(half)?;
            Box::pin(apply_journaled(
                ports,
                shard,
                events,
                half.to_vec(),
                half_lines.to_vec(),
                left_finished,
                stats,
            ))
            .await?;
        }
        return Ok(());
    }
    if plan.states.is_empty() {
        stats.already_applied += plan.already_applied;
        stats.superseded += plan.superseded;
        // Every event already applied or superseded (so too against whatever a batch left
        // part-way would write: versions only grow): no table to write. Such a batch is
        // finished all the same, and the lake still gets the events (at least once).
        if !left_finished {
            finish_journal(ports, shard, stats).await?;
        }
        return ports.archive.put_lines(&lines).await;
    }
    if let Some(left) = ports.markets.put_journal(&encoded).await? {
        if left_finished {
            // Only this shard's batches write its journal, one at a time.
            return Err(PortError::new(
                "put_journal",
                format!("shard {shard} has a journal again right after its last was finished"),
            ));
        }
        finish_left_journal(ports, shard, &left, stats).await?;
        let events = journal_records(&journal_events)?;
        return Box::pin(apply_journaled(
            ports,
            shard,
            events,
            journal_events,
            lines,
            true,
            stats,
        ))
        .await;
    }
    stats.already_applied += plan.already_applied;
    stats.superseded += plan.superseded;
    // The lake is at least once and in no order with the tables (a finished journal sends
    // its events again): its call runs beside the table writes, one round trip fewer before
    // the listing states (and so the alerts). Both land before the journal goes.
    let archived = ports.archive.put_lines(&lines);
    let tables = async {
        let figures = write_markets(
            ports.markets,
            shard,
            &plan.scopes,
            &applied_before,
            Some(current),
            stats,
        )
        .await?;
        write_interest(ports, &stored, &mut plan.states, &figures).await?;
        let written = plan.states.len();
        ports
            .listings
            .put_states(plan.states)
            .await
            .map(|()| written)
    };
    let (archived, tables) = futures::join!(archived, tables);
    archived?;
    stats.listings_written += tables?;
    ports.markets.delete_journal(shard).await
}

/// Finishes the batch a shard's journal records, if a batch stopped part-way (a crash, a
/// failure Lambda retries, or a batch Lambda discarded): re-plans its events against the
/// listing states (those already written skip their events), writes each market whose
/// count from this shard is still the one the journal recorded (the others hold the
/// batch's contributions already), then the listing states, and deletes the journal.
async fn finish_journal<L, M, A, S>(
    ports: &MetricsPorts<'_, L, M, A, S>,
    shard: &str,
    stats: &mut BatchStats,
) -> Result<(), PortError>
where
    L: ListingStore,
    M: MarketStore,
    A: EventArchive,
    S: PoisonSink,
{
    match ports.markets.get_journal(shard).await? {
        Some(left) => finish_left_journal(ports, shard, &left, stats).await,
        None => Ok(()),
    }
}

/// Finishes the batch of `encoded`, the journal a batch of `shard` left part-way (see
/// [`finish_journal`]).
async fn finish_left_journal<L, M, A, S>(
    ports: &MetricsPorts<'_, L, M, A, S>,
    shard: &str,
    encoded: &EncodedJournal,
    stats: &mut BatchStats,
) -> Result<(), PortError>
where
    L: ListingStore,
    M: MarketStore,
    A: EventArchive,
    S: PoisonSink,
{
    let journal = Journal::decode(encoded)?;
    tracing::warn!(
        shard,
        events = journal.events.len(),
        "finishing the batch this shard left part-way (crash, retry or discard)"
    );
    // The journal's events may not have reached the data lake (the batch stopped before or
    // during that call): again, as lines of their JSON (readers dedupe).
    let jsons: Vec<std::borrow::Cow<'_, str>> = journal
        .events
        .iter()
        .map(|e| e.json())
        .collect::<Result<_, _>>()?;
    let lines: Vec<Vec<u8>> = jsons
        .iter()
        .map(|json| archive_line(json.as_bytes()))
        .collect();
    ports.archive.put_lines(&lines).await?;
    let entries: Vec<JournalEntry<'_>> = journal
        .events
        .iter()
        .zip(&jsons)
        .map(|(e, json)| JournalEntry {
            sequence: e.sequence.clone(),
            json,
        })
        .collect();
    let events = journal_records(&entries)?;
    let stored = ports.listings.get_states(&listing_ids(&events)).await?;
    let mut plan = plan_batch(events, &stored);
    let figures = write_markets(
        ports.markets,
        shard,
        &plan.scopes,
        &journal.applied_before,
        None,
        stats,
    )
    .await?;
    write_interest(ports, &stored, &mut plan.states, &figures).await?;
    let written = plan.states.len();
    ports.listings.put_states(plan.states).await?;
    stats.listings_written += written;
    stats.journals_finished += 1;
    ports.markets.delete_journal(shard).await
}

/// Updates the markets' listings of interest for the batch's new listing states (judged
/// against the city markets' figures after the batch), before the states are written: a
/// batch stopped in between is finished from its journal, which judges the same states
/// again (the writes are idempotent).
async fn write_interest<L, M, A, S>(
    ports: &MetricsPorts<'_, L, M, A, S>,
    stored: &StoredStates,
    states: &mut [ListingState],
    figures: &BTreeMap<String, MarketFigures>,
) -> Result<(), PortError>
where
    M: MarketStore,
{
    let mut writes = Vec::new();
    for state in states.iter_mut() {
        let old = stored.get(state.listing.id.as_str()).map(|s| &**s);
        writes.extend(judge(old, state, figures, &ports.rules));
    }
    if writes.is_empty() {
        return Ok(());
    }
    ports.markets.write_interest(&writes).await
}

/// The events of a journal, read back.
fn journal_records(events: &[JournalEntry<'_>]) -> Result<Vec<DecodedRecord>, PortError> {
    events
        .iter()
        .map(|e| {
            Ok(DecodedRecord {
                sequence: e.sequence.clone(),
                event: serde_json::from_str(e.json)
                    .map_err(|err| PortError::new("decode journal event", err.to_string()))?,
            })
        })
        .collect()
}

/// The distinct listing ids of `events`, sorted.
fn listing_ids(events: &[DecodedRecord]) -> Vec<String> {
    events
        .iter()
        .map(|d| d.event.listing.id.as_str().to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// One market's next live item, computed from the stored one, with its snapshots.
struct MarketWrite<'a> {
    key: String,
    contributions: &'a ScopeContributions,
    item: StoredAggregate,
    /// The revision the item was computed from: the put is conditional on it.
    expected: String,
    snapshots: Vec<Snapshot>,
    /// The item's figures, as its day's close records them (`None` before its first
    /// contribution).
    figures: Option<MarketFigures>,
    /// Removals the item could not make (its figures had drifted).
    underflows: usize,
}

/// Applies the batch's contributions to `item`, in stream order.
fn advance<'a>(
    shard: &str,
    key: String,
    mut item: StoredAggregate,
    contributions: &'a ScopeContributions,
) -> MarketWrite<'a> {
    let todo = unapplied(contributions, None);
    let expected = std::mem::take(&mut item.revision);
    let mut snapshots = Vec::new();
    let mut underflows = 0;
    for (_, observed_at, contribution) in &todo {
        // Crossing into a later hour closes the previous one, and crossing into a later day
        // that day too: their snapshots are the market as it stood then, whatever the batch
        // boundaries. (An hour that closes inside its day leaves the day open: its snapshot
        // would be replaced by a later one, so it is neither computed nor written.)
        if let Some(before) = item.aggregate.as_of
            && Period::hour_of(*observed_at) > Period::hour_of(before)
        {
            let day_closes = observed_at.date_naive() > before.date_naive();
            close_periods(&key, &mut item.aggregate, day_closes, &mut snapshots);
        }
        for u in item.aggregate.apply(contribution) {
            tracing::error!(
                market = %key,
                shard,
                figure = u.what,
                bucket = u.bucket,
                "a removal found nothing to remove: the market's figures had drifted from its listings (run `realty reconcile`)"
            );
            underflows += 1;
        }
        item.aggregate.advance_to(*observed_at);
    }
    // The open hour and day are not written: their snapshots are the live item's, derived
    // when read ([`open_snapshots`]). So a market costs snapshot writes once an hour, not
    // once a batch. The open day's close is recorded in the item all the same, as of its
    // newest contribution: so the item is the same whatever order shards' batches landed in.
    let figures = item.aggregate.as_of.map(|as_of| {
        let figures = item.aggregate.figures();
        item.aggregate.record_close(as_of.date_naive(), &figures);
        figures
    });
    // The watermark is the newest contribution the item holds, not the batch's end, so any
    // split of the stream into batches leaves the item the same; so does the count.
    if let Some(newest) = todo.iter().map(|(seq, _, _)| seq).max() {
        let watermark = item
            .watermarks
            .entry(shard.to_owned())
            .or_insert_with(|| newest.clone());
        if newest > watermark {
            *watermark = newest.clone();
        }
    }
    *item.applied.entry(shard.to_owned()).or_insert(0) += todo.len() as u64;
    item.revision = StoredAggregate::revision_of(&item.watermarks, &item.applied);
    MarketWrite {
        key,
        contributions,
        item,
        expected,
        // Distinct periods: each closes once, as `as_of` only moves forward.
        snapshots,
        figures,
        underflows,
    }
}

/// Brings every market of the batch up to date: from the live items (`first_read`, or read
/// now), writes all their snapshots in one call, then their live items concurrently, each
/// conditional on the revision it was computed from. A market whose count from this shard
/// is no longer `applied_before` holds the batch already (only this shard's batches move
/// it, one at a time) and is skipped. Markets whose put lost to another writer (listings of
/// one market arrive through every shard) are re-read together, recomputed and written
/// again, for up to [`MAX_CONFLICT_RETRIES`] rounds.
async fn write_markets<M: MarketStore>(
    markets: &M,
    shard: &str,
    scopes: &BTreeMap<Scope, ScopeContributions>,
    applied_before: &BTreeMap<String, u64>,
    mut first_read: Option<BTreeMap<String, StoredAggregate>>,
    stats: &mut BatchStats,
) -> Result<BTreeMap<String, MarketFigures>, PortError> {
    // The city markets' figures after the batch, for the listings of interest.
    let mut figures = BTreeMap::new();
    // (`computed`: the aggregate's figures where they are already at hand.)
    let mut keep_figures = |key: &str,
                            aggregate: &super::aggregate::MarketAggregate,
                            computed: Option<MarketFigures>| {
        if key.starts_with("city#") {
            let kept = computed.unwrap_or_else(|| aggregate.figures());
            figures.insert(key.to_owned(), kept);
        }
    };
    let mut pending: Vec<(String, &ScopeContributions)> = scopes
        .iter()
        .map(|(scope, contributions)| (scope.key(), contributions))
        .collect();
    let mut attempts = 0;
    while !pending.is_empty() {
        let mut current = match first_read.take() {
            Some(read) => read,
            None => {
                let keys: Vec<String> = pending.iter().map(|(key, _)| key.clone()).collect();
                markets.get_aggregates(&keys).await?
            }
        };
        let mut writes = Vec::with_capacity(pending.len());
        for (key, contributions) in pending {
            let stored = current.remove(&key).unwrap_or_default();
            match applied_before.get(&key) {
                Some(&before) if stored.applied_from(shard) != before => {
                    stats.markets_already_applied += 1;
                    keep_figures(&key, &stored.aggregate, None);
                    continue;
                }
                Some(_) => {}
                None => tracing::error!(
                    market = %key,
                    shard,
                    "market missing from the journal: applying without the landed-write check"
                ),
            }
            writes.push(advance(shard, key, stored, contributions));
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
        // Then the live items, in one call (the store groups them into transactions). Each
        // is its own item, with its own count and revision, so whichever of them land before
        // a crash or an error leave a state the journal completes: it re-reads them, skips
        // those whose count moved and writes the others, conditional on what it read. The
        // order among them does not matter.
        let puts: Vec<AggregatePut<'_>> = writes
            .iter()
            .map(|w| AggregatePut {
                key: &w.key,
                item: &w.item,
                expected_revision: &w.expected,
            })
            .collect();
        let won = markets.put_aggregates(&puts).await?;
        drop(puts);
        if won.len() != writes.len() {
            return Err(PortError::new(
                "put_aggregates",
                format!("{} answers for {} puts", won.len(), writes.len()),
            ));
        }
        let written = writes.len();
        pending = Vec::new();
        for (w, landed) in writes.into_iter().zip(won) {
            if landed {
                stats.market_underflows += w.underflows;
                keep_figures(&w.key, &w.item.aggregate, w.figures);
            } else {
                pending.push((w.key, w.contributions));
            }
        }
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
                "put_aggregates",
                format!("{key}{others}: still contended after {attempts} attempts"),
            ));
        }
    }
    Ok(figures)
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

/// Closes the hour of `aggregate`'s `as_of` and, if `day_closes`, its day: pushes their
/// snapshots onto `out` as the aggregate stands. A closing day's close is recorded in the
/// aggregate, and its snapshot carries the trends as of it.
fn close_periods(
    key: &str,
    aggregate: &mut super::aggregate::MarketAggregate,
    day_closes: bool,
    out: &mut Vec<Snapshot>,
) {
    let Some(as_of) = aggregate.as_of else {
        return;
    };
    let figures = aggregate.figures();
    let hour = |figures| Snapshot {
        scope_key: key.to_owned(),
        period: Period::hour_of(as_of),
        figures,
        trends: None,
    };
    if day_closes {
        let day = as_of.date_naive();
        let trends = aggregate.close_day(day, &figures);
        out.push(hour(figures.clone()));
        out.push(Snapshot {
            scope_key: key.to_owned(),
            period: Period::Day(day),
            figures,
            trends: Some(trends),
        });
    } else {
        out.push(hour(figures));
    }
}

/// The snapshots of the periods a market's live item has open (its hour and its day), as
/// they would be written when they close, if nothing else arrives in them: what readers show
/// for those periods (the stored snapshots hold only closed ones).
pub fn open_snapshots(key: &str, aggregate: &super::aggregate::MarketAggregate) -> Vec<Snapshot> {
    let mut open = Vec::with_capacity(2);
    close_periods(key, &mut aggregate.clone(), true, &mut open);
    open
}

/// The snapshots of `key` between two sort keys (inclusive), oldest first: the stored ones
/// (closed periods) and, from the live item, the open ones (replacing a stored snapshot of the
/// same period: builds before this one also wrote the open periods, at every batch).
pub fn with_open_periods(
    key: &str,
    stored: Vec<crate::store::MarketSnapshotItem>,
    live: Option<&super::aggregate::MarketAggregate>,
    from_sort_key: &str,
    to_sort_key: &str,
) -> Vec<crate::store::MarketSnapshotItem> {
    let mut by_sort_key: BTreeMap<String, crate::store::MarketSnapshotItem> =
        stored.into_iter().map(|s| (s.sk.clone(), s)).collect();
    for open in live.map(|a| open_snapshots(key, a)).unwrap_or_default() {
        let item = crate::store::MarketSnapshotItem::from(&open);
        if (from_sort_key..=to_sort_key).contains(&item.sk.as_str()) {
            by_sort_key.insert(item.sk.clone(), item);
        }
    }
    // `H#` and `D#` sort keys never share a range: each is in time order within its kind.
    by_sort_key.into_values().collect()
}
