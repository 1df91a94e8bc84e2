//! What a mapping builds: batches, failure messages, and events in Lambda's shape.

use std::collections::VecDeque;

use chrono::DateTime;
use serde_json::json;

use crate::runner::mapping::take_batch;
use crate::runner::records::kinesis_record;
use crate::runner::*;

fn record(seq: u32, size: usize) -> StreamRecord {
    StreamRecord {
        sequence_number: seq.to_string(),
        arrival: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        json: json!({"seq": seq}),
        size,
    }
}

#[test]
fn batches_stop_at_the_batch_size_and_the_payload_limit() {
    let mut buffer: VecDeque<StreamRecord> = (0..10).map(|i| record(i, 100)).collect();
    assert_eq!(take_batch(&mut buffer, 4).len(), 4);
    assert_eq!(buffer.len(), 6);
    let mut big: VecDeque<StreamRecord> = (0..5)
        .map(|i| record(i, MAX_INVOKE_PAYLOAD_BYTES / 3))
        .collect();
    assert_eq!(take_batch(&mut big, 100).len(), 2);
    // One record over the limit still goes alone (Lambda would fail it; the handler sees it).
    let mut huge: VecDeque<StreamRecord> = [record(0, MAX_INVOKE_PAYLOAD_BYTES * 2)]
        .into_iter()
        .collect();
    assert_eq!(take_batch(&mut huge, 100).len(), 1);
}

#[test]
fn failure_messages_have_lambdas_shape() {
    let discard = Discard {
        records: vec![record(7, 10), record(9, 10)],
        condition: DiscardCondition::RetryAttemptsExhausted,
        invoke_count: 11,
        function_error: Some("Boom".into()),
    };
    let now = DateTime::from_timestamp(1_700_000_100, 0).unwrap();
    let m = failure_message(
        TriggerKind::DynamoDb,
        "arn:fn",
        "arn:stream",
        "shardId-1",
        &discard,
        now,
    );
    assert_eq!(m["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(m["requestContext"]["approximateInvokeCount"], 11);
    assert_eq!(m["responseContext"]["functionError"], "Unhandled");
    assert_eq!(m["DDBStreamBatchInfo"]["startSequenceNumber"], "7");
    assert_eq!(m["DDBStreamBatchInfo"]["endSequenceNumber"], "9");
    assert_eq!(m["DDBStreamBatchInfo"]["batchSize"], 2);
    assert_eq!(
        m["DDBStreamBatchInfo"]["approximateArrivalOfFirstRecord"],
        "2023-11-14T22:13:20.000Z"
    );
    assert_eq!(m["timestamp"], "2023-11-14T22:15:00.000Z");
    assert!(m.get("KinesisBatchInfo").is_none());
}

#[test]
fn built_records_parse_as_lambda_events() {
    let kinesis = aws_sdk_kinesis::types::Record::builder()
        .sequence_number("4959")
        .partition_key("zillow:1")
        .data(aws_sdk_kinesis::primitives::Blob::new(
            b"{\"a\":1}".to_vec(),
        ))
        .approximate_arrival_timestamp(aws_sdk_kinesis::primitives::DateTime::from_secs(
            1_700_000_000,
        ))
        .build()
        .unwrap();
    let r = kinesis_record(
        &kinesis,
        "shardId-000000000001",
        "arn:k",
        "us-east-1",
        "123",
    );
    let event: aws_lambda_events::event::kinesis::KinesisEvent =
        serde_json::from_value(json!({ "Records": [r.json] })).unwrap();
    let parsed = &event.records[0];
    assert_eq!(parsed.kinesis.data.0, b"{\"a\":1}");
    assert_eq!(
        parsed.event_id.as_deref(),
        Some("shardId-000000000001:4959")
    );
    assert_eq!(parsed.kinesis.sequence_number, "4959");

    use aws_sdk_dynamodbstreams::types::{
        AttributeValue as A, OperationType, StreamRecord as ChangeRecord,
    };
    let ddb = aws_sdk_dynamodbstreams::types::Record::builder()
        .event_id("e1")
        .event_name(OperationType::Modify)
        .event_source("aws:dynamodb")
        .event_version("1.1")
        .aws_region("us-east-1")
        .dynamodb(
            ChangeRecord::builder()
                .sequence_number("100")
                .keys("id", A::S("x".into()))
                .new_image("n", A::N("2".into()))
                .old_image("n", A::N("1".into()))
                .new_image("l", A::L(vec![A::Bool(true), A::Null(true)]))
                .build(),
        )
        .build();
    let r = dynamodb_record(&ddb, "arn:ddb").unwrap();
    let event: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_value(json!({ "Records": [r.json] })).unwrap();
    let parsed = &event.records[0];
    assert_eq!(parsed.event_name, "MODIFY");
    assert_eq!(parsed.change.sequence_number.as_deref(), Some("100"));
    assert_eq!(parsed.event_source_arn.as_deref(), Some("arn:ddb"));
    assert_eq!(parsed.change.new_image.len(), 2);
}
