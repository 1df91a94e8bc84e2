//! One curator run (the curator function, hourly, and `realty curate`): the events Firehose
//! delivered since the last run into `listing_events`, then `listings` and `market_daily`
//! rewritten if they changed.
//!
//! Idempotent under retries and overlapping runs: each table's commit lands whole or not
//! at all; `listing_events` adds only unseen event ids; `listings` records the
//! `listing_events` snapshot it merged through and is recomputed from the whole event
//! table whenever it cannot tell the events since then; `market_daily` is the daily
//! snapshots' content, committed only when it differs.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use aws_config::SdkConfig;
use chrono::{DateTime, Duration, Utc};
use realty_aws::adapters::config::DynamoConfigStore;
use realty_aws::adapters::dynamodb::DynamoMarketStore;
use realty_aws::adapters::retry::RetryPolicy;
use realty_core::api::ports::MarketReader as _;
use realty_core::config::StackResources;
use realty_core::lake::{
    EventRow, ListingRow, ListingsMerge, MarketDayRow, market_daily_rows, market_day_row,
    merge_listings,
};
use realty_core::listing::ListingEvent;
use realty_core::metrics::aggregate::Scope;
use realty_core::poller::ports::ConfigStore;

use crate::append::{Appended, append_events};
use crate::commit::record_position;
use crate::read;
use crate::replace::{Replaced, replace_rows, replanned};
use crate::schema::{LISTING_EVENTS_TABLE, LISTINGS_TABLE, MARKET_DAILY_TABLE};
use crate::{Lake, LakeConfig, LakeError};

/// Where Firehose delivers the events.
pub const EVENTS_PREFIX: &str = "listings/";
/// `listing_events` summary key: the newest `LastModified` of the objects read.
pub const SOURCE_THROUGH: &str = "realty.source.through";
/// `listings` summary key: the `listing_events` snapshot merged through.
pub const MERGED_THROUGH: &str = "realty.listing-events.snapshot";
/// Objects modified this long before the last commit's newest are read again: an object's
/// `LastModified` is when its write began, so a slow write can appear after a newer one
/// was read (Firehose's writes take seconds).
const LOOKBACK: Duration = Duration::minutes(15);
/// Objects in one commit of `listing_events` at most.
pub const MAX_OBJECTS_PER_COMMIT: usize = 1_000;
/// Bytes (as stored: gzipped on AWS) in one commit at most: with about 8 times as much JSON
/// and its rows, a commit's events fit the function's 1,024 MB.
pub const MAX_BYTES_PER_COMMIT: usize = 48 * 1024 * 1024;
/// Commits in one run at most (the oldest objects first; the next run goes on from there):
/// about 20 × 48 MB of events fit the function's 15 minutes.
pub const MAX_COMMITS_PER_RUN: usize = 20;
/// A run starts no chunk after this long.
pub const RUN_TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(10 * 60);
/// An object larger than this is not read (Firehose writes buffers of at most 128 MiB; the
/// template asks for far smaller ones), so one object can never exhaust the function.
pub const MAX_OBJECT_BYTES: i64 = 128 * 1024 * 1024;
/// Most bytes an object decompresses to: Firehose buffers at most 128 MiB of records before
/// it compresses them, so a body that decompresses past twice that is no batch of its, and
/// reading on would fill the function's memory (a GZIP bomb: 128 MB can hold 100 GB).
pub const MAX_OBJECT_JSON_BYTES: u64 = 256 * 1024 * 1024;

/// The curator's AWS, and how much one run takes on.
#[derive(Debug)]
pub struct Curator {
    pub lake: Lake,
    pub s3: aws_sdk_s3::Client,
    pub markets: DynamoMarketStore,
    pub config: DynamoConfigStore,
    pub limits: RunLimits,
}

/// How much of a backlog one run works off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    pub objects_per_commit: usize,
    pub bytes_per_commit: usize,
    /// Commits that add events, at most.
    pub commits_per_run: usize,
    /// No chunk is started past this (the function's timeout is 15 minutes).
    pub time_budget: std::time::Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            objects_per_commit: MAX_OBJECTS_PER_COMMIT,
            bytes_per_commit: MAX_BYTES_PER_COMMIT,
            commits_per_run: MAX_COMMITS_PER_RUN,
            time_budget: RUN_TIME_BUDGET,
        }
    }
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
    /// Objects delivered and not read yet: the run stopped at its commits or its time
    /// ([`RunLimits`]); the next run goes on from there.
    pub objects_left: usize,
    /// Objects that can never be read (over the size bound, a GZIP stream cut or corrupt):
    /// skipped, each logged with its key, so that one of them does not stop every run; the
    /// metric `lake_objects_skipped` and its alarm say so.
    pub objects_skipped: usize,
}

