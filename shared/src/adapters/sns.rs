//! The alert topic over SNS PublishBatch: 10 messages and 256 KiB a call, failed entries
//! re-sent alone.

use std::sync::Mutex;

use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use super::retry::{RetryPolicy, send_with_retries};
use crate::alerts::message::{AlertMessage, publish_batches};
use crate::alerts::ports::{AlertPublisher, PublishReport};

#[derive(Debug, Clone)]
pub struct SnsAlertPublisher {
    pub client: Client,
    pub topic_arn: String,
    pub retry: RetryPolicy,
}

/// The PublishBatch entry of `messages[index]`; its id is the index, so failures map back.
pub fn batch_entry(
    index: usize,
    message: &AlertMessage,
) -> Result<PublishBatchRequestEntry, aws_sdk_sns::error::BuildError> {
    let mut entry = PublishBatchRequestEntry::builder()
        .id(index.to_string())
        .subject(&message.subject)
        .message(&message.body);
    for (name, data_type, value) in message.attributes.entries() {
        entry = entry.message_attributes(
            name,
            MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()?,
        );
    }
    entry.build()
}

type Indexed = (usize, PublishBatchRequestEntry);

impl AlertPublisher for SnsAlertPublisher {
    async fn publish(&self, messages: &[AlertMessage]) -> PublishReport {
        let mut report = PublishReport::default();
        // Entries SNS refused as the sender's fault (a bad attribute, say): re-sending the
        // same entry cannot succeed, so they are reported without retries.
        let refused: Mutex<Vec<usize>> = Mutex::new(Vec::new());
        for batch in publish_batches(messages) {
            let mut entries: Vec<Indexed> = Vec::with_capacity(batch.len());
            for index in batch {
                match batch_entry(index, &messages[index]) {
                    Ok(entry) => entries.push((index, entry)),
                    Err(e) => {
                        report.unpublished.push(index);
                        report.error = Some(format!("cannot build the entry: {e}"));
                    }
                }
            }
            if entries.is_empty() {
                continue;
            }
            let refused = &refused;
            let result = send_with_retries(self.retry, entries, |entries| async move {
                let request: Vec<PublishBatchRequestEntry> =
                    entries.iter().map(|(_, e)| e.clone()).collect();
                match self
                    .client
                    .publish_batch()
                    .topic_arn(&self.topic_arn)
                    .set_publish_batch_request_entries(Some(request))
                    .send()
                    .await
                {
                    Ok(out) => {
                        let failures = out.failed.unwrap_or_default();
                        if failures.is_empty() {
                            return (Vec::new(), None);
                        }
                        let mut error = None;
                        let mut retry = Vec::new();
                        for (index, entry) in entries {
                            let Some(failure) = failures.iter().find(|f| f.id == entry.id) else {
                                continue;
                            };
                            error = Some(format!(
                                "{}: {}",
                                failure.code,
                                failure.message.as_deref().unwrap_or_default()
                            ));
                            if failure.sender_fault {
                                refused
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .push(index);
                            } else {
                                retry.push((index, entry));
                            }
                        }
                        (retry, error)
                    }
                    Err(e) => (
                        entries,
                        Some(aws_sdk_sns::error::DisplayErrorContext(&e).to_string()),
                    ),
                }
            })
            .await;
            match result {
                Ok(retries) => report.retries += retries,
                Err(unsent) => {
                    report.retries += unsent.attempts.saturating_sub(1);
                    report
                        .unpublished
                        .extend(unsent.items.iter().map(|(index, _)| *index));
                    report.error = Some(format!(
                        "PublishBatch: {} alerts unpublished after {} attempts: {}",
                        unsent.items.len(),
                        unsent.attempts,
                        unsent.last_error
                    ));
                }
            }
        }
        let refused = refused
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !refused.is_empty() {
            report.error.get_or_insert_with(|| {
                format!(
                    "PublishBatch refused {} alerts (sender fault)",
                    refused.len()
                )
            });
            report.unpublished.extend(refused);
        }
        report.unpublished.sort_unstable();
        report.unpublished.dedup();
        report
    }
}

#[cfg(test)]
mod alerts_topic_tests {
    use std::time::Duration;

    use aws_sdk_sns::Client;
    use aws_sdk_sns::operation::publish_batch::{PublishBatchError, PublishBatchOutput};
    use aws_sdk_sns::types::{BatchResultErrorEntry, PublishBatchResultEntry};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::alerts::message::AlertAttributes;
    use crate::alerts::rules::AlertKind;

