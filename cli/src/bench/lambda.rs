//! The Lambda functions as deployed: binary sizes (arm64, what `sam deploy` uploads), and the
//! real bootstraps, built for this machine with the same release profile, run against a
//! local Lambda Runtime API ([`realty_infra::lambda_api`]) and the local AWS: cold start
//! (the bootstrap's spawn to its first request for an event: the Init phase, measured once
//! the local AWS has gone quiet) and the metrics
//! function's peak memory on the largest batch Lambda can hand it (6 MB of event JSON).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use realty_infra::lambda_api::LambdaProcess;
use realty_model::listing::ListingEvent;
use serde_json::{Value, json};

use super::{LocalAws, Report, median, progress};

/// The functions on the event path, by binary name.
pub const FUNCTIONS: [&str; 3] = ["poller", "metrics", "alerts"];

/// The functions added later (off the event path): their sizes are reported beside.
pub const LATER_FUNCTIONS: [&str; 3] = ["api", "importer", "curator"];

/// Cold starts measured per function (the median is reported).
const COLD_STARTS: usize = 10;

/// Records at most in a Kinesis trigger's batch.
const MAX_BATCH_RECORDS: usize = 10_000;

/// Lambda's limit on an invocation's payload (6 MB): the memory-measuring batch is as many
/// records as fit in it, as the Kinesis event JSON with base64 data.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Share of this machine's CPU time idle over [`QUIET_WINDOW`] that counts as quiet.
const QUIET_CPU_SHARE: f64 = 0.9;
/// How long to wait for quiet before measuring anyway (the share seen is reported).
const QUIET_WAIT_LIMIT: Duration = Duration::from_secs(60);
const QUIET_WINDOW: Duration = Duration::from_millis(250);

/// Memory the template gives each function, as Lambda's runtime tells it.
const LOCAL_MEMORY_MB: &str = "512";

pub async fn measure(
    aws: &LocalAws,
    lambda_dir: &Path,
    host_dir: &Path,
    events: &[ListingEvent],
    out_dir: &Path,
    report: &mut Report,
) -> Result<()> {
    report.set(
        "lambda_binary_bytes",
        binary_sizes(lambda_dir, &FUNCTIONS)?.into(),
    );
    // The later functions' sizes where `make build` left their bootstraps (`make bench`
    // builds the event path's only).
    let later: Vec<&str> = LATER_FUNCTIONS
        .into_iter()
        .filter(|f| lambda_dir.join(f).join("bootstrap").is_file())
        .collect();
    report.set(
        "lambda_binary_bytes_added_later",
        binary_sizes(lambda_dir, &later)?.into(),
    );

    progress("local AWS: provisioning the stack the bootstraps run against");
    let (stack, resources) = aws.provision("lambda").await?;
    listing_api_keys(aws, &resources.api_key_secret).await?;
    let mut env: Vec<(String, String)> = resources
        .to_env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.extend(local_environment(aws, &stack.region));

    // The local AWS shares this machine's cores, and just after provisioning it can be busy
    // (the JVM of DynamoDB Local compiling, LocalStack's workers): two busy cores doubled a
    // 9 ms cold start. On Lambda the function has its share of a CPU to itself.
    progress("waiting for the local AWS to go quiet before the cold starts");
    let idle = wait_for_idle_cpus(QUIET_CPU_SHARE, QUIET_WAIT_LIMIT).await;
    report.set(
        "cold_start_cpu_idle_share",
        json!(idle.map(|share| (share * 100.0).round() / 100.0)),
    );
    let mut cold_starts = serde_json::Map::new();
    for function in FUNCTIONS {
        let median_ms = cold_start_ms(host_dir, function, &env, out_dir).await?;
        cold_starts.insert(function.to_owned(), json!(median_ms));
    }
    report.set("cold_start_ms", cold_starts.into());
    report.set(
        "cold_start_build",
        json!(format!(
            "{} release, same profile as the arm64 build",
            std::env::consts::ARCH
        )),
    );
    peak_memory(host_dir, &env, out_dir, events, &stack.region, report).await
}

