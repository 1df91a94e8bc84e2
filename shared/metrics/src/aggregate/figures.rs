//! What people read about a market ([`MarketFigures`]), computed from its aggregate, with the
//! bounds of its anomalous prices per sqft.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{DailyCounts, MarketAggregate, day_number};
use crate::aggregate::rents::{BedroomRents, YieldBasis};
use realty_model::format::{FRACTION_DECIMALS, MONEY_DECIMALS, PERCENT_DECIMALS, major, rounded};

/// |robust z| above which a listing's price per sqft is an anomaly for its market
/// (Iglewicz and Hoaglin's 3.5).
pub const ANOMALY_ROBUST_Z: f64 = 3.5;

/// Listings with a known price per sqft a market needs before anomalies are flagged.
pub const MIN_LISTINGS_FOR_ANOMALIES: u64 = 10;

/// What people read about a market. Amounts are in major units (dollars) to the cent, medians
/// exact (each is one of the listings' own values), percentages to 0.01 and shares to 0.01 %
/// ([`realty_model::format`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarketFigures {
    pub as_of: Option<DateTime<Utc>>,
    pub active_listings: i64,
    pub pending_listings: i64,
    pub total_listings: i64,
    pub pending_ratio: Option<f64>,
    pub median_price: Option<f64>,
    pub average_price: Option<f64>,
    pub median_price_per_sqft: Option<f64>,
    /// Active listings with a price per sqft (a living area): what that median is of, for
    /// the judges of undervalued listings ([`Self::median_price_per_sqft_to_judge`]). Not
    /// a published figure (the API, snapshots and the lake's `market_daily` leave it out).
    #[serde(skip)]
    pub price_per_sqft_listings: i64,
    pub median_living_area_sqft: Option<f64>,
    pub median_days_on_market: Option<i64>,
    pub new_listings_today: i64,
    pub price_cuts_today: i64,
    pub price_rises_today: i64,
    pub delistings_today: i64,
    pub new_listings_7d: i64,
    pub price_cuts_7d: i64,
    pub price_rises_7d: i64,
    pub delistings_7d: i64,
    pub share_active_with_cut: Option<f64>,
    pub average_cut_pct_7d: Option<f64>,
    /// Active rentals.
    #[serde(default)]
    pub active_rentals: i64,
    /// Median monthly rent of active rentals.
    #[serde(default)]
    pub median_rent: Option<f64>,
    #[serde(default)]
    pub median_rent_per_sqft: Option<f64>,
    /// Rents and sale prices by bedrooms, and the yields they give.
    #[serde(default)]
    pub rents_by_bedrooms: Vec<BedroomRents>,
    /// Yearly rent / price for the market's homes for sale (docs/metrics.md).
    #[serde(default, alias = "median_gross_yield")]
    pub gross_yield: Option<f64>,
    /// 1 / `gross_yield`.
    pub price_to_rent: Option<f64>,
    #[serde(default)]
    pub yield_basis: Option<YieldBasis>,
    pub price_per_sqft_mad: Option<f64>,
    /// A listing whose price per sqft is below this (or above the next) is an anomaly.
    pub price_per_sqft_anomaly_below: Option<f64>,
    pub price_per_sqft_anomaly_above: Option<f64>,
    /// Active listings outside those bounds.
    pub anomalous_listings: i64,
    /// The medians are within 1 %, not exact: a market too large for its item to keep
    /// every value (docs/metrics.md, "Exact medians"), or one written before 2026-11-29
    /// that `realty reconcile` has not recomputed yet. Absent when they are exact.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approximate_medians: bool,
}

impl MarketFigures {
    /// The median price per sqft a listing is judged undervalued against: `None` when fewer
    /// than [`MIN_LISTINGS_FOR_ANOMALIES`] active listings have a price per sqft, where one
    /// listing moves the median and three manufactured homes would make one of them a
    /// bargain (the judges then take the city's median across types).
    pub fn median_price_per_sqft_to_judge(&self) -> Option<f64> {
        let enough = u64::try_from(self.price_per_sqft_listings)
            .is_ok_and(|n| n >= MIN_LISTINGS_FOR_ANOMALIES);
        self.median_price_per_sqft
            .filter(|m| enough && m.is_finite() && *m > 0.0)
    }
}

