//! The end-to-end part's figures on one AWS: throughput through the local pipeline, alert
//! latency at a share of it, AWS calls by API and caller, and the emulator's bare ceiling.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use realty_infra::emulator::EmulatorKind;
use serde_json::{Value, json};

use super::{BenchArgs, LocalAws, e2e, progress, round3};

/// Load of the latency run, as a share of the measured end-to-end throughput.
const LATENCY_LOAD: f64 = 0.5;
/// About how long the latency run lasts.
const LATENCY_RUN: std::time::Duration = std::time::Duration::from_secs(30);

type Figures = serde_json::Map<String, Value>;

pub(super) async fn run_end_to_end(
    args: &BenchArgs,
    aws: &LocalAws,
    events: &[realty_model::listing::ListingEvent],
    run: &mut Figures,
) -> Result<()> {
    progress(&format!(
        "{}: provisioning the end-to-end stack",
        aws.kind.map_or("endpoint", EmulatorKind::name)
    ));
    let (stack, resources) = aws.provision("e2e").await?;
    // Half the events at most: the latency run takes the ones after them.
    let e2e_events = &events[..args.e2e_events.min(events.len() / 2)];
    let mut pipeline = e2e::Pipeline::new(&aws.sdk, &aws.template, &stack, &resources).await?;
    progress(&format!(
        "end to end, throughput: {} events through the local pipeline, as fast as it goes",
        e2e_events.len()
    ));
    let burst = pipeline.run(e2e_events, None).await?;
    let e2e_per_s = burst.events as f64 / burst.elapsed.as_secs_f64();
    set_throughput(run, &burst, e2e_per_s);

    // Latency at a steady share of that throughput (at the throughput itself it is only
    // the queue), over the events that follow, for about LATENCY_RUN.
    let pace = (e2e_per_s * LATENCY_LOAD).max(1.0);
    let rest = &events[e2e_events.len()..];
    let count = ((pace * LATENCY_RUN.as_secs_f64()) as usize).clamp(1, rest.len());
    let paced_events = &rest[..count];
    progress(&format!(
        "end to end, latency: {} events at {pace:.0} events/s ({:.0} % of the throughput)",
        paced_events.len(),
        LATENCY_LOAD * 100.0
    ));
    let paced = pipeline.run(paced_events, Some(pace)).await?;
    set_latency(run, &paced, pace);
    set(
        run,
        "e2e_burst_alert_latency_ms_p50",
        json!(burst.latency.as_ref().map(|l| l.p50_ms.round())),
    );

    progress("emulator ceiling: bare PutRecords/GetRecords of the same events");
    let ceiling_per_s = ceiling_events_per_s(aws, &stack.stack_name, e2e_events).await?;
    set(
        run,
        "emulator_ceiling_events_per_s",
        json!(ceiling_per_s.round()),
    );
    set(
        run,
        "e2e_to_ceiling_ratio",
        json!(round3(e2e_per_s / ceiling_per_s)),
    );
    set(run, "endpoint", json!(aws.endpoint));
    run_realistic(aws, e2e_events.len(), args.seed, run).await
}

/// The realistic mix's burst, its first read then as many events as the throughput run's, on
/// a stack of its own (its listings would otherwise meet the bench stream's): AWS calls and
/// alerts per 1,000 events of the feed, its first read not counted.
async fn run_realistic(aws: &LocalAws, count: usize, seed: u64, run: &mut Figures) -> Result<()> {
    // At about the rate the local pipeline carries (its batches: up to 1,000 records).
    let rate = super::events::realistic::FeedRate { per_second: 1_000 };
    let events =
        super::events::realistic::generate(count, seed, super::events::Spread::Regional, rate);
    progress(&format!(
        "end to end, the realistic mix: a first read of {} listings, then {count} events, on a stack of their own",
        rate.inventory()
    ));
    let (stack, resources) = aws.provision("e2e-realistic").await?;
    let mut pipeline = e2e::Pipeline::new(&aws.sdk, &aws.template, &stack, &resources).await?;
    let (first_read, feed) = events.split_at(rate.inventory());
    pipeline.run(first_read, None).await?;
    let burst = pipeline.run(feed, None).await?;
    let per_1000 = |n: u64| round3(n as f64 * 1000.0 / burst.events.max(1) as f64);
    set(
        run,
        "realistic_aws_calls_per_1000_events",
        json!(per_1000(burst.calls.values().sum())),
    );
    let by_api: BTreeMap<&str, f64> = burst
        .calls
        .iter()
        .map(|(name, calls)| (name.as_str(), per_1000(*calls)))
        .collect();
    set(
        run,
        "realistic_aws_calls_per_1000_events_by_api",
        json!(by_api),
    );
    set(
        run,
        "realistic_alerts_per_1000_events",
        json!(per_1000(burst.alerts as u64)),
    );
    Ok(())
}

