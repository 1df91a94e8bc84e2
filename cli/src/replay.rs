//! `realty replay FILE|s3://bucket/key [--rate N/s] [--stack NAME]`: an export (CSV or JSON
//! lines, such as `realty normalize` prints) sent through the poller's change detection and
//! publishing (`realty_poller::replay`), into the local stack's stream or a deployed one.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use realty_aws::adapters::kinesis::KinesisPublisher;
use realty_aws::adapters::poll_state::S3PollStateStore;
use realty_aws::adapters::retry::RetryPolicy;
use realty_poller::replay::{
    MAX_REPLAY_BYTES, ReplayOptions, ReplayProgress, ReplayReport, replay,
};

use crate::target::{self, Target};

/// Rejects printed in the summary (the report keeps more).
const REJECTS_SHOWN: usize = 10;

#[derive(Args)]
pub struct ReplayArgs {
    /// The export: a local file or `s3://bucket/key`.
    input: String,
    /// Most events published a second (`100/s` or `100`); as fast as the stream takes them
    /// without it.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// A stack deployed in AWS instead of the local one.
    #[arg(long)]
    stack: Option<String>,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().strip_suffix("/s").unwrap_or(text.trim());
    match number.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate: events a second, such as 100/s"
        )),
    }
}

pub async fn run(args: ReplayArgs) -> Result<()> {
    let target = target::resolve(args.stack.as_deref()).await?;
    let bytes = match args.input.strip_prefix("s3://") {
        Some(location) => read_s3(&target, location).await?,
        None => read_local(Path::new(&args.input))?,
    };
    let publisher = KinesisPublisher {
        client: aws_sdk_kinesis::Client::new(&target.sdk),
        stream: target.resources.listing_events_stream.clone(),
        retry: RetryPolicy::default(),
    };
    let states = S3PollStateStore {
        client: realty_aws::sdk::s3_client(&target.sdk),
        bucket: target.resources.data_lake_bucket.clone(),
    };
    let options = ReplayOptions {
        rate_per_second: args.rate,
        started_at: chrono::Utc::now(),
        run_budget: None,
    };
    let bar = Bar(ProgressBar::new(0));
    bar.0.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = replay(&bytes, &publisher, &states, options, &bar)
        .await
        .with_context(|| format!("{} cannot be replayed", args.input))?;
    bar.0.finish_and_clear();
    print_summary(&args.input, &target, &report);
    if report.rows > 0 && report.rejected == report.rows {
        bail!("every row of {} was rejected", args.input);
    }
    if !report.finished() {
        bail!(
            "part of {} was not sent ({} events unpublished, {} markets failed, {} written over by a poll); replaying it again sends only what is missing",
            args.input,
            report.unpublished,
            report.failed_markets.len(),
            report.state_conflicts
        );
    }
    Ok(())
}

struct Bar(ProgressBar);

impl ReplayProgress for Bar {
    fn start(&self, rows: usize) {
        self.0.set_length(rows as u64);
    }

    fn advance(&self, rows: usize) {
        self.0.inc(rows as u64);
    }
}

fn print_summary(input: &str, target: &Target, r: &ReplayReport) {
    println!(
        "replayed {input} into {}: {} rows, {} rejected, {} published ({} new, {} changed), {} unchanged, {} older than the stream's (skipped), {} markets",
        target.description,
        r.rows,
        r.rejected,
        r.published,
        r.new,
        r.changed,
        r.unchanged,
        r.stale,
        r.markets
    );
    for reject in r.rejects.iter().take(REJECTS_SHOWN) {
        println!("rejected {reject}");
    }
    if r.rejected > REJECTS_SHOWN {
        println!("... and {} more rejected rows", r.rejected - REJECTS_SHOWN);
    }
    for failure in &r.failed_markets {
        println!("not sent {}: {}", failure.key, failure.error);
    }
}

fn too_large(input: &str, bytes: u64) -> anyhow::Error {
    anyhow::anyhow!(
        "{input} is {bytes} bytes, over the {MAX_REPLAY_BYTES}-byte limit of a replay; split it"
    )
}

fn read_local(path: &Path) -> Result<Vec<u8>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    // Bounded even when the length is not known up front (a pipe).
    file.take(MAX_REPLAY_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_REPLAY_BYTES {
        return Err(too_large(&path.display().to_string(), bytes.len() as u64));
    }
    Ok(bytes)
}

async fn read_s3(target: &Target, location: &str) -> Result<Vec<u8>> {
    let input = format!("s3://{location}");
    let Some((bucket, key)) = location
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
    else {
        bail!("{input} is not an S3 object: s3://bucket/key");
    };
    let client = realty_aws::sdk::s3_client(&target.sdk);
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(realty_aws::sdk::error_line(&e)))
        .with_context(|| format!("cannot read {input}"))?;
    if let Some(length) = object.content_length().and_then(|n| u64::try_from(n).ok())
        && length > MAX_REPLAY_BYTES
    {
        return Err(too_large(&input, length));
    }
    let mut body = object.body;
    let mut bytes = Vec::new();
    while let Some(chunk) = body
        .try_next()
        .await
        .with_context(|| format!("cannot read {input}"))?
    {
        if (bytes.len() + chunk.len()) as u64 > MAX_REPLAY_BYTES {
            return Err(too_large(&input, (bytes.len() + chunk.len()) as u64));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn a_rate_is_events_a_second() {
        assert_eq!(parse_rate("100/s"), Ok(100.0));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["0", "-3/s", "fast", "NaN", "100/m"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
