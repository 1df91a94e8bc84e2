//! The journaled writes of a batch, and the finishing of a journal a batch left part-way.

use std::collections::BTreeMap;

use super::markets::write_markets;
use super::{BatchStats, MetricsPorts, archive_line};
use crate::aggregate::MarketFigures;
use crate::batch::{BatchPlan, DecodedRecord, plan_batch};
use crate::interest::judge;
use crate::ports::{
    EncodedJournal, EventArchive, Journal, JournalEntry, MAX_JOURNAL_BODY_BYTES, MarketStore,
    PoisonSink, StoredAggregate, encode_journal,
};
use realty_model::ports::PortError;
use realty_model::scope::Scope;
use realty_model::state::{ListingState, may_alert};
use realty_model::state::{ListingStore, StoredStates};

/// Applies accepted events through the shard's journal: plan them, read their markets, write
/// the journal (the events, and how many contributions from this shard each market held),
/// then the events to the data lake (`lines`, one per event), the markets, the listing
/// states, then delete the journal. A batch stopped anywhere after the journal is finished
/// by [`finish_left_journal`] from it; one stopped before wrote nothing to either table (only
/// reads and the journal's own write come before it, so a batch is lost to a discard only
/// when DynamoDB, or the error sink, failed it for the whole retry window). The journal is
/// written only where the shard has none: one left by an earlier batch is finished first,
/// then these events planned again against what it wrote (`left_finished`: that was done).
pub(super) async fn apply_journaled<L, M, A, S>(
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
    let plan = plan_batch(events, &stored);
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
        return apply_in_halves(ports, shard, &journal_events, &lines, left_finished, stats).await;
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
    let (archived, tables) = futures::join!(
        ports.archive.put_lines(&lines),
        write_tables(
            ports,
            shard,
            &stored,
            plan,
            &applied_before,
            Some(current),
            stats
        )
    );
    archived?;
    stats.listings_written += tables?;
    ports.markets.delete_journal(shard).await
}

/// Applies a batch too large for one journal item as its two halves, one after the other
/// (any cut of the stream into batches gives the same items).
async fn apply_in_halves<L, M, A, S>(
    ports: &MetricsPorts<'_, L, M, A, S>,
    shard: &str,
    journal_events: &[JournalEntry<'_>],
    lines: &[Vec<u8>],
    left_finished: bool,
    stats: &mut BatchStats,
) -> Result<(), PortError>
where
    L: ListingStore,
    M: MarketStore,
    A: EventArchive,
    S: PoisonSink,
{
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
    Ok(())
}

/// Writes a planned batch's tables: its markets (`current`: their items already read, if
/// so), the listings of interest judged against their figures, then the listing states;
/// how many states it wrote.
async fn write_tables<L, M, A, S>(
    ports: &MetricsPorts<'_, L, M, A, S>,
    shard: &str,
    stored: &StoredStates,
    mut plan: BatchPlan,
    applied_before: &BTreeMap<String, u64>,
    current: Option<BTreeMap<String, StoredAggregate>>,
    stats: &mut BatchStats,
) -> Result<usize, PortError>
where
    L: ListingStore,
    M: MarketStore,
{
    let figures = write_markets(
        ports.markets,
        shard,
        &plan.scopes,
        applied_before,
        current,
        stats,
    )
    .await?;
    write_interest(ports, stored, &mut plan.states, &figures).await?;
    let written = plan.states.len();
    ports.listings.put_states(plan.states).await?;
    Ok(written)
}

/// Finishes the batch a shard's journal records, if a batch stopped part-way (a crash, a
/// failure Lambda retries, or a batch Lambda discarded): re-plans its events against the
/// listing states (those already written skip their events), writes each market whose
/// count from this shard is still the one the journal recorded (the others hold the
/// batch's contributions already), then the listing states, and deletes the journal.
pub(super) async fn finish_journal<L, M, A, S>(
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
    let plan = plan_batch(events, &stored);
    let written = write_tables(
        ports,
        shard,
        &stored,
        plan,
        &journal.applied_before,
        None,
        stats,
    )
    .await?;
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
        // After the judge: a listing it newly flags anomalous may alert.
        state.may_alert = may_alert(old, state);
    }
    if writes.is_empty() {
        return Ok(());
    }
    ports.markets.write_interest(writes).await
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
fn listing_ids(events: &[DecodedRecord]) -> Vec<&str> {
    let mut ids: Vec<&str> = events.iter().map(|d| d.event.listing.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
