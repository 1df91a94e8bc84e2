//! The data-quality checks over the lake's tables (`crate::rows::run_checks`): run by
//! the curator after each run and by `realty check`; results as EMF metrics (an alarm on
//! any failure) and a JSON report in the bucket (`quality/latest.json`, and one per run
//! under `quality/runs/`).

use std::collections::BTreeMap;

use crate::rows::{CheckResult, EventChecks, ListingRow, MarketDayRow, Outside, run_checks_with};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use iceberg::expr::Reference;
use iceberg::spec::Datum;
use iceberg::table::Table;
use realty_model::markets::ConfigStore;
use realty_model::scope::Scope;
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
        let events = self.lake.table(&LISTING_EVENTS_TABLE).await?;
        let events_through = crate::curate::source_through(events.metadata());
        let snapshot = events.metadata().current_snapshot_id();
        snapshots.insert(LISTING_EVENTS_TABLE.name.to_owned(), snapshot);
        let event_checks = event_checks(&events, snapshot).await?;
        rows.insert(LISTING_EVENTS_TABLE.name.to_owned(), event_checks.events);
        // One row per listing and per market and day: read whole.
        let listings = self.lake.table(&LISTINGS_TABLE).await?;
        let snapshot = listings.metadata().current_snapshot_id();
        snapshots.insert(LISTINGS_TABLE.name.to_owned(), snapshot);
        let listings: Vec<ListingRow> = read::rows(&listings, snapshot).await?;
        rows.insert(LISTINGS_TABLE.name.to_owned(), listings.len());
        let days = self.lake.table(&MARKET_DAILY_TABLE).await?;
        let snapshot = days.metadata().current_snapshot_id();
        snapshots.insert(MARKET_DAILY_TABLE.name.to_owned(), snapshot);
        let days: Vec<MarketDayRow> = read::rows(&days, snapshot).await?;
        rows.insert(MARKET_DAILY_TABLE.name.to_owned(), days.len());
        let outside = Outside {
            events_through,
            ..self.outside(now).await?
        };
        let checks = run_checks_with(event_checks, &listings, &days, &outside, now);
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
        let intervals = watched.poll_intervals(now);
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
                .map(|p| p.last_good_read())
                .max();
            // The interval its polls really keep: a source's budget stretches it (a market
            // polled every ~4 h by a budget of 10,000 requests failed an allowance of 3 of
            // its nominal 15 minutes at every run).
            let minutes = intervals
                .iter()
                .filter(|(_, m, _)| m.market == market.market)
                .map(|(_, _, minutes)| *minutes)
                .fold(f64::from(market.poll_every_minutes), f64::max);
            let allowed = (Duration::seconds((minutes * 60.0) as i64) * FRESHNESS_INTERVALS)
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
                        realty_aws::sdk::error_line(&e)
                    ))
                })?;
        }
        for failed in report.failed() {
            tracing::warn!(check = failed, "data-quality check failed");
        }
        Ok(())
    }
}

/// The event checks over `table` as of `snapshot`, fed one observed day at a time (its day
/// partitions, oldest first): a run holds a day of events and a standing per listing, where
/// reading the table whole outgrew the function's memory as the lake grew.
async fn event_checks(table: &Table, snapshot: Option<i64>) -> Result<EventChecks, LakeError> {
    #[derive(serde::Deserialize)]
    struct Observed {
        #[serde(with = "chrono::serde::ts_microseconds")]
        observed_at: DateTime<Utc>,
    }
    let mut checks = EventChecks::default();
    // The days the table spans, from its one timestamp column.
    let mut span: Option<(NaiveDate, NaiveDate)> = None;
    read::for_each_batch(
        table,
        snapshot,
        Some(&["observed_at"]),
        None,
        |batch: Vec<Observed>| {
            for row in batch {
                let day = row.observed_at.date_naive();
                span =
                    Some(span.map_or((day, day), |(first, last)| (first.min(day), last.max(day))));
            }
        },
    )
    .await?;
    let Some((first, last)) = span else {
        return Ok(checks);
    };
    let column = Reference::new("observed_at");
    for day in first.iter_days().take_while(|d| *d <= last) {
        let start = day.and_time(NaiveTime::MIN).and_utc();
        let end = start + Duration::days(1);
        let filter = column
            .clone()
            .greater_than_or_equal_to(Datum::timestamp_micros(start.timestamp_micros()))
            .and(
                column
                    .clone()
                    .less_than(Datum::timestamp_micros(end.timestamp_micros())),
            );
        let mut events: Vec<crate::rows::EventRow> =
            read::scan(table, snapshot, None, Some(filter)).await?;
        // The filter prunes other days' files; what a reader passes anyway is not this day's.
        events.retain(|e| e.observed_at.date_naive() == day);
        checks.add_day(&events);
    }
    Ok(checks)
}
