//! Unit tests of the market aggregate: its scopes, contributions, figures and encoding.

use super::*;
use crate::aggregate::rents::YieldBasis;
use crate::values::ValueCounts;
use realty_model::listing::PropertyType;

fn facts(price: i64, area: u32, standing: Standing) -> ListingFacts {
    ListingFacts {
        standing,
        property_type: PropertyType::SingleFamily,
        city_state: "nashville-tn".into(),
        zip: Some("37201".into()),
        price_minor: price,
        living_area_sqft: Some(area),
        on_market_day: Some(20_000),
        beds: Some(3),
        rent_estimate_minor: Some(price / 200),
        has_cut: false,
    }
}

#[test]
fn a_listing_counts_in_four_scopes() {
    let keys: Vec<String> = facts(1, 1, Standing::Active)
        .scopes()
        .iter()
        .map(Scope::key)
        .collect();
    assert_eq!(
        keys,
        [
            "city#nashville-tn#all",
            "city#nashville-tn#single_family",
            "zip#37201#all",
            "zip#37201#single_family"
        ]
    );
}

/// A postal code abroad has its own ZIP market, not the US ZIP it spells.
#[test]
fn a_postal_code_abroad_is_not_the_us_zip_it_spells() {
    let market = |city_state: &str| realty_model::listing::MarketKey {
        city_state: city_state.into(),
        zip: Some("75001".into()),
    };
    assert_eq!(zip_geo(&market("addison-tx")).as_deref(), Some("75001"));
    assert_eq!(zip_geo(&market("fr/paris")).as_deref(), Some("fr/75001"));
    let paris = ListingFacts {
        city_state: "fr/paris".into(),
        zip: zip_geo(&market("fr/paris")),
        ..facts(1, 1, Standing::Active)
    };
    let keys: Vec<String> = paris.scopes().iter().map(Scope::key).collect();
    assert_eq!(keys[2], "zip#fr/75001#all");
    let none = realty_model::listing::MarketKey {
        zip: None,
        ..market("fr/paris")
    };
    assert_eq!(zip_geo(&none), None);
}

/// A skewed market (most homes near $200/sqft, a long tail of dear ones): the bounds stay
/// above zero, the far tail and a give-away are flagged, the ordinary spread is not.
#[test]
fn anomaly_bounds_are_on_a_log_scale_and_never_below_zero() {
    let mut a = MarketAggregate::default();
    let per_sqft = [
        150, 170, 180, 190, 195, 200, 200, 205, 210, 220, 240, 260, 300, 380, 520, 900, 3_000,
    ];
    for (i, dollars) in per_sqft.iter().enumerate() {
        let area = 1_000 + i as u32;
        let f = facts(dollars * 100 * i64::from(area), area, Standing::Active);
        a.apply(&Contribution::Add(Arc::new(f)));
    }
    let cheap = facts(20 * 100 * 1_500, 1_500, Standing::Active);
    a.apply(&Contribution::Add(Arc::new(cheap)));
    let (low, high) = a.anomaly_bounds().expect("bounds");
    assert!(low > 0.0, "{low}");
    let ppsf = |dollars: f64| dollars * 100.0;
    assert!(low > ppsf(20.0) && low < ppsf(150.0), "{low}");
    assert!(high > ppsf(300.0) && high < ppsf(3_000.0), "{high}");
    let outside = per_sqft
        .iter()
        .chain(&[20])
        .filter(|d| ppsf(**d as f64) < low || ppsf(**d as f64) > high)
        .count() as i64;
    assert!(outside >= 2);
    assert_eq!(a.figures().anomalous_listings, outside);
}

#[test]
fn add_then_remove_leaves_nothing() {
    let mut a = MarketAggregate::default();
    let f = facts(40_000_000, 2_000, Standing::Active);
    a.apply(&Contribution::Add(Arc::new(f.clone())));
    assert_eq!(a.active, 1);
    assert_eq!(a.price_sum_minor, 40_000_000);
    a.apply(&Contribution::Remove(Arc::new(f)));
    assert_eq!(a, MarketAggregate::default());
}

