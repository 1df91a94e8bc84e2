//! Whole-table replace: `listings` and `market_daily` are small and rewritten whole when
//! their content changes, one `overwrite` snapshot per rewrite whose manifest list names
//! only the new files (earlier snapshots keep theirs: time travel reads them).
//!
//! The `iceberg` crate 0.10 has no overwrite action (apache/iceberg-rust#2269): the
//! snapshot is built and committed by `commit`.

use std::collections::HashMap;

use serde::Serialize;

use crate::commit::{SnapshotKind, commit_snapshot};
use crate::write::data_files;
use crate::{Lake, LakeError};
use iceberg::table::Table;

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

/// Makes `rows` the whole content of `table`, as one snapshot with `properties` in its
/// summary, committed onto `table` as the caller read it to plan the rows; `None` when
/// another writer committed since (nothing was committed: plan the rows again from a fresh
/// read, with [`replanned`]). Committed onto the table as read again here instead, rows
/// planned before another run's commit replaced that run's newer ones. `rows` must come in
/// a stable order (the digest of their serialized form decides whether anything changed).
pub async fn replace_rows<T: Serialize>(
    lake: &Lake,
    table: &Table,
    rows: &[T],
    properties: HashMap<String, String>,
) -> Result<Option<Replaced>, LakeError> {
    let digest = content_digest(rows)?;
    let current = table.metadata().current_snapshot();
    if current
        .is_some_and(|s| s.summary().additional_properties.get(CONTENT_DIGEST) == Some(&digest))
    {
        return Ok(Some(Replaced::Unchanged));
    }
    let run = uuid::Uuid::new_v4().to_string();
    let files = data_files(table, rows, &run).await?;
    let mut properties = properties;
    properties.insert(CONTENT_DIGEST.to_owned(), digest);
    let committed = commit_snapshot(
        lake,
        table,
        SnapshotKind::Overwrite,
        files,
        properties,
        &run,
    )
    .await?;
    Ok(committed.map(|snapshot_id| Replaced::Committed {
        snapshot_id,
        rows: rows.len(),
    }))
}

/// Runs `attempt` (which plans the rows from a fresh read and commits them with
/// [`replace_rows`]) until one lands, at most 5 times. The rows are planned
/// again after another writer's commit: re-committing the rows planned before (as a retry
/// inside the commit did) wrote a run's older rows over the newer ones another run (a
/// manual `realty curate` beside the schedule) had just committed.
pub async fn replanned<Fut>(
    table: &str,
    mut attempt: impl FnMut() -> Fut,
) -> Result<Replaced, LakeError>
where
    Fut: std::future::Future<Output = Result<Option<Replaced>, LakeError>>,
{
    for _ in 0..COMMIT_ATTEMPTS {
        if let Some(done) = attempt().await? {
            return Ok(done);
        }
        tracing::info!(table, "commit conflict: re-planning from a fresh read");
    }
    Err(LakeError::Conflict {
        table: table.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A conflict plans the rows again (the attempt runs again), and too many give up.
    #[tokio::test(flavor = "current_thread")]
    async fn a_conflict_plans_the_rows_again() {
        let mut plans = 0;
        let done = replanned("listings", || {
            plans += 1;
            let landed = plans == 2;
            async move {
                Ok(landed.then_some(Replaced::Committed {
                    snapshot_id: 7,
                    rows: 1,
                }))
            }
        })
        .await;
        assert_eq!(
            done.ok(),
            Some(Replaced::Committed {
                snapshot_id: 7,
                rows: 1
            })
        );
        assert_eq!(plans, 2);
        let mut plans = 0;
        let busy = replanned("listings", || {
            plans += 1;
            async { Ok(None) }
        })
        .await;
        assert!(matches!(busy, Err(LakeError::Conflict { .. })));
        assert_eq!(plans, COMMIT_ATTEMPTS);
    }
}
