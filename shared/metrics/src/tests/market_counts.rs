//! How single events count in the markets: a cut stamped early by a slow clock, a removal
//! from a drifted market, a cut that comes with a sale, a listing that leaves a market its
//! event does not name.

use chrono::{Duration, TimeZone, Utc};

use super::{SHARD, Step, block_on, events_of, listing, records_of};
use crate::aggregate::{self, MarketAggregate};
use crate::memory::MemoryStores;
use crate::process::process_batch;
use realty_model::listing::*;
use realty_model::scope::Scope;

#[test]
fn a_cut_stamped_two_minutes_early_by_a_slow_clock_is_applied() {
    let events = events_of(&[
        Step::Change {
            listing: 1,
            price_pct: 0,
            status: 0,
        },
        Step::Change {
            listing: 1,
            price_pct: -29,
            status: 0,
        },
    ]);
    let mut cut = events[1].clone();
    // The second poller's clock is 2 minutes slow: its later read is stamped earlier.
    cut.observed_at = events[0].observed_at - Duration::minutes(2);
    cut.listing.observed_at = cut.observed_at;
    let records = records_of(&[events[0].clone(), cut.clone()]);
    for batches in [vec![&records[..]], vec![&records[..1], &records[1..]]] {
        let stores = MemoryStores::default();
        for batch in batches {
            let outcome = block_on(process_batch(&stores.ports(), SHARD, batch));
            assert_eq!(outcome.failed_from, None);
            assert_eq!(outcome.stats.already_applied + outcome.stats.superseded, 0);
        }
        let listings = stores.listings.lock().expect("lock");
        let state = &listings[events[0].listing.id.as_str()];
        assert_eq!(state.listing.price_minor, cut.listing.price_minor);
        let aggregates = stores.aggregates.lock().expect("lock");
        let market = &aggregates[&Scope::city("syracuse-ny").key()].aggregate;
        assert_eq!(market.price_sum_minor, cut.listing.price_minor);
        assert_eq!(market.active_with_cut, 1);
        let cuts: i64 = market.daily.values().map(|d| d.price_cuts).sum();
        assert_eq!(cuts, 1);
    }
    // An old poll's event put late (observed an hour before the state) is still dropped,
    // and counted as superseded.
    let mut stale = events[1].clone();
    stale.observed_at = events[0].observed_at - Duration::hours(1);
    stale.listing.observed_at = stale.observed_at;
    let records = records_of(&[events[0].clone(), stale]);
    let stores = MemoryStores::default();
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records));
    assert_eq!(outcome.stats.superseded, 1);
    let listings = stores.listings.lock().expect("lock");
    assert_eq!(
        listings[events[0].listing.id.as_str()].listing.price_minor,
        events[0].listing.price_minor
    );
}

#[test]
fn a_removal_from_a_drifted_market_is_reported_not_hidden() {
    let events = events_of(&[
        Step::Change {
            listing: 1,
            price_pct: 0,
            status: 0,
        },
        Step::Delist { listing: 1 },
    ]);
    let records = records_of(&events);
    let stores = MemoryStores::default();
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records[..1]));
    assert_eq!(outcome.stats.market_underflows, 0);
    // Corruption: the markets lose the listing (their counts and histograms), nothing else.
    for item in stores.aggregates.lock().expect("lock").values_mut() {
        let daily = item.aggregate.daily.clone();
        let as_of = item.aggregate.as_of;
        item.aggregate = MarketAggregate {
            daily,
            as_of,
            ..MarketAggregate::default()
        };
    }
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records[1..]));
    assert_eq!(outcome.failed_from, None, "the batch goes on");
    // Four markets, each missing the listing: its count and each of its histograms.
    assert!(
        outcome.stats.market_underflows >= 4 * 5,
        "{}",
        outcome.stats.market_underflows
    );
    for item in stores.aggregates.lock().expect("lock").values() {
        assert!(item.aggregate.price.count() == 0);
    }
}