/// The bootstraps' environment beside the stack's resources: the local AWS, the template's
/// memory, and the alert rules' template defaults.
fn local_environment(aws: &LocalAws, region: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", aws.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", region),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", LOCAL_MEMORY_MB),
        ("RUST_LOG", "info"),
        ("REALTY_SOURCES", "zillow"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    for (variable, parameter) in [
        ("REALTY_PRICE_DROP_THRESHOLD_PCT", "PriceDropThresholdPct"),
        ("REALTY_PRICE_DROP_MIN_AMOUNT", "PriceDropMinAmount"),
        ("REALTY_UNDERVALUED_RATIO", "UndervaluedRatio"),
        ("REALTY_NEW_LISTING_ALERTS", "NewListingAlerts"),
    ] {
        if let Some(value) = aws.parameter_default(parameter) {
            env.push((variable.to_owned(), value));
        }
    }
    env
}

/// The median of [`COLD_STARTS`] cold starts of `function`'s bootstrap (ms, one decimal).
async fn cold_start_ms(
    host_dir: &Path,
    function: &str,
    env: &[(String, String)],
    out_dir: &Path,
) -> Result<Option<f64>> {
    let binary = host_dir.join(function);
    if !binary.is_file() {
        bail!(
            "{} is missing: build the release bootstraps with `cargo build --release -p realty-{function}` (make bench does)",
            binary.display()
        );
    }
    progress(&format!("{function}: {COLD_STARTS} cold starts"));
    let log = out_dir.join(format!("{function}.log"));
    let mut samples = Vec::with_capacity(COLD_STARTS);
    for _ in 0..COLD_STARTS {
        let (process, ready) =
            LambdaProcess::start(&binary, env, &log, Duration::from_secs(30)).await?;
        samples.push(ready.as_secs_f64() * 1000.0);
        process.stop();
    }
    Ok(median(&samples).map(|ms| (ms * 10.0).round() / 10.0))
}

/// The metrics function's peak memory on a batch at the 6 MB payload limit.
async fn peak_memory(
    host_dir: &Path,
    env: &[(String, String)],
    out_dir: &Path,
    events: &[ListingEvent],
    region: &str,
    report: &mut Report,
) -> Result<()> {
    progress("metrics: peak memory on a batch at the 6 MB payload limit");
    let binary = host_dir.join("metrics");
    let log = out_dir.join("metrics.log");
    let (process, _) = LambdaProcess::start(&binary, env, &log, Duration::from_secs(30)).await?;
    let (event, records) = kinesis_event(events, region, MAX_PAYLOAD_BYTES)?;
    let event_bytes = event.to_string().len();
    process.allow_events_up_to(event_bytes);
    let rss_before = process.peak_rss_bytes();
    let invocation = process.invoke(event, Duration::from_secs(600)).await?;
    let peak = process.peak_rss_bytes();
    process.stop();
    let response = invocation
        .result
        .map_err(|e| anyhow::anyhow!("the metrics function failed the batch: {e}"))?;
    let failures = response["batchItemFailures"].as_array().map_or(0, Vec::len);
    if failures > 0 {
        bail!("the metrics function reported batch item failures: {response}");
    }
    let mb = |bytes: Option<u64>| bytes.map(|b| (b as f64 / 1_048_576.0 * 10.0).round() / 10.0);
    report.set("metrics_peak_rss_mb", json!(mb(peak)));
    report.set("metrics_idle_rss_mb", json!(mb(rss_before)));
    report.set("metrics_batch_records", json!(records));
    report.set("metrics_batch_event_bytes", json!(event_bytes));
    report.set(
        "metrics_batch_ms_local",
        json!((invocation.duration.as_secs_f64() * 1000.0).round()),
    );
    Ok(())
}

