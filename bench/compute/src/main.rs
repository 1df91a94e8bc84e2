//! `realty-bench-compute`: times the metrics workflow, its kernel and the parse-only
//! baselines over a JSON-lines file of events (one a line, as the poller publishes them) and
//! prints the seconds of each run as one JSON object ([`Timings`]). `realty bench` runs it,
//! and, under callgrind, with `--only` for the instructions of one of them alone.

use std::io::BufRead as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use realty_bench_compute::{BATCH_RECORDS, Timings, records, run_kernel, run_metrics};

/// One computation run once, untimed.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Only {
    Workflow,
    Kernel,
}

/// Times the metrics compute over a file of events.
#[derive(Debug, Parser)]
struct Args {
    /// JSON-lines file of listing events, in stream order.
    #[arg(long)]
    events: PathBuf,
    /// When the first record reached Kinesis (RFC 3339).
    #[arg(long)]
    first_arrival: DateTime<Utc>,
    /// Milliseconds between records' arrivals.
    #[arg(long, default_value_t = 1_000)]
    interval_ms: i64,
    /// Timed rounds (each: the workflow, the kernel, every parser).
    #[arg(long, default_value_t = 5)]
    repeat: u32,
    /// Run only this, once, and print nothing (for an instruction count of it).
    #[arg(long, value_enum)]
    only: Option<Only>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.repeat == 0 || args.interval_ms < 0 {
        bail!("--repeat must be at least 1 and --interval-ms not negative");
    }
    let file = std::fs::File::open(&args.events)
        .with_context(|| format!("opening {}", args.events.display()))?;
    let mut encoded = Vec::new();
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.with_context(|| format!("reading {}", args.events.display()))?;
        if !line.is_empty() {
            encoded.push(line);
        }
    }
    let records = records(
        &encoded,
        args.first_arrival,
        chrono::Duration::milliseconds(args.interval_ms),
    );
    match args.only {
        Some(Only::Workflow) => {
            run_metrics(&records, BATCH_RECORDS)?;
        }
        Some(Only::Kernel) => {
            run_kernel(&records, BATCH_RECORDS)?;
        }
        None => {
            let timings = Timings::measure(&records, args.repeat)?;
            println!("{}", serde_json::to_string(&timings)?);
        }
    }
    Ok(())
}
