//! Whole-table replace: `listings` and `market_daily` are small and rewritten whole when
//! their content changes, one `overwrite` snapshot per rewrite whose manifest list names
//! only the new files (earlier snapshots keep theirs: time travel reads them).
//!
//! The `iceberg` crate 0.10 has no overwrite action (apache/iceberg-rust#2269) and keeps
//! its commit builder private, so this builds the snapshot from the crate's public spec
//! writers (manifest, manifest list, table metadata) and commits it as its Glue catalog
//! commits an append: the new metadata file, then Glue `UpdateTable` with the `VersionId`
//! read beforehand, which Glue refuses if anyone committed in between. Replace this with
//! the crate's own overwrite when it has one.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_glue::types::TableInput;
use iceberg::MetadataLocation;
use iceberg::spec::{
    DataFile, FormatVersion, MAIN_BRANCH, ManifestListWriter, ManifestWriterBuilder, Operation,
    Snapshot, SnapshotReference, SnapshotRetention, SnapshotSummaryCollector, Summary,
    TableMetadataBuilder,
};
use iceberg::table::Table;
use serde::Serialize;

use crate::schema::TableDef;
use crate::write::data_files;
use crate::{Lake, LakeError};

const COMMIT_ATTEMPTS: usize = 5;
/// The snapshot summary key of the content's digest: a rewrite with the same content is
/// skipped, so an hourly run over an unchanged market adds no snapshot.
pub const CONTENT_DIGEST: &str = "realty.content-digest";

/// What a replace did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replaced {
    /// A new snapshot holds exactly the rows given.
    Committed { snapshot_id: i64, rows: usize },
    /// The table already held this content.
    Unchanged,
}

/// Makes `rows` the whole content of the table of `def`, as one snapshot with
/// `properties` in its summary. `rows` must come in a stable order (the digest of their
/// serialized form decides whether anything changed).
pub async fn replace_rows<T: Serialize>(
    lake: &Lake,
    def: &TableDef,
    rows: &[T],
    properties: HashMap<String, String>,
) -> Result<Replaced, LakeError> {
    let digest = content_digest(rows)?;
    for _ in 0..COMMIT_ATTEMPTS {
        let table = lake.table(def).await?;
        let current = table.metadata().current_snapshot();
        if current
            .is_some_and(|s| s.summary().additional_properties.get(CONTENT_DIGEST) == Some(&digest))
        {
            return Ok(Replaced::Unchanged);
        }
        let run = uuid::Uuid::new_v4().to_string();
        let files = data_files(&table, rows, &run).await?;
        let mut properties = properties.clone();
        properties.insert(CONTENT_DIGEST.to_owned(), digest.clone());
        match commit_overwrite(lake, &table, files, properties, &run).await? {
            Some(snapshot_id) => {
                return Ok(Replaced::Committed {
                    snapshot_id,
                    rows: rows.len(),
                });
            }
            None => tracing::info!(table = def.name, "commit conflict: re-planning"),
        }
    }
    Err(LakeError::Conflict {
        table: def.name.to_owned(),
    })
}

/// FNV-1a of the rows' JSON (the project's stable hash, `fnv`), in hex: equal for equal
/// content.
fn content_digest<T: Serialize>(rows: &[T]) -> Result<String, LakeError> {
    use std::hash::Hasher;
    let json = serde_json::to_vec(rows).map_err(|e| LakeError::Invalid(e.to_string()))?;
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(&json);
    Ok(format!("{:016x}-{}", hasher.finish(), rows.len()))
}

