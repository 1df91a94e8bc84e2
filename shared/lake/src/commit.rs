//! One snapshot committed against the table as it was read, or not at all.
//!
//! Both kinds of commit the lake makes go through here: an append (`listing_events`: the
//! parent's manifests and one new manifest) and an overwrite (`listings`, `market_daily`:
//! only the new manifest). The snapshot is built from the crate's public spec writers
//! (manifest, manifest list, table metadata) and committed as its Glue catalog commits: the
//! new metadata file, then Glue `UpdateTable` with the `VersionId` read beforehand, which
//! Glue refuses if anyone committed in between, and only if the table still points at the
//! metadata the caller planned from.
//!
//! Why not the crate's `Transaction`: its commit re-reads the table and re-applies the
//! action on top of whatever another writer committed meanwhile (`do_commit` rebases
//! before the first attempt, whatever the retry setting), so an append planned as an
//! anti-join against one snapshot lands on another and writes its events twice. Its
//! overwrite action does not exist yet (apache/iceberg-rust#2269) either.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_glue::types::TableInput;
use chrono::{DateTime, Utc};
use iceberg::MetadataLocation;
use iceberg::spec::{
    DataFile, FormatVersion, MAIN_BRANCH, ManifestFile, ManifestListWriter, ManifestWriterBuilder,
    Operation, Snapshot, SnapshotReference, SnapshotRetention, SnapshotSummaryCollector, Summary,
    TableMetadataBuilder,
};
use iceberg::table::Table;

use crate::{Lake, LakeError};

/// `listing_events` summary key (and table property): the newest `LastModified` of the
/// objects the curator read, its position in Firehose's objects.
pub const SOURCE_THROUGH: &str = "realty.source.through";

/// Snapshots older than this are expired at each commit (their files stay: docs/lake.md).
/// The metadata file, written whole at every commit and parsed at every load, held every
/// snapshot ever made: `market_daily` and `listings` add one an hour, so it grew by about
/// 7 MB a year, each hour's copy kept.
pub const SNAPSHOT_RETENTION: chrono::Duration = chrono::Duration::days(7);

/// The snapshots of `metadata` taken before `before_ms` that nothing needs: not the current
/// one, and none a branch or tag names (which another tool may have made; the crate does not
/// expose the references, so they are read from the metadata's JSON form).
fn expired_snapshots(
    metadata: &iceberg::spec::TableMetadata,
    before_ms: i64,
) -> Result<Vec<i64>, LakeError> {
    let old: Vec<i64> = metadata
        .snapshots()
        .filter(|s| {
            s.timestamp_ms() < before_ms && Some(s.snapshot_id()) != metadata.current_snapshot_id()
        })
        .map(|s| s.snapshot_id())
        .collect();
    // The references are read (the whole metadata as JSON) only when something may expire.
    if old.is_empty() {
        return Ok(old);
    }
    let json = serde_json::to_value(metadata)
        .map_err(|e| LakeError::Invalid(format!("table metadata as JSON: {e}")))?;
    let referenced: std::collections::HashSet<i64> = json
        .get("refs")
        .and_then(serde_json::Value::as_object)
        .map(|refs| {
            refs.values()
                .filter_map(|r| r.get("snapshot-id")?.as_i64())
                .collect()
        })
        .unwrap_or_default();
    Ok(old
        .into_iter()
        .filter(|id| !referenced.contains(id))
        .collect())
}

#[cfg(test)]
mod retention_tests {
    use iceberg::spec::TableMetadata;

    use super::*;
    use crate::curate::lineage_tests::lineage;

