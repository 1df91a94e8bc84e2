//! The local stack is the template: what provisioning created, read back through the AWS
//! APIs, has the settings template.yaml gives each resource.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use libtest_mimic::Failed;
use realty_infra::provision::{ProvisionedStack, physical_name};
use realty_infra::template::{Context, Template, as_i64};
use realty_tests::{Explain, TestAws, ensure};
use serde_json::Value;

crate::async_tests!(
    provisioned_resources_match_template,
    on_demand_stream_mode_follows_the_parameter,
    provisioning_twice_finds_the_same_stack,
    stacks_under_different_names_do_not_meet,
    every_template_resource_is_provisioned_or_skipped_with_a_reason,
    deployed_roles_have_no_managed_policy_and_no_unexplained_wildcard,
    the_iam_check_refuses_the_roles_sam_would_make,
    data_stores_are_retained_and_protected_from_deletion,
);

fn ensure_eq<T: PartialEq + std::fmt::Debug>(
    actual: T,
    expected: T,
    what: &str,
) -> Result<(), Failed> {
    ensure(
        actual == expected,
        format!("{what}: got {actual:?}, template says {expected:?}"),
    )
}

/// The template's properties of `logical_id`, evaluated for `stack` (so `!Ref`s to
/// parameters and resources become the values provisioning used).
fn template_props(template: &Template, stack: &ProvisionedStack, logical_id: &str) -> Value {
    let params: BTreeMap<String, String> = BTreeMap::new();
    let mut ctx = Context::new(
        template,
        &stack.stack_name,
        &stack.region,
        &stack.account_id,
        &params,
    )
    .unwrap();
    // Parameters the test overrode are checked separately; references to other resources
    // are resolved to their physical ids.
    for r in &stack.resources {
        ctx.set_ref(&r.logical_id, &r.physical_id);
    }
    let key_arn = stack.outputs["DataKeyArn"].clone();
    ctx.set_attribute("DataKey", "Arn", key_arn);
    for (id, _) in template.resources_of("AWS::S3::Bucket") {
        let name = physical_name(&stack.stack_name, id);
        ctx.set_attribute(id, "Arn", format!("arn:aws:s3:::{name}"));
    }
    for (id, _) in template.resources_of("AWS::SQS::Queue") {
        let name = physical_name(&stack.stack_name, id);
        ctx.set_attribute(
            id,
            "Arn",
            format!("arn:aws:sqs:{}:{}:{name}", stack.region, stack.account_id),
        );
    }
    for (id, _) in template.resources_of("AWS::IAM::Role") {
        let name = physical_name(&stack.stack_name, id);
        ctx.set_attribute(
            id,
            "Arn",
            format!("arn:aws:iam::{}:role/{name}", stack.account_id),
        );
    }
    for (id, kind) in [
        ("DeliveryStreamLogGroup", "AWS::Logs::LogGroup"),
        ("DeliveryStreamLogStream", "AWS::Logs::LogStream"),
    ] {
        if template.resources.get(id).is_some_and(|r| r.kind == kind) {
            ctx.set_ref(id, physical_name(&stack.stack_name, id));
        }
    }
    ctx.resolve(
        template,
        &template.resources[logical_id].properties,
        logical_id,
    )
    .unwrap()
}

fn physical(stack: &ProvisionedStack, logical_id: &str) -> String {
    stack
        .resources
        .iter()
        .find(|r| r.logical_id == logical_id)
        .map(|r| r.physical_id.clone())
        .unwrap_or_else(|| panic!("{logical_id} was not provisioned"))
}

