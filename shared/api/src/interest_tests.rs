//! The listings of interest the metrics batch keeps, as the API lists them.

use chrono::TimeZone;

use chrono::{DateTime, Duration, Utc};

use crate::lists::listings_of_interest;
use realty_metrics::interest::*;
use realty_metrics::memory::MemoryStores;
use realty_metrics::process::process_batch;
use realty_metrics::testing::{SHARD, block_on, listing, records_of};
use realty_model::listing::{Listing, ListingEvent, ListingStatus};
use realty_model::state::InterestKind;

const MARKET: &str = "nashville-tn";

/// The list as read a day after the tests' events (nothing expired).
fn list(stores: &MemoryStores, kind: InterestKind) -> Vec<InterestingListing> {
    list_at(stores, kind, at(24 * 60))
}

fn list_at(
    stores: &MemoryStores,
    kind: InterestKind,
    now: DateTime<Utc>,
) -> Vec<InterestingListing> {
    block_on(listings_of_interest(stores, MARKET, kind, 10, None, now))
        .expect("list")
        .expect("the market has figures")
        .listings
}

fn ids(listings: &[InterestingListing]) -> Vec<&str> {
    listings.iter().map(|l| l.listing_id.as_str()).collect()
}

/// A minute of the morning the tests' events are observed in.
fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0)
        .single()
        .expect("time")
        + Duration::minutes(minute)
}

/// Twelve new listings at about $200 a sq ft, each a little dearer (a tight market, so a
/// listing far below it is an anomaly), and that listing: undervalued and anomalous.
fn tight_market_and_a_cheap_listing() -> (Vec<ListingEvent>, Listing) {
    let events = (0..12u32)
        .map(|n| {
            let mut l = listing(
                2 * n,
                0,
                30_000_000,
                ListingStatus::Active,
                at(i64::from(n)),
            );
            let area = i64::from(l.living_area_sqft.expect("area"));
            l.price_minor = area * (20_000 + i64::from(n) * 100);
            ListingEvent::new_listing(l, "poll-1")
        })
        .collect();
    (
        events,
        listing(98, 0, 2_000_000, ListingStatus::Active, at(20)),
    )
}

/// The lists follow the listings: a cheap listing is undervalued and anomalous from the
/// batch it appears in, a cut is logged with its size, and a delisting takes the
/// listing out of both sets (its entries deleted, not merely hidden).
#[test]
fn lists_of_interest_follow_the_listings() {
    let (mut events, cheap) = tight_market_and_a_cheap_listing();
    let cheap_id = cheap.id.as_str().to_owned();
    events.push(ListingEvent::new_listing(cheap.clone(), "poll-1"));
    let stores = MemoryStores::default();
    let records = records_of(&events);
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);

    let figures = block_on(crate::views::market_report(&stores, MARKET))
        .expect("report")
        .expect("figures")
        .live;
    let below = figures.price_per_sqft_anomaly_below.expect("bounds");
    assert!(20.0 < below, "the cheap listing is below {below}");
    let undervalued = list(&stores, InterestKind::Undervalued);
    assert_eq!(ids(&undervalued), [cheap_id.as_str()]);
    assert!(undervalued[0].price_per_sqft_to_median.expect("ratio") < 0.8);
    let anomalous = list(&stores, InterestKind::Anomalous);
    assert_eq!(ids(&anomalous), [cheap_id.as_str()]);
    assert_eq!(anomalous[0].anomaly, Some(Anomaly::Low));
    assert!(list(&stores, InterestKind::PriceCut).is_empty());

    // A 10 % cut of one listing, then the cheap one leaves the market.
    let before = events[1].listing.clone();
    let mut after = before.clone();
    after.price_minor = before.price_minor / 10 * 9;
    after.observed_at = at(60);
    let cut = ListingEvent::changed(&before, after, "poll-2").expect("a change");
    let gone = ListingEvent::delisted(cheap, at(61), "poll-2");
    let mut more = records_of(&[events.clone(), vec![cut, gone]].concat());
    let more = more.split_off(events.len());
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &more));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);

    let cuts = list(&stores, InterestKind::PriceCut);
    assert_eq!(cuts.len(), 1);
    let was = before.price_minor as f64 / 100.0;
    assert_eq!(
        (cuts[0].previous_price, cuts[0].price, cuts[0].cut_pct),
        (Some(was), was / 10.0 * 9.0, Some(10.0))
    );
    // Past its TTL the cut is no longer shown, though DynamoDB may not have deleted it.
    let expiry = at(60) + Duration::days(PRICE_CUT_DAYS);
    let just_before = expiry - Duration::seconds(1);
    assert_eq!(
        list_at(&stores, InterestKind::PriceCut, just_before).len(),
        1
    );
    assert!(list_at(&stores, InterestKind::PriceCut, expiry).is_empty());
    for kind in [InterestKind::Undervalued, InterestKind::Anomalous] {
        assert!(!ids(&list(&stores, kind)).contains(&cheap_id.as_str()));
        let entry = (interest_key(MARKET), sort_key(kind, &cheap_id, at(0)));
        assert!(
            !stores.keyed.lock().expect("lock").contains_key(&entry),
            "the delisted listing's {} entry is deleted",
            kind.as_str()
        );
    }
}

