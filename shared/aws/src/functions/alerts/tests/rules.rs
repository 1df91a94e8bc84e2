//! The alert rules on listing-item pairs, and decoding stream records (the sample and
//! aws_lambda_events' fixtures).

use super::*;
use realty_model::price_move::PriceMove;

// ---- price drops ----

#[test]
fn the_sample_event_is_a_twenty_percent_drop() {
    let change = classify(sample_record()).expect("decodes");
    assert_eq!(change.sequence_number, "4421584500000000017450439091");
    let alerts = evaluate(&change, &AlertThresholds::default(), &Medians::default());
    assert_eq!(kinds(&alerts), [AlertKind::PriceDrop]);
    assert_eq!(alerts[0].price, PriceMove::between(42_500_000, 34_000_000));
    assert_eq!(alerts[0].price.drop_pct(), 20.0);
}

#[test]
fn rises_and_unchanged_prices_do_not_alert_and_small_cuts_are_price_cuts() {
    let t = AlertThresholds::default();
    let old = item("zillow:1", 200_000, Some(1_000), 1);
    for (new_price, expected) in [
        (200_000, &[][..]),
        (210_000, &[]),
        (190_000, &[AlertKind::PriceCut]),
        (170_001, &[AlertKind::PriceCut]),
        (170_000, &[AlertKind::PriceDrop]),
    ] {
        let new = item("zillow:1", new_price, Some(1_000), 2);
        assert_eq!(
            price_drop(&old, &new, &t).is_some(),
            expected == [AlertKind::PriceDrop],
            "{new_price}"
        );
        let alerts = evaluate(&change(&old, &new), &t, &Medians::default());
        assert_eq!(kinds(&alerts), expected, "{new_price}");
    }
    // A 5 % cut says how much, like a drop: a subscriber can tell a watched listing's cut.
    let cut = evaluate(
        &change(&old, &item("zillow:1", 190_000, Some(1_000), 2)),
        &t,
        &Medians::default(),
    );
    assert_eq!(cut[0].price, PriceMove::between(20_000_000, 19_000_000));
    assert_eq!(cut[0].price.drop_pct(), 5.0);
    assert_eq!(cut[0].idempotency_key(), "alert#price_cut#zillow:1#2");
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

#[test]
fn undervalued_fires_on_the_way_down_to_the_bound() {
    let t = AlertThresholds::default();
    let m = nashville_condo_median();
    let old = item("zillow:1", 450_000, Some(1_000), 1);
    let at_bound = item("zillow:1", 400_000, Some(1_000), 2);
    assert!(undervalued(Some(&old), &at_bound, &t, &m));
    let alerts = evaluate(&change(&old, &at_bound), &t, &Medians::both(&m));
    // An 11 % cut: no price drop (a price cut), but undervalued.
    assert_eq!(
        kinds(&alerts),
        [AlertKind::PriceCut, AlertKind::Undervalued]
    );
    assert_eq!(alerts[1].price_per_sqft, Some(400.0));
    let above = item("zillow:1", 400_001, Some(1_000), 2);
    assert!(!undervalued(Some(&old), &above, &t, &m));
}

#[test]
fn an_undervalued_listing_does_not_alert_again_unless_its_price_falls() {
    let t = AlertThresholds::default();
    let m = nashville_condo_median();
    let old = item("zillow:1", 390_000, Some(1_000), 1);
    // Same price, another field changed: nothing new, and no market read needed.
    let mut status = item("zillow:1", 390_000, Some(1_000), 2);
    status.listing.status = ListingStatus::UnderContract;
    assert!(!needs_median(Some(&old), &status));
    assert!(!undervalued(Some(&old), &status, &t, &m));
    assert!(evaluate(&change(&old, &status), &t, &Medians::default()).is_empty());
    // A rise that stays under the bound is no news either.
    assert!(!undervalued(
        Some(&old),
        &item("zillow:1", 395_000, Some(1_000), 2),
        &t,
        &m
    ));
    // A further cut is.
    assert!(undervalued(
        Some(&old),
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
    assert!(needs_median(Some(&old), &new));
    assert!(undervalued(Some(&old), &new, &t, &m));
}

#[test]
fn a_new_listing_under_the_bound_is_undervalued() {
    let t = AlertThresholds::default();
    let m = nashville_condo_median();
    // 30 % under the median: 350 $/sqft against 500.
    let new = item("zillow:1", 350_000, Some(1_000), 7);
    assert!(needs_median(None, &new));
    let first_sighting = ListingChange {
        sequence_number: "1".into(),
        old: None,
        new: new.clone(),
    };
    let alerts = evaluate(&first_sighting, &t, &Medians::both(&m));
    assert_eq!(kinds(&alerts), [AlertKind::Undervalued]);
    assert!(alerts[0].new_listing);
    // No old price: old and new are the listing's price, nothing fell.
    assert_eq!(alerts[0].price, PriceMove::between(35_000_000, 35_000_000));
    assert_eq!(alerts[0].idempotency_key(), "alert#undervalued#zillow:1#7");
    // At the bound it fires; just above, or without a median, or delisted, it does not.
    assert!(undervalued(
        None,
        &item("zillow:1", 400_000, Some(1_000), 7),
        &t,
        &m
    ));
    assert!(!undervalued(
        None,
        &item("zillow:1", 400_001, Some(1_000), 7),
        &t,
        &m
    ));
    assert!(evaluate(&first_sighting, &t, &Medians::default()).is_empty());
    let mut gone = new;
    gone.delisted = true;
    assert!(!needs_median(None, &gone));
    assert!(!undervalued(None, &gone, &t, &m));
}

#[test]
fn a_listing_for_sale_again_is_back_on_market() {
    let t = AlertThresholds::default();
    let m = nashville_condo_median();
    let new = item("zillow:1", 450_000, Some(1_000), 2);
    let before = |edit: fn(&mut ListingItem)| {
        let mut old = item("zillow:1", 450_000, Some(1_000), 1);
        edit(&mut old);
        old
    };
    for old in [
        before(|o| o.delisted = true),
        before(|o| o.listing.status = ListingStatus::Sold),
        before(|o| o.listing.status = ListingStatus::OffMarket),
    ] {
        assert!(back_on_market(&old, &new), "{old:?}");
        // Above the bound: only back on market, with its market comparison.
        let alerts = evaluate(&change(&old, &new), &t, &Medians::both(&m));
        assert_eq!(kinds(&alerts), [AlertKind::BackOnMarket]);
        assert_eq!(alerts[0].median, Some(m.clone()));
        assert_eq!(
            alerts[0].idempotency_key(),
            "alert#back_on_market#zillow:1#2"
        );
    }
    // Back 20 % lower and under the bound: each alert of its own type.
    let cheaper = item("zillow:1", 360_000, Some(1_000), 2);
    assert_eq!(
        kinds(&evaluate(
            &change(&before(|o| o.delisted = true), &cheaper),
            &t,
            &Medians::both(&m)
        )),
        [
            AlertKind::PriceDrop,
            AlertKind::Undervalued,
            AlertKind::BackOnMarket
        ]
    );
    // Listed before and after, or still off the market, or a rental: not back on market.
    let mut still_off = new.clone();
    still_off.delisted = true;
    let mut rental = before(|o| o.delisted = true);
    rental.listing.offer = Offer::Rent;
    for (old, new) in [
        (before(|_| ()), &new),
        (before(|o| o.listing.status = ListingStatus::Pending), &new),
        (before(|o| o.delisted = true), &still_off),
        (rental, &new),
    ] {
        assert!(!back_on_market(&old, new), "{old:?} -> {new:?}");
    }
}

#[test]
fn undervalued_needs_an_area_and_a_median() {
    let t = AlertThresholds::default();
    let old = item("zillow:1", 450_000, None, 1);
    let new = item("zillow:1", 300_000, None, 2);
    assert!(!needs_median(Some(&old), &new));
    // A 33 % cut still fires its price drop without a median.
    assert_eq!(
        kinds(&evaluate(&change(&old, &new), &t, &Medians::default())),
        [AlertKind::PriceDrop]
    );
    let with_area = item("zillow:1", 300_000, Some(1_000), 2);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(
            !undervalued(Some(&old), &with_area, &t, &median("m", bad)),
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
    let alerts = evaluate(&change(&old, &new), &t, &Medians::both(&m));
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
    let alerts = evaluate(
        &change(&old, &new),
        &AlertThresholds::default(),
        &Medians::default(),
    );
    assert_eq!(alerts[0].idempotency_key(), "alert#price_drop#zillow:1#42");
    let later = item("zillow:1", 100_000, None, 43);
    let again = evaluate(
        &change(&old, &later),
        &AlertThresholds::default(),
        &Medians::default(),
    );
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
        "../fixtures/example-dynamodb-event-record-with-optional-fields.json"
    ))
    .expect("json");
    vec![
        (
            "example-dynamodb-event",
            serde_json::from_str(include_str!("../fixtures/example-dynamodb-event.json"))
                .expect("json"),
        ),
        (
            "example-dynamodb-event-null-items",
            serde_json::from_str(include_str!(
                "../fixtures/example-dynamodb-event-null-items.json"
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
            // As MODIFY none is skipped for its event name: each reached the images.
            if variant != "as is" {
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

// ---- new listings and anomalies ----

#[test]
fn new_listings_alert_only_when_the_stack_asks_and_only_on_first_sighting() {
    let new = item("zillow:1", 350_000, Some(1_000), 1);
    let first_sighting = ListingChange {
        sequence_number: "1".into(),
        old: None,
        new: new.clone(),
    };
    let off = AlertThresholds::default();
    assert!(evaluate(&first_sighting, &off, &Medians::default()).is_empty());
    let on = AlertThresholds {
        new_listing_alerts: true,
        ..AlertThresholds::default()
    };
    let alerts = evaluate(&first_sighting, &on, &Medians::default());
    assert_eq!(kinds(&alerts), [AlertKind::NewListing]);
    assert!(alerts[0].new_listing);
    assert_eq!(alerts[0].idempotency_key(), "alert#new_listing#zillow:1#1");
    // A later change of the same listing is not new; a sold one never alerts.
    let changed = item("zillow:1", 340_000, Some(1_000), 2);
    assert_eq!(
        kinds(&evaluate(&change(&new, &changed), &on, &Medians::default())),
        [AlertKind::PriceCut]
    );
    let mut sold = new.clone();
    sold.listing.status = ListingStatus::Sold;
    let sold_sighting = ListingChange {
        sequence_number: "1".into(),
        old: None,
        new: sold,
    };
    assert!(evaluate(&sold_sighting, &on, &Medians::default()).is_empty());
}

#[test]
fn a_listing_newly_flagged_anomalous_alerts_once_with_its_market_comparison() {
    let t = AlertThresholds::default();
    let m = nashville_condo_median();
    let old = item("zillow:1", 400_000, Some(1_000), 1);
    let mut flagged = item("zillow:1", 150_000, Some(1_000), 2);
    flagged.interest = vec![InterestKind::PriceCut, InterestKind::Anomalous];
    assert!(newly_anomalous(Some(&old), &flagged));
    assert!(needs_median(Some(&old), &flagged));
    let alerts = evaluate(&change(&old, &flagged), &t, &Medians::both(&m));
    assert_eq!(
        kinds(&alerts),
        [
            AlertKind::PriceDrop,
            AlertKind::Undervalued,
            AlertKind::Anomaly
        ]
    );
    let anomaly = &alerts[2];
    assert_eq!(anomaly.median.as_ref(), Some(&m));
    assert_eq!(anomaly.price_per_sqft, Some(150.0));
    // Read from the market table: the anomaly is shown against the city's median across
    // types (whose bounds flagged it), undervalued against the condos'.
    let read = BTreeMap::from([
        ("city#nashville-tn#condo".to_owned(), 500.0),
        ("city#nashville-tn#all".to_owned(), 250.0),
    ]);
    let medians = Medians::of(&flagged.listing, &read);
    let alerts = evaluate(&change(&old, &flagged), &t, &medians);
    assert_eq!(alerts[1].median.as_ref(), Some(&m));
    assert_eq!(
        alerts[2].median.as_ref(),
        Some(&median("city#nashville-tn#all", 250.0))
    );
    assert!(
        message(&alerts[2])
            .expect("encodes")
            .subject
            .contains("at 60% of median"),
        "{:?}",
        message(&alerts[2]).map(|m| m.subject)
    );
    // Still anomalous at the next change: no second alert; the flag gone (back within the
    // bounds, at another price) and back: one more.
    let mut still = flagged.clone();
    still.sequence = format!("{:0>128}", 3);
    assert!(!newly_anomalous(Some(&flagged), &still));
    let mut cleared = still.clone();
    cleared.interest.clear();
    cleared.listing.price_minor += 10_000_000;
    let mut again = flagged.clone();
    again.sequence = format!("{:0>128}", 5);
    assert!(newly_anomalous(Some(&cleared), &again));
    // Under contract (the metrics function judges active listings only: the flag goes) and
    // active again at the same price and area: the same anomaly, no second alert; back at
    // another price: judged afresh.
    let mut contingent = flagged.clone();
    contingent.sequence = format!("{:0>128}", 6);
    contingent.listing.status = ListingStatus::UnderContract;
    contingent.interest.clear();
    let mut active_again = flagged.clone();
    active_again.sequence = format!("{:0>128}", 7);
    assert!(!newly_anomalous(Some(&contingent), &active_again));
    let mut repriced = active_again.clone();
    repriced.listing.price_minor -= 1_000_000;
    assert!(newly_anomalous(Some(&contingent), &repriced));
    // A new listing flagged on its first write alerts too; a flagged rental never does.
    assert!(newly_anomalous(None, &flagged));
    let mut rental = flagged.clone();
    rental.listing.offer = Offer::Rent;
    assert!(!newly_anomalous(None, &rental));
}
