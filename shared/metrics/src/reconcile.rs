//! `realty reconcile`: recompute each market's inventory figures from the listing states and
//! repair the market items that drifted from them.
//!
//! What listing states determine is recomputed exactly: the active and pending counts, the
//! sum of active prices, the active listings with a cut, and the histograms (price, price
//! per sqft, living area, gross yield, on-market day). The daily counters (new listings,
//! cuts, rises, delistings) count events, which the states do not keep: they stay as stored.
//!
//! Safe beside a running metrics function. Every batch writes its journal, then its
//! markets, then its listing states, then deletes the journal ([`super::process`]). A round
//! of reconcile reads the market items, *then* the journals, *then* every listing state
//! (strongly consistent reads), and writes a repair conditional on the revision it read:
//! - a batch whose write of market X is in the item read has either finished (its listing
//!   states are all in the scan) or still has its journal, which names X: X is left for
//!   the next round (or, for a batch Lambda discarded, until the shard's next batch
//!   finishes it);
//! - a batch that writes X after the read changes X's revision: the repair loses and X is
//!   read again next round; its listing states are written after its market writes, so
//!   none of them is in the scan of a repair that won.
//!
//! So a repair is written only from listing states that hold exactly the contributions the
//! item held. A repair raises the item's [`RECONCILE_ENTRY`] count, so its revision changes
//! and a metrics write computed from the drifted item loses its condition and re-reads.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use super::aggregate::rents::ByBedrooms;
use super::aggregate::{Contribution, MarketAggregate};
use super::ports::{AggregatePut, Journal, MarketStore, RECONCILE_ENTRY, StoredAggregate};
use super::values::ValueCounts;
use crate::batch::MarketStanding;
use realty_model::ports::PortError;
use realty_model::state::ListingState;

/// The inventory part of every market's aggregate, from the listing states alone.
pub fn recompute<'a>(
    states: impl IntoIterator<Item = &'a ListingState>,
) -> BTreeMap<String, MarketAggregate> {
    let mut out: BTreeMap<String, MarketAggregate> = BTreeMap::new();
    for state in states {
        let Some(facts) = state.facts() else {
            continue;
        };
        let facts = Arc::new(facts);
        for scope in facts.scopes() {
            // Adding never underflows.
            let _ = out
                .entry(scope.key())
                .or_default()
                .apply(&Contribution::Add(Arc::clone(&facts)));
        }
    }
    out
}

/// One figure of one market that differed from its recomputation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub figure: &'static str,
    pub stored: String,
    pub recomputed: String,
}

/// `stored` with its inventory figures taken from `truth`, and what changed; `None` when
/// nothing differs. `truth` is compared as the item would store it: a market too large to
/// hold its values exactly holds them bucketed, and that is no drift.
pub fn repair(
    stored: &MarketAggregate,
    truth: &MarketAggregate,
) -> Option<(MarketAggregate, Vec<Drift>)> {
    let truth = truth.as_stored();
    let truth = truth.as_ref();
    let mut drifts = Vec::new();
    count_drifts(stored, truth, &mut drifts);
    histogram_drifts(stored, truth, &mut drifts);
    if drifts.is_empty() {
        return None;
    }
    Some((repaired(stored, truth), drifts))
}

/// Adds a drift of `figure` to `drifts` where its `stored` and `recomputed` readings differ.
fn check(drifts: &mut Vec<Drift>, figure: &'static str, stored: String, recomputed: String) {
    if stored != recomputed {
        drifts.push(Drift {
            figure,
            stored,
            recomputed,
        });
    }
}

/// A histogram as a drift reads it: how many values, and its encoding's size.
fn hist(count: u64, bytes: Vec<u8>) -> String {
    format!("{count} values ({} bytes)", bytes.len())
}

/// The drifts of the counts and sums: active, pending, the sum of prices, cuts.
fn count_drifts(stored: &MarketAggregate, truth: &MarketAggregate, drifts: &mut Vec<Drift>) {
    check(
        drifts,
        "active",
        stored.active.to_string(),
        truth.active.to_string(),
    );
    check(
        drifts,
        "pending",
        stored.pending.to_string(),
        truth.pending.to_string(),
    );
    check(
        drifts,
        "price_sum_minor",
        stored.price_sum_minor.to_string(),
        truth.price_sum_minor.to_string(),
    );
    check(
        drifts,
        "active_with_cut",
        stored.active_with_cut.to_string(),
        truth.active_with_cut.to_string(),
    );
}

