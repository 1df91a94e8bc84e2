use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::mapping::{next_read, take_batch};
use super::records::kinesis_record;
use super::*;
use crate::provision::ProvisionedStack;
use crate::template::Template;

fn project_template() -> Template {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    Template::load(&path).expect("template.yaml parses")
}

#[test]
fn reads_the_metrics_and_alerts_triggers_from_the_template() {
    let t = project_template();
    let metrics = TriggerSettings::from_template(&t, "MetricsFunction").unwrap();
    assert_eq!(metrics.kind, TriggerKind::Kinesis);
    assert_eq!(metrics.source_logical_id, "ListingEventsStream");
    assert_eq!(metrics.starting_position, StartingPosition::TrimHorizon);
    assert_eq!(metrics.batch_size, 1000);
    assert_eq!(metrics.batching_window, Duration::from_secs(1));
    assert!(metrics.report_batch_item_failures && metrics.bisect_on_error);
    assert_eq!(metrics.max_retry_attempts, Some(10));
    assert_eq!(metrics.max_record_age, Some(Duration::from_secs(3600)));
    assert_eq!(
        metrics.on_failure,
        Some(OnFailure {
            kind: "SQS".into(),
            logical_id: "MetricsFailureQueue".into()
        })
    );
    assert!(metrics.filters.is_empty());

    let alerts = TriggerSettings::from_template(&t, "AlertsFunction").unwrap();
    assert_eq!(alerts.kind, TriggerKind::DynamoDb);
    assert_eq!(alerts.source_logical_id, "ListingTable");
    assert_eq!(alerts.batch_size, 100);
    assert_eq!(alerts.batching_window, Duration::ZERO);
    // Every MODIFY and INSERT (a new listing can be undervalued), never a REMOVE.
    let passes = |record: serde_json::Value| alerts.filters.iter().any(|f| f.matches(&record));
    assert_eq!(alerts.filters.len(), 1);
    assert!(passes(json!({"eventName": "MODIFY", "dynamodb": {}})));
    assert!(passes(json!({"eventName": "INSERT", "dynamodb": {}})));
    assert!(!passes(json!({"eventName": "REMOVE", "dynamodb": {}})));
    assert_eq!(
        alerts.on_failure.map(|o| o.logical_id).as_deref(),
        Some("AlertsFailureQueue")
    );
    assert!(TriggerSettings::from_template(&t, "PollerFunction").is_err());
}

const SMALL: &str = r#"
Parameters:
  Size: { Type: Number, Default: 7 }
Resources:
  S: { Type: AWS::Kinesis::Stream }
  F:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        E:
          Type: Kinesis
          Properties:
            Stream: !GetAtt S.Arn
            StartingPosition: LATEST
            BatchSize: !Ref Size
"#;

#[test]
fn applies_lambda_defaults_and_parameter_defaults() {
    let t = Template::parse(SMALL).unwrap();
    let s = TriggerSettings::from_template(&t, "F").unwrap();
    assert_eq!(s.batch_size, 7);
    assert_eq!(s.starting_position, StartingPosition::Latest);
    assert_eq!(s.batching_window, Duration::ZERO);
    assert!(!s.report_batch_item_failures && !s.bisect_on_error);
    assert_eq!((s.max_retry_attempts, s.max_record_age), (None, None));
    assert_eq!(s.on_failure, None);
}

#[test]
fn refuses_what_it_cannot_honour() {
    for (from, to) in [
        ("StartingPosition: LATEST", "StartingPosition: AT_TIMESTAMP"),
        ("BatchSize: !Ref Size", "BatchSize: 0"),
        ("BatchSize: !Ref Size", "MaximumRecordAgeInSeconds: 30"),
        (
            "BatchSize: !Ref Size",
            "FilterCriteria: { Filters: [ { Pattern: '{\"eventName\": [{\"prefix\": \"M\"}]}' } ] }",
        ),
    ] {
        let t = Template::parse(&SMALL.replace(from, to)).unwrap();
        assert!(
            TriggerSettings::from_template(&t, "F").is_err(),
            "{to} was accepted"
        );
    }
}