/// The simulator's key in the stack's listing-API secret, as `realty secrets set` writes it.
async fn listing_api_keys(aws: &LocalAws, secret: &str) -> Result<()> {
    aws_sdk_secretsmanager::Client::new(&aws.sdk)
        .put_secret_value()
        .secret_id(secret)
        .secret_string(r#"{"zillow":"local"}"#)
        .send()
        .await
        .context("writing the listing-API secret")?;
    Ok(())
}

/// The arm64 bootstraps' sizes, by function.
fn binary_sizes(lambda_dir: &Path, functions: &[&str]) -> Result<serde_json::Map<String, Value>> {
    let mut sizes = serde_json::Map::new();
    for function in functions {
        let path = lambda_dir.join(function).join("bootstrap");
        let bytes = std::fs::metadata(&path)
            .with_context(|| {
                format!(
                    "{} is missing: build the arm64 bootstraps with `make build`",
                    path.display()
                )
            })?
            .len();
        sizes.insert((*function).to_owned(), json!(bytes));
    }
    Ok(sizes)
}

/// The first of `events` as one Kinesis trigger event of shard 0: as many as fit in
/// `max_bytes` of JSON (and in a trigger's batch), with their number.
fn kinesis_event(
    events: &[ListingEvent],
    region: &str,
    max_bytes: usize,
) -> Result<(Value, usize)> {
    let stream_arn = format!("arn:aws:kinesis:{region}:000000000000:stream/bench");
    // `{"Records":[` and `]}`, then each record and the comma before all but the first.
    let mut bytes = r#"{"Records":[]}"#.len();
    let mut records = Vec::new();
    for (i, e) in events.iter().take(MAX_BATCH_RECORDS).enumerate() {
        let data = e.encode().context("encoding an event")?;
        let sequence = realty_bench_compute::sequence_number(i);
        let record = json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": e.partition_key(),
                    "sequenceNumber": sequence,
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                    "approximateArrivalTimestamp": e.observed_at.timestamp_millis() as f64 / 1000.0,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{sequence}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::000000000000:role/bench",
                "awsRegion": region,
                "eventSourceARN": stream_arn,
        });
        let record_bytes = record.to_string().len() + usize::from(i > 0);
        if bytes + record_bytes > max_bytes {
            break;
        }
        bytes += record_bytes;
        records.push(record);
    }
    let count = records.len();
    Ok((json!({ "Records": records }), count))
}

/// Waits until this machine's CPUs are at least `share` idle over [`QUIET_WINDOW`], or
/// `limit` has passed; returns the idle share of the last window (`None` without
/// `/proc/stat`).
async fn wait_for_idle_cpus(share: f64, limit: Duration) -> Option<f64> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut before = cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)?;
    loop {
        tokio::time::sleep(QUIET_WINDOW).await;
        let now = cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)?;
        let total = now.0.saturating_sub(before.0);
        let idle = now.1.saturating_sub(before.1);
        let idle_share = if total == 0 {
            1.0
        } else {
            idle as f64 / total as f64
        };
        if idle_share >= share || tokio::time::Instant::now() >= deadline {
            return Some(idle_share);
        }
        before = now;
    }
}

/// (all, idle) CPU time in ticks, from `/proc/stat`'s first line: "cpu user nice system idle
/// iowait irq softirq steal ..."; idle counts `idle` and `iowait`.
fn cpu_times(proc_stat: &str) -> Option<(u64, u64)> {
    let line = proc_stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let ticks: Vec<u64> = fields
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((ticks.iter().sum(), idle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_batch_is_as_many_records_as_fit_in_the_payload_limit() {
        let events = super::super::events::generate(200, 7);
        let limit = 50_000;
        let (event, n) = kinesis_event(&events, "us-east-1", limit).expect("an event");
        assert!(event.to_string().len() <= limit);
        assert!(n > 0 && n < events.len(), "{n} records");
        assert_eq!(event["Records"].as_array().map(Vec::len), Some(n));
        let (one_more, _) =
            kinesis_event(&events[..=n], "us-east-1", usize::MAX).expect("an event");
        assert!(one_more.to_string().len() > limit);
    }

    #[test]
    fn cpu_times_count_idle_and_iowait_of_all_cpus() {
        let stat = "cpu  100 5 50 800 20 3 2 10 0 0\ncpu0 50 2 25 400 10 1 1 5 0 0\n";
        assert_eq!(cpu_times(stat), Some((990, 820)));
        assert_eq!(cpu_times("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(cpu_times("cpu 1 2 x 4 5 6 7 8\n"), None);
        assert_eq!(cpu_times("cpu 1 2 3\n"), None);
    }
}
