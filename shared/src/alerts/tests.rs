//! The alert rules on listing-item pairs, the stream fixtures (events/alerts-dynamodb.json and
//! aws_lambda_events' own), and the batch workflow over in-memory ports with injected
//! failures and crashes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use serde_json::{Value, json};

use super::lambda::handle_event;
use super::message::{
    AlertBody, AlertMessage, MAX_BATCH_BYTES, MAX_SUBJECT_CHARS, format_money, message,
    publish_batches, sanitize_subject,
};
use super::ports::{
    AlertPublisher, Claim, IdempotencyStore, MarketMedians, PortError, PublishReport,
};
use super::process::{AlertOutcome, AlertPorts};
use super::rules::*;
use crate::items::ListingItem;
use crate::listing::{ListingId, ListingStatus, Offer, PropertyType};

const SAMPLE: &str = include_str!("../../../events/alerts-dynamodb.json");

fn sample_event() -> Event {
    serde_json::from_str(SAMPLE).expect("the sample is a DynamoDB stream event")
}

fn sample_record() -> EventRecord {
    sample_event().records.remove(0)
}

/// The listing of the sample (a Nashville condo of 630 sqft) after its change.
fn base() -> ListingItem {
    classify(sample_record()).expect("the sample decodes").new
}

/// A listing at `price` dollars with `area` sqft, version `version`.
fn item(id: &str, price: i64, area: Option<u32>, version: u32) -> ListingItem {
    let mut item = base();
    item.listing_id = id.to_owned();
    item.listing.id = ListingId::parse(id).expect("valid id");
    item.listing.price_minor = price * 100;
    item.listing.living_area_sqft = area;
    item.sequence = format!("{version:0>128}");
    item
}

fn in_syracuse(mut item: ListingItem, property_type: PropertyType) -> ListingItem {
    item.market = "syracuse-ny".into();
    item.listing.market.city_state = "syracuse-ny".into();
    item.listing.market.zip = Some("13202".into());
    item.listing.address.city = "Syracuse".into();
    item.listing.address.state = "NY".into();
    item.listing.address.postal_code = Some("13202".into());
    item.listing.property_type = property_type;
    item
}

fn change(old: &ListingItem, new: &ListingItem) -> ListingChange {
    ListingChange {
        sequence_number: "1".into(),
        old: old.clone(),
        new: new.clone(),
    }
}

fn kinds(alerts: &[Alert]) -> Vec<AlertKind> {
    alerts.iter().map(|a| a.kind).collect()
}

fn median(scope_key: &str, dollars_per_sqft: f64) -> MarketMedian {
    MarketMedian {
        scope_key: scope_key.into(),
        price_per_sqft: dollars_per_sqft,
    }
}

fn pct(p: f64) -> AlertThresholds {
    AlertThresholds {
        price_drop_centi_pct: (p * 100.0).round() as u32,
        ..AlertThresholds::default()
    }
}

// ---- price drops ----

#[test]
fn the_sample_event_is_a_twenty_percent_drop() {
    let change = classify(sample_record()).expect("decodes");
    assert_eq!(change.sequence_number, "4421584500000000017450439091");
    let alerts = evaluate(&change, &AlertThresholds::default(), None);
    assert_eq!(kinds(&alerts), [AlertKind::PriceDrop]);
    assert_eq!(alerts[0].price, PriceMove::between(42_500_000, 34_000_000));
    assert_eq!(alerts[0].price.drop_pct(), 20.0);
}

#[test]
fn rises_unchanged_prices_and_small_cuts_do_not_alert() {
    let t = AlertThresholds::default();
    let old = item("zillow:1", 200_000, Some(1_000), 1);
    for new_price in [200_000, 210_000, 190_000, 170_001] {
        let new = item("zillow:1", new_price, Some(1_000), 2);
        assert_eq!(price_drop(&old, &new, &t), None, "{new_price}");
        assert!(
            evaluate(&change(&old, &new), &t, None).is_empty(),
            "{new_price}"
        );
    }
}

#[test]
fn a_drop_of_exactly_the_threshold_alerts() {
    let old = item("zillow:1", 200_000, None, 1);
    let exactly = item("zillow:1", 170_000, None, 2);
    let drop = price_drop(&old, &exactly, &pct(15.0)).expect("15 % of 200,000 is 30,000");
    assert_eq!((drop.drop_minor, drop.drop_centi_pct), (3_000_000, 1_500));
    // Fractional thresholds compare exactly too: 12.5 % of 200,000 is 25,000.
    assert!(price_drop(&old, &item("zillow:1", 175_000, None, 2), &pct(12.5)).is_some());
    assert!(price_drop(&old, &item("zillow:1", 175_001, None, 2), &pct(12.5)).is_none());
    // A one-cent shortfall is not enough.
    let mut short = exactly.clone();
    short.listing.price_minor += 1;
    assert!(price_drop(&old, &short, &pct(15.0)).is_none());
}