#[test]
fn filter_patterns_match_nested_values_and_lists() {
    let p = FilterPattern::parse(
        r#"{"eventName": ["MODIFY", "INSERT"], "dynamodb": {"Keys": {"id": {"S": ["a"]}}}}"#,
    )
    .unwrap();
    let record =
        |name: &str, id: &str| json!({"eventName": name, "dynamodb": {"Keys": {"id": {"S": id}}}});
    assert!(p.matches(&record("MODIFY", "a")));
    assert!(p.matches(&record("INSERT", "a")));
    assert!(!p.matches(&record("REMOVE", "a")));
    assert!(!p.matches(&record("MODIFY", "b")));
    assert!(!p.matches(&json!({"eventName": "MODIFY"})));
}

#[test]
fn reads_batch_item_failures_as_lambda_does() {
    let seqs = ["10", "20", "30", "40"];
    let failures = |ids: Value| json!({ "batchItemFailures": ids });
    assert_eq!(read_response(&json!({}), &seqs), InvokeOutcome::Success);
    assert_eq!(read_response(&Value::Null, &seqs), InvokeOutcome::Success);
    assert_eq!(
        read_response(&failures(json!([])), &seqs),
        InvokeOutcome::Success
    );
    assert_eq!(
        read_response(
            &failures(json!([{"itemIdentifier": "40"}, {"itemIdentifier": "20"}])),
            &seqs
        ),
        InvokeOutcome::FailedFrom(1)
    );
    for bad in [json!(""), Value::Null, json!("99")] {
        assert_eq!(
            read_response(&failures(json!([{ "itemIdentifier": bad }])), &seqs),
            InvokeOutcome::FailedFrom(0)
        );
    }
}

fn rules(max: Option<u32>, bisect: bool) -> RetryRules {
    RetryRules {
        report_batch_item_failures: true,
        bisect_on_error: bisect,
        max_retry_attempts: max,
        backoff: Duration::ZERO,
    }
}

/// Runs `deliver` over records 0..n with a function that fails as `fail` says, and
/// returns the delivery and every invocation's records.
async fn run(
    n: u32,
    rules: RetryRules,
    fail: impl Fn(&[u32], usize) -> InvokeOutcome,
) -> (Delivered<u32>, Vec<Vec<u32>>) {
    let calls: RefCell<Vec<Vec<u32>>> = RefCell::new(Vec::new());
    let delivered = deliver(
        (0..n).collect(),
        &rules,
        |_| false,
        |records: Vec<u32>| {
            let call = calls.borrow().len();
            calls.borrow_mut().push(records.clone());
            let result = fail(&records, call);
            async move { result }
        },
    )
    .await;
    (delivered, calls.into_inner())
}

fn error() -> InvokeOutcome {
    InvokeOutcome::Failed(FunctionError {
        error_type: "Boom".into(),
        message: "boom".into(),
    })
}

#[tokio::test]
async fn redelivers_from_the_first_failed_record() {
    // Record 5 fails twice, then succeeds.
    let (d, calls) = run(8, rules(Some(10), true), |records, call| {
        match records.iter().position(|r| *r == 5) {
            Some(i) if call < 2 => InvokeOutcome::FailedFrom(i),
            _ => InvokeOutcome::Success,
        }
    })
    .await;
    assert_eq!(
        calls,
        vec![(0..8).collect::<Vec<_>>(), vec![5, 6, 7], vec![5, 6, 7]]
    );
    assert_eq!((d.succeeded, d.retries, d.invocations), (8, 2, 3));
    assert!(d.discards.is_empty());
}