/// What a scheduled run did, as the invocation answers it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScheduledRun {
    pub curated: CurateReport,
    /// The data-quality checks that failed (none: all passed).
    pub failed_checks: Vec<String>,
}

/// `body` as an object's JSON lines: GZIP decompressed (no more than `limit` bytes), plain
/// as it is.
fn decompressed(body: &[u8], limit: u64) -> ObjectBody {
    if !body.starts_with(&[0x1f, 0x8b]) {
        return ObjectBody::Lines(body.to_vec());
    }
    let mut out = Vec::new();
    let read = flate2::read::MultiGzDecoder::new(body)
        .take(limit + 1)
        .read_to_end(&mut out);
    match read {
        Err(e) => ObjectBody::Unreadable(format!("gunzip: {e}")),
        Ok(n) if n as u64 > limit => {
            ObjectBody::Unreadable(format!("decompresses past {limit} bytes"))
        }
        Ok(_) => ObjectBody::Lines(out),
    }
}

/// What an object of events holds.
#[derive(Debug, PartialEq)]
enum ObjectBody {
    /// Its events' JSON lines, decompressed.
    Lines(Vec<u8>),
    /// A body that can never be read (a GZIP stream cut or corrupt, or decompressing past
    /// [`MAX_OBJECT_JSON_BYTES`]), and why.
    Unreadable(String),
}

struct ObjectRef {
    key: String,
    modified: DateTime<Utc>,
    size: i64,
}

/// Whether an object of `size` bytes is read: at most [`MAX_OBJECT_BYTES`] (a Firehose
/// object is at most 128 MB; anything larger is not the stream's, and reading it whole would
/// cost the function its memory).
fn within_object_bound(size: Option<i64>) -> bool {
    size.unwrap_or(0) <= MAX_OBJECT_BYTES
}

