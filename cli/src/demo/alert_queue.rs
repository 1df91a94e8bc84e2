//! The demo's view of the alert topic: an SQS queue subscribed to it, read between polls.

use anyhow::{Context as _, Result};
use realty_alerts::message::AlertBody;
use realty_model::config::StackResources;
use serde_json::json;

/// An SQS queue subscribed to the alert topic with raw delivery: how SNS publishes are seen
/// locally.
pub(super) async fn subscribe_alert_queue(
    sdk: &aws_config::SdkConfig,
    resources: &StackResources,
    prefix: &str,
) -> Result<String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let url = sqs
        .create_queue()
        .queue_name(format!("{prefix}-demo-alerts"))
        .send()
        .await
        .context("creating the demo's alert queue")?
        .queue_url
        .context("CreateQueue returned no URL")?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .context("reading the alert queue's ARN")?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .context("the alert queue has no ARN")?;
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "sns.amazonaws.com" },
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": { "ArnEquals": { "aws:SourceArn": resources.alert_topic_arn } }
        }]
    });
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .context("setting the alert queue's policy")?;
    aws_sdk_sns::Client::new(sdk)
        .subscribe()
        .topic_arn(&resources.alert_topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .context("subscribing the alert queue to the topic")?;
    Ok(url)
}

/// Every alert in the queue until it has stayed empty for `quiet_seconds`, deleted as read.
/// SNS hands a published alert to the queue after the publish returns, so the last read of
/// a run waits a little for any still on their way; the reads between polls do not (what
/// they miss, the next one gets).
pub(super) async fn receive_alerts(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    quiet_seconds: i32,
) -> Result<Vec<AlertBody>> {
    let mut out = Vec::new();
    let mut confirming = false;
    loop {
        let page = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(if confirming { quiet_seconds } else { 0 })
            .send()
            .await
            .context("receiving alerts")?;
        let messages = page.messages.unwrap_or_default();
        if messages.is_empty() {
            if confirming || quiet_seconds == 0 {
                return Ok(out);
            }
            confirming = true;
            continue;
        }
        confirming = false;
        for m in messages {
            let body = m.body().unwrap_or_default();
            out.push(
                serde_json::from_str(body)
                    .with_context(|| format!("an alert that is not an AlertBody: {body}"))?,
            );
            if let Some(handle) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .context("deleting an alert")?;
            }
        }
    }
}
