//! `AWS::DynamoDB::Table`: keys, indexes, stream, encryption, TTL, point-in-time recovery;
//! waits until it is active.

use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodb::types as ddb;
use serde_json::Value;

use super::{ProvisionError, Provisioner, aws_err, build_err, str_prop};
use crate::template::as_bool;

impl Provisioner<'_> {
    pub(super) async fn table(&mut self, id: &str, name: &str) -> Result<String, ProvisionError> {
        let props = self.props(id)?;
        self.create_table(id, name, &props).await?;
        let description = self.wait_table_active(id, name).await?;
        if let Some(ttl) = props.get("TimeToLiveSpecification")
            && ttl.get("Enabled").and_then(as_bool) == Some(true)
        {
            self.enable_time_to_live(id, name, ttl).await?;
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

    /// Creates the table with its keys, indexes, stream and encryption; one that exists
    /// already is kept.
    async fn create_table(
        &self,
        id: &str,
        name: &str,
        props: &Value,
    ) -> Result<(), ProvisionError> {
        let mut req = self
            .dynamodb
            .create_table()
            .table_name(name)
            .set_key_schema(Some(key_schema(id, &props["KeySchema"])?))
            .billing_mode(ddb::BillingMode::from(
                str_prop(props, "BillingMode").unwrap_or("PAY_PER_REQUEST"),
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
            req = req.global_secondary_indexes(global_secondary_index(id, gsi)?);
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
        Ok(())
    }

    /// Expiry on the template's `TimeToLiveSpecification` attribute, unless it is on already.
    async fn enable_time_to_live(
        &self,
        id: &str,
        name: &str,
        ttl: &Value,
    ) -> Result<(), ProvisionError> {
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
        if enabled {
            return Ok(());
        }
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
        Ok(())
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
}

/// A `KeySchema` of the template (the table's or an index's).
fn key_schema(id: &str, v: &Value) -> Result<Vec<ddb::KeySchemaElement>, ProvisionError> {
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
}

/// One of the template's `GlobalSecondaryIndexes`: its keys and projection.
fn global_secondary_index(
    id: &str,
    gsi: &Value,
) -> Result<ddb::GlobalSecondaryIndex, ProvisionError> {
    let projection = &gsi["Projection"];
    let non_key_attributes = projection
        .get("NonKeyAttributes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        });
    ddb::GlobalSecondaryIndex::builder()
        .index_name(str_prop(gsi, "IndexName").unwrap_or_default())
        .set_key_schema(Some(key_schema(id, &gsi["KeySchema"])?))
        .projection(
            ddb::Projection::builder()
                .projection_type(ddb::ProjectionType::from(
                    str_prop(projection, "ProjectionType").unwrap_or("ALL"),
                ))
                .set_non_key_attributes(non_key_attributes)
                .build(),
        )
        .build()
        .map_err(build_err(id))
}
