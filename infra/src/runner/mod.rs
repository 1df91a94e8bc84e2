//! Local event source mappings: what Lambda does for a stream trigger, done in-process.
//!
//! There is no Lambda service locally, so this module reads a function's stream trigger
//! (`Events` of type `Kinesis` or `DynamoDB` in template.yaml: [`settings`]), polls the
//! stream through the AWS API (Kinesis `GetShardIterator`/`GetRecords`, DynamoDB Streams:
//! `shards`), builds events in the exact shape Lambda hands a function ([`records`]), and
//! invokes a handler given in as a [`StreamFunction`] ([`mapping`]). It honours the
//! trigger's settings as Lambda documents them:
//!
//! - `BatchSize`, `MaximumBatchingWindowInSeconds` (and Lambda's 6 MB payload limit);
//! - `FunctionResponseTypes: [ReportBatchItemFailures]`: the batch is re-delivered from the
//!   failed record with the lowest sequence number; an empty, null or unknown identifier
//!   fails the whole batch ([`delivery`]);
//! - `BisectBatchOnFunctionError`: a batch whose invocation fails is split in two, and each
//!   half is retried (splitting does not use up retries);
//! - `MaximumRetryAttempts`, `MaximumRecordAgeInSeconds`: then the records are discarded and
//!   the batch's description goes to `DestinationConfig.OnFailure` (SQS or SNS), in Lambda's
//!   invocation-record format ([`failure`]);
//! - `FilterCriteria`: records that match no pattern are dropped before batching ([`filter`]);
//! - `StartingPosition` `TRIM_HORIZON` or `LATEST`; one batch at a time per shard, shards in
//!   parallel; a child shard after its parent is finished.
//!
//! [`Mapping::poll_shards`] runs a mapping as Lambda's pollers do, each shard reading and
//! delivering on its own; [`Mapping::pump`] is one read-and-deliver step of every shard, for
//! callers that step the pipeline themselves (tests, [`drain`]).
//!
//! What differs from Lambda (docs/demo.md): the batching window can be cut short by
//! [`Mapping::pump`] with `flush` (a caller that knows the producer is done for now), retries
//! back off for milliseconds, not seconds, and there is no per-function concurrency limit.
//!
//! A queue trigger (`Events` of type `SQS`: the importer's) has its own mapping,
//! [`queue::QueueMapping`]: receive, invoke, delete what succeeded.

pub mod delivery;
pub mod failure;
pub mod filter;
pub mod function;
pub mod mapping;
pub mod queue;
pub mod records;
pub mod settings;
mod shards;

#[cfg(test)]
mod tests;

pub use crate::invocation::{FunctionError, MAX_INVOKE_PAYLOAD_BYTES};
pub use delivery::{
    Delivered, Discard, DiscardCondition, InvokeOutcome, RetryRules, deliver, read_response,
};
pub use failure::failure_message;
pub use filter::FilterPattern;
pub use function::StreamFunction;
pub use mapping::{DrainReport, Mapping, MappingStats, PumpReport, drain};
pub use queue::{QueueMapping, QueueSettings, QueueStats};
pub use records::{StreamRecord, dynamodb_record};
pub use settings::{OnFailure, StartingPosition, TriggerKind, TriggerSettings};

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

/// The physical id of `logical_id` in `stack`, for `function`'s trigger.
fn provisioned(
    stack: &crate::provision::ProvisionedStack,
    function: &str,
    logical_id: &str,
) -> Result<String, RunnerError> {
    stack
        .resources
        .iter()
        .find(|r| r.logical_id == logical_id)
        .map(|r| r.physical_id.clone())
        .ok_or_else(|| RunnerError::Settings {
            function: function.to_owned(),
            reason: format!("{logical_id} is not provisioned in {}", stack.stack_name),
        })
}

fn aws_error<E: std::error::Error>(operation: &'static str) -> impl FnOnce(E) -> RunnerError {
    move |e| RunnerError::Aws {
        operation,
        message: realty_aws::sdk::error_chain(&e),
    }
}
