//! `realty curate`: one run of the lake curator, in-process, against the local stack (or a
//! deployed one).

use anyhow::Result;
use realty_lake::curate::Curator;

use crate::target;

pub async fn run(stack: Option<&str>) -> Result<()> {
    let target = target::resolve(stack).await?;
    let curator = Curator::new(&target.sdk, &target.resources).await?;
    let report = Box::pin(curator.run(chrono::Utc::now())).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
