//! `realty curate`: one run of the lake curator, in-process, against the local stack (or a
//! deployed one).

use anyhow::{Result, bail};
use realty_lake::curate::Curator;

use crate::target;

/// Runs a command makes at most: each takes a bounded share of a backlog
/// (`realty_lake::curate::RunLimits`), this many a few thousand objects.
const MAX_RUNS: usize = 100;

/// Runs the curator until no delivered object is left unread, and prints each run's report
/// (a JSON array). A run alone stops at its commits or its time with a backlog, as a
/// scheduled run does; this command brings the tables up to date.
pub async fn run(stack: Option<&str>) -> Result<()> {
    let target = target::resolve(stack).await?;
    let curator = Curator::new(&target.sdk, &target.resources).await?;
    let mut reports = Vec::new();
    loop {
        let report = Box::pin(curator.run(chrono::Utc::now())).await?;
        let left = report.objects_left;
        reports.push(report);
        if left == 0 || reports.len() >= MAX_RUNS {
            break;
        }
        eprintln!("{left} objects left: running again");
    }
    println!("{}", serde_json::to_string_pretty(&reports)?);
    match reports.last().map(|r| r.objects_left) {
        Some(left) if left > 0 => {
            bail!("{left} objects still left after {MAX_RUNS} runs: run `realty curate` again")
        }
        _ => Ok(()),
    }
}