/// `objects` (oldest first) in consecutive commits within `limits` (an object larger than
/// a commit's bytes alone).
fn commit_chunks<'a>(objects: &'a [ObjectRef], limits: &RunLimits) -> Vec<&'a [ObjectRef]> {
    let sizes: Vec<usize> = objects
        .iter()
        .map(|o| usize::try_from(o.size).unwrap_or(usize::MAX))
        .collect();
    realty_core::ports::chunk_by_limits(&sizes, limits.objects_per_commit, limits.bytes_per_commit)
        .into_iter()
        .map(|range| &objects[range])
        .collect()
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
            limits: RunLimits::default(),
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
        metrics::counter!("lake_objects_skipped").increment(curated.objects_skipped as u64);
        tracing::info!(?curated, "lake curated");
        let quality = self.check(now).await?;
        self.publish(&quality).await?;
        Ok(ScheduledRun {
            failed_checks: quality.failed().into_iter().map(str::to_owned).collect(),
            curated,
        })
    }

    /// Brings the tables up to date: the objects delivered since the last run, in commits
    /// within [`RunLimits`] (memory holds one commit's events; a backlog is worked off over
    /// several runs, oldest first); `listings` after each, `market_daily` at the end.
    pub async fn run(&self, now: DateTime<Utc>) -> Result<CurateReport, LakeError> {
        let events_table = self.lake.table(&LISTING_EVENTS_TABLE).await?;
        let through = source_through(events_table.metadata());
        let (objects, too_large) = self.objects_since(through.map(|t| t - LOOKBACK)).await?;
        let mut report = CurateReport {
            objects_read: 0,
            lines_read: 0,
            lines_rejected: 0,
            events_added: 0,
            events_duplicate: 0,
            listings: Replaced::Unchanged,
            market_daily: Replaced::Unchanged,
            objects_left: 0,
            objects_skipped: too_large,
        };
        // Chunks that add nothing (what the lookback reads again, a batch delivered twice)
        // do not count against the commits: only new events and the time do.
        let started = std::time::Instant::now();
        let mut commits = 0;
        for chunk in commit_chunks(&objects, &self.limits) {
            if commits >= self.limits.commits_per_run || started.elapsed() > self.limits.time_budget
            {
                break;
            }
            let mut rows = Vec::new();
            for object in chunk {
                report.objects_read += 1;
                let body = match self.body(&object.key).await? {
                    ObjectBody::Lines(body) => body,
                    ObjectBody::Unreadable(reason) => {
                        report.objects_skipped += 1;
                        tracing::error!(
                            key = object.key,
                            reason,
                            "lake object unreadable: skipped"
                        );
                        continue;
                    }
                };
                // Lines read in place: a copy of each doubled the object in memory.
                let lines = body
                    .split(|b| *b == b'\n')
                    .filter(|line| !line.iter().all(u8::is_ascii_whitespace));
                for line in lines {
                    report.lines_read += 1;
                    match ListingEvent::decode(line) {
                        Ok(event) => rows.push(EventRow::from(&event)),
                        // The metrics function accepted it, so a newer build wrote it: stop
                        // here (the alarm says so) rather than skip past it for good; the
                        // curator of that build takes it up.
                        Err(
                            e @ realty_core::listing::EventDecodeError::UnsupportedSchemaVersion {
                                ..
                            },
                        ) => {
                            return Err(LakeError::Invalid(format!(
                                "{}: {e}: this curator is older than the events it reads",
                                object.key
                            )));
                        }
                        Err(e) => {
                            report.lines_rejected += 1;
                            tracing::warn!(
                                key = object.key,
                                reason = e.kind(),
                                "lake line skipped"
                            );
                        }
                    }
                }
            }
            let mut properties = HashMap::from([("realty.run-at".to_owned(), now.to_rfc3339())]);
            let newest = chunk.iter().map(|o| o.modified).max();
            if let Some(newest) = newest {
                properties.insert(SOURCE_THROUGH.to_owned(), newest.to_rfc3339());
            }
            let appended = append_events(&self.lake, rows, properties).await?;
            commits += usize::from(appended.snapshot_id.is_some());
            if appended.snapshot_id.is_none()
                && let Some(newest) = newest
                // Not the objects the lookback reads again at every run: no table read for them.
                && through.is_none_or(|through| through < newest)
            {
                // Nothing new in it: its objects are read all the same.
                let table = self.lake.table(&LISTING_EVENTS_TABLE).await?;
                if source_through(table.metadata()).is_none_or(|through| through < newest) {
                    record_position(&self.lake, &table, newest).await?;
                }
            }
            report.events_added += appended.added;
            report.events_duplicate += appended.duplicates;
            if let merged @ Replaced::Committed { .. } = self.merge_listings(&appended).await? {
                report.listings = merged;
            }
        }
        if report.listings == Replaced::Unchanged {
            // No event was new; `listings` may still be behind `listing_events` (a run that
            // stopped between the two commits).
            report.listings = self.merge_listings(&Appended::default()).await?;
        }
        report.market_daily = self.market_daily(now).await?;
        report.objects_left = objects.len().saturating_sub(report.objects_read);
        Ok(report)
    }

    /// The event objects modified at or after `since` (all without), oldest first, and how
    /// many of those were skipped as too large to read.
    async fn objects_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<(Vec<ObjectRef>, usize), LakeError> {
        let bucket = &self.lake.config().bucket;
        // Firehose names objects `listings/dt=<day its oldest record arrived>/...`: an object
        // written since `since` is under that day or the one before (a buffer across
        // midnight), so the listing starts there rather than at the lake's first day.
        let start_after = since.map(|t| {
            format!(
                "{EVENTS_PREFIX}dt={}",
                (t - Duration::days(1)).format("%Y-%m-%d")
            )
        });
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(EVENTS_PREFIX)
            .set_start_after(start_after)
            .into_paginator()
            .send();
        let (mut objects, mut too_large) = (Vec::new(), 0);
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
                if since.is_some_and(|since| modified < since) {
                    continue;
                }
                if !within_object_bound(object.size) {
                    tracing::error!(key, size = object.size, "lake object too large: skipped");
                    too_large += 1;
                    continue;
                }
                objects.push(ObjectRef {
                    key,
                    modified,
                    size: object.size.unwrap_or(0),
                });
            }
        }
        objects.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.key.cmp(&b.key)));
        Ok((objects, too_large))
    }

    /// The body of one object, decompressed (GZIP as Firehose writes it on AWS, plain
    /// locally). A read that failed is an error (the next run reads it again); a body that
    /// can never be read is [`ObjectBody::Unreadable`].
    async fn body(&self, key: &str) -> Result<ObjectBody, LakeError> {
        let got = match self
            .s3
            .get_object()
            .bucket(&self.lake.config().bucket)
            .key(key)
            .send()
            .await
        {
            Ok(got) => got,
            // Expired by the lake's lifecycle rule between the listing and the read.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                tracing::warn!(key, "lake object gone before it was read: skipped");
                return Ok(ObjectBody::Lines(Vec::new()));
            }
            Err(e) => return Err(s3_error("GetObject", &e)),
        };
        let body = got
            .body
            .collect()
            .await
            .map_err(|e| LakeError::Invalid(format!("reading {key}: {e}")))?
            .into_bytes();
        Ok(decompressed(&body, MAX_OBJECT_JSON_BYTES))
    }

    /// `listings` after this run's events: the previous rows merged with them when
    /// `listings` is exactly one append behind, else recomputed from every event; planned
    /// again from a fresh read after another writer's commit.
    async fn merge_listings(&self, appended: &Appended) -> Result<Replaced, LakeError> {
        replanned(LISTINGS_TABLE.name, || self.merge_listings_once(appended)).await
    }

    async fn merge_listings_once(
        &self,
        appended: &Appended,
    ) -> Result<Option<Replaced>, LakeError> {
        let events = self.lake.table(&LISTING_EVENTS_TABLE).await?;
        let Some(events_snapshot) = events.metadata().current_snapshot() else {
            return Ok(Some(Replaced::Unchanged));
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
            return Ok(Some(Replaced::Unchanged));
        }
        let one_append_behind = appended.snapshot_id == Some(events_snapshot.snapshot_id())
            && events_snapshot.parent_snapshot_id() == merged_through;
        let rows = if one_append_behind {
            let previous: Vec<ListingRow> = read::rows(&listings, None).await?;
            merge_listings(previous, &appended.rows)
        } else {
            // Recomputed one Arrow batch of events at a time: the rows of every listing,
            // not every event of the lake, in memory.
            let mut merge = ListingsMerge::default();
            read::for_each_batch(
                &events,
                Some(events_snapshot.snapshot_id()),
                None,
                None,
                |batch: Vec<EventRow>| merge.add(&batch),
            )
            .await?;
            merge.finish()
        };
        let properties = HashMap::from([(
            MERGED_THROUGH.to_owned(),
            events_snapshot.snapshot_id().to_string(),
        )]);
        replace_rows(&self.lake, &listings, &rows, properties).await
    }

    /// `market_daily`: every daily snapshot of every watched market, and the rows markets
    /// no longer watched had; planned again from a fresh read after another writer's commit.
    async fn market_daily(&self, now: DateTime<Utc>) -> Result<Replaced, LakeError> {
        replanned(MARKET_DAILY_TABLE.name, || self.market_daily_once(now)).await
    }

    async fn market_daily_once(&self, now: DateTime<Utc>) -> Result<Option<Replaced>, LakeError> {
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
        let table = self.lake.table(&MARKET_DAILY_TABLE).await?;
        let previous: Vec<MarketDayRow> = read::rows(&table, None).await?;
        let markets: HashSet<&str> = watched.markets.iter().map(|m| m.market.as_str()).collect();
        let rows = market_daily_rows(&markets, rows, previous);
        let properties = HashMap::from([("realty.run-at".to_owned(), now.to_rfc3339())]);
        replace_rows(&self.lake, &table, &rows, properties).await
    }
}

