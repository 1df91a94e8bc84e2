//! `realty reconcile [--market M] [--stack NAME] [--dry-run | --check]`: recompute market
//! inventory figures from the listing states and repair the market items that drifted
//! (`realty_metrics::reconcile`), and report where the listing states diverge from
//! the poller's states (`realty_poller::anti_entropy::check`: events lost on the way,
//! which the scheduled anti-entropy pass republishes). The runbook is in docs/metrics.md.

use anyhow::{Result, bail};
use realty_aws::adapters::dynamodb::{DynamoListingStore, DynamoMarketStore};
use realty_aws::adapters::poll_state::S3PollStateStore;
use realty_aws::adapters::retry::RetryPolicy;
use realty_metrics::reconcile::reconcile;
use realty_poller::anti_entropy::{AntiEntropyReport, check};

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
    // Before the markets: a repair recomputes them from the listing states, which lost
    // events leave behind the poller's states whatever reconcile does.
    let states = S3PollStateStore {
        client: realty_aws::sdk::s3_client(&target.sdk),
        bucket: target.resources.data_lake_bucket.clone(),
    };
    let city = market.filter(|m| !m.contains('#'));
    let divergence = check(&states, &listings, city, chrono::Utc::now()).await?;
    print_divergence(&divergence, &target.description);
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
    if mode == Mode::Check && divergence.total() > 0 {
        bail!(
            "{} listing(s) in the listing table diverge from the poller's states (lost \
             events): the scheduled anti-entropy pass republishes them (docs/metrics.md, \
             \"Anti-entropy\")",
            divergence.total()
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

/// The divergence between the poller's states and the listing table: counts by kind, then
/// the first examples.
fn print_divergence(report: &AntiEntropyReport, target: &str) {
    let by_kind: Vec<String> = report
        .divergences
        .iter()
        .map(|(kind, n)| format!("{n} {}", kind.as_str()))
        .collect();
    println!(
        "{} listings of {} poll states ({} reading their baseline, skipped) compared with the \
         listing table in {target}: {} diverge{}",
        report.compared,
        report.states,
        report.unsettled_states,
        report.total(),
        if by_kind.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_kind.join(", "))
        }
    );
    for (kind, state, listing) in &report.examples {
        println!("  {}: {listing} in {state}", kind.as_str());
    }
}
