//! Rows to Arrow batches in a table's schema (with the Parquet field ids the writers match
//! columns by), and back, through the rows' serde derives.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{FieldRef, Schema as ArrowSchema};
use iceberg::spec::Schema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::LakeError;

/// The Arrow schema of an Iceberg schema, as the table's data files carry it.
pub fn arrow_schema(schema: &Schema) -> Result<Arc<ArrowSchema>, LakeError> {
    Ok(Arc::new(iceberg::arrow::schema_to_arrow_schema(schema)?))
}

/// `rows` as one batch in `schema`. Every column of the schema must be a field of the row.
pub fn to_batch<T: Serialize>(schema: &Schema, rows: &[T]) -> Result<RecordBatch, LakeError> {
    let arrow = arrow_schema(schema)?;
    let fields: Vec<FieldRef> = arrow.fields().iter().cloned().collect();
    let batch = serde_arrow::to_record_batch(&fields, &rows)?;
    // serde_arrow builds the batch from the fields; keep the schema's metadata with it.
    RecordBatch::try_new(arrow, batch.columns().to_vec())
        .map_err(|e| LakeError::Invalid(format!("batch: {e}")))
}

/// The rows of a batch read back from a table.
pub fn from_batch<T: DeserializeOwned>(batch: &RecordBatch) -> Result<Vec<T>, LakeError> {
    Ok(serde_arrow::from_record_batch(batch)?)
}