#[test]
fn the_floor_holds_back_small_amounts() {
    let t = AlertThresholds {
        price_drop_centi_pct: 1_000,
        price_drop_min_minor: 50_000 * 100,
        ..AlertThresholds::default()
    };
    // 12 % of 300,000 is 36,000: over the percentage, under the floor.
    let cheap = (
        item("zillow:1", 300_000, None, 1),
        item("zillow:1", 264_000, None, 2),
    );
    assert!(price_drop(&cheap.0, &cheap.1, &t).is_none());
    // 12 % of 500,000 is 60,000.
    let dear = (
        item("zillow:1", 500_000, None, 1),
        item("zillow:1", 440_000, None, 2),
    );
    assert!(price_drop(&dear.0, &dear.1, &t).is_some());
    // Exactly the floor.
    let at = (
        item("zillow:1", 500_000, None, 1),
        item("zillow:1", 450_000, None, 2),
    );
    assert!(price_drop(&at.0, &at.1, &t).is_some());
    // The floor alone does not fire a drop under the percentage (50,000 of 1,000,000 is 5 %).
    let big = (
        item("zillow:1", 1_000_000, None, 1),
        item("zillow:1", 950_000, None, 2),
    );
    assert!(price_drop(&big.0, &big.1, &t).is_none());
}

#[test]
fn a_zero_threshold_alerts_on_any_cut_and_nothing_else() {
    let old = item("zillow:1", 200_000, None, 1);
    assert!(price_drop(&old, &item("zillow:1", 199_999, None, 2), &pct(0.0)).is_some());
    assert!(price_drop(&old, &item("zillow:1", 200_000, None, 2), &pct(0.0)).is_none());
}

#[test]
fn only_listed_sale_listings_alert() {
    let t = AlertThresholds::default();
    let old = item("zillow:1", 200_000, None, 1);
    let cut = item("zillow:1", 100_000, None, 2);
    assert!(price_drop(&old, &cut, &t).is_some());

    let mut rent = cut.clone();
    rent.listing.offer = Offer::Rent;
    let mut delisted = cut.clone();
    delisted.delisted = true;
    let mut sold = cut.clone();
    sold.listing.status = ListingStatus::Sold;
    let mut off = cut.clone();
    off.listing.status = ListingStatus::OffMarket;
    for new in [&rent, &delisted, &sold, &off] {
        assert!(price_drop(&old, new, &t).is_none(), "{new:?}");
    }
    // A pending sale is still a sale listing that can fall through.
    let mut pending = cut.clone();
    pending.listing.status = ListingStatus::Pending;
    assert!(price_drop(&old, &pending, &t).is_some());
    // A rent that became a sale price is no drop.
    let mut was_rent = old.clone();
    was_rent.listing.offer = Offer::Rent;
    assert!(price_drop(&was_rent, &cut, &t).is_none());
    // Nor is a change of currency.
    let mut other_currency = cut.clone();
    other_currency.listing.currency = "MAD".into();
    assert!(price_drop(&old, &other_currency, &t).is_none());
}

// ---- undervalued ----

/// Median 500 $/sqft and ratio 0.8: undervalued at 400 $/sqft or less (1,000 sqft: $400,000).
fn nashville_condo_median() -> MarketMedian {
    median("city#nashville-tn#condo", 500.0)
}

#[test]
fn undervalued_fires_on_the_way_down_to_the_bound() {
    let t = AlertThresholds::default();
    let m = nashville_condo_median();
    let old = item("zillow:1", 450_000, Some(1_000), 1);
    let at_bound = item("zillow:1", 400_000, Some(1_000), 2);
    assert!(undervalued(&old, &at_bound, &t, &m));
    let alerts = evaluate(&change(&old, &at_bound), &t, Some(&m));
    // An 11 % cut: no price drop, but undervalued.
    assert_eq!(kinds(&alerts), [AlertKind::Undervalued]);
    assert_eq!(alerts[0].price_per_sqft, Some(400.0));
    let above = item("zillow:1", 400_001, Some(1_000), 2);
    assert!(!undervalued(&old, &above, &t, &m));
}

#[test]
fn an_undervalued_listing_does_not_alert_again_unless_its_price_falls() {
    let t = AlertThresholds::default();
    let m = nashville_condo_median();
    let old = item("zillow:1", 390_000, Some(1_000), 1);
    // Same price, another field changed: nothing new, and no market read needed.
    let mut status = item("zillow:1", 390_000, Some(1_000), 2);
    status.listing.status = ListingStatus::UnderContract;
    assert!(!needs_median(&old, &status));
    assert!(!undervalued(&old, &status, &t, &m));
    assert!(evaluate(&change(&old, &status), &t, None).is_empty());
    // A rise that stays under the bound is no news either.
    assert!(!undervalued(
        &old,
        &item("zillow:1", 395_000, Some(1_000), 2),
        &t,
        &m
    ));
    // A further cut is.
    assert!(undervalued(
        &old,
        &item("zillow:1", 380_000, Some(1_000), 2),
        &t,
        &m
    ));
}

#[test]
fn relisting_below_the_bound_is_a_transition() {
    let t = AlertThresholds::default();
    let m = nashville_condo_median();
    let mut old = item("zillow:1", 390_000, Some(1_000), 1);
    old.delisted = true;
    let new = item("zillow:1", 390_000, Some(1_000), 2);
    assert!(needs_median(&old, &new));
    assert!(undervalued(&old, &new, &t, &m));
}