/// The drifts of the histograms: the values, those by bedrooms, and the on-market days.
fn histogram_drifts(stored: &MarketAggregate, truth: &MarketAggregate, drifts: &mut Vec<Drift>) {
    let form = |v: &ValueCounts| if v.is_bucketed() { "bucketed " } else { "" };
    for (figure, a, b) in [
        ("prices", &stored.price, &truth.price),
        (
            "prices per sqft",
            &stored.price_per_sqft,
            &truth.price_per_sqft,
        ),
        ("living areas", &stored.living_area, &truth.living_area),
        ("gross yields", &stored.gross_yield, &truth.gross_yield),
        ("rents", &stored.rents.rent, &truth.rents.rent),
        (
            "rents per sqft",
            &stored.rents.rent_per_sqft,
            &truth.rents.rent_per_sqft,
        ),
    ] {
        if a != b {
            check(
                drifts,
                figure,
                format!("{}{}", form(a), hist(a.count(), a.encode())),
                format!("{}{}", form(b), hist(b.count(), b.encode())),
            );
        }
    }
    for (figure, a, b) in [
        (
            "rents by bedrooms",
            &stored.rents.rent_by_bedrooms,
            &truth.rents.rent_by_bedrooms,
        ),
        (
            "prices by bedrooms",
            &stored.rents.price_by_bedrooms,
            &truth.rents.price_by_bedrooms,
        ),
    ] {
        if a != b {
            let count = |g: &ByBedrooms| g.0.values().map(ValueCounts::count).sum();
            check(
                drifts,
                figure,
                hist(count(a), a.encode()),
                hist(count(b), b.encode()),
            );
        }
    }
    if stored.listed_day_negated != truth.listed_day_negated {
        check(
            drifts,
            "on-market day histogram",
            hist(
                stored.listed_day_negated.count(),
                stored.listed_day_negated.encode(),
            ),
            hist(
                truth.listed_day_negated.count(),
                truth.listed_day_negated.encode(),
            ),
        );
    }
}

/// `stored` with the inventory figures of `truth`; its daily counters, closes and date kept.
fn repaired(stored: &MarketAggregate, truth: &MarketAggregate) -> MarketAggregate {
    MarketAggregate {
        active: truth.active,
        pending: truth.pending,
        price_sum_minor: truth.price_sum_minor,
        active_with_cut: truth.active_with_cut,
        price: truth.price.clone(),
        price_per_sqft: truth.price_per_sqft.clone(),
        living_area: truth.living_area.clone(),
        listed_day_negated: truth.listed_day_negated.clone(),
        gross_yield: truth.gross_yield.clone(),
        rents: truth.rents.clone(),
        daily: stored.daily.clone(),
        closing: stored.closing.clone(),
        as_of: stored.as_of,
    }
}

/// A market item reconcile repaired (or, dry, would repair).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub market: String,
    pub drifts: Vec<Drift>,
}

/// What a reconcile run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Markets compared with their recomputation.
    pub checked: usize,
    /// Listing states read (the last round's scan).
    pub listing_states: usize,
    /// Markets that differed, with what differed: repaired, or in a dry run, to repair.
    pub repairs: Vec<Repair>,
    /// Markets left as they are because a batch touching them was in flight or left
    /// part-way (a shard's journal names them) through every round, or because metrics
    /// wrote them between reconcile's read and its write every round.
    pub busy: Vec<String>,
}

/// Every listing state, for reconcile (a Scan in DynamoDB).
pub trait ListingScan {
    /// Every listing state (strongly consistent).
    fn all_states(&self) -> impl Future<Output = Result<Vec<ListingState>, PortError>>;
}

/// The market table as a whole, for reconcile (a Scan in DynamoDB).
pub trait MarketScan {
    /// The scope key of every live market item.
    fn market_keys(&self) -> impl Future<Output = Result<Vec<String>, PortError>>;
    /// The shards that have a journal: a batch in flight or left part-way (strongly
    /// consistent).
    fn journal_shards(&self) -> impl Future<Output = Result<Vec<String>, PortError>>;
}