    /// A table last committed from a clock an hour fast takes the next commit of a right
    /// clock: stamped just after that commit, where one stamped now is refused.
    #[test]
    fn a_commit_after_one_from_a_fast_clock_is_taken() {
        let now = chrono::Utc::now().timestamp_millis();
        let hour = 3_600_000;
        let snapshot = |id: i64, parent: Option<i64>, at: i64| {
            Snapshot::builder()
                .with_manifest_list(format!("s3://lake/listing_events/metadata/snap-{id}.avro"))
                .with_snapshot_id(id)
                .with_parent_snapshot_id(parent)
                .with_sequence_number(id)
                .with_summary(Summary {
                    operation: Operation::Append,
                    additional_properties: HashMap::new(),
                })
                .with_schema_id(0)
                .with_timestamp_ms(at)
                .build()
        };
        let commit = |metadata: TableMetadata, snapshot: Snapshot| {
            let id = snapshot.snapshot_id();
            TableMetadataBuilder::new_from_metadata(metadata, None)
                .add_snapshot(snapshot)?
                .set_ref(
                    MAIN_BRANCH,
                    SnapshotReference::new(id, SnapshotRetention::branch(None, None, None)),
                )?
                .build()
                .map(|b| b.metadata)
        };
        let fast = commit(lineage(&[]), snapshot(1, None, now + hour)).expect("fast commit");
        assert!(fast.last_updated_ms() >= now + hour);
        assert!(
            commit(fast.clone(), snapshot(2, Some(1), now)).is_err(),
            "iceberg refuses a snapshot an hour before the last"
        );
        let at = snapshot_time_ms(now, fast.last_updated_ms());
        assert!(at > now + hour);
        commit(fast, snapshot(2, Some(1), at)).expect("the next commit");
        // A right clock ahead of the last update keeps its own time.
        assert_eq!(snapshot_time_ms(now, now - hour), now);
    }

    #[test]
    fn snapshots_past_the_retention_are_expired_but_the_current_and_named_ones() {
        let metadata = lineage(&[&[], &[], &[]]);
        let ids: Vec<i64> = metadata.snapshots().map(|s| s.snapshot_id()).collect();
        assert_eq!(ids.len(), 3);
        let newest = metadata
            .snapshots()
            .map(|s| s.timestamp_ms())
            .max()
            .expect("snapshots");
        // All taken before the cut: all but the current (3, main) expire.
        let mut expired = expired_snapshots(&metadata, newest + 1).expect("expired");
        expired.sort_unstable();
        assert_eq!(expired, [1, 2]);
        // None taken before the cut: none expire.
        let oldest = metadata
            .snapshots()
            .map(|s| s.timestamp_ms())
            .min()
            .expect("snapshots");
        assert!(
            expired_snapshots(&metadata, oldest)
                .expect("expired")
                .is_empty()
        );
        // A tag on snapshot 1 keeps it.
        let tagged = TableMetadataBuilder::new_from_metadata(metadata, None)
            .set_ref(
                "audit",
                SnapshotReference::new(
                    1,
                    SnapshotRetention::Tag {
                        max_ref_age_ms: None,
                    },
                ),
            )
            .expect("tag")
            .build()
            .expect("metadata")
            .metadata;
        assert_eq!(
            expired_snapshots(&tagged, newest + 1).expect("expired"),
            [2]
        );
    }
}

/// What the new snapshot does to the table's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SnapshotKind {
    /// The table's files and the new ones.
    Append,
    /// Only the new files.
    Overwrite,
}

