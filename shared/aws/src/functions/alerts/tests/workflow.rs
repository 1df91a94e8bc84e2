//! The batch workflow over in-memory ports, with injected failures and crashes.

use super::*;

#[tokio::test(flavor = "current_thread")]
async fn a_batch_publishes_its_alerts_once_however_often_it_is_delivered() {
    let world = World::default();
    let (response, outcome) = world.handle(batch()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(world.publisher.published(), expected_alerts());
    let s = &outcome.stats;
    assert_eq!(
        (s.records, s.changes, s.skipped.get("not_modify")),
        (5, 5, None)
    );
    let due = |kind: &str| s.due.get(kind).copied().unwrap_or(0);
    assert_eq!(
        (
            due("price_drop"),
            due("price_cut"),
            due("undervalued"),
            s.published
        ),
        (3, 0, 1, 4)
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
    world.publisher.fail_alerts_of("zillow:3");
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
    // The alert feed holds what went out, and only that.
    assert_eq!(world.idempotency.alert_ids(), world.publisher.published());

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
    assert_eq!(world.idempotency.alert_ids(), expected);
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
    world.publisher.fail_alerts_of("zillow");
    world
        .idempotency
        .crash_after_publish
        .store(true, Ordering::SeqCst);
    world.handle(batch()).await;
    assert!(world.publisher.published().is_empty());
    assert!(world.idempotency.states().values().all(|s| *s == "pending"));

    // Lambda re-delivers the batch to a fresh invocation, after the crashed one's deadline.
    world.idempotency.after_the_crashed_deadline();
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
    // Lambda re-delivers after the crashed invocation's deadline.
    world.idempotency.after_the_crashed_deadline();
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
    world.publisher.fail_alerts_of("zillow");
    let (response, _) = world.handle(sample_event()).await;
    assert_eq!(
        serde_json::to_value(&response).expect("json"),
        json!({ "batchItemFailures": [{ "itemIdentifier": "4421584500000000017450439091" }] })
    );
}