/// A listing cut and sold in one change (a feed that reports status, read between polls) is
/// a delisting, not a price cut; a cut of a listing that stays listed is a cut.
#[test]
fn a_cut_that_comes_with_a_sale_is_a_delisting_not_a_cut() {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 2, 12, 0, 0)
        .single()
        .expect("time");
    let first = listing(1, 0, 30_000_000, ListingStatus::Active, at);
    let mut sold = first.clone();
    sold.status = ListingStatus::Sold;
    sold.price_minor = 28_000_000;
    sold.observed_at = at + Duration::hours(1);
    let other = listing(2, 0, 40_000_000, ListingStatus::Active, at);
    let mut cut = other.clone();
    cut.status = ListingStatus::Pending;
    cut.price_minor = 38_000_000;
    cut.observed_at = at + Duration::hours(2);
    let events = [
        ListingEvent::new_listing(first.clone(), "poll-1"),
        ListingEvent::new_listing(other.clone(), "poll-1"),
        ListingEvent::changed(&first, sold, "poll-2").expect("a change"),
        ListingEvent::changed(&other, cut, "poll-3").expect("a change"),
    ];
    let stores = MemoryStores::default();
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records_of(&events)));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    let aggregates = stores.aggregates.lock().expect("lock");
    let city = &aggregates[&Scope::city("nashville-tn").key()].aggregate;
    let day = city.daily[&at.date_naive()];
    assert_eq!(
        (day.price_cuts, day.delistings, day.new_listings),
        (1, 1, 2)
    );
}

/// A listing first seen coming soon is new when it enters the market (it counted nowhere
/// before, and its sale will count as a delisting), once, however its events are batched;
/// one that goes on to pending after that is not new again.
#[test]
fn a_coming_soon_listing_is_new_when_it_goes_on_sale() {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 2, 12, 0, 0)
        .single()
        .expect("time");
    let soon = listing(1, 0, 30_000_000, ListingStatus::ComingSoon, at);
    let mut active = soon.clone();
    active.status = ListingStatus::Active;
    active.observed_at = at + Duration::hours(1);
    let mut pending = active.clone();
    pending.status = ListingStatus::Pending;
    pending.observed_at = at + Duration::hours(2);
    let events = [
        ListingEvent::new_listing(soon.clone(), "poll-1"),
        ListingEvent::changed(&soon, active.clone(), "poll-2").expect("a change"),
        ListingEvent::changed(&active, pending, "poll-3").expect("a change"),
    ];
    let records = records_of(&events);
    for cut in 0..=records.len() {
        let stores = delivered_in_two(&records, cut);
        let aggregates = stores.aggregates.lock().expect("lock");
        let city = &aggregates[&Scope::city("nashville-tn").key()].aggregate;
        let new: i64 = city.daily.values().map(|d| d.new_listings).sum();
        assert_eq!(new, 1, "batches cut after {cut}");
    }
}

/// A listing announced (coming soon) that goes on sale at a lower price is a new listing, not
/// a cut, and a cut while announced is none either: it was in no market's inventory. Its next
/// cut is one, against the price it went on sale at; however its events are batched. Before,
/// the launch counted a cut and put a price-cut entry of 6.67 %.
#[test]
fn a_coming_soon_listing_on_sale_at_a_lower_price_is_new_not_a_cut() {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 2, 12, 0, 0)
        .single()
        .expect("time");
    let events = moves(
        listing(1, 0, 30_000_000, ListingStatus::ComingSoon, at),
        &[
            (ListingStatus::ComingSoon, 29_000_000),
            (ListingStatus::Active, 28_000_000),
            (ListingStatus::Active, 27_000_000),
        ],
    );
    let records = records_of(&events);
    for split in 0..=records.len() {
        let stores = delivered_in_two(&records, split);
        let (new, _, cuts) = city_counts(&stores);
        assert_eq!((new, cuts), (1, 1), "batches cut after {split}");
        assert_eq!(cut_entries(&stores), [3.57], "batches cut after {split}");
        let stored = stores.listings.lock().expect("lock");
        let state = stored.values().next().expect("the listing's state");
        assert_eq!(
            state.first_price_minor, 28_000_000,
            "batches cut after {split}"
        );
    }
}

