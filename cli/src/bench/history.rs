//! A run's headline figures as one row of `docs/benchmarks/history.csv` (or the file given
//! with `--history`): the past runs, one a row, that docs/performance.md's latest results are
//! the last of. A figure the run did not measure (a part left out) is an empty cell.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// The columns: a name, and where in the run's figures (`latest.json`) its value is. An
/// object there (AWS calls by API) is summed.
const COLUMNS: &[(&str, &str)] = &[
    ("measured_at", "/measured_at"),
    ("commit", "/build/commit"),
    ("work_tree_changed", "/build/work_tree_changed"),
    ("cpu", "/machine/cpu"),
    ("cores", "/machine/cores"),
    ("events", "/events"),
    ("compute_events_per_s", "/metrics_compute_events_per_s"),
    ("ours_to_duckdb", "/vs_duckdb"),
    ("ours_to_spark", "/vs_spark"),
    ("kernel_to_duckdb", "/kernel_vs_duckdb"),
    ("kernel_to_spark", "/kernel_vs_spark"),
    (
        "kernel_instructions_per_event",
        "/kernel_instructions_per_event",
    ),
    (
        "workflow_instructions_per_event",
        "/workflow_instructions_per_event",
    ),
    ("compute_to_fastest_parse", "/compute_to_parse_ratio"),
    (
        "e2e_to_ceiling_localstack",
        "/e2e/localstack/e2e_to_ceiling_ratio",
    ),
    (
        "alert_p50_ms_localstack",
        "/e2e/localstack/e2e_alert_latency_ms_p50",
    ),
    (
        "alert_p99_ms_localstack",
        "/e2e/localstack/e2e_alert_latency_ms_p99",
    ),
    (
        "aws_calls_per_1000_localstack",
        "/e2e/localstack/aws_calls_per_1000_events",
    ),
    (
        "aws_calls_per_1000_moto",
        "/e2e/moto/aws_calls_per_1000_events",
    ),
    (
        "wru_per_event_regional",
        "/dynamodb_writes/regional/0/write_units_per_event",
    ),
    (
        "wru_per_event_national",
        "/dynamodb_writes/national/0/write_units_per_event",
    ),
    ("cold_start_ms_alerts", "/cold_start_ms/alerts"),
    ("cold_start_ms_metrics", "/cold_start_ms/metrics"),
    ("cold_start_ms_poller", "/cold_start_ms/poller"),
    ("metrics_peak_rss_mb", "/metrics_peak_rss_mb"),
    ("binary_bytes_alerts", "/lambda_binary_bytes/alerts"),
    ("binary_bytes_metrics", "/lambda_binary_bytes/metrics"),
    ("binary_bytes_poller", "/lambda_binary_bytes/poller"),
    (
        "journal_and_store_us_per_event",
        "/journal_and_store_us_per_event",
    ),
    (
        "realistic_aws_calls_per_1000",
        "/realistic/aws_calls_per_1000_events",
    ),
    (
        "realistic_wru_per_event_at_10k",
        "/realistic/write_units_per_event_at_10k",
    ),
];

fn header() -> Vec<&'static str> {
    COLUMNS.iter().map(|(name, _)| *name).collect()
}

fn cell(figures: &Value, pointer: &str) -> String {
    match figures.pointer(pointer) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(by)) => {
            let total: f64 = by.values().filter_map(Value::as_f64).sum();
            format!("{:.1}", total)
        }
        Some(other) => other.to_string(),
    }
}

/// Appends the run's row to `path`, writing the header first when the file is new. A file
/// whose header differs (columns added since) is refused rather than misaligned.
pub(super) fn append(path: &Path, figures: &Value) -> Result<()> {
    let exists = path.exists() && std::fs::metadata(path)?.len() > 0;
    if exists {
        let mut reader =
            csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
        let found: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
        if found != header() {
            bail!(
                "{} has other columns than this bench writes ({}): move it aside or add the columns",
                path.display(),
                header().join(",")
            );
        }
    } else if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut out = csv::Writer::from_writer(file);
    if !exists {
        out.write_record(header())?;
    }
    out.write_record(COLUMNS.iter().map(|(_, pointer)| cell(figures, pointer)))?;
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    let mut file = out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    file.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_run_appends_one_row_under_one_header() {
        let dir = std::env::temp_dir().join(format!("realty-history-{}", std::process::id()));
        let path = dir.join("history.csv");
        let _ = std::fs::remove_dir_all(&dir);
        let figures = json!({
            "measured_at": "2026-11-29T00:00:00Z",
            "build": {"commit": "abc1234", "work_tree_changed": false},
            "machine": {"cpu": "AMD EPYC, 2 cores", "cores": 2},
            "metrics_compute_events_per_s": 27004.0,
            "e2e": {"localstack": {"aws_calls_per_1000_events": {"A": 100.5, "B": 100.4}}},
            "dynamodb_writes": {"regional": [{"write_units_per_event": 1.81}]},
        });
        append(&path, &figures).expect("the first row");
        append(&path, &figures).expect("the second row");
        let mut reader = csv::Reader::from_path(&path).expect("the file");
        assert_eq!(reader.headers().expect("a header").len(), COLUMNS.len());
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
        assert_eq!(rows.len(), 2);
        let at = |name: &str| COLUMNS.iter().position(|(n, _)| *n == name).expect(name);
        assert_eq!(&rows[0][at("commit")], "abc1234");
        assert_eq!(&rows[0][at("cpu")], "AMD EPYC, 2 cores");
        assert_eq!(&rows[0][at("compute_events_per_s")], "27004.0");
        assert_eq!(&rows[0][at("aws_calls_per_1000_localstack")], "200.9");
        assert_eq!(&rows[0][at("wru_per_event_regional")], "1.81");
        assert_eq!(
            &rows[0][at("ours_to_duckdb")],
            "",
            "a part not run is an empty cell"
        );

        std::fs::write(&path, "measured_at,commit\n").expect("an older file");
        assert!(
            append(&path, &figures).is_err(),
            "a file of other columns is refused"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_repositorys_history_has_this_benchs_columns() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks/history.csv");
        let mut reader = csv::Reader::from_path(&path).expect("docs/benchmarks/history.csv");
        let found: Vec<String> = reader
            .headers()
            .expect("a header")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(found, header());
        assert!(
            reader
                .records()
                .all(|r| r.is_ok_and(|r| r.len() == COLUMNS.len()))
        );
    }
}
