//! The importer as Lambda sees it: an SQS event whose messages are the lake bucket's S3
//! notifications (objects created under `imports/`), each object imported by
//! [`realty_poller::importer::import`], and `batchItemFailures` naming the messages to deliver
//! again (an import that stopped part-way, or a store out of reach).
//!
//! Why S3 -> SQS -> Lambda rather than S3 -> Lambda or S3 -> EventBridge: the queue keeps a
//! notification until an import finishes (visibility timeout, redrive to a dead-letter
//! queue after a few tries, both alarmed), so a failed import is retried without losing the
//! file; and both local emulators (moto, LocalStack) deliver S3 notifications to SQS, where
//! the local runner reads them as Lambda's SQS event source does (realty_infra::runner::queue).

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::adapters::imports::S3ImportObjects;
use crate::adapters::kinesis::KinesisPublisher;
use crate::adapters::poll_state::S3PollStateStore;
use crate::adapters::retry::RetryPolicy;
use realty_model::config::StackResources;
use realty_poller::importer::{ImportOutcome, ImportRequest, ImportStatus, import};

/// The importer's AWS adapters.
#[derive(Debug, Clone)]
pub struct ImporterFunction {
    pub objects: S3ImportObjects,
    pub publisher: KinesisPublisher,
    pub states: S3PollStateStore,
    pub lake_bucket: String,
    /// Events a second an import publishes at most (`realty_poller::importer::import_rate`);
    /// none, unpaced.
    pub rate_per_second: Option<f64>,
}

/// One S3 notification, as S3 writes it into the message body: only the fields used (the
/// emulators leave out some of the others).
#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<NotificationRecord>,
    /// `s3:TestEvent`: what S3 sends once when the notification is configured.
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotificationRecord {
    event_name: Option<String>,
    s3: NotificationEntity,
}

#[derive(Debug, Deserialize)]
struct NotificationEntity {
    bucket: NotificationBucket,
    object: NotificationObject,
}

#[derive(Debug, Deserialize)]
struct NotificationBucket {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotificationObject {
    key: String,
    version_id: Option<String>,
}

/// Largest message body read (an S3 notification is a few KB; SQS allows 256 KB).
const MAX_NOTIFICATION_BYTES: usize = 256 * 1024;

/// The objects a message's body names, or why it names none.
pub fn requests_of(body: &str) -> Result<Vec<ImportRequest>, String> {
    if body.len() > MAX_NOTIFICATION_BYTES {
        return Err(format!(
            "a body of {} bytes is no S3 notification",
            body.len()
        ));
    }
    // serde's message quotes what it refused, which may be most of the body: bounded, as
    // it is logged.
    let notification: Notification = serde_json::from_str(body)
        .map_err(|e| realty_model::listing::bound_reason(format!("not an S3 notification: {e}")))?;
    if notification.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    Ok(notification
        .records
        .into_iter()
        // Only creations are configured; anything else is no file to import.
        .filter(|r| {
            r.event_name
                .as_deref()
                .is_some_and(|n| n.starts_with("ObjectCreated"))
        })
        .map(|r| ImportRequest {
            bucket: r.s3.bucket.name,
            key: decode_key(&r.s3.object.key),
            version_id: r
                .s3
                .object
                .version_id
                .filter(|v| !v.is_empty() && v != "null"),
        })
        .collect())
}

/// S3 writes the key form-encoded in notifications: `+` for a space, `%XX` for the rest.
fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

impl ImporterFunction {
    pub fn new(sdk: &SdkConfig, resources: &StackResources) -> Self {
        let s3 = crate::sdk::s3_client(sdk);
        Self {
            objects: S3ImportObjects {
                client: s3.clone(),
                bucket: resources.data_lake_bucket.clone(),
            },
            publisher: KinesisPublisher {
                client: aws_sdk_kinesis::Client::new(sdk),
                stream: resources.listing_events_stream.clone(),
                retry: RetryPolicy::default(),
            },
            states: S3PollStateStore {
                client: s3,
                bucket: resources.data_lake_bucket.clone(),
            },
            lake_bucket: resources.data_lake_bucket.clone(),
            rate_per_second: None,
        }
    }