fn strs(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.get(key).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

async fn provisioned_resources_match_template(aws: Arc<TestAws>) -> Result<(), Failed> {
    let template = aws.template();
    let stack = aws.provision(&[("KinesisShardCount", "3")]).await;
    let config = aws.sdk_config().await;

    // DynamoDB: key schemas, attribute types, indexes, stream view type, TTL, PITR, SSE.
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let tables: Vec<&str> = template
        .resources_of("AWS::DynamoDB::Table")
        .map(|(id, _)| id)
        .collect();
    ensure_eq(tables.len(), 3, "DynamoDB tables in the template")?;
    for id in tables {
        let props = template_props(&template, &stack, id);
        let name = physical(&stack, id);
        let table = dynamodb
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .explain("describe_table")?
            .table
            .ok_or("no table")?;
        let keys: Vec<(String, String)> = table
            .key_schema()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect();
        let expected_keys: Vec<(String, String)> = strs(&props["KeySchema"], "AttributeName")
            .into_iter()
            .zip(strs(&props["KeySchema"], "KeyType"))
            .collect();
        ensure_eq(keys, expected_keys, &format!("{id} key schema"))?;
        let attributes: BTreeSet<(String, String)> = table
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect();
        let expected_attributes: BTreeSet<(String, String)> =
            strs(&props["AttributeDefinitions"], "AttributeName")
                .into_iter()
                .zip(strs(&props["AttributeDefinitions"], "AttributeType"))
                .collect();
        ensure_eq(
            attributes,
            expected_attributes,
            &format!("{id} attribute definitions"),
        )?;
        let indexes: BTreeMap<String, (Vec<String>, String)> = table
            .global_secondary_indexes()
            .iter()
            .map(|g| {
                let keys = g
                    .key_schema()
                    .iter()
                    .map(|k| format!("{}:{}", k.attribute_name(), k.key_type().as_str()))
                    .collect();
                let projection = g
                    .projection()
                    .and_then(|p| p.projection_type())
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                (
                    g.index_name().unwrap_or_default().to_owned(),
                    (keys, projection),
                )
            })
            .collect();
        let expected_indexes: BTreeMap<String, (Vec<String>, String)> = props
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|g| {
                let names = strs(&g["KeySchema"], "AttributeName");
                let types = strs(&g["KeySchema"], "KeyType");
                let keys = names
                    .iter()
                    .zip(&types)
                    .map(|(n, t)| format!("{n}:{t}"))
                    .collect();
                let projection = g["Projection"]["ProjectionType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                (
                    g["IndexName"].as_str().unwrap_or_default().to_owned(),
                    (keys, projection),
                )
            })
            .collect();
        ensure_eq(
            indexes,
            expected_indexes,
            &format!("{id} global secondary indexes"),
        )?;
        let view_type = table
            .stream_specification()
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_owned());
        let expected_view = props
            .pointer("/StreamSpecification/StreamViewType")
            .and_then(Value::as_str)
            .map(str::to_owned);
        ensure_eq(view_type, expected_view, &format!("{id} stream view type"))?;
        let billing = table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str().to_owned());
        ensure_eq(
            billing.as_deref(),
            props["BillingMode"].as_str(),
            &format!("{id} billing mode"),
        )?;

        let ttl = dynamodb
            .describe_time_to_live()
            .table_name(&name)
            .send()
            .await
            .explain("describe_time_to_live")?;
        let ttl_attribute = ttl
            .time_to_live_description()
            .and_then(|d| d.attribute_name())
            .map(str::to_owned);
        let expected_ttl = props
            .pointer("/TimeToLiveSpecification/AttributeName")
            .and_then(Value::as_str)
            .map(str::to_owned);
        ensure_eq(ttl_attribute, expected_ttl, &format!("{id} TTL attribute"))?;

        let backups = dynamodb
            .describe_continuous_backups()
            .table_name(&name)
            .send()
            .await
            .explain("describe_continuous_backups")?;
        let pitr = backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .map(|s| s.as_str().to_owned());
        ensure_eq(
            pitr.as_deref(),
            Some("ENABLED"),
            &format!("{id} point-in-time recovery"),
        )?;
    }
    // The listing table's stream is the one the alerts function reads.
    let listing_table = dynamodb
        .describe_table()
        .table_name(&stack.outputs["ListingTableName"])
        .send()
        .await
        .explain("describe_table")?;
    ensure_eq(
        listing_table.table().and_then(|t| t.latest_stream_arn()),
        Some(stack.outputs["ListingTableStreamArn"].as_str()),
        "ListingTableStreamArn output",
    )?;

    // Kinesis: the shard count parameter, encryption with the stack's key.
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let summary = kinesis
        .describe_stream_summary()
        .stream_name(&stack.outputs["ListingEventsStreamName"])
        .send()
        .await
        .explain("describe_stream_summary")?
        .stream_description_summary
        .ok_or("no stream summary")?;
    ensure_eq(
        summary.open_shard_count,
        3,
        "open shards (KinesisShardCount=3)",
    )?;
    ensure_eq(
        summary
            .encryption_type
            .map(|e| e.as_str().to_owned())
            .as_deref(),
        Some("KMS"),
        "stream encryption",
    )?;
    ensure_eq(
        summary.key_id.as_deref(),
        Some(stack.outputs["DataKeyArn"].as_str()),
        "stream key",
    )?;
    let stream_props = template_props(&template, &stack, "ListingEventsStream");
    ensure_eq(
        i64::from(summary.retention_period_hours),
        as_i64(&stream_props["RetentionPeriodHours"]).unwrap_or(24),
        "retention",
    )?;

    // Firehose: destination bucket, date-partitioned prefix, error prefix, buffering, compression.
    let firehose = aws_sdk_firehose::Client::new(&config);
    let fh_props = template_props(&template, &stack, "DeliveryStream");
    let fh_dest = &fh_props["ExtendedS3DestinationConfiguration"];
    let description = firehose
        .describe_delivery_stream()
        .delivery_stream_name(&stack.outputs["DeliveryStreamName"])
        .send()
        .await
        .explain("describe_delivery_stream")?
        .delivery_stream_description
        .ok_or("no delivery stream")?;
    let destination = description
        .destinations()
        .first()
        .and_then(|d| d.extended_s3_destination_description())
        .ok_or("no extended S3 destination")?;
    ensure_eq(
        Some(destination.prefix().unwrap_or_default()),
        fh_dest["Prefix"].as_str(),
        "Firehose prefix",
    )?;
    ensure(
        destination
            .prefix()
            .unwrap_or_default()
            .contains("dt=!{timestamp:yyyy-MM-dd}"),
        "Firehose prefix is partitioned by date",
    )?;
    ensure_eq(
        Some(destination.error_output_prefix().unwrap_or_default()),
        fh_dest["ErrorOutputPrefix"].as_str(),
        "Firehose error prefix",
    )?;
    ensure_eq(
        destination.bucket_arn(),
        format!("arn:aws:s3:::{}", stack.outputs["DataLakeBucketName"]).as_str(),
        "Firehose bucket",
    )?;
    ensure_eq(
        Some(destination.compression_format().as_str()),
        fh_dest["CompressionFormat"].as_str(),
        "Firehose compression",
    )?;
    let hints = destination.buffering_hints().ok_or("no buffering hints")?;
    ensure_eq(
        hints.interval_in_seconds().map(i64::from),
        as_i64(&fh_dest["BufferingHints"]["IntervalInSeconds"]),
        "buffer interval",
    )?;
    ensure_eq(
        hints.size_in_mbs().map(i64::from),
        as_i64(&fh_dest["BufferingHints"]["SizeInMBs"]),
        "buffer size",
    )?;

    // S3: encryption with the stack's key, public access blocked, lifecycle, TLS-only policy.
    let s3 = realty_aws::sdk::s3_client(&config);
    let bucket = stack.outputs["DataLakeBucketName"].clone();
    let enc = s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .explain("get_bucket_encryption")?;
    let rule = enc
        .server_side_encryption_configuration()
        .and_then(|c| c.rules().first())
        .and_then(|r| r.apply_server_side_encryption_by_default())
        .ok_or("no default encryption")?;
    ensure_eq(
        rule.sse_algorithm().as_str(),
        "aws:kms",
        "bucket encryption",
    )?;
    ensure_eq(
        rule.kms_master_key_id(),
        Some(stack.outputs["DataKeyArn"].as_str()),
        "bucket key",
    )?;
    let pab = s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .explain("get_public_access_block")?;
    let pab = pab
        .public_access_block_configuration()
        .ok_or("no public access block")?;
    ensure(
        pab.block_public_acls() == Some(true)
            && pab.block_public_policy() == Some(true)
            && pab.ignore_public_acls() == Some(true)
            && pab.restrict_public_buckets() == Some(true),
        format!("public access is not fully blocked: {pab:?}"),
    )?;
    // Versioning is not read back: moto 5.2 answers GetBucketVersioning with a
    // <GetBucketVersioningResponse> root that the SDK rejects.
    let bucket_props = template_props(&template, &stack, "DataLakeBucket");
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .explain("get_bucket_lifecycle_configuration")?;
    let rules: BTreeSet<String> = lifecycle
        .rules()
        .iter()
        .filter_map(|r| r.id().map(str::to_owned))
        .collect();
    let expected_rules: BTreeSet<String> =
        strs(&bucket_props["LifecycleConfiguration"]["Rules"], "Id")
            .into_iter()
            .collect();
    ensure_eq(rules, expected_rules, "lifecycle rules")?;
    // The TLS-only bucket policy is in the template, and skipped locally (the emulator
    // speaks plain HTTP and would enforce it against every request).
    let policy = template_props(&template, &stack, "DataLakeBucketPolicy");
    let denies_plain_http = policy["PolicyDocument"]["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| {
            s["Effect"] == "Deny"
                && s.pointer("/Condition/Bool/aws:SecureTransport")
                    .is_some_and(|v| v == "false" || v == false)
        });
    ensure(
        denies_plain_http,
        format!("the template's bucket policy does not deny plain HTTP: {policy}"),
    )?;
    ensure(
        stack
            .skipped
            .iter()
            .any(|r| r.logical_id == "DataLakeBucketPolicy" && r.reason.contains("TLS")),
        "the bucket policy is not listed as skipped, with its reason",
    )?;

    // SNS and SQS: encrypted with the stack's key, retention as written.
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns
        .get_topic_attributes()
        .topic_arn(&stack.outputs["AlertTopicArn"])
        .send()
        .await
        .explain("get_topic_attributes")?;
    let topic_key = topic
        .attributes()
        .and_then(|a| a.get("KmsMasterKeyId"))
        .cloned();
    ensure_eq(
        topic_key.as_deref(),
        Some(physical(&stack, "DataKey").as_str()),
        "topic key",
    )?;
    let sqs = aws_sdk_sqs::Client::new(&config);
    for (id, _) in template.resources_of("AWS::SQS::Queue") {
        let props = template_props(&template, &stack, id);
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(physical(&stack, id))
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .explain("get_queue_attributes")?;
        let attrs = attrs.attributes().ok_or("no queue attributes")?;
        let get = |k: &str| {
            attrs
                .get(&aws_sdk_sqs::types::QueueAttributeName::from(k))
                .cloned()
        };
        ensure_eq(
            get("MessageRetentionPeriod"),
            props
                .get("MessageRetentionPeriod")
                .and_then(as_i64)
                .map(|v| v.to_string()),
            &format!("{id} retention"),
        )?;
        ensure_eq(
            get("KmsMasterKeyId"),
            props["KmsMasterKeyId"].as_str().map(str::to_owned),
            &format!("{id} key"),
        )?;
        let redrive: Option<Value> = get("RedrivePolicy")
            .map(|text| serde_json::from_str(&text))
            .transpose()?;
        // The count may come back as a number or a string.
        let policy = |r: &Value| {
            let count = &r["maxReceiveCount"];
            let count = count
                .as_i64()
                .or_else(|| count.as_str().and_then(|c| c.parse().ok()));
            (r["deadLetterTargetArn"].as_str().map(str::to_owned), count)
        };
        ensure_eq(
            redrive.as_ref().map(policy),
            props.get("RedrivePolicy").map(policy),
            &format!("{id} redrive policy"),
        )?;
    }

    // The lake bucket notifies the import queue of what is created under imports/.
    let lake = template_props(&template, &stack, "DataLakeBucket");
    let expected = &lake["NotificationConfiguration"]["QueueConfigurations"][0];
    let notifications = s3
        .get_bucket_notification_configuration()
        .bucket(physical(&stack, "DataLakeBucket"))
        .send()
        .await
        .explain("get_bucket_notification_configuration")?;
    let queue = notifications
        .queue_configurations()
        .first()
        .ok_or("the lake bucket notifies no queue")?;
    let prefix = queue
        .filter()
        .and_then(|f| f.key())
        .map(|k| k.filter_rules())
        .and_then(|rules| rules.first())
        .and_then(|r| r.value())
        .map(str::to_owned);
    ensure_eq(
        (queue.queue_arn().to_owned(), prefix),
        (
            expected["Queue"].as_str().unwrap_or_default().to_owned(),
            expected
                .pointer("/Filter/S3Key/Rules/0/Value")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ),
        "lake bucket notification",
    )?;
    Ok(())
}

