//! Sizes of the DynamoDB items the metrics workflow writes, as DynamoDB bills them, and how
//! many markets a batch touches: the inputs of the capacity model's write units.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context as _, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use realty_metrics::aggregate::{DAILY_COUNTER_DAYS, ListingFacts};
use realty_metrics::items::{MarketLiveItem, MarketSnapshotItem};
use realty_metrics::memory::MemoryStores;
use realty_metrics::ports::StoredAggregate;
use realty_model::listing::ListingEvent;
use realty_model::scope::Scope;
use realty_model::state::ListingItem;

use super::compute;
use super::events::{Spread, generate_every, one_city};

/// What the figures are.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemSizes {
    pub listing_item_bytes_mean: f64,
    pub market_item_bytes_mean: f64,
    pub market_item_bytes_max: usize,
    /// Write units of a market item's write, as a transaction bills it (twice a plain put's).
    pub market_item_transact_wru_mean: f64,
    /// The same, had the items' values been stored in 2 % buckets (the layout before
    /// medians were exact): what exactness costs on the same events.
    pub market_item_transact_wru_mean_bucketed: f64,
    pub snapshot_item_bytes_mean: f64,
    /// Distinct markets (scopes) the events of a 1,000-event batch count in, on average.
    pub scopes_per_1000_events: f64,
}

/// DynamoDB's size of an item, as it bills and limits it (one set of rules for the project:
/// the adapters'; the numbers' rules are checked by the test below).
pub fn item_bytes(item: &HashMap<String, AttributeValue>) -> usize {
    realty_aws::items::item_size(item)
}

/// `stored` with its values in 2 % buckets, as items were stored before medians were exact:
/// what exactness costs, beside it on the same events.
pub(super) fn bucketed(stored: &StoredAggregate) -> StoredAggregate {
    StoredAggregate {
        aggregate: stored.aggregate.bucketed(),
        ..stored.clone()
    }
}

/// The sizes of the items in `stores` after a run, and the markets per batch of `events`.
pub fn measure(stores: &MemoryStores, events: &[ListingEvent]) -> Result<ItemSizes> {
    let listings = stores
        .listings
        .lock()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
    let mut listing_total = 0usize;
    for state in listings.values() {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(ListingItem::from(&**state)).context("a listing item")?;
        listing_total += item_bytes(&item);
    }
    let aggregates = stores
        .aggregates
        .lock()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
    let mut market_sizes = Vec::with_capacity(aggregates.len());
    let mut bucketed_sizes = Vec::with_capacity(aggregates.len());
    for (key, stored) in aggregates.iter() {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(MarketLiveItem::new(key, stored)).context("a market item")?;
        market_sizes.push(item_bytes(&item));
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(MarketLiveItem::new(key, &bucketed(stored)))
                .context("a market item")?;
        bucketed_sizes.push(item_bytes(&item));
    }
    let snapshots = stores
        .snapshots
        .lock()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
    let mut snapshot_total = 0usize;
    for snapshot in snapshots.values() {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(MarketSnapshotItem::from(snapshot)).context("a snapshot item")?;
        snapshot_total += item_bytes(&item);
    }
    let batches: Vec<usize> = events
        .chunks(1_000)
        .filter(|c| c.len() == 1_000)
        .map(|batch| {
            batch
                .iter()
                .filter_map(|e| ListingFacts::of(&e.listing, e.listing.price_minor))
                .flat_map(|f| f.scopes())
                .map(|s| s.key())
                .collect::<BTreeSet<_>>()
                .len()
        })
        .collect();
    let mean = |total: usize, n: usize| if n == 0 { 0.0 } else { total as f64 / n as f64 };
    let transact_wru_mean = |sizes: &[usize]| {
        mean(
            sizes.iter().map(|&b| 2 * write_units(b) as usize).sum(),
            sizes.len(),
        )
    };
    Ok(ItemSizes {
        listing_item_bytes_mean: mean(listing_total, listings.len()),
        market_item_bytes_mean: mean(market_sizes.iter().sum(), market_sizes.len()),
        market_item_bytes_max: market_sizes.iter().copied().max().unwrap_or(0),
        market_item_transact_wru_mean: transact_wru_mean(&market_sizes),
        market_item_transact_wru_mean_bucketed: transact_wru_mean(&bucketed_sizes),
        snapshot_item_bytes_mean: mean(snapshot_total, snapshots.len()),
        scopes_per_1000_events: mean(batches.iter().sum(), batches.len()),
    })
}

