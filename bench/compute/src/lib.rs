//! The metrics function's compute without I/O, timed: the real batch workflow
//! ([`process_batch`]) over in-memory stores, its kernel ([`Kernel`]), and parse-only
//! baselines ([`parse`]) over the same records, each on one core, Kinesis-sized batches.
//!
//! `realty bench` runs these in this crate's own binary (`realty-bench-compute`), built with
//! the functions' release profile: a binary this small links with fat LTO in seconds, where
//! the CLI, with the AWS SDK, takes minutes. The CLI uses the same functions, untimed, for
//! the figures it checks.

pub mod parse;

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use realty_metrics::kernel::Kernel;
use realty_metrics::memory::MemoryStores;
pub use realty_metrics::process::InputRecord;
use realty_metrics::process::process_batch;

/// The one shard every record comes from (ordering within it is what the workflow needs).
pub const SHARD: &str = "shardId-000000000000";

/// The records of a bench run in a batch, as the timed runs take them.
pub const BATCH_RECORDS: usize = 1_000;

/// The Kinesis sequence number of the `index`th record of the benchmark's one shard.
pub fn sequence_number(index: usize) -> String {
    const FIRST_SEQUENCE: u128 = 49_590_338_271_490_256_608_559_692_538;
    (FIRST_SEQUENCE + index as u128).to_string()
}

/// The records of a stream holding `encoded` events, in order, as Kinesis numbers them, the
/// first arriving at `first_arrival` and each `interval` after the one before.
pub fn records(
    encoded: &[Vec<u8>],
    first_arrival: DateTime<Utc>,
    interval: chrono::Duration,
) -> Vec<InputRecord> {
    encoded
        .iter()
        .enumerate()
        .map(|(i, data)| InputRecord {
            sequence_number: sequence_number(i),
            data: data.clone(),
            approximate_arrival: first_arrival + interval * i as i32,
        })
        .collect()
}

/// Runs every record through the metrics workflow in batches of `batch_size` on one thread of
/// its own, starting from empty stores. Returns the time taken and the stores.
pub fn run_metrics(records: &[InputRecord], batch_size: usize) -> Result<(Duration, MemoryStores)> {
    // Its own OS thread: callable from async code, and one core whatever the caller runs on.
    std::thread::scope(|scope| {
        scope
            .spawn(|| run_metrics_on_this_thread(records, batch_size))
            .join()
            .map_err(|_| anyhow::anyhow!("the compute thread panicked"))?
    })
}

fn run_metrics_on_this_thread(
    records: &[InputRecord],
    batch_size: usize,
) -> Result<(Duration, MemoryStores)> {
    // A current-thread runtime: one core, and the in-memory ports never wait.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting a single-thread runtime")?;
    let stores = MemoryStores::default();
    let ports = stores.ports();
    let started = Instant::now();
    for batch in records.chunks(batch_size) {
        let outcome = runtime.block_on(process_batch(&ports, SHARD, batch));
        if let Some(error) = outcome.error {
            bail!("the metrics workflow failed on in-memory stores: {error}");
        }
        black_box(&outcome.stats);
    }
    let elapsed = started.elapsed();
    let rejected = stores.poison.lock().map(|p| p.len()).unwrap_or_default();
    if rejected > 0 {
        bail!("{rejected} generated events were rejected as poison");
    }
    Ok((elapsed, stores))
}

/// Runs every record through the batch's compute alone ([`Kernel`]) in batches of
/// `batch_size` on one thread of its own. Returns the time taken and the kernel.
pub fn run_kernel(records: &[InputRecord], batch_size: usize) -> Result<(Duration, Kernel)> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut kernel = Kernel::default();
                let started = Instant::now();
                let mut rejected = 0;
                for batch in records.chunks(batch_size) {
                    rejected += black_box(kernel.apply_batch(SHARD, batch)).rejected;
                }
                let elapsed = started.elapsed();
                if rejected > 0 {
                    bail!("{rejected} generated events were rejected as poison");
                }
                Ok((elapsed, kernel))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the kernel thread panicked"))?
    })
}

/// Seconds of each timed run: the workflow, the kernel and each parser over the same records.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timings {
    pub compute_s: Vec<f64>,
    pub kernel_s: Vec<f64>,
    /// By parser, in the order of [`parse::Parser::ALL`].
    pub parse_s: Vec<Vec<f64>>,
}

impl Timings {
    /// `repeat` rounds of every timed run, interleaved so that a slower spell of the machine
    /// falls on each alike.
    pub fn measure(records: &[InputRecord], repeat: u32) -> Result<Self> {
        let mut timings = Self {
            parse_s: vec![Vec::new(); parse::Parser::ALL.len()],
            ..Self::default()
        };
        for _ in 0..repeat {
            let (elapsed, _) = run_metrics(records, BATCH_RECORDS)?;
            timings.compute_s.push(elapsed.as_secs_f64());
            let (elapsed, _) = run_kernel(records, BATCH_RECORDS)?;
            timings.kernel_s.push(elapsed.as_secs_f64());
            for (times, parser) in timings.parse_s.iter_mut().zip(parse::Parser::ALL) {
                times.push(parse::run(parser, records)?.as_secs_f64());
            }
        }
        Ok(timings)
    }
}
