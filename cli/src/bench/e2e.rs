//! End to end through the local pipeline: events put on the listing stream as the poller
//! puts them, the real metrics and alerts handlers fed by the local event source mappings,
//! alerts published to SNS; and, beside it, the emulator's own ceiling: a bare
//! PutRecords/GetRecords loop over the same events on a stream of the same shape.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use aws_config::SdkConfig;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use realty_aws::adapters::kinesis::KinesisPublisher;
use realty_aws::adapters::retry::RetryPolicy;
use realty_infra::provision::ProvisionedStack;
use realty_infra::runner::{self, Mapping, MappingStats};
use realty_infra::template::Template;
use realty_model::config::StackResources;
use realty_model::listing::ListingEvent;
use realty_poller::ports::EventPublisher;

use super::calls::CallCounter;
use crate::html::LatencySummary;
use crate::pipeline::{
    self, AlertsHandler, MetricsHandler, PipelineSdks, SentAt, StampedPublisher, StreamMappings,
};

/// Records per PutRecords call (the API's limit, as the poller sends them).
const PUT_RECORDS_MAX: usize = 500;

/// Who made a call: the events put as the poller puts them, the event source mappings' reads
/// of the streams (Lambda's pollers, on AWS), each function's own calls.
pub const CALLER_PRODUCER: &str = "poller (PutRecords)";
pub const CALLER_MAPPINGS: &str = "event source mappings";
pub const CALLER_METRICS: &str = "metrics function";
pub const CALLER_ALERTS: &str = "alerts function";

/// What one run through the pipeline measured.
#[derive(Debug, Clone)]
pub struct PipelineRun {
    pub events: usize,
    pub elapsed: Duration,
    pub alerts: usize,
    pub latency: Option<LatencySummary>,
    /// The alerts' latency by stage: PutRecords to the metrics invocation, the invocation,
    /// its return to the publish ([`pipeline::LatencyStages`]).
    pub latency_stages: [Option<LatencySummary>; 3],
    /// AWS calls of the run, by `Service.Operation`.
    pub calls: BTreeMap<String, u64>,
    /// The same calls, by caller ([`CALLER_METRICS`], ...).
    pub calls_by_caller: BTreeMap<&'static str, u64>,
    /// Mean time of a call, request to response, by `Service.Operation` (ms).
    pub call_ms: BTreeMap<String, f64>,
    pub metrics_invocations: u32,
    pub alerts_invocations: u32,
    /// Time the mappings spent delivering batches to each function (its invocations).
    pub metrics_delivery: Duration,
    pub alerts_delivery: Duration,
}

/// The local pipeline of a provisioned stack, with its AWS calls counted.
pub struct Pipeline {
    mappings: StreamMappings,
    publisher: StampedPublisher,
    sent: SentAt,
    counter: CallCounter,
}

impl Pipeline {
    pub async fn new(
        sdk: &SdkConfig,
        template: &Template,
        stack: &ProvisionedStack,
        resources: &StackResources,
    ) -> Result<Self> {
        let counter = CallCounter::default();
        let sdks = PipelineSdks {
            mappings: counter.wrap(sdk, CALLER_MAPPINGS),
            metrics: counter.wrap(sdk, CALLER_METRICS),
            alerts: counter.wrap(sdk, CALLER_ALERTS),
        };
        let mappings = StreamMappings::new(&sdks, template, stack, resources).await?;
        let sent: SentAt = Arc::default();
        let publisher = StampedPublisher {
            inner: KinesisPublisher {
                client: aws_sdk_kinesis::Client::new(&counter.wrap(sdk, CALLER_PRODUCER)),
                stream: resources.listing_events_stream.clone(),
                retry: RetryPolicy::default(),
            },
            sent: sent.clone(),
        };
        Ok(Self {
            mappings,
            publisher,
            sent,
            counter,
        })
    }

