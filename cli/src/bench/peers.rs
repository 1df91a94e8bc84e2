//! The peers: DuckDB and PySpark (local mode) computing our per-market figures over the
//! same events as JSON lines (`bench/peers/`), installed into `.venv` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use realty_infra::emulator;
use serde::{Deserialize, Serialize};

use super::compute::MarketFigures;

/// A peer engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    DuckDb,
    Spark,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Self::DuckDb => "duckdb",
            Self::Spark => "spark",
        }
    }

    fn script(self) -> &'static str {
        match self {
            Self::DuckDb => "bench/peers/duckdb_peer.py",
            Self::Spark => "bench/peers/spark_peer.py",
        }
    }
}

/// What a peer script prints (its contract: bench/peers/peer_common.py).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRun {
    pub engine: String,
    pub engine_version: String,
    pub threads: u32,
    pub events: u64,
    pub startup_s: f64,
    pub runs_s: Vec<f64>,
    pub markets: Vec<MarketFigures>,
}

impl PeerRun {
    /// Events per second of the median run.
    pub fn events_per_s(&self) -> Option<f64> {
        super::median(&self.runs_s).map(|s| self.events as f64 / s)
    }
}

/// Installs the peers into the project's `.venv` (once) and returns its Python.
pub fn ensure_installed(root: &Path) -> Result<PathBuf> {
    let venv = emulator::ensure_extra_venv(
        root,
        &root.join("bench/peers/requirements.txt"),
        ".realty-peers.txt",
        "the benchmark peers, DuckDB and PySpark (first use, a few minutes)",
    )?;
    Ok(venv.join("bin/python"))
}

/// Runs `peer` over `events_path` with `threads` (0: every core), `repeat` timed runs.
pub fn run(
    root: &Path,
    python: &Path,
    peer: Peer,
    events_path: &Path,
    threads: u32,
    repeat: u32,
) -> Result<PeerRun> {
    let output = Command::new(python)
        .arg(root.join(peer.script()))
        .arg("--events")
        .arg(events_path)
        .args([
            "--threads",
            &threads.to_string(),
            "--repeat",
            &repeat.to_string(),
        ])
        .current_dir(root)
        .output()
        .with_context(|| format!("running the {} peer", peer.name()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        bail!(
            "the {} peer failed ({}):\n{}",
            peer.name(),
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let run: PeerRun = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "the {} peer printed something other than its JSON result: {}",
            peer.name(),
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    if run.runs_s.is_empty() {
        bail!("the {} peer reported no timed run", peer.name());
    }
    Ok(run)
}
