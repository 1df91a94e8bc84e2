//! The stored shapes of `realty_metrics::items` as DynamoDB items: their size as DynamoDB
//! counts it, and whether a listing's item fits.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use realty_model::ports::MAX_ITEM_BYTES;
use realty_model::state::ListingItem;
use realty_model::state::ListingState;

/// An item's size as DynamoDB counts it against the 400 KB limit and bills it: attribute
/// names plus values; strings and binaries by their bytes, numbers about one byte per two
/// significant digits plus one, null and booleans one byte, lists and maps three bytes plus
/// one per element.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
        AttributeValue::Ns(ns) => ns.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(bs) => bs.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// A number's bytes as DynamoDB stores it: base-100 digits aligned on the decimal point
/// (`1.5` is `01` and `50`), leading and trailing zero pairs dropped, one byte more for the
/// exponent, and one for a negative number's sign.
fn number_size(n: &str) -> usize {
    let negative = n.starts_with('-');
    if n.contains(['e', 'E']) {
        // An exponent moves the point the pairs align on: counted from above, a byte for
        // every digit's pair and one for a pair cut by the shift (serde_dynamo writes none).
        let digits = n.split(['e', 'E']).next().unwrap_or_default();
        let digits = digits.bytes().filter(u8::is_ascii_digit).count();
        return digits.div_ceil(2) + 2 + usize::from(negative);
    }
    let mantissa = n;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |part: &str| -> Vec<u8> { part.bytes().filter(u8::is_ascii_digit).collect() };
    let (mut whole, mut fraction) = (digits(whole), digits(fraction));
    if whole.len() % 2 == 1 {
        whole.insert(0, b'0');
    }
    if fraction.len() % 2 == 1 {
        fraction.push(b'0');
    }
    let pairs: Vec<&[u8]> = whole.chunks(2).chain(fraction.chunks(2)).collect();
    let zero = |p: &&[u8]| p.iter().all(|d| *d == b'0');
    let first = pairs.iter().position(|p| !zero(p));
    let last = pairs.iter().rposition(|p| !zero(p));
    let significant = match (first, last) {
        (Some(first), Some(last)) => last - first + 1,
        _ => 0,
    };
    significant + 1 + usize::from(negative)
}