/// A listing on a city's lists that moves to another city (its address corrected) has
/// its entries deleted from the old city's lists.
#[test]
fn a_listing_that_moves_city_leaves_the_old_city_s_lists() {
    let (mut events, cheap) = tight_market_and_a_cheap_listing();
    let cheap_id = cheap.id.as_str().to_owned();
    events.push(ListingEvent::new_listing(cheap.clone(), "poll-1"));
    let stores = MemoryStores::default();
    let records = records_of(&events);
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!(
        ids(&list(&stores, InterestKind::Undervalued)),
        [cheap_id.as_str()]
    );

    let mut moved = cheap.clone();
    moved.address.city = "Brentwood".into();
    moved.market.city_state = "brentwood-tn".into();
    moved.observed_at = at(60);
    let change = ListingEvent::changed(&cheap, moved, "poll-2").expect("a change");
    let mut more = records_of(&[events.clone(), vec![change]].concat());
    let more = more.split_off(events.len());
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &more));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    let keyed = stores.keyed.lock().expect("lock");
    for kind in [InterestKind::Undervalued, InterestKind::Anomalous] {
        let entry = (interest_key(MARKET), sort_key(kind, &cheap_id, at(0)));
        assert!(
            !keyed.contains_key(&entry),
            "the moved listing's {} entry in {MARKET} is deleted",
            kind.as_str()
        );
    }
}

/// The memory store, reading at most `cap` entries of a list at once.
struct Capped<'a> {
    stores: &'a MemoryStores,
    cap: usize,
}

impl realty_metrics::reader::MarketReader for Capped<'_> {
    async fn live(
        &self,
        scope_key: &str,
    ) -> Result<Option<realty_metrics::items::MarketLiveItem>, realty_model::ports::PortError> {
        self.stores.live(scope_key).await
    }
    async fn stored_snapshots(
        &self,
        scope_key: &str,
        from_sort_key: &str,
        to_sort_key: &str,
    ) -> Result<Vec<realty_metrics::items::MarketSnapshotItem>, realty_model::ports::PortError>
    {
        self.stores
            .stored_snapshots(scope_key, from_sort_key, to_sort_key)
            .await
    }
    async fn latest<T: serde::de::DeserializeOwned>(
        &self,
        partition_key: &str,
        prefix: &str,
        below: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<T>, Option<String>), realty_model::ports::PortError> {
        self.stores
            .latest(partition_key, prefix, below, limit.min(self.cap))
            .await
    }
}

/// A set with more entries than the API reads at once is ranked from those it read, and
/// the list says it is not complete.
#[test]
fn a_ranking_of_part_of_a_set_says_so() {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 20, 9, 0, 0)
        .single()
        .expect("time");
    let mut events: Vec<ListingEvent> = (0..12u32)
        .map(|n| {
            let mut l = listing(2 * n, 0, 30_000_000, ListingStatus::Active, at);
            l.price_minor = i64::from(l.living_area_sqft.expect("area")) * 20_000;
            ListingEvent::new_listing(l, "poll-1")
        })
        .collect();
    for n in [96, 98] {
        let cheap = listing(n, 0, 2_000_000, ListingStatus::Active, at);
        events.push(ListingEvent::new_listing(cheap, "poll-1"));
    }
    let stores = MemoryStores::default();
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records_of(&events)));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    let read = |cap: usize| {
        let reader = Capped {
            stores: &stores,
            cap,
        };
        block_on(listings_of_interest(
            &reader,
            MARKET,
            InterestKind::Undervalued,
            10,
            None,
            at + Duration::days(1),
        ))
        .expect("list")
        .expect("figures")
    };
    let whole = read(usize::MAX);
    assert!(whole.complete);
    assert_eq!(whole.listings.len(), 2);
    let part = read(1);
    assert!(!part.complete);
    assert_eq!(part.listings.len(), 1);
    // Price cuts page instead: a page is complete.
    let reader = Capped {
        stores: &stores,
        cap: 1,
    };
    let cuts = block_on(listings_of_interest(
        &reader,
        MARKET,
        InterestKind::PriceCut,
        10,
        None,
        at + Duration::days(1),
    ))
    .expect("list")
    .expect("figures");
    assert!(cuts.complete);
}
