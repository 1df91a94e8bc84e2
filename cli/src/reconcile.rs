//! `realty reconcile [--market M] [--stack NAME] [--dry-run]`: recompute market inventory
//! figures from the listing states and repair the market items that drifted
//! (`realty_shared::metrics::reconcile`; the runbook is in docs/metrics.md).

use anyhow::{Result, bail};
use realty_shared::adapters::dynamodb::{DynamoListingStore, DynamoMarketStore};
use realty_shared::adapters::retry::RetryPolicy;
use realty_shared::metrics::reconcile::{markets_to_reconcile, reconcile};

use crate::target;

pub async fn run(market: Option<&str>, stack: Option<&str>, dry_run: bool) -> Result<()> {
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
    let unfinished = markets.journal_shards().await?;
    if !unfinished.is_empty() {
        bail!(
            "a batch of shard(s) {} is left part-way (its journal item is in the market table): \
             the shard's next batch finishes it; reconcile once it has (or the listing states \
             are ahead of the markets and the repair would count that batch twice)",
            unfinished.join(", ")
        );
    }
    let states = listings.scan_states().await?;
    let keys = markets_to_reconcile(markets.live_keys().await?, &states, market);
    if keys.is_empty() {
        bail!(
            "no market {} in {}",
            market.unwrap_or("at all"),
            target.description
        );
    }
    let repairs = reconcile(&markets, &states, &keys, dry_run).await?;
    let verb = if dry_run { "would repair" } else { "repaired" };
    for repair in &repairs {
        println!("{verb} {}", repair.market);
        for d in &repair.drifts {
            println!("  {}: {} -> {}", d.figure, d.stored, d.recomputed);
        }
    }
    println!(
        "{} markets checked against {} listing states in {}: {} {verb}",
        keys.len(),
        states.len(),
        target.description,
        repairs.len()
    );
    Ok(())
}
