//! What investors ask of alerts (issue 17), end to end: the real metrics function writes the
//! listings and market figures, the alerts function reads the listing table's stream, and SQS
//! queues subscribed with filter policies receive what they asked for, once: a new listing
//! under its market, a watched listing's small cut, new listings in a subscriber's criteria
//! (price range, bedrooms, type), and a listing newly flagged anomalous.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::kinesis::KinesisEvent;
use base64::Engine as _;
use libtest_mimic::Failed;
use realty_aws::functions::metrics::MetricsFunction;
use realty_tests::{TestAws, ensure};
use serde_json::{Value, json};

use crate::alerts::{
    Received, Stack, drain, ensure_clean, expected, keys, kinesis_record, lambda_event, stack,
    subscribe,
};

crate::async_tests!(
    a_new_undervalued_listing_alerts_once_and_a_watched_cut_reaches_only_its_watcher,
    new_listings_reach_only_the_subscribers_whose_criteria_they_meet,
    a_listing_flagged_anomalous_alerts_once_with_its_market_comparison,
);

/// One listing event of a test: a Nashville listing's first sighting (`new`) or, for an id
/// seen before, a price change.
struct Step {
    id: u32,
    dollars: i64,
    sqft: u32,
    beds: u16,
    property_type: &'static str,
}

/// Condos of 1,000 sqft with one bedroom, `(native id, dollars)`.
fn condos(steps: &[(u32, i64)]) -> Vec<Step> {
    steps
        .iter()
        .map(|&(id, dollars)| Step {
            id,
            dollars,
            sqft: 1_000,
            beds: 1,
            property_type: "condo",
        })
        .collect()
}

/// Kinesis records of the steps, from events/metrics-kinesis.json's first record, one minute
/// apart, in stream order.
fn listing_events(steps: &[Step]) -> Result<KinesisEvent, Failed> {
    let sample: Value = serde_json::from_str(include_str!("../../events/metrics-kinesis.json"))?;
    let template = sample["Records"][0].clone();
    let first: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(template["kinesis"]["data"].as_str().ok_or("no data")?)?,
    )?;
    let start = chrono::DateTime::parse_from_rfc3339("2025-09-12T15:40:02Z")?;
    let mut prices: BTreeMap<u32, i64> = BTreeMap::new();
    let mut records = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let (native_id, dollars) = (&step.id, step.dollars);
        let (id, price) = (format!("zillow:{native_id}"), dollars * 100);
        let at = start + chrono::Duration::minutes(i as i64);
        let mut event = first.clone();
        event["listing"]["id"] = json!(id);
        event["listing"]["price_minor"] = json!(price);
        event["listing"]["living_area_sqft"] = json!(step.sqft);
        event["listing"]["beds"] = json!(step.beds);
        event["listing"]["property_type"] = json!(step.property_type);
        event["listing"]["address"]["line"] = json!(format!("{native_id} Main St"));
        event["listing"]["observed_at"] = json!(at.to_rfc3339());
        event["observed_at"] = json!(at.to_rfc3339());
        if let Some(old) = prices.insert(*native_id, price) {
            event["kind"] = json!("changed");
            event["listing"]["previous_price_minor"] = json!(old);
            event["changes"] =
                json!({"price": {"old": old, "new": price}, "status": null, "fields": []});
        }
        let mut record = kinesis_record(&template, &event, 2000 + i, at.timestamp())?;
        record["kinesis"]["partitionKey"] = json!(id);
        records.push(record);
    }
    Ok(serde_json::from_value(json!({ "Records": records }))?)
}