    fn messages(n: usize) -> Vec<AlertMessage> {
        (0..n)
            .map(|i| AlertMessage {
                alert_id: format!("alert#price_drop#zillow:{i}#7"),
                subject: format!("Price drop 20%: {i} Church St, Nashville, TN now $400,000"),
                body: format!("{{\"n\":{i}}}"),
                attributes: AlertAttributes {
                    market: "nashville-tn".into(),
                    property_type: "condo".into(),
                    alert_type: AlertKind::PriceDrop,
                    drop_pct: 20.0,
                },
            })
            .collect()
    }

    fn publisher(client: Client, retry: RetryPolicy) -> SnsAlertPublisher {
        SnsAlertPublisher {
            client,
            topic_arn: "arn:aws:sns:us-east-1:123456789012:alerts".into(),
            retry,
        }
    }

    fn ok(id: &str) -> PublishBatchResultEntry {
        PublishBatchResultEntry::builder()
            .id(id)
            .message_id(format!("m-{id}"))
            .build()
    }

    fn failed(id: &str, code: &str, sender_fault: bool) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .code(code)
            .message("try again")
            .sender_fault(sender_fault)
            .build()
            .expect("entry")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn resends_only_the_failed_entries() {
        let first = mock!(Client::publish_batch)
            .match_requests(|r| r.publish_batch_request_entries().len() == 3)
            .then_output(|| {
                PublishBatchOutput::builder()
                    .successful(ok("0"))
                    .successful(ok("2"))
                    .failed(failed("1", "InternalError", false))
                    .build()
            });
        let retry = mock!(Client::publish_batch)
            .match_requests(|r| {
                let entries = r.publish_batch_request_entries();
                entries.len() == 1
                    && entries[0].id() == "1"
                    && entries[0].message() == "{\"n\":1}"
                    && entries[0]
                        .message_attributes()
                        .and_then(|a| a.get("drop_pct"))
                        .is_some_and(|v| {
                            v.data_type() == "Number" && v.string_value() == Some("20.00")
                        })
            })
            .then_output(|| PublishBatchOutput::builder().successful(ok("1")).build());
        let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, [&first, &retry]);
        let report = publisher(client, RetryPolicy::immediate(Duration::from_secs(5)))
            .publish(&messages(3))
            .await;
        assert_eq!(report.unpublished, Vec::<usize>::new());
        assert_eq!(report.retries, 1);
        assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reports_what_keeps_failing() {
        // Entry 1 fails on every attempt; the others go through the first time.
        let always = mock!(Client::publish_batch).then_compute_output(|r| {
            let mut out = PublishBatchOutput::builder();
            for e in r.publish_batch_request_entries() {
                out = if e.id() == "1" {
                    out.failed(failed("1", "KMSThrottling", false))
                } else {
                    out.successful(ok(e.id()))
                };
            }
            out.build()
        });
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&always]);
        let report = publisher(client, RetryPolicy::immediate(Duration::from_millis(50)))
            .publish(&messages(3))
            .await;
        assert_eq!(report.unpublished, vec![1]);
        assert!(
            report
                .error
                .as_deref()
                .is_some_and(|e| e.contains("KMSThrottling")),
            "{report:?}"
        );
        assert!(always.num_calls() >= 2, "entry 1 was never re-sent");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_sender_fault_is_not_retried() {
        let refusing = mock!(Client::publish_batch).then_output(|| {
            PublishBatchOutput::builder()
                .successful(ok("0"))
                .failed(failed("1", "InvalidParameter", true))
                .build()
        });
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&refusing]);
        let report = publisher(client, RetryPolicy::immediate(Duration::from_secs(5)))
            .publish(&messages(2))
            .await;
        assert_eq!(report.unpublished, vec![1]);
        assert_eq!(refusing.num_calls(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_call_leaves_its_whole_batch_unpublished() {
        let down = mock!(Client::publish_batch).then_error(|| {
            PublishBatchError::InternalErrorException(
                aws_sdk_sns::types::error::InternalErrorException::builder()
                    .message("down")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&down]);
        let report = publisher(client, RetryPolicy::immediate(Duration::ZERO))
            .publish(&messages(12))
            .await;
        assert_eq!(report.unpublished, (0..12).collect::<Vec<_>>());
        assert!(report.error.is_some());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn calls_hold_at_most_ten_entries() {
        let sizes = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let counting = mock!(Client::publish_batch).then_compute_output(move |r| {
            let entries = r.publish_batch_request_entries();
            seen.lock().expect("lock").push(entries.len());
            let mut out = PublishBatchOutput::builder();
            for e in entries {
                out = out.successful(ok(e.id()));
            }
            out.build()
        });
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&counting]);
        let report = publisher(client, RetryPolicy::immediate(Duration::from_secs(5)))
            .publish(&messages(23))
            .await;
        assert!(report.unpublished.is_empty());
        assert_eq!(*sizes.lock().expect("lock"), vec![10, 10, 3]);
    }
}