    /// Puts `events` on the listing stream (as fast as the stream takes them, or at `pace`
    /// events per second) while the mappings run the handlers, until every event went
    /// through metrics and every alert was published.
    pub async fn run(&mut self, events: &[ListingEvent], pace: Option<f64>) -> Result<PipelineRun> {
        self.forget_previous_runs();
        let metrics_before = self.mappings.metrics.stats.clone();
        let alerts_before = self.mappings.alerts.stats.clone();
        let target = metrics_before.records_succeeded + events.len();
        let publisher = &self.publisher;
        let StreamMappings {
            metrics, alerts, ..
        } = &mut self.mappings;
        let started = Instant::now();
        let produced = Cell::new(false);
        let produce = async {
            let result = put_events(publisher, events, pace, started).await;
            produced.set(true);
            result
        };
        let consume = run_handlers(metrics, alerts, &produced, target);
        let (produced_result, consumed) = tokio::join!(produce, consume);
        produced_result?;
        consumed?;
        let elapsed = started.elapsed();
        self.measured(events.len(), elapsed, &metrics_before, &alerts_before)
    }

    /// The counts, stamps and latencies of earlier runs, forgotten.
    fn forget_previous_runs(&self) {
        self.counter.reset();
        if let Ok(mut sent) = self.sent.lock() {
            sent.clear();
        }
        if let Ok(mut published) = self.mappings.published.lock() {
            published.clear();
        }
        if let Ok(mut stages) = self.mappings.metrics_stages.lock() {
            stages.clear();
        }
    }

    /// What the run that ended after `elapsed` measured, from the mappings' counters
    /// (against theirs `before` it) and the calls counted; an error if any record was
    /// discarded.
    fn measured(
        &self,
        events: usize,
        elapsed: Duration,
        metrics_before: &MappingStats,
        alerts_before: &MappingStats,
    ) -> Result<PipelineRun> {
        let (metrics, alerts) = (&self.mappings.metrics.stats, &self.mappings.alerts.stats);
        if metrics.records_discarded + alerts.records_discarded > 0 {
            bail!(
                "the pipeline discarded records (metrics {}, alerts {}): the run is not a measurement",
                metrics.records_discarded,
                alerts.records_discarded
            );
        }
        let latencies = pipeline::alert_latencies_ms(&self.mappings.published, &self.sent)?;
        let stages = pipeline::alert_latency_stages(
            &self.mappings.published,
            &self.sent,
            &self.mappings.metrics_stages,
        )?;
        Ok(PipelineRun {
            events,
            elapsed,
            alerts: latencies.len(),
            latency: LatencySummary::of(&latencies),
            latency_stages: [
                LatencySummary::of(&stages.to_metrics),
                LatencySummary::of(&stages.metrics),
                LatencySummary::of(&stages.to_publish),
            ],
            calls: self.counter.snapshot(),
            calls_by_caller: self.counter.by_caller(),
            call_ms: self.counter.mean_ms(),
            metrics_invocations: metrics.invocations - metrics_before.invocations,
            alerts_invocations: alerts.invocations - alerts_before.invocations,
            metrics_delivery: Duration::from_millis(
                metrics.delivery_ms - metrics_before.delivery_ms,
            ),
            alerts_delivery: Duration::from_millis(alerts.delivery_ms - alerts_before.delivery_ms),
        })
    }
}

/// One producer, chunk after chunk, so pacing holds the rate: paced, a quarter second's
/// worth of events at a time.
async fn put_events(
    publisher: &StampedPublisher,
    events: &[ListingEvent],
    pace: Option<f64>,
    started: Instant,
) -> Result<()> {
    let chunk = pace.map_or(PUT_RECORDS_MAX, |rate| {
        ((rate / 4.0).round() as usize).clamp(1, PUT_RECORDS_MAX)
    });
    for (i, chunk) in events.chunks(chunk).enumerate() {
        if let Some(rate) = pace {
            let due = Duration::from_secs_f64((i * chunk.len()) as f64 / rate);
            tokio::time::sleep_until((started + due).into()).await;
        }
        let failures = publisher.publish(chunk).await?;
        if let Some(f) = failures.first() {
            bail!(
                "{} events were not put on the stream: {}",
                failures.len(),
                f.error
            );
        }
    }
    Ok(())
}