impl MarketAggregate {
    /// The figures of this aggregate on the day of `as_of`.
    pub fn figures(&self) -> MarketFigures {
        let today = self.as_of.map(|t| t.date_naive());
        let counts_since = |days: i64| {
            let mut sum = DailyCounts::default();
            if let Some(today) = today {
                let first = today - Duration::days(days - 1);
                for (_, c) in self.daily.range(first..=today) {
                    sum.add(c);
                }
            }
            sum
        };
        let day = counts_since(1);
        let week = counts_since(7);
        let ratio = |a: i64, b: i64| (b > 0).then(|| a as f64 / b as f64);
        let share = |a: i64, b: i64| ratio(a, b).map(|r| rounded(r, FRACTION_DECIMALS));
        let money = |minor: f64| rounded(minor / 100.0, MONEY_DECIMALS);
        let estimate_yield = self.gross_yield.median().map(|bp| bp as f64 / 10_000.0);
        let rents = self.rents.figures(estimate_yield);
        let bounds = self.anomaly_bounds();
        MarketFigures {
            as_of: self.as_of,
            active_listings: self.active,
            pending_listings: self.pending,
            total_listings: self.active + self.pending,
            pending_ratio: share(self.pending, self.active),
            median_price: self.price.median().map(major),
            average_price: ratio(self.price_sum_minor, self.active).map(money),
            median_price_per_sqft: self.price_per_sqft.median().map(major),
            price_per_sqft_listings: i64::try_from(self.price_per_sqft.count()).unwrap_or(i64::MAX),
            median_living_area_sqft: self.living_area.median().map(|sqft| sqft as f64),
            median_days_on_market: match (today, self.listed_day_negated.quantile(0.5)) {
                // A listing whose on-market date is still ahead (a coming-soon date kept
                // when it went on sale early) has been on the market 0 days, as a listing's
                // own count says: the median of those counts is this one, clamped.
                (Some(t), Some(neg_day)) => Some(i64::from(day_number(t) + neg_day).max(0)),
                _ => None,
            },
            new_listings_today: day.new_listings,
            price_cuts_today: day.price_cuts,
            price_rises_today: day.price_rises,
            delistings_today: day.delistings,
            new_listings_7d: week.new_listings,
            price_cuts_7d: week.price_cuts,
            price_rises_7d: week.price_rises,
            delistings_7d: week.delistings,
            share_active_with_cut: share(self.active_with_cut, self.active),
            average_cut_pct_7d: ratio(week.cut_bp_sum, week.price_cuts)
                .map(|bp| rounded(bp / 100.0, PERCENT_DECIMALS)),
            active_rentals: rents.active_rentals,
            median_rent: rents.median_rent,
            median_rent_per_sqft: rents.median_rent_per_sqft,
            rents_by_bedrooms: rents.rents_by_bedrooms,
            gross_yield: rents.gross_yield,
            price_to_rent: rents.price_to_rent,
            yield_basis: rents.yield_basis,
            price_per_sqft_mad: self.price_per_sqft.median_absolute_deviation().map(major),
            price_per_sqft_anomaly_below: bounds.map(|(low, _)| money(low)),
            price_per_sqft_anomaly_above: bounds.map(|(_, high)| money(high)),
            anomalous_listings: bounds.map_or(0, |(low, high)| {
                i64::try_from(self.price_per_sqft.count_outside(low, high)).unwrap_or(i64::MAX)
            }),
            approximate_medians: self.is_bucketed(),
        }
    }

    /// The prices per sqft (minor units) outside which a listing is an anomaly: a robust
    /// z-score 0.6745 (ln x - ln median) / MAD(ln) beyond [`ANOMALY_ROBUST_Z`], on a log scale
    /// because prices are skewed (a linear one gave lower bounds below zero). `None` for
    /// markets too small or too uniform to judge.
    pub fn anomaly_bounds(&self) -> Option<(f64, f64)> {
        if self.price_per_sqft.count() < MIN_LISTINGS_FOR_ANOMALIES {
            return None;
        }
        let median = self.price_per_sqft.median()? as f64;
        let mad = self.price_per_sqft.log_median_absolute_deviation()?;
        let reach = ANOMALY_ROBUST_Z * mad / 0.6745;
        // Whole minor units: the bounds people read are the ones listings are counted against.
        (mad > 0.0).then(|| {
            (
                (median * (-reach).exp()).round(),
                (median * reach.exp()).round(),
            )
        })
    }
}