async fn on_demand_stream_mode_follows_the_parameter(aws: Arc<TestAws>) -> Result<(), Failed> {
    let stack = aws.provision(&[("KinesisStreamMode", "ON_DEMAND")]).await;
    let kinesis = aws_sdk_kinesis::Client::new(&aws.sdk_config().await);
    let summary = kinesis
        .describe_stream_summary()
        .stream_name(&stack.outputs["ListingEventsStreamName"])
        .send()
        .await
        .explain("describe_stream_summary")?
        .stream_description_summary
        .ok_or("no stream summary")?;
    let mode = summary
        .stream_mode_details()
        .map(|m| m.stream_mode().as_str().to_owned());
    ensure_eq(mode.as_deref(), Some("ON_DEMAND"), "stream mode")
}

async fn provisioning_twice_finds_the_same_stack(aws: Arc<TestAws>) -> Result<(), Failed> {
    let name = aws.unique_stack_name();
    let first = aws.provision_as(&name, &[]).await;
    let second = aws.provision_as(&name, &[]).await;
    ensure_eq(
        &second.outputs,
        &first.outputs,
        "outputs of a second provisioning",
    )?;
    ensure_eq(
        &second.resources,
        &first.resources,
        "resources of a second provisioning",
    )
}

async fn stacks_under_different_names_do_not_meet(aws: Arc<TestAws>) -> Result<(), Failed> {
    let a = aws.provision(&[]).await;
    let b = aws.provision(&[]).await;
    for (key, value) in &a.outputs {
        ensure(
            b.outputs[key] != *value,
            format!("output {key} is shared by two stacks: {value}"),
        )?;
    }
    Ok(())
}

