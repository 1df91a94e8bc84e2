use serde_json::json;

use super::*;

const TEMPLATE: &str = r#"
Parameters:
  Mode: { Type: String, Default: PROVISIONED }
  Shards: { Type: Number, Default: 2 }
  Markets: { Type: CommaDelimitedList, Default: "a-tn,b-ny" }
Conditions:
  IsProvisioned: !Equals [!Ref Mode, PROVISIONED]
  IsOnDemand: !Not [!Condition IsProvisioned]
Resources:
  Key: { Type: AWS::KMS::Key }
  Stream:
    Type: AWS::Kinesis::Stream
    Properties:
      ShardCount: !If [IsProvisioned, !Ref Shards, !Ref AWS::NoValue]
      KeyId: !GetAtt Key.Arn
      Alias: !Sub alias/${AWS::StackName}-data
      Input: !Sub
        - '{"markets":["${M}"]}'
        - M: !Join ['","', !Ref Markets]
      Literal: !Sub "${!NotAVariable} in ${AWS::Region}"
      List: [one, !Ref AWS::NoValue, !Ref Mode]
Outputs:
  StreamName: { Value: !Ref Stream }
"#;

fn context(template: &Template, overrides: &[(&str, &str)]) -> Context {
    let overrides = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut ctx = Context::new(template, "stack", "eu-west-1", "123456789012", &overrides).unwrap();
    ctx.set_ref("Key", "key-id");
    ctx.set_attribute(
        "Key",
        "Arn",
        "arn:aws:kms:eu-west-1:123456789012:key/key-id",
    );
    ctx.set_ref("Stream", "stack-stream");
    ctx
}

#[test]
fn evaluates_short_form_intrinsics() {
    let t = Template::parse(TEMPLATE).unwrap();
    let ctx = context(&t, &[]);
    let props = ctx
        .resolve(&t, &t.resources["Stream"].properties, "Stream")
        .unwrap();
    assert_eq!(
        props,
        json!({
            "ShardCount": "2",
            "KeyId": "arn:aws:kms:eu-west-1:123456789012:key/key-id",
            "Alias": "alias/stack-data",
            "Input": r#"{"markets":["a-tn","b-ny"]}"#,
            "Literal": "${NotAVariable} in eu-west-1",
            "List": ["one", "PROVISIONED"],
        })
    );
    assert_eq!(
        ctx.resolve(&t, &t.outputs["StreamName"], "out").unwrap(),
        json!("stack-stream")
    );
}

#[test]
fn conditions_follow_parameter_overrides() {
    let t = Template::parse(TEMPLATE).unwrap();
    let ctx = context(&t, &[("Mode", "ON_DEMAND")]);
    assert!(ctx.condition(&t, "IsOnDemand").unwrap());
    let props = ctx
        .resolve(&t, &t.resources["Stream"].properties, "Stream")
        .unwrap();
    assert!(props.get("ShardCount").is_none());
}

#[test]
fn rejects_unknown_parameters_and_unknown_refs() {
    let t = Template::parse(TEMPLATE).unwrap();
    let overrides = [("Nope".to_string(), "1".to_string())]
        .into_iter()
        .collect();
    assert!(Context::new(&t, "s", "r", "a", &overrides).is_err());
    let ctx = Context::new(&t, "s", "r", "a", &BTreeMap::new()).unwrap();
    let err = ctx
        .resolve(&t, &json!({"Ref": "Missing"}), "X")
        .unwrap_err();
    assert!(err.to_string().contains("Missing"), "{err}");
}

#[test]
fn reads_the_project_template() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let t = Template::load(&path).unwrap();
    // Listings, markets (with the alert feed and its claims), config.
    assert_eq!(t.resources_of("AWS::DynamoDB::Table").count(), 3);
    // The pipeline's poller, metrics and alerts; the market API's handler and authorizer;
    // the S3 import source's importer; the lake's curator.
    assert_eq!(t.resources_of("AWS::Serverless::Function").count(), 7);
    assert_eq!(t.resources_of("AWS::Serverless::HttpApi").count(), 1);
}

