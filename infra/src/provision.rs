//! Provisions the resources of template.yaml into an AWS endpoint that has no
//! CloudFormation worth using (moto, LocalStack): every data-plane resource is created with
//! the settings the template gives it, read from the template itself.
//!
//! What an emulator cannot host (Lambda functions, their event source mappings and
//! schedules, IAM, log groups) is reported as skipped, with the reason.
//!
//! Provisioning is idempotent: running it again against the same stack name finds the
//! resources that exist and brings back the same names.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types as ddb;
use aws_sdk_firehose::types as fh;
use aws_sdk_kinesis::types as kin;
use aws_sdk_s3::types as s3t;
use serde::Serialize;
use serde_json::Value;

use crate::template::{Context, Template, TemplateError, as_bool, as_i64, scalar_to_string};

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
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::DynamoDB::Table",
    "AWS::Kinesis::Stream",
    "AWS::SNS::Topic",
    "AWS::SQS::Queue",
    "AWS::KinesisFirehose::DeliveryStream",
    "AWS::Serverless::Function",
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
    resources: Vec<ProvisionedResource>,
    skipped: Vec<SkippedResource>,
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
        resources: Vec::new(),
        skipped: Vec::new(),
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
        let v = p.ctx.resolve(template, value, &format!("Outputs.{name}"))?;
        let text = scalar_to_string(&v).ok_or_else(|| ProvisionError::Shape {
            resource: format!("Outputs.{name}"),
            reason: format!("not a scalar: {v}"),
        })?;
        outputs.insert(name.clone(), text);
    }
    Ok(ProvisionedStack {
        stack_name: options.stack_name.clone(),
        region,
        account_id,
        outputs,
        resources: p.resources,
        skipped: p.skipped,
    })
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

