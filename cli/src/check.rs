//! `realty check`: the lake's data-quality checks (docs/lake.md), as the curator runs them
//! after each run, against the local stack (or a deployed one): a readable summary, the
//! report in the bucket, and a non-zero exit naming the failed checks.

use anyhow::{Result, bail};
use realty_lake::curate::Curator;

use crate::target;

pub async fn run(stack: Option<&str>, json: bool) -> Result<()> {
    let target = target::resolve(stack).await?;
    let curator = Curator::new(&target.sdk, &target.resources).await?;
    let report = Box::pin(curator.check(chrono::Utc::now())).await?;
    curator.publish(&report).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("lake of {}", target.description);
        for (table, rows) in &report.rows {
            println!("  {table:<16} {rows:>9} rows");
        }
        for check in &report.checks {
            let mark = if check.passed { "pass" } else { "FAIL" };
            println!("  {mark}  {}", check.name);
            if !check.passed {
                println!("        {} failing, e.g.:", check.failures);
                for example in &check.examples {
                    println!("        - {example}");
                }
            }
        }
    }
    let failed = report.failed();
    if !failed.is_empty() {
        bail!("data-quality checks failed: {}", failed.join(", "));
    }
    Ok(())
}