/// Whether `state`'s listing item fits DynamoDB's item limit (`Err` says by how much not).
pub fn check_listing_item(state: &ListingState) -> Result<(), String> {
    let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(ListingItem::from(state))
        .map_err(|e| format!("listing item cannot be encoded: {e}"))?;
    let size = item_size(&item);
    if size > MAX_ITEM_BYTES {
        return Err(format!(
            "listing item of {size} bytes (as DynamoDB counts them) is over DynamoDB's {MAX_ITEM_BYTES}-byte item limit"
        ));
    }
    Ok(())
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    /// Base-100 digits aligned on the point, zero pairs at either end dropped, a byte for
    /// the exponent and one for a negative sign.
    #[test]
    fn numbers_are_counted_as_dynamodb_stores_them() {
        for (n, bytes) in [
            ("0", 1),
            ("7", 2),
            ("42", 2),
            ("123", 3),
            ("1.5", 3),
            ("-5", 3),
            ("-1.25", 4),
            ("0.001", 2),
            ("-0.0012", 3),
            ("1000", 2),
            ("1000000", 2),
            ("12345", 4),
            ("123456789012", 7),
            ("15e-1", 3),
        ] {
            assert_eq!(number_size(n), bytes, "{n}");
        }
    }
    use chrono::{Duration, NaiveDate};
    use std::sync::Arc;

    use realty_metrics::aggregate::rents::ByBedrooms;
    use realty_metrics::aggregate::{Contribution, DailyCounts, DayClose, ListingFacts, Standing};
    use realty_metrics::histogram::LogHistogram;
    use realty_metrics::items::MarketLiveItem;
    use realty_metrics::ports::StoredAggregate;
    use realty_metrics::values::ValueCounts;
    use realty_model::listing::PropertyType;

    /// A market as a feed leaves it after a month: every day it keeps has counters and a close.
    fn a_month_old_market() -> StoredAggregate {
        let mut stored = StoredAggregate::default();
        let first = NaiveDate::from_ymd_opt(2026, 10, 20).expect("date");
        for i in 0..36 {
            let day = first + Duration::days(i);
            stored.aggregate.daily.insert(
                day,
                DailyCounts {
                    new_listings: 14 + i,
                    price_cuts: 6,
                    price_rises: 1,
                    delistings: 3,
                    cut_bp_sum: 4_200,
                },
            );
            if i < 35 {
                stored.aggregate.closing.insert(
                    day,
                    DayClose {
                        median_price: Some(498_765.43),
                        median_price_per_sqft: Some(301.25),
                    },
                );
            }
        }
        // Active listings, all but one with a bedroom count.
        for i in 0..40_i64 {
            let facts = ListingFacts {
                standing: Standing::Active,
                property_type: PropertyType::SingleFamily,
                city_state: "austin-tx".into(),
                zip: Some("78701".into()),
                price_minor: 25_000_000 + 1_900_000 * i,
                living_area_sqft: Some(1_200 + 40 * i as u32),
                beds: (i != 7).then_some(1 + (i % 5) as u16),
                on_market_day: Some(20_400),
                rent_estimate_minor: None,
                has_cut: false,
            };
            stored.aggregate.apply(&Contribution::Add(Arc::new(facts)));
        }
        stored
    }

    /// A set of values as the histogram a build before 2026-11-29 stored it (`scale`: yields
    /// were fractions, now basis points).
    fn legacy_histogram(values: &ValueCounts, scale: f64) -> Vec<u8> {
        let mut h = LogHistogram::default();
        for (v, n) in values.values() {
            for _ in 0..n {
                h.add(v as f64 / scale);
            }
        }
        h.encode()
    }

    #[test]
    fn a_market_items_parts_are_one_packed_attribute_read_back_exactly() {
        let stored = a_month_old_market();
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(MarketLiveItem::new("city#austin-tx#all", &stored))
                .expect("item");
        assert!(
            matches!(item.get("packed"), Some(AttributeValue::B(_))),
            "{:?}",
            item.get("packed")
        );
        for apart in ["daily", "closing", "hist_price", "hist_price_per_sqft"] {
            assert!(!item.contains_key(apart), "{apart} is packed");
        }
        let read: MarketLiveItem = serde_dynamo::from_item(item).expect("reads");
        let back = read.into_stored().expect("stored");
        assert_eq!(back, stored);
        assert!(!back.aggregate.figures().approximate_medians);
    }

    /// Items written before 2026-11-29 hold histograms: apart (before 2026-11-26), as maps
    /// of days (before that), or packed as format 1. They read as their buckets' midpoints,
    /// bucketed, and their medians say they are within 1 %.
    #[test]
    fn the_histogram_forms_written_before_still_read_bucketed() {
        let stored = a_month_old_market();
        let a = &stored.aggregate;
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(MarketLiveItem::new("city#austin-tx#all", &stored))
                .expect("item");
        let by_bedrooms = |g: &ByBedrooms| {
            let mut out = Vec::new();
            for (group, values) in &g.0 {
                let bytes = legacy_histogram(values, 1.0);
                // The group's code (its digit), its histogram's length (one varint byte for
                // a month-old market's), the histogram.
                out.push(group.label().chars().next().map_or(0, |c| c as u8 - b'0'));
                out.push(
                    u8::try_from(bytes.len())
                        .ok()
                        .filter(|n| *n < 0x80)
                        .expect("short"),
                );
                out.extend_from_slice(&bytes);
            }
            out
        };
        let mut apart = item.clone();
        apart.remove("packed");
        let without_beds = a
            .price
            .without(&a.rents.price_by_bedrooms.all().expect("groups"))
            .expect("no drift");
        for (name, bytes) in [
            (
                "hist_price_without_beds",
                legacy_histogram(&without_beds, 1.0),
            ),
            (
                "hist_price_per_sqft",
                legacy_histogram(&a.price_per_sqft, 1.0),
            ),
            ("hist_living_area", legacy_histogram(&a.living_area, 1.0)),
            ("hist_listed_day_negated", a.listed_day_negated.encode()),
            ("hist_gross_yield", legacy_histogram(&a.gross_yield, 1e4)),
            ("hist_rent", legacy_histogram(&a.rents.rent, 1.0)),
            (
                "hist_rent_per_sqft",
                legacy_histogram(&a.rents.rent_per_sqft, 1.0),
            ),
            (
                "hist_rent_by_bedrooms",
                by_bedrooms(&a.rents.rent_by_bedrooms),
            ),
            (
                "hist_price_by_bedrooms",
                by_bedrooms(&a.rents.price_by_bedrooms),
            ),
        ] {
            apart.insert(name.to_owned(), AttributeValue::B(bytes.into()));
        }
        let days = |d: Vec<u8>| AttributeValue::B(d.into());
        apart.insert(
            "daily".to_owned(),
            days(realty_metrics::items::market_days::encode(&a.daily)),
        );
        apart.insert(
            "closing".to_owned(),
            days(realty_metrics::items::market_days::encode(&a.closing)),
        );
        let old: MarketLiveItem = serde_dynamo::from_item(apart.clone()).expect("reads apart");
        let old = old.into_stored().expect("stored");
        let (exact, legacy) = (a.figures(), old.aggregate.figures());
        assert!(legacy.approximate_medians);
        assert_eq!(old.aggregate.daily, a.daily);
        assert_eq!(old.aggregate.closing, a.closing);
        assert_eq!(
            (legacy.active_listings, legacy.average_price),
            (exact.active_listings, exact.average_price)
        );
        for (name, e, l) in [
            ("price", exact.median_price, legacy.median_price),
            (
                "per sqft",
                exact.median_price_per_sqft,
                legacy.median_price_per_sqft,
            ),
        ] {
            let (e, l) = (e.expect("a median"), l.expect("a median"));
            assert!((l / e - 1.0).abs() < 0.011, "{name}: {l} against {e}");
        }
        // A listing of the legacy item leaves it without an underflow: removals take its
        // bucket's midpoint, as the histogram did.
        let mut legacy_aggregate = old.aggregate.clone();
        let first = a.price.values().next().expect("a price").0;
        assert_eq!(legacy_aggregate.price.remove(first), Ok(()));

        // ... and as one before that: the days as maps of maps by date, and the whole price
        // histogram (before it was stored by bedrooms).
        let mut before = apart.clone();
        before.insert(
            "daily".to_owned(),
            serde_dynamo::to_attribute_value(&a.daily).expect("map"),
        );
        before.insert(
            "closing".to_owned(),
            serde_dynamo::to_attribute_value(&a.closing).expect("map"),
        );
        before.insert(
            "hist_price".to_owned(),
            AttributeValue::B(legacy_histogram(&a.price, 1.0).into()),
        );
        before.remove("hist_price_without_beds");
        let older: MarketLiveItem = serde_dynamo::from_item(before).expect("reads maps");
        assert_eq!(older.into_stored().expect("stored"), old);
    }

    #[test]
    fn an_empty_market_packs_and_reads_back() {
        let stored = StoredAggregate::default();
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(MarketLiveItem::new("zip#78701#all", &stored)).expect("item");
        let read: MarketLiveItem = serde_dynamo::from_item(item).expect("reads");
        assert_eq!(read.into_stored().expect("stored"), stored);
    }

    #[test]
    fn a_corrupt_packed_attribute_is_an_item_error() {
        let stored = a_month_old_market();
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(MarketLiveItem::new("city#austin-tx#all", &stored))
                .expect("item");
        item.insert(
            "packed".to_owned(),
            AttributeValue::B(vec![1, 0xff, 0xfe].into()),
        );
        let read: MarketLiveItem = serde_dynamo::from_item(item).expect("its attributes read");
        let err = read.into_stored().expect_err("its parts do not");
        assert!(err.to_string().contains("packed"), "{err}");
    }
}