/// Commits a snapshot of `table` as read, adding `files` (and keeping the table's own for an
/// append); `None` when another commit got in first (the caller re-plans from a fresh read).
pub(crate) async fn commit_snapshot(
    lake: &Lake,
    table: &Table,
    kind: SnapshotKind,
    files: Vec<DataFile>,
    properties: HashMap<String, String>,
    run: &str,
) -> Result<Option<i64>, LakeError> {
    let metadata = table.metadata();
    if metadata.format_version() != FormatVersion::V2 {
        return Err(LakeError::Invalid(format!(
            "table {} is format {:?}: only v2 tables are committed here",
            table.identifier(),
            metadata.format_version()
        )));
    }
    let current_location = table.metadata_location_result()?.to_owned();
    let snapshot = NewSnapshot {
        table,
        kind,
        id: new_snapshot_id(table),
        sequence_number: metadata.next_sequence_number(),
        meta_dir: format!("{}/metadata", metadata.location()),
        run,
    };
    let summary = snapshot.summary(&files);
    // The curator's position, kept in the table's properties too: those outlive the
    // snapshot that records it (expired by another tool's VACUUM, under a foreign commit).
    let position = properties
        .get(SOURCE_THROUGH)
        .map(|through| HashMap::from([(SOURCE_THROUGH.to_owned(), through.clone())]));
    let mut additional_properties = properties;
    additional_properties.extend(summary);

    // What this attempt writes: nothing references it unless the swap lands.
    let mut written: Vec<String> = files.iter().map(|f| f.file_path().to_owned()).collect();
    let manifest = snapshot.write_manifest(files).await?;
    written.extend(manifest.as_ref().map(|m| m.manifest_path.clone()));
    let list_path = snapshot.manifest_list_path();
    written.push(list_path.clone());
    snapshot.write_manifest_list(&list_path, manifest).await?;

    let next = snapshot.next_metadata(
        &current_location,
        list_path,
        additional_properties,
        position,
    )?;
    let swapped = write_and_swap(lake, table, &current_location, next).await?;
    if !swapped {
        discard(table, &written).await;
    }
    Ok(swapped.then_some(snapshot.id))
}

/// A snapshot of `table` under way: its id and sequence number, and where its files go.
struct NewSnapshot<'a> {
    table: &'a Table,
    kind: SnapshotKind,
    id: i64,
    sequence_number: i64,
    /// The table's `metadata` folder.
    meta_dir: String,
    /// Names this attempt's files.
    run: &'a str,
}

