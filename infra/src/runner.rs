//! Local event source mappings: what Lambda does for a stream trigger, done in-process.
//!
//! There is no Lambda service locally, so this module reads a function's stream trigger
//! (`Events` of type `Kinesis` or `DynamoDB` in template.yaml), polls the stream through the
//! AWS API (Kinesis `GetShardIterator`/`GetRecords`, DynamoDB Streams), builds events in the
//! exact shape Lambda hands a function, and invokes a handler given in as a
//! [`StreamFunction`]. It honours the trigger's settings as Lambda documents them:
//!
//! - `BatchSize`, `MaximumBatchingWindowInSeconds` (and Lambda's 6 MB payload limit);
//! - `FunctionResponseTypes: [ReportBatchItemFailures]`: the batch is re-delivered from the
//!   failed record with the lowest sequence number; an empty, null or unknown identifier
//!   fails the whole batch;
//! - `BisectBatchOnFunctionError`: a batch whose invocation fails is split in two, and each
//!   half is retried (splitting does not use up retries);
//! - `MaximumRetryAttempts`, `MaximumRecordAgeInSeconds`: then the records are discarded and
//!   the batch's description goes to `DestinationConfig.OnFailure` (SQS or SNS), in Lambda's
//!   invocation-record format;
//! - `FilterCriteria`: records that match no pattern are dropped before batching;
//! - `StartingPosition` `TRIM_HORIZON` or `LATEST`; one batch at a time per shard, shards in
//!   parallel; a child shard after its parent is finished.
//!
//! What differs from Lambda (docs/demo.md): the batching window can be cut short by
//! [`Mapping::pump`] with `flush` (a caller that knows the producer is done for now), retries
//! back off for milliseconds, not seconds, and there is no per-function concurrency limit.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::provision::{ProvisionedStack, physical_name};
use crate::template::{Template, as_bool, as_i64};

/// Lambda's limit on a synchronous invocation's payload.
pub const MAX_INVOKE_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Largest `Limit` of one Kinesis `GetRecords` call.
const KINESIS_GET_RECORDS_LIMIT: i32 = 10_000;
/// Largest `Limit` of one DynamoDB Streams `GetRecords` call.
const DYNAMODB_GET_RECORDS_LIMIT: i32 = 1_000;
/// How many of a shard's latest record identities [`RecentlyRead`] keeps.
const RECENTLY_READ_CAPACITY: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("template.yaml, {function}: {reason}")]
    Settings { function: String, reason: String },
    #[error("{operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
    #[error("cannot build the {source_kind} event: {reason}")]
    Event {
        source_kind: &'static str,
        reason: String,
    },
}

fn aws_error<E: std::error::Error>(operation: &'static str) -> impl FnOnce(E) -> RunnerError {
    move |e| RunnerError::Aws {
        operation,
        message: aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Settings, read from template.yaml
// ---------------------------------------------------------------------------------------

/// The kind of stream a trigger reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
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
    pub source: SourceKind,
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
            let source = match spec.get("Type").and_then(Value::as_str) {
                Some("Kinesis") => SourceKind::Kinesis,
                Some("DynamoDB") => SourceKind::DynamoDb,
                _ => return None,
            };
            Some((
                name,
                source,
                spec.get("Properties").cloned().unwrap_or(Value::Null),
            ))
        });
        let (event, source, props) = triggers
            .next()
            .ok_or_else(|| err("no Kinesis or DynamoDB event".into()))?;
        if triggers.next().is_some() {
            return Err(err("more than one stream event".into()));
        }
        Self::parse(function, event, source, &props, template).map_err(err)
    }

    fn parse(
        function: &str,
        event: &str,
        source: SourceKind,
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
        let max_batch = match source {
            SourceKind::Kinesis => 10_000,
            SourceKind::DynamoDb => 10_000,
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
            source,
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

    /// The retry rules of [`deliver`].
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
fn get_att_resource(value: &Value) -> Option<String> {
    let parts = value.get("Fn::GetAtt")?;
    match parts {
        Value::Array(a) => a.first()?.as_str().map(str::to_owned),
        Value::String(s) => s.split('.').next().map(str::to_owned),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Filter patterns
// ---------------------------------------------------------------------------------------

/// A `FilterCriteria` pattern: an object whose leaves are lists of accepted values. The
/// subset this runner evaluates: exact matches of strings, numbers, booleans and null, at
/// any depth; other operators (`prefix`, `numeric`, `exists`...) are refused when read, so
/// nothing is filtered differently from Lambda without saying so.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPattern(Map<String, Value>);

impl FilterPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("filter pattern {text:?}: {e}"))?;
        let Value::Object(map) = value else {
            return Err(format!("filter pattern {text:?} is not an object"));
        };
        check_pattern(&map).map_err(|e| format!("filter pattern {text:?}: {e}"))?;
        Ok(Self(map))
    }

    /// Whether a record (the event record JSON; Kinesis `data` decoded when it is JSON)
    /// matches.
    pub fn matches(&self, record: &Value) -> bool {
        pattern_matches(&self.0, record)
    }
}

fn check_pattern(map: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in map {
        match value {
            Value::Object(inner) => check_pattern(inner)?,
            Value::Array(values) => {
                if let Some(op) = values.iter().find(|v| v.is_object() || v.is_array()) {
                    return Err(format!(
                        "{key}: {op} is a content-filter operator the local runner does not evaluate"
                    ));
                }
            }
            other => return Err(format!("{key}: {other} is not a list of values")),
        }
    }
    Ok(())
}

fn pattern_matches(pattern: &Map<String, Value>, record: &Value) -> bool {
    pattern.iter().all(|(key, expected)| {
        let actual = record.get(key);
        match expected {
            Value::Object(inner) => actual.is_some_and(|a| pattern_matches(inner, a)),
            Value::Array(values) => match actual {
                // A list in the record matches when any of its elements does.
                Some(Value::Array(items)) => items.iter().any(|i| values.contains(i)),
                Some(a) => values.contains(a),
                None => false,
            },
            _ => false,
        }
    })
}

// ---------------------------------------------------------------------------------------
// Delivery of one batch: retries, bisection, discards (pure, tested without AWS)
// ---------------------------------------------------------------------------------------

/// How a batch is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryRules {
    pub report_batch_item_failures: bool,
    pub bisect_on_error: bool,
    pub max_retry_attempts: Option<u32>,
    /// Pause before a retry, doubled each time up to a second.
    pub backoff: Duration,
}

