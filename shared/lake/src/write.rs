//! Rows to Parquet data files of a table, one writer per partition.

use std::sync::Arc;

use iceberg::arrow::RecordBatchPartitionSplitter;
use iceberg::spec::{DataFile, DataFileFormat};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::LakeError;
use crate::batches::to_batch;

/// Writes `rows` as Parquet files under the table's `data/` (partitioned as the table is),
/// named after `run` (a fresh id per attempt: a retried attempt never overwrites a file
/// another snapshot may reference). Returns the files to commit.
pub async fn data_files<T: Serialize>(
    table: &Table,
    rows: &[T],
    run: &str,
) -> Result<Vec<DataFile>, LakeError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let metadata = table.metadata();
    let schema = metadata.current_schema().clone();
    let batch = to_batch(&schema, rows)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let parquet = ParquetWriterBuilder::new(properties, schema.clone());
    let rolling = RollingFileWriterBuilder::new_with_default_file_size(
        parquet,
        table.file_io().clone(),
        DefaultLocationGenerator::new(metadata)?,
        DefaultFileNameGenerator::new(run.to_owned(), None, DataFileFormat::Parquet),
    );
    let builder = DataFileWriterBuilder::new(rolling);
    let spec = metadata.default_partition_spec().clone();
    let mut files = Vec::new();
    if spec.is_unpartitioned() {
        let mut writer = builder.build(None).await?;
        writer.write(batch).await?;
        files.extend(writer.close().await?);
    } else {
        let splitter =
            RecordBatchPartitionSplitter::try_new_with_computed_values(schema, Arc::clone(&spec))?;
        for (key, part) in splitter.split(&batch)? {
            let mut writer = builder.build(Some(key)).await?;
            writer.write(part).await?;
            files.extend(writer.close().await?);
        }
    }
    Ok(files)
}
