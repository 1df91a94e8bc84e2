//! The data lake: accepted events as JSON lines through Firehose PutRecordBatch.
//!
//! Firehose writes records to S3 back to back, as they are, and bills ingestion per record
//! rounded up to 5 KB. So consecutive lines (each newline-terminated) are packed into
//! records of up to [`MAX_RECORD_BYTES`]: the objects hold the same bytes, lines in the same
//! order, and a batch of 1,000 lines of about 750 bytes is one record in one call instead of
//! 1,000 records in two (about 6 times less billed ingestion).

use aws_sdk_firehose::Client;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;

use super::retry::{RetryPolicy, Sent, send_with_retries};
use realty_metrics::ports::EventArchive;
use realty_model::ports::PortError;

/// PutRecordBatch takes at most 500 records and 4 MiB a call.
const MAX_RECORDS: usize = 500;
const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Lines packed into one record at most (four full ones fit in a call).
pub use realty_metrics::ports::MAX_ARCHIVE_RECORD_BYTES as MAX_RECORD_BYTES;

#[derive(Debug, Clone)]
pub struct FirehoseArchive {
    pub client: Client,
    pub delivery_stream: String,
    pub retry: RetryPolicy,
}

/// Packs consecutive lines into records of at most `max_record_bytes`, keeping their bytes
/// and order: the records laid end to end are the lines laid end to end. A line longer
/// than the limit goes alone in its record.
pub fn pack_lines(lines: &[Vec<u8>], max_record_bytes: usize) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut record: Vec<u8> = Vec::new();
    for line in lines {
        if !record.is_empty() && record.len() + line.len() > max_record_bytes {
            records.push(std::mem::take(&mut record));
        }
        record.extend_from_slice(line);
    }
    if !record.is_empty() {
        records.push(record);
    }
    records
}

/// Splits records into calls within PutRecordBatch's limits, keeping their order.
pub fn chunk_records(records: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let sizes: Vec<usize> = records.iter().map(Vec::len).collect();
    realty_model::ports::chunk_by_limits(&sizes, MAX_RECORDS, MAX_BYTES)
        .into_iter()
        .map(|range| &records[range])
        .collect()
}

impl FirehoseArchive {
    /// [`EventArchive::put_lines`] with records of at most `max_record_bytes` (tests force
    /// several records with a small limit).
    pub(crate) async fn put_packed(
        &self,
        lines: &[Vec<u8>],
        max_record_bytes: usize,
    ) -> Result<(), PortError> {
        let packed = pack_lines(lines, max_record_bytes);
        for chunk in chunk_records(&packed) {
            let records: Vec<Record> = chunk
                .iter()
                .map(|data| Record::builder().data(Blob::new(data.clone())).build())
                .collect::<Result<_, _>>()
                .map_err(|e| PortError::new("PutRecordBatch", e.to_string()))?;
            let result = send_with_retries(self.retry, records, |records| async move {
                match self
                    .client
                    .put_record_batch()
                    .delivery_stream_name(&self.delivery_stream)
                    .set_records(Some(records.clone()))
                    .send()
                    .await
                {
                    // Responses line up with requests; an answer that does not is not trusted
                    // for any of them (the curator drops an event the lake holds twice).
                    Ok(out) if out.request_responses.len() != records.len() => Sent::Answered {
                        error: format!(
                            "PutRecordBatch answered {} responses for {} records",
                            out.request_responses.len(),
                            records.len()
                        ),
                        failed: records,
                    },
                    // Re-send the entries that carry an error, whatever the failed count says.
                    Ok(out) => {
                        let mut error = None;
                        let failed = records
                            .into_iter()
                            .zip(out.request_responses)
                            .filter_map(|(record, response)| {
                                response.error_code.map(|code| {
                                    error = Some(format!(
                                        "{code}: {}",
                                        response.error_message.unwrap_or_default()
                                    ));
                                    record
                                })
                            })
                            .collect();
                        Sent::Answered {
                            failed,
                            error: error.unwrap_or_default(),
                        }
                    }
                    Err(e) => Sent::Failed {
                        unsent: records,
                        error: crate::sdk::error_line(&e),
                    },
                }
            })
            .await;
            if let Err(unsent) = result {
                let lines: usize = unsent
                    .items
                    .iter()
                    .map(|r| r.data().as_ref().iter().filter(|b| **b == b'\n').count())
                    .sum();
                return Err(PortError::new(
                    "PutRecordBatch",
                    format!(
                        "{} records ({lines} lines) undelivered after {} attempts: {}",
                        unsent.items.len(),
                        unsent.attempts,
                        unsent.last_error
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl EventArchive for FirehoseArchive {
    async fn put_lines(&self, lines: &[Vec<u8>]) -> Result<(), PortError> {
        self.put_packed(lines, MAX_RECORD_BYTES).await
    }
}
