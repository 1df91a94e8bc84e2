//! The metrics function's compute without I/O: the real batch workflow
//! ([`process_batch`]) over in-memory stores, one core, Kinesis-sized batches (the parse-only
//! baselines beside it: [`super::parse`]).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use realty_core::metrics::aggregate::Scope;
use realty_core::metrics::memory::MemoryStores;
use realty_core::metrics::process::{InputRecord, process_batch};

/// The one shard every record comes from (ordering within it is what the workflow needs).
const SHARD: &str = "shardId-000000000000";

/// The Kinesis sequence number of the `index`th record of the benchmark's one shard.
pub fn sequence_number(index: usize) -> String {
    const FIRST_SEQUENCE: u128 = 49_590_338_271_490_256_608_559_692_538;
    (FIRST_SEQUENCE + index as u128).to_string()
}

/// The records of a stream holding `encoded` events, in order, as Kinesis numbers them;
/// each arrives as it is observed (the generator's `i`th event, `i` seconds in).
pub fn records(encoded: &[Vec<u8>]) -> Vec<InputRecord> {
    encoded
        .iter()
        .enumerate()
        .map(|(i, data)| InputRecord {
            sequence_number: sequence_number(i),
            data: data.clone(),
            approximate_arrival: super::events::start_time() + chrono::Duration::seconds(i as i64),
        })
        .collect()
}

/// What a per-market engine reports for a market (city-wide, all property types).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MarketFigures {
    pub market: String,
    pub listings: i64,
    pub median_price: Option<f64>,
    pub median_price_per_sqft: Option<f64>,
}

/// Runs every record through the metrics workflow in batches of `batch_size` on one thread of
/// its own, starting from empty stores. Returns the time taken and the stores.
pub fn run_metrics(records: &[InputRecord], batch_size: usize) -> Result<(Duration, MemoryStores)> {
    // Its own OS thread: callable from async code, and one core whatever the caller runs on.
    std::thread::scope(|scope| {
        scope
            .spawn(|| run_metrics_on_this_thread(records, batch_size))
            .join()
            .map_err(|_| anyhow::anyhow!("the compute thread panicked"))?
    })
}

fn run_metrics_on_this_thread(
    records: &[InputRecord],
    batch_size: usize,
) -> Result<(Duration, MemoryStores)> {
    // A current-thread runtime: one core, and the in-memory ports never wait.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting a single-thread runtime")?;
    let stores = MemoryStores::default();
    let ports = stores.ports();
    let started = Instant::now();
    for batch in records.chunks(batch_size) {
        let outcome = runtime.block_on(process_batch(&ports, SHARD, batch));
        if let Some(error) = outcome.error {
            bail!("the metrics workflow failed on in-memory stores: {error}");
        }
        black_box(&outcome.stats);
    }
    let elapsed = started.elapsed();
    let rejected = stores.poison.lock().map(|p| p.len()).unwrap_or_default();
    if rejected > 0 {
        bail!("{rejected} generated events were rejected as poison");
    }
    Ok((elapsed, stores))
}