#[tokio::test]
async fn bisects_on_function_errors_down_to_the_poison_record_and_discards_it() {
    // Any part containing record 5 fails; retries are 2.
    let (d, calls) = run(8, rules(Some(2), true), |records, _| {
        if records.contains(&5) {
            error()
        } else {
            InvokeOutcome::Success
        }
    })
    .await;
    assert_eq!(
        calls,
        vec![
            (0..8).collect::<Vec<_>>(),
            vec![0, 1, 2, 3],
            vec![4, 5, 6, 7],
            vec![4, 5],
            vec![4],
            vec![5],
            vec![5],
            vec![5],
            vec![6, 7],
        ]
    );
    assert_eq!(d.bisections, 3);
    assert_eq!(d.succeeded, 7);
    assert_eq!(
        d.discards,
        vec![Discard {
            records: vec![5],
            condition: DiscardCondition::RetryAttemptsExhausted,
            invoke_count: 6,
            function_error: Some("Boom".into()),
        }]
    );
}

#[tokio::test]
async fn without_bisection_the_whole_batch_is_retried_then_discarded() {
    let (d, calls) = run(4, rules(Some(3), false), |_, _| error()).await;
    assert_eq!(calls.len(), 4, "the first invocation and three retries");
    assert_eq!(d.succeeded, 0);
    assert_eq!(d.discards.len(), 1);
    assert_eq!(d.discards[0].records, vec![0, 1, 2, 3]);
    assert_eq!(d.discards[0].invoke_count, 4);
}

#[tokio::test]
async fn partial_failures_use_up_retries_and_are_not_bisected() {
    let (d, calls) = run(6, rules(Some(1), true), |records, _| {
        InvokeOutcome::FailedFrom(records.iter().position(|r| *r == 3).unwrap_or(0))
    })
    .await;
    assert_eq!(calls, vec![(0..6).collect::<Vec<_>>(), vec![3, 4, 5]]);
    assert_eq!(d.succeeded, 3);
    assert_eq!(d.discards.len(), 1);
    assert_eq!(d.discards[0].records, vec![3, 4, 5]);
    assert_eq!(d.discards[0].function_error, None);
}

#[tokio::test]
async fn ignores_the_response_without_report_batch_item_failures() {
    let mut r = rules(Some(1), false);
    r.report_batch_item_failures = false;
    let (d, calls) = run(3, r, |_, _| InvokeOutcome::FailedFrom(0)).await;
    assert_eq!((calls.len(), d.succeeded), (1, 3));
}

#[tokio::test]
async fn discards_records_past_their_age_before_invoking() {
    let calls = RefCell::new(Vec::new());
    let d = deliver(
        (0..5).collect::<Vec<u32>>(),
        &rules(None, true),
        |r| *r < 2,
        |records| {
            calls.borrow_mut().push(records);
            async { InvokeOutcome::Success }
        },
    )
    .await;
    assert_eq!(calls.into_inner(), vec![vec![2, 3, 4]]);
    assert_eq!(d.discards.len(), 1);
    assert_eq!(d.discards[0].records, vec![0, 1]);
    assert_eq!(d.discards[0].condition, DiscardCondition::RecordAgeExceeded);
    assert_eq!(d.discards[0].invoke_count, 0);
}

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

const STREAM: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/1";

/// A table stream's record `id` with sequence number `seq`, as DynamoDB Streams serves it.
fn stream_record(id: &str, seq: &str) -> Value {
    json!({
        "eventID": id,
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.1",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": { "listing_id": { "S": id } },
            "NewImage": { "listing_id": { "S": id } },
            "SequenceNumber": seq,
            "SizeBytes": 10,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "ApproximateCreationDateTime": Utc::now().timestamp()
        }
    })
}

/// An SDK config whose DynamoDB and DynamoDB Streams calls `answer` answers, from the
/// operation's name and its input (an error when the answer has a `__type`).
fn fake_table_stream(answer: impl Fn(&str, &Value) -> Value + Send + Sync + 'static) -> SdkConfig {
    let http = aws_smithy_http_client::test_util::infallible_client_fn(move |request| {
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or_default()
            .to_owned();
        let input: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let body = match operation.as_str() {
            "DescribeTable" => {
                json!({ "Table": { "TableName": "t", "LatestStreamArn": STREAM } })
            }
            other => answer(other, &input),
        };
        // An answer naming an error type is that error.
        let status = if body.get("__type").is_some() {
            400
        } else {
            200
        };
        http::Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.0")
            .body(body.to_string())
            .expect("a response")
    });
    SdkConfig::builder()
        .http_client(http)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_sdk_dynamodb::config::Credentials::for_tests(),
        ))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

