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

/// The rows matching `filter`, with only `columns` (all when `None`), handed to `each` one
/// Arrow batch at a time: a reader that folds them holds one batch, not the table.
pub async fn for_each_batch<T: DeserializeOwned>(
    table: &Table,
    snapshot_id: Option<i64>,
    columns: Option<&[&str]>,
    filter: Option<Predicate>,
    mut each: impl FnMut(Vec<T>),
) -> Result<(), LakeError> {
    let snapshot = match snapshot_id {
        Some(id) => Some(id),
        None => table.metadata().current_snapshot_id(),
    };
    let Some(snapshot) = snapshot else {
        return Ok(());
    };
    let mut builder = table.scan().snapshot_id(snapshot);
    builder = match columns {
        Some(columns) => builder.select(columns.iter().copied()),
        None => builder.select_all(),
    };
    if let Some(filter) = filter {
        builder = builder.with_filter(filter);
    }
    let mut batches = builder.build()?.to_arrow().await?;
    while let Some(batch) = batches.try_next().await? {
        each(from_batch::<T>(&batch)?);
    }
    Ok(())
}

/// The rows matching `filter`, with only `columns` (all when `None`).
pub async fn scan<T: DeserializeOwned>(
    table: &Table,
    snapshot_id: Option<i64>,
    columns: Option<&[&str]>,
    filter: Option<Predicate>,
) -> Result<Vec<T>, LakeError> {
    let mut rows = Vec::new();
    for_each_batch(table, snapshot_id, columns, filter, |batch: Vec<T>| {
        rows.extend(batch);
    })
    .await?;
    Ok(rows)
}
