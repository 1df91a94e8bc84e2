//! The independent reader of the lake's Iceberg tables: pyiceberg (pinned in
//! tests/lake/requirements.txt, in a virtualenv of its own) with its Glue catalog, run through
//! tests/lake/read_iceberg.py. No code of ours reads the tables, so a test that reads back
//! what the curator wrote proves the tables are Iceberg as other engines see it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

/// The reader's pinned requirements and script, relative to the project root.
const REQUIREMENTS: &str = "tests/lake/requirements.txt";
const SCRIPT: &str = "tests/lake/read_iceberg.py";
/// Its virtualenv, relative to the project root.
const VENV: &str = "target/realty/venv-lake";
/// Where each run's input and output are kept, for a post-mortem.
const RUNS: &str = "target/realty/lake-reader";
/// A read of a test-sized table takes seconds; past this the catalog or S3 hangs.
const RUN_DEADLINE: Duration = Duration::from_secs(180);

/// Where the catalog is: the Glue endpoint (`None` for AWS itself), the S3 endpoint when it
/// is not the Glue one, the region and the Glue database.
#[derive(Debug, Clone)]
pub struct LakeCatalog {
    pub glue_endpoint: Option<String>,
    pub s3_endpoint: Option<String>,
    pub region: String,
    pub database: String,
}

/// One column of a table's current schema.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct IcebergField {
    pub id: i64,
    pub name: String,
    /// pyiceberg's name of the type: `string`, `long`, `timestamptz`, `decimal(9, 2)`...
    #[serde(rename = "type")]
    pub kind: String,
    pub required: bool,
}

/// One snapshot (commit) of a table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct IcebergSnapshot {
    pub snapshot_id: i64,
    pub parent_snapshot_id: Option<i64>,
    pub timestamp_ms: i64,
    /// `append`, `overwrite`, `replace` or `delete`.
    pub operation: Option<String>,
    /// The snapshot summary (Iceberg's own keys and the writer's).
    pub summary: std::collections::BTreeMap<String, String>,
}

/// What the reader saw: the schema, every snapshot (oldest first) and the rows of the
/// snapshot read (the current one unless one was asked for). Timestamps come as ISO-8601
/// strings, longs and ints as numbers, null columns as null.
#[derive(Debug, Clone, Deserialize)]
pub struct IcebergRead {
    pub metadata_location: String,
    pub schema: Vec<IcebergField>,
    pub snapshots: Vec<IcebergSnapshot>,
    pub current_snapshot_id: Option<i64>,
    pub snapshot_id: Option<i64>,
    pub rows: Vec<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct Written {
    snapshot_id: i64,
}

/// Makes sure the reader's virtualenv holds its pinned packages (first use installs them).
pub async fn ensure_reader(project_root: &Path) -> Result<PathBuf, String> {
    let root = project_root.to_path_buf();
    tokio::task::spawn_blocking(move || {
        realty_infra::emulator::ensure_separate_venv(
            &root,
            &root.join(VENV),
            &root.join(REQUIREMENTS),
            "pyiceberg, the lake's independent reader (first use)",
        )
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Reads `table` of the catalog's database through pyiceberg: as of `snapshot_id`, or its
/// current snapshot.
pub async fn read_iceberg(
    project_root: &Path,
    catalog: &LakeCatalog,
    table: &str,
    snapshot_id: Option<i64>,
) -> Result<IcebergRead, String> {
    let mut args = vec!["read".to_owned()];
    if let Some(id) = snapshot_id {
        args.extend(["--snapshot-id".to_owned(), id.to_string()]);
    }
    let out = run(project_root, catalog, table, &args).await?;
    serde_json::from_str(&out).map_err(|e| format!("the reader's output ({e}): {out}"))
}

/// Appends `rows` (objects with `event_id`, `price_minor` (integer or null) and
/// `observed_at` (ISO-8601 with offset)) to a small table pyiceberg creates at `location` if
/// it is missing, partitioned by day of `observed_at`, as one snapshot; returns its id.
pub async fn write_sample_iceberg(
    project_root: &Path,
    catalog: &LakeCatalog,
    table: &str,
    location: &str,
    rows: &[Value],
) -> Result<i64, String> {
    let mut input = String::new();
    for row in rows {
        input.push_str(&row.to_string());
        input.push('\n');
    }
    let dir = project_root.join(RUNS);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let rows_path = dir.join(format!("{}.rows.jsonl", run_name(table, "write")));
    std::fs::write(&rows_path, input)
        .map_err(|e| format!("writing {}: {e}", rows_path.display()))?;
    let args = [
        "write".to_owned(),
        "--location".to_owned(),
        location.to_owned(),
        "--rows".to_owned(),
        rows_path.display().to_string(),
    ];
    let out = run(project_root, catalog, table, &args).await?;
    serde_json::from_str::<Written>(&out)
        .map(|w| w.snapshot_id)
        .map_err(|e| format!("the writer's output ({e}): {out}"))
}

/// A name no other run of the script in this process or another uses.
fn run_name(table: &str, mode: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{table}-{mode}-{}-{n}", std::process::id())
}

async fn run(
    project_root: &Path,
    catalog: &LakeCatalog,
    table: &str,
    args: &[String],
) -> Result<String, String> {
    let venv = ensure_reader(project_root).await?;
    let mut cmd = tokio::process::Command::new(venv.join("bin/python"));
    cmd.arg(project_root.join(SCRIPT))
        .args(args)
        .args(["--region", &catalog.region])
        .args(["--database", &catalog.database])
        .args(["--table", table]);
    if let Some(endpoint) = &catalog.glue_endpoint {
        cmd.args(["--endpoint", endpoint]);
    }
    if let Some(endpoint) = &catalog.s3_endpoint {
        cmd.args(["--s3-endpoint", endpoint]);
    }
    let name = run_name(table, &args[0]);
    let out = crate::run_bounded(cmd, RUN_DEADLINE, &project_root.join(RUNS), &name).await?;
    if !out.status.success() {
        return Err(format!(
            "{SCRIPT} {} failed ({}): {}",
            args[0],
            out.status,
            crate::tail(&project_root.join(RUNS).join(format!("{name}.stderr")), 30)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{SCRIPT}: output not UTF-8: {e}"))
}
