//! One curator run (the curator function, hourly, and `realty curate`): the events Firehose
//! delivered since the last run into `listing_events`, then `listings` and `market_daily`
//! rewritten if they changed.
//!
//! Idempotent under retries and overlapping runs: each table's commit lands whole or not
//! at all; `listing_events` adds only unseen event ids; `listings` records the
//! `listing_events` snapshot it merged through and is recomputed from the whole event
//! table whenever it cannot tell the events since then; `market_daily` is the daily
//! snapshots' content, committed only when it differs.

use std::collections::HashMap;
use std::io::Read;

use aws_config::SdkConfig;
use chrono::{DateTime, Duration, Utc};
use realty_aws::adapters::config::DynamoConfigStore;
use realty_aws::adapters::dynamodb::DynamoMarketStore;
use realty_aws::adapters::retry::RetryPolicy;
use realty_core::config::StackResources;
use realty_core::lake::{EventRow, ListingRow, MarketDayRow, market_day_row, merge_listings};
use realty_core::listing::ListingEvent;
use realty_core::metrics::aggregate::Scope;
use realty_core::poller::ports::ConfigStore;

use crate::append::{Appended, append_events};
use crate::read;
use crate::replace::{Replaced, replace_rows};
use crate::schema::{LISTING_EVENTS_TABLE, LISTINGS_TABLE, MARKET_DAILY_TABLE};
use crate::{Lake, LakeConfig, LakeError};

/// Where Firehose delivers the events.
pub const EVENTS_PREFIX: &str = "listings/";
/// `listing_events` summary key: the newest `LastModified` of the objects read.
pub const SOURCE_THROUGH: &str = "realty.source.through";
/// `listings` summary key: the `listing_events` snapshot merged through.
pub const MERGED_THROUGH: &str = "realty.listing-events.snapshot";
/// Objects modified this long before the last run's newest are read again: S3 orders
/// `LastModified` by when a write began, so a slow write can land under an older time.
const LOOKBACK: Duration = Duration::hours(1);
/// Objects read in one run at most (the oldest first; the next run goes on from there).
pub const MAX_OBJECTS_PER_RUN: usize = 5_000;
/// An object larger than this is not read (Firehose writes up to 128 MiB buffers; the
/// function's memory bounds what it holds).
pub const MAX_OBJECT_BYTES: i64 = 256 * 1024 * 1024;

/// The curator's AWS.
#[derive(Debug)]
pub struct Curator {
    pub lake: Lake,
    pub s3: aws_sdk_s3::Client,
    pub markets: DynamoMarketStore,
    pub config: DynamoConfigStore,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CurateReport {
    pub objects_read: usize,
    pub lines_read: usize,
    /// Lines that are not listing events (counted, skipped).
    pub lines_rejected: usize,
    pub events_added: usize,
    pub events_duplicate: usize,
    pub listings: Replaced,
    pub market_daily: Replaced,
}

/// What a scheduled run did, as the invocation answers it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScheduledRun {
    pub curated: CurateReport,
    /// The data-quality checks that failed (none: all passed).
    pub failed_checks: Vec<String>,
}

struct ObjectRef {
    key: String,
    modified: DateTime<Utc>,
}

impl Curator {
    /// The curator of the stack `resources` name, with the clients of `aws` (its endpoint,
    /// when set, is the local AWS that serves the catalog too).
    pub async fn new(aws: &SdkConfig, resources: &StackResources) -> Result<Self, LakeError> {
        let config = LakeConfig {
            bucket: resources.data_lake_bucket.clone(),
            database: resources.lake_database.clone(),
            region: aws
                .region()
                .map_or_else(|| "us-east-1".to_owned(), ToString::to_string),
            endpoint: aws.endpoint_url().map(str::to_owned),
        };
        let dynamodb = aws_sdk_dynamodb::Client::new(aws);
        Ok(Self {
            lake: Lake::connect(config, aws_sdk_glue::Client::new(aws)).await?,
            s3: realty_aws::sdk::s3_client(aws),
            markets: DynamoMarketStore {
                client: dynamodb.clone(),
                table: resources.market_table.clone(),
                retry: RetryPolicy::default(),
            },
            config: DynamoConfigStore {
                client: dynamodb,
                table: resources.config_table.clone(),
            },
        })
    }

