//! `AWS::Kinesis::Stream`.

use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata as _;
use aws_sdk_kinesis::types as kin;
use serde_json::Value;

use super::{ProvisionError, Provisioner, aws_err, build_err, str_prop};
use crate::template::as_i64;

impl Provisioner<'_> {
    pub(super) async fn stream(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        self.create_stream(id, name, &props).await?;
        let summary = self.stream_once_active(id, name).await?;
        if let Some(enc) = props.get("StreamEncryption") {
            let unencrypted = summary
                .encryption_type
                .as_ref()
                .is_none_or(|t| *t == kin::EncryptionType::None);
            if unencrypted {
                self.encrypt_stream(id, name, enc).await?;
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

    /// Creates the stream in its mode (with its shards when provisioned); one that exists
    /// already is kept.
    async fn create_stream(
        &self,
        id: &str,
        name: &str,
        props: &Value,
    ) -> Result<(), ProvisionError> {
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
        Ok(())
    }

    /// The stream's summary once it is ACTIVE (within a minute).
    async fn stream_once_active(
        &self,
        id: &str,
        name: &str,
    ) -> Result<kin::StreamDescriptionSummary, ProvisionError> {
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
                return Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ProvisionError::Shape {
            resource: id.into(),
            reason: "stream did not become ACTIVE within a minute".into(),
        })
    }

    /// Server-side encryption as the template's `StreamEncryption` gives it.
    async fn encrypt_stream(
        &self,
        id: &str,
        name: &str,
        enc: &Value,
    ) -> Result<(), ProvisionError> {
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
        Ok(())
    }
}