/// What one invocation returned, as Lambda reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// Success: no `batchItemFailures` (or the trigger does not read them).
    Success,
    /// `batchItemFailures`: the batch failed from this index on (0 for an empty, null or
    /// unknown identifier, which fails the whole batch).
    FailedFrom(usize),
    /// The invocation failed (an error or a panic): `errorType`, `errorMessage`.
    FunctionError { error_type: String, message: String },
}

/// Why records were discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DiscardCondition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

impl DiscardCondition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Self::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// Records given up on, with why: one on-failure message each.
#[derive(Debug, Clone, PartialEq)]
pub struct Discard<R> {
    pub records: Vec<R>,
    pub condition: DiscardCondition,
    /// Invocations these records went through.
    pub invoke_count: u32,
    /// The last invocation's function error type, if it failed with one.
    pub function_error: Option<String>,
}

/// What delivering one batch took.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered<R> {
    pub invocations: u32,
    pub retries: u32,
    pub bisections: u32,
    /// Records the function processed successfully.
    pub succeeded: usize,
    pub discards: Vec<Discard<R>>,
}

/// A part of a batch on its way, with the failed invocations it has been through since its
/// last split (retries count per part, as Lambda counts them per batch).
struct Part<R> {
    records: Vec<R>,
    failed_invocations: u32,
    invoke_count: u32,
    last_error: Option<String>,
}

/// Delivers one batch as Lambda does, until every record either succeeded or was discarded:
/// `invoke` is called with a part of the batch, in stream order; `expired` says whether a
/// record is past the maximum age (checked before each invocation).
pub async fn deliver<R, F, Fut>(
    batch: Vec<R>,
    rules: &RetryRules,
    expired: impl Fn(&R) -> bool,
    mut invoke: F,
) -> Delivered<R>
where
    R: Clone,
    F: FnMut(Vec<R>) -> Fut,
    Fut: Future<Output = Invocation>,
{
    let mut out = Delivered {
        invocations: 0,
        retries: 0,
        bisections: 0,
        succeeded: 0,
        discards: Vec::new(),
    };
    let mut queue: VecDeque<Part<R>> = VecDeque::new();
    queue.push_back(Part {
        records: batch,
        failed_invocations: 0,
        invoke_count: 0,
        last_error: None,
    });
    while let Some(mut part) = queue.pop_front() {
        // Records are in arrival order: the expired ones are a prefix.
        let old = part.records.iter().take_while(|r| expired(r)).count();
        if old > 0 {
            out.discards.push(Discard {
                records: part.records.drain(..old).collect(),
                condition: DiscardCondition::RecordAgeExceeded,
                invoke_count: part.invoke_count,
                function_error: part.last_error.clone(),
            });
        }
        if part.records.is_empty() {
            continue;
        }
        if part.failed_invocations > 0 {
            out.retries += 1;
            let exponent = (part.failed_invocations - 1).min(10);
            let pause = (rules.backoff * 2u32.pow(exponent)).min(Duration::from_secs(1));
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
        out.invocations += 1;
        part.invoke_count += 1;
        let result = invoke(part.records.clone()).await;
        let exhausted = rules
            .max_retry_attempts
            .is_some_and(|max| part.failed_invocations >= max);
        match result {
            Invocation::Success => out.succeeded += part.records.len(),
            // Without ReportBatchItemFailures Lambda ignores the response body.
            Invocation::FailedFrom(_) if !rules.report_batch_item_failures => {
                out.succeeded += part.records.len();
            }
            Invocation::FailedFrom(from) => {
                let from = from.min(part.records.len());
                out.succeeded += from;
                let rest: Vec<R> = part.records.split_off(from);
                if rest.is_empty() {
                    continue;
                }
                if exhausted {
                    out.discards.push(Discard {
                        records: rest,
                        condition: DiscardCondition::RetryAttemptsExhausted,
                        invoke_count: part.invoke_count,
                        function_error: None,
                    });
                } else {
                    queue.push_front(Part {
                        records: rest,
                        failed_invocations: part.failed_invocations + 1,
                        invoke_count: part.invoke_count,
                        last_error: None,
                    });
                }
            }
            Invocation::FunctionError { error_type, .. } => {
                if rules.bisect_on_error && part.records.len() > 1 {
                    // Splitting does not use up the retry quota.
                    out.bisections += 1;
                    let second = part.records.split_off(part.records.len() / 2);
                    for records in [second, part.records] {
                        queue.push_front(Part {
                            records,
                            failed_invocations: part.failed_invocations,
                            invoke_count: part.invoke_count,
                            last_error: Some(error_type.clone()),
                        });
                    }
                } else if exhausted {
                    out.discards.push(Discard {
                        records: part.records,
                        condition: DiscardCondition::RetryAttemptsExhausted,
                        invoke_count: part.invoke_count,
                        function_error: Some(error_type),
                    });
                } else {
                    queue.push_front(Part {
                        records: part.records,
                        failed_invocations: part.failed_invocations + 1,
                        invoke_count: part.invoke_count,
                        last_error: Some(error_type),
                    });
                }
            }
        }
    }
    out
}

/// Reads a function's response as Lambda does: the lowest index among `batchItemFailures`,
/// the whole batch for an identifier that is empty, null or not in the batch.
pub fn read_response(response: &Value, sequence_numbers: &[&str]) -> Invocation {
    let Some(failures) = response.get("batchItemFailures").and_then(Value::as_array) else {
        return Invocation::Success;
    };
    let mut first: Option<usize> = None;
    for failure in failures {
        let index = failure
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .and_then(|id| sequence_numbers.iter().position(|s| *s == id))
            .unwrap_or(0);
        first = Some(first.map_or(index, |f| f.min(index)));
    }
    first.map_or(Invocation::Success, Invocation::FailedFrom)
}

// ---------------------------------------------------------------------------------------
// The function, as the runner sees it
// ---------------------------------------------------------------------------------------

/// A handler failure that Lambda would report as a function error (bisected, retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct FunctionError {
    pub error_type: String,
    pub message: String,
}

/// A handler an event source mapping invokes: its event type is read from the JSON Lambda
/// would send, its response is read back as JSON (`batchItemFailures`).
pub trait StreamFunction {
    type Event: DeserializeOwned;
    type Response: Serialize;
    fn invoke(
        &self,
        event: Self::Event,
    ) -> impl Future<Output = Result<Self::Response, FunctionError>>;
}

// ---------------------------------------------------------------------------------------
// Reading the streams
// ---------------------------------------------------------------------------------------

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

/// Where a mapping reads from, resolved against a provisioned stack.
#[derive(Debug, Clone)]
enum Source {
    Kinesis {
        client: aws_sdk_kinesis::Client,
        stream_name: String,
        stream_arn: String,
    },
    DynamoDb {
        client: aws_sdk_dynamodbstreams::Client,
        stream_arn: String,
    },
}