#[test]
fn resources_keep_their_condition() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let t = Template::load(&path).unwrap();
    let subscription = &t.resources["OperationsEmailSubscription"];
    assert_eq!(
        subscription.condition.as_deref(),
        Some("HasOperationsEmail")
    );
    assert_eq!(t.resources["OperationsTopic"].condition, None);
    let by_default = Context::new(&t, "s", "r", "a", &BTreeMap::new()).unwrap();
    assert!(!by_default.condition(&t, "HasOperationsEmail").unwrap());
    let overrides = [("OperationsEmail".to_string(), "ops@example.com".to_string())]
        .into_iter()
        .collect();
    let with_email = Context::new(&t, "s", "r", "a", &overrides).unwrap();
    assert!(with_email.condition(&t, "HasOperationsEmail").unwrap());
}

#[test]
fn references_are_the_names_refs_getatts_and_sub_variables_use() {
    let t = Template::parse(TEMPLATE).unwrap();
    let names: Vec<String> = references(&t.resources["Stream"].properties)
        .into_iter()
        .collect();
    // M is the Sub's own variable; ${!NotAVariable} is literal text.
    assert_eq!(
        names,
        [
            "AWS::NoValue",
            "AWS::Region",
            "AWS::StackName",
            "Key",
            "Markets",
            "Mode",
            "Shards"
        ]
    );
    let url = Template::parse(
        "Resources: { Api: { Type: AWS::Serverless::HttpApi } }\nOutputs:\n  Url: { Value: !Sub 'https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/' }\n",
    )
    .unwrap();
    assert!(references(&url.outputs["Url"]).contains("Api"));
}

/// One metrics batch a shard at a time: a stream of more shards than the function's
/// reserved runs would queue the rest behind it, so the template allows no more.
#[test]
fn the_stream_has_no_more_shards_than_the_metrics_function_has_runs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let most_shards = yaml["Parameters"]["KinesisShardCount"]["MaxValue"]
        .as_u64()
        .expect("KinesisShardCount has a MaxValue");
    let runs = yaml["Resources"]["MetricsFunction"]["Properties"]["ReservedConcurrentExecutions"]
        .as_u64()
        .expect("MetricsFunction reserves its concurrency");
    assert!(
        most_shards <= runs,
        "{most_shards} shards, {runs} metrics runs"
    );
}

/// Firehose writes the stream's objects and its delivery errors, nothing else of the lake:
/// not its tables, the poller's state or the raw pages.
#[test]
fn the_delivery_stream_writes_only_its_prefixes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let text_of = |v: &serde_norway::Value| match v {
        serde_norway::Value::Tagged(t) => t.value.as_str().map(str::to_owned),
        other => other.as_str().map(str::to_owned),
    };
    let statements = yaml["Resources"]["DeliveryStreamRole"]["Properties"]["Policies"][0]
        ["PolicyDocument"]["Statement"]
        .as_sequence()
        .expect("statements");
    let mut writes = 0;
    for statement in statements {
        let actions: Vec<&str> = statement["Action"]
            .as_sequence()
            .map(|a| a.iter().filter_map(serde_norway::Value::as_str).collect())
            .unwrap_or_default();
        if !actions
            .iter()
            .any(|a| a.starts_with("s3:") && a.contains("Object"))
        {
            continue;
        }
        for resource in statement["Resource"].as_sequence().expect("a list") {
            let arn = text_of(resource).expect("an ARN");
            writes += 1;
            assert!(
                arn == "${DataLakeBucket.Arn}/listings/*"
                    || arn == "${DataLakeBucket.Arn}/errors/*",
                "{arn}"
            );
        }
    }
    assert_eq!(writes, 2);
}
