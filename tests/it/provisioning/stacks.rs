//! Stacks as wholes: the stream mode parameter, provisioning twice, stacks side by side,
//! and every template resource either provisioned or skipped with a reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use libtest_mimic::Failed;
use realty_tests::{Explain, TestAws, ensure};

use super::helpers::ensure_eq;

pub(super) async fn on_demand_stream_mode_follows_the_parameter(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
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

pub(super) async fn provisioning_twice_finds_the_same_stack(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
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

pub(super) async fn stacks_under_different_names_do_not_meet(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
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

pub(super) async fn every_template_resource_is_provisioned_or_skipped_with_a_reason(
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