/// A listing withdrawn (a RESO record Withdrawn or Hold: off the market, a delisting) that
/// comes back for sale at a lower price is a new listing, not a price cut, and has no cut
/// entry, as it is when its source delists it and lists it again; its next cut is one entry
/// against the price it came back at; however its events are batched. Before, the return
/// counted a cut against the price it left at and no new listing.
#[test]
fn a_listing_withdrawn_then_back_for_sale_is_new_not_a_cut() {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 2, 12, 0, 0)
        .single()
        .expect("time");
    let events = moves(
        listing(1, 0, 50_000_000, ListingStatus::Active, at),
        &[
            (ListingStatus::OffMarket, 50_000_000),
            (ListingStatus::Active, 46_000_000),
            (ListingStatus::Active, 45_000_000),
        ],
    );
    let records = records_of(&events);
    for split in 0..=records.len() {
        let stores = delivered_in_two(&records, split);
        // New at first sight and at its return; the withdrawal a delisting; one cut, after
        // the return (from $460,000, not $500,000).
        assert_eq!(city_counts(&stores), (2, 1, 1), "batches cut after {split}");
        // Each event judged against the one before it, whichever batch holds them: the cut
        // after the return alone (before, a batch judged its first state against its last:
        // 10 % from $500,000 when it held the withdrawal, the return and the cut).
        assert_eq!(cut_entries(&stores), [2.17], "batches cut after {split}");
    }
}

/// The events of a listing first seen as `first`, then moved to each (status, price) of
/// `steps`, an hour apart.
fn moves(first: Listing, steps: &[(ListingStatus, i64)]) -> Vec<ListingEvent> {
    let mut events = vec![ListingEvent::new_listing(first.clone(), "poll-1")];
    let mut before = first;
    for (n, &(status, price_minor)) in steps.iter().enumerate() {
        let mut next = before.clone();
        next.status = status;
        next.price_minor = price_minor;
        next.observed_at = before.observed_at + Duration::hours(1);
        let poll = format!("poll-{}", n + 2);
        events.push(ListingEvent::changed(&before, next.clone(), &poll).expect("a change"));
        before = next;
    }
    events
}

/// The city market's daily counts, summed: new listings, delistings, price cuts.
fn city_counts(stores: &MemoryStores) -> (i64, i64, i64) {
    let aggregates = stores.aggregates.lock().expect("lock");
    let city = &aggregates[&Scope::city("nashville-tn").key()].aggregate;
    let sum = |f: fn(&aggregate::DailyCounts) -> i64| city.daily.values().map(f).sum::<i64>();
    (
        sum(|d| d.new_listings),
        sum(|d| d.delistings),
        sum(|d| d.price_cuts),
    )
}

/// The cuts (percent) of the price-cut entries the stores hold.
fn cut_entries(stores: &MemoryStores) -> Vec<f64> {
    stores
        .keyed
        .lock()
        .expect("lock")
        .values()
        .filter_map(|item| match item {
            crate::memory::KeyedItem::Interest(i) => i.listing.cut_pct,
            _ => None,
        })
        .collect()
}

/// The price-cut list holds every cut the counters count, each against the price before it,
/// however the events are batched: before, a batch judged its first state against its last,
/// so two cuts in one batch were one entry and a cut with a rise back none.
#[test]
fn every_cut_is_an_entry_of_its_own_however_the_events_are_batched() {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 2, 12, 0, 0)
        .single()
        .expect("time");
    let events = moves(
        listing(1, 0, 50_000_000, ListingStatus::Active, at),
        &[
            (ListingStatus::Active, 48_000_000),
            (ListingStatus::Active, 45_000_000),
            (ListingStatus::Active, 50_000_000),
        ],
    );
    let records = records_of(&events);
    for split in 0..=records.len() {
        let stores = delivered_in_two(&records, split);
        let mut cuts: Vec<(f64, f64)> = stores
            .keyed
            .lock()
            .expect("lock")
            .values()
            .filter_map(|item| match item {
                crate::memory::KeyedItem::Interest(i) => {
                    Some((i.listing.previous_price?, i.listing.cut_pct?))
                }
                _ => None,
            })
            .collect();
        cuts.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert_eq!(
            cuts,
            [(500_000.0, 4.0), (480_000.0, 6.25)],
            "batches cut after {split}"
        );
    }
}