#[test]
fn undervalued_needs_an_area_and_a_median() {
    let t = AlertThresholds::default();
    let old = item("zillow:1", 450_000, None, 1);
    let new = item("zillow:1", 300_000, None, 2);
    assert!(!needs_median(&old, &new));
    // A 33 % cut still fires its price drop without a median.
    assert_eq!(
        kinds(&evaluate(&change(&old, &new), &t, None)),
        [AlertKind::PriceDrop]
    );
    let with_area = item("zillow:1", 300_000, Some(1_000), 2);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(
            !undervalued(&old, &with_area, &t, &median("m", bad)),
            "{bad}"
        );
    }
}

#[test]
fn a_big_cut_below_the_bound_makes_both_alerts() {
    let t = AlertThresholds::default();
    let m = nashville_condo_median();
    let old = item("zillow:1", 500_000, Some(1_000), 1);
    let new = item("zillow:1", 380_000, Some(1_000), 2);
    let alerts = evaluate(&change(&old, &new), &t, Some(&m));
    assert_eq!(
        kinds(&alerts),
        [AlertKind::PriceDrop, AlertKind::Undervalued]
    );
    assert_ne!(alerts[0].idempotency_key(), alerts[1].idempotency_key());
}

#[test]
fn the_property_type_median_comes_first_then_the_city() {
    let condo = item("zillow:1", 300_000, Some(1_000), 1);
    assert_eq!(
        median_scope_keys(&condo.listing),
        ["city#nashville-tn#condo", "city#nashville-tn#all"]
    );
    let both = BTreeMap::from([
        ("city#nashville-tn#condo".to_owned(), 500.0),
        ("city#nashville-tn#all".to_owned(), 300.0),
    ]);
    assert_eq!(
        pick_median(&condo.listing, &both),
        Some(median("city#nashville-tn#condo", 500.0))
    );
    let city_only = BTreeMap::from([
        ("city#nashville-tn#condo".to_owned(), f64::NAN),
        ("city#nashville-tn#all".to_owned(), 300.0),
    ]);
    assert_eq!(
        pick_median(&condo.listing, &city_only),
        Some(median("city#nashville-tn#all", 300.0))
    );
    assert_eq!(pick_median(&condo.listing, &BTreeMap::new()), None);
}

#[test]
fn the_idempotency_key_names_kind_listing_and_version() {
    let old = item("zillow:1", 200_000, None, 1);
    let new = item("zillow:1", 100_000, None, 42);
    let alerts = evaluate(&change(&old, &new), &AlertThresholds::default(), None);
    assert_eq!(alerts[0].idempotency_key(), "alert#price_drop#zillow:1#42");
    let later = item("zillow:1", 100_000, None, 43);
    let again = evaluate(&change(&old, &later), &AlertThresholds::default(), None);
    assert_ne!(alerts[0].idempotency_key(), again[0].idempotency_key());
}

// ---- decoding stream records ----

fn record_json() -> Value {
    serde_json::from_str::<Value>(SAMPLE).expect("json")["Records"][0].clone()
}

fn classify_json(record: Value) -> Result<ListingChange, Skipped> {
    classify(serde_json::from_value(record).expect("an EventRecord"))
}

#[test]
fn malformed_and_other_records_are_skipped_with_their_reason() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, SkipReason)> = vec![
        (
            "INSERT",
            Box::new(|r| r["eventName"] = json!("INSERT")),
            SkipReason::NotModify,
        ),
        (
            "REMOVE",
            Box::new(|r| {
                r["eventName"] = json!("REMOVE");
                r["dynamodb"]["NewImage"] = Value::Null;
            }),
            SkipReason::NotModify,
        ),
        (
            "no price",
            Box::new(|r| {
                let listing = &mut r["dynamodb"]["NewImage"]["listing"]["M"];
                listing.as_object_mut().expect("map").remove("price_minor");
            }),
            SkipReason::MalformedNewImage,
        ),
        (
            "price as text",
            Box::new(|r| {
                r["dynamodb"]["NewImage"]["listing"]["M"]["price_minor"] = json!({"S": "$340k"})
            }),
            SkipReason::MalformedNewImage,
        ),
        (
            "delisted as a number",
            Box::new(|r| r["dynamodb"]["OldImage"]["delisted"] = json!({"N": "0"})),
            SkipReason::MalformedOldImage,
        ),
        (
            "no old image (KEYS_ONLY or NEW_IMAGE stream)",
            Box::new(|r| {
                r["dynamodb"]
                    .as_object_mut()
                    .expect("map")
                    .remove("OldImage");
            }),
            SkipReason::NoOldImage,
        ),
        (
            "no new image",
            Box::new(|r| r["dynamodb"]["NewImage"] = json!({})),
            SkipReason::NoNewImage,
        ),
        (
            "no sequence number",
            Box::new(|r| {
                r["dynamodb"]
                    .as_object_mut()
                    .expect("map")
                    .remove("SequenceNumber");
            }),
            SkipReason::NoSequenceNumber,
        ),
        (
            "images of two listings",
            Box::new(|r| r["dynamodb"]["OldImage"]["listing_id"] = json!({"S": "zillow:1"})),
            SkipReason::InconsistentImages,
        ),
    ];
    for (name, edit, reason) in cases {
        let mut record = record_json();
        edit(&mut record);
        let skipped = classify_json(record).expect_err(name);
        assert_eq!(skipped.reason, reason, "{name}: {skipped}");
    }
}