impl NewSnapshot<'_> {
    /// The snapshot's summary of `files`, its totals carried on from the parent's for an
    /// append, what an overwrite deleted.
    fn summary(&self, files: &[DataFile]) -> HashMap<String, String> {
        let metadata = self.table.metadata();
        let mut summary = SnapshotSummaryCollector::default();
        for file in files {
            summary.add_file(
                file,
                metadata.current_schema().clone(),
                metadata.default_partition_spec().clone(),
            );
        }
        let mut summary = summary.build();
        let before = metadata
            .current_snapshot()
            .map(|previous| previous.summary().additional_properties.clone())
            .unwrap_or_default();
        let count = |props: &HashMap<String, String>, key: &str| -> u64 {
            props.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        for key in ["records", "data-files", "files-size"] {
            let added = count(&summary, &format!("added-{key}"));
            let total = match self.kind {
                SnapshotKind::Append => count(&before, &format!("total-{key}")) + added,
                SnapshotKind::Overwrite => added,
            };
            summary.insert(format!("total-{key}"), total.to_string());
        }
        // Neither kind writes delete files.
        for key in ["delete-files", "position-deletes", "equality-deletes"] {
            summary.insert(format!("total-{key}"), "0".into());
        }
        if self.kind == SnapshotKind::Overwrite {
            for (total, deleted) in [
                ("total-records", "deleted-records"),
                ("total-data-files", "deleted-data-files"),
            ] {
                if let Some(value) = before.get(total) {
                    summary.insert(deleted.to_owned(), value.clone());
                }
            }
        }
        summary
    }

    /// The manifest of `files` (`None` when there are none).
    async fn write_manifest(
        &self,
        files: Vec<DataFile>,
    ) -> Result<Option<ManifestFile>, LakeError> {
        if files.is_empty() {
            return Ok(None);
        }
        let metadata = self.table.metadata();
        let output = self
            .table
            .file_io()
            .new_output(format!("{}/{}-m0.avro", self.meta_dir, self.run))?;
        let mut writer = ManifestWriterBuilder::new(
            output,
            Some(self.id),
            metadata.current_schema().clone(),
            (**metadata.default_partition_spec()).clone(),
        )
        .build_v2_data();
        for file in files {
            writer.add_file(file, self.sequence_number)?;
        }
        Ok(Some(writer.write_manifest_file().await?))
    }

    fn manifest_list_path(&self) -> String {
        format!("{}/snap-{}-0-{}.avro", self.meta_dir, self.id, self.run)
    }

    /// The manifest list at `list_path`: `manifest`, after the parent's live manifests for
    /// an append.
    async fn write_manifest_list(
        &self,
        list_path: &str,
        manifest: Option<ManifestFile>,
    ) -> Result<(), LakeError> {
        let metadata = self.table.metadata();
        let mut list = ManifestListWriter::v2(
            self.table.file_io().new_output(list_path)?.writer().await?,
            self.id,
            metadata.current_snapshot_id(),
            self.sequence_number,
        );
        let kept = match (self.kind, metadata.current_snapshot()) {
            (SnapshotKind::Append, Some(parent)) => live_manifests(self.table, parent).await?,
            _ => Vec::new(),
        };
        list.add_manifests(kept.into_iter().chain(manifest))?;
        list.close().await?;
        Ok(())
    }

    /// The table's next metadata: the snapshot of `list_path` current on main, the
    /// snapshots past [`SNAPSHOT_RETENTION`] expired, and the curator's `position` among
    /// the table's properties when it moved.
    fn next_metadata(
        &self,
        current_location: &str,
        list_path: String,
        additional_properties: HashMap<String, String>,
        position: Option<HashMap<String, String>>,
    ) -> Result<iceberg::spec::TableMetadata, LakeError> {
        let metadata = self.table.metadata();
        let snapshot = Snapshot::builder()
            .with_manifest_list(list_path)
            .with_snapshot_id(self.id)
            .with_parent_snapshot_id(metadata.current_snapshot_id())
            .with_sequence_number(self.sequence_number)
            .with_summary(Summary {
                operation: match self.kind {
                    SnapshotKind::Append => Operation::Append,
                    SnapshotKind::Overwrite => Operation::Overwrite,
                },
                additional_properties,
            })
            .with_schema_id(metadata.current_schema_id())
            .with_timestamp_ms(snapshot_time_ms(
                chrono::Utc::now().timestamp_millis(),
                metadata.last_updated_ms(),
            ))
            .build();
        let expired = expired_snapshots(
            metadata,
            (chrono::Utc::now() - SNAPSHOT_RETENTION).timestamp_millis(),
        )?;
        let mut builder = TableMetadataBuilder::new_from_metadata(
            metadata.clone(),
            Some(current_location.to_owned()),
        )
        .add_snapshot(snapshot)?
        .set_ref(
            MAIN_BRANCH,
            SnapshotReference::new(self.id, SnapshotRetention::branch(None, None, None)),
        )?
        .remove_snapshots(&expired);
        if let Some(position) = position {
            builder = builder.set_properties(position)?;
        }
        Ok(builder.build()?.metadata)
    }
}

/// Deletes the files of a commit attempt that lost to another writer's: the table never
/// referenced them, so they would stay under `iceberg/` for good (nothing expires there: a
/// lifecycle rule cannot tell them from the live files). A failed delete is logged and
/// left, as are the files of an attempt cut short (docs/lake.md, "Files no table
/// references").
async fn discard(table: &Table, paths: &[String]) {
    for path in paths {
        if let Err(e) = table.file_io().delete(path).await {
            tracing::warn!(path, error = %e, "file of a lost commit left in place");
        }
    }
    tracing::info!(
        table = table.identifier().name(),
        files = paths.len(),
        "lost commit's files deleted"
    );
}

