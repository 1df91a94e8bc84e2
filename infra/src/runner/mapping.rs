//! One event source mapping at work: reads its stream's shards, buffers and filters the
//! records, and delivers batches when they are due.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

// tokio's clock, which tests can pause: the windows and waits below are timed on it.
use tokio::time::Instant;

use aws_config::SdkConfig;
use chrono::Utc;
use serde::Serialize;

use super::delivery::{Delivered, Discard, deliver};
use super::failure::{FailureDestination, failure_message};
use super::filter;
use super::function::{self, StreamFunction};
use super::records::StreamRecord;
use super::settings::{StartingPosition, TriggerSettings};
use super::shards::{Page, ReadFrom, ShardCursor, SourceStream};
use super::{MAX_INVOKE_PAYLOAD_BYTES, RunnerError};
use crate::provision::{ProvisionedStack, physical_name};
use crate::template::Template;

/// A stream's shards are listed again at most this often while none of them ends, as
/// Lambda's pollers do not list them before every read: a shard that ends (a resharding, a
/// table stream's shard rolling over) has them listed again at once, for its children.
const SHARD_DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

/// How far apart a shard with nothing to deliver starts its reads in
/// [`Mapping::poll_shards`]: as often as Lambda polls a table stream's shards (four times a
/// second).
const IDLE_POLL: Duration = Duration::from_millis(250);

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
}

/// What one shard's step did ([`Mapping::pump`], [`Mapping::poll_shards`]).
#[derive(Default)]
struct ShardStep {
    read: usize,
    filtered_out: usize,
    /// The batch delivered: how, the failure messages sent, and how long it took.
    batch: Option<(Delivered<StreamRecord>, usize, Duration)>,
}

impl ShardStep {
    /// Records the step handed over for good: delivered, or discarded.
    fn delivered(&self) -> usize {
        self.batch.as_ref().map_or(0, |(delivered, _, _)| {
            delivered.succeeded + discarded(delivered)
        })
    }

    fn count_in(&self, stats: &mut MappingStats) {
        stats.records_read += self.read;
        stats.filtered_out += self.filtered_out;
        let Some((delivered, messages, took)) = &self.batch else {
            return;
        };
        stats.delivery_ms += u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        stats.invocations += delivered.invocations;
        stats.retries += delivered.retries;
        stats.bisections += delivered.bisections;
        stats.records_succeeded += delivered.succeeded;
        stats.records_discarded += discarded(delivered);
        stats.failure_messages += messages;
    }
}

