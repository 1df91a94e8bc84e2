//! The report page's data: what it shows of each market, and the alert latency.

use chrono::{DateTime, NaiveDate, Utc};
use realty_core::alerts::message::AlertBody;
use realty_core::metrics::aggregate::MarketFigures;
use realty_core::metrics::history::Trends;
use realty_core::stats::nearest_rank;
use serde::{Deserialize, Serialize};

/// Everything the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub title: String,
    pub generated_at: DateTime<Utc>,
    /// Where the figures were read: an endpoint, or `AWS stack NAME`.
    pub source: String,
    pub markets: Vec<MarketReport>,
    /// Alert latency from the poller's PutRecords to the SNS publish, when measured.
    pub latency: Option<LatencySummary>,
    /// How the figures came about, for a demo run.
    pub run: Option<serde_json::Value>,
}

/// One market (its city-wide, all-types scope).
#[derive(Debug, Clone, Serialize)]
pub struct MarketReport {
    pub market: String,
    pub scope_key: String,
    pub live: MarketFigures,
    pub trends: Trends,
    pub daily: Vec<DailyPoint>,
    /// Price per sqft of the active listings: (bucket value in dollars, listings).
    pub price_per_sqft_histogram: Vec<(f64, u64)>,
    pub alerts: Vec<AlertBody>,
}

/// A market on one day: its daily snapshot, with the moving averages as of that day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DailyPoint {
    pub date: NaiveDate,
    pub median_price: Option<f64>,
    pub median_price_ma_7d: Option<f64>,
    pub median_price_ma_30d: Option<f64>,
    pub active_listings: i64,
    pub pending_listings: i64,
    pub new_listings: i64,
    pub price_cuts: i64,
    pub delistings: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencySummary {
    pub alerts: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// Nearest-rank percentiles of the finite `samples_ms`; `None` without any.
    pub fn of(samples_ms: &[f64]) -> Option<Self> {
        let rank = |q: f64| nearest_rank(samples_ms, q);
        Some(Self {
            p50_ms: rank(0.5)?,
            p99_ms: rank(0.99)?,
            max_ms: rank(1.0)?,
            alerts: samples_ms.iter().filter(|v| v.is_finite()).count(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        let l = LatencySummary::of(&samples).unwrap_or_else(|| unreachable!());
        assert_eq!(
            (l.p50_ms, l.p99_ms, l.max_ms, l.alerts),
            (100.0, 198.0, 200.0, 200)
        );
        assert!(LatencySummary::of(&[]).is_none());
    }
}
