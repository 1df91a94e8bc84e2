//! `realty curate`: one run of the lake curator, in-process, against the local stack (or a
//! deployed one).

use anyhow::{Result, bail};
use realty_lake::curate::Curator;

use crate::target;

/// Runs a command makes at most: each takes a bounded share of a backlog
/// (`realty_lake::curate::RunLimits`), this many a few thousand objects.
const MAX_RUNS: usize = 100;

/// Runs the curator until no delivered object is left unread, printing each run's report as
/// it ends (one JSON object a line). A run alone stops at its commits or its time with a
/// backlog, as a scheduled run does; this command brings the tables up to date, and fails
/// when a run leaves as much as the one before (no progress) or after [`MAX_RUNS`].
pub async fn run(stack: Option<&str>) -> Result<()> {
    let target = target::resolve(stack).await?;
    let curator = Curator::new(&target.sdk, &target.resources).await?;
    let mut before: Option<usize> = None;
    for _ in 0..MAX_RUNS {
        let report = Box::pin(curator.run(chrono::Utc::now())).await?;
        println!("{}", serde_json::to_string(&report)?);
        let left = report.objects_left;
        if left == 0 {
            return Ok(());
        }
        if before.is_some_and(|b| left >= b) {
            bail!(
                "{left} objects left, no fewer than the run before: the curator makes no progress (its log says why)"
            );
        }
        eprintln!("{left} objects left: running again");
        before = Some(left);
    }
    bail!("objects still left after {MAX_RUNS} runs: run `realty curate` again")
}