/// The fixtures of aws_lambda_events, as they are and turned into MODIFY records.
fn library_fixtures() -> Vec<(&'static str, Value)> {
    let optional_fields: Value = serde_json::from_str(include_str!(
        "fixtures/example-dynamodb-event-record-with-optional-fields.json"
    ))
    .expect("json");
    vec![
        (
            "example-dynamodb-event",
            serde_json::from_str(include_str!("fixtures/example-dynamodb-event.json"))
                .expect("json"),
        ),
        (
            "example-dynamodb-event-null-items",
            serde_json::from_str(include_str!(
                "fixtures/example-dynamodb-event-null-items.json"
            ))
            .expect("json"),
        ),
        (
            "example-dynamodb-event-record-with-optional-fields",
            json!({ "Records": [optional_fields] }),
        ),
    ]
}

fn as_modify(mut event: Value) -> Value {
    for record in event["Records"].as_array_mut().expect("records") {
        record["eventName"] = json!("MODIFY");
        if record["dynamodb"]
            .get("OldImage")
            .is_none_or(Value::is_null)
        {
            record["dynamodb"]["OldImage"] = record["dynamodb"]["NewImage"].clone();
        }
    }
    event
}

#[tokio::test(flavor = "current_thread")]
async fn the_library_fixtures_are_skipped_without_failing_the_batch() {
    let world = World::default();
    for (name, fixture) in library_fixtures() {
        for (variant, json) in [
            ("as is", fixture.clone()),
            ("as MODIFY", as_modify(fixture)),
        ] {
            let event: Event = serde_json::from_value(json).expect(name);
            let n = event.records.len();
            let (response, outcome) = world.handle(event).await;
            assert!(response.batch_item_failures.is_empty(), "{name} {variant}");
            let skipped: usize = outcome.stats.skipped.values().sum();
            assert_eq!((skipped, outcome.stats.changes), (n, 0), "{name} {variant}");
            if variant == "as is" {
                assert_eq!(outcome.stats.skipped.get("not_modify"), Some(&n), "{name}");
            } else {
                assert!(
                    !outcome.stats.skipped.contains_key("not_modify"),
                    "{name} {variant}: {:?}",
                    outcome.stats.skipped
                );
            }
        }
    }
    assert!(world.publisher.published().is_empty());
}

// ---- the message ----

#[test]
fn the_message_of_the_sample() {
    let change = classify(sample_record()).expect("decodes");
    let m = median("city#nashville-tn#condo", 700.0);
    let alerts = evaluate(&change, &AlertThresholds::default(), Some(&m));
    let message = message(&alerts[0]).expect("encodes");
    assert_eq!(
        message.subject,
        "Price drop 20%: 740 1st Ave N, Nashville, TN now $340,000"
    );
    let body: AlertBody = serde_json::from_str(&message.body).expect("json body");
    assert_eq!(body.alert_type, AlertKind::PriceDrop);
    assert_eq!(body.listing_id, "zillow:108712579");
    assert_eq!(body.address, "740 1st Ave N, Nashville, TN 37201");
    assert_eq!(
        (body.market.as_str(), body.property_type.as_str()),
        ("nashville-tn", "condo")
    );
    assert_eq!(
        (body.old_price, body.new_price, body.drop_amount),
        (425_000.0, 340_000.0, 85_000.0)
    );
    assert_eq!(body.drop_pct, 20.0);
    assert_eq!(body.price_per_sqft, Some(539.68));
    assert_eq!(body.market_median_price_per_sqft, Some(700.0));
    assert_eq!(body.price_per_sqft_to_median, Some(0.771));
    assert_eq!(
        body.median_scope.as_deref(),
        Some("city#nashville-tn#condo")
    );
    assert!(
        body.url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://www.zillow.com/"))
    );
    assert_eq!(body.observed_at.to_rfc3339(), "2025-09-12T15:45:03+00:00");
    assert_eq!(body.alert_id, alerts[0].idempotency_key());
    let attributes: Vec<(&str, &str, String)> = message.attributes.entries().into();
    assert_eq!(
        attributes,
        [
            ("market", "String", "nashville-tn".to_owned()),
            ("property_type", "String", "condo".to_owned()),
            ("alert_type", "String", "price_drop".to_owned()),
            ("drop_pct", "Number", "20.00".to_owned()),
        ]
    );
}

#[test]
fn drop_pct_rounds_down_so_filters_never_see_more_than_the_drop() {
    // 19.996 % is not 20 %: a `>= 20` filter policy must not let it through.
    let p = PriceMove::between(10_000_000, 8_000_400);
    assert_eq!(p.drop_centi_pct, 1_999);
    assert_eq!(p.drop_pct(), 19.99);
    assert_eq!(PriceMove::between(100, 120).drop_pct(), 0.0);
}

