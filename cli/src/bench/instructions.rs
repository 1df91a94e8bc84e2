//! Instructions per event of the metrics workflow and of its kernel, counted by callgrind on
//! the timed stream only: the compute's binary run under `valgrind --tool=callgrind` over the
//! first N and 2N events of that stream, one computation alone (`--only`), so what the
//! difference leaves is the cost of N more events, start-up and reading the file cancelled
//! out (docs/performance.md). Instructions, unlike seconds, come out the same whatever else
//! the machine is doing, so they show changes smaller than its swing.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// Events of the smaller run (the larger has twice as many).
pub const EVENTS: usize = 10_000;

/// Instructions per event of each computation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerEvent {
    pub workflow: f64,
    pub kernel: f64,
}

/// Whether callgrind can run here (valgrind is on the machine).
pub fn available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Counts both computations over `smaller` (N events) and `larger` (2N), JSON-lines files of
/// the timed stream's first events.
pub fn measure(binary: &Path, smaller: &Path, larger: &Path, n: usize) -> Result<PerEvent> {
    let per_event = |only: &str| -> Result<f64> {
        let small = collected(binary, smaller, only)?;
        let large = collected(binary, larger, only)?;
        if large <= small {
            bail!(
                "callgrind counted {large} instructions for 2N events and {small} for N ({only})"
            );
        }
        Ok((large - small) as f64 / n as f64)
    };
    Ok(PerEvent {
        workflow: per_event("workflow")?,
        kernel: per_event("kernel")?,
    })
}

/// The instructions callgrind collected over one run of `only`.
fn collected(binary: &Path, events: &Path, only: &str) -> Result<u64> {
    let output = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(binary)
        .arg("--events")
        .arg(events)
        .args([
            "--first-arrival",
            &super::events::start_time().to_rfc3339(),
            "--only",
            only,
        ])
        .output()
        .context("running valgrind")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "callgrind over {} failed ({}): {}",
            binary.display(),
            output.status,
            stderr.trim()
        );
    }
    collected_of(&stderr).with_context(|| {
        format!(
            "no \"Collected\" line in callgrind's summary: {}",
            stderr.trim()
        )
    })
}

/// The count of callgrind's `==PID== Collected : N` summary line.
fn collected_of(summary: &str) -> Option<u64> {
    summary.lines().find_map(|line| {
        let (_, rest) = line.split_once("Collected :")?;
        rest.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_read_from_callgrinds_summary() {
        let summary = "==17867== Events    : Ir\n==17867== Collected : 126557\n==17867== \n==17867== I   refs:      126,557\n";
        assert_eq!(collected_of(summary), Some(126_557));
        assert_eq!(collected_of("==1== I   refs: 12\n"), None);
    }
}