fn s3_error<E: std::error::Error + 'static>(operation: &str, e: &E) -> LakeError {
    LakeError::Invalid(format!(
        "S3 {operation}: {}",
        aws_sdk_s3::error::DisplayErrorContext(e)
    ))
}

/// How far the curator has read Firehose's objects: [`SOURCE_THROUGH`] of the newest snapshot
/// in the current one's lineage that records it. A commit another writer made on top of ours
/// (Athena's `OPTIMIZE`, a Glue compaction, a `DELETE`) records none; reading only the
/// current snapshot then listed every object ever delivered, oldest first, and a run spent
/// its budget on chunks of duplicates (which commit nothing, so record nothing) and never
/// reached the new ones. `None` (every object) only when no ancestor records it.
///
/// The table's properties record it too (since the commits of 2026-11-28), and move on
/// without a snapshot over chunks that add no event (`record_position`):
/// the later of the two. Before, a position whose snapshots another tool's `VACUUM` expired
/// was lost, and every run read the lake from its first object, all duplicates, and never
/// reached the new ones.
pub fn source_through(metadata: &iceberg::spec::TableMetadata) -> Option<DateTime<Utc>> {
    let parse = |text: &String| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let recorded = metadata.properties().get(SOURCE_THROUGH).and_then(parse);
    let mut snapshot = metadata.current_snapshot();
    let mut in_lineage = None;
    // A lineage has no cycles; the bound only keeps a corrupt one from looping.
    for _ in 0..=metadata.snapshots().len() {
        let Some(current) = snapshot else { break };
        if let Some(through) = current.summary().additional_properties.get(SOURCE_THROUGH) {
            in_lineage = parse(through);
            break;
        }
        snapshot = current
            .parent_snapshot_id()
            .and_then(|id| metadata.snapshot_by_id(id));
    }
    recorded.max(in_lineage)
}