/// A listing that leaves a market its event does not name (here its type, corrected) is
/// taken out of it: the market is read and written from the stored state, not the event.
#[test]
fn a_listing_that_leaves_a_market_its_event_does_not_name_is_removed_from_it() {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 2, 12, 0, 0)
        .single()
        .expect("time");
    let house = listing(2, 0, 30_000_000, ListingStatus::Active, at);
    let neighbour = listing(6, 0, 50_000_000, ListingStatus::Active, at);
    assert_eq!(house.property_type, PropertyType::SingleFamily);
    let mut condo = house.clone();
    condo.property_type = PropertyType::Condo;
    condo.price_minor = 29_000_000;
    condo.observed_at = at + Duration::hours(1);
    let stores = MemoryStores::default();
    let records = records_of(&[
        ListingEvent::new_listing(house.clone(), "poll-1"),
        ListingEvent::new_listing(neighbour, "poll-1"),
        ListingEvent::changed(&house, condo, "poll-2").expect("a change"),
    ]);
    for batch in [&records[..2], &records[2..]] {
        let outcome = block_on(process_batch(&stores.ports(), SHARD, batch));
        assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    }
    let aggregates = stores.aggregates.lock().expect("lock");
    let active = |property_type| {
        let key = realty_model::scope::city_scope_key("nashville-tn", Some(property_type));
        aggregates[&key].aggregate.active
    };
    assert_eq!(active(PropertyType::SingleFamily), 1, "the neighbour only");
    assert_eq!(active(PropertyType::Condo), 1);
    assert_eq!(
        aggregates[&Scope::city("nashville-tn").key()]
            .aggregate
            .active,
        2
    );
}

/// The stores after `records` are delivered in two batches, cut after `cut` (one batch when
/// the cut is at either end).
fn delivered_in_two(records: &[crate::process::InputRecord], cut: usize) -> MemoryStores {
    let stores = MemoryStores::default();
    for batch in [&records[..cut], &records[cut..]] {
        if batch.is_empty() {
            continue;
        }
        let outcome = block_on(process_batch(&stores.ports(), SHARD, batch));
        assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    }
    stores
}

/// A market's first read records its inventory (docs/metrics.md, "A first read is a
/// baseline"): its listings count as new only on their own on-market day, and not at all
/// without one; a listing the reads found new since counts whatever its date; a baseline
/// listing's later cut counts as any other's.
#[test]
fn a_first_read_counts_as_new_only_the_listings_listed_that_day() {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 2, 12, 0, 0)
        .single()
        .expect("time");
    let day = at.date_naive();
    let dated = |n, on_market: Option<chrono::NaiveDate>| {
        let mut l = listing(n, 0, 30_000_000, ListingStatus::Active, at);
        l.on_market_date = on_market;
        l
    };
    let weeks_ago = day.checked_sub_days(chrono::Days::new(20));
    let older = dated(2, weeks_ago);
    let mut news = dated(5, weeks_ago);
    news.observed_at = at + Duration::hours(1);
    let mut cut = older.clone();
    cut.price_minor = 27_000_000;
    cut.observed_at = at + Duration::hours(2);
    let events = [
        ListingEvent::baseline_listing(dated(1, Some(day)), "poll-1"),
        ListingEvent::baseline_listing(older.clone(), "poll-1"),
        ListingEvent::baseline_listing(dated(3, None), "poll-1"),
        ListingEvent::new_listing(news, "poll-2"),
        ListingEvent::changed(&older, cut, "poll-3").expect("a change"),
    ];
    let records = records_of(&events);
    for split in 0..=records.len() {
        let stores = delivered_in_two(&records, split);
        let aggregates = stores.aggregates.lock().expect("lock");
        let city = &aggregates[&Scope::city("nashville-tn").key()].aggregate;
        let counts = city.daily[&day];
        assert_eq!(
            (counts.new_listings, counts.price_cuts, city.active),
            (2, 1, 4),
            "batches cut after {split}"
        );
    }
}
