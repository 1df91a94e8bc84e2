//! Moving averages and trends of a market, from its daily snapshots (one Query).

use chrono::{Duration, NaiveDate};
use serde::Serialize;

use super::aggregate::MarketFigures;

/// Moving averages (over the daily snapshots in the window) and percent changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trends {
    pub median_price_ma_7d: Option<f64>,
    pub median_price_ma_30d: Option<f64>,
    pub median_price_per_sqft_ma_7d: Option<f64>,
    pub median_price_per_sqft_ma_30d: Option<f64>,
    /// Percent change of the median price from the last snapshot on or before 7 (30) days
    /// ago to the latest one.
    pub median_price_change_7d_pct: Option<f64>,
    pub median_price_change_30d_pct: Option<f64>,
    pub median_price_per_sqft_change_7d_pct: Option<f64>,
    pub median_price_per_sqft_change_30d_pct: Option<f64>,
}

/// Trends as of `today` from daily snapshots (any order).
pub fn trends(daily: &[(NaiveDate, MarketFigures)], today: NaiveDate) -> Trends {
    let mut days: Vec<&(NaiveDate, MarketFigures)> =
        daily.iter().filter(|(d, _)| *d <= today).collect();
    days.sort_by_key(|(d, _)| *d);
    let average = |window: i64, pick: fn(&MarketFigures) -> Option<f64>| {
        let first = today - Duration::days(window - 1);
        let values: Vec<f64> = days
            .iter()
            .filter(|(d, _)| *d >= first)
            .filter_map(|(_, f)| pick(f))
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let change = |window: i64, pick: fn(&MarketFigures) -> Option<f64>| {
        let latest = days.iter().rev().find_map(|(_, f)| pick(f))?;
        let cutoff = today - Duration::days(window);
        let earlier = days
            .iter()
            .rev()
            .filter(|(d, _)| *d <= cutoff)
            .find_map(|(_, f)| pick(f))?;
        (earlier > 0.0).then(|| (latest / earlier - 1.0) * 100.0)
    };
    let price: fn(&MarketFigures) -> Option<f64> = |f| f.median_price;
    let ppsf: fn(&MarketFigures) -> Option<f64> = |f| f.median_price_per_sqft;
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

    fn day(n: u32, median: f64) -> (NaiveDate, MarketFigures) {
        let date = NaiveDate::from_ymd_opt(2024, 10, n).expect("date");
        let figures = MarketFigures {
            median_price: Some(median),
            median_price_per_sqft: Some(median / 1000.0),
            ..MarketFigures::default()
        };
        (date, figures)
    }

    #[test]
    fn moving_averages_and_changes() {
        let daily: Vec<_> = (1..=10)
            .map(|n| day(n, 100_000.0 + 1_000.0 * f64::from(n)))
            .collect();
        let t = trends(&daily, NaiveDate::from_ymd_opt(2024, 10, 10).expect("date"));
        // Days 4..=10: 104k..110k, mean 107k.
        assert_eq!(t.median_price_ma_7d, Some(107_000.0));
        // 110k against day 3's 103k.
        let change = t.median_price_change_7d_pct.expect("change");
        assert!((change - (110.0 / 103.0 - 1.0) * 100.0).abs() < 1e-9);
        assert_eq!(
            t.median_price_change_30d_pct, None,
            "no snapshot 30 days back"
        );
        assert!((t.median_price_per_sqft_ma_7d.expect("ma") - 107.0).abs() < 1e-9);
    }
}
