//! The alert feed as the API reads it: what the alerts function wrote ([`AlertFeedItem`]),
//! through the in-memory market table.

use chrono::Duration;

use crate::lists::{AlertFeed, recent_alerts};
use realty_alerts::feed::AlertFeedItem;
use realty_alerts::testing::{at, body, published};
use realty_metrics::memory::{KeyedItem, MemoryStores};
use realty_metrics::testing::block_on;

/// The API leaves out an alert past its TTL (DynamoDB deletes it days later), and a
/// page that reached an expired one is the last: every older alert has expired too.
#[test]
fn the_feed_shows_no_alert_past_its_ttl() {
    let stores = MemoryStores::default();
    let mut older = body("alert#price_drop#zillow:1#1", "nashville-tn");
    older.observed_at = at("2026-11-01T08:00:00Z");
    let newer = body("alert#price_drop#zillow:2#1", "nashville-tn");
    for b in [&older, &newer] {
        let item = AlertFeedItem::of(&published(b)).expect("an item");
        stores.keyed.lock().expect("lock").insert(
            (item.pk.clone(), item.sk.clone()),
            KeyedItem::Json(serde_json::to_value(&item).expect("JSON")),
        );
    }
    let markets = ["nashville-tn".to_owned()];
    let read = |limit: usize, now: &str| {
        block_on(recent_alerts(&stores, &markets, None, limit, None, at(now))).expect("feed")
    };
    let ids = |feed: &AlertFeed| -> Vec<String> {
        feed.alerts.iter().map(|a| a.alert_id.clone()).collect()
    };
    let both = read(10, "2026-11-30T00:00:00Z");
    assert_eq!(ids(&both), [newer.alert_id.clone(), older.alert_id.clone()]);
    let first = read(1, "2026-11-30T00:00:00Z");
    assert!(first.next.is_some(), "{first:?}");
    // 30 days after the older one: only the newer is left, and no page follows it.
    let expired = read(2, "2026-12-01T08:00:00Z");
    assert_eq!(ids(&expired), std::slice::from_ref(&newer.alert_id));
    assert_eq!(expired.next, None);
    let last = block_on(recent_alerts(
        &stores,
        &markets,
        None,
        1,
        first.next.as_deref(),
        at("2026-12-01T08:00:00Z"),
    ))
    .expect("feed");
    assert!(last.alerts.is_empty() && last.next.is_none(), "{last:?}");
    assert_eq!(read(10, "2026-12-22T00:00:00Z").alerts.len(), 0);
}

/// An alert of an old event published late (a replay) is stored with a TTL a week from
/// its write, past the end of its 30 days: the feed leaves it out all the same, so what
/// the feed shows does not hang on when DynamoDB deletes the expired alerts newer than it.
#[test]
fn an_alert_published_after_its_30_days_is_not_in_the_feed() {
    let stores = MemoryStores::default();
    let now = at("2026-12-01T08:00:00Z");
    let mut replayed = body("alert#price_drop#zillow:1#1", "nashville-tn");
    replayed.observed_at = at("2026-10-20T08:00:00Z");
    let mut recent = body("alert#price_drop#zillow:2#1", "nashville-tn");
    recent.observed_at = at("2026-11-30T08:00:00Z");
    for (b, expires_at) in [
        (&replayed, (now + Duration::days(7)).timestamp()),
        (
            &recent,
            (recent.observed_at + Duration::days(30)).timestamp(),
        ),
    ] {
        let item = AlertFeedItem {
            expires_at,
            ..AlertFeedItem::of(&published(b)).expect("an item")
        };
        stores.keyed.lock().expect("lock").insert(
            (item.pk.clone(), item.sk.clone()),
            KeyedItem::Json(serde_json::to_value(&item).expect("JSON")),
        );
    }
    let markets = ["nashville-tn".to_owned()];
    let feed = block_on(recent_alerts(&stores, &markets, None, 10, None, now)).expect("feed");
    let ids: Vec<&str> = feed.alerts.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(ids, [recent.alert_id.as_str()]);
    assert_eq!(feed.next, None);
}
