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
        let spec = EventSpec {
            event,
            props,
            template,
        };
        let source_logical_id = props
            .get("Stream")
            .and_then(get_att_resource)
            .ok_or_else(|| format!("{event}.Stream: expected !GetAtt Resource.Arn/StreamArn"))?;
        let batch_size = spec.bounded("BatchSize", 100, 1..=max_batch_size(kind))?;
        let window = spec.bounded("MaximumBatchingWindowInSeconds", 0, 0..=300)?;
        Ok(Self {
            function: function.to_owned(),
            event: event.to_owned(),
            kind,
            source_logical_id,
            starting_position: spec.starting_position()?,
            batch_size: batch_size as usize,
            batching_window: Duration::from_secs(window as u64),
            report_batch_item_failures: spec.reports_batch_item_failures()?,
            bisect_on_error: spec.flag("BisectBatchOnFunctionError")?,
            max_retry_attempts: spec.max_retry_attempts()?,
            max_record_age: spec.max_record_age()?,
            on_failure: spec.on_failure()?,
            filters: spec.filters()?,
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

/// The largest batch Lambda takes from a stream of `kind`.
fn max_batch_size(kind: TriggerKind) -> i64 {
    match kind {
        TriggerKind::Kinesis | TriggerKind::DynamoDb => 10_000,
    }
}

/// One stream event's `Properties`, each read and checked against Lambda's limits; errors
/// name the event and the property.
struct EventSpec<'a> {
    event: &'a str,
    props: &'a Value,
    template: &'a Template,
}

impl EventSpec<'_> {
    /// A number, written literally or through `!Ref Parameter` (its default here: local runs
    /// use the template's defaults).
    fn number(&self, key: &str) -> Result<Option<i64>, String> {
        let Some(v) = self.props.get(key) else {
            return Ok(None);
        };
        let v = parameter_default(self.template, v).unwrap_or_else(|| v.clone());
        as_i64(&v)
            .map(Some)
            .ok_or_else(|| format!("{}.{key}: not an integer: {v}", self.event))
    }

    /// A number within `range`, `default` when absent.
    fn bounded(
        &self,
        key: &str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, String> {
        let n = self.number(key)?.unwrap_or(default);
        if !range.contains(&n) {
            return Err(format!(
                "{}.{key} {n} outside {}..={}",
                self.event,
                range.start(),
                range.end()
            ));
        }
        Ok(n)
    }

    fn flag(&self, key: &str) -> Result<bool, String> {
        match self.props.get(key) {
            None => Ok(false),
            Some(v) => {
                as_bool(v).ok_or_else(|| format!("{}.{key}: not a boolean: {v}", self.event))
            }
        }
    }

    fn starting_position(&self) -> Result<StartingPosition, String> {
        match self.props.get("StartingPosition").and_then(Value::as_str) {
            Some("TRIM_HORIZON") => Ok(StartingPosition::TrimHorizon),
            Some("LATEST") => Ok(StartingPosition::Latest),
            other => Err(format!(
                "{}.StartingPosition {other:?}: the local runner supports TRIM_HORIZON and LATEST",
                self.event
            )),
        }
    }

    /// `MaximumRetryAttempts`: -1 (the default) retries until the record expires.
    fn max_retry_attempts(&self) -> Result<Option<u32>, String> {
        match self.number("MaximumRetryAttempts")?.unwrap_or(-1) {
            -1 => Ok(None),
            n if (0..=10_000).contains(&n) => Ok(Some(n as u32)),
            n => Err(format!(
                "{}.MaximumRetryAttempts {n} outside -1..=10000",
                self.event
            )),
        }
    }

    /// `MaximumRecordAgeInSeconds`: -1 (the default) keeps records as long as the stream does.
    fn max_record_age(&self) -> Result<Option<Duration>, String> {
        match self.number("MaximumRecordAgeInSeconds")?.unwrap_or(-1) {
            -1 => Ok(None),
            n if (60..=604_800).contains(&n) => Ok(Some(Duration::from_secs(n as u64))),
            n => Err(format!(
                "{}.MaximumRecordAgeInSeconds {n} outside -1 or 60..=604800",
                self.event
            )),
        }
    }

    fn reports_batch_item_failures(&self) -> Result<bool, String> {
        match self.props.get("FunctionResponseTypes") {
            None => Ok(false),
            Some(Value::Array(types)) => Ok(types
                .iter()
                .any(|t| t.as_str() == Some("ReportBatchItemFailures"))),
            Some(other) => Err(format!("{}.FunctionResponseTypes: {other}", self.event)),
        }
    }

    /// `DestinationConfig.OnFailure`: the SQS queue or SNS topic discarded batches go to.
    fn on_failure(&self) -> Result<Option<OnFailure>, String> {
        let event = self.event;
        let Some(spec) = self.props.pointer("/DestinationConfig/OnFailure") else {
            return Ok(None);
        };
        let logical_id = spec
            .get("Destination")
            .and_then(get_att_resource)
            .ok_or_else(|| {
                format!(
                    "{event}.DestinationConfig.OnFailure.Destination: expected !GetAtt Resource.Arn"
                )
            })?;
        let kind = spec
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("SQS")
            .to_owned();
        if kind != "SQS" && kind != "SNS" {
            return Err(format!("{event}.DestinationConfig.OnFailure.Type {kind}"));
        }
        Ok(Some(OnFailure { kind, logical_id }))
    }

    /// `FilterCriteria.Filters`: each filter's `Pattern`, parsed.
    fn filters(&self) -> Result<Vec<FilterPattern>, String> {
        let event = self.event;
        let Some(list) = self.props.pointer("/FilterCriteria/Filters") else {
            return Ok(Vec::new());
        };
        let list = list
            .as_array()
            .ok_or_else(|| format!("{event}.FilterCriteria.Filters: not a list"))?;
        list.iter()
            .map(|filter| {
                let text = filter
                    .get("Pattern")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{event}.FilterCriteria: a filter without Pattern"))?;
                FilterPattern::parse(text).map_err(|e| format!("{event}: {e}"))
            })
            .collect()
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
