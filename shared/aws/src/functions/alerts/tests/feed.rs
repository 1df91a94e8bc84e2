//! The feed of published alerts, which is also their mark: what went out is kept once, in
//! one write per batch, and a feed that fails never fails a record (which would publish its
//! alert again). That only published alerts enter it:
//! `workflow::an_unpublished_alert_fails_the_batch_from_its_record`; a failed mark re-tried:
//! `leases::a_failed_mark_is_retried_so_a_redelivery_does_not_repeat_the_alert`.

use super::*;

fn sorted(ids: Vec<&str>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "current_thread")]
async fn the_feed_keeps_each_published_alert_once_under_its_market() {
    let world = World::default();
    let (response, outcome) = world.handle(batch()).await;
    assert!(response.batch_item_failures.is_empty(), "{outcome:?}");
    assert_eq!(world.idempotency.alert_ids(), sorted(expected_alerts()));
    assert_eq!(
        world.idempotency.mark_calls.load(Ordering::SeqCst),
        1,
        "one write a batch: the marks are the feed"
    );
    let markets: BTreeSet<String> = world
        .idempotency
        .feed_items()
        .into_keys()
        .map(|(pk, _)| pk)
        .collect();
    assert_eq!(
        markets,
        BTreeSet::from([
            "alerts#nashville-tn".to_owned(),
            "alerts#syracuse-ny".to_owned()
        ])
    );
    // Re-deliveries publish nothing, so they write nothing.
    world.handle(batch()).await;
    assert_eq!(world.idempotency.mark_calls.load(Ordering::SeqCst), 1);
    assert_eq!(world.idempotency.alert_ids(), sorted(expected_alerts()));
}

#[tokio::test(flavor = "current_thread")]
async fn a_feed_down_until_the_deadline_fails_no_record_and_is_counted() {
    let world = World::default();
    world
        .idempotency
        .failing_marks
        .store(usize::MAX, Ordering::SeqCst);
    let (response, outcome) = world.handle(batch()).await;
    // The alerts went out: failing their records would publish them again.
    assert!(response.batch_item_failures.is_empty(), "{outcome:?}");
    assert_eq!(
        (outcome.stats.published, outcome.stats.marks_failed),
        (4, 4)
    );
    assert!(outcome.stats.mark_retries >= 1, "{:?}", outcome.stats);
    assert!(world.idempotency.alert_ids().is_empty());
    assert_eq!(world.publisher.published(), expected_alerts());
}
