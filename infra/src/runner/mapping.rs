//! One event source mapping at work: reads its stream's shards, buffers and filters the
//! records, and delivers batches when they are due.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use chrono::Utc;
use serde::Serialize;

use super::delivery::{Delivered, Discard, deliver};
use super::failure::{FailureDestination, failure_message};
use super::filter;
use super::function::{self, StreamFunction};
use super::records::StreamRecord;
use super::settings::TriggerSettings;
use super::shards::{ShardCursor, SourceStream};
use super::{MAX_INVOKE_PAYLOAD_BYTES, RunnerError};
use crate::provision::{ProvisionedStack, physical_name};
use crate::template::Template;

/// A stream's shards are listed again at most this often while none of them ends, as
/// Lambda's pollers do not list them before every read: a shard that ends (a resharding, a
/// table stream's shard rolling over) has them listed again at once, for its children.
const SHARD_DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

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
    /// Time spent delivering batches (invocations and their retries), in milliseconds.
    pub delivery_ms: u64,
}

/// What one pass over a mapping's shards did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PumpReport {
    pub read: usize,
    pub delivered: usize,
    /// Records still waiting for their batching window.
    pub buffered: usize,
    /// When the first of those windows ends (none when nothing waits).
    pub due_in: Option<Duration>,
}

/// One event source mapping: a stream, a function and the trigger's settings.
pub struct Mapping<F> {
    pub settings: TriggerSettings,
    pub function_arn: String,
    source: SourceStream,
    region: String,
    account_id: String,
    failure_destination: Option<FailureDestination>,
    function: F,
    shards: BTreeMap<String, ShardCursor>,
    /// When the shards were last listed, and how many of them had ended then.
    discovered: Option<(Instant, usize)>,
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
        let physical =
            |logical_id: &str| super::provisioned(stack, function_logical_id, logical_id);
        let resource_name = physical(&settings.source_logical_id)?;
        let source =
            SourceStream::connect(sdk, settings.kind, resource_name, function_logical_id).await?;
        let failure_destination = match &settings.on_failure {
            None => None,
            Some(on_failure) => Some(FailureDestination::new(
                sdk,
                &on_failure.kind,
                physical(&on_failure.logical_id)?,
            )),
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
            discovered: None,
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
            let (delivered, messages, took) = result?;
            self.stats.delivery_ms += u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
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
        report.due_in = self
            .shards
            .values()
            .filter(|c| !c.buffer.is_empty())
            .filter_map(|c| c.buffered_since)
            .map(|since| window.saturating_sub(since.elapsed()))
            .min();
        Ok(report)
    }

    async fn discover_shards(&mut self) -> Result<(), RunnerError> {
        let ended = self.shards.values().filter(|c| c.finished).count();
        let due = self.shards.is_empty()
            || self.discovered.is_none_or(|(at, ended_then)| {
                ended != ended_then || at.elapsed() >= SHARD_DISCOVERY_INTERVAL
            });
        if !due {
            return Ok(());
        }
        self.discovered = Some((Instant::now(), ended));
        for (id, parent) in self.source.list_shards().await? {
            if self.shards.contains_key(&id) {
                continue;
            }
            let iterator = self
                .source
                .shard_iterator(&id, self.settings.starting_position)
                .await?;
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

    /// Reads what the shard has now (one GetRecords call), filters it and buffers it.
    async fn read_shard(&mut self, shard_id: &str) -> Result<usize, RunnerError> {
        let Some(iterator) = self.shards.get(shard_id).and_then(|c| c.iterator.clone()) else {
            if let Some(c) = self.shards.get_mut(shard_id) {
                c.finished = true;
            }
            return Ok(0);
        };
        let (records, next) = self
            .source
            .get_records(shard_id, iterator, &self.region, &self.account_id)
            .await?;
        let Some(cursor) = self.shards.get_mut(shard_id) else {
            return Ok(0);
        };
        let records: Vec<StreamRecord> = records
            .into_iter()
            .filter(|r| cursor.recently_read.first_time(r.event_id()))
            .collect();
        let read = records.len();
        let kept: Vec<StreamRecord> = records
            .into_iter()
            .filter(|r| filter::passes(&self.settings.filters, r))
            .collect();
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

    /// Delivers one batch of one shard; sends a message per discard. Returns the delivery,
    /// the number of failure messages sent and how long the delivery took.
    async fn deliver_batch(
        &self,
        shard_id: &str,
        batch: Vec<StreamRecord>,
    ) -> Result<(Delivered<StreamRecord>, usize, Duration), RunnerError> {
        let started = Instant::now();
        let max_age = self.settings.max_record_age;
        let expired = |r: &StreamRecord| {
            max_age.is_some_and(|age| {
                let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
                Utc::now() - r.arrival > age
            })
        };
        let rules = self.settings.retry_rules();
        let delivered = deliver(batch, &rules, expired, |records| {
            function::invoke(&self.function, records)
        })
        .await;
        let took = started.elapsed();
        let mut sent = 0;
        for discard in &delivered.discards {
            self.send_failure(shard_id, discard).await?;
            sent += usize::from(self.failure_destination.is_some());
        }
        Ok((delivered, sent, took))
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
            self.settings.kind,
            &self.function_arn,
            self.source.arn(),
            shard_id,
            discard,
            Utc::now(),
        );
        destination.send(body.to_string()).await
    }
}

/// Up to `batch_size` records, cut earlier where the invocation payload would pass 6 MB.
pub(super) fn take_batch(
    buffer: &mut VecDeque<StreamRecord>,
    batch_size: usize,
) -> Vec<StreamRecord> {
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