#[test]
fn the_undervalued_subject_says_how_far_below_the_median() {
    let t = AlertThresholds::default();
    let old = item("zillow:1", 450_000, Some(1_000), 1);
    let new = item("zillow:1", 385_000, Some(1_000), 2);
    let alerts = evaluate(&change(&old, &new), &t, Some(&nashville_condo_median()));
    let message = message(&alerts[0]).expect("encodes");
    assert_eq!(
        message.subject,
        "Undervalued at 77% of median $/sqft: 740 1st Ave N, Nashville, TN for $385,000"
    );
    assert_eq!(message.attributes.alert_type, AlertKind::Undervalued);
    assert_eq!(message.attributes.drop_pct, 14.44);
}

#[test]
fn subjects_are_short_printable_ascii_on_one_line() {
    let long = format!(
        "Price drop 20%: {} now $1",
        "Rue de la Libération ".repeat(10)
    );
    for text in [
        long.as_str(),
        "Price drop 20%: 12 Avenue Hassan II\nFès, MA now 1,764,000 MAD",
        "Undervalued: 東京\t\u{7}",
    ] {
        let subject = sanitize_subject(text);
        assert!(subject.len() <= MAX_SUBJECT_CHARS, "{subject}");
        assert!(
            subject.bytes().all(|b| (b' '..=b'~').contains(&b)),
            "{subject:?}"
        );
        assert!(!subject.contains("  "), "{subject:?}");
    }
    assert_eq!(
        sanitize_subject("12 Avenue Hassan II\nFès"),
        "12 Avenue Hassan II Fes"
    );
    assert!(sanitize_subject(&long).ends_with("..."));
    let mut street = item("zillow:1", 100_000, None, 2);
    street.listing.address.line = None;
    street.listing.property_type = PropertyType::SingleFamily;
    let alerts = evaluate(
        &change(&item("zillow:1", 200_000, None, 1), &street),
        &AlertThresholds::default(),
        None,
    );
    assert_eq!(
        message(&alerts[0]).expect("encodes").subject,
        "Price drop 50%: single family in Nashville, TN now $100,000"
    );
}

#[test]
fn money_is_written_whole_with_separators() {
    assert_eq!(format_money(34_000_000, "USD"), "$340,000");
    assert_eq!(format_money(123_456_789, "USD"), "$1,234,568");
    assert_eq!(format_money(99, "USD"), "$1");
    assert_eq!(format_money(176_400_000, "MAD"), "1,764,000 MAD");
}

#[test]
fn publish_batches_hold_ten_entries_and_256_kib() {
    let small = |n: usize| {
        let alert = {
            let old = item("zillow:1", 200_000, None, 1);
            let new = item("zillow:1", 100_000, None, 2);
            evaluate(&change(&old, &new), &AlertThresholds::default(), None).remove(0)
        };
        vec![message(&alert).expect("encodes"); n]
    };
    let sizes: Vec<usize> = publish_batches(&small(23))
        .iter()
        .map(|r| r.len())
        .collect();
    assert_eq!(sizes, [10, 10, 3]);
    let mut big = small(9);
    for m in &mut big {
        m.body = "x".repeat(100 * 1024);
    }
    let batches = publish_batches(&big);
    assert!(batches.iter().all(|r| {
        big[r.clone()]
            .iter()
            .map(AlertMessage::size_bytes)
            .sum::<usize>()
            <= MAX_BATCH_BYTES
    }));
    assert_eq!(batches.iter().map(|r| r.len()).sum::<usize>(), 9);
    assert_eq!(batches.len(), 5);
}

// ---- the batch workflow over in-memory ports ----

#[derive(Default)]
struct MemoryIdempotency {
    /// key -> (state, token)
    records: Mutex<BTreeMap<String, (&'static str, String)>>,
    /// Claims of keys containing this fail (a DynamoDB outage for them).
    fail_claims_of: Mutex<Option<String>>,
    /// Stands for a crash right after publishing: marks and releases never happen.
    crash_after_publish: AtomicBool,
    claims: AtomicUsize,
}

impl MemoryIdempotency {
    fn states(&self) -> BTreeMap<String, &'static str> {
        self.records
            .lock()
            .expect("lock")
            .iter()
            .map(|(k, (s, _))| (k.clone(), *s))
            .collect()
    }
}

impl IdempotencyStore for MemoryIdempotency {
    async fn claim(&self, key: &str, token: &str) -> Result<Claim, PortError> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        if let Some(bad) = self.fail_claims_of.lock().expect("lock").as_deref()
            && key.contains(bad)
        {
            return Err(PortError::new("PutItem", "injected outage"));
        }
        let mut records = self.records.lock().expect("lock");
        match records.get(key) {
            Some(("published", _)) => Ok(Claim::AlreadyPublished),
            _ => {
                records.insert(key.to_owned(), ("pending", token.to_owned()));
                Ok(Claim::Acquired)
            }
        }
    }

    async fn mark_published(&self, key: &str, token: &str) -> Result<(), PortError> {
        if self.crash_after_publish.load(Ordering::SeqCst) {
            return Err(PortError::new("PutItem", "crashed"));
        }
        self.records
            .lock()
            .expect("lock")
            .insert(key.to_owned(), ("published", token.to_owned()));
        Ok(())
    }

    async fn release(&self, key: &str, token: &str) -> Result<(), PortError> {
        if self.crash_after_publish.load(Ordering::SeqCst) {
            return Err(PortError::new("DeleteItem", "crashed"));
        }
        let mut records = self.records.lock().expect("lock");
        if records
            .get(key)
            .is_some_and(|(s, t)| *s == "pending" && t == token)
        {
            records.remove(key);
        }
        Ok(())
    }
}

