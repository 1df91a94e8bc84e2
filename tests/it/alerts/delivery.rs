//! Subscribers get each alert their filter policy asks for, once, however often the batch
//! is replayed; the market's feed holds what was published.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue as Ddb;
use libtest_mimic::Failed;
use realty_alerts::feed::{ALERT_FEED_DAYS, AlertFeedItem, feed_key};
use realty_alerts::message::AlertBody;
use realty_model::listing::{ListingStatus, Offer, PropertyType};
use realty_tests::{Explain, TestAws, ensure};
use serde_json::json;

use super::helpers::{
    City, Received, Stack, alert_records, drain, ensure_clean, expected, keys, lambda_event,
    listing, put_listing, put_market, repriced, stack, subscribe,
};

/// A market's alert feed in the market table, newest first (one Query, as the API reads it).
async fn feed(stack: &Stack, market: &str) -> Result<Vec<AlertFeedItem>, Failed> {
    let page = stack
        .dynamodb
        .query()
        .table_name(&stack.resources.market_table)
        .key_condition_expression("pk = :pk")
        .filter_expression("attribute_not_exists(lease_until)")
        .expression_attribute_values(":pk", Ddb::S(feed_key(market)))
        .scan_index_forward(false)
        .send()
        .await
        .explain("Query")?;
    let mut items = Vec::new();
    for item in page.items.unwrap_or_default() {
        items.push(serde_dynamo::from_item(item)?);
    }
    Ok(items)
}

/// The feed of each market holds exactly the alerts subscribers received, as published, with
/// their TTL.
async fn ensure_feed_holds(stack: &Stack, received: &[Received]) -> Result<(), Failed> {
    let mut markets: BTreeMap<&str, Vec<AlertBody>> = BTreeMap::new();
    for r in received {
        markets
            .entry(&r.body.market)
            .or_default()
            .push(r.body.clone());
    }
    for (market, mut published) in markets {
        let items = feed(stack, market).await?;
        let mut kept = Vec::new();
        // Kept 30 days from the alert's observation, and at least a week from now (past
        // every re-delivery of its record: these fixtures were observed in 2025).
        let week = chrono::Utc::now().timestamp() + 7 * 86_400;
        for item in &items {
            let body: AlertBody = serde_json::from_str(&item.body)?;
            let feed_time =
                (body.observed_at + chrono::Duration::days(ALERT_FEED_DAYS)).timestamp();
            ensure(
                item.alert_type == body.alert_type
                    && item.observed_at == body.observed_at
                    && (item.expires_at == feed_time
                        || (feed_time < week && (item.expires_at - week).abs() < 600)),
                format!("feed item {item:?}"),
            )?;
            kept.push(body);
        }
        kept.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
        published.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
        ensure(
            kept == published,
            format!("the {market} feed holds {kept:?}, not what was published ({published:?})"),
        )?;
    }
    Ok(())
}

