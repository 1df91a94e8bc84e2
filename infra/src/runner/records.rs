//! Stream records in the shape Lambda's Kinesis and DynamoDB events carry them, built from
//! what `GetRecords` returns.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::RunnerError;

/// One stream record in Lambda's event shape.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    pub sequence_number: String,
    pub arrival: DateTime<Utc>,
    /// The event record, exactly as it goes into `Records`.
    pub json: Value,
    /// Its size in the invocation payload.
    pub size: usize,
}

impl StreamRecord {
    /// The record's `eventID` (`shardId:sequence` for Kinesis, the stream's own id for
    /// DynamoDB), or its sequence number where it has none.
    pub fn event_id(&self) -> &str {
        self.json
            .get("eventID")
            .and_then(Value::as_str)
            .unwrap_or(&self.sequence_number)
    }
}

fn smithy_time(t: Option<&aws_sdk_kinesis::primitives::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| t.to_millis().ok())
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(Utc::now)
}

/// A Kinesis record as Lambda's Kinesis event carries it.
pub(super) fn kinesis_record(
    record: &aws_sdk_kinesis::types::Record,
    shard_id: &str,
    stream_arn: &str,
    region: &str,
    account_id: &str,
) -> StreamRecord {
    let arrival = smithy_time(record.approximate_arrival_timestamp.as_ref());
    let mut kinesis = json!({
        "kinesisSchemaVersion": "1.0",
        "partitionKey": record.partition_key.clone().unwrap_or_default(),
        "sequenceNumber": record.sequence_number,
        "data": base64::engine::general_purpose::STANDARD.encode(record.data.as_ref()),
        "approximateArrivalTimestamp": arrival.timestamp_millis() as f64 / 1000.0,
    });
    if let Some(encryption) = &record.encryption_type {
        kinesis["encryptionType"] = json!(encryption.as_str());
    }
    let json = json!({
        "kinesis": kinesis,
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{shard_id}:{}", record.sequence_number),
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": format!("arn:aws:iam::{account_id}:role/local-event-source-runner"),
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    });
    let size = json.to_string().len();
    StreamRecord {
        sequence_number: record.sequence_number.clone(),
        arrival,
        json,
        size,
    }
}

/// A DynamoDB stream record as Lambda's DynamoDB event carries it: the GetRecords fields,
/// `dynamodb` in PascalCase as the Streams API writes it, plus `eventSourceARN`.
pub fn dynamodb_record(
    record: &aws_sdk_dynamodbstreams::types::Record,
    stream_arn: &str,
) -> Result<StreamRecord, RunnerError> {
    let change = record.dynamodb.as_ref().ok_or_else(|| RunnerError::Event {
        source_kind: "DynamoDB",
        reason: "a stream record without dynamodb".into(),
    })?;
    let sequence_number = change.sequence_number.clone().unwrap_or_default();
    let arrival = smithy_time(change.approximate_creation_date_time.as_ref());
    let mut dynamodb = Map::new();
    if let Some(t) = &change.approximate_creation_date_time {
        // Whole seconds, as Lambda's DynamoDB events carry it.
        dynamodb.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
    }
    for (name, image) in [
        ("Keys", &change.keys),
        ("NewImage", &change.new_image),
        ("OldImage", &change.old_image),
    ] {
        if let Some(image) = image {
            dynamodb.insert(name.into(), image_json(image)?);
        }
    }
    dynamodb.insert("SequenceNumber".into(), json!(sequence_number));
    dynamodb.insert("SizeBytes".into(), json!(change.size_bytes.unwrap_or(0)));
    if let Some(view) = &change.stream_view_type {
        dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
    }
    let mut json = json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": record.event_version,
        "eventSource": record.event_source,
        "awsRegion": record.aws_region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    });
    // Lambda leaves out what the stream does not say, rather than sending nulls.
    if let Value::Object(fields) = &mut json {
        fields.retain(|_, v| !v.is_null());
    }
    if let Some(identity) = &record.user_identity {
        json["userIdentity"] = json!({
            "type": identity.r#type,
            "principalId": identity.principal_id,
        });
    }
    let size = json.to_string().len();
    Ok(StreamRecord {
        sequence_number,
        arrival,
        json,
        size,
    })
}

fn attribute_json(
    value: &aws_sdk_dynamodbstreams::types::AttributeValue,
) -> Result<Value, RunnerError> {
    use aws_sdk_dynamodbstreams::types::AttributeValue as A;
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    Ok(match value {
        A::S(s) => json!({ "S": s }),
        A::N(n) => json!({ "N": n }),
        A::B(b) => json!({ "B": b64(b) }),
        A::Bool(b) => json!({ "BOOL": b }),
        A::Null(_) => json!({ "NULL": true }),
        A::Ss(ss) => json!({ "SS": ss }),
        A::Ns(ns) => json!({ "NS": ns }),
        A::Bs(bs) => json!({ "BS": bs.iter().map(b64).collect::<Vec<_>>() }),
        A::L(l) => json!({ "L": l.iter().map(attribute_json).collect::<Result<Vec<_>, _>>()? }),
        A::M(m) => json!({ "M": image_json(m)? }),
        other => {
            return Err(RunnerError::Event {
                source_kind: "DynamoDB",
                reason: format!("unknown attribute type {other:?}"),
            });
        }
    })
}

fn image_json(
    image: &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
) -> Result<Value, RunnerError> {
    let mut out = Map::new();
    for (name, value) in image {
        out.insert(name.clone(), attribute_json(value)?);
    }
    Ok(Value::Object(out))
}
