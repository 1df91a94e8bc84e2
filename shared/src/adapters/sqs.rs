//! The error sink: poison records, with their reason, as SQS messages.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::retry::{RetryPolicy, send_with_retries};
use crate::metrics::ports::{PoisonRecord, PoisonSink, PortError};

/// SendMessageBatch takes at most 10 messages a call (and 256 KiB; a poison message is
/// at most a few KB, see `POISON_PREFIX_BYTES`).
const MAX_MESSAGES: usize = 10;

#[derive(Debug, Clone)]
pub struct SqsPoisonSink {
    pub client: Client,
    pub queue_url: String,
    pub retry: RetryPolicy,
}

impl PoisonSink for SqsPoisonSink {
    async fn send(&self, records: &[PoisonRecord]) -> Result<(), PortError> {
        for chunk in records.chunks(MAX_MESSAGES) {
            let entries: Vec<SendMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let body = serde_json::to_string(r)
                        .map_err(|e| PortError::new("SendMessageBatch", e.to_string()))?;
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| PortError::new("SendMessageBatch", e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            let result = send_with_retries(self.retry, entries, |entries| async move {
                match self
                    .client
                    .send_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(entries.clone()))
                    .send()
                    .await
                {
                    Ok(out) if out.failed.is_empty() => (Vec::new(), None),
                    Ok(out) => {
                        let error = out.failed.first().map(|f| {
                            format!("{}: {}", f.code, f.message.clone().unwrap_or_default())
                        });
                        let failed_ids: Vec<&str> =
                            out.failed.iter().map(|f| f.id.as_str()).collect();
                        let failed = entries
                            .into_iter()
                            .filter(|e| failed_ids.contains(&e.id.as_str()))
                            .collect();
                        (failed, error)
                    }
                    Err(e) => (
                        entries,
                        Some(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()),
                    ),
                }
            })
            .await;
            if let Err(unsent) = result {
                return Err(PortError::new(
                    "SendMessageBatch",
                    format!(
                        "{} poison records unsent after {} attempts: {}",
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