#[derive(Default)]
struct MemoryMedians {
    medians: BTreeMap<String, f64>,
    down: AtomicBool,
    lookups: Mutex<Vec<Vec<String>>>,
}

impl MarketMedians for MemoryMedians {
    async fn medians_per_sqft(&self, keys: &[String]) -> Result<BTreeMap<String, f64>, PortError> {
        self.lookups.lock().expect("lock").push(keys.to_vec());
        if self.down.load(Ordering::SeqCst) {
            return Err(PortError::new("BatchGetItem", "injected outage"));
        }
        Ok(keys
            .iter()
            .filter_map(|k| self.medians.get(k).map(|m| (k.clone(), *m)))
            .collect())
    }
}

#[derive(Default)]
struct MemoryPublisher {
    sent: Mutex<Vec<AlertMessage>>,
    /// Alerts whose id contains one of these are never published.
    failing: Mutex<BTreeSet<String>>,
}

impl MemoryPublisher {
    fn published(&self) -> Vec<String> {
        self.sent
            .lock()
            .expect("lock")
            .iter()
            .map(|m| m.alert_id.clone())
            .collect()
    }
}

impl AlertPublisher for MemoryPublisher {
    async fn publish(&self, messages: &[AlertMessage]) -> PublishReport {
        let failing = self.failing.lock().expect("lock").clone();
        let mut report = PublishReport::default();
        for (i, m) in messages.iter().enumerate() {
            if failing.iter().any(|f| m.alert_id.contains(f.as_str())) {
                report.unpublished.push(i);
                report.error = Some("injected failure".into());
            } else {
                self.sent.lock().expect("lock").push(m.clone());
            }
        }
        report
    }
}

struct World {
    idempotency: MemoryIdempotency,
    medians: MemoryMedians,
    publisher: MemoryPublisher,
}

impl Default for World {
    fn default() -> Self {
        Self {
            idempotency: MemoryIdempotency::default(),
            medians: MemoryMedians {
                medians: BTreeMap::from([
                    ("city#nashville-tn#condo".to_owned(), 500.0),
                    ("city#syracuse-ny#all".to_owned(), 200.0),
                ]),
                ..MemoryMedians::default()
            },
            publisher: MemoryPublisher::default(),
        }
    }
}

impl World {
    async fn handle(
        &self,
        event: Event,
    ) -> (
        aws_lambda_events::event::streams::DynamoDbEventResponse,
        AlertOutcome,
    ) {
        let ports = AlertPorts {
            idempotency: &self.idempotency,
            medians: &self.medians,
            publisher: &self.publisher,
        };
        handle_event(&ports, &AlertThresholds::default(), event).await
    }
}

fn record(sequence_number: &str, old: &ListingItem, new: &ListingItem) -> EventRecord {
    let mut record = sample_record();
    record.change.sequence_number = Some(sequence_number.to_owned());
    record.change.old_image = serde_dynamo::to_item(old).expect("old image");
    record.change.new_image = serde_dynamo::to_item(new).expect("new image");
    record
}

fn event(records: Vec<EventRecord>) -> Event {
    let mut event = sample_event();
    event.records = records;
    event
}

/// Five changes, in stream order:
/// 100: zillow:1 cut 20 % (price drop);
/// 200: zillow:2 cut 5 % (nothing);
/// 300: zillow:3 in Syracuse, cut 18 % to 155 $/sqft under the city median 200 (both alerts);
/// 400: an INSERT (skipped);
/// 500: zillow:5 cut 30 % (price drop).
fn batch() -> Event {
    let syracuse = |price, version| {
        in_syracuse(
            item("zillow:3", price, Some(1_000), version),
            PropertyType::SingleFamily,
        )
    };
    let mut insert = record(
        "400",
        &item("zillow:4", 1, None, 1),
        &item("zillow:4", 1, None, 2),
    );
    insert.event_name = "INSERT".into();
    event(vec![
        record(
            "100",
            &item("zillow:1", 600_000, Some(1_000), 1),
            &item("zillow:1", 480_000, Some(1_000), 2),
        ),
        record(
            "200",
            &item("zillow:2", 600_000, Some(1_000), 1),
            &item("zillow:2", 570_000, Some(1_000), 2),
        ),
        record("300", &syracuse(190_000, 1), &syracuse(155_000, 2)),
        insert,
        record(
            "500",
            &item("zillow:5", 300_000, None, 1),
            &item("zillow:5", 210_000, None, 2),
        ),
    ])
}

fn expected_alerts() -> Vec<&'static str> {
    vec![
        "alert#price_drop#zillow:1#2",
        "alert#price_drop#zillow:3#2",
        "alert#undervalued#zillow:3#2",
        "alert#price_drop#zillow:5#2",
    ]
}

