//! Provisions the resources of template.yaml into an AWS endpoint that has no
//! CloudFormation worth using (moto, LocalStack): every data-plane resource is created with
//! the settings the template gives it, read from the template itself.
//!
//! What an emulator cannot host (Lambda functions, their event source mappings and
//! schedules, IAM, log groups, notification subscriptions, the HTTP API) is reported as
//! skipped, with the reason, as is a resource whose condition is false, and an output that
//! only a skipped HTTP API could give (`ApiUrl`: `realty serve` prints the local address).
//!
//! Provisioning is idempotent: running it again against the same stack name finds the
//! resources that exist and brings back the same names.

mod cloudwatch;
mod dispatch;
mod dynamodb;
mod firehose;
mod glue;
mod kinesis;
mod kms;
mod s3;
mod secretsmanager;
mod sns;
mod sqs;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use serde::Serialize;
use serde_json::Value;

use crate::template::{Context, Template, TemplateError, references, scalar_to_string};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{resource}: {operation} failed: {message}")]
    Aws {
        resource: String,
        operation: &'static str,
        message: String,
    },
    #[error("{resource}: {reason}")]
    Shape { resource: String, reason: String },
}

/// What to provision.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// Stands in for the CloudFormation stack name: prefixes every physical name, so that
    /// several stacks (test runs) share one endpoint without meeting.
    pub stack_name: String,
    /// Template parameter values that replace the defaults.
    pub parameters: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ProvisionedResource {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub physical_id: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct SkippedResource {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
}

/// The result: the stack's Outputs (same keys as a deployed stack's) and what was created
/// or skipped.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ProvisionedStack {
    pub stack_name: String,
    pub region: String,
    pub account_id: String,
    pub outputs: BTreeMap<String, String>,
    pub resources: Vec<ProvisionedResource>,
    pub skipped: Vec<SkippedResource>,
    /// Each function's role's policy documents as this stack would deploy them (intrinsics
    /// resolved), by the function's logical id. The emulators enforce no IAM, so the
    /// integration tests check every call a function makes against these.
    #[serde(default)]
    pub function_policies: BTreeMap<String, Vec<Value>>,
}

/// The physical name a resource gets locally: `<stack>-<logical-id-in-kebab-case>`.
/// Lower case throughout, because S3 bucket names must be.
pub fn physical_name(stack_name: &str, logical_id: &str) -> String {
    let mut out = String::with_capacity(stack_name.len() + logical_id.len() + 8);
    out.push_str(&stack_name.to_ascii_lowercase());
    out.push('-');
    let mut previous_lower = false;
    for c in logical_id.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else {
            out.push(c);
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// Order in which types are provisioned, so each finds what it references.
const ORDER: &[&str] = &[
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::IAM::Role",
    "AWS::Logs::LogGroup",
    "AWS::Logs::LogStream",
    // Before the buckets: a bucket's notifications name their queues.
    "AWS::SQS::Queue",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::DynamoDB::Table",
    "AWS::Kinesis::Stream",
    "AWS::SNS::Topic",
    "AWS::SecretsManager::Secret",
    "AWS::KinesisFirehose::DeliveryStream",
    "AWS::Glue::Database",
    "AWS::Serverless::Function",
    "AWS::Serverless::HttpApi",
    "AWS::SNS::Subscription",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
];

struct Provisioner<'a> {
    template: &'a Template,
    ctx: Context,
    kms: aws_sdk_kms::Client,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    kinesis: aws_sdk_kinesis::Client,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    firehose: aws_sdk_firehose::Client,
    glue: aws_sdk_glue::Client,
    secretsmanager: aws_sdk_secretsmanager::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    resources: Vec<ProvisionedResource>,
    skipped: Vec<SkippedResource>,
    /// Resources with no local counterpart at all (the HTTP API): logical id to the reason.
    /// They still get a name for the alarms and dashboards that mention them, but an output
    /// made of them would be an address nothing answers at, so it is left out.
    unserved: BTreeMap<String, String>,
}

/// Provisions `template` through `config` (whose endpoint decides where).
pub async fn provision(
    config: &SdkConfig,
    template: &Template,
    options: &ProvisionOptions,
) -> Result<ProvisionedStack, ProvisionError> {
    let region = config
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| realty_aws::sdk::LOCAL_REGION.to_owned());
    let account_id = account_id(config).await;
    let ctx = Context::new(
        template,
        &options.stack_name,
        &region,
        &account_id,
        &options.parameters,
    )?;
    let mut p = Provisioner {
        template,
        ctx,
        kms: aws_sdk_kms::Client::new(config),
        s3: realty_aws::sdk::s3_client(config),
        dynamodb: aws_sdk_dynamodb::Client::new(config),
        kinesis: aws_sdk_kinesis::Client::new(config),
        sns: aws_sdk_sns::Client::new(config),
        sqs: aws_sdk_sqs::Client::new(config),
        firehose: aws_sdk_firehose::Client::new(config),
        glue: aws_sdk_glue::Client::new(config),
        secretsmanager: aws_sdk_secretsmanager::Client::new(config),
        cloudwatch: aws_sdk_cloudwatch::Client::new(config),
        resources: Vec::new(),
        skipped: Vec::new(),
        unserved: BTreeMap::new(),
    };
    let mut ordered: Vec<(&str, &str)> = Vec::new();
    for kind in ORDER {
        ordered.extend(
            template
                .resources_of(kind)
                .map(|(id, r)| (id, r.kind.as_str())),
        );
    }
    for (id, r) in &template.resources {
        if !ORDER.contains(&r.kind.as_str()) {
            ordered.push((id, r.kind.as_str()));
        }
    }
    for (id, kind) in ordered {
        p.provision_one(id, kind).await?;
    }
    let mut outputs = BTreeMap::new();
    for (name, value) in &template.outputs {
        let unserved = references(value)
            .into_iter()
            .find_map(|id| p.unserved.get(&id).cloned());
        if let Some(reason) = unserved {
            p.skip(&format!("Outputs.{name}"), "Output", &reason);
            continue;
        }
        let v = p.ctx.resolve(template, value, &format!("Outputs.{name}"))?;
        let text = scalar_to_string(&v).ok_or_else(|| ProvisionError::Shape {
            resource: format!("Outputs.{name}"),
            reason: format!("not a scalar: {v}"),
        })?;
        outputs.insert(name.clone(), text);
    }
    let function_policies = function_policies(template, &p.ctx);
    Ok(ProvisionedStack {
        stack_name: options.stack_name.clone(),
        region,
        account_id,
        outputs,
        resources: p.resources,
        skipped: p.skipped,
        function_policies,
    })
}