impl Source {
    fn arn(&self) -> &str {
        match self {
            Self::Kinesis { stream_arn, .. } | Self::DynamoDb { stream_arn, .. } => stream_arn,
        }
    }
}

/// A shard's reading position and records read but not yet delivered.
#[derive(Debug, Default)]
struct ShardCursor {
    parent: Option<String>,
    iterator: Option<String>,
    /// The shard is closed and everything in it was read.
    finished: bool,
    buffer: VecDeque<StreamRecord>,
    /// When the oldest buffered record was read (the batching window runs from it).
    buffered_since: Option<Instant>,
    recently_read: RecentlyRead,
}

/// The identities (`eventID`) of a shard's latest records read, so a record the stream hands
/// out twice is delivered once. A bare moto server numbers concurrent writes to a table's
/// stream without a lock: two records can share a sequence number, and the iterator after a
/// page ending on such a record starts on that record again (forever, when it is the
/// stream's last, so a drain would never end). The project's emulator serves one request at a
/// time (infra/src/moto_serial.py), so this needs an emulator started some other way
/// (`AWS_ENDPOINT_URL`); a real stream never repeats a record, and there the guard never
/// fires. Bounded: a re-read reaches back at most a few records.
#[derive(Debug, Default)]
struct RecentlyRead {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl RecentlyRead {
    /// Notes `id`; false if it was read before.
    fn first_time(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == RECENTLY_READ_CAPACITY
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.order.push_back(id.to_owned());
        self.ids.insert(id.to_owned());
        true
    }
}

/// Where discarded batches go.
#[derive(Debug, Clone)]
enum FailureDestination {
    Sqs {
        client: aws_sdk_sqs::Client,
        queue_url: String,
    },
    Sns {
        client: aws_sdk_sns::Client,
        topic_arn: String,
    },
}

/// Counters of a mapping since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MappingStats {
    pub records_read: usize,
    pub filtered_out: usize,
    pub invocations: u32,
    pub retries: u32,
    pub bisections: u32,
    pub records_succeeded: usize,
    pub records_discarded: usize,
    pub failure_messages: usize,
}

/// What one pass over a mapping's shards did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PumpReport {
    pub read: usize,
    pub delivered: usize,
    /// Records still waiting for their batching window.
    pub buffered: usize,
}

/// One event source mapping: a stream, a function and the trigger's settings.
pub struct Mapping<F> {
    pub settings: TriggerSettings,
    pub function_arn: String,
    source: Source,
    region: String,
    account_id: String,
    failure_destination: Option<FailureDestination>,
    function: F,
    shards: BTreeMap<String, ShardCursor>,
    pub stats: MappingStats,
}

impl<F: StreamFunction> Mapping<F> {
    /// The mapping of `function_logical_id`'s stream trigger in `template`, on the resources
    /// of `stack` (provisioned from that template), invoking `function`.
    pub async fn new(
        sdk: &SdkConfig,
        template: &Template,
        stack: &ProvisionedStack,
        function_logical_id: &str,
        function: F,
    ) -> Result<Self, RunnerError> {
        let settings = TriggerSettings::from_template(template, function_logical_id)?;
        let physical = |logical_id: &str| -> Result<String, RunnerError> {
            stack
                .resources
                .iter()
                .find(|r| r.logical_id == logical_id)
                .map(|r| r.physical_id.clone())
                .ok_or_else(|| RunnerError::Settings {
                    function: function_logical_id.to_owned(),
                    reason: format!("{logical_id} is not provisioned in {}", stack.stack_name),
                })
        };
        let resource_name = physical(&settings.source_logical_id)?;
        let source = match settings.source {
            SourceKind::Kinesis => {
                let client = aws_sdk_kinesis::Client::new(sdk);
                let summary = client
                    .describe_stream_summary()
                    .stream_name(&resource_name)
                    .send()
                    .await
                    .map_err(aws_error("DescribeStreamSummary"))?;
                let stream_arn = summary
                    .stream_description_summary
                    .map(|d| d.stream_arn)
                    .unwrap_or_default();
                Source::Kinesis {
                    client,
                    stream_name: resource_name,
                    stream_arn,
                }
            }
            SourceKind::DynamoDb => {
                let table = aws_sdk_dynamodb::Client::new(sdk)
                    .describe_table()
                    .table_name(&resource_name)
                    .send()
                    .await
                    .map_err(aws_error("DescribeTable"))?;
                let stream_arn =
                    table
                        .table
                        .and_then(|t| t.latest_stream_arn)
                        .ok_or_else(|| RunnerError::Settings {
                            function: function_logical_id.to_owned(),
                            reason: format!("table {resource_name} has no stream"),
                        })?;
                Source::DynamoDb {
                    client: aws_sdk_dynamodbstreams::Client::new(sdk),
                    stream_arn,
                }
            }
        };
        let failure_destination = match &settings.on_failure {
            None => None,
            Some(on_failure) if on_failure.kind == "SNS" => Some(FailureDestination::Sns {
                client: aws_sdk_sns::Client::new(sdk),
                topic_arn: physical(&on_failure.logical_id)?,
            }),
            Some(on_failure) => Some(FailureDestination::Sqs {
                client: aws_sdk_sqs::Client::new(sdk),
                queue_url: physical(&on_failure.logical_id)?,
            }),
        };
        let function_arn = format!(
            "arn:aws:lambda:{}:{}:function:{}",
            stack.region,
            stack.account_id,
            physical_name(&stack.stack_name, function_logical_id)
        );
        Ok(Self {
            settings,
            function_arn,
            source,
            region: stack.region.clone(),
            account_id: stack.account_id.clone(),
            failure_destination,
            function,
            shards: BTreeMap::new(),
            stats: MappingStats::default(),
        })
    }

    /// The ARN of the stream read.
    pub fn source_arn(&self) -> &str {
        self.source.arn()
    }

    /// The function invoked.
    pub fn function(&self) -> &F {
        &self.function
    }

