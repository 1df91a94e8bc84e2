//! The market writes of a batch: each market's next live item and the snapshots of the
//! periods it closes, written conditionally on the item's revision, and retried on conflict.

use std::collections::BTreeMap;

use super::periods::close_periods;
use super::{BatchStats, MAX_CONFLICT_RETRIES};
use crate::aggregate::MarketFigures;
use crate::batch::ScopeContributions;
use crate::ports::{AggregatePut, MarketStore, Snapshot, StoredAggregate, hours_since_epoch};
use realty_model::ports::PortError;
use realty_model::scope::Scope;

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

/// Applies the batch's contributions to `item`, in stream order (as the plan gives them).
fn advance<'a>(
    shard: &str,
    key: String,
    mut item: StoredAggregate,
    contributions: &'a ScopeContributions,
) -> MarketWrite<'a> {
    let expected = std::mem::take(&mut item.revision);
    let mut snapshots = Vec::new();
    let mut underflows = 0;
    for (_, observed_at, contribution) in contributions {
        // Crossing into a later hour closes the previous one, and crossing into a later day
        // that day too: their snapshots are the market as it stood then, whatever the batch
        // boundaries. (An hour that closes inside its day leaves the day open: its snapshot
        // would be replaced by a later one, so it is neither computed nor written.)
        if let Some(before) = item.aggregate.as_of {
            let (hour, hour_before) = (hours_since_epoch(*observed_at), hours_since_epoch(before));
            if hour > hour_before {
                let day_closes = hour.div_euclid(24) > hour_before.div_euclid(24);
                close_periods(&key, &mut item.aggregate, day_closes, &mut snapshots);
            }
        }
        for u in item.aggregate.apply(contribution) {
            tracing::error!(
                market = %key,
                shard,
                figure = u.what,
                value = u.value,
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
    // (The contributions come in stream order: the last is the newest.)
    if let Some((newest, _, _)) = contributions.last() {
        let watermark = item
            .watermarks
            .entry(shard.to_owned())
            .or_insert_with(|| newest.clone());
        if newest > watermark {
            *watermark = newest.clone();
        }
    }
    *item.applied.entry(shard.to_owned()).or_insert(0) += contributions.len() as u64;
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
pub(super) async fn write_markets<M: MarketStore>(
    markets: &M,
    shard: &str,
    scopes: &BTreeMap<Scope, ScopeContributions>,
    applied_before: &BTreeMap<String, u64>,
    mut first_read: Option<BTreeMap<String, StoredAggregate>>,
    stats: &mut BatchStats,
) -> Result<BTreeMap<String, MarketFigures>, PortError> {
    // The city markets' figures after the batch, for the listings of interest.
    let mut figures = BTreeMap::new();
    let mut pending: Vec<(String, &ScopeContributions)> = scopes
        .iter()
        .map(|(scope, contributions)| (scope.key(), contributions))
        .collect();
    let mut attempts = 0;
    while !pending.is_empty() {
        let current = match first_read.take() {
            Some(read) => read,
            None => {
                let keys: Vec<String> = pending.iter().map(|(key, _)| key.clone()).collect();
                markets.get_aggregates(&keys).await?
            }
        };
        let mut writes = next_items(shard, pending, current, applied_before, stats, &mut figures);
        if writes.is_empty() {
            break;
        }
        let won = put_items(markets, &mut writes).await?;
        pending = settle_round(writes, won, stats, &mut figures);
        if pending.is_empty() {
            break;
        }
        attempts += 1;
        stats.conflict_retries += pending.len();
        if attempts >= MAX_CONFLICT_RETRIES {
            return Err(still_contended(&pending, attempts));
        }
    }
    Ok(figures)
}

/// Keeps a city market's figures after the batch in `figures` (`computed`: the aggregate's
/// figures where they are already at hand).
fn keep_figures(
    figures: &mut BTreeMap<String, MarketFigures>,
    key: &str,
    aggregate: &crate::aggregate::MarketAggregate,
    computed: Option<MarketFigures>,
) {
    if key.starts_with("city#") {
        let kept = computed.unwrap_or_else(|| aggregate.figures());
        figures.insert(key.to_owned(), kept);
    }
}

/// The next live items of the `pending` markets, from their stored ones (`current`); a
/// market whose count from this shard is no longer `applied_before` already holds the batch
/// and is skipped, its figures kept as they are.
fn next_items<'a>(
    shard: &str,
    pending: Vec<(String, &'a ScopeContributions)>,
    mut current: BTreeMap<String, StoredAggregate>,
    applied_before: &BTreeMap<String, u64>,
    stats: &mut BatchStats,
    figures: &mut BTreeMap<String, MarketFigures>,
) -> Vec<MarketWrite<'a>> {
    let mut writes = Vec::with_capacity(pending.len());
    for (key, contributions) in pending {
        let stored = current.remove(&key).unwrap_or_default();
        match applied_before.get(&key) {
            Some(&before) if stored.applied_from(shard) != before => {
                stats.markets_already_applied += 1;
                keep_figures(figures, &key, &stored.aggregate, None);
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
    writes
}

/// Writes one round's markets: all their snapshots, then their live items, each conditional
/// on its revision; whether each item's put landed, in order.
async fn put_items<M: MarketStore>(
    markets: &M,
    writes: &mut [MarketWrite<'_>],
) -> Result<Vec<bool>, PortError> {
    // Every market's snapshots before any live item: they derive from the items, so
    // writing them again after a crash before an item lands puts the same values. One
    // call for all: the store splits it into its own batches.
    let snapshots: Vec<Snapshot> = writes
        .iter_mut()
        .flat_map(|w| std::mem::take(&mut w.snapshots))
        .collect();
    markets.put_snapshots(snapshots).await?;
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
    Ok(won)
}

/// Counts the round's markets whose item landed and keeps their figures; the markets whose
/// put lost to another writer, to write again.
fn settle_round<'a>(
    writes: Vec<MarketWrite<'a>>,
    won: Vec<bool>,
    stats: &mut BatchStats,
    figures: &mut BTreeMap<String, MarketFigures>,
) -> Vec<(String, &'a ScopeContributions)> {
    let written = writes.len();
    let mut pending = Vec::new();
    for (w, landed) in writes.into_iter().zip(won) {
        if landed {
            stats.market_underflows += w.underflows;
            keep_figures(figures, &w.key, &w.item.aggregate, w.figures);
        } else {
            pending.push((w.key, w.contributions));
        }
    }
    stats.markets_updated += written - pending.len();
    pending
}

/// The error of markets still contended after `attempts` rounds (the first named).
fn still_contended(pending: &[(String, &ScopeContributions)], attempts: usize) -> PortError {
    let (key, _) = &pending[0];
    let others = match pending.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more markets)"),
    };
    PortError::new(
        "put_aggregates",
        format!("{key}{others}: still contended after {attempts} attempts"),
    )
}
