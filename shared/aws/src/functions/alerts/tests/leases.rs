//! Claims as leases, marks re-tried while the lease runs, answers lost after SNS accepted,
//! the error sink, and decisions that do not depend on how the alerts' stream was cut.

use super::*;

/// The 20 % cut of zillow:1 (record 100 of [`batch`]) alone.
fn one_drop() -> Event {
    let mut event = batch();
    event.records.truncate(1);
    event
}

#[tokio::test(flavor = "current_thread")]
async fn a_claim_held_by_a_live_invocation_is_neither_taken_nor_skipped() {
    let world = World::default();
    // An invocation claims, and is still running (say, stalled before publishing).
    let live = Utc::now() + chrono::Duration::minutes(10);
    assert_eq!(
        world
            .idempotency
            .claim(&claim_of("alert#price_drop#zillow:1#2"), "other", live)
            .await,
        Ok(Claim::Acquired)
    );
    // A second consumer gets the same record: it must not publish (the holder may be
    // publishing) and must not skip it (the holder may die): the record fails.
    let (response, outcome) = world.handle(one_drop()).await;
    assert_eq!(failed_from(&response), ["100"]);
    assert!(world.publisher.published().is_empty());
    assert_eq!(outcome.stats.claims_held, 1);
    assert!(
        outcome
            .error
            .as_deref()
            .is_some_and(|e| e.contains("another live invocation")),
        "{outcome:?}"
    );
    assert_eq!(
        world.idempotency.states(),
        BTreeMap::from([("alert#price_drop#zillow:1#2".to_owned(), "pending")])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_expired_claim_is_taken_over() {
    let world = World::default();
    let expired = Utc::now() - chrono::Duration::seconds(1);
    world
        .idempotency
        .claim(&claim_of("alert#price_drop#zillow:1#2"), "dead", expired)
        .await
        .expect("claimed");
    let (response, outcome) = world.handle(one_drop()).await;
    assert!(response.batch_item_failures.is_empty(), "{outcome:?}");
    assert_eq!(world.publisher.published(), ["alert#price_drop#zillow:1#2"]);
    assert_eq!(outcome.stats.claims_held, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_claim_whose_lease_ends_in_time_is_waited_for() {
    let world = World::default();
    let soon = Utc::now() + chrono::Duration::milliseconds(300);
    world
        .idempotency
        .claim(&claim_of("alert#price_drop#zillow:1#2"), "crashed", soon)
        .await
        .expect("claimed");
    // This invocation has 30 s: enough to wait for the lease and publish.
    let (response, outcome) = world
        .handle_until(one_drop(), Utc::now() + chrono::Duration::seconds(30))
        .await;
    assert!(response.batch_item_failures.is_empty(), "{outcome:?}");
    assert_eq!(outcome.stats.claims_held, 1);
    assert_eq!(world.publisher.published(), ["alert#price_drop#zillow:1#2"]);
}

/// A claim held past the time this invocation could wait fails its record: a held claim
/// further down the batch is not waited for (its alerts would be handed back at that failure
/// anyway), and the other invocation's claim stays as it was.
#[tokio::test(flavor = "current_thread")]
async fn a_held_claim_past_the_first_failure_is_not_waited_for() {
    let world = World::default();
    let claim = |id: &'static str, token: &'static str, until| {
        let world = &world;
        async move {
            world
                .idempotency
                .claim(&claim_of(id), token, until)
                .await
                .expect("claimed")
        }
    };
    // Record 100's alert is held for 10 minutes; record 500's lease ends in 300 ms.
    claim(
        "alert#price_drop#zillow:1#2",
        "live",
        Utc::now() + chrono::Duration::minutes(10),
    )
    .await;
    claim(
        "alert#price_drop#zillow:5#2",
        "crashed",
        Utc::now() + chrono::Duration::milliseconds(300),
    )
    .await;
    let (response, outcome) = world
        .handle_until(batch(), Utc::now() + chrono::Duration::seconds(30))
        .await;
    assert_eq!(failed_from(&response), ["100"], "{outcome:?}");
    assert!(world.publisher.published().is_empty());
    // Not waited for, so not taken over and handed back: still the crashed invocation's.
    assert_eq!(
        world.idempotency.states(),
        BTreeMap::from([
            ("alert#price_drop#zillow:1#2".to_owned(), "pending"),
            ("alert#price_drop#zillow:5#2".to_owned(), "pending"),
        ])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_mark_is_retried_so_a_redelivery_does_not_repeat_the_alert() {
    let world = World::default();
    // Two marks fail (a short DynamoDB outage); zillow:3 cannot be published, so Lambda
    // re-delivers from record 300, and zillow:5 (record 500) comes again.
    world.idempotency.failing_marks.store(2, Ordering::SeqCst);
    world.publisher.fail_alerts_of("zillow:3");
    let event = batch();
    let (response, outcome) = world.handle(event.clone()).await;
    assert_eq!(failed_from(&response), ["300"]);
    assert_eq!(
        (outcome.stats.mark_retries, outcome.stats.marks_failed),
        (2, 0)
    );
    world.publisher.failing.lock().expect("lock").clear();
    world.idempotency.after_the_crashed_deadline();
    let (response, outcome) = world.handle(from_sequence(&event, "300")).await;
    assert!(response.batch_item_failures.is_empty(), "{outcome:?}");
    let mut published = world.publisher.published();
    published.sort();
    let mut expected = expected_alerts();
    expected.sort();
    assert_eq!(published, expected, "each alert once");
}

/// Handing back the claims of unpublished alerts (DeleteItems throttled, never answering
/// here) goes on beside the marks, not before them: the published alerts are marked, so the
/// re-delivery the unpublished ones cause does not publish them again, and the invocation
/// answers before its deadline.
#[tokio::test(flavor = "current_thread")]
async fn releases_that_hang_do_not_keep_the_published_alerts_unmarked() {
    let world = World::default();
    world
        .idempotency
        .hung_releases
        .store(true, Ordering::SeqCst);
    world.publisher.fail_alerts_of("zillow:3");
    let event = batch();
    let deadline = Utc::now() + WORLD_INVOCATION;
    let (response, outcome) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        world.handle_until(event.clone(), deadline),
    )
    .await
    .expect("the invocation answers");
    assert!(Utc::now() < deadline, "answered before the deadline");
    assert_eq!(failed_from(&response), ["300"]);
    assert_eq!(outcome.stats.marks_failed, 0, "{outcome:?}");
    assert_eq!(
        world.idempotency.states()["alert#price_drop#zillow:1#2"],
        "published"
    );
    // Re-delivered once zillow:3's claim has run out: only what was not published goes out.
    world.publisher.failing.lock().expect("lock").clear();
    world
        .idempotency
        .hung_releases
        .store(false, Ordering::SeqCst);
    world.idempotency.after_the_crashed_deadline();
    let (response, _) = world.handle(from_sequence(&event, "300")).await;
    assert!(response.batch_item_failures.is_empty());
    let mut published = world.publisher.published();
    published.sort();
    let mut expected = expected_alerts();
    expected.sort();
    assert_eq!(published, expected, "each alert once");
}

#[tokio::test(flavor = "current_thread")]
async fn a_lost_answer_fails_the_record_and_its_redelivery_sends_one_more_copy() {
    let world = World::default();
    world
        .publisher
        .answer_lost
        .lock()
        .expect("lock")
        .insert("zillow:1".into());
    let (response, outcome) = world.handle(one_drop()).await;
    // SNS took it, but nobody knows: the record comes again rather than risk losing it.
    assert_eq!(failed_from(&response), ["100"]);
    assert_eq!(
        (outcome.stats.publish_unknown, outcome.stats.unpublished),
        (1, 0)
    );
    assert!(world.idempotency.states().is_empty(), "claim handed back");
    world.publisher.answer_lost.lock().expect("lock").clear();
    let (response, _) = world.handle(one_drop()).await;
    assert!(response.batch_item_failures.is_empty());
    // The one duplicate docs/alerts.md names: two copies with one alert_id; then no more.
    assert_eq!(
        world.publisher.published(),
        ["alert#price_drop#zillow:1#2", "alert#price_drop#zillow:1#2"]
    );
    world.handle(one_drop()).await;
    assert_eq!(world.publisher.published().len(), 2);
}

/// zillow:1's 20 % cut with an address line of `line_bytes` bytes.
fn drop_with_address(line_bytes: usize) -> Event {
    let old = item("zillow:1", 600_000, Some(1_000), 1);
    let mut new = item("zillow:1", 480_000, Some(1_000), 2);
    new.listing.address.line = Some("a".repeat(line_bytes));
    let mut old = old;
    old.listing.address.line = new.listing.address.line.clone();
    event(vec![record("100", &old, &new)])
}

/// The size of the alert message of zillow:1's cut with an address line of `line_bytes`
/// (as SNS counts it, whether or not it is under the limit), judged with the median a
/// [`World`] has for it, as the handler judges it.
fn message_bytes(line_bytes: usize) -> usize {
    let change = classify(drop_with_address(line_bytes).records[0].clone()).expect("decodes");
    let median = pick_median(&change.new.listing, &World::default().medians.medians);
    let alert = evaluate(
        &change,
        &AlertThresholds::default(),
        &median.as_ref().map(Medians::both).unwrap_or_default(),
    )
    .remove(0);
    match message(&alert) {
        Ok(m) => m.size_bytes(),
        Err(e) => e.bytes,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn alerts_at_the_sns_limit_go_out_and_past_it_go_to_the_error_sink() {
    use realty_alerts::message::MAX_MESSAGE_BYTES;
    // The longest address line whose message is within the limit (the size grows by one
    // byte per byte of line).
    let (mut fits, mut too_long) = (0, MAX_MESSAGE_BYTES);
    while too_long - fits > 1 {
        let mid = usize::midpoint(fits, too_long);
        if message_bytes(mid) <= MAX_MESSAGE_BYTES {
            fits = mid;
        } else {
            too_long = mid;
        }
    }
    let (line, size_of) = (fits, message_bytes);
    let at_limit = size_of(line);
    assert_eq!(at_limit, MAX_MESSAGE_BYTES);

    let world = World::default();
    let (response, outcome) = world.handle(drop_with_address(line)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((outcome.stats.published, outcome.stats.rejected), (1, 0));

    let world = World::default();
    let past = line + 1;
    assert!(size_of(past) > MAX_MESSAGE_BYTES);
    let (response, outcome) = world.handle(drop_with_address(past)).await;
    // Never a failure (it would fail forever), never silent: the error sink has it.
    assert!(response.batch_item_failures.is_empty(), "{outcome:?}");
    assert_eq!((outcome.stats.published, outcome.stats.rejected), (0, 1));
    assert!(world.publisher.published().is_empty());
    let sunk = world.sink.received.lock().expect("lock").clone();
    assert_eq!(sunk.len(), 1);
    assert_eq!(sunk[0].reason_kind, "message_too_large");
    assert_eq!(sunk[0].sequence_number, "100");
    assert_eq!(sunk[0].alert_id, "alert#price_drop#zillow:1#2");
    assert!(sunk[0].reason.len() < 200, "{}", sunk[0].reason);
    assert!(serde_json::to_string(&sunk[0]).expect("json").len() < 1_024);
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_alert_goes_to_the_error_sink_and_a_sink_outage_fails_its_record() {
    let world = World::default();
    world
        .publisher
        .refusing
        .lock()
        .expect("lock")
        .insert("zillow:3".into());
    let (response, outcome) = world.handle(batch()).await;
    assert!(response.batch_item_failures.is_empty(), "{outcome:?}");
    assert_eq!((outcome.stats.published, outcome.stats.rejected), (2, 2));
    let kinds: Vec<&str> = world
        .sink
        .received
        .lock()
        .expect("lock")
        .iter()
        .map(|r| r.reason_kind)
        .collect();
    assert_eq!(kinds, ["refused_by_sns", "refused_by_sns"]);

    let world = World::default();
    world
        .publisher
        .refusing
        .lock()
        .expect("lock")
        .insert("zillow:3".into());
    world.sink.down.store(true, Ordering::SeqCst);
    let (response, _) = world.handle(batch()).await;
    assert_eq!(failed_from(&response), ["300"]);
}

#[tokio::test(flavor = "current_thread")]
async fn the_same_records_make_the_same_alerts_however_the_stream_is_cut() {
    let whole = World::default();
    whole.handle(batch()).await;
    let single = World::default();
    for record in batch().records {
        let (response, _) = single.handle(event(vec![record])).await;
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(whole.publisher.published(), single.publisher.published());
    assert_eq!(whole.publisher.published(), expected_alerts());
}