async fn every_template_resource_is_provisioned_or_skipped_with_a_reason(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let template = aws.template();
    let stack = aws.provision(&[]).await;
    let provisioned: BTreeSet<&str> = stack
        .resources
        .iter()
        .map(|r| r.logical_id.as_str())
        .collect();
    let skipped: BTreeMap<&str, &str> = stack
        .skipped
        .iter()
        .map(|r| (r.logical_id.as_str(), r.reason.as_str()))
        .collect();
    for (id, resource) in &template.resources {
        let here = provisioned.contains(id.as_str());
        let reason = skipped.get(id.as_str());
        ensure(
            here != reason.is_some(),
            format!(
                "{id} ({}) must be either provisioned or skipped",
                resource.kind
            ),
        )?;
        ensure(
            reason.is_none_or(|r| !r.is_empty()),
            format!("{id} skipped without a reason"),
        )?;
        if resource.kind == "AWS::Serverless::Function" {
            ensure(
                reason.is_some(),
                format!("{id}: a function cannot run in the emulator"),
            )?;
            for event in resource.properties["Events"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                let event_id = format!("{id}.{event}");
                ensure(
                    skipped.contains_key(event_id.as_str()),
                    format!("trigger {event_id} is not listed as skipped"),
                )?;
            }
        }
    }
    for data_plane in [
        "AWS::DynamoDB::Table",
        "AWS::Kinesis::Stream",
        "AWS::S3::Bucket",
        "AWS::KinesisFirehose::DeliveryStream",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::SecretsManager::Secret",
    ] {
        for (id, _) in template.resources_of(data_plane) {
            ensure(
                provisioned.contains(id),
                format!("{id} ({data_plane}) was not provisioned"),
            )?;
        }
    }
    Ok(())
}

