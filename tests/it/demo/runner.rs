//! The local event source mappings against the emulator.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use libtest_mimic::Failed;
use realty_infra::provision::{ProvisionOptions, provision};
use realty_infra::runner::{FunctionError, Mapping, StreamFunction};
use realty_tests::{Explain, TestAws, ensure};
use serde_json::Value;

use super::helpers::{RUNNER_REGION, sdk_in};

/// A metrics-trigger handler that fails every invocation holding a poison record, and
/// notes the records it processed.
struct PoisonIntolerant {
    processed: std::cell::RefCell<Vec<String>>,
    invocations: std::cell::Cell<u32>,
}

impl StreamFunction for PoisonIntolerant {
    type Event = KinesisEvent;
    type Response = KinesisEventResponse;

    async fn invoke(&self, event: KinesisEvent) -> Result<KinesisEventResponse, FunctionError> {
        self.invocations.set(self.invocations.get() + 1);
        let data: Vec<String> = event
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.kinesis.data.0).into_owned())
            .collect();
        if data.iter().any(|d| d == "poison") {
            return Err(FunctionError {
                error_type: "Poisoned".into(),
                message: "cannot process".into(),
            });
        }
        self.processed.borrow_mut().extend(data);
        Ok(KinesisEventResponse::default())
    }
}

/// An alerts-trigger handler that notes the event names it is given.
struct EventNames(std::cell::RefCell<Vec<String>>);

impl StreamFunction for EventNames {
    type Event = DynamoDbEvent;
    type Response = Value;

    async fn invoke(&self, event: DynamoDbEvent) -> Result<Value, FunctionError> {
        self.0
            .borrow_mut()
            .extend(event.records.into_iter().map(|r| r.event_name));
        Ok(Value::Null)
    }
}

/// Pumps until a pass reads and buffers nothing; fails if that takes more than a few
/// dozen passes (a stream that keeps handing out records).
pub(crate) async fn pump_until_quiet<F: StreamFunction>(
    mapping: &mut Mapping<F>,
) -> Result<(), Failed> {
    const MAX_PASSES: usize = 50;
    for _ in 0..MAX_PASSES {
        let pass = mapping.pump(true).await?;
        if pass.read == 0 && pass.buffered == 0 {
            return Ok(());
        }
    }
    Err(format!(
        "still reading after {MAX_PASSES} passes: {:?}",
        mapping.stats
    )
    .into())
}

pub(super) async fn the_runner_bisects_to_the_poison_record_describes_it_and_filters_removes(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let sdk = sdk_in(&aws, RUNNER_REGION).await;
    let template = aws.template();
    let options = ProvisionOptions {
        stack_name: aws.unique_stack_name(),
        parameters: Default::default(),
    };
    let stack = provision(&sdk, &template, &options).await?;
    let outputs = &stack.outputs;
    let output = |key: &str| {
        outputs
            .get(key)
            .cloned()
            .ok_or_else(|| Failed::from(format!("no output {key}")))
    };
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let payloads = ["a", "b", "c", "poison", "d", "e"];
    for payload in payloads {
        // One partition key: one shard, in this order.
        kinesis
            .put_record()
            .stream_name(output("ListingEventsStreamName")?)
            .partition_key("one-listing")
            .data(aws_sdk_kinesis::primitives::Blob::new(payload.as_bytes()))
            .send()
            .await
            .explain("PutRecord")?;
    }
    let handler = PoisonIntolerant {
        processed: Default::default(),
        invocations: Default::default(),
    };
    let mut metrics = Mapping::new(&sdk, &template, &stack, "MetricsFunction", handler).await?;
    pump_until_quiet(&mut metrics).await?;
    let processed = metrics.function().processed.borrow().clone();
    ensure(
        processed == ["a", "b", "c", "d", "e"],
        format!("processed {processed:?}"),
    )?;
    // [all 6] fails, [a b c] passes, [poison d e] fails, [poison] fails 1 + 10 retries (13
    // invocations with it in all), [d e] passes.
    let stats = &metrics.stats;
    ensure(
        (
            metrics.function().invocations.get(),
            stats.bisections,
            stats.retries,
        ) == (15, 2, 10)
            && stats.records_discarded == 1
            && stats.failure_messages == 1,
        format!(
            "{} invocations, {stats:?}",
            metrics.function().invocations.get()
        ),
    )?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let messages = sqs
        .receive_message()
        .queue_url(output("MetricsFailureQueueUrl")?)
        .max_number_of_messages(10)
        .send()
        .await
        .explain("ReceiveMessage")?
        .messages
        .unwrap_or_default();
    ensure(
        messages.len() == 1,
        format!("{} failure messages", messages.len()),
    )?;
    let record: Value = serde_json::from_str(messages[0].body().unwrap_or_default())?;
    let info = &record["KinesisBatchInfo"];
    ensure(
        record["requestContext"]["condition"] == "RetryAttemptsExhausted"
            && record["requestContext"]["approximateInvokeCount"] == 13
            && record["responseContext"]["functionError"] == "Unhandled"
            && info["batchSize"] == 1
            && info["startSequenceNumber"] == info["endSequenceNumber"]
            && info["streamArn"].as_str() == Some(metrics.source_arn()),
        format!("failure record {record}"),
    )?;

    // The listing table's stream: INSERT and MODIFY records reach the alerts trigger (a new
    // listing can be undervalued) when the metrics function marked them `may_alert`, or
    // they are from before the mark (none); a write marked as alerting nothing, and a
    // REMOVE, never.
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = output("ListingTableName")?;
    let key = aws_sdk_dynamodb::types::AttributeValue::S("zillow:1".into());
    for (version, may_alert) in [
        ("1", None),
        ("2", None),
        ("3", Some(false)),
        ("4", Some(true)),
    ] {
        let mut put = dynamodb
            .put_item()
            .table_name(&table)
            .item("listing_id", key.clone())
            .item(
                "market",
                aws_sdk_dynamodb::types::AttributeValue::S("x-tn".into()),
            )
            .item(
                "v",
                aws_sdk_dynamodb::types::AttributeValue::N(version.into()),
            );
        if let Some(mark) = may_alert {
            put = put.item(
                "may_alert",
                aws_sdk_dynamodb::types::AttributeValue::Bool(mark),
            );
        }
        put.send().await.explain("PutItem")?;
    }
    dynamodb
        .delete_item()
        .table_name(&table)
        .key("listing_id", key)
        .send()
        .await
        .explain("DeleteItem")?;
    let mut alerts = Mapping::new(
        &sdk,
        &template,
        &stack,
        "AlertsFunction",
        EventNames(Default::default()),
    )
    .await?;
    pump_until_quiet(&mut alerts).await?;
    let names = alerts.function().0.borrow().clone();
    ensure(
        names == ["INSERT", "MODIFY", "MODIFY"]
            && alerts.stats.records_read == 5
            && alerts.stats.filtered_out == 2,
        format!("the alerts trigger got {names:?}, {:?}", alerts.stats),
    )
}
