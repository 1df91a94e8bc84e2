//! Alerts at and past SNS's message size limit.

use std::sync::Arc;

use libtest_mimic::Failed;
use realty_alerts::message::{MAX_MESSAGE_BYTES, message};
use realty_alerts::rules::{AlertThresholds, ListingChange, MarketMedian, Medians, evaluate};
use realty_model::listing::PropertyType;
use realty_model::state::ListingItem;
use realty_tests::{Explain, TestAws, ensure};
use serde_json::Value;

use super::helpers::{
    City, alert_records, drain, ensure_clean, expected, keys, lambda_event, listing, put_listing,
    put_market, repriced, stack, subscribe,
};

/// The size of the price-drop alert of `old` -> `new` as SNS counts it (body, subject and
/// attributes), judged against a Nashville condo median of `median` dollars per sqft, as
/// the handler judges it; also for a message over the limit.
fn alert_bytes(old: &ListingItem, new: &ListingItem, median: f64) -> Result<usize, Failed> {
    let change = ListingChange {
        sequence_number: "0".into(),
        old: Some(old.clone()),
        new: new.clone(),
    };
    let median = MarketMedian {
        scope_key: "city#nashville-tn#condo".into(),
        price_per_sqft: median,
    };
    let alert = evaluate(
        &change,
        &AlertThresholds::default(),
        &Medians::both(&median),
    )
    .into_iter()
    .next()
    .ok_or("no alert")?;
    Ok(match message(&alert) {
        Ok(m) => m.size_bytes(),
        Err(e) => e.bytes,
    })
}

/// `item` (and its next version, 20 % cheaper) with an address line of `line_bytes`.
fn with_address(item: &ListingItem, line_bytes: usize) -> (ListingItem, ListingItem) {
    let mut old = item.clone();
    old.listing.address.line = Some("a".repeat(line_bytes));
    let new = repriced(&old, old.listing.price_minor / 100 * 4 / 5, 2);
    (old, new)
}

/// Listing items written without the event bounds (by an older version of the metrics
/// function, or by hand): one whose alert is exactly SNS's 256 KiB and one whose alert is a
/// byte over. The first is delivered; the second can never be, so it goes to the error sink
/// (the PoisonRecordQueue) with a short reason, and the batch goes on instead of failing
/// every delivery for an hour and then being discarded.
pub(super) async fn an_alert_over_the_sns_limit_goes_to_the_error_sink_and_one_at_it_is_delivered(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let stack = stack(&aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let median = put_market(&stack, "city#nashville-tn#condo", 500.0).await?;
    let normal = listing(3001, City::Nashville, PropertyType::Condo, 600_000)?;
    let at_limit = listing(3002, City::Nashville, PropertyType::Condo, 600_000)?;
    let over = listing(3003, City::Nashville, PropertyType::Condo, 600_000)?;

    // The longest address line whose alert fits: the size grows a byte per byte of line.
    let (mut fits, mut too_long) = (0, MAX_MESSAGE_BYTES);
    while too_long - fits > 1 {
        let mid = usize::midpoint(fits, too_long);
        let (old, new) = with_address(&at_limit, mid);
        if alert_bytes(&old, &new, median)? <= MAX_MESSAGE_BYTES {
            fits = mid;
        } else {
            too_long = mid;
        }
    }
    let (at_old, at_new) = with_address(&at_limit, fits);
    let (over_old, over_new) = with_address(&over, fits + 1);
    ensure(
        alert_bytes(&at_old, &at_new, median)? == MAX_MESSAGE_BYTES
            && alert_bytes(&over_old, &over_new, median)? == MAX_MESSAGE_BYTES + 1,
        "the alerts are not at and just past the limit",
    )?;

    for item in [&normal, &at_old, &over_old] {
        put_listing(&stack, item).await?;
    }
    put_listing(&stack, &repriced(&normal, 480_000, 2)).await?;
    put_listing(&stack, &at_new).await?;
    put_listing(&stack, &over_new).await?;
    let records = stack.stream_reader().next_records().await?;
    let event = lambda_event(&stack, &records)?;
    let over_sequence = event
        .records
        .iter()
        .filter(|r| r.event_name == "MODIFY")
        .nth(2)
        .and_then(|r| r.change.sequence_number.clone())
        .ok_or("no third MODIFY")?;

    let (response, outcome) = stack.function.handle(event.clone()).await;
    ensure(
        response.batch_item_failures.is_empty(),
        format!("the batch failed: {:?}", outcome.error),
    )?;
    ensure(
        (outcome.stats.published, outcome.stats.rejected) == (2, 1),
        format!("expected 2 published and 1 rejected: {:?}", outcome.stats),
    )?;
    let got = drain(&stack, &everything).await?;
    ensure(
        keys(&got) == expected(&[("price_drop", 3001), ("price_drop", 3002)]),
        format!("delivered {:?}", keys(&got)),
    )?;
    let delivered_at_limit = got
        .iter()
        .find(|r| r.body.listing_id == "zillow:3002")
        .ok_or("the alert at the limit was not delivered")?;
    ensure(
        delivered_at_limit.body.address.len() > fits,
        "the alert at the limit was cut",
    )?;

    // The error sink has the alert over the limit: who, where in the stream, and why.
    let sunk = stack
        .sqs
        .receive_message()
        .queue_url(&stack.resources.poison_record_queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .send()
        .await
        .explain("ReceiveMessage")?
        .messages
        .unwrap_or_default();
    ensure(
        sunk.len() == 1,
        format!("{} error-sink messages", sunk.len()),
    )?;
    let text = sunk[0].body().ok_or("an error-sink message without body")?;
    ensure(
        text.len() < 2_048,
        format!("an error-sink entry of {} bytes", text.len()),
    )?;
    let entry: Value = serde_json::from_str(text)?;
    ensure(
        entry["function"] == "alerts"
            && entry["reason_kind"] == "message_too_large"
            && entry["alert_id"] == "alert#price_drop#zillow:3003#2"
            && entry["listing_id"] == "zillow:3003"
            && entry["sequence_number"] == over_sequence.as_str()
            && entry["message_bytes"] == MAX_MESSAGE_BYTES + 1
            && entry["reason"]
                .as_str()
                .is_some_and(|r| r.len() < 200 && r.contains("262145")),
        format!("error-sink entry {entry}"),
    )?;
    // Nothing of the alert over the limit was claimed (it was never going to be published).
    let claims = alert_records(&stack).await?.len();
    ensure(claims == 2, format!("{claims} alert records, expected 2"))?;

    // A re-delivery publishes nothing again.
    let (response, outcome) = stack.function.handle(event).await;
    ensure(
        response.batch_item_failures.is_empty(),
        "the re-delivery failed",
    )?;
    ensure_clean(&outcome, 0, 2)?;
    ensure(
        drain(&stack, &everything).await?.is_empty(),
        "a re-delivery delivered again",
    )
}