    /// Imports what each message names. A message is reported failed (delivered again, then
    /// dead-lettered) when one of its imports stopped part-way or could not reach a store; a
    /// message that is no S3 notification is logged and dropped (retrying cannot mend it).
    pub async fn handle(
        &self,
        event: SqsEvent,
        now: DateTime<Utc>,
    ) -> (SqsBatchResponse, Vec<ImportOutcome>) {
        let mut response = SqsBatchResponse::default();
        let mut outcomes = Vec::new();
        for message in event.records {
            let id = message.message_id.unwrap_or_default();
            let requests = match requests_of(message.body.as_deref().unwrap_or_default()) {
                Ok(requests) => requests,
                Err(reason) => {
                    tracing::error!(message_id = %id, %reason, "message dropped");
                    metrics::counter!("import_messages_dropped").increment(1);
                    continue;
                }
            };
            let mut retry = false;
            for request in requests {
                match import(
                    &request,
                    &self.lake_bucket,
                    &self.objects,
                    &self.publisher,
                    &self.states,
                    self.rate_per_second,
                    now,
                )
                .await
                {
                    Ok(outcome) => {
                        record(&outcome);
                        retry |= outcome.retry();
                        outcomes.push(outcome);
                    }
                    Err(error) => {
                        tracing::error!(key = %request.key, %error, "import not finished; delivered again");
                        metrics::counter!("imports_failed").increment(1);
                        retry = true;
                    }
                }
            }
            if retry {
                response.add_failure(id);
            }
        }
        (response, outcomes)
    }
}

fn record(outcome: &ImportOutcome) {
    let r = &outcome.result;
    tracing::info!(
        key = %r.key,
        result = %outcome.result_key,
        status = ?r.status,
        rows = r.rows,
        rejected = r.rejected,
        published = r.published,
        reason = r.reason.as_deref().unwrap_or(""),
        already_done = outcome.already_done,
        claimed_elsewhere = outcome.claimed_elsewhere,
        "import"
    );
    let name = match r.status {
        // Another delivery holds it: this one comes back later.
        ImportStatus::Importing => "imports_claimed_elsewhere",
        ImportStatus::Done => "imports_done",
        ImportStatus::Rejected => "imports_rejected",
        ImportStatus::Failed => "imports_failed",
    };
    metrics::counter!(name).increment(1);
    metrics::counter!("import_rows_rejected").increment(r.rejected as u64);
    metrics::counter!("import_events_published").increment(r.published as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_notification_names_its_objects_with_their_keys_decoded() {
        let body = include_str!("importer_fixtures/example-s3-event.json");
        let requests = requests_of(body).expect("a notification");
        assert_eq!(
            requests,
            [ImportRequest {
                bucket: "sourcebucket".into(),
                key: "Happy Face.jpg".into(),
                version_id: Some("version".into()),
            }]
        );
        // S3 encodes a space as `+` and a `+` as `%2B`.
        let plus = body.replace("Happy%20Face.jpg", "imports/a+b%2Bc.csv");
        assert_eq!(requests_of(&plus).expect("ok")[0].key, "imports/a b+c.csv");
        // Not a creation: nothing to import.
        let removed = body.replace("ObjectCreated:Put", "ObjectRemoved:Delete");
        assert!(requests_of(&removed).expect("ok").is_empty());
    }

    #[test]
    fn the_test_event_and_other_messages_name_no_object() {
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-20T12:00:00.000Z","Bucket":"lake"}"#;
        assert!(requests_of(test_event).expect("ok").is_empty());
        assert!(requests_of("Message Body").is_err());
        assert!(requests_of(&"x".repeat(MAX_NOTIFICATION_BYTES + 1)).is_err());
        // A JSON string as long as a message may be: refused with a reason of bounded size.
        let long = format!("{:?}", "y".repeat(MAX_NOTIFICATION_BYTES - 2));
        assert_eq!(long.len(), MAX_NOTIFICATION_BYTES);
        let reason = requests_of(&long).expect_err("a string");
        assert!(
            reason.len() <= realty_model::listing::MAX_REASON_BYTES + 64,
            "{} bytes",
            reason.len()
        );
    }

    #[test]
    fn the_sqs_event_lambda_sends_is_read() {
        let text = include_str!("importer_fixtures/example-sqs-event.json");
        let event: SqsEvent = serde_json::from_str(text).expect("an SQS event");
        assert_eq!(event.records[0].message_id.as_deref(), Some("MessageID_1"));
        // Its body is no notification: dropped, not retried.
        assert!(requests_of(event.records[0].body.as_deref().unwrap_or_default()).is_err());
    }
}
