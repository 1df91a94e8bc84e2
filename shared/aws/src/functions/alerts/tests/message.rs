//! The SNS message: subject, body, attributes and the limits of SNS.

use super::*;
use realty_model::price_move::PriceMove;

// ---- the message ----

#[test]
fn the_message_of_the_sample() {
    let change = classify(sample_record()).expect("decodes");
    let m = median("city#nashville-tn#condo", 700.0);
    let alerts = evaluate(&change, &AlertThresholds::default(), &Medians::both(&m));
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
    let attributes = message.attributes.entries();
    assert_eq!(
        attributes,
        [
            ("listing_id", "String", "zillow:108712579".to_owned()),
            ("market", "String", "nashville-tn".to_owned()),
            ("property_type", "String", "condo".to_owned()),
            ("alert_type", "String", "price_drop".to_owned()),
            ("drop_pct", "Number", "20.00".to_owned()),
            ("price", "Number", "340000".to_owned()),
            ("bedrooms", "Number", "1".to_owned()),
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
fn a_cut_under_a_hundredth_of_a_percent_says_so() {
    let old = item("zillow:1", 1_000_000, Some(1_000), 1);
    let new = item("zillow:1", 999_950, Some(1_000), 2);
    let alerts = evaluate(
        &change(&old, &new),
        &AlertThresholds::default(),
        &Medians::default(),
    );
    assert_eq!(kinds(&alerts), [AlertKind::PriceCut]);
    let message = message(&alerts[0]).expect("encodes");
    assert!(
        message.subject.starts_with("Price cut under 0.01%: "),
        "{}",
        message.subject
    );
    assert!(
        message
            .attributes
            .entries()
            .contains(&("drop_pct", "Number", "0.00".to_owned()))
    );
}

#[test]
fn the_undervalued_subject_says_how_far_below_the_median() {
    let t = AlertThresholds::default();
    let old = item("zillow:1", 450_000, Some(1_000), 1);
    let new = item("zillow:1", 385_000, Some(1_000), 2);
    let alerts = evaluate(
        &change(&old, &new),
        &t,
        &Medians::both(&nashville_condo_median()),
    );
    let subjects: Vec<String> = alerts
        .iter()
        .map(|a| message(a).expect("encodes").subject)
        .collect();
    assert_eq!(
        subjects,
        [
            "Price cut 14.44%: 740 1st Ave N, Nashville, TN now $385,000",
            "Undervalued at 77% of median $/sqft: 740 1st Ave N, Nashville, TN for $385,000"
        ]
    );
    let message = message(&alerts[1]).expect("encodes");
    assert_eq!(message.attributes.alert_type, AlertKind::Undervalued);
    assert_eq!(message.attributes.listing_id, "zillow:1");
    assert_eq!(message.attributes.drop_pct, 14.44);
}

#[test]
fn a_moroccan_subject_names_its_neighbourhood_dirhams_and_price_per_square_metre() {
    let t = AlertThresholds::default();
    let moroccan = |price, version| {
        let mut item = item("avito:1", price, Some(1_000), version);
        let listing = &mut item.listing;
        listing.address.line = None;
        listing.address.city = "Marrakech".into();
        listing.address.state = String::new();
        listing.address.postal_code = None;
        listing.address.neighbourhood = Some("Guéliz".into());
        listing.address.country = realty_model::listing::CountryCode::MA;
        listing.currency = "MAD".into();
        item
    };
    let (old, new) = (moroccan(450_000, 1), moroccan(385_000, 2));
    let alerts = evaluate(
        &change(&old, &new),
        &t,
        &Medians::both(&nashville_condo_median()),
    );
    let subjects: Vec<String> = alerts
        .iter()
        .map(|a| message(a).expect("encodes").subject)
        .collect();
    assert_eq!(
        subjects,
        [
            "Price cut 14.44%: condo in Gueliz, Marrakech now 385,000 MAD",
            "Undervalued at 77% of median price/sqm: condo in Gueliz, Marrakech for 385,000 MAD"
        ]
    );
}

#[test]
fn new_listing_and_back_on_market_subjects_say_so() {
    let t = AlertThresholds::default();
    let m = nashville_condo_median();
    let new = item("zillow:1", 350_000, Some(1_000), 2);
    let first_sighting = ListingChange {
        sequence_number: "1".into(),
        old: None,
        new: new.clone(),
    };
    let alert = evaluate(&first_sighting, &t, &Medians::both(&m)).remove(0);
    let undervalued = message(&alert).expect("encodes");
    assert_eq!(
        undervalued.subject,
        "Undervalued new listing at 70% of median $/sqft: 740 1st Ave N, Nashville, TN for $350,000"
    );
    let body: AlertBody = serde_json::from_str(&undervalued.body).expect("a body");
    assert!(body.new_listing);
    assert_eq!(body.price_per_sqft_to_median, Some(0.7));
    let mut gone = item("zillow:1", 350_000, Some(1_000), 1);
    gone.delisted = true;
    let back = evaluate(&change(&gone, &new), &t, &Medians::both(&m));
    assert_eq!(back[1].kind, AlertKind::BackOnMarket);
    let message = message(&back[1]).expect("encodes");
    assert_eq!(
        message.subject,
        "Back on market: 740 1st Ave N, Nashville, TN for $350,000"
    );
    let body: AlertBody = serde_json::from_str(&message.body).expect("a body");
    assert!(!body.new_listing);
    assert_eq!((body.old_price, body.new_price), (350_000.0, 350_000.0));
    assert_eq!(body.market_median_price_per_sqft, Some(500.0));
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
        &Medians::default(),
    );
    assert_eq!(
        message(&alerts[0]).expect("encodes").subject,
        "Price drop 50%: single family in Nashville, TN now $100,000"
    );
}

#[test]
fn publish_batches_hold_ten_entries_and_256_kib() {
    let small = |n: usize| {
        let alert = {
            let old = item("zillow:1", 200_000, None, 1);
            let new = item("zillow:1", 100_000, None, 2);
            evaluate(
                &change(&old, &new),
                &AlertThresholds::default(),
                &Medians::default(),
            )
            .remove(0)
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

#[test]
fn an_alert_id_at_its_limit_is_kept_and_past_it_is_unpublishable() {
    use realty_alerts::message::MAX_ALERT_ID_BYTES;
    let alert_with_id_of = |bytes: usize| {
        let change = classify(sample_record()).expect("decodes");
        let mut alert =
            evaluate(&change, &AlertThresholds::default(), &Medians::default()).remove(0);
        let fixed = alert.idempotency_key().len() - alert.listing.listing_id.len();
        alert.listing.listing_id = "z".repeat(bytes - fixed);
        assert_eq!(alert.idempotency_key().len(), bytes);
        alert
    };
    let at = message(&alert_with_id_of(MAX_ALERT_ID_BYTES)).expect("at the limit");
    assert_eq!(at.alert_id.len(), MAX_ALERT_ID_BYTES);
    let past = message(&alert_with_id_of(MAX_ALERT_ID_BYTES + 1)).expect_err("past the limit");
    assert_eq!(past.kind, "alert_id_too_long");
    assert!(past.reason.len() < 100, "{}", past.reason);
}

#[test]
fn new_listing_and_anomaly_subjects_and_attributes_carry_the_criteria() {
    let on = AlertThresholds {
        new_listing_alerts: true,
        ..AlertThresholds::default()
    };
    let m = nashville_condo_median();
    let mut new = item("zillow:1", 385_000, Some(1_000), 1);
    new.listing.beds = Some(3);
    new.interest = vec![InterestKind::Anomalous];
    let first_sighting = ListingChange {
        sequence_number: "1".into(),
        old: None,
        new,
    };
    let alerts = evaluate(&first_sighting, &on, &Medians::both(&m));
    assert_eq!(
        kinds(&alerts),
        [
            AlertKind::Undervalued,
            AlertKind::NewListing,
            AlertKind::Anomaly
        ]
    );
    let new_listing = message(&alerts[1]).expect("encodes");
    assert_eq!(
        new_listing.subject,
        "New listing: 740 1st Ave N, Nashville, TN for $385,000, 3 bd"
    );
    let attributes = new_listing.attributes.entries();
    assert!(attributes.contains(&("price", "Number", "385000".to_owned())));
    assert!(attributes.contains(&("bedrooms", "Number", "3".to_owned())));
    assert!(attributes.contains(&("alert_type", "String", "new_listing".to_owned())));
    let anomaly = message(&alerts[2]).expect("encodes");
    assert_eq!(
        anomaly.subject,
        "Unusual price at 77% of median $/sqft: 740 1st Ave N, Nashville, TN for $385,000"
    );
    let body: AlertBody = serde_json::from_str(&anomaly.body).expect("json");
    assert_eq!(body.price_per_sqft_to_median, Some(0.77));
    // Without a bedroom count there is no `bedrooms` attribute: a filter on it cannot match.
    let mut unknown = alerts[1].clone();
    unknown.listing.listing.beds = None;
    let entries = message(&unknown).expect("encodes").attributes.entries();
    assert!(entries.iter().all(|(name, _, _)| *name != "bedrooms"));
}