/// The two mappings poll and invoke independently, as Lambda's do (an alerts batch does
/// not hold up the next metrics batch, nor the other way round), until every event is
/// `produced` and `target` records went through metrics; then the alerts catch up.
async fn run_handlers(
    metrics: &mut Mapping<MetricsHandler>,
    alerts: &mut Mapping<AlertsHandler>,
    produced: &Cell<bool>,
    target: usize,
) -> Result<()> {
    let metrics_done = Cell::new(false);
    let run_metrics = async {
        let result = metrics
            .poll_shards(|stats| produced.get() && stats.records_succeeded >= target)
            .await;
        metrics_done.set(true);
        result
    };
    let run_alerts = alerts.poll_shards(|_| metrics_done.get());
    let (metrics_result, alerts_result) = tokio::join!(run_metrics, run_alerts);
    metrics_result?;
    alerts_result?;
    runner::drain(metrics, alerts).await?;
    Ok(())
}

/// The emulator's ceiling: `encoded` put with PutRecords (one producer, 500 a call) and
/// read back with GetRecords from every shard at once, on a new stream of `shards` shards.
pub async fn emulator_ceiling(
    sdk: &SdkConfig,
    stream_name: &str,
    shards: i32,
    encoded: &[Vec<u8>],
) -> Result<Duration> {
    let kinesis = aws_sdk_kinesis::Client::new(sdk);
    let shard_ids = create_stream(&kinesis, stream_name, shards).await?;
    let mut iterators = Vec::new();
    for shard in &shard_ids {
        iterators.push(
            kinesis
                .get_shard_iterator()
                .stream_name(stream_name)
                .shard_id(shard)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .context("GetShardIterator")?
                .shard_iterator,
        );
    }
    let started = Instant::now();
    let (produced, consumed) = tokio::join!(
        put_bare(&kinesis, stream_name, encoded),
        read_bare(&kinesis, iterators, encoded.len())
    );
    produced?;
    consumed?;
    let elapsed = started.elapsed();
    kinesis
        .delete_stream()
        .stream_name(stream_name)
        .send()
        .await
        .context("deleting the ceiling's stream")?;
    Ok(elapsed)
}

/// Creates the ceiling's stream and waits until it is active; returns its shards' ids.
async fn create_stream(
    kinesis: &aws_sdk_kinesis::Client,
    stream_name: &str,
    shards: i32,
) -> Result<Vec<String>> {
    kinesis
        .create_stream()
        .stream_name(stream_name)
        .shard_count(shards)
        .send()
        .await
        .context("creating the ceiling's stream")?;
    loop {
        let description = kinesis
            .describe_stream()
            .stream_name(stream_name)
            .send()
            .await
            .context("describing the ceiling's stream")?
            .stream_description
            .context("DescribeStream returned no description")?;
        if description.stream_status == aws_sdk_kinesis::types::StreamStatus::Active {
            return Ok(description.shards.into_iter().map(|s| s.shard_id).collect());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `encoded` put with bare PutRecords calls, [`PUT_RECORDS_MAX`] a call.
async fn put_bare(
    kinesis: &aws_sdk_kinesis::Client,
    stream_name: &str,
    encoded: &[Vec<u8>],
) -> Result<()> {
    for (chunk_index, chunk) in encoded.chunks(PUT_RECORDS_MAX).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, data)| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{}", chunk_index * PUT_RECORDS_MAX + i))
                    .data(Blob::new(data.clone()))
                    .build()
                    .context("a PutRecords entry")
            })
            .collect::<Result<Vec<_>>>()?;
        let out = kinesis
            .put_records()
            .stream_name(stream_name)
            .set_records(Some(entries))
            .send()
            .await
            .context("PutRecords")?;
        if out.failed_record_count.unwrap_or(0) > 0 {
            bail!("the emulator refused records of a bare PutRecords");
        }
    }
    Ok(())
}

/// GetRecords from every shard in turn until `count` records were read.
async fn read_bare(
    kinesis: &aws_sdk_kinesis::Client,
    mut iterators: Vec<Option<String>>,
    count: usize,
) -> Result<()> {
    let mut read = 0usize;
    while read < count {
        let mut got = 0;
        for iterator in &mut iterators {
            let Some(current) = iterator.clone() else {
                continue;
            };
            let out = kinesis
                .get_records()
                .shard_iterator(current)
                .limit(10_000)
                .send()
                .await
                .context("GetRecords")?;
            got += out.records.len();
            *iterator = out.next_shard_iterator;
        }
        read += got;
        if got == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}
