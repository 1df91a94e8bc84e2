//! What the runner's tests share: the project's template, a fake table stream answering
//! DynamoDB and DynamoDB Streams calls, and the alerts trigger's mapping over it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use aws_config::SdkConfig;
use chrono::Utc;
use serde_json::{Value, json};

use crate::provision::ProvisionedStack;
use crate::runner::*;
use crate::template::Template;

pub(super) fn project_template() -> Template {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    Template::load(&path).expect("template.yaml parses")
}

pub(super) const STREAM: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/1";

/// A table stream's record `id` with sequence number `seq`, as DynamoDB Streams serves it.
pub(super) fn stream_record(id: &str, seq: &str) -> Value {
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
pub(super) fn fake_table_stream(
    answer: impl Fn(&str, &Value) -> Value + Send + Sync + 'static,
) -> SdkConfig {
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

/// The stack of the alerts function's trigger: the listing table `t` and its failure queue.
pub(super) fn alerts_stack() -> ProvisionedStack {
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
        function_policies: BTreeMap::new(),
    }
}

/// Notes the eventIDs it is given.
pub(super) struct EventIds(pub(super) RefCell<Vec<String>>);

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
pub(super) async fn alerts_mapping(sdk: &SdkConfig) -> Mapping<EventIds> {
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
pub(super) async fn pump_until_quiet(mapping: &mut Mapping<EventIds>, max_passes: u32) {
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
