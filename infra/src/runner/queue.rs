//! A local SQS event source mapping: what Lambda's SQS poller does for a function whose
//! trigger is an `SQS` event in template.yaml (the importer's, fed by the lake bucket's S3
//! notifications), done in-process.
//!
//! It receives up to `BatchSize` messages (at most 10 a receive, SQS's limit), hands them
//! to the function as one event in Lambda's shape (`Records` of `messageId`,
//! `receiptHandle`, `body`, `attributes`, `eventSourceARN`...), deletes the messages that
//! succeeded and leaves the others in the queue: with `ReportBatchItemFailures` those the
//! response names (an unknown or empty identifier fails the whole batch, as on Lambda),
//! without it every message of a failed invocation. The queue's own `RedrivePolicy` moves a
//! message received `maxReceiveCount` times to its dead-letter queue, as in AWS: the
//! emulator does that, not this module.
//!
//! What differs from Lambda: a failed message is made visible again at once
//! (ChangeMessageVisibility 0) rather than after the queue's visibility timeout, so a local
//! run retries in milliseconds; there is no concurrency (one batch at a time).

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use futures::FutureExt as _;
use serde_json::{Value, json};

use super::{FunctionError, RunnerError, StreamFunction, aws_error};
use crate::provision::ProvisionedStack;
use crate::template::{Template, as_i64};

/// SQS's limit on the messages of one ReceiveMessage.
const MAX_RECEIVE: i32 = 10;

/// An `SQS` trigger's settings, with Lambda's defaults where the template says nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    pub function: String,
    pub event: String,
    /// Logical id of the queue the trigger reads.
    pub queue_logical_id: String,
    pub batch_size: usize,
    pub report_batch_item_failures: bool,
}

impl QueueSettings {
    /// The one `SQS` event of `function` in `template`.
    pub fn from_template(template: &Template, function: &str) -> Result<Self, RunnerError> {
        let err = |reason: String| RunnerError::Settings {
            function: function.to_owned(),
            reason,
        };
        let events = template
            .resources
            .get(function)
            .and_then(|r| r.properties.get("Events"))
            .and_then(Value::as_object)
            .ok_or_else(|| err("no Events".into()))?;
        let mut queues = events
            .iter()
            .filter(|(_, spec)| spec.get("Type").and_then(Value::as_str) == Some("SQS"));
        let (event, spec) = queues.next().ok_or_else(|| err("no SQS event".into()))?;
        if queues.next().is_some() {
            return Err(err("more than one SQS event".into()));
        }
        let props = spec.get("Properties").cloned().unwrap_or(Value::Null);
        let queue_logical_id = props
            .get("Queue")
            .and_then(super::settings::get_att_resource)
            .ok_or_else(|| err(format!("{event}.Queue: expected !GetAtt Queue.Arn")))?;
        let batch_size = match props.get("BatchSize") {
            None => 10,
            Some(v) => as_i64(v)
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| err(format!("{event}.BatchSize {v}: not in 1..=10000")))?,
        };
        let report_batch_item_failures = props
            .get("FunctionResponseTypes")
            .and_then(Value::as_array)
            .is_some_and(|types| {
                types
                    .iter()
                    .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
            });
        Ok(Self {
            function: function.to_owned(),
            event: event.clone(),
            queue_logical_id,
            batch_size: batch_size as usize,
            report_batch_item_failures,
        })
    }
}

/// Counters of a queue mapping since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub received: usize,
    pub invocations: u32,
    pub succeeded: usize,
    /// Messages left in the queue for another delivery (and, past the queue's
    /// `maxReceiveCount`, its dead-letter queue).
    pub failed: usize,
}

/// One SQS event source mapping: a queue, a function and the trigger's settings.
pub struct QueueMapping<F> {
    pub settings: QueueSettings,
    pub queue_url: String,
    queue_arn: String,
    region: String,
    sqs: aws_sdk_sqs::Client,
    function: F,
    pub stats: QueueStats,
}

impl<F: StreamFunction> QueueMapping<F> {
    /// The mapping of `function_logical_id`'s SQS trigger in `template`, on the queue of
    /// `stack` (provisioned from that template), invoking `function`.
    pub async fn new(
        sdk: &SdkConfig,
        template: &Template,
        stack: &ProvisionedStack,
        function_logical_id: &str,
        function: F,
    ) -> Result<Self, RunnerError> {
        let settings = QueueSettings::from_template(template, function_logical_id)?;
        let queue_url = super::provisioned(stack, function_logical_id, &settings.queue_logical_id)?;
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(aws_error("GetQueueAttributes"))?
            .attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .unwrap_or_default();
        Ok(Self {
            settings,
            queue_url,
            queue_arn,
            region: stack.region.clone(),
            sqs,
            function,
            stats: QueueStats::default(),
        })
    }

    /// The function invoked.
    pub fn function(&self) -> &F {
        &self.function
    }

