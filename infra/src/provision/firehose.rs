//! `AWS::KinesisFirehose::DeliveryStream` (extended S3 destination).

use aws_sdk_firehose::error::ProvideErrorMetadata as _;
use aws_sdk_firehose::types as fh;
use serde_json::Value;

use super::{ProvisionError, Provisioner, aws_err, build_err, str_prop};
use crate::template::as_i64;

impl Provisioner<'_> {
    pub(super) async fn delivery_stream(
        &mut self,
        id: &str,
        name: &str,
    ) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        let dest = props
            .get("ExtendedS3DestinationConfiguration")
            .ok_or_else(|| ProvisionError::Shape {
                resource: id.into(),
                reason: "only ExtendedS3DestinationConfiguration is provisioned locally".into(),
            })?;
        let s3 = s3_destination(id, dest)?;
        let mut req = self
            .firehose
            .create_delivery_stream()
            .delivery_stream_name(name)
            .delivery_stream_type(fh::DeliveryStreamType::from(
                str_prop(&props, "DeliveryStreamType").unwrap_or("DirectPut"),
            ))
            .extended_s3_destination_configuration(s3);
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

/// The S3 destination as the template's `ExtendedS3DestinationConfiguration` gives it: bucket,
/// role, prefixes, compression, buffering and encryption.
fn s3_destination(
    id: &str,
    dest: &Value,
) -> Result<fh::ExtendedS3DestinationConfiguration, ProvisionError> {
    let mut s3 = fh::ExtendedS3DestinationConfiguration::builder()
        .bucket_arn(str_prop(dest, "BucketARN").unwrap_or_default())
        .role_arn(str_prop(dest, "RoleARN").unwrap_or_default())
        .set_prefix(str_prop(dest, "Prefix").map(str::to_owned))
        .set_error_output_prefix(str_prop(dest, "ErrorOutputPrefix").map(str::to_owned))
        .set_compression_format(
            str_prop(dest, "CompressionFormat").map(fh::CompressionFormat::from),
        );
    if let Some(hints) = dest.get("BufferingHints") {
        let number = |key: &str| hints.get(key).and_then(as_i64).map(|v| v as i32);
        s3 = s3.buffering_hints(
            fh::BufferingHints::builder()
                .set_interval_in_seconds(number("IntervalInSeconds"))
                .set_size_in_mbs(number("SizeInMBs"))
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
    s3.build().map_err(build_err(id))
}