/// Commits a snapshot of exactly `files`; `None` when another commit got in first.
async fn commit_overwrite(
    lake: &Lake,
    table: &Table,
    files: Vec<DataFile>,
    properties: HashMap<String, String>,
    run: &str,
) -> Result<Option<i64>, LakeError> {
    let metadata = table.metadata();
    if metadata.format_version() != FormatVersion::V2 {
        return Err(LakeError::Invalid(format!(
            "table {} is format {:?}: only v2 tables are rewritten here",
            table.identifier(),
            metadata.format_version()
        )));
    }
    let current_location = table.metadata_location_result()?.to_owned();
    let snapshot_id = new_snapshot_id(table);
    let sequence_number = metadata.next_sequence_number();
    let schema = metadata.current_schema().clone();
    let spec = metadata.default_partition_spec().clone();
    let meta_dir = format!("{}/metadata", metadata.location());

    let mut summary = SnapshotSummaryCollector::default();
    for file in &files {
        summary.add_file(file, schema.clone(), spec.clone());
    }
    let mut summary = summary.build();
    for key in ["records", "data-files", "files-size"] {
        let added = summary
            .get(&format!("added-{key}"))
            .cloned()
            .unwrap_or_else(|| "0".into());
        summary.insert(format!("total-{key}"), added);
    }
    for key in ["delete-files", "position-deletes", "equality-deletes"] {
        summary.insert(format!("total-{key}"), "0".into());
    }
    if let Some(previous) = metadata.current_snapshot() {
        let before = &previous.summary().additional_properties;
        for (total, deleted) in [
            ("total-records", "deleted-records"),
            ("total-data-files", "deleted-data-files"),
        ] {
            if let Some(value) = before.get(total) {
                summary.insert(deleted.to_owned(), value.clone());
            }
        }
    }
    let mut additional_properties = properties;
    additional_properties.extend(summary);

    let manifest = if files.is_empty() {
        None
    } else {
        let output = table
            .file_io()
            .new_output(format!("{meta_dir}/{run}-m0.avro"))?;
        let mut writer =
            ManifestWriterBuilder::new(output, Some(snapshot_id), schema.clone(), (*spec).clone())
                .build_v2_data();
        for file in files {
            writer.add_file(file, sequence_number)?;
        }
        Some(writer.write_manifest_file().await?)
    };
    let list_path = format!("{meta_dir}/snap-{snapshot_id}-0-{run}.avro");
    let mut list = ManifestListWriter::v2(
        table
            .file_io()
            .new_output(list_path.clone())?
            .writer()
            .await?,
        snapshot_id,
        metadata.current_snapshot_id(),
        sequence_number,
    );
    list.add_manifests(manifest.into_iter())?;
    list.close().await?;

    let snapshot = Snapshot::builder()
        .with_manifest_list(list_path)
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(metadata.current_snapshot_id())
        .with_sequence_number(sequence_number)
        .with_summary(Summary {
            operation: Operation::Overwrite,
            additional_properties,
        })
        .with_schema_id(metadata.current_schema_id())
        .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
        .build();
    let next =
        TableMetadataBuilder::new_from_metadata(metadata.clone(), Some(current_location.clone()))
            .add_snapshot(snapshot)?
            .set_ref(
                MAIN_BRANCH,
                SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
            )?
            .build()?
            .metadata;
    let next_location = MetadataLocation::from_str(&current_location)?.with_new_metadata(&next);
    next.write_to(table.file_io(), &next_location).await?;
    let swapped = swap_metadata(
        &lake.glue,
        &lake.config.database,
        table.identifier().name(),
        &current_location,
        &next_location.to_string(),
    )
    .await?;
    Ok(swapped.then_some(snapshot_id))
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
        .map_err(|e| glue_err(aws_sdk_glue::error::DisplayErrorContext(&e).to_string()))?;
    let Some(glue_table) = got.table else {
        return Err(glue_err("no table in GetTable's answer".into()));
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
        .set_version_id(glue_table.version_id.clone())
        .send()
        .await;
    match update {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            Some(service) if service.is_concurrent_modification_exception() => Ok(false),
            _ => Err(glue_err(
                aws_sdk_glue::error::DisplayErrorContext(&e).to_string(),
            )),
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
