//! `realty reconcile [--market M] [--stack NAME] [--dry-run | --check]`: recompute market
//! inventory figures from the listing states and repair the market items that drifted
//! (`realty_core::metrics::reconcile`; the runbook is in docs/metrics.md).

use anyhow::{Result, bail};
use realty_aws::adapters::dynamodb::{DynamoListingStore, DynamoMarketStore};
use realty_aws::adapters::retry::RetryPolicy;
use realty_core::metrics::reconcile::reconcile;

use crate::target;

/// What the run may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Repair what drifted.
    Repair,
    /// Report what drifted, write nothing.
    DryRun,
    /// As `DryRun`, and fail if anything drifted (for scripts and alarms).
    Check,
}

pub async fn run(market: Option<&str>, stack: Option<&str>, mode: Mode) -> Result<()> {
    let target = target::resolve(stack).await?;
    let client = aws_sdk_dynamodb::Client::new(&target.sdk);
    let listings = DynamoListingStore {
        client: client.clone(),
        table: target.resources.listing_table.clone(),
        retry: RetryPolicy::default(),
    };
    let markets = DynamoMarketStore {
        client,
        table: target.resources.market_table.clone(),
        retry: RetryPolicy::default(),
    };
    let dry_run = mode != Mode::Repair;
    let report = reconcile(&listings, &markets, market, dry_run).await?;
    let verb = if dry_run { "would repair" } else { "repaired" };
    for repair in &report.repairs {
        println!("{verb} {}", repair.market);
        for d in &repair.drifts {
            println!("  {}: {} -> {}", d.figure, d.stored, d.recomputed);
        }
    }
    println!(
        "{} markets checked against {} listing states in {}: {} {verb}",
        report.checked,
        report.listing_states,
        target.description,
        report.repairs.len()
    );
    if report.checked == 0 && report.busy.is_empty() {
        bail!(
            "no market {} in {}",
            market.unwrap_or("at all"),
            target.description
        );
    }
    if !report.busy.is_empty() {
        bail!(
            "{} market(s) not reconciled: a batch writing them is in flight or was left \
             part-way (a shard's journal item names them; the shard's next batch finishes \
             it), or metrics wrote them during every round: {}; run again",
            report.busy.len(),
            report.busy.join(", ")
        );
    }
    if mode == Mode::Check && !report.repairs.is_empty() {
        bail!(
            "{} market(s) drifted from their listings",
            report.repairs.len()
        );
    }
    Ok(())
}
