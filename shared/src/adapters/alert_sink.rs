//! The alerts' error sink: alerts that can never be published (too large for SNS, refused
//! by it), one SQS message each with its short reason, in the stack's error queue (the
//! `PoisonRecordQueue`, which the metrics function's poison records share).

use std::sync::Mutex;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::retry::{RetryPolicy, send_with_retries};
use crate::alerts::message::MAX_SINK_FIELD_BYTES;
use crate::alerts::ports::{AlertErrorSink, PortError, RejectedAlert};

/// SendMessageBatch takes 10 messages a call (and 256 KiB). A rejected alert's entry is at
/// most [`MAX_SINK_ENTRY_BYTES`], so 10 of them stay far below 256 KiB: counting is enough.
const MAX_MESSAGES: usize = 10;
/// Four fields of at most [`MAX_SINK_FIELD_BYTES`] (each JSON-escaped at most 6 times over),
/// the short ones and the JSON around them.
pub const MAX_SINK_ENTRY_BYTES: usize = 4 * 6 * MAX_SINK_FIELD_BYTES + 1_024;

#[derive(Debug, Clone)]
pub struct SqsAlertSink {
    pub client: Client,
    pub queue_url: String,
    pub retry: RetryPolicy,
}

impl AlertErrorSink for SqsAlertSink {
    async fn send(&self, rejected: &[RejectedAlert]) -> Result<(), PortError> {
        for chunk in rejected.chunks(MAX_MESSAGES) {
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
            // The SDK retries a failed call; only the entries SQS lists as failed are re-sent.
            let call_error: Mutex<Option<String>> = Mutex::new(None);
            let call_error_ref = &call_error;
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
                        let failed = entries
                            .into_iter()
                            .filter(|e| out.failed.iter().any(|f| f.id == e.id))
                            .collect();
                        (failed, error)
                    }
                    Err(e) => {
                        *call_error_ref
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string());
                        (Vec::new(), None)
                    }
                }
            })
            .await;
            let call_error = call_error
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(error) = call_error {
                return Err(PortError::new("SendMessageBatch", error));
            }
            if let Err(unsent) = result {
                return Err(PortError::new(
                    "SendMessageBatch",
                    format!(
                        "{} entries failed after {} attempts: {}",
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
