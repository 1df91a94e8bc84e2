//! A market's live item as the metrics function writes it and every reader reads it back:
//! a month-old city market of 3,000 listings, its parts packed (encoded, DEFLATE-compressed
//! together) and unpacked, and its figures. The metrics function packs one item per market a
//! batch touches (about 175 a regional 1,000-event batch), and computes its figures.

// Test code: exempt from the 80-line bar (clippy.toml).
#![allow(clippy::too_many_lines)]

use std::hint::black_box;
use std::sync::Arc;

use chrono::{Duration, NaiveDate};
use criterion::Criterion;
use realty_metrics::aggregate::{Contribution, DailyCounts, DayClose, ListingFacts, Standing};
use realty_metrics::items::MarketLiveItem;
use realty_metrics::ports::StoredAggregate;
use realty_model::listing::PropertyType;

/// A city market as a month of a regional feed leaves it: 3,000 active listings spread
/// over prices, sizes, bedrooms and listing days, 36 days of counters and 35 closes.
fn a_month_old_city() -> StoredAggregate {
    let mut stored = StoredAggregate::default();
    let first = NaiveDate::from_ymd_opt(2026, 10, 20).expect("date");
    for i in 0..36 {
        let day = first + Duration::days(i);
        stored.aggregate.daily.insert(
            day,
            DailyCounts {
                new_listings: 90 + i % 7,
                price_cuts: 40 + i % 5,
                price_rises: 6,
                delistings: 20 + i % 3,
                cut_bp_sum: 21_000 + 37 * i,
            },
        );
        if i < 35 {
            stored.aggregate.closing.insert(
                day,
                DayClose {
                    median_price: Some(450_000.0 + 1_000.0 * i as f64),
                    median_price_per_sqft: Some(300.0 + i as f64),
                },
            );
        }
    }
    let city: Arc<str> = Arc::from("austin-tx");
    for i in 0..3_000_i64 {
        // A deterministic spread (a multiplicative hash), not a grid.
        let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        let area = 600 + (h % 3_600) as u32;
        let per_sqft = 180 + (h / 3_600 % 250) as i64;
        let facts = ListingFacts {
            standing: Standing::Active,
            property_type: PropertyType::SingleFamily,
            city_state: city.clone(),
            zip: None,
            price_minor: i64::from(area) * per_sqft * 100,
            living_area_sqft: (!h.is_multiple_of(33)).then_some(area),
            beds: (!h.is_multiple_of(29)).then_some(1 + (h % 5) as u16),
            on_market_day: Some(20_380 + (h % 60) as i32),
            rent_estimate_minor: (h % 5 < 3).then_some(i64::from(area) * 160),
            has_cut: h.is_multiple_of(4),
        };
        stored.aggregate.apply(&Contribution::Add(Arc::new(facts)));
    }
    stored
}

fn main() {
    let stored = a_month_old_city();
    let item = MarketLiveItem::new("city#austin-tx#all", &stored);
    let packed = item.packed.as_ref().map_or(0, Vec::len);
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("market_item");
    group.bench_function("pack", |b| {
        b.iter(|| MarketLiveItem::new(black_box("city#austin-tx#all"), black_box(&stored)))
    });
    group.bench_function("unpack", |b| {
        b.iter(|| {
            black_box(item.clone())
                .into_stored()
                .map(|s| s.aggregate.active)
        })
    });
    // Every market a batch writes computes its figures at least once (its day's close).
    group.bench_function("figures", |b| {
        b.iter(|| black_box(&stored.aggregate).figures())
    });
    group.finish();
    criterion.final_summary();
    println!("market_item: a month-old city market of 3,000 listings packs to {packed} bytes");
}
