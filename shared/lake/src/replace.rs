//! Whole-table replace: `listings` and `market_daily` are small and rewritten whole when
//! their content changes, one `overwrite` snapshot per rewrite whose manifest list names
//! only the new files (earlier snapshots keep theirs: time travel reads them).
//!
//! The `iceberg` crate 0.10 has no overwrite action (apache/iceberg-rust#2269): the
//! snapshot is built and committed by `commit`.

use std::collections::HashMap;

use serde::Serialize;

use crate::commit::{SnapshotKind, commit_snapshot};
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
        match commit_snapshot(
            lake,
            &table,
            SnapshotKind::Overwrite,
            files,
            properties,
            &run,
        )
        .await?
        {
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