impl Provisioner<'_> {
    async fn provision_one(&mut self, id: &str, kind: &str) -> Result<(), ProvisionError> {
        let name = physical_name(&self.ctx.stack_name, id);
        let region = self.ctx.region.clone();
        let account = self.ctx.account_id.clone();
        let physical = match kind {
            "AWS::KMS::Key" => self.kms_key(id).await?,
            "AWS::KMS::Alias" => {
                let props = self.props(id)?;
                str_prop(&props, "AliasName").unwrap_or_default().to_owned()
            }
            "AWS::S3::Bucket" => self.bucket(id, &name).await?,
            "AWS::S3::BucketPolicy" => {
                let props = self.props(id)?;
                self.ctx
                    .set_ref(id, str_prop(&props, "Bucket").unwrap_or_default());
                self.skip(
                    id,
                    kind,
                    "the emulator serves plain HTTP and enforces bucket policies: this TLS-only policy would deny every request (it applies in AWS)",
                );
                return Ok(());
            }
            "AWS::DynamoDB::Table" => self.table(id, &name).await?,
            "AWS::Kinesis::Stream" => self.stream(id, &name).await?,
            "AWS::SNS::Topic" => self.topic(id, &name).await?,
            "AWS::SQS::Queue" => self.queue(id, &name).await?,
            "AWS::KinesisFirehose::DeliveryStream" => self.delivery_stream(id, &name).await?,
            "AWS::IAM::Role" => {
                self.ctx.set_ref(id, &name);
                self.ctx
                    .set_attribute(id, "Arn", format!("arn:aws:iam::{account}:role/{name}"));
                return {
                    self.skip(id, kind, "IAM is not enforced by the emulator; its ARN is still handed to the resources that name it");
                    Ok(())
                };
            }
            "AWS::Logs::LogGroup" | "AWS::Logs::LogStream" => {
                self.ctx.set_ref(id, &name);
                self.ctx.set_attribute(
                    id,
                    "Arn",
                    format!("arn:aws:logs:{region}:{account}:log-group:{name}:*"),
                );
                return {
                    self.skip(id, kind, "locally the functions log to the terminal");
                    Ok(())
                };
            }
            "AWS::Serverless::Function" => {
                self.ctx.set_ref(id, &name);
                self.ctx.set_attribute(
                    id,
                    "Arn",
                    format!("arn:aws:lambda:{region}:{account}:function:{name}"),
                );
                self.skip(
                    id,
                    kind,
                    "no Lambda service locally: the realty CLI runs the handler in-process",
                );
                let events: Vec<(String, String)> = self.template.resources[id]
                    .properties
                    .get("Events")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(ev, spec)| {
                                (ev.clone(), str_prop(spec, "Type").unwrap_or("?").to_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                for (event, event_type) in events {
                    let reason = match event_type.as_str() {
                        "Schedule" | "ScheduleV2" => {
                            "no EventBridge scheduler locally: the realty CLI invokes the poller"
                        }
                        _ => {
                            "no event source mappings locally: the realty CLI reads the stream and invokes the handler"
                        }
                    };
                    self.skip(
                        &format!("{id}.{event}"),
                        &format!("{event_type} event"),
                        reason,
                    );
                }
                return Ok(());
            }
            "AWS::Glue::Database" | "AWS::Glue::Table" => {
                self.ctx.set_ref(id, name.replace('-', "_"));
                self.skip(
                    id,
                    kind,
                    "Athena and the Glue catalog are not part of the local pipeline: read the data lake's objects in S3 directly",
                );
                return Ok(());
            }
            other => {
                return {
                    self.skip(id, other, "this resource type has no local provisioning");
                    Ok(())
                };
            }
        };
        self.resources.push(ProvisionedResource {
            logical_id: id.to_owned(),
            kind: kind.to_owned(),
            physical_id: physical,
        });
        Ok(())
    }

    fn skip(&mut self, id: &str, kind: &str, reason: &str) {
        self.skipped.push(SkippedResource {
            logical_id: id.to_owned(),
            kind: kind.to_owned(),
            reason: reason.to_owned(),
        });
    }

    fn props(&self, id: &str) -> Result<Value, ProvisionError> {
        Ok(self
            .ctx
            .resolve(self.template, &self.template.resources[id].properties, id)?)
    }

    async fn kms_key(&mut self, id: &str) -> Result<String, ProvisionError> {
        // A key has no name: find it again through the template's alias that targets it.
        let alias = self
            .template
            .resources_of("AWS::KMS::Alias")
            .find(|(_, a)| a.properties.get("TargetKeyId") == Some(&serde_json::json!({"Ref": id})))
            .map(|(_, a)| {
                self.ctx
                    .resolve(self.template, &a.properties["AliasName"], id)
            })
            .transpose()?
            .and_then(|v| scalar_to_string(&v));
        let existing = match &alias {
            Some(alias) => self
                .kms
                .describe_key()
                .key_id(alias)
                .send()
                .await
                .ok()
                .and_then(|o| o.key_metadata),
            None => None,
        };
        let metadata = match existing {
            Some(m) => m,
            None => {
                let props = self.props(id)?;
                let mut req = self.kms.create_key();
                if let Some(d) = str_prop(&props, "Description") {
                    req = req.description(d);
                }
                if let Some(policy) = props.get("KeyPolicy") {
                    req = req.policy(policy.to_string());
                }
                let out = req.send().await.map_err(aws_err(id, "CreateKey"))?;
                let m = out.key_metadata.ok_or_else(|| ProvisionError::Shape {
                    resource: id.into(),
                    reason: "CreateKey returned no key".into(),
                })?;
                if props.get("EnableKeyRotation").and_then(as_bool) == Some(true) {
                    self.kms
                        .enable_key_rotation()
                        .key_id(m.key_id())
                        .send()
                        .await
                        .map_err(aws_err(id, "EnableKeyRotation"))?;
                }
                if let Some(alias) = &alias {
                    self.kms
                        .create_alias()
                        .alias_name(alias)
                        .target_key_id(m.key_id())
                        .send()
                        .await
                        .map_err(aws_err(id, "CreateAlias"))?;
                }
                m
            }
        };
        let key_id = metadata.key_id().to_owned();
        self.ctx.set_ref(id, &key_id);
        self.ctx
            .set_attribute(id, "Arn", metadata.arn().unwrap_or_default());
        self.ctx.set_attribute(id, "KeyId", &key_id);
        Ok(key_id)
    }

    async fn bucket(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        let mut req = self.s3.create_bucket().bucket(name);
        if self.ctx.region != "us-east-1" {
            req = req.create_bucket_configuration(
                s3t::CreateBucketConfiguration::builder()
                    .location_constraint(s3t::BucketLocationConstraint::from(
                        self.ctx.region.as_str(),
                    ))
                    .build(),
            );
        }
        if let Err(e) = req.send().await
            && e.code() != Some("BucketAlreadyOwnedByYou")
        {
            return Err(aws_err(id, "CreateBucket")(e));
        }
        if let Some(rules) = props
            .pointer("/BucketEncryption/ServerSideEncryptionConfiguration")
            .and_then(Value::as_array)
        {
            let mut config = s3t::ServerSideEncryptionConfiguration::builder();
            for rule in rules {
                let default = &rule["ServerSideEncryptionByDefault"];
                let mut by_default = s3t::ServerSideEncryptionByDefault::builder().sse_algorithm(
                    s3t::ServerSideEncryption::from(
                        str_prop(default, "SSEAlgorithm").unwrap_or("AES256"),
                    ),
                );
                if let Some(key) = str_prop(default, "KMSMasterKeyID") {
                    by_default = by_default.kms_master_key_id(key);
                }
                config = config.rules(
                    s3t::ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            by_default.build().map_err(build_err(id))?,
                        )
                        .set_bucket_key_enabled(rule.get("BucketKeyEnabled").and_then(as_bool))
                        .build(),
                );
            }
            self.s3
                .put_bucket_encryption()
                .bucket(name)
                .server_side_encryption_configuration(config.build().map_err(build_err(id))?)
                .send()
                .await
                .map_err(aws_err(id, "PutBucketEncryption"))?;
        }
        if let Some(pab) = props.get("PublicAccessBlockConfiguration") {
            let flag = |k: &str| pab.get(k).and_then(as_bool);
            self.s3
                .put_public_access_block()
                .bucket(name)
                .public_access_block_configuration(
                    s3t::PublicAccessBlockConfiguration::builder()
                        .set_block_public_acls(flag("BlockPublicAcls"))
                        .set_block_public_policy(flag("BlockPublicPolicy"))
                        .set_ignore_public_acls(flag("IgnorePublicAcls"))
                        .set_restrict_public_buckets(flag("RestrictPublicBuckets"))
                        .build(),
                )
                .send()
                .await
                .map_err(aws_err(id, "PutPublicAccessBlock"))?;
        }
        if let Some(rules) = props
            .pointer("/OwnershipControls/Rules")
            .and_then(Value::as_array)
        {
            let mut controls = s3t::OwnershipControls::builder();
            for rule in rules {
                controls = controls.rules(
                    s3t::OwnershipControlsRule::builder()
                        .object_ownership(s3t::ObjectOwnership::from(
                            str_prop(rule, "ObjectOwnership").unwrap_or_default(),
                        ))
                        .build()
                        .map_err(build_err(id))?,
                );
            }
            self.s3
                .put_bucket_ownership_controls()
                .bucket(name)
                .ownership_controls(controls.build().map_err(build_err(id))?)
                .send()
                .await
                .map_err(aws_err(id, "PutBucketOwnershipControls"))?;
        }
        if let Some(status) = props
            .pointer("/VersioningConfiguration/Status")
            .and_then(Value::as_str)
        {
            self.s3
                .put_bucket_versioning()
                .bucket(name)
                .versioning_configuration(
                    s3t::VersioningConfiguration::builder()
                        .status(s3t::BucketVersioningStatus::from(status))
                        .build(),
                )
                .send()
                .await
                .map_err(aws_err(id, "PutBucketVersioning"))?;
        }
        if let Some(rules) = props
            .pointer("/LifecycleConfiguration/Rules")
            .and_then(Value::as_array)
        {
            let mut lifecycle = s3t::BucketLifecycleConfiguration::builder();
            for rule in rules {
                lifecycle = lifecycle.rules(lifecycle_rule(id, rule)?);
            }
            self.s3
                .put_bucket_lifecycle_configuration()
                .bucket(name)
                .lifecycle_configuration(lifecycle.build().map_err(build_err(id))?)
                .send()
                .await
                .map_err(aws_err(id, "PutBucketLifecycleConfiguration"))?;
        }
        self.ctx.set_ref(id, name);
        self.ctx
            .set_attribute(id, "Arn", format!("arn:aws:s3:::{name}"));
        self.ctx
            .set_attribute(id, "DomainName", format!("{name}.s3.amazonaws.com"));
        Ok(name.to_owned())
    }

    async fn table(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        let key_schema = |v: &Value| -> Result<Vec<ddb::KeySchemaElement>, ProvisionError> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|k| {
                    ddb::KeySchemaElement::builder()
                        .attribute_name(str_prop(k, "AttributeName").unwrap_or_default())
                        .key_type(ddb::KeyType::from(
                            str_prop(k, "KeyType").unwrap_or_default(),
                        ))
                        .build()
                        .map_err(build_err(id))
                })
                .collect()
        };
        let mut req = self
            .dynamodb
            .create_table()
            .table_name(name)
            .set_key_schema(Some(key_schema(&props["KeySchema"])?))
            .billing_mode(ddb::BillingMode::from(
                str_prop(&props, "BillingMode").unwrap_or("PAY_PER_REQUEST"),
            ));
        for a in props["AttributeDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            req = req.attribute_definitions(
                ddb::AttributeDefinition::builder()
                    .attribute_name(str_prop(a, "AttributeName").unwrap_or_default())
                    .attribute_type(ddb::ScalarAttributeType::from(
                        str_prop(a, "AttributeType").unwrap_or_default(),
                    ))
                    .build()
                    .map_err(build_err(id))?,
            );
        }
        for gsi in props
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let projection = &gsi["Projection"];
            req = req.global_secondary_indexes(
                ddb::GlobalSecondaryIndex::builder()
                    .index_name(str_prop(gsi, "IndexName").unwrap_or_default())
                    .set_key_schema(Some(key_schema(&gsi["KeySchema"])?))
                    .projection(
                        ddb::Projection::builder()
                            .projection_type(ddb::ProjectionType::from(
                                str_prop(projection, "ProjectionType").unwrap_or("ALL"),
                            ))
                            .set_non_key_attributes(
                                projection
                                    .get("NonKeyAttributes")
                                    .and_then(Value::as_array)
                                    .map(|a| {
                                        a.iter()
                                            .filter_map(Value::as_str)
                                            .map(str::to_owned)
                                            .collect()
                                    }),
                            )
                            .build(),
                    )
                    .build()
                    .map_err(build_err(id))?,
            );
        }
        if let Some(view) = props
            .pointer("/StreamSpecification/StreamViewType")
            .and_then(Value::as_str)
        {
            req = req.stream_specification(
                ddb::StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(ddb::StreamViewType::from(view))
                    .build()
                    .map_err(build_err(id))?,
            );
        }
        if let Some(sse) = props.get("SSESpecification") {
            req = req.sse_specification(
                ddb::SseSpecification::builder()
                    .set_enabled(sse.get("SSEEnabled").and_then(as_bool))
                    .set_sse_type(str_prop(sse, "SSEType").map(ddb::SseType::from))
                    .set_kms_master_key_id(str_prop(sse, "KMSMasterKeyId").map(str::to_owned))
                    .build(),
            );
        }
        if let Err(e) = req.send().await
            && e.code() != Some("ResourceInUseException")
        {
            return Err(aws_err(id, "CreateTable")(e));
        }
        let description = self.wait_table_active(id, name).await?;
        if let Some(ttl) = props.get("TimeToLiveSpecification")
            && ttl.get("Enabled").and_then(as_bool) == Some(true)
        {
            let current = self
                .dynamodb
                .describe_time_to_live()
                .table_name(name)
                .send()
                .await
                .map_err(aws_err(id, "DescribeTimeToLive"))?;
            let enabled = current
                .time_to_live_description()
                .and_then(|d| d.time_to_live_status())
                .is_some_and(|s| *s == ddb::TimeToLiveStatus::Enabled);
            if !enabled {
                self.dynamodb
                    .update_time_to_live()
                    .table_name(name)
                    .time_to_live_specification(
                        ddb::TimeToLiveSpecification::builder()
                            .attribute_name(str_prop(ttl, "AttributeName").unwrap_or_default())
                            .enabled(true)
                            .build()
                            .map_err(build_err(id))?,
                    )
                    .send()
                    .await
                    .map_err(aws_err(id, "UpdateTimeToLive"))?;
            }
        }
        if props
            .pointer("/PointInTimeRecoverySpecification/PointInTimeRecoveryEnabled")
            .and_then(as_bool)
            == Some(true)
        {
            self.dynamodb
                .update_continuous_backups()
                .table_name(name)
                .point_in_time_recovery_specification(
                    ddb::PointInTimeRecoverySpecification::builder()
                        .point_in_time_recovery_enabled(true)
                        .build()
                        .map_err(build_err(id))?,
                )
                .send()
                .await
                .map_err(aws_err(id, "UpdateContinuousBackups"))?;
        }
        self.ctx.set_ref(id, name);
        self.ctx
            .set_attribute(id, "Arn", description.table_arn().unwrap_or_default());
        if let Some(stream_arn) = description.latest_stream_arn() {
            self.ctx.set_attribute(id, "StreamArn", stream_arn);
        }
        Ok(name.to_owned())
    }

    async fn wait_table_active(
        &self,
        id: &str,
        name: &str,
    ) -> Result<ddb::TableDescription, ProvisionError> {
        for _ in 0..600 {
            let out = self
                .dynamodb
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(aws_err(id, "DescribeTable"))?;
            if let Some(table) = out.table
                && table.table_status() == Some(&ddb::TableStatus::Active)
            {
                return Ok(table);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ProvisionError::Shape {
            resource: id.into(),
            reason: "table did not become ACTIVE within a minute".into(),
        })
    }

    async fn stream(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        let mode = props
            .pointer("/StreamModeDetails/StreamMode")
            .and_then(Value::as_str)
            .unwrap_or("PROVISIONED");
        let mut req = self
            .kinesis
            .create_stream()
            .stream_name(name)
            .stream_mode_details(
                kin::StreamModeDetails::builder()
                    .stream_mode(kin::StreamMode::from(mode))
                    .build()
                    .map_err(build_err(id))?,
            );
        if mode == "PROVISIONED" {
            let shards = props.get("ShardCount").and_then(as_i64).unwrap_or(1);
            req = req.shard_count(i32::try_from(shards).map_err(|_| ProvisionError::Shape {
                resource: id.into(),
                reason: format!("ShardCount {shards} out of range"),
            })?);
        }
        if let Err(e) = req.send().await
            && e.code() != Some("ResourceInUseException")
        {
            return Err(aws_err(id, "CreateStream")(e));
        }
        let mut summary = None;
        for _ in 0..600 {
            let out = self
                .kinesis
                .describe_stream_summary()
                .stream_name(name)
                .send()
                .await
                .map_err(aws_err(id, "DescribeStreamSummary"))?;
            if let Some(s) = out.stream_description_summary
                && s.stream_status == kin::StreamStatus::Active
            {
                summary = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let summary = summary.ok_or_else(|| ProvisionError::Shape {
            resource: id.into(),
            reason: "stream did not become ACTIVE within a minute".into(),
        })?;
        if let Some(enc) = props.get("StreamEncryption") {
            let unencrypted = summary
                .encryption_type
                .as_ref()
                .is_none_or(|t| *t == kin::EncryptionType::None);
            if unencrypted {
                self.kinesis
                    .start_stream_encryption()
                    .stream_name(name)
                    .encryption_type(kin::EncryptionType::from(
                        str_prop(enc, "EncryptionType").unwrap_or("KMS"),
                    ))
                    .key_id(str_prop(enc, "KeyId").unwrap_or("alias/aws/kinesis"))
                    .send()
                    .await
                    .map_err(aws_err(id, "StartStreamEncryption"))?;
            }
        }
        if let Some(hours) = props.get("RetentionPeriodHours").and_then(as_i64)
            && hours > i64::from(summary.retention_period_hours)
        {
            self.kinesis
                .increase_stream_retention_period()
                .stream_name(name)
                .retention_period_hours(hours as i32)
                .send()
                .await
                .map_err(aws_err(id, "IncreaseStreamRetentionPeriod"))?;
        }
        self.ctx.set_ref(id, name);
        self.ctx.set_attribute(id, "Arn", summary.stream_arn);
        Ok(name.to_owned())
    }

    async fn topic(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        let mut req = self.sns.create_topic().name(name);
        for key in ["KmsMasterKeyId", "DisplayName"] {
            if let Some(v) = str_prop(&props, key) {
                req = req.attributes(key, v);
            }
        }
        let out = req.send().await.map_err(aws_err(id, "CreateTopic"))?;
        let arn = out.topic_arn.unwrap_or_default();
        self.ctx.set_ref(id, &arn);
        self.ctx.set_attribute(id, "TopicArn", &arn);
        self.ctx.set_attribute(id, "TopicName", name);
        Ok(arn)
    }

    async fn queue(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        use aws_sdk_sqs::types::QueueAttributeName as Q;
        let props = self.props(id)?;
        let mut req = self.sqs.create_queue().queue_name(name);
        for (key, attribute) in [
            ("MessageRetentionPeriod", Q::MessageRetentionPeriod),
            ("VisibilityTimeout", Q::VisibilityTimeout),
            ("KmsMasterKeyId", Q::KmsMasterKeyId),
            ("SqsManagedSseEnabled", Q::SqsManagedSseEnabled),
            ("DelaySeconds", Q::DelaySeconds),
        ] {
            if let Some(v) = props.get(key).and_then(scalar_to_string) {
                req = req.attributes(attribute, v);
            }
        }
        let url = req
            .send()
            .await
            .map_err(aws_err(id, "CreateQueue"))?
            .queue_url
            .unwrap_or_default();
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(Q::QueueArn)
            .send()
            .await
            .map_err(aws_err(id, "GetQueueAttributes"))?
            .attributes
            .and_then(|mut a| a.remove(&Q::QueueArn))
            .unwrap_or_default();
        self.ctx.set_ref(id, &url);
        self.ctx.set_attribute(id, "Arn", arn);
        self.ctx.set_attribute(id, "QueueName", name);
        self.ctx.set_attribute(id, "QueueUrl", &url);
        Ok(url)
    }

    async fn delivery_stream(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        let dest = props
            .get("ExtendedS3DestinationConfiguration")
            .ok_or_else(|| ProvisionError::Shape {
                resource: id.into(),
                reason: "only ExtendedS3DestinationConfiguration is provisioned locally".into(),
            })?;
        let mut s3 = fh::ExtendedS3DestinationConfiguration::builder()
            .bucket_arn(str_prop(dest, "BucketARN").unwrap_or_default())
            .role_arn(str_prop(dest, "RoleARN").unwrap_or_default())
            .set_prefix(str_prop(dest, "Prefix").map(str::to_owned))
            .set_error_output_prefix(str_prop(dest, "ErrorOutputPrefix").map(str::to_owned))
            .set_compression_format(
                str_prop(dest, "CompressionFormat").map(fh::CompressionFormat::from),
            );
        if let Some(hints) = dest.get("BufferingHints") {
            s3 = s3.buffering_hints(
                fh::BufferingHints::builder()
                    .set_interval_in_seconds(
                        hints
                            .get("IntervalInSeconds")
                            .and_then(as_i64)
                            .map(|v| v as i32),
                    )
                    .set_size_in_mbs(hints.get("SizeInMBs").and_then(as_i64).map(|v| v as i32))
                    .build(),
            );
        }
        if let Some(key) = dest
            .pointer("/EncryptionConfiguration/KMSEncryptionConfig/AWSKMSKeyARN")
            .and_then(Value::as_str)
        {
            s3 = s3.encryption_configuration(
                fh::EncryptionConfiguration::builder()
                    .kms_encryption_config(
                        fh::KmsEncryptionConfig::builder()
                            .awskms_key_arn(key)
                            .build()
                            .map_err(build_err(id))?,
                    )
                    .build(),
            );
        }
        let mut req = self
            .firehose
            .create_delivery_stream()
            .delivery_stream_name(name)
            .delivery_stream_type(fh::DeliveryStreamType::from(
                str_prop(&props, "DeliveryStreamType").unwrap_or("DirectPut"),
            ))
            .extended_s3_destination_configuration(s3.build().map_err(build_err(id))?);
        if let Some(enc) = props.get("DeliveryStreamEncryptionConfigurationInput") {
            req = req.delivery_stream_encryption_configuration_input(
                fh::DeliveryStreamEncryptionConfigurationInput::builder()
                    .key_type(fh::KeyType::from(
                        str_prop(enc, "KeyType").unwrap_or("AWS_OWNED_CMK"),
                    ))
                    .set_key_arn(str_prop(enc, "KeyARN").map(str::to_owned))
                    .build()
                    .map_err(build_err(id))?,
            );
        }
        if let Err(e) = req.send().await
            && e.code() != Some("ResourceInUseException")
        {
            return Err(aws_err(id, "CreateDeliveryStream")(e));
        }
        let arn = self
            .firehose
            .describe_delivery_stream()
            .delivery_stream_name(name)
            .send()
            .await
            .map_err(aws_err(id, "DescribeDeliveryStream"))?
            .delivery_stream_description
            .map(|d| d.delivery_stream_arn)
            .unwrap_or_default();
        self.ctx.set_ref(id, name);
        self.ctx.set_attribute(id, "Arn", arn);
        Ok(name.to_owned())
    }
}

fn lifecycle_rule(id: &str, rule: &Value) -> Result<s3t::LifecycleRule, ProvisionError> {
    let mut b = s3t::LifecycleRule::builder()
        .set_id(str_prop(rule, "Id").map(str::to_owned))
        .status(s3t::ExpirationStatus::from(
            str_prop(rule, "Status").unwrap_or("Enabled"),
        ))
        .filter(
            s3t::LifecycleRuleFilter::builder()
                .prefix(str_prop(rule, "Prefix").unwrap_or_default())
                .build(),
        );
    if let Some(days) = rule.get("ExpirationInDays").and_then(as_i64) {
        b = b.expiration(
            s3t::LifecycleExpiration::builder()
                .days(days as i32)
                .build(),
        );
    }
    for t in rule
        .get("Transitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        b = b.transitions(
            s3t::Transition::builder()
                .set_days(t.get("TransitionInDays").and_then(as_i64).map(|d| d as i32))
                .storage_class(s3t::TransitionStorageClass::from(
                    str_prop(t, "StorageClass").unwrap_or_default(),
                ))
                .build(),
        );
    }
    if let Some(days) = rule
        .pointer("/NoncurrentVersionExpiration/NoncurrentDays")
        .and_then(as_i64)
    {
        b = b.noncurrent_version_expiration(
            s3t::NoncurrentVersionExpiration::builder()
                .noncurrent_days(days as i32)
                .build(),
        );
    }
    if let Some(days) = rule
        .pointer("/AbortIncompleteMultipartUpload/DaysAfterInitiation")
        .and_then(as_i64)
    {
        b = b.abort_incomplete_multipart_upload(
            s3t::AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(days as i32)
                .build(),
        );
    }
    b.build().map_err(build_err(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_names_are_lower_kebab_case_under_the_stack_name() {
        assert_eq!(
            physical_name("realty", "ListingEventsStream"),
            "realty-listing-events-stream"
        );
        assert_eq!(
            physical_name("It-3", "DataLakeBucket"),
            "it-3-data-lake-bucket"
        );
        assert_eq!(physical_name("s", "S3Bucket"), "s-s3-bucket");
    }
}