/// Rounds of read, compare and write before the markets still busy are reported as such.
pub const MAX_ROUNDS: usize = 5;

/// Repairs every market (or those `only` names: a scope key, or a city-state naming its
/// `city#<city>#...` scopes) whose inventory figures differ from their recomputation from
/// the listing states, as the module documentation describes. With `dry_run`, reports
/// what differs without writing.
pub async fn reconcile<L, M>(
    listings: &L,
    markets: &M,
    only: Option<&str>,
    dry_run: bool,
) -> Result<ReconcileReport, PortError>
where
    L: ListingScan,
    M: MarketStore + MarketScan,
{
    let mut report = ReconcileReport::default();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut keys: BTreeSet<String> = markets
        .market_keys()
        .await?
        .into_iter()
        .filter(|k| names(only, k))
        .collect();
    let empty = MarketAggregate::default();
    for _ in 0..MAX_ROUNDS {
        // The order matters (module documentation): items, journals, then states.
        let list: Vec<String> = keys.iter().cloned().collect();
        let stored = if list.is_empty() {
            BTreeMap::new()
        } else {
            markets.get_aggregates(&list).await?
        };
        let in_flight = journaled_markets(markets).await?;
        let states = listings.all_states().await?;
        report.listing_states = states.len();
        let truth = recompute(&states);
        // Markets the states hold listings in but that have no item were not read this
        // round: the next one reads them first.
        let mut again: BTreeSet<String> = truth
            .keys()
            .filter(|k| names(only, k) && !keys.contains(*k) && !done.contains(*k))
            .cloned()
            .collect();
        for key in keys {
            if in_flight.contains(&key) {
                again.insert(key);
                continue;
            }
            let item = stored.get(&key).cloned().unwrap_or_default();
            let recomputed = truth.get(&key).unwrap_or(&empty);
            let Some((aggregate, drifts)) = repair(&item.aggregate, recomputed) else {
                done.insert(key);
                continue;
            };
            if !dry_run {
                let mut applied = item.applied.clone();
                *applied.entry(RECONCILE_ENTRY.to_owned()).or_insert(0) += 1;
                let repaired = StoredAggregate {
                    aggregate,
                    revision: StoredAggregate::revision_of(&item.watermarks, &applied),
                    watermarks: item.watermarks.clone(),
                    applied,
                };
                let put = AggregatePut {
                    key: &key,
                    item: &repaired,
                    expected_revision: &item.revision,
                };
                if !markets
                    .put_aggregates(&[put])
                    .await?
                    .first()
                    .copied()
                    .unwrap_or(false)
                {
                    again.insert(key); // metrics wrote it since the read
                    continue;
                }
                tracing::warn!(market = %key, drifts = drifts.len(), "reconcile repaired a market");
            }
            report.repairs.push(Repair {
                market: key.clone(),
                drifts,
            });
            done.insert(key);
        }
        keys = again;
        if keys.is_empty() {
            break;
        }
    }
    report.checked = done.len();
    report.busy = keys.into_iter().collect();
    Ok(report)
}

/// Whether `key` is among the markets `only` names (all when `None`).
fn names(only: Option<&str>, key: &str) -> bool {
    match only {
        None => true,
        Some(m) if m.contains('#') => key == m,
        Some(city) => key
            .strip_prefix("city#")
            .and_then(|rest| rest.strip_prefix(city))
            .is_some_and(|rest| rest.starts_with('#')),
    }
}

/// The markets that a batch in flight or left part-way writes: those its shard's journal
/// names.
async fn journaled_markets<M: MarketStore + MarketScan>(
    markets: &M,
) -> Result<BTreeSet<String>, PortError> {
    let mut out = BTreeSet::new();
    for shard in markets.journal_shards().await? {
        // Gone since the scan: that batch finished, and its states are in the next read.
        if let Some(encoded) = markets.get_journal(&shard).await? {
            out.extend(Journal::decode(&encoded)?.applied_before.into_keys());
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
