//! The figures of a run as they are measured, and the machine they were measured on.

use chrono::Utc;
use serde_json::{Value, json};

use super::BenchArgs;

/// The figures of a run, in the order they were measured.
pub(super) struct Report {
    pub(super) figures: serde_json::Map<String, Value>,
}

impl Report {
    pub(super) fn new(args: &BenchArgs) -> Self {
        let mut figures = serde_json::Map::new();
        figures.insert("measured_at".into(), json!(Utc::now().to_rfc3339()));
        figures.insert("machine".into(), machine());
        figures.insert("build".into(), build());
        figures.insert("seed".into(), json!(args.seed));
        Self { figures }
    }

    pub(super) fn set(&mut self, key: &str, value: Value) {
        self.figures.insert(key.to_owned(), value);
    }

    /// Sets `key` in the object `group` (made when it is not there yet).
    pub(super) fn set_in(&mut self, group: &str, key: &str, value: Value) {
        let entry = self
            .figures
            .entry(group.to_owned())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(serde_json::Map::new());
        }
        if let Value::Object(map) = entry {
            map.insert(key.to_owned(), value);
        }
    }
}

/// What was measured: the commit (and whether the work tree differed from it) and the
/// compiler, so a table can be tied to the code it measured.
fn build() -> Value {
    let run = |program: &str, args: &[&str]| -> Option<String> {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    json!({
        "commit": run("git", &["rev-parse", "--short", "HEAD"]),
        "work_tree_changed": run("git", &["status", "--porcelain", "--untracked-files=no"])
            .map(|changes| !changes.is_empty()),
        "rustc": run("rustc", &["--version"]),
    })
}

/// What the numbers were measured on.
fn machine() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map(|(_, name)| name.trim().to_owned());
    let mem_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| (kib / 1024.0 / 1024.0).round());
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "memory_gib": mem_gib,
        "arch": std::env::consts::ARCH,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "load_average_at_start": read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}
