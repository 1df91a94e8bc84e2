//! Per-market aggregates: what one listing contributes, how contributions add up, and the
//! figures people read (`docs/metrics.md` defines each).
//!
//! A market is a scope: a geography (city-state or ZIP) and a property type (or all types).
//! Every sale listing counts in up to four scopes. Aggregates only ever see contributions
//! (add this listing's facts, remove them, count an event), which is what makes them
//! incremental and lets [`super::batch`] apply each contribution exactly once.
//!
//! Here the aggregate and how contributions change it; in their own files a listing's facts
//! (`facts`), the markets they count in (`scope`), the figures read from an aggregate
//! (`figures`), and its histograms encoded for storage (`encoded`).

mod encoded;
mod facts;
mod figures;
pub mod history;
pub mod rents;

pub use encoded::{EncodedValues, MAX_EXACT_VALUE_BYTES, ValueLayout};
pub use facts::{ListingFacts, Standing, day_date, day_number, minor_per_sqft};
pub use figures::{ANOMALY_ROBUST_Z, MIN_LISTINGS_FOR_ANOMALIES, MarketFigures};
use realty_model::scope::{Scope, scopes_of, zip_geo};

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::histogram::DayHistogram;
use super::values::ValueCounts;
use history::{Trends, trends};
use rents::RentAggregate;

/// How long daily counters stay in the live item (the daily snapshots keep them after).
pub const DAILY_COUNTER_DAYS: i64 = 35;

/// An event counted per day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counter {
    NewListing,
    PriceCut,
    PriceRise,
    Delisting,
}

/// Events of one day in one market.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyCounts {
    pub new_listings: i64,
    pub price_cuts: i64,
    pub price_rises: i64,
    pub delistings: i64,
    /// Sum of the cuts' sizes in basis points of the old price (integer, so sums are exact).
    pub cut_bp_sum: i64,
}

impl DailyCounts {
    fn add(&mut self, other: &DailyCounts) {
        self.new_listings += other.new_listings;
        self.price_cuts += other.price_cuts;
        self.price_rises += other.price_rises;
        self.delistings += other.delistings;
        self.cut_bp_sum += other.cut_bp_sum;
    }
}

/// One change to an aggregate. A listing's facts go to each of its (up to four) scopes:
/// shared, not copied.
#[derive(Debug, Clone, PartialEq)]
pub enum Contribution {
    Add(Arc<ListingFacts>),
    Remove(Arc<ListingFacts>),
    Count {
        day: NaiveDate,
        counter: Counter,
        cut_bp: i64,
    },
}

/// The live aggregate of one scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarketAggregate {
    pub active: i64,
    pub pending: i64,
    /// Sum of active listings' prices (minor units): the average is exact.
    pub price_sum_minor: i64,
    pub active_with_cut: i64,
    /// Active listings' prices (minor units).
    pub price: ValueCounts,
    /// Their prices per sqft (minor units, rounded), where the living area is known.
    pub price_per_sqft: ValueCounts,
    /// Their living areas (sqft).
    pub living_area: ValueCounts,
    /// Negated on-market days, so ascending order is ascending days on market.
    pub listed_day_negated: DayHistogram,
    /// Gross yields (basis points) of active listings from their own rent estimates.
    pub gross_yield: ValueCounts,
    /// Rents, and sale prices by size to match them with.
    pub rents: RentAggregate,
    pub daily: BTreeMap<NaiveDate, DailyCounts>,
    /// Per day, the medians the market closed the day with (its daily snapshot's), kept as
    /// long as the daily counters: the moving averages and trends of a day's snapshot are
    /// computed from them when the day is written, without reading the snapshots back.
    pub closing: BTreeMap<NaiveDate, DayClose>,
    /// Latest `observed_at` applied.
    pub as_of: Option<DateTime<Utc>>,
}

/// The medians a market stood at when a day's snapshot was last written (in major units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DayClose {
    pub median_price: Option<f64>,
    pub median_price_per_sqft: Option<f64>,
}

impl From<&MarketFigures> for DayClose {
    fn from(f: &MarketFigures) -> Self {
        Self {
            median_price: f.median_price,
            median_price_per_sqft: f.median_price_per_sqft,
        }
    }
}

/// A contribution removed what the aggregate did not hold: its figures had drifted from its
/// listings (corruption, or a write lost outside the pipeline). The aggregate stays whole
/// (no negative bucket); the caller reports it with the market, and `realty reconcile`
/// repairs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Underflow {
    /// The figure that underflowed: a set of values (`price`, `price_per_sqft`,
    /// `living_area`, `gross_yield`, `listed_day`, `rent`, `rent_per_sqft`,
    /// `rent_by_bedrooms`, `price_by_bedrooms`) or a count (`active`, `pending`, `rentals`).
    pub what: &'static str,
    /// The value it did not hold (the day number for `listed_day`; 0 for counts).
    pub value: i64,
}