    /// One scheduled run, then the data-quality checks; the figures as EMF metrics (the
    /// checks' report goes to the bucket too) and both as the invocation's answer. A failed
    /// check does not fail the run (its alarm says it); a failed run does.
    pub async fn handle(&self, now: DateTime<Utc>) -> Result<ScheduledRun, LakeError> {
        let curated = match self.run(now).await {
            Ok(report) => report,
            Err(e) => {
                metrics::counter!("lake_runs_failed").increment(1);
                tracing::error!(error = %e, "lake curation failed");
                return Err(e);
            }
        };
        metrics::counter!("lake_objects_read").increment(curated.objects_read as u64);
        metrics::counter!("lake_events_added").increment(curated.events_added as u64);
        metrics::counter!("lake_events_duplicate").increment(curated.events_duplicate as u64);
        metrics::counter!("lake_lines_rejected").increment(curated.lines_rejected as u64);
        tracing::info!(?curated, "lake curated");
        let quality = self.check(now).await?;
        self.publish(&quality).await?;
        Ok(ScheduledRun {
            failed_checks: quality.failed().into_iter().map(str::to_owned).collect(),
            curated,
        })
    }

    pub async fn run(&self, now: DateTime<Utc>) -> Result<CurateReport, LakeError> {
        let events_table = self.lake.table(&LISTING_EVENTS_TABLE).await?;
        let through = events_table
            .metadata()
            .current_snapshot()
            .and_then(|s| {
                s.summary()
                    .additional_properties
                    .get(SOURCE_THROUGH)
                    .cloned()
            })
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        let objects = self.objects_since(through.map(|t| t - LOOKBACK)).await?;
        let mut rows = Vec::new();
        let mut lines_read = 0;
        let mut lines_rejected = 0;
        for object in &objects {
            for line in self.lines(&object.key).await? {
                lines_read += 1;
                match ListingEvent::decode(&line) {
                    Ok(event) => rows.push(EventRow::from(&event)),
                    Err(e) => {
                        lines_rejected += 1;
                        tracing::warn!(key = object.key, reason = e.kind(), "lake line skipped");
                    }
                }
            }
        }
        let newest = objects.iter().map(|o| o.modified).max().or(through);
        let mut properties = HashMap::from([("realty.run-at".to_owned(), now.to_rfc3339())]);
        if let Some(newest) = newest {
            properties.insert(SOURCE_THROUGH.to_owned(), newest.to_rfc3339());
        }
        let appended = append_events(&self.lake, rows, properties).await?;
        let listings = self.merge_listings(&appended).await?;
        let market_daily = self.market_daily(now).await?;
        Ok(CurateReport {
            objects_read: objects.len(),
            lines_read,
            lines_rejected,
            events_added: appended.added,
            events_duplicate: appended.duplicates,
            listings,
            market_daily,
        })
    }

