//! Delivery of one batch as Lambda does it: retries, bisection, discards. Pure (the
//! invocation is given in), so it is tested without AWS.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use realty_model::backoff::full_jitter;
use serde::Serialize;
use serde_json::Value;

use super::FunctionError;

/// Longest pause before a retry.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How a batch is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryRules {
    pub report_batch_item_failures: bool,
    pub bisect_on_error: bool,
    pub max_retry_attempts: Option<u32>,
    /// The first retry's longest pause; it doubles with each retry up to a second, and the
    /// pause is drawn below it (full jitter).
    pub backoff: Duration,
}

/// What one invocation returned, as Lambda reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeOutcome {
    /// Success: no `batchItemFailures` (or the trigger does not read them).
    Success,
    /// `batchItemFailures`: the batch failed from this index on (0 for an empty, null or
    /// unknown identifier, which fails the whole batch).
    FailedFrom(usize),
    /// The invocation failed (an error or a panic).
    Failed(FunctionError),
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
    Fut: Future<Output = InvokeOutcome>,
{
    let mut out = Delivered {
        invocations: 0,
        retries: 0,
        bisections: 0,
        succeeded: 0,
        discards: Vec::new(),
    };
    let mut queue: VecDeque<Part<R>> = VecDeque::from([Part::whole(batch)]);
    while let Some(mut part) = queue.pop_front() {
        if let Some(discard) = part.take_expired(&expired) {
            out.discards.push(discard);
        }
        if part.records.is_empty() {
            continue;
        }
        if part.failed_invocations > 0 {
            out.retries += 1;
            let pause = full_jitter(rules.backoff, MAX_BACKOFF, part.failed_invocations - 1);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
        out.invocations += 1;
        part.invoke_count += 1;
        let result = invoke(part.records.clone()).await;
        settle(part, result, rules, &mut queue, &mut out);
    }
    out
}

impl<R> Part<R> {
    fn whole(records: Vec<R>) -> Self {
        Self {
            records,
            failed_invocations: 0,
            invoke_count: 0,
            last_error: None,
        }
    }

    /// Removes the records past the maximum age: a prefix, records being in arrival order.
    fn take_expired(&mut self, expired: impl Fn(&R) -> bool) -> Option<Discard<R>> {
        let old = self.records.iter().take_while(|r| expired(r)).count();
        (old > 0).then(|| Discard {
            records: self.records.drain(..old).collect(),
            condition: DiscardCondition::RecordAgeExceeded,
            invoke_count: self.invoke_count,
            function_error: self.last_error.clone(),
        })
    }
}

/// Counts what one invocation of `part` delivered, and queues (or discards) what it did not.
fn settle<R>(
    mut part: Part<R>,
    result: InvokeOutcome,
    rules: &RetryRules,
    queue: &mut VecDeque<Part<R>>,
    out: &mut Delivered<R>,
) {
    let exhausted = rules
        .max_retry_attempts
        .is_some_and(|max| part.failed_invocations >= max);
    match result {
        InvokeOutcome::Success => out.succeeded += part.records.len(),
        // Without ReportBatchItemFailures Lambda ignores the response body.
        InvokeOutcome::FailedFrom(_) if !rules.report_batch_item_failures => {
            out.succeeded += part.records.len();
        }
        InvokeOutcome::FailedFrom(from) => {
            let from = from.min(part.records.len());
            out.succeeded += from;
            let rest = part.records.split_off(from);
            if !rest.is_empty() {
                let rest = Part {
                    records: rest,
                    last_error: None,
                    ..part
                };
                retry_or_discard(rest, exhausted, queue, out);
            }
        }
        InvokeOutcome::Failed(FunctionError { error_type, .. }) => {
            if rules.bisect_on_error && part.records.len() > 1 {
                bisect(part, error_type, queue, out);
            } else {
                let failed = Part {
                    last_error: Some(error_type),
                    ..part
                };
                retry_or_discard(failed, exhausted, queue, out);
            }
        }
    }
}

/// A failed part: tried again next, or discarded once its retry attempts are used up.
fn retry_or_discard<R>(
    part: Part<R>,
    exhausted: bool,
    queue: &mut VecDeque<Part<R>>,
    out: &mut Delivered<R>,
) {
    if exhausted {
        out.discards.push(Discard {
            records: part.records,
            condition: DiscardCondition::RetryAttemptsExhausted,
            invoke_count: part.invoke_count,
            function_error: part.last_error,
        });
    } else {
        queue.push_front(Part {
            failed_invocations: part.failed_invocations + 1,
            ..part
        });
    }
}

/// A failed part split in two halves, each tried next (the first half first). Splitting does
/// not use up the retry quota.
fn bisect<R>(
    part: Part<R>,
    error_type: String,
    queue: &mut VecDeque<Part<R>>,
    out: &mut Delivered<R>,
) {
    out.bisections += 1;
    let mut first = part.records;
    let second = first.split_off(first.len() / 2);
    for records in [second, first] {
        queue.push_front(Part {
            records,
            failed_invocations: part.failed_invocations,
            invoke_count: part.invoke_count,
            last_error: Some(error_type.clone()),
        });
    }
}

/// Reads a function's response as Lambda does: the lowest index among `batchItemFailures`,
/// the whole batch for an identifier that is empty, null or not in the batch.
pub fn read_response(response: &Value, sequence_numbers: &[&str]) -> InvokeOutcome {
    let Some(failures) = response.get("batchItemFailures").and_then(Value::as_array) else {
        return InvokeOutcome::Success;
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
    first.map_or(InvokeOutcome::Success, InvokeOutcome::FailedFrom)
}
