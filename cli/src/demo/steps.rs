//! The demo's simulated time, step by step: advance the market, poll while the mappings
//! pump, drain both streams, collect the alerts; a progress bar for the market's time and
//! one for the pipeline's events (a line per poll where there is no terminal).

use std::cell::Cell;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::{DateTime, TimeDelta, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use realty_alerts::message::AlertBody;
use realty_infra::runner::{self, Mapping, MappingStats, StreamFunction};
use realty_poller::run::{PollRequest, PollSummary, Poller};
use realty_sim::SimServer;

use super::alert_queue::receive_alerts;
use crate::pipeline::{AlertsHandler, MetricsHandler, StampedPublisher};

/// The poller as the demo builds it: `realty invoke poller`'s, with its publisher timed.
pub(super) type DemoPoller = Poller<
    StampedPublisher,
    realty_aws::adapters::poll_state::S3PollStateStore,
    realty_aws::adapters::config::DynamoConfigStore,
    realty_aws::adapters::raw_pages::S3RawPageStore,
>;

/// What the steps of a run add up to.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) poll_times: Vec<DateTime<Utc>>,
    pub(super) alerts_received: Vec<AlertBody>,
    pub(super) events_published: usize,
    pub(super) polling: Duration,
    pub(super) draining: Duration,
}

/// The SQS queue subscribed to the alert topic.
pub(super) struct AlertQueue {
    pub(super) sqs: aws_sdk_sqs::Client,
    pub(super) url: String,
}

/// The simulated market and the pipeline each step runs.
pub(super) struct Steps<'a> {
    pub(super) sim: &'a SimServer,
    pub(super) poller: &'a DemoPoller,
    pub(super) metrics: &'a mut Mapping<MetricsHandler>,
    pub(super) alerts: &'a mut Mapping<AlertsHandler>,
    pub(super) queue: &'a AlertQueue,
    pub(super) step_hours: u32,
    /// Steps after the first poll (`steps + 1` polls in all).
    pub(super) steps: u32,
}

impl Steps<'_> {
    pub(super) async fn run(&mut self) -> Result<Tally> {
        let request = PollRequest::default();
        let bars = Bars::new(self.steps);
        let mut tally = Tally::default();
        for step in 0..=self.steps {
            let now = self.step(step, &request, &mut tally).await?;
            bars.show(
                step,
                self.steps,
                now,
                &tally,
                &self.metrics.stats,
                &self.alerts.stats,
            );
        }
        bars.finish();
        Ok(tally)
    }

    /// One step: the market advanced (past the first), a poll at its time, both streams
    /// drained, the alerts received. Returns the poll's time.
    async fn step(
        &mut self,
        step: u32,
        request: &PollRequest,
        tally: &mut Tally,
    ) -> Result<DateTime<Utc>> {
        if step > 0 {
            self.sim
                .handle()
                .advance(TimeDelta::hours(i64::from(self.step_hours)))?;
        }
        let now = self.sim.handle().now();
        tally.poll_times.push(now);
        let poll_started = Instant::now();
        let summary =
            poll_while_pumping(self.poller, request, now, self.metrics, self.alerts).await?;
        tally.polling += poll_started.elapsed();
        check_poll(&summary, now)?;
        tally.events_published +=
            summary.new + summary.changed + summary.delisted - summary.unpublished;
        let drain_started = Instant::now();
        runner::drain(self.metrics, self.alerts).await?;
        tally.draining += drain_started.elapsed();
        let quiet_seconds = if step == self.steps { 2 } else { 0 };
        tally
            .alerts_received
            .extend(receive_alerts(&self.queue.sqs, &self.queue.url, quiet_seconds).await?);
        Ok(now)
    }
}

/// A poll with a failed market stops the demo, with each market's error.
fn check_poll(summary: &PollSummary, now: DateTime<Utc>) -> Result<()> {
    if summary.failed_markets > 0 {
        let errors: Vec<String> = summary
            .per_market
            .iter()
            .filter_map(|m| m.error.clone())
            .collect();
        bail!("the poll at {now} failed: {}", errors.join("; "));
    }
    Ok(())
}

/// Runs one poll while the mappings keep pumping (as Lambda's pollers run beside the
/// function that writes the stream), so the latency includes no artificial wait.
async fn poll_while_pumping<M: StreamFunction, A: StreamFunction>(
    poller: &DemoPoller,
    request: &PollRequest,
    now: DateTime<Utc>,
    metrics: &mut Mapping<M>,
    alerts: &mut Mapping<A>,
) -> Result<PollSummary> {
    let done = Cell::new(false);
    let poll = async {
        let summary = Box::pin(poller.poll(request, now)).await;
        done.set(true);
        summary
    };
    let pump = async {
        tokio::try_join!(
            metrics.poll_shards(|_| done.get()),
            alerts.poll_shards(|_| done.get()),
        )
    };
    let (summary, pumped) = tokio::join!(poll, pump);
    pumped?;
    Ok(summary)
}

/// The market's time in polls, and the pipeline's events through metrics.
struct Bars {
    progress: MultiProgress,
    time: ProgressBar,
    events: ProgressBar,
}

impl Bars {
    fn new(steps: u32) -> Self {
        let progress = MultiProgress::new();
        if std::env::var_os("REALTY_NO_PROGRESS").is_some() {
            progress.set_draw_target(ProgressDrawTarget::hidden());
        }
        let time = progress.add(ProgressBar::new(u64::from(steps) + 1));
        time.set_style(bar_style(
            "{prefix:>10} [{bar:30}] {pos}/{len} polls  {msg}",
        ));
        time.set_prefix("market");
        let events = progress.add(ProgressBar::new(0));
        events.set_style(bar_style(
            "{prefix:>10} [{bar:30}] {pos}/{len} events through metrics  {msg}",
        ));
        events.set_prefix("pipeline");
        Self {
            progress,
            time,
            events,
        }
    }

    fn show(
        &self,
        step: u32,
        steps: u32,
        now: DateTime<Utc>,
        tally: &Tally,
        metrics: &MappingStats,
        alerts: &MappingStats,
    ) {
        self.events.set_length(tally.events_published as u64);
        self.events.set_position(metrics.records_succeeded as u64);
        self.events.set_message(format!(
            "{} alerts, {} invocations",
            tally.alerts_received.len(),
            metrics.invocations + alerts.invocations
        ));
        self.time
            .set_message(now.format("%Y-%m-%d %H:%M").to_string());
        self.time.inc(1);
        if self.progress.is_hidden() {
            // No terminal to draw bars on (CI, a pipe): a line per poll instead.
            eprintln!(
                "poll {}/{} at {}: {} events published, {} through metrics, {} alerts ({:.1} s polling, {:.1} s draining so far)",
                step + 1,
                steps + 1,
                now.format("%Y-%m-%d %H:%M"),
                tally.events_published,
                metrics.records_succeeded,
                tally.alerts_received.len(),
                tally.polling.as_secs_f64(),
                tally.draining.as_secs_f64()
            );
        }
    }

    fn finish(&self) {
        self.time.finish();
        self.events.finish();
    }
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}