/// The acceptance of issue 17's alerts: a new listing 30 % under its market's median $/sqft
/// raises one undervalued alert, however often its stream records are replayed; a watched
/// listing's 5 % cut (under the 15 % price-drop threshold) reaches the subscriber whose
/// filter policy names its id, and neither a watcher of another listing nor a subscriber to
/// price drops. The real metrics function writes the listings and market figures; the
/// alerts function reads the listing table's stream.
async fn a_new_undervalued_listing_alerts_once_and_a_watched_cut_reaches_only_its_watcher(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let stack = stack(&aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let watcher = subscribe(
        &stack,
        "watcher",
        Some(json!({ "listing_id": ["zillow:7001"] })),
        false,
    )
    .await?;
    let other_watcher = subscribe(
        &stack,
        "other-watcher",
        Some(json!({ "listing_id": ["zillow:7002", "zillow:7999"] })),
        true,
    )
    .await?;
    let drops = subscribe(
        &stack,
        "drops",
        Some(json!({ "alert_type": ["price_drop"] })),
        true,
    )
    .await?;
    let metrics =
        MetricsFunction::new(&aws.function_sdk("MetricsFunction").await, &stack.resources);
    // Nine condos at 200 $/sqft; then one at 140 $/sqft (30 % under); then 7001 cut 5 %.
    let mut steps: Vec<(u32, i64)> = (7001..=7009).map(|id| (id, 200_000)).collect();
    steps.push((7010, 140_000));
    steps.push((7001, 190_000));
    let events = listing_events(&condos(&steps))?;
    let mut reader = stack.stream_reader();
    let mut all_records = Vec::new();
    let mut next = 0;
    let mut round = |size: usize| {
        let mut part = events.clone();
        part.records = events.records[next..next + size].to_vec();
        next += size;
        part
    };

    // The market: nine new listings at its median, none undervalued.
    let (response, _) = metrics.handle(round(9)).await;
    ensure(response.batch_item_failures.is_empty(), "metrics failed")?;
    let records = reader.next_records().await?;
    ensure(
        records.len() == 9,
        format!("{} listing writes", records.len()),
    )?;
    let (response, outcome) = stack.function.handle(lambda_event(&stack, &records)?).await;
    ensure(response.batch_item_failures.is_empty(), "alerts failed")?;
    ensure_clean(&outcome, 0, 0)?;
    ensure(
        outcome.stats.changes == 9,
        format!("each INSERT is a new listing judged: {:?}", outcome.stats),
    )?;
    all_records.extend(records);

    // The new listing 30 % under the median: one undervalued alert.
    let (response, _) = metrics.handle(round(1)).await;
    ensure(response.batch_item_failures.is_empty(), "metrics failed")?;
    let records = reader.next_records().await?;
    ensure(
        records.len() == 1 && records[0].event_name.as_ref().map(|e| e.as_str()) == Some("INSERT"),
        format!("the new listing's write: {records:?}"),
    )?;
    let (response, outcome) = stack.function.handle(lambda_event(&stack, &records)?).await;
    ensure(response.batch_item_failures.is_empty(), "alerts failed")?;
    ensure_clean(&outcome, 1, 0)?;
    all_records.extend(records);
    let got = drain(&stack, &everything).await?;
    ensure(
        keys(&got) == expected(&[("undervalued", 7010)]),
        format!("everything got {:?}", keys(&got)),
    )?;
    let alert = &got[0].body;
    ensure(
        alert.new_listing
            && (alert.old_price, alert.new_price) == (140_000.0, 140_000.0)
            && alert.price_per_sqft == Some(140.0)
            && alert.median_scope.as_deref() == Some("city#nashville-tn#condo")
            && alert
                .price_per_sqft_to_median
                .is_some_and(|r| (r - 0.7).abs() < 0.02)
            && alert.url.is_some()
            && got[0].attributes.get("listing_id").map(String::as_str) == Some("zillow:7010"),
        format!("the new listing's alert: {:?}", got[0]),
    )?;

    // Every record so far replayed, twice: nothing more.
    for _ in 0..2 {
        let (response, outcome) = stack
            .function
            .handle(lambda_event(&stack, &all_records)?)
            .await;
        ensure(response.batch_item_failures.is_empty(), "replay failed")?;
        ensure_clean(&outcome, 0, 1)?;
    }
    ensure(
        drain(&stack, &everything).await?.is_empty(),
        "a replay published again",
    )?;

    // The watched listing cut 5 %: a price cut, to its watcher only.
    let (response, _) = metrics.handle(round(1)).await;
    ensure(response.batch_item_failures.is_empty(), "metrics failed")?;
    let records = reader.next_records().await?;
    let (response, outcome) = stack.function.handle(lambda_event(&stack, &records)?).await;
    ensure(response.batch_item_failures.is_empty(), "alerts failed")?;
    ensure_clean(&outcome, 1, 0)?;
    let watched = drain(&stack, &watcher).await?;
    ensure(
        keys(&watched) == expected(&[("price_cut", 7001)]),
        format!("the watcher got {:?}", keys(&watched)),
    )?;
    let cut = &watched[0];
    ensure(
        cut.subject.as_deref() == Some("Price cut 5%: 7001 Main St, Nashville, TN now $190,000")
            && cut.attributes.get("listing_id").map(String::as_str) == Some("zillow:7001")
            && cut.attributes.get("drop_pct").map(String::as_str) == Some("5.00")
            && (cut.body.old_price, cut.body.new_price) == (200_000.0, 190_000.0)
            && cut.body.market_median_price_per_sqft.is_some(),
        format!("the watched cut: {cut:?}"),
    )?;
    ensure(
        keys(&drain(&stack, &everything).await?) == expected(&[("price_cut", 7001)]),
        "everything: the cut",
    )?;
    for (name, subscriber) in [
        ("the other watcher", &other_watcher),
        ("price drops", &drops),
    ] {
        let got = drain(&stack, subscriber).await?;
        ensure(got.is_empty(), format!("{name} got {:?}", keys(&got)))?;
    }
    Ok(())
}

/// Applies `events` with the real metrics function, then hands the listing writes they made
/// to the alerts function; returns how many alerts it published.
async fn metrics_then_alerts(
    stack: &Stack,
    metrics: &MetricsFunction,
    reader: &mut realty_tests::TableStreamReader,
    events: KinesisEvent,
    published: usize,
) -> Result<Vec<aws_sdk_dynamodbstreams::types::Record>, Failed> {
    let (response, _) = metrics.handle(events).await;
    ensure(response.batch_item_failures.is_empty(), "metrics failed")?;
    let records = reader.next_records().await?;
    let (response, outcome) = stack.function.handle(lambda_event(stack, &records)?).await;
    ensure(response.batch_item_failures.is_empty(), "alerts failed")?;
    ensure_clean(&outcome, published, 0)?;
    Ok(records)
}

/// With `NewListingAlerts` on, every new listing is one `new_listing` alert carrying `price`,
/// `bedrooms` and `property_type` attributes, and SNS delivers it only to the subscriptions
/// whose filter policy (their criteria) it meets: the docs/alerts.md example policy (3+
/// bedrooms, $250,000 to $450,000, houses and townhouses) gets the one house in it.
async fn new_listings_reach_only_the_subscribers_whose_criteria_they_meet(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let mut stack = stack(&aws).await?;
    stack.function.thresholds.new_listing_alerts = true;
    let family = subscribe(
        &stack,
        "family",
        Some(json!({
            "alert_type": ["new_listing"],
            "market": ["nashville-tn"],
            "property_type": ["single_family", "townhouse"],
            "price": [{ "numeric": [">=", 250000, "<=", 450000] }],
            "bedrooms": [{ "numeric": [">=", 3] }]
        })),
        // Not raw: the envelope carries the subject.
        false,
    )
    .await?;
    let condos = subscribe(
        &stack,
        "condos",
        Some(json!({ "alert_type": ["new_listing"], "property_type": ["condo"] })),
        true,
    )
    .await?;
    let drops = subscribe(
        &stack,
        "drops",
        Some(json!({ "alert_type": ["price_drop"] })),
        true,
    )
    .await?;
    let step = |id, dollars, beds, property_type| Step {
        id,
        dollars,
        sqft: 1_500,
        beds,
        property_type,
    };
    let events = listing_events(&[
        step(8001, 400_000, 4, "single_family"),
        step(8002, 500_000, 4, "single_family"),
        step(8003, 300_000, 2, "townhouse"),
        step(8004, 300_000, 3, "condo"),
        step(8005, 260_000, 3, "townhouse"),
    ])?;
    let metrics =
        MetricsFunction::new(&aws.function_sdk("MetricsFunction").await, &stack.resources);
    let mut reader = stack.stream_reader();
    let records = metrics_then_alerts(&stack, &metrics, &mut reader, events, 5).await?;
    let got = drain(&stack, &family).await?;
    ensure(
        keys(&got) == expected(&[("new_listing", 8001), ("new_listing", 8005)]),
        format!("the family criteria got {:?}", keys(&got)),
    )?;
    let house = got
        .iter()
        .find(|r| r.body.listing_id == "zillow:8001")
        .ok_or("no 8001")?;
    ensure(
        house.attributes.get("price").map(String::as_str) == Some("400000")
            && house.attributes.get("bedrooms").map(String::as_str) == Some("4")
            && house.body.new_listing
            && house.body.url.is_some()
            && house.subject.as_deref()
                == Some("New listing: 8001 Main St, Nashville, TN for $400,000, 4 bd"),
        format!("the new listing's alert: {house:?}"),
    )?;
    ensure(
        keys(&drain(&stack, &condos).await?) == expected(&[("new_listing", 8004)]),
        "the condo subscriber gets the condo",
    )?;
    ensure(
        drain(&stack, &drops).await?.is_empty(),
        "price drops get no new listing",
    )?;
    // Replayed: nothing again.
    let (response, outcome) = stack.function.handle(lambda_event(&stack, &records)?).await;
    ensure(response.batch_item_failures.is_empty(), "replay failed")?;
    ensure_clean(&outcome, 0, 5)?;
    ensure(
        drain(&stack, &family).await?.is_empty(),
        "a replay published again",
    )
}

/// Twelve condos between 180 and 235 $/sqft, then one at 30 $/sqft: the metrics function
/// flags it anomalous for its market (a robust z-score on the log scale) and it raises one
/// `anomaly` alert with its market comparison; replays, and a later change while it stays
/// anomalous, raise no other.
async fn a_listing_flagged_anomalous_alerts_once_with_its_market_comparison(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let stack = stack(&aws).await?;
    let anomalies = subscribe(
        &stack,
        "anomalies",
        Some(json!({ "alert_type": ["anomaly"] })),
        false,
    )
    .await?;
    let metrics =
        MetricsFunction::new(&aws.function_sdk("MetricsFunction").await, &stack.resources);
    let mut reader = stack.stream_reader();
    let market: Vec<(u32, i64)> = (0..12)
        .map(|i| (9001 + i, 180_000 + i64::from(i) * 5_000))
        .collect();
    let mut all_records = metrics_then_alerts(
        &stack,
        &metrics,
        &mut reader,
        listing_events(&condos(&market))?,
        0,
    )
    .await?;
    ensure(
        drain(&stack, &anomalies).await?.is_empty(),
        "an ordinary market has no anomaly",
    )?;

    // The give-away: undervalued too (each alert of its own type).
    let mut steps = market.clone();
    steps.push((9013, 30_000));
    let mut event = listing_events(&condos(&steps))?;
    event.records = event.records.split_off(12);
    all_records.extend(metrics_then_alerts(&stack, &metrics, &mut reader, event, 2).await?);
    let got: Vec<Received> = drain(&stack, &anomalies).await?;
    ensure(
        keys(&got) == expected(&[("anomaly", 9013)]),
        format!("anomalies got {:?}", keys(&got)),
    )?;
    let body = &got[0].body;
    ensure(
        body.price_per_sqft == Some(30.0)
            && body
                .market_median_price_per_sqft
                .is_some_and(|m| (180.0..=240.0).contains(&m))
            && body.price_per_sqft_to_median.is_some_and(|r| r < 0.2)
            && got[0]
                .subject
                .as_deref()
                .is_some_and(|s| s.starts_with("Unusual price at ")),
        format!("the anomaly alert: {:?}", got[0]),
    )?;

    // Replayed twice: nothing more.
    for _ in 0..2 {
        let (response, outcome) = stack
            .function
            .handle(lambda_event(&stack, &all_records)?)
            .await;
        ensure(response.batch_item_failures.is_empty(), "replay failed")?;
        ensure(outcome.stats.published == 0, format!("{:?}", outcome.stats))?;
    }
    // Still anomalous after a small rise: no second anomaly alert.
    steps.push((9013, 31_000));
    let mut event = listing_events(&condos(&steps))?;
    event.records = event.records.split_off(13);
    metrics_then_alerts(&stack, &metrics, &mut reader, event, 0).await?;
    ensure(
        drain(&stack, &anomalies).await?.is_empty(),
        "an anomaly alerted again",
    )
}
