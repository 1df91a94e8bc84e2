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

use crate::rows::{
    EventRow, ListingRow, ListingsMerge, MarketDayRow, market_daily_rows, market_day_row,
    merge_listings,
};
use aws_config::SdkConfig;
use chrono::{DateTime, Duration, Utc};
use realty_aws::adapters::config::DynamoConfigStore;
use realty_aws::adapters::dynamodb::DynamoMarketStore;
use realty_aws::adapters::retry::RetryPolicy;
use realty_metrics::reader::MarketReader as _;
use realty_model::config::StackResources;
use realty_model::listing::{EventDecodeError, ListingEvent};
use realty_model::markets::ConfigStore;
use realty_model::scope::Scope;

use crate::append::{Appended, append_events};
use crate::commit::SOURCE_THROUGH;
use crate::commit::record_position;
use crate::delivered::{self, MAX_OBJECT_JSON_BYTES, ObjectLines, ObjectRef};
use crate::read;
use crate::replace::{Replaced, replace_rows, replanned};
use crate::schema::{LISTING_EVENTS_TABLE, LISTINGS_TABLE, MARKET_DAILY_TABLE};
use crate::{Lake, LakeConfig, LakeError};

/// `listings` summary key: the `listing_events` snapshot merged through.
pub const MERGED_THROUGH: &str = "realty.listing-events.snapshot";
/// Objects modified this long before the last commit's newest are read again: an object's
/// `LastModified` is when its write began, so a slow write can appear after a newer one
/// was read (Firehose's writes take seconds).
const LOOKBACK: Duration = Duration::minutes(15);
/// Objects in one commit of `listing_events` at most.
pub const MAX_OBJECTS_PER_COMMIT: usize = 1_000;
/// Bytes of JSON lines (decompressed) in one commit at most, whatever they were stored as: a
/// chunk bounded by its GZIP bytes held 10 to 15 times as much in rows when the events
/// compressed well, and an out-of-memory stopped every run at the same chunk. A chunk that
/// reaches it mid-object is committed there and the object read on into the next.
/// docs/lake.md gives the function's peak memory measured at this bound.
pub const MAX_JSON_BYTES_PER_COMMIT: usize = 64 * 1024 * 1024;
/// Commits in one run at most (the oldest objects first; the next run goes on from there):
/// about 20 × 64 MB of events fit the function's 15 minutes.
pub const MAX_COMMITS_PER_RUN: usize = 20;
/// A run starts no object after this long.
pub const RUN_TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(10 * 60);

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
    /// Bytes of JSON lines, decompressed, in one commit (what memory holds as rows).
    pub json_bytes_per_commit: usize,
    /// Commits that add events, at most.
    pub commits_per_run: usize,
    /// No object is started past this (the function's timeout is 15 minutes).
    pub time_budget: std::time::Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            objects_per_commit: MAX_OBJECTS_PER_COMMIT,
            json_bytes_per_commit: MAX_JSON_BYTES_PER_COMMIT,
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
    /// Commits of `listing_events` that added events.
    pub commits: usize,
    pub listings: Replaced,
    pub market_daily: Replaced,
    /// Objects delivered and not read yet: the run stopped at its commits or its time
    /// ([`RunLimits`]); the next run goes on from there.
    pub objects_left: usize,
    /// Objects not read whole, each logged with its key (`lake object`): over the size bound
    /// (none of it read), or damaged (a GZIP stream cut short or corrupt, or decompressing
    /// past its bound: the whole lines before the fault are curated). One of them does not
    /// stop every run; the metric `lake_objects_skipped` and its alarm say so.
    pub objects_skipped: usize,
}

/// What a scheduled run did, as the invocation answers it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScheduledRun {
    pub curated: CurateReport,
    /// The data-quality checks that failed (none: all passed).
    pub failed_checks: Vec<String>,
}

/// The events read for one commit of `listing_events`.
#[derive(Default)]
struct Chunk {
    rows: Vec<EventRow>,
    /// The bytes of the JSON lines they were read from, decompressed.
    json_bytes: usize,
    /// Objects read into it (one cut between two chunks counts in the second).
    objects: usize,
    /// The newest `LastModified` of the objects read into it, whole or in part: the position
    /// its commit records. An object cut between two chunks is read again whole by a run
    /// that starts from there (the lookback reads it; its first part adds nothing).
    newest: Option<DateTime<Utc>>,
}

