//! `realty reconcile`: recompute each market's inventory figures from the listing states and
//! repair the market items that drifted from them.
//!
//! What listing states determine is recomputed exactly: the active and pending counts, the
//! sum of active prices, the active listings with a cut, and the histograms (price, price
//! per sqft, living area, gross yield, on-market day). The daily counters (new listings,
//! cuts, rises, delistings) count events, which the states do not keep: they stay as stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::aggregate::{Contribution, MarketAggregate};
use super::batch::ListingState;
use super::ports::{MarketStore, PortError, RECONCILE_ENTRY, StoredAggregate};

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
/// nothing differs.
pub fn repair(
    stored: &MarketAggregate,
    truth: &MarketAggregate,
) -> Option<(MarketAggregate, Vec<Drift>)> {
    let mut drifts = Vec::new();
    let mut check = |figure: &'static str, a: String, b: String| {
        if a != b {
            drifts.push(Drift {
                figure,
                stored: a,
                recomputed: b,
            });
        }
    };
    let hist = |count: u64, bytes: Vec<u8>| format!("{count} values ({} bytes)", bytes.len());
    check(
        "active",
        stored.active.to_string(),
        truth.active.to_string(),
    );
    check(
        "pending",
        stored.pending.to_string(),
        truth.pending.to_string(),
    );
    check(
        "price_sum_minor",
        stored.price_sum_minor.to_string(),
        truth.price_sum_minor.to_string(),
    );
    check(
        "active_with_cut",
        stored.active_with_cut.to_string(),
        truth.active_with_cut.to_string(),
    );
    for (figure, a, b) in [
        ("price histogram", &stored.price, &truth.price),
        (
            "price_per_sqft histogram",
            &stored.price_per_sqft,
            &truth.price_per_sqft,
        ),
        (
            "living_area histogram",
            &stored.living_area,
            &truth.living_area,
        ),
        (
            "gross_yield histogram",
            &stored.gross_yield,
            &truth.gross_yield,
        ),
    ] {
        if a != b {
            check(
                figure,
                hist(a.count(), a.encode()),
                hist(b.count(), b.encode()),
            );
        }
    }
    if stored.listed_day_negated != truth.listed_day_negated {
        check(
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
    if drifts.is_empty() {
        return None;
    }
    let repaired = MarketAggregate {
        active: truth.active,
        pending: truth.pending,
        price_sum_minor: truth.price_sum_minor,
        active_with_cut: truth.active_with_cut,
        price: truth.price.clone(),
        price_per_sqft: truth.price_per_sqft.clone(),
        living_area: truth.living_area.clone(),
        listed_day_negated: truth.listed_day_negated.clone(),
        gross_yield: truth.gross_yield.clone(),
        daily: stored.daily.clone(),
        as_of: stored.as_of,
    };
    Some((repaired, drifts))
}

/// A market item reconcile repaired (or, dry, would repair).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub market: String,
    pub drifts: Vec<Drift>,
}

/// Attempts at one market item under write contention before reconcile gives up on it.
const MAX_REPAIR_ATTEMPTS: usize = 10;

/// Repairs the live items of `keys` (markets that exist, or that the listing states say
/// should) to the recomputation from `states`, conditional on each item's revision (a
/// concurrent metrics write makes it re-read and recompute). Each repair counts under
/// [`RECONCILE_ENTRY`] in the item's `applied`, so its revision changes and no writer that
/// read the drifted item can overwrite the repair. With `dry_run`, reports without writing.
///
/// Run it when no batch of the stream is left part-way (no journal item in the market
/// table), or its states are ahead of the markets until that batch finishes.
pub async fn reconcile<M: MarketStore>(
    markets: &M,
    states: &[ListingState],
    keys: &[String],
    dry_run: bool,
) -> Result<Vec<Repair>, PortError> {
    let truth = recompute(states);
    let mut repairs = Vec::new();
    let empty = MarketAggregate::default();
    for key in keys {
        let recomputed = truth.get(key).unwrap_or(&empty);
        let mut attempts = 0;
        loop {
            let stored = markets
                .get_aggregates(std::slice::from_ref(key))
                .await?
                .remove(key)
                .unwrap_or_default();
            let Some((aggregate, drifts)) = repair(&stored.aggregate, recomputed) else {
                break;
            };
            if dry_run {
                repairs.push(Repair {
                    market: key.clone(),
                    drifts,
                });
                break;
            }
            let mut applied = stored.applied.clone();
            *applied.entry(RECONCILE_ENTRY.to_owned()).or_insert(0) += 1;
            let item = StoredAggregate {
                aggregate,
                revision: StoredAggregate::revision_of(&stored.watermarks, &applied),
                watermarks: stored.watermarks.clone(),
                applied,
            };
            if markets.put_aggregate(key, &item, &stored.revision).await? {
                repairs.push(Repair {
                    market: key.clone(),
                    drifts,
                });
                break;
            }
            attempts += 1;
            if attempts >= MAX_REPAIR_ATTEMPTS {
                return Err(PortError::new(
                    "reconcile",
                    format!("{key}: still contended after {attempts} attempts"),
                ));
            }
        }
    }
    Ok(repairs)
}

/// The markets to reconcile: those stored and those the states hold listings in, limited to
/// `only` (a scope key, or a city-state naming its `city#<city>#...` scopes) when given.
pub fn markets_to_reconcile(
    stored: impl IntoIterator<Item = String>,
    states: &[ListingState],
    only: Option<&str>,
) -> Vec<String> {
    let mut keys: std::collections::BTreeSet<String> = stored.into_iter().collect();
    keys.extend(recompute(states).into_keys());
    keys.into_iter()
        .filter(|k| match only {
            None => true,
            Some(m) if m.contains('#') => k == m,
            Some(city) => k.starts_with(&format!("city#{city}#")),
        })
        .collect()
}