    /// One pass: reads what each shard has, and invokes the function with every batch that
    /// is due (full, past its batching window, or any when `flush`). Shards are processed in
    /// parallel, one batch at a time each.
    pub async fn pump(&mut self, flush: bool) -> Result<PumpReport, RunnerError> {
        self.discover_shards().await?;
        let mut report = PumpReport::default();
        // Read every shard that may be read (children after their parents).
        let finished: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, c)| c.finished && c.buffer.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        let ids: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, c)| {
                !c.finished
                    && c.parent
                        .as_ref()
                        .is_none_or(|p| finished.contains(p) || !self.shards.contains_key(p))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            report.read += self.read_shard(id).await?;
        }
        // Batches of all shards, delivered concurrently.
        let mut due: Vec<(String, Vec<StreamRecord>)> = Vec::new();
        let batch_size = self.settings.batch_size;
        let window = self.settings.batching_window;
        for (id, cursor) in &mut self.shards {
            let ready = cursor.buffer.len() >= batch_size
                || (!cursor.buffer.is_empty()
                    && (flush
                        || window.is_zero()
                        || cursor.buffered_since.is_some_and(|t| t.elapsed() >= window)));
            if ready {
                let batch = take_batch(&mut cursor.buffer, batch_size);
                cursor.buffered_since = (!cursor.buffer.is_empty()).then(Instant::now);
                due.push((id.clone(), batch));
            }
        }
        let this = &*self;
        let results = futures::future::join_all(
            due.into_iter()
                .map(|(shard, batch)| async move { this.deliver_batch(&shard, batch).await }),
        )
        .await;
        for result in results {
            let (delivered, messages) = result?;
            report.delivered += delivered.succeeded
                + delivered
                    .discards
                    .iter()
                    .map(|d| d.records.len())
                    .sum::<usize>();
            let stats = &mut self.stats;
            stats.invocations += delivered.invocations;
            stats.retries += delivered.retries;
            stats.bisections += delivered.bisections;
            stats.records_succeeded += delivered.succeeded;
            stats.records_discarded += delivered
                .discards
                .iter()
                .map(|d| d.records.len())
                .sum::<usize>();
            stats.failure_messages += messages;
        }
        report.buffered = self.shards.values().map(|c| c.buffer.len()).sum();
        Ok(report)
    }

    async fn discover_shards(&mut self) -> Result<(), RunnerError> {
        let listed: Vec<(String, Option<String>)> = match &self.source {
            Source::Kinesis {
                client,
                stream_name,
                ..
            } => {
                let mut out = Vec::new();
                let mut token: Option<String> = None;
                loop {
                    let request = match &token {
                        Some(t) => client.list_shards().next_token(t),
                        None => client.list_shards().stream_name(stream_name),
                    };
                    let page = request.send().await.map_err(aws_error("ListShards"))?;
                    for shard in page.shards() {
                        out.push((shard.shard_id.clone(), shard.parent_shard_id.clone()));
                    }
                    token = page.next_token;
                    if token.is_none() {
                        break out;
                    }
                }
            }
            Source::DynamoDb { client, stream_arn } => {
                let mut out = Vec::new();
                let mut start: Option<String> = None;
                loop {
                    let page = client
                        .describe_stream()
                        .stream_arn(stream_arn)
                        .set_exclusive_start_shard_id(start.clone())
                        .send()
                        .await
                        .map_err(aws_error("DescribeStream"))?;
                    let Some(description) = page.stream_description else {
                        break out;
                    };
                    for shard in description.shards() {
                        if let Some(id) = shard.shard_id() {
                            out.push((id.to_owned(), shard.parent_shard_id.clone()));
                        }
                    }
                    start = description.last_evaluated_shard_id;
                    if start.is_none() {
                        break out;
                    }
                }
            }
        };
        for (id, parent) in listed {
            if self.shards.contains_key(&id) {
                continue;
            }
            let iterator = self.shard_iterator(&id).await?;
            self.shards.insert(
                id,
                ShardCursor {
                    parent,
                    iterator,
                    ..ShardCursor::default()
                },
            );
        }
        Ok(())
    }

    async fn shard_iterator(&self, shard_id: &str) -> Result<Option<String>, RunnerError> {
        let latest = self.settings.starting_position == StartingPosition::Latest;
        match &self.source {
            Source::Kinesis {
                client,
                stream_name,
                ..
            } => {
                use aws_sdk_kinesis::types::ShardIteratorType as T;
                Ok(client
                    .get_shard_iterator()
                    .stream_name(stream_name)
                    .shard_id(shard_id)
                    .shard_iterator_type(if latest { T::Latest } else { T::TrimHorizon })
                    .send()
                    .await
                    .map_err(aws_error("GetShardIterator"))?
                    .shard_iterator)
            }
            Source::DynamoDb { client, stream_arn } => {
                use aws_sdk_dynamodbstreams::types::ShardIteratorType as T;
                Ok(client
                    .get_shard_iterator()
                    .stream_arn(stream_arn)
                    .shard_id(shard_id)
                    .shard_iterator_type(if latest { T::Latest } else { T::TrimHorizon })
                    .send()
                    .await
                    .map_err(aws_error("GetShardIterator"))?
                    .shard_iterator)
            }
        }
    }

    /// Reads what the shard has now (one GetRecords call), filters it and buffers it.
    async fn read_shard(&mut self, shard_id: &str) -> Result<usize, RunnerError> {
        let Some(iterator) = self.shards.get(shard_id).and_then(|c| c.iterator.clone()) else {
            if let Some(c) = self.shards.get_mut(shard_id) {
                c.finished = true;
            }
            return Ok(0);
        };
        let (records, next) = match &self.source {
            Source::Kinesis {
                client, stream_arn, ..
            } => {
                let page = client
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(KINESIS_GET_RECORDS_LIMIT)
                    .send()
                    .await
                    .map_err(aws_error("GetRecords"))?;
                let records = page
                    .records
                    .iter()
                    .map(|r| {
                        kinesis_record(r, shard_id, stream_arn, &self.region, &self.account_id)
                    })
                    .collect::<Vec<_>>();
                (records, page.next_shard_iterator)
            }
            Source::DynamoDb { client, stream_arn } => {
                let page = client
                    .get_records()
                    .shard_iterator(iterator)
                    .limit(DYNAMODB_GET_RECORDS_LIMIT)
                    .send()
                    .await
                    .map_err(aws_error("GetRecords"))?;
                let records = page
                    .records
                    .unwrap_or_default()
                    .iter()
                    .map(|r| dynamodb_record(r, stream_arn))
                    .collect::<Result<Vec<_>, _>>()?;
                (records, page.next_shard_iterator)
            }
        };
        let Some(cursor) = self.shards.get_mut(shard_id) else {
            return Ok(0);
        };
        let records: Vec<StreamRecord> = records
            .into_iter()
            .filter(|r| cursor.recently_read.first_time(r.event_id()))
            .collect();
        let read = records.len();
        let filters = &self.settings.filters;
        let mut kept = Vec::with_capacity(read);
        for record in records {
            if filters.is_empty() || filters.iter().any(|f| f.matches(&filter_view(&record))) {
                kept.push(record);
            }
        }
        self.stats.records_read += read;
        self.stats.filtered_out += read - kept.len();
        if !kept.is_empty() && cursor.buffer.is_empty() {
            cursor.buffered_since = Some(Instant::now());
        }
        cursor.buffer.extend(kept);
        cursor.finished = next.is_none();
        cursor.iterator = next;
        Ok(read)
    }

    /// Delivers one batch of one shard; sends a message per discard. Returns the delivery
    /// and the number of failure messages sent.
    async fn deliver_batch(
        &self,
        shard_id: &str,
        batch: Vec<StreamRecord>,
    ) -> Result<(Delivered<StreamRecord>, usize), RunnerError> {
        let max_age = self.settings.max_record_age;
        let expired = |r: &StreamRecord| {
            max_age.is_some_and(|age| {
                let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
                Utc::now() - r.arrival > age
            })
        };
        let rules = self.settings.retry_rules();
        let delivered = deliver(batch, &rules, expired, |records| self.invoke(records)).await;
        let mut sent = 0;
        for discard in &delivered.discards {
            self.send_failure(shard_id, discard).await?;
            sent += usize::from(self.failure_destination.is_some());
        }
        Ok((delivered, sent))
    }

    async fn invoke(&self, records: Vec<StreamRecord>) -> Invocation {
        let sequence_numbers: Vec<&str> =
            records.iter().map(|r| r.sequence_number.as_str()).collect();
        let event = json!({ "Records": records.iter().map(|r| &r.json).collect::<Vec<_>>() });
        let event: F::Event = match serde_json::from_value(event) {
            Ok(e) => e,
            // The function's runtime could not read the event: Lambda reports that as a
            // function error too.
            Err(e) => {
                return Invocation::FunctionError {
                    error_type: "Runtime.UnmarshalError".into(),
                    message: e.to_string(),
                };
            }
        };
        let call = std::panic::AssertUnwindSafe(self.function.invoke(event)).catch_unwind();
        match call.await {
            Ok(Ok(response)) => match serde_json::to_value(&response) {
                Ok(value) => read_response(&value, &sequence_numbers),
                Err(e) => Invocation::FunctionError {
                    error_type: "Runtime.MarshalError".into(),
                    message: e.to_string(),
                },
            },
            Ok(Err(e)) => Invocation::FunctionError {
                error_type: e.error_type,
                message: e.message,
            },
            Err(panic) => Invocation::FunctionError {
                error_type: "Runtime.Panic".into(),
                message: panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "the handler panicked".into()),
            },
        }
    }

    async fn send_failure(
        &self,
        shard_id: &str,
        discard: &Discard<StreamRecord>,
    ) -> Result<(), RunnerError> {
        tracing::warn!(
            function = %self.settings.function,
            shard = shard_id,
            records = discard.records.len(),
            condition = discard.condition.as_str(),
            "discarding records"
        );
        let Some(destination) = &self.failure_destination else {
            return Ok(());
        };
        let body = failure_message(
            self.settings.source,
            &self.function_arn,
            self.source.arn(),
            shard_id,
            discard,
            Utc::now(),
        )
        .to_string();
        match destination {
            FailureDestination::Sqs { client, queue_url } => {
                client
                    .send_message()
                    .queue_url(queue_url)
                    .message_body(body)
                    .send()
                    .await
                    .map_err(aws_error("SendMessage"))?;
            }
            FailureDestination::Sns { client, topic_arn } => {
                client
                    .publish()
                    .topic_arn(topic_arn)
                    .message(body)
                    .send()
                    .await
                    .map_err(aws_error("Publish"))?;
            }
        }
        Ok(())
    }
}