/// One run under way: its report, and what it started from.
struct Run {
    report: CurateReport,
    now: DateTime<Utc>,
    /// The position the run started from ([`source_through`]).
    through: Option<DateTime<Utc>>,
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
    /// within [`RunLimits`] (memory holds one commit's events and the object being read; a
    /// backlog is worked off over several runs, oldest first); `listings` after each,
    /// `market_daily` at the end.
    pub async fn run(&self, now: DateTime<Utc>) -> Result<CurateReport, LakeError> {
        let events_table = self.lake.table(&LISTING_EVENTS_TABLE).await?;
        let through = source_through(events_table.metadata());
        let (objects, too_large) = delivered::objects_since(
            &self.s3,
            &self.lake.config().bucket,
            through.map(|t| t - LOOKBACK),
        )
        .await?;
        let mut run = Run {
            report: CurateReport {
                objects_read: 0,
                lines_read: 0,
                lines_rejected: 0,
                events_added: 0,
                events_duplicate: 0,
                commits: 0,
                listings: Replaced::Unchanged,
                market_daily: Replaced::Unchanged,
                objects_left: 0,
                objects_skipped: too_large,
            },
            now,
            through,
        };
        // Chunks that add nothing (what the lookback reads again, a batch delivered twice)
        // do not count against the commits: only new events and the time do.
        let started = std::time::Instant::now();
        let mut chunk = Chunk::default();
        for object in &objects {
            if run.report.commits >= self.limits.commits_per_run
                || started.elapsed() > self.limits.time_budget
            {
                break;
            }
            run.report.objects_read += 1;
            self.read_object(object, &mut chunk, &mut run).await?;
            chunk.objects += 1;
            if chunk.objects >= self.limits.objects_per_commit {
                self.flush(&mut chunk, &mut run).await?;
            }
        }
        self.flush(&mut chunk, &mut run).await?;
        let mut report = run.report;
        if report.listings == Replaced::Unchanged {
            // No event was new; `listings` may still be behind `listing_events` (a run that
            // stopped between the two commits).
            report.listings = self.merge_listings(&Appended::default()).await?;
        }
        report.market_daily = self.market_daily(now).await?;
        report.objects_left = objects.len().saturating_sub(report.objects_read);
        Ok(report)
    }

    /// Reads `object`'s events into `chunk`, committing the chunk whenever its JSON reaches
    /// [`RunLimits::json_bytes_per_commit`] (mid-object too: the rest of the object goes
    /// into the next). A damaged object keeps the events of its whole lines before the
    /// fault, and is counted.
    async fn read_object(
        &self,
        object: &ObjectRef,
        chunk: &mut Chunk,
        run: &mut Run,
    ) -> Result<(), LakeError> {
        chunk.newest = chunk.newest.max(Some(object.modified));
        let Some(body) =
            delivered::object_body(&self.s3, &self.lake.config().bucket, &object.key).await?
        else {
            return Ok(());
        };
        let body = body.into_bytes();
        let mut lines = ObjectLines::new(&body, MAX_OBJECT_JSON_BYTES);
        while let Some(line) = lines.next_line() {
            run.report.lines_read += 1;
            chunk.newest = chunk.newest.max(Some(object.modified));
            chunk.json_bytes += line.len();
            match ListingEvent::decode(line) {
                Ok(event) => chunk.rows.push(EventRow::from(&event)),
                // The metrics function accepted it, so a newer build wrote it: stop here
                // (the alarm says so) rather than skip past it for good; the curator of
                // that build takes it up.
                Err(e @ EventDecodeError::UnsupportedSchemaVersion { .. }) => {
                    return Err(LakeError::Invalid(format!(
                        "{}: {e}: this curator is older than the events it reads",
                        object.key
                    )));
                }
                Err(e) => {
                    run.report.lines_rejected += 1;
                    tracing::warn!(key = object.key, reason = e.kind(), "lake line skipped");
                }
            }
            if chunk.json_bytes >= self.limits.json_bytes_per_commit {
                self.flush(chunk, run).await?;
            }
        }
        if let Some(reason) = lines.fault() {
            run.report.objects_skipped += 1;
            tracing::error!(
                key = object.key,
                reason,
                "lake object damaged: the lines before the fault curated, the rest skipped"
            );
        }
        Ok(())
    }

    /// Commits `chunk` when anything was read into it since the last commit, and starts
    /// the next one.
    async fn flush(&self, chunk: &mut Chunk, run: &mut Run) -> Result<(), LakeError> {
        let chunk = std::mem::take(chunk);
        if chunk.newest.is_none() {
            return Ok(());
        }
        self.commit_chunk(chunk, run).await
    }

    /// Appends `chunk`'s events and records its position (without a snapshot when nothing
    /// in it was new), then brings `listings` after them.
    async fn commit_chunk(&self, chunk: Chunk, run: &mut Run) -> Result<(), LakeError> {
        let mut properties = HashMap::from([("realty.run-at".to_owned(), run.now.to_rfc3339())]);
        if let Some(newest) = chunk.newest {
            properties.insert(SOURCE_THROUGH.to_owned(), newest.to_rfc3339());
        }
        let appended = append_events(&self.lake, chunk.rows, properties).await?;
        run.report.commits += usize::from(appended.snapshot_id.is_some());
        if appended.snapshot_id.is_none()
            && let Some(newest) = chunk.newest
            // Not the objects the lookback reads again at every run: no table read for them.
            && run.through.is_none_or(|through| through < newest)
        {
            // Nothing new in it: its objects are read all the same.
            let table = self.lake.table(&LISTING_EVENTS_TABLE).await?;
            if source_through(table.metadata()).is_none_or(|through| through < newest) {
                record_position(&self.lake, &table, newest).await?;
            }
        }
        run.report.events_added += appended.added;
        run.report.events_duplicate += appended.duplicates;
        if let merged @ Replaced::Committed { .. } = self.merge_listings(&appended).await? {
            run.report.listings = merged;
        }
        Ok(())
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
