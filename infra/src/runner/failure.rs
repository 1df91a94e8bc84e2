//! Discarded records described to the trigger's on-failure destination (SQS or SNS), in
//! Lambda's invocation-record format.

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::delivery::Discard;
use super::records::StreamRecord;
use super::settings::TriggerKind;
use super::{RunnerError, aws_error};

/// Where discarded batches go.
#[derive(Debug, Clone)]
pub(super) enum FailureDestination {
    Sqs {
        client: aws_sdk_sqs::Client,
        queue_url: String,
    },
    Sns {
        client: aws_sdk_sns::Client,
        topic_arn: String,
    },
}

impl FailureDestination {
    /// The destination of `kind` (`SQS` or `SNS`) at `physical_id` (queue URL or topic ARN).
    pub(super) fn new(sdk: &SdkConfig, kind: &str, physical_id: String) -> Self {
        if kind == "SNS" {
            Self::Sns {
                client: aws_sdk_sns::Client::new(sdk),
                topic_arn: physical_id,
            }
        } else {
            Self::Sqs {
                client: aws_sdk_sqs::Client::new(sdk),
                queue_url: physical_id,
            }
        }
    }

    pub(super) async fn send(&self, body: String) -> Result<(), RunnerError> {
        match self {
            Self::Sqs { client, queue_url } => {
                client
                    .send_message()
                    .queue_url(queue_url)
                    .message_body(body)
                    .send()
                    .await
                    .map_err(aws_error("SendMessage"))?;
            }
            Self::Sns { client, topic_arn } => {
                client
                    .publish()
                    .topic_arn(topic_arn)
                    .message(body)
                    .send()
                    .await
                    .map_err(aws_error("Publish"))?;
            }
        }
        Ok(())
    }
}

fn rfc3339_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The invocation record Lambda sends to an on-failure destination for discarded stream
/// records (`KinesisBatchInfo` or `DDBStreamBatchInfo`).
pub fn failure_message(
    kind: TriggerKind,
    function_arn: &str,
    stream_arn: &str,
    shard_id: &str,
    discard: &Discard<StreamRecord>,
    now: DateTime<Utc>,
) -> Value {
    let first = discard.records.first();
    let last = discard.records.last();
    let batch_info = json!({
        "shardId": shard_id,
        "startSequenceNumber": first.map(|r| r.sequence_number.as_str()),
        "endSequenceNumber": last.map(|r| r.sequence_number.as_str()),
        "approximateArrivalOfFirstRecord": first.map(|r| rfc3339_millis(r.arrival)),
        "approximateArrivalOfLastRecord": last.map(|r| rfc3339_millis(r.arrival)),
        "batchSize": discard.records.len(),
        "streamArn": stream_arn,
    });
    let mut response_context = json!({ "statusCode": 200, "executedVersion": "$LATEST" });
    if discard.function_error.is_some() {
        response_context["functionError"] = json!("Unhandled");
    }
    let info_key = match kind {
        TriggerKind::Kinesis => "KinesisBatchInfo",
        TriggerKind::DynamoDb => "DDBStreamBatchInfo",
    };
    let mut message = json!({
        "requestContext": {
            "requestId": format!(
                "local-{shard_id}-{}",
                first.map_or("", |r| r.sequence_number.as_str())
            ),
            "functionArn": function_arn,
            "condition": discard.condition.as_str(),
            "approximateInvokeCount": discard.invoke_count,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": rfc3339_millis(now),
    });
    message[info_key] = batch_info;
    message
}