impl MarketAggregate {
    /// Applies one contribution. Every removal it could not make in full is returned (the
    /// rest of the contribution is still applied).
    pub fn apply(&mut self, contribution: &Contribution) -> Vec<Underflow> {
        match contribution {
            Contribution::Add(f) => self.add_facts(f, 1),
            Contribution::Remove(f) => self.add_facts(f, -1),
            Contribution::Count {
                day,
                counter,
                cut_bp,
            } => {
                let counts = self.daily.entry(*day).or_default();
                match counter {
                    Counter::NewListing => counts.new_listings += 1,
                    Counter::PriceCut => {
                        counts.price_cuts += 1;
                        counts.cut_bp_sum += cut_bp;
                    }
                    Counter::PriceRise => counts.price_rises += 1,
                    Counter::Delisting => counts.delistings += 1,
                }
                Vec::new()
            }
        }
    }

    fn add_facts(&mut self, f: &ListingFacts, sign: i64) -> Vec<Underflow> {
        let mut underflows = Vec::new();
        let mut count = |what: &'static str, value: i64| {
            if sign < 0 && value < 0 {
                underflows.push(Underflow { what, value: 0 });
            }
        };
        match f.standing {
            Standing::Rental => {
                let rents = self
                    .rents
                    .rental(f.price_minor, f.living_area_sqft, f.beds, sign);
                underflows.extend(
                    rents
                        .into_iter()
                        .map(|(what, value)| Underflow { what, value }),
                );
            }
            Standing::Pending => {
                self.pending += sign;
                count("pending", self.pending);
            }
            Standing::Active => {
                self.active += sign;
                count("active", self.active);
                // Wrapping: a sum of adds and removes is exact whenever the market's true sum
                // fits, whatever it passed through (and a debug build never panics on it).
                self.price_sum_minor = self
                    .price_sum_minor
                    .wrapping_add(sign.wrapping_mul(f.price_minor));
                if f.has_cut {
                    self.active_with_cut += sign;
                }
                let values = [
                    ("price", &mut self.price, Some(f.price_minor)),
                    (
                        "price_per_sqft",
                        &mut self.price_per_sqft,
                        f.price_per_sqft_minor(),
                    ),
                    (
                        "living_area",
                        &mut self.living_area,
                        f.living_area_sqft.map(i64::from),
                    ),
                    ("gross_yield", &mut self.gross_yield, f.gross_yield_bp()),
                ];
                for (what, values, value) in values {
                    if let Some(v) = value {
                        if sign > 0 {
                            values.add(v);
                        } else if let Err(value) = values.remove(v) {
                            underflows.push(Underflow { what, value });
                        }
                    }
                }
                let by_size = self.rents.sale(f.price_minor, f.beds, sign);
                underflows.extend(
                    by_size
                        .into_iter()
                        .map(|(what, value)| Underflow { what, value }),
                );
                if let Some(day) = f.on_market_day {
                    if sign > 0 {
                        self.listed_day_negated.add(-day);
                    } else if let Err(negated) = self.listed_day_negated.remove(-day) {
                        underflows.push(Underflow {
                            what: "listed_day",
                            value: -i64::from(negated),
                        });
                    }
                }
            }
        }
        underflows
    }

    /// Moves `as_of` forward and drops daily counters and closes older than
    /// [`DAILY_COUNTER_DAYS`].
    pub fn advance_to(&mut self, observed_at: DateTime<Utc>) {
        if self.as_of.is_none_or(|t| observed_at > t) {
            self.as_of = Some(observed_at);
        }
        if let Some(as_of) = self.as_of {
            let oldest = as_of.date_naive() - Duration::days(DAILY_COUNTER_DAYS);
            // Days are in order: drop from the front (this runs for every contribution, and
            // usually finds nothing to drop).
            drop_before(&mut self.daily, oldest);
            drop_before(&mut self.closing, oldest);
        }
    }

    /// Records `figures` as the close of `day` (the open day's, as of the newest
    /// contribution, is replaced until the day closes).
    pub fn record_close(&mut self, day: NaiveDate, figures: &MarketFigures) {
        self.closing.insert(day, DayClose::from(figures));
    }

    /// Records the figures a day's snapshot is written with as that day's close, and
    /// returns the day's trends as of then ([`crate::aggregate::history::trends`] over the
    /// closes kept).
    pub fn close_day(&mut self, day: NaiveDate, figures: &MarketFigures) -> Trends {
        self.record_close(day, figures);
        trends(&self.closing, day)
    }
}

/// Drops the entries of days before `oldest`.
fn drop_before<V>(days: &mut BTreeMap<NaiveDate, V>, oldest: NaiveDate) {
    while let Some(day) = days.first_entry() {
        if *day.key() >= oldest {
            break;
        }
        day.remove();
    }
}

#[cfg(test)]
mod tests;
