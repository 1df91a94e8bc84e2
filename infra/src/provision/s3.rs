//! `AWS::S3::Bucket`: encryption, public access block, ownership, versioning, lifecycle rules,
//! notifications to SQS.

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::types as s3t;
use serde_json::Value;

use super::{ProvisionError, Provisioner, aws_err, build_err, str_prop};
use crate::template::{as_bool, as_i64};

impl Provisioner<'_> {
    pub(super) async fn bucket(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        self.create_bucket(id, name).await?;
        self.secure_bucket(id, name, &props).await?;
        self.apply_object_settings(id, name, &props).await?;
        self.ctx.set_ref(id, name);
        self.ctx
            .set_attribute(id, "Arn", format!("arn:aws:s3:::{name}"));
        self.ctx
            .set_attribute(id, "DomainName", format!("{name}.s3.amazonaws.com"));
        Ok(name.to_owned())
    }

    /// Creates the bucket in the stack's region; one this account has already is kept.
    async fn create_bucket(&self, id: &str, name: &str) -> Result<(), ProvisionError> {
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
        Ok(())
    }

    /// The bucket's default encryption, public access block and object ownership.
    async fn secure_bucket(
        &self,
        id: &str,
        name: &str,
        props: &Value,
    ) -> Result<(), ProvisionError> {
        if let Some(rules) = props
            .pointer("/BucketEncryption/ServerSideEncryptionConfiguration")
            .and_then(Value::as_array)
        {
            self.s3
                .put_bucket_encryption()
                .bucket(name)
                .server_side_encryption_configuration(encryption_configuration(id, rules)?)
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
            self.s3
                .put_bucket_ownership_controls()
                .bucket(name)
                .ownership_controls(ownership_controls(id, rules)?)
                .send()
                .await
                .map_err(aws_err(id, "PutBucketOwnershipControls"))?;
        }
        Ok(())
    }

    /// What becomes of the bucket's objects: versioning, lifecycle rules, and the
    /// notifications of new ones to SQS.
    async fn apply_object_settings(
        &self,
        id: &str,
        name: &str,
        props: &Value,
    ) -> Result<(), ProvisionError> {
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
        if let Some(queues) = props
            .pointer("/NotificationConfiguration/QueueConfigurations")
            .and_then(Value::as_array)
        {
            let mut config = s3t::NotificationConfiguration::builder();
            for queue in queues {
                config = config.queue_configurations(queue_notification(id, queue)?);
            }
            self.s3
                .put_bucket_notification_configuration()
                .bucket(name)
                .notification_configuration(config.build())
                .send()
                .await
                .map_err(aws_err(id, "PutBucketNotificationConfiguration"))?;
        }
        Ok(())
    }
}

/// The template's `ServerSideEncryptionConfiguration` rules: each default algorithm and key.
fn encryption_configuration(
    id: &str,
    rules: &[Value],
) -> Result<s3t::ServerSideEncryptionConfiguration, ProvisionError> {
    let mut config = s3t::ServerSideEncryptionConfiguration::builder();
    for rule in rules {
        let default = &rule["ServerSideEncryptionByDefault"];
        let mut by_default = s3t::ServerSideEncryptionByDefault::builder().sse_algorithm(
            s3t::ServerSideEncryption::from(str_prop(default, "SSEAlgorithm").unwrap_or("AES256")),
        );
        if let Some(key) = str_prop(default, "KMSMasterKeyID") {
            by_default = by_default.kms_master_key_id(key);
        }
        config = config.rules(
            s3t::ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(by_default.build().map_err(build_err(id))?)
                .set_bucket_key_enabled(rule.get("BucketKeyEnabled").and_then(as_bool))
                .build(),
        );
    }
    config.build().map_err(build_err(id))
}

/// The template's `OwnershipControls` rules.
fn ownership_controls(id: &str, rules: &[Value]) -> Result<s3t::OwnershipControls, ProvisionError> {
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
    controls.build().map_err(build_err(id))
}

/// A `QueueConfigurations` entry: the events and key filter (`prefix`, `suffix`) S3 sends
/// to a queue (the queues are provisioned before the buckets).
fn queue_notification(id: &str, queue: &Value) -> Result<s3t::QueueConfiguration, ProvisionError> {
    let rules: Vec<s3t::FilterRule> = queue
        .pointer("/Filter/S3Key/Rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|rule| {
            s3t::FilterRule::builder()
                .name(s3t::FilterRuleName::from(
                    str_prop(rule, "Name").unwrap_or_default(),
                ))
                .value(str_prop(rule, "Value").unwrap_or_default())
                .build()
        })
        .collect();
    let mut b = s3t::QueueConfiguration::builder()
        .queue_arn(str_prop(queue, "Queue").unwrap_or_default())
        .events(s3t::Event::from(
            str_prop(queue, "Event").unwrap_or("s3:ObjectCreated:*"),
        ));
    if !rules.is_empty() {
        b = b.filter(
            s3t::NotificationConfigurationFilter::builder()
                .key(
                    s3t::S3KeyFilter::builder()
                        .set_filter_rules(Some(rules))
                        .build(),
                )
                .build(),
        );
    }
    b.build().map_err(build_err(id))
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
