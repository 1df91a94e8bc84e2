//! Each provisioned resource, read back through the AWS APIs, has the settings the
//! template gives it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use libtest_mimic::Failed;
use realty_infra::template::as_i64;
use realty_tests::{Explain, TestAws, ensure};
use serde_json::Value;

use realty_infra::provision::ProvisionedStack;
use realty_infra::template::Template;
use serde_json::json;

use super::helpers::{ensure_eq, physical, strs, template_props, template_value};

pub(super) async fn provisioned_resources_match_template(aws: Arc<TestAws>) -> Result<(), Failed> {
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
    tls_only_policies_cover_every_bucket_queue_and_topic(&template, &stack)?;

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

/// Every bucket, queue and topic has a resource policy denying requests not made over TLS
/// (each of those services answers plain HTTP too), and each such policy is skipped locally
/// with its reason: the emulators serve plain HTTP, and moto enforces bucket policies.
fn tls_only_policies_cover_every_bucket_queue_and_topic(
    template: &Template,
    stack: &ProvisionedStack,
) -> Result<(), Failed> {
    // (policy type, its property naming what it covers, the covered type, its ARN's form)
    let kinds = [
        ("AWS::S3::BucketPolicy", "Bucket", "AWS::S3::Bucket", "Arn"),
        ("AWS::SQS::QueuePolicy", "Queues", "AWS::SQS::Queue", "Arn"),
        ("AWS::SNS::TopicPolicy", "Topics", "AWS::SNS::Topic", "Ref"),
    ];
    for (policy_kind, covers, kind, arn_form) in kinds {
        // What each policy covers (as its `Queues`, `Topics` or `Bucket` name them) and the
        // ARNs its TLS-only statements deny plain HTTP on.
        let mut denied: Vec<(BTreeSet<String>, String)> = Vec::new();
        for (policy_id, _) in template.resources_of(policy_kind) {
            let props = template_props(template, stack, policy_id);
            let statements = props["PolicyDocument"]["Statement"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let tls_only: Vec<&Value> = statements
                .iter()
                .filter(|s| {
                    s["Effect"] == "Deny"
                        && s["Principal"] == "*"
                        && s.pointer("/Condition/Bool/aws:SecureTransport")
                            .is_some_and(|v| v == "false" || v == false)
                })
                .collect();
            if tls_only.is_empty() {
                continue;
            }
            ensure(
                stack
                    .skipped
                    .iter()
                    .any(|r| r.logical_id == policy_id && r.reason.contains("TLS")),
                format!("{policy_id} is not listed as skipped, with its reason"),
            )?;
            let named = one_or_many(&props[covers]);
            for statement in tls_only {
                for arn in one_or_many(&statement["Resource"]) {
                    denied.push((named.clone(), arn));
                }
            }
        }
        for (id, _) in template.resources_of(kind) {
            let reference = json!({ "Ref": id });
            let get_arn = json!({ "Fn::GetAtt": [id, "Arn"] });
            let name = scalar(&template_value(template, stack, &reference, id));
            let arn = scalar(&template_value(
                template,
                stack,
                if arn_form == "Ref" {
                    &reference
                } else {
                    &get_arn
                },
                id,
            ));
            ensure(
                denied
                    .iter()
                    .any(|(named, denied_arn)| named.contains(&name) && *denied_arn == arn),
                format!("{id} ({kind}) has no {policy_kind} denying plain HTTP on {arn}"),
            )?;
        }
    }
    Ok(())
}

/// A resolved property that is one value or a list of them, as strings.
fn one_or_many(value: &Value) -> BTreeSet<String> {
    match value {
        Value::Array(items) => items.iter().map(scalar).collect(),
        one => BTreeSet::from([scalar(one)]),
    }
}

fn scalar(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}