#[test]
fn prices_are_stored_by_bedrooms_and_read_back_whole() {
    let mut a = MarketAggregate::default();
    for (i, beds) in [Some(1), Some(3), Some(3), None, Some(6)]
        .into_iter()
        .enumerate()
    {
        let mut f = facts(30_000_000 + 7_000_000 * i as i64, 1_500, Standing::Active);
        f.beds = beds;
        a.apply(&Contribution::Add(Arc::new(f)));
    }
    let encoded = a.encode_values();
    // Only the listing without a bedroom count is stored beside the by-bedroom groups.
    assert_eq!(encoded.price, None);
    assert_eq!(
        ValueCounts::decode(&encoded.price_without_beds)
            .unwrap()
            .count(),
        1
    );
    let mut back = MarketAggregate::default();
    back.set_values(&encoded, ValueLayout::Exact).unwrap();
    assert_eq!(back.price, a.price);
    assert_eq!(back.figures().median_price, a.figures().median_price);

    // Drifted apart (a group holds a price the whole does not): the whole is stored.
    let mut drifted = a.clone();
    assert!(drifted.price.remove(30_000_000).is_ok());
    let encoded = drifted.encode_values();
    assert!(encoded.price.is_some());
    let mut back = MarketAggregate::default();
    back.set_values(&encoded, ValueLayout::Exact).unwrap();
    assert_eq!(back.price, drifted.price);
}

/// Rents are stored as prices are: by bedrooms, beside those without a count, and read back
/// whole.
#[test]
fn rents_are_stored_by_bedrooms_and_read_back_whole() {
    let mut a = MarketAggregate::default();
    for (i, beds) in [Some(1), Some(2), None, Some(2)].into_iter().enumerate() {
        let mut f = facts(180_000 + 10_000 * i as i64, 900, Standing::Rental);
        f.beds = beds;
        a.apply(&Contribution::Add(Arc::new(f)));
    }
    let encoded = a.encode_values();
    assert_eq!(encoded.rent, None);
    let mut back = MarketAggregate::default();
    back.set_values(&encoded, ValueLayout::Exact).unwrap();
    assert_eq!(back.rents, a.rents);
    assert_eq!(back.figures().median_rent, Some(1_900.0));
}

/// The medians are the listings' own values: a city of Nashville's and one of Austin's no
/// longer read the same bucket's midpoint.
#[test]
fn medians_are_the_listings_own_values_to_the_cent() {
    let mut a = MarketAggregate::default();
    for (price, area) in [
        (54_990_000, 1_733),
        (55_490_000, 1_650),
        (52_500_000, 2_010),
        (61_000_000, 1_999),
    ] {
        a.apply(&Contribution::Add(Arc::new(facts(
            price,
            area,
            Standing::Active,
        ))));
    }
    let f = a.figures();
    assert_eq!(f.median_price, Some(549_900.0));
    // $/sqft: 317.31, 336.30, 261.19, 305.15: the lower middle of four.
    assert_eq!(f.median_price_per_sqft, Some(305.15));
    assert_eq!(f.median_living_area_sqft, Some(1_733.0));
    assert_eq!(f.average_price, Some(559_950.0));
    assert!(!f.approximate_medians);
    // Bucketed, they are within 1 % and say so.
    let f = a.bucketed().figures();
    assert!(f.approximate_medians);
    assert!((f.median_price.unwrap() / 549_900.0 - 1.0).abs() < 0.01);
}

/// Past [`MAX_EXACT_VALUE_BYTES`] a market is stored bucketed; at most it, exactly.
#[test]
fn a_market_too_large_to_store_exactly_is_stored_bucketed() {
    let mut a = MarketAggregate::default();
    let mut n = 0i64;
    // Prices a few cents apart take about 2 bytes each in every set they are in.
    while a.encode_values().len() <= MAX_EXACT_VALUE_BYTES {
        for _ in 0..500 {
            n += 1;
            let f = facts(
                30_000_000 + 7_919 * n,
                900 + (n % 4_000) as u32,
                Standing::Active,
            );
            a.apply(&Contribution::Add(Arc::new(f)));
        }
    }
    assert!(a.as_stored().is_bucketed());
    assert!(a.as_stored().encode_values().len() < 64 * 1024);
    assert_eq!(a.as_stored().active, a.active);
    // Back under the bound: exact.
    let mut smaller = a.clone();
    while smaller.encode_values().len() > MAX_EXACT_VALUE_BYTES {
        let f = facts(
            30_000_000 + 7_919 * n,
            900 + (n % 4_000) as u32,
            Standing::Active,
        );
        assert!(smaller.apply(&Contribution::Remove(Arc::new(f))).is_empty());
        n -= 1;
    }
    assert!(!smaller.as_stored().is_bucketed());
}

