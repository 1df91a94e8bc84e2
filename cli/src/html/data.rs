//! The report page's data: per market what the API answers for it (the same views), its
//! alerts, and the alert latency.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use realty_alerts::message::AlertBody;
use realty_api::views::MarketReport;
use realty_metrics::interest::InterestingListing;
use realty_model::stats::nearest_rank;
use serde::{Deserialize, Serialize};

/// Everything the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub title: String,
    pub generated_at: DateTime<Utc>,
    /// Where the figures were read: an endpoint, or `AWS stack NAME`.
    pub source: String,
    pub markets: Vec<MarketSection>,
    /// Alert latency from the poller's PutRecords to the SNS publish, when measured.
    pub latency: Option<LatencySummary>,
    /// How the figures came about, for a demo run.
    pub run: Option<serde_json::Value>,
}

/// One market: its report as `GET /markets/{market}` answers it (`market`, `live`, `trends`,
/// `daily`, ... at the top level), its lists of interest by kind (`price_cut`, `undervalued`,
/// `anomalous`: the `listings` of `GET /markets/{market}/listings?kind=KIND&limit=10`), and
/// its alerts newest first (the pages of `GET /alerts?market=MARKET`).
#[derive(Debug, Clone, Serialize)]
pub struct MarketSection {
    #[serde(flatten)]
    pub report: MarketReport,
    pub listings: BTreeMap<&'static str, Vec<InterestingListing>>,
    pub alerts: Vec<AlertBody>,
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