/// The city-wide figures of `markets` as the metrics workflow left them in `stores`.
pub fn figures(stores: &MemoryStores, markets: &[String]) -> Vec<MarketFigures> {
    let aggregates = stores
        .aggregates
        .lock()
        .map(|a| a.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    let mut out: Vec<MarketFigures> = markets
        .iter()
        .map(|market| {
            let live = aggregates
                .get(&Scope::city(market).key())
                .map(|a| a.aggregate.figures())
                .unwrap_or_default();
            MarketFigures {
                market: market.clone(),
                listings: live.active_listings,
                median_price: live.median_price,
                median_price_per_sqft: live.median_price_per_sqft,
            }
        })
        .filter(|f| f.listings > 0)
        .collect();
    out.sort_by(|a, b| a.market.cmp(&b.market));
    out
}

/// Checks that an engine computed the same figures as ours: counts exactly, medians within
/// `relative_error` (our quantiles come from 2 % log buckets: within 1 % of the exact value).
pub fn compare(
    engine: &str,
    ours: &[MarketFigures],
    theirs: &[MarketFigures],
    relative_error: f64,
) -> Result<()> {
    let theirs: BTreeMap<&str, &MarketFigures> =
        theirs.iter().map(|f| (f.market.as_str(), f)).collect();
    if theirs.len() != ours.len() {
        bail!(
            "{engine} found {} markets with active listings, the metrics workflow {}",
            theirs.len(),
            ours.len()
        );
    }
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= relative_error * b.abs(),
        (None, None) => true,
        _ => false,
    };
    for mine in ours {
        let Some(other) = theirs.get(mine.market.as_str()) else {
            bail!("{engine} has no figures for {}", mine.market);
        };
        if mine.listings != other.listings
            || !close(mine.median_price, other.median_price)
            || !close(mine.median_price_per_sqft, other.median_price_per_sqft)
        {
            bail!(
                "{engine} and the metrics workflow disagree on {}: {other:?} vs {mine:?}",
                mine.market
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::events;

    fn exact_lower_median(mut values: Vec<f64>) -> Option<f64> {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        (n > 0).then(|| values[n.div_ceil(2) - 1])
    }

    /// The figures by brute force from the events: each listing's latest event decides.
    fn brute_force(events: &[realty_core::listing::ListingEvent]) -> Vec<MarketFigures> {
        use realty_core::listing::{EventKind, ListingStatus, Offer};
        let mut latest = BTreeMap::new();
        for e in events {
            latest.insert(e.listing.id.as_str().to_owned(), e);
        }
        let mut by_market: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for e in latest.values() {
            let l = &e.listing;
            if matches!(e.kind, EventKind::Delisted)
                || l.offer != Offer::Sale
                || l.status != ListingStatus::Active
            {
                continue;
            }
            let entry = by_market.entry(l.market.city_state.clone()).or_default();
            entry.0.push(l.price_minor as f64 / 100.0);
            if let Some(area) = l.living_area_sqft.filter(|a| *a > 0) {
                entry.1.push(l.price_minor as f64 / f64::from(area) / 100.0);
            }
        }
        by_market
            .into_iter()
            .map(|(market, (prices, ppsf))| MarketFigures {
                market,
                listings: prices.len() as i64,
                median_price: exact_lower_median(prices),
                median_price_per_sqft: exact_lower_median(ppsf),
            })
            .collect()
    }

    #[test]
    fn the_workflow_agrees_with_a_brute_force_computation() {
        let events = events::generate(6_000, 3);
        let encoded: Vec<Vec<u8>> = events
            .iter()
            .map(|e| e.encode().expect("encodes"))
            .collect();
        let (_, stores) = run_metrics(&records(&encoded), 1_000).expect("runs");
        let ours = figures(&stores, &events::market_keys());
        let exact = brute_force(&events);
        assert!(!exact.is_empty());
        compare("brute force", &ours, &exact, 0.01).expect("agree");
        // A wrong answer is caught.
        let mut wrong = exact.clone();
        wrong[0].listings += 1;
        assert!(compare("wrong", &ours, &wrong, 0.01).is_err());
        let mut wrong = exact;
        wrong[0].median_price = wrong[0].median_price.map(|p| p * 1.03);
        assert!(compare("wrong", &ours, &wrong, 0.01).is_err());
    }

    #[test]
    fn batching_does_not_change_the_figures() {
        let events = events::generate(3_000, 5);
        let encoded: Vec<Vec<u8>> = events
            .iter()
            .map(|e| e.encode().expect("encodes"))
            .collect();
        let records = records(&encoded);
        let (_, whole) = run_metrics(&records, 1_000).expect("runs");
        let (_, small) = run_metrics(&records, 7).expect("runs");
        let markets = events::market_keys();
        assert_eq!(figures(&whole, &markets), figures(&small, &markets));
    }
}