/// A DynamoDB stream as moto serves one after two concurrent writes took the same
/// sequence number: records 1, 2 and 3 carry 1, 2, 2, and the iterator after a page
/// ending on record 3 ("after sequence number 2") starts on that record again, forever.
fn moto_stream_with_a_shared_sequence_number() -> SdkConfig {
    fake_table_stream(|operation, input| match operation {
        "DescribeStream" => json!({
            "StreamDescription": { "StreamArn": STREAM, "Shards": [{ "ShardId": "shard-1" }] }
        }),
        "GetShardIterator" => json!({ "ShardIterator": "from-1" }),
        "GetRecords" => match input["ShardIterator"].as_str() {
            Some("from-1") => json!({
                "Records": [
                    stream_record("r1", "1"),
                    stream_record("r2", "2"),
                    stream_record("r3", "2")
                ],
                "NextShardIterator": "from-3"
            }),
            _ => json!({ "Records": [stream_record("r3", "2")], "NextShardIterator": "from-3" }),
        },
        other => json!({ "message": format!("unexpected {other}") }),
    })
}

/// The stack of the alerts function's trigger: the listing table `t` and its failure queue.
fn alerts_stack() -> ProvisionedStack {
    let resource =
        |logical_id: &str, kind: &str, physical_id: &str| crate::provision::ProvisionedResource {
            logical_id: logical_id.into(),
            kind: kind.into(),
            physical_id: physical_id.into(),
        };
    ProvisionedStack {
        stack_name: "s".into(),
        region: "us-east-1".into(),
        account_id: "000000000000".into(),
        outputs: BTreeMap::new(),
        resources: vec![
            resource("ListingTable", "AWS::DynamoDB::Table", "t"),
            resource("AlertsFailureQueue", "AWS::SQS::Queue", "q"),
        ],
        skipped: Vec::new(),
    }
}

/// Notes the eventIDs it is given.
struct EventIds(RefCell<Vec<String>>);

impl StreamFunction for EventIds {
    type Event = aws_lambda_events::event::dynamodb::Event;
    type Response = Value;

    async fn invoke(&self, event: Self::Event) -> Result<Value, FunctionError> {
        self.0
            .borrow_mut()
            .extend(event.records.into_iter().map(|r| r.event_id));
        Ok(Value::Null)
    }
}

/// The alerts trigger's mapping of the project's template over `sdk`'s table stream,
/// noting the records it delivers.
async fn alerts_mapping(sdk: &SdkConfig) -> Mapping<EventIds> {
    Mapping::new(
        sdk,
        &project_template(),
        &alerts_stack(),
        "AlertsFunction",
        EventIds(RefCell::default()),
    )
    .await
    .expect("the mapping")
}

/// Pumps `mapping` (flushing) until a pass reads nothing and holds nothing back, as
/// [`drain`] does; fails past `max_passes`.
async fn pump_until_quiet(mapping: &mut Mapping<EventIds>, max_passes: u32) {
    for passes in 1.. {
        assert!(
            passes <= max_passes,
            "still reading after {max_passes} passes: {:?}",
            mapping.stats
        );
        let pass = mapping.pump(true).await.expect("a pass");
        if pass.read == 0 && pass.buffered == 0 {
            return;
        }
    }
}

#[tokio::test]
async fn a_record_the_stream_hands_out_again_is_delivered_once_and_the_stream_goes_quiet() {
    let mut alerts = alerts_mapping(&moto_stream_with_a_shared_sequence_number()).await;
    pump_until_quiet(&mut alerts, 5).await;
    assert_eq!(*alerts.function().0.borrow(), ["r1", "r2", "r3"]);
    assert_eq!(alerts.stats.records_read, 3);
}

