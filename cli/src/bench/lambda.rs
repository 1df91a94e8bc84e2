//! The Lambda functions as deployed: binary sizes (arm64, what `sam deploy` uploads), and the
//! real bootstraps, built for this machine with the same release profile, run against a
//! local Lambda Runtime API ([`realty_infra::lambda_api`]) and the local AWS: cold start
//! (process start to the first request for an event: the Init phase) and the metrics
//! function's peak memory on a 10,000-record batch.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use realty_core::listing::ListingEvent;
use realty_infra::lambda_api::LambdaProcess;
use serde_json::{Value, json};

use super::{LocalAws, Report, median, progress};

/// The functions, by binary name.
pub const FUNCTIONS: [&str; 3] = ["poller", "metrics", "alerts"];

/// Cold starts measured per function (the median is reported).
const COLD_STARTS: usize = 10;

/// Records in the memory-measuring batch (the largest batch a Kinesis trigger hands over).
const MEMORY_BATCH: usize = 10_000;

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
    let mut sizes = serde_json::Map::new();
    for function in FUNCTIONS {
        let path = lambda_dir.join(function).join("bootstrap");
        let bytes = std::fs::metadata(&path)
            .with_context(|| {
                format!(
                    "{} is missing: build the arm64 bootstraps with `make build`",
                    path.display()
                )
            })?
            .len();
        sizes.insert(function.to_owned(), json!(bytes));
    }
    report.set("lambda_binary_bytes", sizes.into());

    progress("local AWS: provisioning the stack the bootstraps run against");
    let (stack, resources) = aws.provision("lambda").await?;
    listing_api_keys(aws, &resources.api_key_secret).await?;
    let mut env: Vec<(String, String)> = resources
        .to_env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.extend(
        [
            ("AWS_ENDPOINT_URL", aws.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", stack.region.as_str()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", LOCAL_MEMORY_MB),
            ("RUST_LOG", "info"),
            ("REALTY_SOURCES", "zillow"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
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

    let mut cold_starts = serde_json::Map::new();
    for function in FUNCTIONS {
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
                LambdaProcess::start(&binary, &env, &log, Duration::from_secs(30)).await?;
            samples.push(ready.as_secs_f64() * 1000.0);
            process.stop();
        }
        cold_starts.insert(
            function.to_owned(),
            json!(median(&samples).map(|ms| (ms * 10.0).round() / 10.0)),
        );
    }
    report.set("cold_start_ms", cold_starts.into());
    report.set(
        "cold_start_build",
        json!(format!(
            "{} release, same profile as the arm64 build",
            std::env::consts::ARCH
        )),
    );

    progress(&format!(
        "metrics: peak memory on a {MEMORY_BATCH}-record batch"
    ));
    let binary = host_dir.join("metrics");
    let log = out_dir.join("metrics.log");
    let (process, _) = LambdaProcess::start(&binary, &env, &log, Duration::from_secs(30)).await?;
    let batch = &events[..MEMORY_BATCH.min(events.len())];
    let event = kinesis_event(batch, &stack.region)?;
    let event_bytes = event.to_string().len();
    // Our events are larger than the 600 bytes that fit 10,000 in Lambda's 6 MB payload:
    // Lambda would split this batch, so its peak is an upper bound of a real invocation's.
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
    report.set("metrics_batch_records", json!(batch.len()));
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

/// `events` as one Kinesis trigger event of shard 0.
fn kinesis_event(events: &[ListingEvent], region: &str) -> Result<Value> {
    let stream_arn = format!("arn:aws:kinesis:{region}:000000000000:stream/bench");
    let records = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let data = e.encode().context("encoding an event")?;
            let sequence = super::compute::sequence_number(i);
            Ok(json!({
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
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({ "Records": records }))
}