fn failed_from(response: &aws_lambda_events::event::streams::DynamoDbEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap_or_default())
        .collect()
}

fn from_sequence(event: &Event, sequence_number: &str) -> Event {
    let mut rest = event.clone();
    let at = rest
        .records
        .iter()
        .position(|r| r.change.sequence_number.as_deref() == Some(sequence_number))
        .expect("the failed record is in the batch");
    rest.records.drain(..at);
    rest
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_publishes_its_alerts_once_however_often_it_is_delivered() {
    let world = World::default();
    let (response, outcome) = world.handle(batch()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(world.publisher.published(), expected_alerts());
    let s = &outcome.stats;
    assert_eq!(
        (s.records, s.changes, s.skipped.get("not_modify")),
        (5, 4, Some(&1))
    );
    assert_eq!(
        (s.price_drops_due, s.undervalued_due, s.published),
        (3, 1, 4)
    );
    // One lookup for the batch; zillow:5 has no area and needs none.
    assert_eq!(
        *world.medians.lookups.lock().expect("lock"),
        [vec![
            "city#nashville-tn#all".to_owned(),
            "city#nashville-tn#condo".to_owned(),
            "city#syracuse-ny#all".to_owned(),
            "city#syracuse-ny#single_family".to_owned(),
        ]]
    );
    assert!(
        world
            .idempotency
            .states()
            .values()
            .all(|s| *s == "published")
    );

    for _ in 0..3 {
        let (response, outcome) = world.handle(batch()).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            (outcome.stats.already_published, outcome.stats.published),
            (4, 0)
        );
    }
    assert_eq!(world.publisher.published(), expected_alerts());
}

#[tokio::test(flavor = "current_thread")]
async fn an_unpublished_alert_fails_the_batch_from_its_record() {
    let world = World::default();
    world
        .publisher
        .failing
        .lock()
        .expect("lock")
        .insert("zillow:3".into());
    let event = batch();
    let (response, outcome) = world.handle(event.clone()).await;
    assert_eq!(failed_from(&response), ["300"]);
    assert_eq!(outcome.stats.unpublished, 2);
    assert!(
        outcome
            .error
            .as_deref()
            .is_some_and(|e| e.contains("injected failure"))
    );
    // Records before and after the failed one went out; the failed one's claims are handed back.
    assert_eq!(
        world.publisher.published(),
        ["alert#price_drop#zillow:1#2", "alert#price_drop#zillow:5#2"]
    );
    assert!(
        world
            .idempotency
            .states()
            .keys()
            .all(|k| !k.contains("zillow:3"))
    );

    // Lambda re-delivers from the failed record; SNS is back.
    world.publisher.failing.lock().expect("lock").clear();
    let (response, outcome) = world.handle(from_sequence(&event, "300")).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        (outcome.stats.published, outcome.stats.already_published),
        (2, 1)
    );
    let mut published = world.publisher.published();
    published.sort();
    let mut expected = expected_alerts();
    expected.sort();
    assert_eq!(published, expected);
}