/// Records in `table`'s properties that the curator read every object through `through`,
/// without a snapshot: the chunks that add no event (all read before) move it on too, so
/// that a run does not read them again, and again, at every run after it. `false` when
/// another commit got in first (the next run reads them again: harmless).
pub(crate) async fn record_position(
    lake: &Lake,
    table: &Table,
    through: DateTime<Utc>,
) -> Result<bool, LakeError> {
    let current_location = table.metadata_location_result()?.to_owned();
    let next = TableMetadataBuilder::new_from_metadata(
        table.metadata().clone(),
        Some(current_location.clone()),
    )
    .set_properties(HashMap::from([(
        SOURCE_THROUGH.to_owned(),
        through.to_rfc3339(),
    )]))?
    .build()?
    .metadata;
    write_and_swap(lake, table, &current_location, next).await
}

/// Writes `next` as the table's next metadata file and swaps the catalog's pointer to it
/// from `current_location`; `false` when the pointer had moved on (no commit).
async fn write_and_swap(
    lake: &Lake,
    table: &Table,
    current_location: &str,
    next: iceberg::spec::TableMetadata,
) -> Result<bool, LakeError> {
    // A new file each commit: the current one is what readers of the table read now.
    let next_location = MetadataLocation::from_str(current_location)?
        .with_next_version()
        .with_new_metadata(&next);
    next.write_to(table.file_io(), &next_location).await?;
    let next_location = next_location.to_string();
    let swapped = swap_metadata(
        &lake.glue,
        &lake.config.database,
        table.identifier().name(),
        current_location,
        &next_location,
    )
    .await?;
    if !swapped {
        discard(table, &[next_location]).await;
    }
    Ok(swapped)
}

/// A new snapshot's time: now, or just after the table's last update when that is later. A
/// commit from a clock running fast (`realty curate` on a workstation) leaves the table
/// updated "in the future", and iceberg refuses a snapshot more than a minute older than
/// that: every commit of the curator would fail until real time caught up.
fn snapshot_time_ms(now_ms: i64, last_updated_ms: i64) -> i64 {
    now_ms.max(last_updated_ms.saturating_add(1))
}

/// The parent's manifests that still list files (as the crate's fast append keeps them).
async fn live_manifests(
    table: &Table,
    parent: &iceberg::spec::SnapshotRef,
) -> Result<Vec<ManifestFile>, LakeError> {
    let list = table.manifest_list_reader(parent).load().await?;
    Ok(list
        .entries()
        .iter()
        .filter(|m| m.has_added_files() || m.has_existing_files() || m.has_deleted_files())
        .cloned()
        .collect())
}

/// A positive snapshot id the table does not use yet (as the crate makes them).
fn new_snapshot_id(table: &Table) -> i64 {
    loop {
        let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) >> 1) as i64;
        if !table.metadata().snapshots().any(|s| s.snapshot_id() == id) {
            return id;
        }
    }
}