/// What `infra/check_iam.py` makes of a template: the template as CloudFormation deploys it
/// (after the SAM transform), the check's exit status and its report.
struct IamCheck {
    transformed: Value,
    status: Option<i32>,
    report: String,
}

fn run_iam_check(aws: &TestAws, template: &Path) -> Result<IamCheck, Failed> {
    let venv = realty_infra::emulator::ensure_venv(&aws.project_root).explain("the .venv")?;
    let out_path = aws
        .project_root
        .join("target/realty")
        .join(format!("{}-transformed.json", aws.unique_stack_name()));
    std::fs::create_dir_all(out_path.parent().ok_or("no parent")?).explain("target/realty")?;
    let output = Command::new(venv.join("bin/python"))
        .arg(aws.project_root.join("infra/check_iam.py"))
        .arg(template)
        .arg("--transformed")
        .arg(&out_path)
        .output()
        .explain("running infra/check_iam.py")?;
    let report = String::from_utf8_lossy(&output.stderr).into_owned();
    let text = std::fs::read_to_string(&out_path)
        .map_err(|e| format!("no transformed template ({e}); the check said: {report}"))?;
    let _ = std::fs::remove_file(&out_path);
    Ok(IamCheck {
        transformed: serde_json::from_str(&text).explain("transformed template")?,
        status: output.status.code(),
        report,
    })
}

