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
    // The pipeline's poller, metrics and alerts; the market API's handlers (data and public
    // routes) and authorizer; the S3 import source's importer; the lake's curator.
    assert_eq!(t.resources_of("AWS::Serverless::Function").count(), 8);
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
    let yaml = project_yaml();
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
                arn == "${DataLakeBucketArn}/listings/*" || arn == "${DataLakeBucketArn}/errors/*",
                "{arn}"
            );
        }
    }
    assert_eq!(writes, 2);
}

/// Anonymous requests cannot spend the data route's throughput: every public route of the
/// market API (no authorizer) has throttling of its own, set by the public parameters, and
/// runs a function that serves no authorized route (so it cannot take that function's
/// runs); the data route keeps the stage's default limits; the authorizer caches its
/// answers, keyed on the Authorization header alone.
#[test]
fn public_routes_spend_nothing_of_the_data_routes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let reference = |v: &serde_norway::Value| match v {
        serde_norway::Value::Tagged(t) if t.tag == "Ref" => t.value.as_str().map(str::to_owned),
        _ => None,
    };
    let throttle = |settings: &serde_norway::Value| {
        (
            reference(&settings["ThrottlingRateLimit"]),
            reference(&settings["ThrottlingBurstLimit"]),
        )
    };
    let api = &yaml["Resources"]["MarketApi"]["Properties"];
    assert_eq!(
        throttle(&api["DefaultRouteSettings"]),
        (
            Some("ApiThrottleRateLimit".to_owned()),
            Some("ApiThrottleBurstLimit".to_owned())
        )
    );
    let authorizer = &api["Auth"]["Authorizers"][api["Auth"]["DefaultAuthorizer"]
        .as_str()
        .expect("a default authorizer")];
    let ttl = authorizer["Identity"]["ReauthorizeEvery"]
        .as_u64()
        .unwrap_or(0);
    assert!((1..=3600).contains(&ttl), "authorizer cache TTL {ttl}");
    assert_eq!(
        authorizer["Identity"]["Headers"],
        serde_norway::Value::Sequence(vec!["Authorization".into()])
    );
    let (mut public, mut authorized) = (Vec::new(), Vec::new());
    for (id, resource) in yaml["Resources"].as_mapping().expect("resources") {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (event, spec) in events {
            if spec["Type"] != "HttpApi" {
                continue;
            }
            let props = &spec["Properties"];
            let route = format!(
                "{:?} {:?} ({id:?}.{event:?})",
                props["Method"], props["Path"]
            );
            if props["Auth"]["Authorizer"] == "NONE" {
                assert_eq!(
                    throttle(&props["RouteSettings"]),
                    (
                        Some("ApiPublicThrottleRateLimit".to_owned()),
                        Some("ApiPublicThrottleBurstLimit".to_owned())
                    ),
                    "{route}"
                );
                public.push((id.clone(), route));
            } else {
                assert!(
                    props["RouteSettings"].is_null(),
                    "{route}: the default limits"
                );
                authorized.push((id.clone(), route));
            }
        }
    }
    assert!(
        public.len() >= 3 && !authorized.is_empty(),
        "{public:?} {authorized:?}"
    );
    for (function, route) in &public {
        assert!(
            authorized.iter().all(|(f, _)| f != function),
            "{route} runs the function of an authorized route"
        );
    }
}

/// The project template as YAML (its tags kept: `!Sub`, `!Ref`, `!GetAtt`).
/// template.yaml as written, with the resources of its nested applications' templates
/// (monitoring.yaml, permissions.yaml) as written beside its own.
fn project_yaml() -> serde_norway::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |name: &str| -> serde_norway::Value {
        serde_norway::from_str(&std::fs::read_to_string(root.join(name)).unwrap()).unwrap()
    };
    let mut yaml = read("template.yaml");
    let locations: Vec<String> = yaml["Resources"]
        .as_mapping()
        .expect("resources")
        .values()
        .filter(|r| r["Type"] == "AWS::Serverless::Application")
        .filter_map(|r| r["Properties"]["Location"].as_str().map(str::to_owned))
        .collect();
    for location in locations {
        let nested = read(&location);
        let resources = yaml["Resources"].as_mapping_mut().expect("resources");
        for (id, resource) in nested["Resources"].as_mapping().expect("resources") {
            assert!(
                resources.insert(id.clone(), resource.clone()).is_none(),
                "{id:?}"
            );
        }
    }
    yaml
}

/// The text a scalar or a tagged scalar holds (`!Sub "arn:..."` gives `arn:...`).
fn text(value: &serde_norway::Value) -> Option<String> {
    match value {
        serde_norway::Value::Tagged(t) => text(&t.value),
        other => other.as_str().map(str::to_owned),
    }
}

