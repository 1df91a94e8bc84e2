//! The data lake: accepted events as JSON lines through Firehose PutRecordBatch.

use aws_sdk_firehose::Client;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;

use super::retry::{RetryPolicy, send_with_retries};
use crate::metrics::ports::{EventArchive, PortError};

/// PutRecordBatch takes at most 500 records and 4 MiB a call.
const MAX_RECORDS: usize = 500;
const MAX_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct FirehoseArchive {
    pub client: Client,
    pub delivery_stream: String,
    pub retry: RetryPolicy,
}

/// Splits lines into calls within PutRecordBatch's limits, keeping their order.
pub fn chunk_lines(lines: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        if i > start && (i - start == MAX_RECORDS || bytes + line.len() > MAX_BYTES) {
            chunks.push(&lines[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += line.len();
    }
    if start < lines.len() {
        chunks.push(&lines[start..]);
    }
    chunks
}

impl EventArchive for FirehoseArchive {
    async fn put_lines(&self, lines: &[Vec<u8>]) -> Result<(), PortError> {
        for chunk in chunk_lines(lines) {
            let records: Vec<Record> = chunk
                .iter()
                .map(|l| Record::builder().data(Blob::new(l.clone())).build())
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
                    Ok(out) if out.failed_put_count == 0 => (Vec::new(), None),
                    // Responses line up with requests: re-send the entries that carry an error.
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
                        (failed, error)
                    }
                    Err(e) => (
                        records,
                        Some(aws_sdk_firehose::error::DisplayErrorContext(&e).to_string()),
                    ),
                }
            })
            .await;
            if let Err(unsent) = result {
                return Err(PortError::new(
                    "PutRecordBatch",
                    format!(
                        "{} records undelivered after {} attempts: {}",
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