#[tokio::test]
async fn shards_are_listed_again_when_one_ends_not_before_every_read() {
    // shard-1 holds r1 and ends (a table stream's shard rolling over); its child shard-2,
    // listed from then on, holds r2 and stays open.
    let listings = Arc::new(AtomicUsize::new(0));
    let listed = listings.clone();
    let sdk = fake_table_stream(move |operation, input| match operation {
        "DescribeStream" => {
            let shards = if listed.fetch_add(1, Ordering::SeqCst) == 0 {
                json!([{ "ShardId": "shard-1" }])
            } else {
                json!([{ "ShardId": "shard-1" }, { "ShardId": "shard-2", "ParentShardId": "shard-1" }])
            };
            json!({ "StreamDescription": { "StreamArn": STREAM, "Shards": shards } })
        }
        "GetShardIterator" => json!({ "ShardIterator": input["ShardId"] }),
        "GetRecords" => match input["ShardIterator"].as_str() {
            Some("shard-1") => json!({ "Records": [stream_record("r1", "1")] }),
            Some("shard-2") => {
                json!({ "Records": [stream_record("r2", "2")], "NextShardIterator": "shard-2-end" })
            }
            _ => json!({ "Records": [], "NextShardIterator": "shard-2-end" }),
        },
        other => json!({ "message": format!("unexpected {other}") }),
    });
    let mut alerts = alerts_mapping(&sdk).await;
    for _ in 0..6 {
        alerts.pump(true).await.expect("a pass");
    }
    assert_eq!(*alerts.function().0.borrow(), ["r1", "r2"]);
    // Once at the start, once when shard-1 ended; not at the four passes after.
    assert_eq!(listings.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_lost_iterator_is_replaced_after_the_last_record_read() {
    // shard-1 holds r1 then r2; the iterator after r1 is trimmed away (as DynamoDB Local
    // answers at times), and the one taken after r1's sequence number reads r2.
    let after_requests = Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = after_requests.clone();
    let sdk = fake_table_stream(move |operation, input| match operation {
        "DescribeStream" => json!({
            "StreamDescription": { "StreamArn": STREAM, "Shards": [{ "ShardId": "shard-1" }] }
        }),
        "GetShardIterator" => {
            noted.lock().unwrap().push((
                input["ShardIteratorType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                input["SequenceNumber"].as_str().map(str::to_owned),
            ));
            match input["ShardIteratorType"].as_str() {
                Some("AFTER_SEQUENCE_NUMBER") => json!({ "ShardIterator": "after-1" }),
                _ => json!({ "ShardIterator": "start" }),
            }
        }
        "GetRecords" => match input["ShardIterator"].as_str() {
            Some("start") => {
                json!({ "Records": [stream_record("r1", "1")], "NextShardIterator": "lost" })
            }
            Some("lost") => json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException",
                "message": "The operation attempted to read past the oldest stream record in a shard."
            }),
            Some("after-1") => {
                json!({ "Records": [stream_record("r2", "2")], "NextShardIterator": "quiet" })
            }
            _ => json!({ "Records": [], "NextShardIterator": "quiet" }),
        },
        other => json!({ "message": format!("unexpected {other}") }),
    });
    let mut alerts = alerts_mapping(&sdk).await;
    pump_until_quiet(&mut alerts, 6).await;
    assert_eq!(*alerts.function().0.borrow(), ["r1", "r2"]);
    assert_eq!(
        *after_requests.lock().unwrap(),
        [
            ("TRIM_HORIZON".to_owned(), None),
            ("AFTER_SEQUENCE_NUMBER".to_owned(), Some("1".to_owned()))
        ]
    );
}

/// A table stream of one shard holding r1 and r2 whose iterators after r1 are lost:
/// `after_r1_too` says whether the one taken after r1's sequence number is lost as well, and
/// `always` whether every iterator is (the one from the start after r1 is read, too).
fn stream_losing_iterators(after_r1_too: bool, always: bool) -> SdkConfig {
    let starts = Arc::new(AtomicUsize::new(0));
    fake_table_stream(move |operation, input| {
        let lost = json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException",
            "message": "The operation attempted to read past the oldest stream record in a shard."
        });
        match operation {
            "DescribeStream" => json!({
                "StreamDescription": { "StreamArn": STREAM, "Shards": [{ "ShardId": "shard-1" }] }
            }),
            "GetShardIterator" => match input["ShardIteratorType"].as_str() {
                Some("AFTER_SEQUENCE_NUMBER") => json!({ "ShardIterator": "after-1" }),
                _ if starts.fetch_add(1, Ordering::SeqCst) == 0 => {
                    json!({ "ShardIterator": "start" })
                }
                _ => json!({ "ShardIterator": "start-again" }),
            },
            "GetRecords" => match input["ShardIterator"].as_str() {
                Some("start") => {
                    json!({ "Records": [stream_record("r1", "1")], "NextShardIterator": "lost" })
                }
                Some("after-1") if after_r1_too => lost,
                Some("start-again") if always => lost,
                Some("after-1" | "start-again") => json!({
                    "Records": [stream_record("r1", "1"), stream_record("r2", "2")],
                    "NextShardIterator": "quiet"
                }),
                Some("lost") => lost,
                _ => json!({ "Records": [], "NextShardIterator": "quiet" }),
            },
            other => json!({ "message": format!("unexpected {other}") }),
        }
    })
}

