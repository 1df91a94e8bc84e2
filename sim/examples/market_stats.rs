//! Prints what a simulated market looks like and what happens in it over a week:
//! `cargo run -p realty-sim --example market_stats -- [seed] [listings-per-market]`.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use realty_sim::{EventKind, Market, MarketConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let listings: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3_000);
    let started = std::time::Instant::now();
    let mut market = Market::new(
        seed,
        MarketConfig {
            listings_per_market: listings,
            ..MarketConfig::default()
        },
    )?;
    println!(
        "built {} markets in {:?}",
        market.market_keys().len(),
        started.elapsed()
    );
    print_summary(&market);

    let t0 = market.now();
    let started = std::time::Instant::now();
    for _ in 0..7 * 24 {
        market.advance(TimeDelta::hours(1))?;
    }
    println!(
        "\nsimulated a week in hourly steps in {:?}",
        started.elapsed()
    );
    print_summary(&market);

    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut cuts = Vec::new();
    for event in market.ground_truth(t0, market.now()) {
        let name = match event.kind {
            EventKind::StatusChange { old, new } | EventKind::Delisted { old, new } => {
                format!("{} {}->{}", event.kind.name(), old.as_str(), new.as_str())
            }
            EventKind::PriceChange { old, new } => {
                if new < old {
                    cuts.push((old - new) as f64 / old as f64);
                    "price_cut".to_owned()
                } else {
                    "price_rise".to_owned()
                }
            }
            EventKind::New { .. } => "new".to_owned(),
        };
        *per_kind.entry(name).or_default() += 1;
    }
    println!("\nevents in the week:");
    for (kind, count) in &per_kind {
        println!("  {kind:<32} {count:>7}");
    }
    cuts.sort_by(f64::total_cmp);
    if !cuts.is_empty() {
        let share = |low: f64, high: f64| {
            cuts.iter().filter(|c| (low..high).contains(*c)).count() as f64 / cuts.len() as f64
        };
        println!(
            "price cuts: median {:.1}%, 2-10%: {:.0}%, >15%: {:.0}%",
            cuts[cuts.len() / 2] * 100.0,
            share(0.02, 0.10) * 100.0,
            share(0.15, 1.0) * 100.0
        );
    }
    Ok(())
}

fn print_summary(market: &Market) {
    println!(
        "{:<20} {:>7} {:>7} {:>7} {:>7} {:>12}",
        "market", "active", "pending", "sold", "withdr", "median"
    );
    for summary in market.summary() {
        println!(
            "{:<20} {:>7} {:>7} {:>7} {:>7} {:>12}",
            summary.key,
            summary.active,
            summary.pending,
            summary.sold,
            summary.withdrawn,
            summary.median_active_price.unwrap_or(0)
        );
    }
}