fn discarded(delivered: &Delivered<StreamRecord>) -> usize {
    delivered.discards.iter().map(|d| d.records.len()).sum()
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

    /// One pass: each shard that may be read (children after their parents) reads what it
    /// has (one GetRecords call) and delivers its batch if it is due (full, past its batching
    /// window, or any when `flush`). Shards do this in parallel, one batch at a time each.
    pub async fn pump(&mut self, flush: bool) -> Result<PumpReport, RunnerError> {
        self.discover_shards().await?;
        let mut cursors = self.take_active_cursors();
        let this = &*self;
        let steps = futures::future::join_all(
            cursors
                .iter_mut()
                .map(|(id, cursor)| this.step(id, cursor, flush)),
        )
        .await;
        self.shards.extend(cursors);
        let mut report = PumpReport::default();
        for step in steps {
            let step = step?;
            report.read += step.read;
            report.delivered += step.delivered();
            step.count_in(&mut self.stats);
        }
        report.buffered = self.shards.values().map(|c| c.buffer.len()).sum();
        Ok(report)
    }

    /// Polls each shard on its own, as Lambda's pollers do, until `stop` holds (it is asked
    /// between a shard's steps, with the mapping's counters): a shard reads and delivers its
    /// batches while the others do the same, so a batch in flight holds up only its own
    /// shard's next read. While a batching window runs, a shard reads again when it ends
    /// (the records that came meanwhile join the batch); with nothing to deliver it starts
    /// its reads 250 ms apart, Lambda's rate for a table stream. The stream is listed again when a shard ends, and every
    /// 10 s beside the reads.
    pub async fn poll_shards(
        &mut self,
        stop: impl Fn(&MappingStats) -> bool,
    ) -> Result<(), RunnerError> {
        while !stop(&self.stats) {
            self.discover_shards().await?;
            let known: Vec<String> = self.shards.keys().cloned().collect();
            let mut cursors = self.take_active_cursors();
            if cursors.is_empty() {
                // Every shard is read to its end, and no child is listed yet.
                self.shards.extend(cursors);
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            let stats = RefCell::new(std::mem::take(&mut self.stats));
            // A shard ended or new ones appeared: every shard's loop returns, to list them.
            let relist = Cell::new(false);
            let this = &*self;
            let loops = futures::future::try_join_all(
                cursors
                    .iter_mut()
                    .map(|(id, cursor)| this.poll_shard(id, cursor, &stats, &relist, &stop)),
            );
            let watch = async {
                loop {
                    tokio::time::sleep(SHARD_DISCOVERY_INTERVAL).await;
                    let listed = this.source.list_shards().await?;
                    if listed.iter().any(|(id, _)| !known.contains(id)) {
                        relist.set(true);
                        return Ok::<_, RunnerError>(());
                    }
                }
            };
            let round =
                match futures::future::select(std::pin::pin!(loops), std::pin::pin!(watch)).await {
                    futures::future::Either::Left((loops, _)) => loops.map(drop),
                    futures::future::Either::Right((Ok(()), loops)) => loops.await.map(drop),
                    futures::future::Either::Right((Err(e), _)) => Err(e),
                };
            self.shards.extend(cursors);
            self.stats = stats.into_inner();
            round?;
            if relist.get() {
                self.discovered = None;
            }
        }
        Ok(())
    }

    /// One shard's loop of [`Self::poll_shards`].
    async fn poll_shard(
        &self,
        shard_id: &str,
        cursor: &mut ShardCursor,
        stats: &RefCell<MappingStats>,
        relist: &Cell<bool>,
        stop: &impl Fn(&MappingStats) -> bool,
    ) -> Result<(), RunnerError> {
        let window = self.settings.batching_window;
        while !relist.get() && !stop(&stats.borrow()) {
            let started = Instant::now();
            let step = self.step(shard_id, cursor, false).await?;
            let delivered = step.batch.is_some();
            step.count_in(&mut stats.borrow_mut());
            if cursor.finished && cursor.buffer.is_empty() {
                relist.set(true);
            } else if !delivered {
                tokio::time::sleep_until(next_read(started, cursor.buffered_since, window)).await;
            }
        }
        Ok(())
    }

    /// The cursors of the shards a pass works on, out of the map (the caller puts them
    /// back): those that may be read (not finished, their parent finished or gone) and
    /// those with records still to deliver.
    fn take_active_cursors(&mut self) -> Vec<(String, ShardCursor)> {
        let done = |c: &ShardCursor| c.finished && c.buffer.is_empty();
        let active: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, c)| {
                !c.buffer.is_empty()
                    || (!c.finished
                        && c.parent
                            .as_ref()
                            .is_none_or(|p| self.shards.get(p).is_none_or(done)))
            })
            .map(|(id, _)| id.clone())
            .collect();
        active
            .into_iter()
            .filter_map(|id| self.shards.remove_entry(&id))
            .collect()
    }

    /// A shard's step: reads what it has (unless it is read to its end; after the delivery
    /// when a full batch waits), and delivers one batch if it is due.
    async fn step(
        &self,
        shard_id: &str,
        cursor: &mut ShardCursor,
        flush: bool,
    ) -> Result<ShardStep, RunnerError> {
        let batch_size = self.settings.batch_size;
        let window = self.settings.batching_window;
        let mut step = ShardStep::default();
        let room = |cursor: &ShardCursor| !cursor.finished && cursor.buffer.len() < batch_size;
        let read_first = room(cursor);
        if read_first {
            (step.read, step.filtered_out) = self.read_shard(shard_id, cursor).await?;
        }
        let due = cursor.buffer.len() >= batch_size
            || (!cursor.buffer.is_empty()
                && (flush
                    || window.is_zero()
                    || cursor.buffered_since.is_some_and(|t| t.elapsed() >= window)));
        if due {
            let batch = take_batch(&mut cursor.buffer, batch_size);
            cursor.buffered_since = (!cursor.buffer.is_empty()).then(Instant::now);
            step.batch = Some(self.deliver_batch(shard_id, batch).await?);
        }
        // A full batch was waiting, so the shard was not read before it went: read now, or a
        // step that emptied the buffer and read nothing would pass for a quiet shard.
        if !read_first && room(cursor) {
            (step.read, step.filtered_out) = self.read_shard(shard_id, cursor).await?;
        }
        Ok(step)
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
                .shard_iterator(&id, &ReadFrom::Start(self.settings.starting_position))
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
    /// Returns the records read and how many of them the filters dropped.
    async fn read_shard(
        &self,
        shard_id: &str,
        cursor: &mut ShardCursor,
    ) -> Result<(usize, usize), RunnerError> {
        // A lost iterator is replaced and read at once (after the last record read, then, if
        // that one is lost too, from the shard's oldest record), so a read that comes back
        // empty means the shard has nothing new.
        let mut replaced = 0;
        let (records, next) = loop {
            let Some(iterator) = cursor.iterator.clone() else {
                cursor.finished = true;
                return Ok((0, 0));
            };
            match self
                .source
                .get_records(shard_id, iterator, &self.region, &self.account_id)
                .await?
            {
                Page::Records(records, next) => break (records, next),
                Page::IteratorLost(reason) if replaced < 2 => {
                    let from = match &cursor.last_read {
                        Some(seq) if replaced == 0 => ReadFrom::After(seq.clone()),
                        // What followed the last record read is gone: the oldest there is.
                        Some(_) => ReadFrom::Start(StartingPosition::TrimHorizon),
                        None => ReadFrom::Start(self.settings.starting_position),
                    };
                    // One short line (`make demo` prints warnings); the position and the
                    // error's message at debug.
                    let code = reason.split(':').next().unwrap_or_default();
                    tracing::warn!(
                        shard_id,
                        error = code,
                        "shard iterator lost: reading on with a new one"
                    );
                    tracing::debug!(shard_id, ?from, %reason, "shard iterator lost");
                    cursor.iterator = self.source.shard_iterator(shard_id, &from).await?;
                    replaced += 1;
                }
                Page::IteratorLost(reason) => {
                    return Err(RunnerError::Aws {
                        operation: "GetRecords",
                        message: format!(
                            "shard {shard_id}: every new iterator was lost too: {reason}"
                        ),
                    });
                }
            }
        };
        if let Some(last) = records.last() {
            cursor.last_read = Some(last.sequence_number.clone());
        }
        let records: Vec<StreamRecord> = records
            .into_iter()
            .filter(|r| cursor.recently_read.first_time(r.event_id()))
            .collect();
        let read = records.len();
        let kept: Vec<StreamRecord> = records
            .into_iter()
            .filter(|r| filter::passes(&self.settings.filters, r))
            .collect();
        let filtered_out = read - kept.len();
        if !kept.is_empty() && cursor.buffer.is_empty() {
            cursor.buffered_since = Some(Instant::now());
        }
        cursor.buffer.extend(kept);
        cursor.finished = next.is_none();
        cursor.iterator = next;
        Ok((read, filtered_out))
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

/// When a shard that delivered nothing reads next, in [`Mapping::poll_shards`]: when its
/// batching window ends if records wait, else [`IDLE_POLL`] after its last read started
/// (reads start that far apart however long one takes, as Lambda's polling rate means).
pub(super) fn next_read(
    read_started: Instant,
    buffered_since: Option<Instant>,
    window: Duration,
) -> Instant {
    buffered_since.map_or(read_started + IDLE_POLL, |since| since + window)
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