    /// One receive and, when it got messages, one invocation with them. Returns the number
    /// of messages received.
    pub async fn pump(&mut self) -> Result<usize, RunnerError> {
        let max = i32::try_from(self.settings.batch_size)
            .unwrap_or(MAX_RECEIVE)
            .min(MAX_RECEIVE);
        let messages = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(aws_error("ReceiveMessage"))?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return Ok(0);
        }
        self.stats.received += messages.len();
        self.stats.invocations += 1;
        let event = json!({
            "Records": messages.iter().map(|m| self.record(m)).collect::<Vec<_>>()
        });
        let ids: Vec<&str> = messages
            .iter()
            .map(|m| m.message_id().unwrap_or_default())
            .collect();
        let failed = match invoke(&self.function, event).await {
            Ok(response) => {
                failed_messages(self.settings.report_batch_item_failures, &response, &ids)
            }
            Err(error) => {
                tracing::warn!(function = %self.settings.function, %error, "invocation failed; the batch stays in the queue");
                vec![true; ids.len()]
            }
        };
        let (done, retry): (Vec<_>, Vec<_>) = messages
            .iter()
            .zip(&failed)
            .partition(|(_, failed)| !**failed);
        self.delete(done.iter().map(|(m, _)| *m)).await?;
        for (message, _) in &retry {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .visibility_timeout(0)
                .send()
                .await
                .map_err(aws_error("ChangeMessageVisibility"))?;
        }
        self.stats.succeeded += done.len();
        self.stats.failed += retry.len();
        Ok(messages.len())
    }

    /// Pumps until a receive finds the queue empty (every message delivered, or moved to
    /// the dead-letter queue), at most `max_passes` times. Returns the passes made.
    pub async fn drain(&mut self, max_passes: u32) -> Result<u32, RunnerError> {
        for pass in 1..=max_passes {
            if self.pump().await? == 0 {
                return Ok(pass);
            }
        }
        Ok(max_passes)
    }

    /// A message as Lambda's SQS event has it.
    fn record(&self, m: &Message) -> Value {
        let attributes: HashMap<String, String> = m
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "messageId": m.message_id(),
            "receiptHandle": m.receipt_handle(),
            "body": m.body(),
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": m.md5_of_body(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        })
    }

    async fn delete<'m>(
        &self,
        messages: impl Iterator<Item = &'m Message>,
    ) -> Result<(), RunnerError> {
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        let out = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(aws_error("DeleteMessageBatch"))?;
        if let Some(failed) = out.failed().first() {
            return Err(RunnerError::Aws {
                operation: "DeleteMessageBatch",
                message: format!(
                    "{}: {}",
                    failed.code(),
                    failed.message().unwrap_or_default()
                ),
            });
        }
        Ok(())
    }
}

/// Which messages of a successful invocation failed, by position, as Lambda reads the
/// response: without `ReportBatchItemFailures` none; with it those named, or all when one
/// identifier is empty or unknown.
pub fn failed_messages(
    report_batch_item_failures: bool,
    response: &Value,
    ids: &[&str],
) -> Vec<bool> {
    let mut failed = vec![false; ids.len()];
    if !report_batch_item_failures {
        return failed;
    }
    let Some(failures) = response.get("batchItemFailures").and_then(Value::as_array) else {
        return failed;
    };
    for failure in failures {
        let position = failure
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .and_then(|id| ids.iter().position(|m| *m == id));
        match position {
            Some(i) => failed[i] = true,
            None => return vec![true; ids.len()],
        }
    }
    failed
}

/// Invokes `function` with `event` (Lambda's JSON), reading its response back as JSON; a
/// handler error, an unreadable event and a panic are function errors, as on Lambda.
async fn invoke<F: StreamFunction>(function: &F, event: Value) -> Result<Value, FunctionError> {
    let failed = |error_type: &str, message: String| FunctionError {
        error_type: error_type.into(),
        message,
    };
    let event: F::Event = serde_json::from_value(event)
        .map_err(|e| failed("Runtime.UnmarshalError", e.to_string()))?;
    match std::panic::AssertUnwindSafe(function.invoke(event))
        .catch_unwind()
        .await
    {
        Ok(Ok(response)) => serde_json::to_value(&response)
            .map_err(|e| failed("Runtime.MarshalError", e.to_string())),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(failed("Runtime.Panic", "the handler panicked".into())),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    #[test]
    fn reads_the_importers_queue_trigger_from_the_template() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let t = Template::load(&path).expect("template.yaml parses");
        let importer = QueueSettings::from_template(&t, "ImporterFunction").expect("settings");
        assert_eq!(importer.queue_logical_id, "ImportQueue");
        assert_eq!(importer.batch_size, 1);
        assert!(importer.report_batch_item_failures);
        // The stream functions have no queue trigger.
        assert!(QueueSettings::from_template(&t, "MetricsFunction").is_err());
    }

    #[test]
    fn the_response_names_the_messages_to_deliver_again() {
        let ids = ["a", "b", "c"];
        let named = json!({"batchItemFailures": [{"itemIdentifier": "b"}]});
        assert_eq!(failed_messages(true, &named, &ids), [false, true, false]);
        assert_eq!(failed_messages(true, &json!({}), &ids), [false; 3]);
        assert_eq!(
            failed_messages(true, &json!({"batchItemFailures": []}), &ids),
            [false; 3]
        );
        // An unknown or empty identifier fails the whole batch, as on Lambda.
        for bad in [json!("z"), json!(""), json!(null)] {
            let response = json!({"batchItemFailures": [{"itemIdentifier": bad}]});
            assert_eq!(
                failed_messages(true, &response, &ids),
                [true; 3],
                "{response}"
            );
        }
        // Without ReportBatchItemFailures the response is not read.
        assert_eq!(failed_messages(false, &named, &ids), [false; 3]);
    }
}