#[test]
fn removing_a_listing_the_market_does_not_hold_is_reported() {
    let mut a = MarketAggregate::default();
    let held = facts(40_000_000, 2_000, Standing::Active);
    assert!(a.apply(&Contribution::Add(Arc::new(held))).is_empty());
    let stranger = facts(90_000_000, 3_000, Standing::Active);
    let underflows = a.apply(&Contribution::Remove(Arc::new(stranger.clone())));
    let whats: Vec<&str> = underflows.iter().map(|u| u.what).collect();
    // The count goes to zero (one listing held, one removed): not an underflow; the
    // histograms where the stranger's bucket differs from the held listing's miss it.
    assert_eq!(
        whats,
        [
            "price",
            "price_per_sqft",
            "living_area",
            "price_by_bedrooms"
        ]
    );
    assert_eq!(underflows[0].value, 90_000_000);
    assert_eq!(a.price.count(), 1, "the held listing stays counted");
    let again = a.apply(&Contribution::Remove(Arc::new(stranger)));
    assert!(again.iter().any(|u| u.what == "active"), "{again:?}");
    assert!(
        again
            .iter()
            .any(|u| u.what == "listed_day" && u.value == 20_000)
    );
    assert!(again.iter().any(|u| u.what == "gross_yield"));
}

#[test]
fn figures_of_a_small_market() {
    let mut a = MarketAggregate::default();
    for (price, area) in [
        (30_000_000, 1_500),
        (40_000_000, 2_000),
        (50_000_000, 2_500),
    ] {
        a.apply(&Contribution::Add(Arc::new(facts(
            price,
            area,
            Standing::Active,
        ))));
    }
    a.apply(&Contribution::Add(Arc::new(facts(
        60_000_000,
        3_000,
        Standing::Pending,
    ))));
    let day = NaiveDate::from_ymd_opt(2024, 10, 5).unwrap();
    a.apply(&Contribution::Count {
        day,
        counter: Counter::PriceCut,
        cut_bp: 1_000,
    });
    a.apply(&Contribution::Count {
        day,
        counter: Counter::PriceCut,
        cut_bp: 2_000,
    });
    a.advance_to(day.and_hms_opt(12, 0, 0).unwrap().and_utc());
    let f = a.figures();
    assert_eq!(
        (f.active_listings, f.pending_listings, f.total_listings),
        (3, 1, 4)
    );
    assert_eq!(f.average_price, Some(400_000.0));
    assert!((f.median_price.unwrap() / 400_000.0 - 1.0).abs() < 0.01);
    assert!((f.median_price_per_sqft.unwrap() / 200.0 - 1.0).abs() < 0.01);
    assert_eq!(f.price_cuts_today, 2);
    assert_eq!(f.average_cut_pct_7d, Some(15.0));
    assert!((f.gross_yield.unwrap() / 0.06 - 1.0).abs() < 0.01);
    assert_eq!(f.yield_basis, Some(YieldBasis::RentEstimates));
    assert_eq!(
        f.median_days_on_market,
        Some(i64::from(day_number(day) - 20_000))
    );
}

/// Days on market are never negative: a listing dated ahead of the market's day counts 0.
#[test]
fn an_on_market_date_ahead_counts_no_days_on_market() {
    let mut a = MarketAggregate::default();
    let day = NaiveDate::from_ymd_opt(2024, 10, 5).unwrap();
    a.apply(&Contribution::Add(Arc::new(ListingFacts {
        on_market_day: Some(day_number(day) + 3),
        ..facts(40_000_000, 2_000, Standing::Active)
    })));
    a.advance_to(day.and_hms_opt(12, 0, 0).unwrap().and_utc());
    assert_eq!(a.figures().median_days_on_market, Some(0));
}

#[test]
fn old_daily_counters_roll_off() {
    let mut a = MarketAggregate::default();
    let day = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    a.apply(&Contribution::Count {
        day,
        counter: Counter::NewListing,
        cut_bp: 0,
    });
    a.advance_to(
        (day + Duration::days(DAILY_COUNTER_DAYS + 1))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc(),
    );
    assert!(a.daily.is_empty());
}