#[cfg(test)]
pub(crate) mod lineage_tests {
    use super::*;
    use iceberg::spec::{
        FormatVersion, MAIN_BRANCH, Operation, Snapshot, SnapshotReference, SnapshotRetention,
        SortOrder, Summary, TableMetadata, TableMetadataBuilder,
    };

    /// `listing_events`' metadata with one snapshot per summary, each the parent of the next.
    pub(crate) fn lineage(summaries: &[&[(&str, &str)]]) -> TableMetadata {
        let table = &LISTING_EVENTS_TABLE;
        let mut metadata = TableMetadataBuilder::new(
            table.schema().expect("schema"),
            table.partition_spec().expect("spec"),
            SortOrder::unsorted_order(),
            "s3://lake/listing_events".to_owned(),
            FormatVersion::V2,
            HashMap::new(),
        )
        .expect("builder")
        .build()
        .expect("metadata")
        .metadata;
        for (i, properties) in summaries.iter().enumerate() {
            let id = i as i64 + 1;
            let snapshot = Snapshot::builder()
                .with_manifest_list(format!("s3://lake/listing_events/metadata/snap-{id}.avro"))
                .with_snapshot_id(id)
                .with_parent_snapshot_id(metadata.current_snapshot_id())
                .with_sequence_number(id)
                .with_summary(Summary {
                    operation: Operation::Append,
                    additional_properties: properties
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                })
                .with_schema_id(metadata.current_schema_id())
                .with_timestamp_ms(Utc::now().timestamp_millis() + id)
                .build();
            metadata = TableMetadataBuilder::new_from_metadata(metadata, None)
                .add_snapshot(snapshot)
                .expect("snapshot")
                .set_ref(
                    MAIN_BRANCH,
                    SnapshotReference::new(id, SnapshotRetention::branch(None, None, None)),
                )
                .expect("ref")
                .build()
                .expect("metadata")
                .metadata;
        }
        metadata
    }

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339(text)
                .expect("time")
                .with_timezone(&Utc),
        )
    }

    #[test]
    fn a_commit_another_writer_made_on_top_keeps_the_position() {
        let ours = [(SOURCE_THROUGH, "2026-11-20T10:00:00+00:00")];
        let newer = [(SOURCE_THROUGH, "2026-11-21T10:00:00+00:00")];
        let compaction = [("added-data-files", "1"), ("deleted-data-files", "40")];
        // Our commits, then two of another writer's (OPTIMIZE, then a DELETE).
        let metadata = lineage(&[&ours, &newer, &compaction, &compaction]);
        assert_eq!(source_through(&metadata), at("2026-11-21T10:00:00+00:00"));
        // The newest of ours counts, not the first.
        assert_eq!(
            source_through(&lineage(&[&ours, &newer])),
            at("2026-11-21T10:00:00+00:00")
        );
    }

    /// Another tool's `VACUUM` expired every snapshot of ours: the table's properties keep
    /// the position; and a position moved on without a snapshot (chunks of events read
    /// before) is later than the lineage's.
    #[test]
    fn the_position_outlives_the_snapshots_that_recorded_it() {
        let compaction = [("added-data-files", "1"), ("deleted-data-files", "40")];
        let with_position = |metadata: TableMetadata, through: &str| {
            TableMetadataBuilder::new_from_metadata(metadata, None)
                .set_properties(HashMap::from([(
                    SOURCE_THROUGH.to_owned(),
                    through.to_owned(),
                )]))
                .expect("properties")
                .build()
                .expect("metadata")
                .metadata
        };
        let expired = with_position(lineage(&[&compaction]), "2026-11-21T10:00:00+00:00");
        assert_eq!(source_through(&expired), at("2026-11-21T10:00:00+00:00"));
        let ours = [(SOURCE_THROUGH, "2026-11-20T10:00:00+00:00")];
        let moved_on = with_position(lineage(&[&ours]), "2026-11-22T10:00:00+00:00");
        assert_eq!(source_through(&moved_on), at("2026-11-22T10:00:00+00:00"));
        // A table of before the properties: its lineage.
        let older = with_position(lineage(&[&ours]), "not a time");
        assert_eq!(source_through(&older), at("2026-11-20T10:00:00+00:00"));
    }

    #[test]
    fn a_table_no_curator_committed_to_is_read_whole() {
        assert_eq!(source_through(&lineage(&[])), None);
        assert_eq!(
            source_through(&lineage(&[&[("added-data-files", "1")]])),
            None
        );
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    fn objects(sizes: &[i64]) -> Vec<ObjectRef> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| ObjectRef {
                key: format!("listings/{i}"),
                modified: DateTime::UNIX_EPOCH,
                size,
            })
            .collect()
    }

    #[test]
    fn objects_at_and_just_past_their_size_bound() {
        assert!(within_object_bound(Some(MAX_OBJECT_BYTES)));
        assert!(!within_object_bound(Some(MAX_OBJECT_BYTES + 1)));
        assert!(within_object_bound(None));
    }

    /// An object decompressing to exactly its bound is read; one byte more (a GZIP bomb, in
    /// small) is unreadable, not read on into the function's memory; a stream cut short
    /// is unreadable; plain text is taken as it is.
    #[test]
    fn objects_decompress_at_and_just_past_their_bound() {
        let gzip = |bytes: &[u8]| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut encoder, bytes).expect("gzip");
            encoder.finish().expect("gzip")
        };
        let lines = b"{}\n{}\n".repeat(512);
        let limit = lines.len() as u64;
        assert_eq!(
            decompressed(&gzip(&lines), limit),
            ObjectBody::Lines(lines.clone())
        );
        let longer = [&lines[..], b"\n"].concat();
        assert!(matches!(
            decompressed(&gzip(&longer), limit),
            ObjectBody::Unreadable(reason) if reason.contains("decompresses past")
        ));
        let whole = gzip(&lines);
        assert!(matches!(
            decompressed(&whole[..whole.len() / 2], limit),
            ObjectBody::Unreadable(reason) if reason.starts_with("gunzip")
        ));
        assert_eq!(
            decompressed(b"{}\n", 1),
            ObjectBody::Lines(b"{}\n".to_vec())
        );
    }

    #[test]
    fn commits_at_and_just_past_their_byte_bound() {
        let limits = RunLimits::default();
        let half = i64::try_from(MAX_BYTES_PER_COMMIT / 2).expect("fits");
        // Two halves fill a commit exactly; one byte more starts the next.
        let at = objects(&[half, half, 1]);
        let sizes: Vec<usize> = commit_chunks(&at, &limits)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [2, 1]);
        let past = objects(&[half, half + 1, 1]);
        let sizes: Vec<usize> = commit_chunks(&past, &limits)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [1, 2]);
        // An object over a commit's bytes on its own is a commit of its own.
        let alone = objects(&[1, half * 2 + 1, 1]);
        let sizes: Vec<usize> = commit_chunks(&alone, &limits)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [1, 1, 1]);
    }

    #[test]
    fn commits_at_and_just_past_their_object_bound() {
        let limits = RunLimits::default();
        let sizes: Vec<usize> = commit_chunks(&objects(&vec![1; MAX_OBJECTS_PER_COMMIT]), &limits)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [MAX_OBJECTS_PER_COMMIT]);
        let sizes: Vec<usize> =
            commit_chunks(&objects(&vec![1; MAX_OBJECTS_PER_COMMIT + 1]), &limits)
                .iter()
                .map(|c| c.len())
                .collect();
        assert_eq!(sizes, [MAX_OBJECTS_PER_COMMIT, 1]);
    }
}
