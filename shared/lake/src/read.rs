//! Reading a table back: whole, or as of a snapshot (time travel).

use futures::TryStreamExt;
use iceberg::expr::Predicate;
use iceberg::table::Table;
use serde::de::DeserializeOwned;

use crate::LakeError;
use crate::batches::from_batch;

/// Every row of `table` as of its current snapshot, or of `snapshot_id`; none for a table
/// without snapshots.
pub async fn rows<T: DeserializeOwned>(
    table: &Table,
    snapshot_id: Option<i64>,
) -> Result<Vec<T>, LakeError> {
    scan(table, snapshot_id, None, None).await
}

/// The rows matching `filter`, with only `columns` (all when `None`).
pub async fn scan<T: DeserializeOwned>(
    table: &Table,
    snapshot_id: Option<i64>,
    columns: Option<&[&str]>,
    filter: Option<Predicate>,
) -> Result<Vec<T>, LakeError> {
    let snapshot = match snapshot_id {
        Some(id) => Some(id),
        None => table.metadata().current_snapshot_id(),
    };
    let Some(snapshot) = snapshot else {
        return Ok(Vec::new());
    };
    let mut builder = table.scan().snapshot_id(snapshot);
    builder = match columns {
        Some(columns) => builder.select(columns.iter().copied()),
        None => builder.select_all(),
    };
    if let Some(filter) = filter {
        builder = builder.with_filter(filter);
    }
    let batches: Vec<_> = builder.build()?.to_arrow().await?.try_collect().await?;
    let mut rows = Vec::new();
    for batch in &batches {
        rows.extend(from_batch::<T>(batch)?);
    }
    Ok(rows)
}