pub(super) async fn subscribers_get_each_alert_they_filter_for_once(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let stack = stack(&aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let big_drops = subscribe(
        &stack,
        "big-drops",
        Some(json!({ "alert_type": ["price_drop"], "drop_pct": [{ "numeric": [">=", 20] }] })),
        false,
    )
    .await?;
    let syracuse = subscribe(
        &stack,
        "syracuse",
        Some(json!({ "market": ["syracuse-ny"] })),
        true,
    )
    .await?;

    // Markets: Nashville condos at about 500 $/sqft (city 400); Syracuse has only its
    // all-types figure, about 200.
    let condos = put_market(&stack, "city#nashville-tn#condo", 500.0).await?;
    put_market(&stack, "city#nashville-tn#all", 400.0).await?;
    put_market(&stack, "city#syracuse-ny#all", 200.0).await?;

    use City::*;
    use PropertyType::*;
    let a = listing(1001, Nashville, Condo, 600_000)?;
    let b = listing(1002, Nashville, Condo, 500_000)?;
    let c = listing(1003, Nashville, SingleFamily, 500_000)?;
    let d = listing(1004, Syracuse, SingleFamily, 200_000)?;
    let e = listing(1005, Syracuse, Condo, 190_000)?;
    let mut f = listing(1006, Nashville, Condo, 3_000)?;
    f.listing.offer = Offer::Rent;
    // New listings at or under the bound (0.8 of the condos' median, about 400 $/sqft):
    // undervalued from their first sighting.
    let g = listing(1007, Nashville, Condo, (0.8 * condos * 1e3).floor() as i64)?;
    let h = listing(1008, Nashville, Condo, 390_000)?;
    let i = listing(1009, Nashville, Condo, 300_000)?;
    for item in [&a, &b, &c, &d, &e, &f, &g, &h, &i] {
        put_listing(&stack, item).await?;
    }

    // Round 1: prices change through the table.
    let a2 = repriced(&a, 480_000, 2); // -20 %: price drop (480 $/sqft is not undervalued)
    let e2 = repriced(&e, 155_000, 2); // -18.42 % and 155 <= 0.8 x 200: both alerts
    let mut g2 = repriced(&g, 300_000, 2); // -25 %, but delisted: nothing
    g2.delisted = true;
    let mut h2 = repriced(&h, 390_000, 2); // status only, still undervalued: nothing new
    h2.listing.status = ListingStatus::UnderContract;
    h2.listing.previous_price_minor = None;
    for item in [
        a2.clone(),
        repriced(&b, 440_000, 2), // -12 %: a price cut, under the drop threshold
        repriced(&c, 525_000, 2), // a rise
        repriced(&d, 170_000, 2), // exactly -15 %; 170 > 160: price drop only
        e2.clone(),
        repriced(&f, 2_000, 2), // a rent: nothing
        g2,
        h2,
    ] {
        put_listing(&stack, &item).await?;
    }
    stack
        .dynamodb
        .delete_item()
        .table_name(&stack.resources.listing_table)
        .key("listing_id", Ddb::S(i.listing_id.clone()))
        .send()
        .await
        .explain("DeleteItem")?;

    let mut reader = stack.stream_reader();
    let round1 = reader.next_records().await?;
    ensure(
        round1.len() == 18,
        format!(
            "{} stream records, expected 9 INSERT + 8 MODIFY + 1 REMOVE",
            round1.len()
        ),
    )?;
    let event1 = lambda_event(&stack, &round1)?;
    let (response, outcome) = stack.function.handle(event1.clone()).await;
    ensure(
        response.batch_item_failures.is_empty(),
        format!("{:?}", response.batch_item_failures),
    )?;
    ensure_clean(&outcome, 8, 0)?;
    ensure(
        outcome.stats.skipped.get("not_modify") == Some(&1),
        format!("skipped {:?}", outcome.stats.skipped),
    )?;

    let all = drain(&stack, &everything).await?;
    ensure(
        keys(&all)
            == expected(&[
                ("price_drop", 1001),
                ("price_cut", 1002),
                ("price_drop", 1004),
                ("price_drop", 1005),
                ("undervalued", 1005),
                ("undervalued", 1007),
                ("undervalued", 1008),
                ("undervalued", 1009),
            ]),
        format!("everything got {:?}", keys(&all)),
    )?;
    let dropped = drain(&stack, &big_drops).await?;
    ensure(
        keys(&dropped) == expected(&[("price_drop", 1001)]),
        format!("the >= 20 % subscriber got {:?}", keys(&dropped)),
    )?;
    let first = &dropped[0];
    ensure(
        first.subject.as_deref()
            == Some("Price drop 20%: 1001 Main St, Nashville, TN now $480,000"),
        format!("subject {:?}", first.subject),
    )?;
    ensure(
        first.attributes
            == BTreeMap::from([
                ("alert_type".to_owned(), "price_drop".to_owned()),
                ("bedrooms".to_owned(), "1".to_owned()),
                ("drop_pct".to_owned(), "20.00".to_owned()),
                ("listing_id".to_owned(), "zillow:1001".to_owned()),
                ("market".to_owned(), "nashville-tn".to_owned()),
                ("price".to_owned(), "480000".to_owned()),
                ("property_type".to_owned(), "condo".to_owned()),
            ]),
        format!("attributes {:?}", first.attributes),
    )?;
    ensure(
        (
            first.body.old_price,
            first.body.new_price,
            first.body.drop_pct,
        ) == (600_000.0, 480_000.0, 20.0)
            && first.body.market_median_price_per_sqft == Some((condos * 100.0).round() / 100.0)
            && first.body.median_scope.as_deref() == Some("city#nashville-tn#condo"),
        format!("body {:?}", first.body),
    )?;
    let in_syracuse = drain(&stack, &syracuse).await?;
    ensure(
        keys(&in_syracuse)
            == expected(&[
                ("price_drop", 1004),
                ("price_drop", 1005),
                ("undervalued", 1005),
            ]),
        format!("the Syracuse subscriber got {:?}", keys(&in_syracuse)),
    )?;
    let undervalued = in_syracuse
        .iter()
        .find(|r| r.key().0 == "undervalued")
        .ok_or("no undervalued alert")?;
    ensure(
        undervalued.body.median_scope.as_deref() == Some("city#syracuse-ny#all")
            && undervalued.body.price_per_sqft == Some(155.0)
            && undervalued.attributes.get("drop_pct").map(String::as_str) == Some("18.42"),
        format!("{undervalued:?}"),
    )?;

    // The records of what was published (the feed items, no claim left), kept past every
    // re-delivery.
    let records = alert_records(&stack).await?;
    let now = chrono::Utc::now().timestamp();
    ensure(
        records.len() == 8
            && records.iter().all(|r| {
                r.get("state")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some("published")
                    && !r.contains_key("lease_until")
                    && r.get("expires_at")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<i64>().ok())
                        .is_some_and(|t| t >= now + 7 * 86_400 - 600)
            }),
        format!("alert records {records:?}"),
    )?;

    // Lambda re-delivers the same batch (a retry after a timeout, say): nothing twice.
    for _ in 0..2 {
        let (response, outcome) = stack.function.handle(event1.clone()).await;
        ensure(response.batch_item_failures.is_empty(), "replay failed")?;
        ensure_clean(&outcome, 0, 8)?;
    }
    for subscriber in [&everything, &big_drops, &syracuse] {
        let again = drain(&stack, subscriber).await?;
        ensure(
            again.is_empty(),
            format!("a replay delivered {:?}", keys(&again)),
        )?;
    }
    // The feed the API reads: what was published, once, however often it was replayed.
    ensure_feed_holds(&stack, &all).await?;

    // Round 2: a further cut of a makes a new version, so new alerts; e falls a little more
    // while undervalued; d rises.
    put_listing(&stack, &repriced(&a2, 380_000, 3)).await?; // -20.83 %, and 380 <= 400
    put_listing(&stack, &repriced(&e2, 150_000, 3)).await?; // -3.2 %: a price cut, further under
    put_listing(&stack, &repriced(&d, 178_500, 3)).await?;
    let round2 = reader.next_records().await?;
    ensure(
        round2.len() == 3,
        format!("{} new stream records", round2.len()),
    )?;
    let (response, outcome) = stack.function.handle(lambda_event(&stack, &round2)?).await;
    ensure(response.batch_item_failures.is_empty(), "round 2 failed")?;
    ensure_clean(&outcome, 4, 0)?;
    ensure(
        keys(&drain(&stack, &everything).await?)
            == expected(&[
                ("price_drop", 1001),
                ("undervalued", 1001),
                ("price_cut", 1005),
                ("undervalued", 1005),
            ]),
        "round 2: everything",
    )?;
    let dropped = drain(&stack, &big_drops).await?;
    ensure(
        keys(&dropped) == expected(&[("price_drop", 1001)])
            && dropped[0].attributes.get("drop_pct").map(String::as_str) == Some("20.83"),
        format!("round 2: the >= 20 % subscriber got {dropped:?}"),
    )?;
    ensure(
        keys(&drain(&stack, &syracuse).await?)
            == expected(&[("price_cut", 1005), ("undervalued", 1005)]),
        "round 2: Syracuse",
    )?;

    // The whole stream replayed at once: every alert is known.
    let mut replay = stack.stream_reader();
    let everything_so_far = replay.next_records().await?;
    let (response, outcome) = stack
        .function
        .handle(lambda_event(&stack, &everything_so_far)?)
        .await;
    ensure(
        response.batch_item_failures.is_empty(),
        "full replay failed",
    )?;
    ensure_clean(&outcome, 0, 12)?;
    for subscriber in [&everything, &big_drops, &syracuse] {
        let again = drain(&stack, subscriber).await?;
        ensure(
            again.is_empty(),
            format!("the full replay delivered {:?}", keys(&again)),
        )?;
    }
    Ok(())
}