/// Up to `batch_size` records, cut earlier where the invocation payload would pass 6 MB.
fn take_batch(buffer: &mut VecDeque<StreamRecord>, batch_size: usize) -> Vec<StreamRecord> {
    let mut batch = Vec::new();
    // `{"Records":[` + `]}` and the commas between records.
    let mut bytes = 14;
    while let Some(next) = buffer.front() {
        if batch.len() == batch_size
            || (!batch.is_empty() && bytes + next.size + 1 > MAX_INVOKE_PAYLOAD_BYTES)
        {
            break;
        }
        bytes += next.size + 1;
        if let Some(record) = buffer.pop_front() {
            batch.push(record);
        }
    }
    batch
}

/// The record as filter patterns see it: Kinesis `data` is matched as the JSON it holds.
fn filter_view(record: &StreamRecord) -> Value {
    let mut view = record.json.clone();
    if let Some(data) = view.pointer_mut("/kinesis/data") {
        let decoded = data
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        if let Some(json) = decoded {
            *data = json;
        }
    }
    view
}

fn rfc3339_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn smithy_time(t: Option<&aws_sdk_kinesis::primitives::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| t.to_millis().ok())
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(Utc::now)
}

/// A Kinesis record as Lambda's Kinesis event carries it.
fn kinesis_record(
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

/// The invocation record Lambda sends to an on-failure destination for discarded stream
/// records (`KinesisBatchInfo` or `DDBStreamBatchInfo`).
pub fn failure_message(
    source: SourceKind,
    function_arn: &str,
    stream_arn: &str,
    shard_id: &str,
    discard: &Discard<StreamRecord>,
    now: DateTime<Utc>,
) -> Value {
    let first = discard.records.first();
    let last = discard.records.last();
    let batch_info = json!({
        "shardId": shard_id,
        "startSequenceNumber": first.map(|r| r.sequence_number.as_str()),
        "endSequenceNumber": last.map(|r| r.sequence_number.as_str()),
        "approximateArrivalOfFirstRecord": first.map(|r| rfc3339_millis(r.arrival)),
        "approximateArrivalOfLastRecord": last.map(|r| rfc3339_millis(r.arrival)),
        "batchSize": discard.records.len(),
        "streamArn": stream_arn,
    });
    let mut response_context = json!({ "statusCode": 200, "executedVersion": "$LATEST" });
    if discard.function_error.is_some() {
        response_context["functionError"] = json!("Unhandled");
    }
    let info_key = match source {
        SourceKind::Kinesis => "KinesisBatchInfo",
        SourceKind::DynamoDb => "DDBStreamBatchInfo",
    };
    let mut message = json!({
        "requestContext": {
            "requestId": format!(
                "local-{shard_id}-{}",
                first.map_or("", |r| r.sequence_number.as_str())
            ),
            "functionArn": function_arn,
            "condition": discard.condition.as_str(),
            "approximateInvokeCount": discard.invoke_count,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": rfc3339_millis(now),
    });
    message[info_key] = batch_info;
    message
}

/// What [`drain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub passes: u32,
    pub delivered: usize,
}

/// Pumps `upstream` then `downstream` (whose stream the first function writes to), flushing
/// batching windows, until one pass over both reads nothing and buffers nothing: both
/// streams are quiet and every record written before the call is processed.
pub async fn drain<A: StreamFunction, B: StreamFunction>(
    upstream: &mut Mapping<A>,
    downstream: &mut Mapping<B>,
) -> Result<DrainReport, RunnerError> {
    let mut report = DrainReport::default();
    loop {
        report.passes += 1;
        let a = upstream.pump(true).await?;
        let b = downstream.pump(true).await?;
        report.delivered += a.delivered + b.delivered;
        if a.read == 0 && b.read == 0 && a.buffered == 0 && b.buffered == 0 {
            return Ok(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::path::Path;

    fn project_template() -> Template {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        Template::load(&path).expect("template.yaml parses")
    }

    #[test]
    fn reads_the_metrics_and_alerts_triggers_from_the_template() {
        let t = project_template();
        let metrics = TriggerSettings::from_template(&t, "MetricsFunction").unwrap();
        assert_eq!(metrics.source, SourceKind::Kinesis);
        assert_eq!(metrics.source_logical_id, "ListingEventsStream");
        assert_eq!(metrics.starting_position, StartingPosition::TrimHorizon);
        assert_eq!(metrics.batch_size, 1000);
        assert_eq!(metrics.batching_window, Duration::from_secs(1));
        assert!(metrics.report_batch_item_failures && metrics.bisect_on_error);
        assert_eq!(metrics.max_retry_attempts, Some(10));
        assert_eq!(metrics.max_record_age, Some(Duration::from_secs(3600)));
        assert_eq!(
            metrics.on_failure,
            Some(OnFailure {
                kind: "SQS".into(),
                logical_id: "MetricsFailureQueue".into()
            })
        );
        assert!(metrics.filters.is_empty());

        let alerts = TriggerSettings::from_template(&t, "AlertsFunction").unwrap();
        assert_eq!(alerts.source, SourceKind::DynamoDb);
        assert_eq!(alerts.source_logical_id, "ListingTable");
        assert_eq!(alerts.batch_size, 100);
        assert_eq!(alerts.batching_window, Duration::ZERO);
        // Every MODIFY, and an INSERT only when its item holds several events (a listing
        // first seen and changed within one metrics batch: each event is judged).
        let passes = |record: serde_json::Value| alerts.filters.iter().any(|f| f.matches(&record));
        assert_eq!(alerts.filters.len(), 2);
        assert!(passes(json!({"eventName": "MODIFY", "dynamodb": {}})));
        assert!(!passes(json!({"eventName": "INSERT"})));
        assert!(!passes(
            json!({"eventName": "INSERT", "dynamodb": {"NewImage": {}}})
        ));
        assert!(passes(
            json!({"eventName": "INSERT", "dynamodb": {"NewImage": {
                "several_recent_events": {"BOOL": true}
            }}})
        ));
        assert_eq!(
            alerts.on_failure.map(|o| o.logical_id).as_deref(),
            Some("AlertsFailureQueue")
        );
        assert!(TriggerSettings::from_template(&t, "PollerFunction").is_err());
    }

    const SMALL: &str = r#"
Parameters:
  Size: { Type: Number, Default: 7 }
Resources:
  S: { Type: AWS::Kinesis::Stream }
  F:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        E:
          Type: Kinesis
          Properties:
            Stream: !GetAtt S.Arn
            StartingPosition: LATEST
            BatchSize: !Ref Size
"#;

    #[test]
    fn applies_lambda_defaults_and_parameter_defaults() {
        let t = Template::parse(SMALL).unwrap();
        let s = TriggerSettings::from_template(&t, "F").unwrap();
        assert_eq!(s.batch_size, 7);
        assert_eq!(s.starting_position, StartingPosition::Latest);
        assert_eq!(s.batching_window, Duration::ZERO);
        assert!(!s.report_batch_item_failures && !s.bisect_on_error);
        assert_eq!((s.max_retry_attempts, s.max_record_age), (None, None));
        assert_eq!(s.on_failure, None);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for (from, to) in [
            ("StartingPosition: LATEST", "StartingPosition: AT_TIMESTAMP"),
            ("BatchSize: !Ref Size", "BatchSize: 0"),
            ("BatchSize: !Ref Size", "MaximumRecordAgeInSeconds: 30"),
            (
                "BatchSize: !Ref Size",
                "FilterCriteria: { Filters: [ { Pattern: '{\"eventName\": [{\"prefix\": \"M\"}]}' } ] }",
            ),
        ] {
            let t = Template::parse(&SMALL.replace(from, to)).unwrap();
            assert!(
                TriggerSettings::from_template(&t, "F").is_err(),
                "{to} was accepted"
            );
        }
    }

    #[test]
    fn filter_patterns_match_nested_values_and_lists() {
        let p = FilterPattern::parse(
            r#"{"eventName": ["MODIFY", "INSERT"], "dynamodb": {"Keys": {"id": {"S": ["a"]}}}}"#,
        )
        .unwrap();
        let record = |name: &str, id: &str| json!({"eventName": name, "dynamodb": {"Keys": {"id": {"S": id}}}});
        assert!(p.matches(&record("MODIFY", "a")));
        assert!(p.matches(&record("INSERT", "a")));
        assert!(!p.matches(&record("REMOVE", "a")));
        assert!(!p.matches(&record("MODIFY", "b")));
        assert!(!p.matches(&json!({"eventName": "MODIFY"})));
    }

    #[test]
    fn reads_batch_item_failures_as_lambda_does() {
        let seqs = ["10", "20", "30", "40"];
        let failures = |ids: Value| json!({ "batchItemFailures": ids });
        assert_eq!(read_response(&json!({}), &seqs), Invocation::Success);
        assert_eq!(read_response(&Value::Null, &seqs), Invocation::Success);
        assert_eq!(
            read_response(&failures(json!([])), &seqs),
            Invocation::Success
        );
        assert_eq!(
            read_response(
                &failures(json!([{"itemIdentifier": "40"}, {"itemIdentifier": "20"}])),
                &seqs
            ),
            Invocation::FailedFrom(1)
        );
        for bad in [json!(""), Value::Null, json!("99")] {
            assert_eq!(
                read_response(&failures(json!([{ "itemIdentifier": bad }])), &seqs),
                Invocation::FailedFrom(0)
            );
        }
    }

    fn rules(max: Option<u32>, bisect: bool) -> RetryRules {
        RetryRules {
            report_batch_item_failures: true,
            bisect_on_error: bisect,
            max_retry_attempts: max,
            backoff: Duration::ZERO,
        }
    }

    /// Runs `deliver` over records 0..n with a function that fails as `fail` says, and
    /// returns the delivery and every invocation's records.
    async fn run(
        n: u32,
        rules: RetryRules,
        fail: impl Fn(&[u32], usize) -> Invocation,
    ) -> (Delivered<u32>, Vec<Vec<u32>>) {
        let calls: RefCell<Vec<Vec<u32>>> = RefCell::new(Vec::new());
        let delivered = deliver(
            (0..n).collect(),
            &rules,
            |_| false,
            |records: Vec<u32>| {
                let call = calls.borrow().len();
                calls.borrow_mut().push(records.clone());
                let result = fail(&records, call);
                async move { result }
            },
        )
        .await;
        (delivered, calls.into_inner())
    }

    fn error() -> Invocation {
        Invocation::FunctionError {
            error_type: "Boom".into(),
            message: "boom".into(),
        }
    }

    #[tokio::test]
    async fn redelivers_from_the_first_failed_record() {
        // Record 5 fails twice, then succeeds.
        let (d, calls) = run(8, rules(Some(10), true), |records, call| {
            match records.iter().position(|r| *r == 5) {
                Some(i) if call < 2 => Invocation::FailedFrom(i),
                _ => Invocation::Success,
            }
        })
        .await;
        assert_eq!(
            calls,
            vec![(0..8).collect::<Vec<_>>(), vec![5, 6, 7], vec![5, 6, 7]]
        );
        assert_eq!((d.succeeded, d.retries, d.invocations), (8, 2, 3));
        assert!(d.discards.is_empty());
    }

    #[tokio::test]
    async fn bisects_on_function_errors_down_to_the_poison_record_and_discards_it() {
        // Any part containing record 5 fails; retries are 2.
        let (d, calls) = run(8, rules(Some(2), true), |records, _| {
            if records.contains(&5) {
                error()
            } else {
                Invocation::Success
            }
        })
        .await;
        assert_eq!(
            calls,
            vec![
                (0..8).collect::<Vec<_>>(),
                vec![0, 1, 2, 3],
                vec![4, 5, 6, 7],
                vec![4, 5],
                vec![4],
                vec![5],
                vec![5],
                vec![5],
                vec![6, 7],
            ]
        );
        assert_eq!(d.bisections, 3);
        assert_eq!(d.succeeded, 7);
        assert_eq!(
            d.discards,
            vec![Discard {
                records: vec![5],
                condition: DiscardCondition::RetryAttemptsExhausted,
                invoke_count: 6,
                function_error: Some("Boom".into()),
            }]
        );
    }

    #[tokio::test]
    async fn without_bisection_the_whole_batch_is_retried_then_discarded() {
        let (d, calls) = run(4, rules(Some(3), false), |_, _| error()).await;
        assert_eq!(calls.len(), 4, "the first invocation and three retries");
        assert_eq!(d.succeeded, 0);
        assert_eq!(d.discards.len(), 1);
        assert_eq!(d.discards[0].records, vec![0, 1, 2, 3]);
        assert_eq!(d.discards[0].invoke_count, 4);
    }

    #[tokio::test]
    async fn partial_failures_use_up_retries_and_are_not_bisected() {
        let (d, calls) = run(6, rules(Some(1), true), |records, _| {
            Invocation::FailedFrom(records.iter().position(|r| *r == 3).unwrap_or(0))
        })
        .await;
        assert_eq!(calls, vec![(0..6).collect::<Vec<_>>(), vec![3, 4, 5]]);
        assert_eq!(d.succeeded, 3);
        assert_eq!(d.discards.len(), 1);
        assert_eq!(d.discards[0].records, vec![3, 4, 5]);
        assert_eq!(d.discards[0].function_error, None);
    }

    #[tokio::test]
    async fn ignores_the_response_without_report_batch_item_failures() {
        let mut r = rules(Some(1), false);
        r.report_batch_item_failures = false;
        let (d, calls) = run(3, r, |_, _| Invocation::FailedFrom(0)).await;
        assert_eq!((calls.len(), d.succeeded), (1, 3));
    }

    #[tokio::test]
    async fn discards_records_past_their_age_before_invoking() {
        let calls = RefCell::new(Vec::new());
        let d = deliver(
            (0..5).collect::<Vec<u32>>(),
            &rules(None, true),
            |r| *r < 2,
            |records| {
                calls.borrow_mut().push(records);
                async { Invocation::Success }
            },
        )
        .await;
        assert_eq!(calls.into_inner(), vec![vec![2, 3, 4]]);
        assert_eq!(d.discards.len(), 1);
        assert_eq!(d.discards[0].records, vec![0, 1]);
        assert_eq!(d.discards[0].condition, DiscardCondition::RecordAgeExceeded);
        assert_eq!(d.discards[0].invoke_count, 0);
    }

    fn record(seq: u32, size: usize) -> StreamRecord {
        StreamRecord {
            sequence_number: seq.to_string(),
            arrival: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            json: json!({"seq": seq}),
            size,
        }
    }

    #[test]
    fn batches_stop_at_the_batch_size_and_the_payload_limit() {
        let mut buffer: VecDeque<StreamRecord> = (0..10).map(|i| record(i, 100)).collect();
        assert_eq!(take_batch(&mut buffer, 4).len(), 4);
        assert_eq!(buffer.len(), 6);
        let mut big: VecDeque<StreamRecord> = (0..5)
            .map(|i| record(i, MAX_INVOKE_PAYLOAD_BYTES / 3))
            .collect();
        assert_eq!(take_batch(&mut big, 100).len(), 2);
        // One record over the limit still goes alone (Lambda would fail it; the handler sees it).
        let mut huge: VecDeque<StreamRecord> = [record(0, MAX_INVOKE_PAYLOAD_BYTES * 2)]
            .into_iter()
            .collect();
        assert_eq!(take_batch(&mut huge, 100).len(), 1);
    }

    #[test]
    fn failure_messages_have_lambdas_shape() {
        let discard = Discard {
            records: vec![record(7, 10), record(9, 10)],
            condition: DiscardCondition::RetryAttemptsExhausted,
            invoke_count: 11,
            function_error: Some("Boom".into()),
        };
        let now = DateTime::from_timestamp(1_700_000_100, 0).unwrap();
        let m = failure_message(
            SourceKind::DynamoDb,
            "arn:fn",
            "arn:stream",
            "shardId-1",
            &discard,
            now,
        );
        assert_eq!(m["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(m["requestContext"]["approximateInvokeCount"], 11);
        assert_eq!(m["responseContext"]["functionError"], "Unhandled");
        assert_eq!(m["DDBStreamBatchInfo"]["startSequenceNumber"], "7");
        assert_eq!(m["DDBStreamBatchInfo"]["endSequenceNumber"], "9");
        assert_eq!(m["DDBStreamBatchInfo"]["batchSize"], 2);
        assert_eq!(
            m["DDBStreamBatchInfo"]["approximateArrivalOfFirstRecord"],
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(m["timestamp"], "2023-11-14T22:15:00.000Z");
        assert!(m.get("KinesisBatchInfo").is_none());
    }

    #[test]
    fn built_records_parse_as_lambda_events() {
        let kinesis = aws_sdk_kinesis::types::Record::builder()
            .sequence_number("4959")
            .partition_key("zillow:1")
            .data(aws_sdk_kinesis::primitives::Blob::new(
                b"{\"a\":1}".to_vec(),
            ))
            .approximate_arrival_timestamp(aws_sdk_kinesis::primitives::DateTime::from_secs(
                1_700_000_000,
            ))
            .build()
            .unwrap();
        let r = kinesis_record(
            &kinesis,
            "shardId-000000000001",
            "arn:k",
            "us-east-1",
            "123",
        );
        let event: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_value(json!({ "Records": [r.json] })).unwrap();
        let parsed = &event.records[0];
        assert_eq!(parsed.kinesis.data.0, b"{\"a\":1}");
        assert_eq!(
            parsed.event_id.as_deref(),
            Some("shardId-000000000001:4959")
        );
        assert_eq!(parsed.kinesis.sequence_number, "4959");

        use aws_sdk_dynamodbstreams::types::{AttributeValue as A, OperationType, StreamRecord};
        let ddb = aws_sdk_dynamodbstreams::types::Record::builder()
            .event_id("e1")
            .event_name(OperationType::Modify)
            .event_source("aws:dynamodb")
            .event_version("1.1")
            .aws_region("us-east-1")
            .dynamodb(
                StreamRecord::builder()
                    .sequence_number("100")
                    .keys("id", A::S("x".into()))
                    .new_image("n", A::N("2".into()))
                    .old_image("n", A::N("1".into()))
                    .new_image("l", A::L(vec![A::Bool(true), A::Null(true)]))
                    .build(),
            )
            .build();
        let r = dynamodb_record(&ddb, "arn:ddb").unwrap();
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(json!({ "Records": [r.json] })).unwrap();
        let parsed = &event.records[0];
        assert_eq!(parsed.event_name, "MODIFY");
        assert_eq!(parsed.change.sequence_number.as_deref(), Some("100"));
        assert_eq!(parsed.event_source_arn.as_deref(), Some("arn:ddb"));
        assert_eq!(parsed.change.new_image.len(), 2);
    }

    /// A DynamoDB stream as moto serves one after two concurrent writes took the same
    /// sequence number: records 1, 2 and 3 carry 1, 2, 2, and the iterator after a page
    /// ending on record 3 ("after sequence number 2") starts on record 3 again, forever.
    fn moto_stream_with_a_shared_sequence_number() -> SdkConfig {
        const STREAM: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/1";
        let record = |id: &str, seq: &str| {
            json!({
                "eventID": id,
                "eventName": "MODIFY",
                "eventSource": "aws:dynamodb",
                "eventVersion": "1.1",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "Keys": { "listing_id": { "S": id } },
                    "NewImage": { "listing_id": { "S": id } },
                    "SequenceNumber": seq,
                    "SizeBytes": 10,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                    "ApproximateCreationDateTime": Utc::now().timestamp()
                }
            })
        };
        let http = aws_smithy_http_client::test_util::infallible_client_fn(move |request| {
            let operation = request
                .headers()
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .and_then(|t| t.rsplit('.').next())
                .unwrap_or_default()
                .to_owned();
            let input: Value = request
                .body()
                .bytes()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            let body = match operation.as_str() {
                "DescribeTable" => {
                    json!({ "Table": { "TableName": "t", "LatestStreamArn": STREAM } })
                }
                "DescribeStream" => json!({
                    "StreamDescription": { "StreamArn": STREAM, "Shards": [{ "ShardId": "shard-1" }] }
                }),
                "GetShardIterator" => json!({ "ShardIterator": "from-1" }),
                "GetRecords" => match input["ShardIterator"].as_str() {
                    Some("from-1") => json!({
                        "Records": [record("r1", "1"), record("r2", "2"), record("r3", "2")],
                        "NextShardIterator": "from-3"
                    }),
                    _ => json!({ "Records": [record("r3", "2")], "NextShardIterator": "from-3" }),
                },
                other => json!({ "message": format!("unexpected {other}") }),
            };
            http::Response::builder()
                .status(200)
                .header("content-type", "application/x-amz-json-1.0")
                .body(body.to_string())
                .expect("a response")
        });
        SdkConfig::builder()
            .http_client(http)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::for_tests(),
            ))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build()
    }

    /// Notes the eventIDs it is given.
    struct EventIds(RefCell<Vec<String>>);

    impl StreamFunction for EventIds {
        type Event = aws_lambda_events::event::dynamodb::Event;
        type Response = Value;

        async fn invoke(&self, event: Self::Event) -> Result<Value, FunctionError> {
            self.0
                .borrow_mut()
                .extend(event.records.into_iter().map(|r| r.event_id));
            Ok(Value::Null)
        }
    }

    #[tokio::test]
    async fn a_record_the_stream_hands_out_again_is_delivered_once_and_the_stream_goes_quiet() {
        let resource = |logical_id: &str, kind: &str, physical_id: &str| {
            crate::provision::ProvisionedResource {
                logical_id: logical_id.into(),
                kind: kind.into(),
                physical_id: physical_id.into(),
            }
        };
        let stack = ProvisionedStack {
            stack_name: "s".into(),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            outputs: BTreeMap::new(),
            resources: vec![
                resource("ListingTable", "AWS::DynamoDB::Table", "t"),
                resource("AlertsFailureQueue", "AWS::SQS::Queue", "q"),
            ],
            skipped: Vec::new(),
        };
        let mut alerts = Mapping::new(
            &moto_stream_with_a_shared_sequence_number(),
            &project_template(),
            &stack,
            "AlertsFunction",
            EventIds(RefCell::default()),
        )
        .await
        .expect("the mapping");
        let mut passes = 0;
        loop {
            passes += 1;
            assert!(
                passes <= 5,
                "still reading after 5 passes: {:?}",
                alerts.stats
            );
            let pass = alerts.pump(true).await.expect("a pass");
            if pass.read == 0 && pass.buffered == 0 {
                break;
            }
        }
        assert_eq!(*alerts.function().0.borrow(), ["r1", "r2", "r3"]);
        assert_eq!(alerts.stats.records_read, 3);
    }
}