    /// The event objects modified at or after `since` (all without), oldest first.
    async fn objects_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<ObjectRef>, LakeError> {
        let bucket = &self.lake.config().bucket;
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(EVENTS_PREFIX)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error("ListObjectsV2", &e))?;
            for object in page.contents.unwrap_or_default() {
                let (Some(key), Some(modified)) = (object.key, object.last_modified) else {
                    continue;
                };
                let Some(modified) =
                    DateTime::from_timestamp(modified.secs(), modified.subsec_nanos())
                else {
                    continue;
                };
                if object.size.unwrap_or(0) > MAX_OBJECT_BYTES {
                    tracing::warn!(key, size = object.size, "lake object too large: skipped");
                    continue;
                }
                if since.is_none_or(|since| modified >= since) {
                    objects.push(ObjectRef { key, modified });
                }
            }
        }
        objects.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.key.cmp(&b.key)));
        objects.truncate(MAX_OBJECTS_PER_RUN);
        Ok(objects)
    }

    /// The lines of one object (GZIP as Firehose writes it on AWS, plain locally).
    async fn lines(&self, key: &str) -> Result<Vec<Vec<u8>>, LakeError> {
        let got = self
            .s3
            .get_object()
            .bucket(&self.lake.config().bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("GetObject", &e))?;
        let body = got
            .body
            .collect()
            .await
            .map_err(|e| LakeError::Invalid(format!("reading {key}: {e}")))?
            .into_bytes();
        let bytes = if body.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .map_err(|e| LakeError::Invalid(format!("gunzip {key}: {e}")))?;
            out
        } else {
            body.to_vec()
        };
        Ok(bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(<[u8]>::to_vec)
            .collect())
    }

    /// `listings` after this run's events: the previous rows merged with them when
    /// `listings` is exactly one append behind, else recomputed from every event.
    async fn merge_listings(&self, appended: &Appended) -> Result<Replaced, LakeError> {
        let events = self.lake.table(&LISTING_EVENTS_TABLE).await?;
        let Some(events_snapshot) = events.metadata().current_snapshot() else {
            return Ok(Replaced::Unchanged);
        };
        let listings = self.lake.table(&LISTINGS_TABLE).await?;
        let merged_through = listings
            .metadata()
            .current_snapshot()
            .and_then(|s| {
                s.summary()
                    .additional_properties
                    .get(MERGED_THROUGH)
                    .cloned()
            })
            .and_then(|id| id.parse::<i64>().ok());
        if merged_through == Some(events_snapshot.snapshot_id()) {
            return Ok(Replaced::Unchanged);
        }
        let one_append_behind = appended.snapshot_id == Some(events_snapshot.snapshot_id())
            && events_snapshot.parent_snapshot_id() == merged_through;
        let rows = if one_append_behind {
            let previous: Vec<ListingRow> = read::rows(&listings, None).await?;
            merge_listings(previous, &appended.rows)
        } else {
            let all: Vec<EventRow> =
                read::rows(&events, Some(events_snapshot.snapshot_id())).await?;
            merge_listings(Vec::new(), &all)
        };
        let properties = HashMap::from([(
            MERGED_THROUGH.to_owned(),
            events_snapshot.snapshot_id().to_string(),
        )]);
        replace_rows(&self.lake, &LISTINGS_TABLE, &rows, properties).await
    }

    /// `market_daily`: every daily snapshot of every watched market.
    async fn market_daily(&self, now: DateTime<Utc>) -> Result<Replaced, LakeError> {
        let month = now.format("%Y-%m").to_string();
        let watched = self
            .config
            .load(&month)
            .await
            .map_err(|e| LakeError::Invalid(format!("watched markets: {e}")))?;
        let mut rows: Vec<MarketDayRow> = Vec::new();
        for market in &watched.markets {
            let scope = Scope::city(&market.market).key();
            let snapshots = self
                .markets
                .snapshots(&scope, "D#", "D#~")
                .await
                .map_err(|e| LakeError::Invalid(format!("snapshots of {scope}: {e}")))?;
            rows.extend(snapshots.iter().filter_map(market_day_row));
        }
        rows.sort_by(|a, b| a.scope.cmp(&b.scope).then(a.day.cmp(&b.day)));
        let properties = HashMap::from([("realty.run-at".to_owned(), now.to_rfc3339())]);
        replace_rows(&self.lake, &MARKET_DAILY_TABLE, &rows, properties).await
    }
}

fn s3_error<E: std::error::Error + 'static>(operation: &str, e: &E) -> LakeError {
    LakeError::Invalid(format!(
        "S3 {operation}: {}",
        aws_sdk_s3::error::DisplayErrorContext(e)
    ))
}
