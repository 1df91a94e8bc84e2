//! A stream trigger's settings, read from template.yaml with Lambda's defaults.

use std::time::Duration;

use serde_json::Value;

use super::RunnerError;
use super::delivery::RetryRules;
use super::filter::FilterPattern;
use crate::template::{Template, as_bool, as_i64};

/// The kind of stream trigger (event source mapping): which stream it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    Kinesis,
    DynamoDb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
}

/// Where discarded batches are described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnFailure {
    /// `SQS` or `SNS`.
    pub kind: String,
    /// Logical id of the queue or topic in the template.
    pub logical_id: String,
}

/// A stream trigger's settings, with Lambda's defaults where the template says nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerSettings {
    pub function: String,
    pub event: String,
    pub kind: TriggerKind,
    /// Logical id of the stream (Kinesis) or table (DynamoDB) the trigger reads.
    pub source_logical_id: String,
    pub starting_position: StartingPosition,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub report_batch_item_failures: bool,
    pub bisect_on_error: bool,
    /// `None`: retry until the records expire (`-1`).
    pub max_retry_attempts: Option<u32>,
    /// `None`: no age limit (`-1`).
    pub max_record_age: Option<Duration>,
    pub on_failure: Option<OnFailure>,
    /// `FilterCriteria.Filters[].Pattern`, parsed; a record passes when any matches.
    pub filters: Vec<FilterPattern>,
}

impl TriggerSettings {
    /// The one stream trigger (`Kinesis` or `DynamoDB` event) of `function` in `template`.
    pub fn from_template(template: &Template, function: &str) -> Result<Self, RunnerError> {
        let err = |reason: String| RunnerError::Settings {
            function: function.to_owned(),
            reason,
        };
        let resource = template
            .resources
            .get(function)
            .ok_or_else(|| err("no such resource".into()))?;
        let events = resource
            .properties
            .get("Events")
            .and_then(Value::as_object)
            .ok_or_else(|| err("no Events".into()))?;
        let mut triggers = events.iter().filter_map(|(name, spec)| {
            let kind = match spec.get("Type").and_then(Value::as_str) {
                Some("Kinesis") => TriggerKind::Kinesis,
                Some("DynamoDB") => TriggerKind::DynamoDb,
                _ => return None,
            };
            Some((
                name,
                kind,
                spec.get("Properties").cloned().unwrap_or(Value::Null),
            ))
        });
        let (event, kind, props) = triggers
            .next()
            .ok_or_else(|| err("no Kinesis or DynamoDB event".into()))?;
        if triggers.next().is_some() {
            return Err(err("more than one stream event".into()));
        }
        Self::parse(function, event, kind, &props, template).map_err(err)
    }