#[tokio::test(flavor = "current_thread")]
async fn a_market_read_failure_fails_from_the_first_record_that_needs_one() {
    let world = World::default();
    world.medians.down.store(true, Ordering::SeqCst);
    let event = batch();
    let (response, _) = world.handle(event.clone()).await;
    // zillow:1 needs its market already: nothing is published, nothing is claimed.
    assert_eq!(failed_from(&response), ["100"]);
    assert!(world.publisher.published().is_empty());
    assert!(world.idempotency.states().is_empty());

    // A batch whose first change needs no market publishes up to the one that does.
    let mut later = batch();
    later.records.swap(0, 4);
    let (response, _) = world.handle(later).await;
    assert_eq!(failed_from(&response), ["200"]);
    assert_eq!(world.publisher.published(), ["alert#price_drop#zillow:5#2"]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_claim_failure_stops_the_batch_at_its_record() {
    let world = World::default();
    *world.idempotency.fail_claims_of.lock().expect("lock") = Some("undervalued#zillow:3".into());
    let (response, outcome) = world.handle(batch()).await;
    assert_eq!(failed_from(&response), ["300"]);
    // zillow:3's price drop was claimed before its second alert failed: it is handed back, so
    // the re-delivered record publishes both together.
    assert_eq!(world.publisher.published(), ["alert#price_drop#zillow:1#2"]);
    assert_eq!(outcome.stats.published, 1);
    assert_eq!(
        world.idempotency.states(),
        BTreeMap::from([("alert#price_drop#zillow:1#2".to_owned(), "published")])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_crash_between_claim_and_publish_loses_nothing() {
    let world = World::default();
    // The first invocation claims everything, then dies before publishing: its claims stay
    // pending (crash_after_publish stops the releases as a crash would).
    world
        .publisher
        .failing
        .lock()
        .expect("lock")
        .insert("zillow".into());
    world
        .idempotency
        .crash_after_publish
        .store(true, Ordering::SeqCst);
    world.handle(batch()).await;
    assert!(world.publisher.published().is_empty());
    assert!(world.idempotency.states().values().all(|s| *s == "pending"));

    // Lambda re-delivers the batch to a fresh invocation.
    world.publisher.failing.lock().expect("lock").clear();
    world
        .idempotency
        .crash_after_publish
        .store(false, Ordering::SeqCst);
    let (response, _) = world.handle(batch()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(world.publisher.published(), expected_alerts());
}

#[tokio::test(flavor = "current_thread")]
async fn a_crash_between_publish_and_record_repeats_each_alert_at_most_once() {
    let world = World::default();
    world
        .idempotency
        .crash_after_publish
        .store(true, Ordering::SeqCst);
    world.handle(batch()).await;
    world
        .idempotency
        .crash_after_publish
        .store(false, Ordering::SeqCst);
    for _ in 0..3 {
        let (response, _) = world.handle(batch()).await;
        assert!(response.batch_item_failures.is_empty());
    }
    let mut twice: Vec<String> = expected_alerts()
        .into_iter()
        .flat_map(|a| [a.to_owned(), a.to_owned()])
        .collect();
    twice.sort();
    let mut published = world.publisher.published();
    published.sort();
    assert_eq!(published, twice);
}

#[tokio::test(flavor = "current_thread")]
async fn the_sample_event_goes_through_the_handler() {
    let world = World::default();
    let (response, outcome) = world.handle(sample_event()).await;
    assert!(response.batch_item_failures.is_empty());
    // 539.68 $/sqft against a condo median of 500: a price drop, not undervalued.
    assert_eq!(
        world.publisher.published(),
        [
            "alert#price_drop#zillow:108712579#49590338271490256608559692538361571095921575989136590898"
        ]
    );
    assert_eq!(outcome.stats.without_median, 0);
    let response = serde_json::to_value(&response).expect("json");
    assert_eq!(response, json!({ "batchItemFailures": [] }));
}

#[tokio::test(flavor = "current_thread")]
async fn a_failure_serializes_as_lambda_expects() {
    let world = World::default();
    world
        .publisher
        .failing
        .lock()
        .expect("lock")
        .insert("zillow".into());
    let (response, _) = world.handle(sample_event()).await;
    assert_eq!(
        serde_json::to_value(&response).expect("json"),
        json!({ "batchItemFailures": [{ "itemIdentifier": "4421584500000000017450439091" }] })
    );
}

// ---- SNS partial failures through the handler (aws-smithy-mocks) ----

mod sns {
    use aws_sdk_sns::Client;
    use aws_sdk_sns::operation::publish_batch::PublishBatchOutput;
    use aws_sdk_sns::types::{BatchResultErrorEntry, PublishBatchResultEntry};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::adapters::retry::RetryPolicy;
    use crate::adapters::sns::SnsAlertPublisher;

    /// PublishBatch where entries whose body names `failing` fail (retryable) every time.
    fn topic(failing: Option<&'static str>) -> (Client, aws_smithy_mocks::Rule) {
        let rule = mock!(Client::publish_batch).then_compute_output(move |r| {
            let mut out = PublishBatchOutput::builder();
            for e in r.publish_batch_request_entries() {
                out = if failing.is_some_and(|f| e.message().contains(f)) {
                    out.failed(
                        BatchResultErrorEntry::builder()
                            .id(e.id())
                            .code("InternalError")
                            .sender_fault(false)
                            .build()
                            .expect("entry"),
                    )
                } else {
                    out.successful(
                        PublishBatchResultEntry::builder()
                            .id(e.id())
                            .message_id("m")
                            .build(),
                    )
                };
            }
            out.build()
        });
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, [&rule]);
        (client, rule)
    }

    async fn deliver(world: &World, client: Client, event: Event) -> (Vec<String>, AlertOutcome) {
        let publisher = SnsAlertPublisher {
            client,
            topic_arn: "arn:aws:sns:us-east-1:123456789012:alerts".into(),
            retry: RetryPolicy::immediate(Duration::from_millis(50)),
        };
        let ports = AlertPorts {
            idempotency: &world.idempotency,
            medians: &world.medians,
            publisher: &publisher,
        };
        let (response, outcome) = handle_event(&ports, &AlertThresholds::default(), event).await;
        (failed_from(&response), outcome)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_persistent_publish_failure_becomes_a_batch_item_failure() {
        let world = World::default();
        let event = batch();
        let (client, rule) = topic(Some("\"listing_id\":\"zillow:3\""));
        let (failed, outcome) = deliver(&world, client, event.clone()).await;
        assert_eq!(failed, ["300"]);
        assert_eq!((outcome.stats.published, outcome.stats.unpublished), (2, 2));
        assert!(outcome.stats.publish_retries >= 1, "{:?}", outcome.stats);
        assert!(rule.num_calls() >= 2);
        assert!(
            world
                .idempotency
                .states()
                .keys()
                .all(|k| !k.contains("zillow:3"))
        );

        // Re-delivered from record 300 once SNS recovers: only zillow:3's two alerts go out.
        let (client, rule) = topic(None);
        let (failed, outcome) = deliver(&world, client, from_sequence(&event, "300")).await;
        assert!(failed.is_empty());
        assert_eq!(
            (outcome.stats.published, outcome.stats.already_published),
            (2, 1)
        );
        assert_eq!(rule.num_calls(), 1);
        assert_eq!(world.idempotency.states().len(), 4);
    }
}
