//! What the provisioning tests share: the template's view of a provisioned resource, and
//! a comparison that says what the template expected.

use std::collections::BTreeMap;

use libtest_mimic::Failed;
use realty_infra::provision::{ProvisionedStack, physical_name};
use realty_infra::template::{Context, Template};
use realty_tests::ensure;
use serde_json::Value;

pub(super) fn ensure_eq<T: PartialEq + std::fmt::Debug>(
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
pub(super) fn template_props(
    template: &Template,
    stack: &ProvisionedStack,
    logical_id: &str,
) -> Value {
    template_value(
        template,
        stack,
        &template.resources[logical_id].properties,
        logical_id,
    )
}

/// Any of the template's values (a `!Ref`, a `!GetAtt`), evaluated for `stack` as
/// [`template_props`] evaluates a resource's properties.
pub(super) fn template_value(
    template: &Template,
    stack: &ProvisionedStack,
    value: &Value,
    context: &str,
) -> Value {
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
    ctx.resolve(template, value, context).unwrap()
}

pub(super) fn physical(stack: &ProvisionedStack, logical_id: &str) -> String {
    stack
        .resources
        .iter()
        .find(|r| r.logical_id == logical_id)
        .map(|r| r.physical_id.clone())
        .unwrap_or_else(|| panic!("{logical_id} was not provisioned"))
}

pub(super) fn strs(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.get(key).and_then(Value::as_str).map(str::to_owned))
        .collect()
}