/// The policy documents of each function's role, resolved in `ctx`. A document that does
/// not resolve is kept as the error's text, which grants nothing, so a call it was meant
/// to allow is reported rather than the stack refused.
fn function_policies(template: &Template, ctx: &Context) -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for (id, function) in template.resources_of("AWS::Serverless::Function") {
        let role = match &function.properties["Role"]["Fn::GetAtt"] {
            Value::Array(parts) => parts.first().and_then(Value::as_str),
            Value::String(s) => s.split('.').next(),
            _ => None,
        };
        let Some(role) = role.and_then(|r| template.resources.get(r)) else {
            continue;
        };
        let documents = role.properties["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|policy| {
                ctx.resolve(template, &policy["PolicyDocument"], id)
                    .unwrap_or_else(|e| Value::String(format!("unresolved: {e}")))
            })
            .collect();
        out.insert(id.to_owned(), documents);
    }
    out
}

/// The account the endpoint says we are (moto: 123456789012, LocalStack: 000000000000).
async fn account_id(config: &SdkConfig) -> String {
    // STS is not in every emulator; the ARNs built from it only need to be consistent.
    let sts = aws_sdk_sts::Client::new(config);
    match sts.get_caller_identity().send().await {
        Ok(out) => out.account.unwrap_or_else(|| "000000000000".into()),
        Err(_) => "000000000000".into(),
    }
}

fn aws_err<E: std::fmt::Debug + ProvideErrorMetadata>(
    resource: &str,
    operation: &'static str,
) -> impl FnOnce(E) -> ProvisionError {
    let resource = resource.to_owned();
    move |e| ProvisionError::Aws {
        resource,
        operation,
        message: match (e.code(), e.message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.to_owned(),
            _ => format!("{e:?}"),
        },
    }
}

fn str_prop<'v>(props: &'v Value, key: &str) -> Option<&'v str> {
    props.get(key).and_then(Value::as_str)
}

fn build_err(
    resource: &str,
) -> impl FnOnce(aws_sdk_dynamodb::error::BuildError) -> ProvisionError + '_ {
    move |e| ProvisionError::Shape {
        resource: resource.to_owned(),
        reason: e.to_string(),
    }
}
