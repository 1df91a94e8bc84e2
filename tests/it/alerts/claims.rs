//! Claims as leases in the real table.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue as Ddb;
use libtest_mimic::Failed;
use realty_alerts::feed::{ALERT_FEED_DAYS, AlertFeedItem, feed_key, feed_sort_key};
use realty_alerts::ports::{AlertClaimStore, Claim};
use realty_alerts::rules::AlertKind;
use realty_model::listing::PropertyType;
use realty_model::state::ListingItem;
use realty_tests::{Explain, TestAws, ensure};

use super::helpers::{
    City, drain, ensure_clean, expected, keys, lambda_event, listing, put_listing, repriced, stack,
    subscribe,
};

/// The keys the function claims alert `alert_id` (of type `kind`) of `item` under: its feed
/// item's, in the listing's market at the time it was observed.
fn alert_key(item: &ListingItem, kind: AlertKind, alert_id: &str) -> AlertFeedItem {
    AlertFeedItem {
        pk: feed_key(&item.market),
        sk: feed_sort_key(kind.as_str(), item.observed_at, alert_id),
        alert_type: kind,
        observed_at: item.observed_at,
        body: serde_json::json!({ "alert_id": alert_id }).to_string(),
        expires_at: (item.observed_at + chrono::Duration::days(ALERT_FEED_DAYS)).timestamp(),
    }
}

/// Claims are leases in the real table: another invocation's live claim is neither taken
/// over nor skipped (its record fails and comes again), an expired one is taken over, a
/// published alert is never claimed again, and a claim is released only by its holder.
pub(super) async fn a_live_claim_is_not_taken_over_and_an_expired_one_is(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let stack = stack(&aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let store = &stack.function.idempotency;
    let now = chrono::Utc::now();
    let live = now + chrono::Duration::minutes(10);
    let expired = now - chrono::Duration::seconds(1);

    // The store on its own.
    let some = listing(4000, City::Nashville, PropertyType::Condo, 500_000)?;
    let key = &alert_key(
        &some,
        AlertKind::PriceDrop,
        "alert#price_drop#zillow:4000#2",
    );
    ensure(
        store.claim(key, "a", live).await? == Claim::Acquired,
        "a new key is claimed",
    )?;
    let held = store.claim(key, "b", live).await?;
    ensure(
        matches!(held, Claim::HeldUntil(until) if (until - live).num_milliseconds().abs() < 1),
        format!("a live claim is taken over: {held:?}"),
    )?;
    store.release(key, "b").await?;
    ensure(
        matches!(store.claim(key, "b", live).await?, Claim::HeldUntil(_)),
        "a claim released by another token",
    )?;
    // The API's read of the feed leaves claims out.
    let reader = realty_aws::adapters::dynamodb::DynamoMarketStore {
        client: stack.dynamodb.clone(),
        table: stack.resources.market_table.clone(),
        retry: Default::default(),
    };
    let page = realty_api::lists::recent_alerts(
        &reader,
        std::slice::from_ref(&some.market),
        None,
        10,
        None,
        // Read as at the alert, where no TTL has run out: the claim is left out for its
        // lease alone.
        some.observed_at,
    )
    .await?;
    ensure(
        page.alerts.is_empty() && page.next.is_none(),
        format!("a claim is read as a published alert: {page:?}"),
    )?;
    let key = &alert_key(
        &some,
        AlertKind::PriceDrop,
        "alert#price_drop#zillow:4001#2",
    );
    store.claim(key, "a", expired).await?;
    ensure(
        store.claim(key, "b", live).await? == Claim::Acquired,
        "an expired claim is not taken over",
    )?;
    store.mark_published(&[key]).await?;
    ensure(
        store.claim(key, "c", expired).await? == Claim::AlreadyPublished,
        "a published alert is claimed again",
    )?;
    // A pending claim without a lease (no writer leaves one; an item edited by hand) holds
    // nothing: it is taken.
    let key = &alert_key(
        &some,
        AlertKind::PriceDrop,
        "alert#price_drop#zillow:4003#2",
    );
    stack
        .dynamodb
        .put_item()
        .table_name(&stack.resources.market_table)
        .item("pk", Ddb::S(key.pk.clone()))
        .item("sk", Ddb::S(key.sk.clone()))
        .item("state", Ddb::S("pending".to_owned()))
        .send()
        .await
        .explain("PutItem")?;
    ensure(
        store.claim(key, "a", live).await? == Claim::Acquired,
        "a pending claim without a lease is not taken",
    )?;

    // Through the handler: a live claim on the alert (another consumer publishing it now).
    let item = listing(4002, City::Nashville, PropertyType::Condo, 500_000)?;
    put_listing(&stack, &item).await?;
    let cut = repriced(&item, 400_000, 2);
    put_listing(&stack, &cut).await?;
    let records = stack.stream_reader().next_records().await?;
    let event = lambda_event(&stack, &records)?;
    let alert = alert_key(&cut, AlertKind::PriceDrop, "alert#price_drop#zillow:4002#2");
    store.claim(&alert, "other", live).await?;
    let (response, outcome) = stack.function.handle(event.clone()).await;
    ensure(
        response.batch_item_failures.len() == 1
            && outcome.stats.claims_held == 1
            && outcome.stats.published == 0,
        format!(
            "a held claim: {:?} {:?}",
            response.batch_item_failures, outcome
        ),
    )?;
    ensure(
        drain(&stack, &everything).await?.is_empty(),
        "published under another invocation's live claim",
    )?;
    // The holder died: its lease runs out, and the re-delivery publishes the alert once.
    stack
        .dynamodb
        .delete_item()
        .table_name(&stack.resources.market_table)
        .key("pk", Ddb::S(alert.pk.clone()))
        .key("sk", Ddb::S(alert.sk.clone()))
        .send()
        .await
        .explain("DeleteItem")?;
    store.claim(&alert, "other", expired).await?;
    for round in 0..2 {
        let (response, outcome) = stack.function.handle(event.clone()).await;
        ensure(
            response.batch_item_failures.is_empty(),
            format!("re-delivery {round}: {:?}", outcome.error),
        )?;
        ensure_clean(&outcome, 1 - round, round)?;
    }
    let got = drain(&stack, &everything).await?;
    ensure(
        keys(&got) == expected(&[("price_drop", 4002)]),
        format!("delivered {:?}", keys(&got)),
    )
}