/// The sizes of the items a regional feed that has run for longer than a market item keeps
/// its days leaves: `count` events from `seed`, spread over [`DAILY_COUNTER_DAYS`] + 2 days
/// instead of one a second. The bench's own stream spans 2.3 days at 200,000 events, so its
/// market items hold two or three days of daily counters and closes where a running feed's
/// hold 36 and 35; the capacity model's market writes are priced from these.
pub fn measure_steady_state(count: usize, seed: u64) -> Result<ItemSizes> {
    let span = chrono::Duration::days(DAILY_COUNTER_DAYS + 2);
    let interval = chrono::Duration::seconds((span.num_seconds() / count.max(1) as i64).max(1));
    let events = generate_every(count, seed, Spread::Regional, interval);
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .map(ListingEvent::encode)
        .collect::<Result<_, _>>()
        .context("encoding the generated events")?;
    let (_, stores) = compute::run_metrics(&compute::records_every(&encoded, interval), 1_000)?;
    measure(&stores, &events)
}

/// Listings of the largest city the docs promise exact medians for (docs/capacity.md, "Exact
/// medians").
pub const LARGE_CITY_LISTINGS: usize = 20_000;

/// DynamoDB's size of the city-wide live item of a city of `listings` homes (the generator's
/// prices, in whole dollars where real ones are mostly hundreds: a little larger than a real
/// city's), and whether it holds its values exactly.
pub fn city_item_bytes(listings: usize, seed: u64) -> Result<(usize, bool)> {
    let events = one_city(listings, seed);
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .map(ListingEvent::encode)
        .collect::<Result<_, _>>()
        .context("encoding the generated events")?;
    let (_, stores) = compute::run_metrics(&compute::records(&encoded), 1_000)?;
    let aggregates = stores
        .aggregates
        .lock()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
    let city = events
        .first()
        .map(|e| Scope::city(&e.listing.market.city_state).key())
        .context("no events")?;
    let stored = aggregates.get(&city).context("the city's item")?;
    let item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(MarketLiveItem::new(&city, stored)).context("a market item")?;
    Ok((
        item_bytes(&item),
        !stored.aggregate.as_stored().is_bucketed(),
    ))
}

/// Write units of one item write: one per KB, rounded up (twice that in a transaction).
pub(super) fn write_units(bytes: usize) -> u64 {
    bytes.div_ceil(1024).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DynamoDB's item limit is 400 KB: a city of 20,000 homes keeps its values exactly in
    /// under half of it.
    #[test]
    fn a_large_city_keeps_its_values_exactly_within_half_the_item_limit() {
        let (bytes, exact) = city_item_bytes(LARGE_CITY_LISTINGS, 42).unwrap();
        assert!(exact);
        assert!(bytes < 200 * 1024, "{bytes} bytes");
    }

    #[test]
    fn a_steady_state_market_item_holds_every_day_it_keeps() {
        let events = 3_000;
        let sizes = measure_steady_state(events, 5).unwrap();
        let short = {
            let events = generate_every(events, 5, Spread::Regional, chrono::Duration::seconds(1));
            let encoded: Vec<Vec<u8>> = events.iter().map(|e| e.encode().unwrap()).collect();
            let (_, stores) = compute::run_metrics(&compute::records(&encoded), 1_000).unwrap();
            measure(&stores, &events).unwrap()
        };
        // The same listings and changes, over 37 days instead of 50 minutes: every market
        // item carries more days.
        assert!(
            sizes.market_item_bytes_mean > short.market_item_bytes_mean,
            "{sizes:?} against {short:?}"
        );
    }

    #[test]
    fn sizes_follow_dynamodb_rules() {
        // A number's size, as that of a one-letter attribute holding it, less the name.
        let number_bytes = |n: &str| {
            item_bytes(&HashMap::from([(
                "n".to_owned(),
                AttributeValue::N(n.to_owned()),
            )])) - 1
        };
        assert_eq!(number_bytes("12345"), 4);
        assert_eq!(number_bytes("-0.0012"), 3);
        assert_eq!(number_bytes("1000000"), 2);
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("city#x#all".into())),
            ("n".to_owned(), AttributeValue::N("42".into())),
        ]);
        assert_eq!(item_bytes(&item), 2 + 10 + 1 + 2);
    }
}