/// Every grant of a resource policy to an AWS service names the resource acting as its source
/// by ARN (`aws:SourceArn`), this stack's only (its name in the ARN), besides its account: with
/// the account alone, any bucket, topic or alarm of the account qualified. CloudWatch Logs is
/// scoped the way it documents for encrypted log groups instead (the log group's ARN in the
/// encryption context).
#[test]
fn service_grants_name_their_source() {
    let yaml = project_yaml();
    let policies = [
        ("AWS::KMS::Key", "KeyPolicy"),
        ("AWS::SQS::QueuePolicy", "PolicyDocument"),
        ("AWS::SNS::TopicPolicy", "PolicyDocument"),
        ("AWS::S3::BucketPolicy", "PolicyDocument"),
    ];
    let mut grants = 0;
    for (id, resource) in yaml["Resources"].as_mapping().expect("resources") {
        let Some((_, property)) = policies
            .iter()
            .find(|(kind, _)| resource["Type"].as_str() == Some(kind))
        else {
            continue;
        };
        let statements = resource["Properties"][*property]["Statement"]
            .as_sequence()
            .expect("statements");
        for statement in statements {
            let service = &statement["Principal"]["Service"];
            if statement["Effect"] != "Allow" || service.is_null() {
                continue;
            }
            let sid = statement["Sid"].as_str().unwrap_or("?");
            let condition = &statement["Condition"];
            if text(service).is_some_and(|s| s.starts_with("logs.")) {
                assert!(
                    !condition["ArnLike"]["kms:EncryptionContext:aws:logs:arn"].is_null(),
                    "{id:?} {sid}"
                );
                continue;
            }
            assert!(
                service.as_sequence().is_none(),
                "{id:?} {sid}: one service a grant"
            );
            let source = text(&condition["ArnLike"]["aws:SourceArn"])
                .unwrap_or_else(|| panic!("{id:?} {sid}: no aws:SourceArn"));
            assert!(
                source.contains("${AWS::StackName}-"),
                "{id:?} {sid}: {source} names no resource of this stack"
            );
            assert!(
                !condition["StringEquals"]["aws:SourceAccount"].is_null(),
                "{id:?} {sid}"
            );
            grants += 1;
        }
    }
    // The key's three (S3, SNS, CloudWatch), the import queue's and the operations topic's.
    assert_eq!(grants, 5);
}

/// Only the poller's role (and the role the operator names to set the keys) may read the
/// listing-API keys, whatever the account's IAM policies grant.
#[test]
fn only_the_poller_reads_the_listing_keys() {
    let yaml = project_yaml();
    let resources = yaml["Resources"].as_mapping().expect("resources");
    let policy = resources
        .values()
        .find(|r| {
            r["Type"] == "AWS::SecretsManager::ResourcePolicy"
                && text(&r["Properties"]["SecretId"]).as_deref() == Some("ListingApiKeySecret")
        })
        .expect("a resource policy on ListingApiKeySecret");
    assert_eq!(policy["Properties"]["BlockPublicPolicy"], true);
    let statements = policy["Properties"]["ResourcePolicy"]["Statement"]
        .as_sequence()
        .expect("statements");
    let deny = statements
        .iter()
        .find(|s| s["Effect"] == "Deny" && s["Action"] == "secretsmanager:GetSecretValue")
        .expect("a deny of GetSecretValue");
    assert_eq!(deny["Principal"], "*");
    let readers = format!(
        "{:?}",
        deny["Condition"]["StringNotEquals"]["aws:PrincipalArn"]
    );
    assert!(
        readers.contains("Permissions.Outputs.PollerRoleArn"),
        "{readers}"
    );
    assert!(!readers.contains("ApiAuthorizerRole") && !readers.contains("ImporterRole"));
}

/// Files dropped under `imports/` expire (they stayed for good), after the import dead-letter
/// queue's retention: the runbook reads a failed file again from there.
#[test]
fn dropped_import_files_expire_after_the_dead_letter_queue_s_retention() {
    let yaml = project_yaml();
    let rules =
        yaml["Resources"]["DataLakeBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
            .as_sequence()
            .expect("lifecycle rules");
    let imports = rules
        .iter()
        .find(|r| r["Prefix"] == "imports/")
        .expect("a rule for imports/");
    assert_eq!(imports["Status"], "Enabled");
    let days = imports["ExpirationInDays"].as_u64().expect("days");
    let dlq_days =
        yaml["Resources"]["ImportDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]
            .as_u64()
            .expect("retention")
            / 86_400;
    assert!(
        days > dlq_days,
        "{days} days, the dead-letter queue keeps {dlq_days}"
    );
}

/// The poller's second schedule runs the anti-entropy pass: its input is a request for the
/// pass (a typo would make it an ordinary poll, and nothing would correct a lost event), at
/// least hourly, the rate the documented correction time is derived from (docs/metrics.md).
#[test]
fn the_anti_entropy_schedule_asks_for_the_pass_hourly() {
    let yaml = project_yaml();
    let events = &yaml["Resources"]["PollerFunction"]["Properties"]["Events"];
    let pass = &events["AntiEntropy"]["Properties"];
    let input = text(&pass["Input"]).expect("an input");
    let request: realty_poller::run::PollRequest =
        serde_json::from_str(&input).expect("a poll request");
    assert!(
        request.anti_entropy && request.markets.is_empty(),
        "{input}"
    );
    assert_eq!(text(&pass["Schedule"]).as_deref(), Some("rate(1 hour)"));
    // The polls' own schedule sends no input: polls, never the pass.
    assert!(events["Schedule"]["Properties"].get("Input").is_none());
}