#[tokio::test]
async fn a_shard_whose_iterator_after_its_last_record_is_lost_too_is_read_from_its_oldest() {
    let mut alerts = alerts_mapping(&stream_losing_iterators(true, false)).await;
    pump_until_quiet(&mut alerts, 6).await;
    // r1 again from the oldest record is delivered once.
    assert_eq!(*alerts.function().0.borrow(), ["r1", "r2"]);
}

#[tokio::test]
async fn a_third_lost_iterator_in_a_row_fails_the_pass() {
    let mut alerts = alerts_mapping(&stream_losing_iterators(true, true)).await;
    alerts.pump(true).await.expect("the first pass reads r1");
    let error = alerts.pump(true).await.expect_err("every iterator lost");
    assert!(
        error
            .to_string()
            .contains("every new iterator was lost too"),
        "{error}"
    );
}

/// A table stream of one shard holding one record, `r1`.
fn one_record_stream() -> SdkConfig {
    fake_table_stream(|operation, input| match operation {
        "DescribeStream" => json!({
            "StreamDescription": { "StreamArn": STREAM, "Shards": [{ "ShardId": "shard-1" }] }
        }),
        "GetShardIterator" => json!({ "ShardIterator": input["ShardId"] }),
        "GetRecords" => match input["ShardIterator"].as_str() {
            Some("shard-1") => {
                json!({ "Records": [stream_record("r1", "1")], "NextShardIterator": "shard-1-end" })
            }
            _ => json!({ "Records": [], "NextShardIterator": "shard-1-end" }),
        },
        other => json!({ "message": format!("unexpected {other}") }),
    })
}