/// Points the Glue table at `next` if it still points at `current`: `false` when another
/// commit moved it first (a different location, or Glue's refusal of our `VersionId`).
async fn swap_metadata(
    glue: &aws_sdk_glue::Client,
    database: &str,
    table: &str,
    current: &str,
    next: &str,
) -> Result<bool, LakeError> {
    let glue_err = |e: String| LakeError::Glue(format!("{database}.{table}: {e}"));
    let got = glue
        .get_table()
        .database_name(database)
        .name(table)
        .send()
        .await
        .map_err(|e| glue_err(realty_aws::sdk::error_line(&e)))?;
    let Some(glue_table) = got.table else {
        return Err(glue_err("no table in GetTable's answer".into()));
    };
    // Without it the update would be unconditional: no compare-and-swap, no commit.
    let Some(version_id) = glue_table.version_id.clone() else {
        return Err(glue_err(
            "GetTable gave no VersionId to commit against".into(),
        ));
    };
    let mut parameters = glue_table.parameters.clone().unwrap_or_default();
    if parameters.get("metadata_location").map(String::as_str) != Some(current) {
        return Ok(false);
    }
    parameters.insert("previous_metadata_location".into(), current.to_owned());
    parameters.insert("metadata_location".into(), next.to_owned());
    let input = TableInput::builder()
        .name(glue_table.name.clone())
        .set_description(glue_table.description.clone())
        .set_table_type(glue_table.table_type.clone())
        .set_storage_descriptor(glue_table.storage_descriptor.clone())
        .set_partition_keys(glue_table.partition_keys.clone())
        .set_parameters(Some(parameters))
        .build()
        .map_err(|e| glue_err(e.to_string()))?;
    let update = glue
        .update_table()
        .database_name(database)
        .table_input(input)
        .skip_archive(true)
        .version_id(version_id)
        .send()
        .await;
    match update {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            Some(service) if service.is_concurrent_modification_exception() => Ok(false),
            _ => Err(glue_err(realty_aws::sdk::error_line(&e))),
        },
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_glue::Client;
    use aws_sdk_glue::operation::get_table::GetTableOutput;
    use aws_sdk_glue::operation::update_table::{UpdateTableError, UpdateTableOutput};
    use aws_sdk_glue::types::Table as GlueTable;
    use aws_sdk_glue::types::error::ConcurrentModificationException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::swap_metadata;

    fn pointing_at(location: &str) -> GetTableOutput {
        GetTableOutput::builder()
            .table(
                GlueTable::builder()
                    .name("listings")
                    .table_type("EXTERNAL_TABLE")
                    .version_id("7")
                    .parameters("table_type", "ICEBERG")
                    .parameters("metadata_location", location)
                    .build()
                    .expect("table"),
            )
            .build()
    }

    #[tokio::test]
    async fn the_swap_sends_the_version_read_and_keeps_the_other_parameters() {
        let get = mock!(Client::get_table).then_output(|| pointing_at("s3://b/m/1.json"));
        let update = mock!(Client::update_table)
            .match_requests(|r| {
                let params = r
                    .table_input()
                    .and_then(|t| t.parameters())
                    .cloned()
                    .unwrap_or_default();
                r.version_id() == Some("7")
                    && r.skip_archive() == Some(true)
                    && params.get("metadata_location").map(String::as_str)
                        == Some("s3://b/m/2.json")
                    && params.get("previous_metadata_location").map(String::as_str)
                        == Some("s3://b/m/1.json")
                    && params.get("table_type").map(String::as_str) == Some("ICEBERG")
            })
            .then_output(|| UpdateTableOutput::builder().build());
        let glue = mock_client!(aws_sdk_glue, RuleMode::Sequential, [&get, &update]);
        let swapped = swap_metadata(
            &glue,
            "db",
            "listings",
            "s3://b/m/1.json",
            "s3://b/m/2.json",
        )
        .await
        .expect("swap");
        assert!(swapped);
        assert_eq!(update.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_table_moved_by_another_commit_is_a_conflict_not_an_overwrite() {
        // Another writer's metadata is current: nothing is sent.
        let get = mock!(Client::get_table).then_output(|| pointing_at("s3://b/m/9.json"));
        let update =
            mock!(Client::update_table).then_output(|| UpdateTableOutput::builder().build());
        let glue = mock_client!(aws_sdk_glue, RuleMode::Sequential, [&get, &update]);
        let swapped = swap_metadata(
            &glue,
            "db",
            "listings",
            "s3://b/m/1.json",
            "s3://b/m/2.json",
        )
        .await
        .expect("swap");
        assert!(!swapped);
        assert_eq!(update.num_calls(), 0);

        // Moved between our read and our write: Glue refuses the stale VersionId.
        let get = mock!(Client::get_table).then_output(|| pointing_at("s3://b/m/1.json"));
        let refused = mock!(Client::update_table).then_error(|| {
            UpdateTableError::ConcurrentModificationException(
                ConcurrentModificationException::builder()
                    .message("version mismatch")
                    .build(),
            )
        });
        let glue = mock_client!(aws_sdk_glue, RuleMode::Sequential, [&get, &refused]);
        let swapped = swap_metadata(
            &glue,
            "db",
            "listings",
            "s3://b/m/1.json",
            "s3://b/m/2.json",
        )
        .await
        .expect("swap");
        assert!(!swapped);
    }
}