fn set(run: &mut Figures, key: &str, value: Value) {
    run.insert(key.to_owned(), value);
}

/// The throughput run's figures: events per second, invocations, and AWS calls and alerts
/// per 1,000 events.
fn set_throughput(run: &mut Figures, burst: &e2e::PipelineRun, e2e_per_s: f64) {
    set(run, "e2e_events", json!(burst.events));
    set(run, "e2e_events_per_s", json!(e2e_per_s.round()));
    set(
        run,
        "e2e_metrics_invocations",
        json!(burst.metrics_invocations),
    );
    set(
        run,
        "e2e_alerts_invocations",
        json!(burst.alerts_invocations),
    );
    let per_1000 = |calls: u64| round3(calls as f64 * 1000.0 / burst.events as f64);
    let by_api: BTreeMap<String, f64> = burst
        .calls
        .iter()
        .map(|(name, calls)| (name.clone(), per_1000(*calls)))
        .collect();
    set(run, "aws_calls_per_1000_events", json!(by_api));
    let by_caller: BTreeMap<&str, f64> = burst
        .calls_by_caller
        .iter()
        .map(|(caller, calls)| (*caller, per_1000(*calls)))
        .collect();
    set(run, "aws_calls_per_1000_events_by_caller", json!(by_caller));
    set(
        run,
        "e2e_alerts_per_1000_events",
        json!(round3(burst.alerts as f64 * 1000.0 / burst.events as f64)),
    );
}

/// The latency run's figures, at `pace` events per second: the alerts' latency and its
/// stages, and how long an invocation and an AWS call take at that load.
fn set_latency(run: &mut Figures, paced: &e2e::PipelineRun, pace: f64) {
    set(run, "e2e_latency_load_events_per_s", json!(pace.round()));
    set(run, "e2e_alerts", json!(paced.alerts));
    // How long an invocation takes at that load (the handler's own work and its AWS calls,
    // on this emulator): the part of the alert latency that is not waiting.
    let mean_ms = |total: std::time::Duration, n: u32| {
        (n > 0).then(|| (total.as_secs_f64() * 1000.0 / f64::from(n)).round())
    };
    set(
        run,
        "e2e_metrics_invocation_ms_mean",
        json!(mean_ms(paced.metrics_delivery, paced.metrics_invocations)),
    );
    set(
        run,
        "e2e_alerts_invocation_ms_mean",
        json!(mean_ms(paced.alerts_delivery, paced.alerts_invocations)),
    );
    set(
        run,
        "e2e_aws_call_ms_mean",
        json!(
            paced
                .call_ms
                .iter()
                .map(|(call, ms)| (call.clone(), round3(*ms)))
                .collect::<BTreeMap<_, _>>()
        ),
    );
    set(
        run,
        "e2e_alert_latency_ms_p50",
        json!(paced.latency.as_ref().map(|l| l.p50_ms.round())),
    );
    set(
        run,
        "e2e_alert_latency_ms_p99",
        json!(paced.latency.as_ref().map(|l| l.p99_ms.round())),
    );
    for (stage, summary) in ["to_metrics", "metrics", "to_publish"]
        .iter()
        .zip(&paced.latency_stages)
    {
        set(
            run,
            &format!("e2e_alert_latency_ms_{stage}_p50_p99"),
            json!(
                summary
                    .as_ref()
                    .map(|l| [l.p50_ms.round(), l.p99_ms.round()])
            ),
        );
    }
}

/// The emulator's bare ceiling over the same events, on a stream of the template's shard
/// count (events per second).
async fn ceiling_events_per_s(
    aws: &LocalAws,
    stack_name: &str,
    events: &[realty_model::listing::ListingEvent],
) -> Result<f64> {
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .map(|e| e.encode())
        .collect::<Result<_, _>>()?;
    let shards = aws
        .parameter_default("KinesisShardCount")
        .and_then(|s| s.parse().ok())
        .context("template.yaml has no numeric KinesisShardCount default")?;
    let ceiling =
        e2e::emulator_ceiling(&aws.sdk, &format!("{stack_name}-ceiling"), shards, &encoded).await?;
    Ok(encoded.len() as f64 / ceiling.as_secs_f64())
}
