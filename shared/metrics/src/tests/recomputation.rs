//! The workflow's properties: incremental aggregates equal a brute-force recomputation, and
//! any delivery (batching, replays, crashes) ends in the state of one clean delivery.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::crashing_stores::{CrashingStores, deliver};
use super::{events_of, records_of, step_strategy};
use crate::aggregate::{ListingFacts, MarketAggregate, Standing};
use realty_model::listing::*;
use realty_model::stats::nearest_rank;

/// Aggregates recomputed from scratch from the final listing states.
/// One scope's figures recomputed from the final listing states.
#[derive(Debug, Clone, Default)]
struct Recomputed {
    active: i64,
    pending: i64,
    price_sum: i64,
    prices: Vec<f64>,
    prices_per_sqft: Vec<f64>,
    rents: Vec<f64>,
}

fn brute_force(events: &[ListingEvent]) -> BTreeMap<String, Recomputed> {
    let mut last: BTreeMap<&str, (&ListingEvent, i64)> = BTreeMap::new();
    for e in events {
        let first = match (&e.kind, last.get(e.listing.id.as_str())) {
            (EventKind::New, _) | (_, None) => e.listing.price_minor,
            (_, Some((_, f))) => *f,
        };
        last.insert(e.listing.id.as_str(), (e, first));
    }
    let mut out: BTreeMap<String, Recomputed> = BTreeMap::new();
    for (e, first) in last.values() {
        if matches!(e.kind, EventKind::Delisted) {
            continue;
        }
        let Some(f) = ListingFacts::of(&e.listing, *first) else {
            continue;
        };
        for scope in f.scopes() {
            let entry = out.entry(scope.key()).or_default();
            match f.standing {
                Standing::Active => {
                    entry.active += 1;
                    entry.price_sum += f.price_minor;
                    entry.prices.push(f.price_minor as f64);
                    entry
                        .prices_per_sqft
                        .extend(f.price_per_sqft_minor().map(|v| v as f64));
                }
                Standing::Pending => entry.pending += 1,
                Standing::Rental => entry.rents.push(f.price_minor as f64),
            }
        }
    }
    out
}

fn batching() -> impl Strategy<Value = Vec<(usize, u8, bool, Option<usize>)>> {
    prop::collection::vec(
        (
            1usize..12,
            1u8..4,
            any::<bool>(),
            prop::option::weighted(0.3, 0usize..12),
        ),
        1..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn incremental_aggregates_equal_a_recomputation(
        steps in prop::collection::vec(step_strategy(10), 1..60),
        plan in batching(),
    ) {
        let events = events_of(&steps);
        let records = records_of(&events);
        let mut stores = CrashingStores::default();
        deliver(&mut stores, &records, &plan);

        let expected = brute_force(&events);
        let aggregates = stores.inner.aggregates.lock().expect("lock").clone();
        for (key, r) in expected.clone() {
            let a: &MarketAggregate = &aggregates.get(&key).expect("aggregate exists").aggregate;
            prop_assert_eq!((a.active, a.pending, a.price_sum_minor), (r.active, r.pending, r.price_sum), "{}", key);
            prop_assert_eq!(a.rents.rentals, r.rents.len() as i64, "{}", key);
            // Every quantile is the exact nearest rank of the listings' own values.
            for q in [0.1, 0.5, 0.9] {
                for (exact, values) in [
                    (&r.prices, &a.price),
                    (&r.rents, &a.rents.rent),
                    (&r.prices_per_sqft, &a.price_per_sqft),
                ] {
                    prop_assert_eq!(values.quantile(q).map(|v| v as f64), nearest_rank(exact, q), "{}", key);
                }
            }
        }
        // Markets that emptied out hold nothing.
        for (key, item) in &aggregates {
            if !expected.contains_key(key) {
                let a = &item.aggregate;
                prop_assert_eq!((a.active, a.pending, a.price_sum_minor, a.rents.rentals), (0, 0, 0, 0), "{}", key);
            }
        }
        // Every event counted once: the day counters equal a count over the event list
        // (cuts of sale listings that stay listed: rentals count in no daily counter, a cut
        // that comes with a sale is a delisting, and one that comes with a return from a sale
        // or a withdrawal is a new listing).
        let mut cuts = 0i64;
        let mut seen: BTreeMap<&str, (i64, bool)> = BTreeMap::new();
        for e in &events {
            let before = seen.get(e.listing.id.as_str());
            let stays_listed = !matches!(e.listing.status, ListingStatus::Sold | ListingStatus::OffMarket);
            if e.listing.offer == Offer::Sale && stays_listed && matches!(e.kind, EventKind::Changed { .. }) && before.is_some_and(|(price, was_listed)| *was_listed && e.listing.price_minor < *price) {
                cuts += 1;
            }
            seen.insert(e.listing.id.as_str(), (e.listing.price_minor, stays_listed));
        }
        let counted: i64 = aggregates
            .iter()
            .filter(|(k, _)| k.starts_with("city#") && k.ends_with("#all"))
            .flat_map(|(_, item)| item.aggregate.daily.values().map(|d| d.price_cuts))
            .sum();
        prop_assert_eq!(counted, cuts);
    }

    #[test]
    fn any_delivery_ends_in_the_state_of_one_clean_delivery(
        steps in prop::collection::vec(step_strategy(8), 1..40),
        plan in batching(),
    ) {
        let events = events_of(&steps);
        let records = records_of(&events);
        // The same batches, each delivered once without a fault.
        let clean_plan: Vec<_> = plan.iter().map(|&(size, _, _, _)| (size, 1, false, None)).collect();
        let mut clean = CrashingStores::default();
        deliver(&mut clean, &records, &clean_plan);
        let mut messy = CrashingStores::default();
        deliver(&mut messy, &records, &plan);
        // Which lists of interest a listing is in is judged against its market's figures at
        // the end of the batch that wrote it, so it depends on the batching (a re-delivered
        // half batch judges against other figures), and so does the `may_alert` mark, which
        // says what the write applied (as the stream record's old and new images do): the
        // figures and the rest of the state do not.
        let without_interest = |stores: &CrashingStores| {
            let mut states = stores.inner.listings.lock().expect("lock").clone();
            for s in states.values_mut() {
                let s = Arc::make_mut(s);
                s.interest.clear();
                s.may_alert = false;
            }
            states
        };
        prop_assert_eq!(without_interest(&messy), without_interest(&clean));
        prop_assert_eq!(&*messy.inner.snapshots.lock().expect("lock"), &*clean.inner.snapshots.lock().expect("lock"));
        prop_assert_eq!(&*messy.inner.aggregates.lock().expect("lock"), &*clean.inner.aggregates.lock().expect("lock"));
    }
}
