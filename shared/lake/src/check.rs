//! The data-quality checks over the lake's tables (`realty_core::lake::run_checks`): run by
//! the curator after each run and by `realty check`; results as EMF metrics (an alarm on
//! any failure) and a JSON report in the bucket (`quality/latest.json`, and one per run
//! under `quality/runs/`).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use realty_core::lake::{CheckResult, LakeRows, Outside, run_checks};
use realty_core::metrics::aggregate::Scope;
use realty_core::poller::ports::ConfigStore;
use serde::Serialize;

use crate::LakeError;
use crate::curate::Curator;
use crate::read;
use crate::schema::{LISTING_EVENTS_TABLE, LISTINGS_TABLE, MARKET_DAILY_TABLE};

/// Where the latest report goes in the lake bucket.
pub const LATEST_REPORT_KEY: &str = "quality/latest.json";
/// A watched market is stale when its last successful poll is older than this many of its
/// poll intervals (and at least [`MIN_FRESHNESS`]).
const FRESHNESS_INTERVALS: i32 = 3;
const MIN_FRESHNESS: Duration = Duration::hours(1);

/// A run of the checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityReport {
    pub checked_at: DateTime<Utc>,
    pub passed: bool,
    /// The snapshots read, by table.
    pub snapshots: BTreeMap<String, Option<i64>>,
    pub rows: BTreeMap<String, usize>,
    pub checks: Vec<CheckResult>,
}

impl QualityReport {
    pub fn failed(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect()
    }
}

impl Curator {
    /// Reads the three tables and what they are compared with, and runs every check.
    pub async fn check(&self, now: DateTime<Utc>) -> Result<QualityReport, LakeError> {
        let mut snapshots = BTreeMap::new();
        let mut rows = BTreeMap::new();
        let mut lake = LakeRows::default();
        for def in [&LISTING_EVENTS_TABLE, &LISTINGS_TABLE, &MARKET_DAILY_TABLE] {
            let table = self.lake.table(def).await?;
            let snapshot = table.metadata().current_snapshot_id();
            snapshots.insert(def.name.to_owned(), snapshot);
            let count = match def.name {
                "listing_events" => {
                    lake.events = read::rows(&table, snapshot).await?;
                    lake.events.len()
                }
                "listings" => {
                    lake.listings = read::rows(&table, snapshot).await?;
                    lake.listings.len()
                }
                _ => {
                    lake.days = read::rows(&table, snapshot).await?;
                    lake.days.len()
                }
            };
            rows.insert(def.name.to_owned(), count);
        }
        let outside = self.outside(now).await?;
        let checks = run_checks(&lake, &outside, now);
        Ok(QualityReport {
            checked_at: now,
            passed: checks.iter().all(|c| c.passed),
            snapshots,
            rows,
            checks,
        })
    }

    /// The watched markets' live figures and last successful polls.
    async fn outside(&self, now: DateTime<Utc>) -> Result<Outside, LakeError> {
        let watched = self
            .config
            .load(&now.format("%Y-%m").to_string())
            .await
            .map_err(|e| LakeError::Invalid(format!("watched markets: {e}")))?;
        let mut outside = Outside::default();
        for market in &watched.markets {
            let scope = Scope::city(&market.market).key();
            if let Some(live) = self
                .markets
                .live(&scope)
                .await
                .map_err(|e| LakeError::Invalid(format!("live item of {scope}: {e}")))?
            {
                let figures = live
                    .figures()
                    .map_err(|e| LakeError::Invalid(format!("live item of {scope}: {e}")))?;
                outside.live.insert(market.market.clone(), figures);
            }
            let last = watched
                .polls
                .values()
                .filter(|p| p.market == market.market)
                .map(|p| p.polled_at)
                .max();
            let allowed = (Duration::minutes(i64::from(market.poll_every_minutes))
                * FRESHNESS_INTERVALS)
                .max(MIN_FRESHNESS);
            outside
                .last_polls
                .insert(market.market.clone(), (last, allowed));
        }
        Ok(outside)
    }

    /// Publishes a report: EMF metrics, and the JSON report in the bucket.
    pub async fn publish(&self, report: &QualityReport) -> Result<(), LakeError> {
        metrics::counter!("lake_checks_run").increment(report.checks.len() as u64);
        metrics::counter!("lake_checks_failed").increment(report.failed().len() as u64);
        let body = serde_json::to_vec_pretty(report)
            .map_err(|e| LakeError::Invalid(format!("quality report: {e}")))?;
        let run_key = format!(
            "quality/runs/{}.json",
            report.checked_at.format("%Y-%m-%dT%H%M%SZ")
        );
        for key in [run_key.as_str(), LATEST_REPORT_KEY] {
            self.s3
                .put_object()
                .bucket(&self.lake.config().bucket)
                .key(key)
                .content_type("application/json")
                .body(body.clone().into())
                .send()
                .await
                .map_err(|e| {
                    LakeError::Invalid(format!(
                        "S3 PutObject {key}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    ))
                })?;
        }
        for failed in report.failed() {
            tracing::warn!(check = failed, "data-quality check failed");
        }
        Ok(())
    }
}
