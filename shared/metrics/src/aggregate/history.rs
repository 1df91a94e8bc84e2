//! Moving averages and trends of a market, from the medians it closed each day with (the
//! metrics function keeps them in the live item and stores each day's trends in its daily
//! snapshot; `docs/metrics.md`, "Moving averages and trends").

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{DAILY_COUNTER_DAYS, DayClose};
use realty_model::format::{MONEY_DECIMALS, PERCENT_DECIMALS, rounded};

/// Moving averages (over the days in the window that have a value), to the cent, and
/// percent changes, to 0.01, of the exact daily closes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trends {
    pub median_price_ma_7d: Option<f64>,
    pub median_price_ma_30d: Option<f64>,
    pub median_price_per_sqft_ma_7d: Option<f64>,
    pub median_price_per_sqft_ma_30d: Option<f64>,
    /// Percent change of the median price from the last snapshot on or before 7 (30) days
    /// ago to this day's (none when this day closed without one).
    pub median_price_change_7d_pct: Option<f64>,
    pub median_price_change_30d_pct: Option<f64>,
    pub median_price_per_sqft_change_7d_pct: Option<f64>,
    pub median_price_per_sqft_change_30d_pct: Option<f64>,
}

/// Trends as of `today` from the days' closes (days after `today`, and days more than
/// [`DAILY_COUNTER_DAYS`] before it, which the live item no longer keeps, are left out).
pub fn trends(closes: &BTreeMap<NaiveDate, DayClose>, today: NaiveDate) -> Trends {
    let oldest = today - Duration::days(DAILY_COUNTER_DAYS);
    // Once a day per market and a page read: over the range, without copying it.
    let days = || closes.range(oldest..=today);
    let average = |window: i64, pick: fn(&DayClose) -> Option<f64>| {
        let first = today - Duration::days(window - 1);
        let (sum, count) = days()
            .filter(|(d, _)| **d >= first)
            .filter_map(|(_, c)| pick(c))
            .fold((0.0, 0u32), |(sum, count), v| (sum + v, count + 1));
        (count > 0).then(|| rounded(sum / f64::from(count), MONEY_DECIMALS))
    };
    let change = |window: i64, pick: fn(&DayClose) -> Option<f64>| {
        // This day's: a day that closed without a median (its listings all went pending)
        // has no change, not an earlier day's shown as its own.
        let latest = closes.get(&today).and_then(pick)?;
        let cutoff = today - Duration::days(window);
        let earlier = days()
            .rev()
            .filter(|(d, _)| **d <= cutoff)
            .find_map(|(_, c)| pick(c))?;
        (earlier > 0.0).then(|| rounded((latest / earlier - 1.0) * 100.0, PERCENT_DECIMALS))
    };
    let price: fn(&DayClose) -> Option<f64> = |c| c.median_price;
    let ppsf: fn(&DayClose) -> Option<f64> = |c| c.median_price_per_sqft;
    Trends {
        median_price_ma_7d: average(7, price),
        median_price_ma_30d: average(30, price),
        median_price_per_sqft_ma_7d: average(7, ppsf),
        median_price_per_sqft_ma_30d: average(30, ppsf),
        median_price_change_7d_pct: change(7, price),
        median_price_change_30d_pct: change(30, price),
        median_price_per_sqft_change_7d_pct: change(7, ppsf),
        median_price_per_sqft_change_30d_pct: change(30, ppsf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: u32, median: f64) -> (NaiveDate, DayClose) {
        let date = NaiveDate::from_ymd_opt(2024, 10, n).expect("date");
        let close = DayClose {
            median_price: Some(median),
            median_price_per_sqft: Some(median / 1000.0),
        };
        (date, close)
    }

    #[test]
    fn moving_averages_and_changes() {
        let daily: BTreeMap<_, _> = (1..=10)
            .map(|n| day(n, 100_000.0 + 1_000.0 * f64::from(n)))
            .collect();
        let t = trends(&daily, NaiveDate::from_ymd_opt(2024, 10, 10).expect("date"));
        // Days 4..=10: 104k..110k, mean 107k.
        assert_eq!(t.median_price_ma_7d, Some(107_000.0));
        // 110k against day 3's 103k: 6.796...%, to 0.01.
        assert_eq!(t.median_price_change_7d_pct, Some(6.8));
        assert_eq!(
            t.median_price_change_30d_pct, None,
            "no snapshot 30 days back"
        );
        assert_eq!(t.median_price_per_sqft_ma_7d, Some(107.0));
    }

    /// A week's move of 0.3 % reads 0.3 %: the closes are exact medians, not 2 % buckets.
    #[test]
    fn small_moves_read_as_they_are() {
        let daily: BTreeMap<_, _> = [day(1, 549_900.0), day(8, 551_550.0)].into();
        let t = trends(&daily, NaiveDate::from_ymd_opt(2024, 10, 8).expect("date"));
        assert_eq!(t.median_price_change_7d_pct, Some(0.3));
        assert_eq!(t.median_price_ma_7d, Some(551_550.0));
    }

    /// A day that closed without a median has no change: before, the newest day with one was
    /// compared in its place (a +10 % beside a median of none).
    #[test]
    fn a_day_without_a_median_has_no_change() {
        let mut daily: BTreeMap<_, _> = [day(1, 300_000.0), day(6, 330_000.0)].into();
        let today = NaiveDate::from_ymd_opt(2024, 10, 11).expect("date");
        daily.insert(
            today,
            DayClose {
                median_price: None,
                median_price_per_sqft: None,
            },
        );
        let t = trends(&daily, today);
        assert_eq!(t.median_price_change_7d_pct, None);
        assert_eq!(t.median_price_per_sqft_change_7d_pct, None);
        // Its averages are still of the days in the window that have one.
        assert_eq!(t.median_price_ma_7d, Some(330_000.0));
    }
}
