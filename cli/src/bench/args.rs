//! The options of `realty bench` and the parts of a run.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use realty_infra::emulator::EmulatorKind;

/// The parts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Part {
    Compute,
    /// Instructions per event of the workflow and the kernel (callgrind, where valgrind is).
    Instructions,
    Peers,
    /// DynamoDB calls and write units per 1,000 events, regional and national, by shards.
    Writes,
    E2e,
    Lambda,
}

/// `realty bench` options.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Events for the compute and peer figures.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Events for the end-to-end run (the emulator is the slow part).
    #[arg(long, default_value_t = 20_000)]
    pub e2e_events: usize,
    /// Timed runs of each compute figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeat: u32,
    /// Timed runs of each peer in its one session (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub peer_repeat: u32,
    /// Seed of the generated events.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Parts to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub parts: Vec<Part>,
    /// Where the arm64 Lambda bootstraps are (`make build`: `target/lambda/<function>/bootstrap`).
    #[arg(long)]
    pub lambda_dir: Option<PathBuf>,
    /// The timed compute's binary (default: `target/release/realty-bench-compute`, which
    /// `make bench` builds with the functions' release profile).
    #[arg(long)]
    pub compute_bin: Option<PathBuf>,
    /// Where release bootstraps for this machine are (`cargo build --release -p poller-function
    /// -p metrics-function -p alerts-function`, as `make bench` builds them), run for the cold
    /// start and memory figures.
    #[arg(long)]
    pub host_bin_dir: Option<PathBuf>,
    /// The emulators of the end-to-end part, each run in turn and shown side by side; the
    /// Lambda part uses the first (default: REALTY_EMULATOR, else LocalStack where it can run
    /// and moto).
    #[arg(long, value_parser = crate::parse_emulator, value_delimiter = ',')]
    pub emulator: Vec<EmulatorKind>,
    /// The CSV file the run's headline figures are appended to, one row a run (default: the
    /// project's docs/benchmarks/history.csv).
    #[arg(long)]
    pub history: Option<PathBuf>,
}