    fn parse(
        function: &str,
        event: &str,
        kind: TriggerKind,
        props: &Value,
        template: &Template,
    ) -> Result<Self, String> {
        // A number may be written literally or through `!Ref Parameter` (its default here:
        // local runs use the template's defaults).
        let number = |key: &str| -> Result<Option<i64>, String> {
            match props.get(key) {
                None => Ok(None),
                Some(v) => {
                    let v = parameter_default(template, v).unwrap_or_else(|| v.clone());
                    as_i64(&v)
                        .map(Some)
                        .ok_or_else(|| format!("{event}.{key}: not an integer: {v}"))
                }
            }
        };
        let flag = |key: &str| -> Result<bool, String> {
            match props.get(key) {
                None => Ok(false),
                Some(v) => as_bool(v).ok_or_else(|| format!("{event}.{key}: not a boolean: {v}")),
            }
        };
        let source_logical_id = props
            .get("Stream")
            .and_then(get_att_resource)
            .ok_or_else(|| format!("{event}.Stream: expected !GetAtt Resource.Arn/StreamArn"))?;
        let starting_position = match props.get("StartingPosition").and_then(Value::as_str) {
            Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
            Some("LATEST") => StartingPosition::Latest,
            other => {
                return Err(format!(
                    "{event}.StartingPosition {other:?}: the local runner supports TRIM_HORIZON and LATEST"
                ));
            }
        };
        let batch_size = number("BatchSize")?.unwrap_or(100);
        let max_batch = match kind {
            TriggerKind::Kinesis => 10_000,
            TriggerKind::DynamoDb => 10_000,
        };
        if !(1..=max_batch).contains(&batch_size) {
            return Err(format!(
                "{event}.BatchSize {batch_size} outside 1..={max_batch}"
            ));
        }
        let window = number("MaximumBatchingWindowInSeconds")?.unwrap_or(0);
        if !(0..=300).contains(&window) {
            return Err(format!(
                "{event}.MaximumBatchingWindowInSeconds {window} outside 0..=300"
            ));
        }
        let retries = number("MaximumRetryAttempts")?.unwrap_or(-1);
        let max_retry_attempts = match retries {
            -1 => None,
            n if (0..=10_000).contains(&n) => Some(n as u32),
            n => {
                return Err(format!(
                    "{event}.MaximumRetryAttempts {n} outside -1..=10000"
                ));
            }
        };
        let age = number("MaximumRecordAgeInSeconds")?.unwrap_or(-1);
        let max_record_age = match age {
            -1 => None,
            n if (60..=604_800).contains(&n) => Some(Duration::from_secs(n as u64)),
            n => {
                return Err(format!(
                    "{event}.MaximumRecordAgeInSeconds {n} outside -1 or 60..=604800"
                ));
            }
        };
        let report_batch_item_failures = match props.get("FunctionResponseTypes") {
            None => false,
            Some(Value::Array(types)) => types
                .iter()
                .any(|t| t.as_str() == Some("ReportBatchItemFailures")),
            Some(other) => return Err(format!("{event}.FunctionResponseTypes: {other}")),
        };
        let on_failure = match props.pointer("/DestinationConfig/OnFailure") {
            None => None,
            Some(spec) => {
                let logical_id = spec
                    .get("Destination")
                    .and_then(get_att_resource)
                    .ok_or_else(|| {
                        format!("{event}.DestinationConfig.OnFailure.Destination: expected !GetAtt Resource.Arn")
                    })?;
                let kind = spec
                    .get("Type")
                    .and_then(Value::as_str)
                    .unwrap_or("SQS")
                    .to_owned();
                if kind != "SQS" && kind != "SNS" {
                    return Err(format!("{event}.DestinationConfig.OnFailure.Type {kind}"));
                }
                Some(OnFailure { kind, logical_id })
            }
        };
        let mut filters = Vec::new();
        if let Some(list) = props.pointer("/FilterCriteria/Filters") {
            let list = list
                .as_array()
                .ok_or_else(|| format!("{event}.FilterCriteria.Filters: not a list"))?;
            for filter in list {
                let text = filter
                    .get("Pattern")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{event}.FilterCriteria: a filter without Pattern"))?;
                filters.push(FilterPattern::parse(text).map_err(|e| format!("{event}: {e}"))?);
            }
        }
        Ok(Self {
            function: function.to_owned(),
            event: event.to_owned(),
            kind,
            source_logical_id,
            starting_position,
            batch_size: batch_size as usize,
            batching_window: Duration::from_secs(window as u64),
            report_batch_item_failures,
            bisect_on_error: flag("BisectBatchOnFunctionError")?,
            max_retry_attempts,
            max_record_age,
            on_failure,
            filters,
        })
    }

    /// The retry rules of [`super::deliver`].
    pub fn retry_rules(&self) -> RetryRules {
        RetryRules {
            report_batch_item_failures: self.report_batch_item_failures,
            bisect_on_error: self.bisect_on_error,
            max_retry_attempts: self.max_retry_attempts,
            backoff: Duration::from_millis(20),
        }
    }
}

/// `Ref: Parameter` as the parameter's default.
fn parameter_default(template: &Template, value: &Value) -> Option<Value> {
    let name = value.get("Ref")?.as_str()?;
    template.parameters.get(name)?.default.clone()
}

/// The resource of `!GetAtt Resource.Attribute` (long form, as [`Template`] stores it).
pub(super) fn get_att_resource(value: &Value) -> Option<String> {
    let parts = value.get("Fn::GetAtt")?;
    match parts {
        Value::Array(a) => a.first()?.as_str().map(str::to_owned),
        Value::String(s) => s.split('.').next().map(str::to_owned),
        _ => None,
    }
}