#[tokio::test]
async fn a_pass_holds_records_back_for_the_batching_window_unless_it_flushes() {
    let mut alerts = alerts_mapping(&one_record_stream()).await;
    alerts.settings.batching_window = Duration::from_secs(1);
    let waiting = alerts.pump(false).await.expect("a pass");
    assert_eq!(
        (waiting.read, waiting.delivered, waiting.buffered),
        (1, 0, 1)
    );
    let flushed = alerts.pump(true).await.expect("a pass");
    assert_eq!((flushed.delivered, flushed.buffered), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn polling_delivers_a_batch_when_its_window_ends() {
    let mut alerts = alerts_mapping(&one_record_stream()).await;
    alerts.settings.batching_window = Duration::from_secs(1);
    let started = tokio::time::Instant::now();
    alerts
        .poll_shards(|stats| stats.records_succeeded == 1)
        .await
        .expect("the shard polled");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(1_100),
        "{took:?}"
    );
    // The record, then one read when the window ended.
    assert_eq!(
        (alerts.stats.records_read, alerts.stats.invocations),
        (1, 1)
    );
}

/// Notes the eventIDs it is given, after a long pause on a batch holding `slow`.
struct SlowOn(&'static str, RefCell<Vec<String>>);

impl StreamFunction for SlowOn {
    type Event = aws_lambda_events::event::dynamodb::Event;
    type Response = Value;

    async fn invoke(&self, event: Self::Event) -> Result<Value, FunctionError> {
        if event.records.iter().any(|r| r.event_id == self.0) {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        self.1
            .borrow_mut()
            .extend(event.records.into_iter().map(|r| r.event_id));
        Ok(Value::Null)
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_batch_holds_up_only_its_own_shard() {
    // shard-1 holds one record, whose invocation takes 30 s; shard-2 gets a record on each
    // of its first three reads.
    let sdk = fake_table_stream(|operation, input| match operation {
        "DescribeStream" => json!({
            "StreamDescription": { "StreamArn": STREAM, "Shards": [
                { "ShardId": "shard-1" }, { "ShardId": "shard-2" }
            ] }
        }),
        "GetShardIterator" => {
            json!({ "ShardIterator": format!("{}/0", input["ShardId"].as_str().unwrap_or_default()) })
        }
        "GetRecords" => {
            let iterator = input["ShardIterator"].as_str().unwrap_or_default();
            let (shard, read) = iterator.split_once('/').unwrap_or_default();
            let read: u32 = read.parse().unwrap_or_default();
            let records = match (shard, read) {
                ("shard-1", 0) => json!([stream_record("slow", "1")]),
                ("shard-2", 0..3) => json!([stream_record(
                    &format!("fast-{read}"),
                    &format!("{}", 10 + read)
                )]),
                _ => json!([]),
            };
            json!({ "Records": records, "NextShardIterator": format!("{shard}/{}", read + 1) })
        }
        other => json!({ "message": format!("unexpected {other}") }),
    });
    let mut alerts = Mapping::new(
        &sdk,
        &project_template(),
        &alerts_stack(),
        "AlertsFunction",
        SlowOn("slow", RefCell::default()),
    )
    .await
    .expect("the mapping");
    alerts
        .poll_shards(|stats| stats.records_succeeded == 4)
        .await
        .expect("the shards polled");
    // shard-2's records went through while shard-1's batch was in flight.
    assert_eq!(
        *alerts.function().1.borrow(),
        ["fast-0", "fast-1", "fast-2", "slow"]
    );
    assert_eq!(
        (alerts.stats.records_read, alerts.stats.invocations),
        (4, 4)
    );
    // The cursors are back: the next pass reads on from where the loops stopped.
    let pass = alerts.pump(true).await.expect("a pass");
    assert_eq!((pass.read, pass.buffered), (0, 0));
}

/// A table stream listing `first` shards at its first DescribeStream and `later` ones after;
/// each shard holds one record named after it, then stays open and empty, unless it is
/// `shard-1` and `shard_1_ends`.
fn growing_stream(first: Value, later: Value, shard_1_ends: bool) -> (SdkConfig, Arc<AtomicUsize>) {
    let listings = Arc::new(AtomicUsize::new(0));
    let listed = listings.clone();
    let sdk = fake_table_stream(move |operation, input| match operation {
        "DescribeStream" => {
            let shards = if listed.fetch_add(1, Ordering::SeqCst) == 0 {
                first.clone()
            } else {
                later.clone()
            };
            json!({ "StreamDescription": { "StreamArn": STREAM, "Shards": shards } })
        }
        "GetShardIterator" => json!({ "ShardIterator": input["ShardId"] }),
        "GetRecords" => {
            let iterator = input["ShardIterator"].as_str().unwrap_or_default();
            match iterator.strip_suffix("/read") {
                Some("shard-1") if shard_1_ends => json!({ "Records": [] }),
                Some(shard) => {
                    json!({ "Records": [], "NextShardIterator": format!("{shard}/read") })
                }
                None => json!({
                    "Records": [stream_record(iterator, &iterator.len().to_string())],
                    "NextShardIterator": format!("{iterator}/read")
                }),
            }
        }
        other => json!({ "message": format!("unexpected {other}") }),
    });
    (sdk, listings)
}

#[tokio::test(start_paused = true)]
async fn polling_reads_a_child_shard_once_its_parent_ends() {
    let (sdk, listings) = growing_stream(
        json!([{ "ShardId": "shard-1" }]),
        json!([{ "ShardId": "shard-1" }, { "ShardId": "shard-2", "ParentShardId": "shard-1" }]),
        true,
    );
    let mut alerts = alerts_mapping(&sdk).await;
    alerts
        .poll_shards(|stats| stats.records_succeeded == 2)
        .await
        .expect("the shards polled");
    assert_eq!(*alerts.function().0.borrow(), ["shard-1", "shard-2"]);
    assert_eq!(listings.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn polling_finds_a_new_shard_while_the_others_stay_open() {
    let (sdk, listings) = growing_stream(
        json!([{ "ShardId": "shard-1" }]),
        json!([{ "ShardId": "shard-1" }, { "ShardId": "shard-3" }]),
        false,
    );
    let mut alerts = alerts_mapping(&sdk).await;
    let started = tokio::time::Instant::now();
    alerts
        .poll_shards(|stats| stats.records_succeeded == 2)
        .await
        .expect("the shards polled");
    assert_eq!(*alerts.function().0.borrow(), ["shard-1", "shard-3"]);
    // Listed at the start, by the watch after 10 s, and again to read the new shard.
    assert_eq!(listings.load(Ordering::SeqCst), 3);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(11),
        "{took:?}"
    );
}

#[test]
fn an_idle_shard_reads_four_times_a_second_however_long_a_read_takes() {
    let start = tokio::time::Instant::now();
    let window = Duration::from_secs(1);
    // Nothing waits: 250 ms after the last read started, even when it took longer than that.
    assert_eq!(
        next_read(start, None, window),
        start + Duration::from_millis(250)
    );
    // Records wait: when their window ends.
    let since = start + Duration::from_millis(100);
    assert_eq!(
        next_read(start, Some(since), window),
        since + Duration::from_secs(1)
    );
}

#[tokio::test]
async fn a_pass_that_empties_a_full_buffer_still_reads_what_the_shard_has_next() {
    // The first page holds two batches' worth; the second, 50 more. The second pass delivers
    // the second batch from the buffer: it must read the next page too, or a pass reading
    // nothing and leaving nothing buffered says the stream is quiet while 50 records wait.
    let sdk = fake_table_stream(|operation, input| match operation {
        "DescribeStream" => json!({
            "StreamDescription": { "StreamArn": STREAM, "Shards": [{ "ShardId": "shard-1" }] }
        }),
        "GetShardIterator" => json!({ "ShardIterator": "page-1" }),
        "GetRecords" => {
            let page = |range: std::ops::Range<u32>, next: &str| {
                let records: Vec<Value> = range
                    .map(|i| stream_record(&format!("r{i}"), &i.to_string()))
                    .collect();
                json!({ "Records": records, "NextShardIterator": next })
            };
            match input["ShardIterator"].as_str() {
                Some("page-1") => page(0..200, "page-2"),
                Some("page-2") => page(200..250, "page-3"),
                _ => page(0..0, "page-3"),
            }
        }
        other => json!({ "message": format!("unexpected {other}") }),
    });
    let mut alerts = alerts_mapping(&sdk).await;
    pump_until_quiet(&mut alerts, 10).await;
    assert_eq!(alerts.stats.records_succeeded, 250);
    assert_eq!(alerts.function().0.borrow().len(), 250);
}