/// The statements of a role's inline policies, with `Fn::If` branches flattened.
fn role_statements(role: &Value) -> Vec<Value> {
    fn flatten(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
            Value::Object(m) if m.contains_key("Fn::If") => {
                if let Some(args) = m["Fn::If"].as_array() {
                    args.iter().skip(1).for_each(|b| flatten(b, out));
                }
            }
            Value::Object(m) if m.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") => {}
            other => out.push(other.clone()),
        }
    }
    let mut out = Vec::new();
    for policy in role["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        flatten(&policy["PolicyDocument"]["Statement"], &mut out);
    }
    out
}

fn string_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Issue 12: SAM attached AWSLambdaKinesisExecutionRole, AWSLambdaDynamoDBExecutionRole,
/// AWSLambdaBasicExecutionRole and AWSXrayWriteOnlyAccess (all on `*`) to the functions'
/// roles, which checkov never saw. As deployed, each function's role has no managed policy,
/// no wildcard action, and `*` only for the X-Ray calls that accept no resource ARN.
async fn deployed_roles_have_no_managed_policy_and_no_unexplained_wildcard(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let check = run_iam_check(&aws, &aws.project_root.join("template.yaml"))?;
    ensure_eq(
        check.status,
        Some(0),
        &format!("check_iam.py status ({})", check.report),
    )?;
    let resources = check.transformed["Resources"]
        .as_object()
        .ok_or("no Resources")?;
    let functions: Vec<(&String, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Lambda::Function")
        .collect();
    ensure_eq(functions.len(), 7, "functions as deployed")?;
    let mut roles = BTreeSet::new();
    for (id, function) in functions {
        let role_id = function
            .pointer("/Properties/Role/Fn::GetAtt/0")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{id}: its role is not one of the template's"))?;
        ensure(
            roles.insert(role_id.to_owned()),
            format!("{id} shares its role {role_id}"),
        )?;
        let role = &resources[role_id];
        ensure_eq(role["Type"].as_str(), Some("AWS::IAM::Role"), role_id)?;
        let managed = string_list(&role["Properties"]["ManagedPolicyArns"]);
        ensure(
            managed.is_empty(),
            format!("{role_id} ({id}) has managed policies: {managed:?}"),
        )?;
        let statements = role_statements(role);
        ensure(!statements.is_empty(), format!("{role_id} grants nothing"))?;
        for statement in statements {
            let actions = string_list(&statement["Action"]);
            ensure(
                actions.iter().all(|a| !a.contains('*')),
                format!("{role_id}: wildcard action in {statement}"),
            )?;
            if string_list(&statement["Resource"]).iter().any(|r| r == "*") {
                ensure(
                    actions
                        .iter()
                        .all(|a| a == "xray:PutTraceSegments" || a == "xray:PutTelemetryRecords"),
                    format!("{role_id}: Resource \"*\" beyond X-Ray in {statement}"),
                )?;
            }
        }
    }
    Ok(())
}

/// The check fails the template as it was: a function without its own role gets SAM's role,
/// with the AWS-managed policies granting on every stream.
async fn the_iam_check_refuses_the_roles_sam_would_make(aws: Arc<TestAws>) -> Result<(), Failed> {
    let text =
        std::fs::read_to_string(aws.project_root.join("template.yaml")).explain("template.yaml")?;
    let role_line = "      Role: !GetAtt MetricsRole.Arn\n";
    ensure(
        text.contains(role_line),
        "MetricsFunction no longer names MetricsRole",
    )?;
    let crafted = aws
        .project_root
        .join("target/realty")
        .join(format!("{}-sam-role.yaml", aws.unique_stack_name()));
    std::fs::create_dir_all(crafted.parent().ok_or("no parent")?).explain("target/realty")?;
    std::fs::write(&crafted, text.replace(role_line, "")).explain("crafted template")?;
    let check = run_iam_check(&aws, &crafted);
    let _ = std::fs::remove_file(&crafted);
    let check = check?;
    ensure_eq(check.status, Some(1), "check_iam.py status on SAM's role")?;
    for policy in [
        "AWSLambdaKinesisExecutionRole",
        "AWSLambdaBasicExecutionRole",
    ] {
        ensure(
            check.report.contains(policy),
            format!("the check does not name {policy}: {}", check.report),
        )?;
    }
    Ok(())
}

/// Deleting the stack, or an update that replaces a resource, keeps what holds data: the
/// tables (also protected against DeleteTable), the data lake, the queues of rejected and
/// discarded records, and the key without which none of them can be read.
async fn data_stores_are_retained_and_protected_from_deletion(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let check = run_iam_check(&aws, &aws.project_root.join("template.yaml"))?;
    let resources = check.transformed["Resources"]
        .as_object()
        .ok_or("no Resources")?;
    let mut kinds = BTreeSet::new();
    for (id, r) in resources {
        let kind = r["Type"].as_str().unwrap_or_default();
        if ![
            "AWS::DynamoDB::Table",
            "AWS::S3::Bucket",
            "AWS::KMS::Key",
            "AWS::SQS::Queue",
        ]
        .contains(&kind)
        {
            continue;
        }
        kinds.insert(kind);
        ensure_eq(
            r["DeletionPolicy"].as_str(),
            Some("Retain"),
            &format!("{id} DeletionPolicy"),
        )?;
        ensure_eq(
            r["UpdateReplacePolicy"].as_str(),
            Some("Retain"),
            &format!("{id} UpdateReplacePolicy"),
        )?;
        if kind == "AWS::DynamoDB::Table" {
            ensure_eq(
                r.pointer("/Properties/DeletionProtectionEnabled"),
                Some(&Value::Bool(true)),
                &format!("{id} DeletionProtectionEnabled"),
            )?;
        }
    }
    ensure_eq(kinds.len(), 4, "kinds of data stores found")
}
