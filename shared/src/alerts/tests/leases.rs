//! Claims as leases, marks re-tried while the lease runs, answers lost after SNS accepted,
//! the error sink, and decisions that do not depend on how the stream was cut into batches.

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
            .claim("alert#price_drop#zillow:1#2", "other", live)
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
        .claim("alert#price_drop#zillow:1#2", "dead", expired)
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
        .claim("alert#price_drop#zillow:1#2", "crashed", soon)
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

#[tokio::test(flavor = "current_thread")]
async fn a_failed_mark_is_retried_so_a_redelivery_does_not_repeat_the_alert() {
    let world = World::default();
    // Two marks fail (a short DynamoDB outage); zillow:3 cannot be published, so Lambda
    // re-delivers from record 300, and zillow:5 (record 500) comes again.
    world.idempotency.failing_marks.store(2, Ordering::SeqCst);
    world
        .publisher
        .failing
        .lock()
        .expect("lock")
        .insert("zillow:3".into());
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
    let alert = evaluate(&change, &AlertThresholds::default(), median.as_ref()).remove(0);
    match message(&alert) {
        Ok(m) => m.size_bytes(),
        Err(e) => e.bytes,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn alerts_at_the_sns_limit_go_out_and_past_it_go_to_the_error_sink() {
    use super::super::message::MAX_MESSAGE_BYTES;
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

/// The stream records the listing table gets when the metrics function applies `events`
/// (one listing's, in order) in Kinesis batches of the given sizes: one record per batch,
/// an INSERT for the first, then MODIFYs whose old image is the state before.
fn metrics_writes(events: &[ListingEvent], cuts: &[usize]) -> Vec<EventRecord> {
    use crate::metrics::batch::{DecodedRecord, SequenceNumber, plan_batch};
    let mut stored: BTreeMap<String, crate::metrics::batch::ListingState> = BTreeMap::new();
    let mut records = Vec::new();
    let mut next = 0;
    for (batch, size) in cuts.iter().enumerate() {
        let decoded = events[next..next + size]
            .iter()
            .enumerate()
            .map(|(i, event)| DecodedRecord {
                sequence: SequenceNumber::parse(&(next + i + 1).to_string()).expect("digits"),
                event: event.clone(),
            })
            .collect();
        next += size;
        let plan = plan_batch(decoded, &stored);
        for state in plan.states {
            let id = state.listing.id.as_str().to_owned();
            let new = ListingItem::from(&state);
            let sequence_number = format!("{}", 1_000 + batch);
            records.push(match stored.get(&id) {
                Some(old) => record(&sequence_number, &ListingItem::from(old), &new),
                None => {
                    let mut insert = record(&sequence_number, &new, &new);
                    insert.event_name = "INSERT".into();
                    insert.change.old_image = Default::default();
                    insert
                }
            });
            stored.insert(id, state);
        }
    }
    assert_eq!(next, events.len(), "the cuts cover every event");
    records
}

/// zillow:1 seen at $600,000, then cut 20 % to $480,000, raised back to $600,000, cut 25 %
/// to $450,000: two price-drop alerts, one per cut.
fn cut_raise_cut() -> Vec<ListingEvent> {
    let start = base().listing.observed_at;
    let at = |price: i64, minutes: i64, kind: EventKind| {
        let mut listing = item("zillow:1", price, Some(1_000), 1).listing;
        listing.observed_at = start + chrono::Duration::minutes(minutes);
        ListingEvent {
            schema_version: 1,
            kind,
            observed_at: listing.observed_at,
            listing,
            poll_id: format!("poll-{minutes}"),
        }
    };
    let changed = || EventKind::Changed {
        changes: ListingChanges::default(),
    };
    vec![
        at(600_000, 0, EventKind::New),
        at(480_000, 5, changed()),
        at(600_000, 10, changed()),
        at(450_000, 15, changed()),
    ]
}

#[tokio::test(flavor = "current_thread")]
async fn the_same_events_fire_the_same_alerts_however_metrics_batched_them() {
    let events = cut_raise_cut();
    let mut outcomes = Vec::new();
    // Each event in its own batch; the three changes in one; two then one.
    for cuts in [&[1, 1, 1, 1][..], &[1, 3], &[1, 2, 1], &[2, 2]] {
        let world = World::default();
        let (response, _) = world.handle(event(metrics_writes(&events, cuts))).await;
        assert!(response.batch_item_failures.is_empty());
        outcomes.push((cuts, world.publisher.published()));
    }
    for (cuts, published) in outcomes {
        assert_eq!(
            published,
            ["alert#price_drop#zillow:1#2", "alert#price_drop#zillow:1#4"],
            "batches of {cuts:?}"
        );
    }
}

#[test]
fn an_insert_of_several_events_is_marked_for_the_trigger_filter() {
    // The trigger passes an INSERT only when its new image has `several_recent_events: true`.
    let events = cut_raise_cut();
    let marked = |record: &EventRecord| {
        record.change.new_image.get("several_recent_events")
            == Some(&serde_dynamo::AttributeValue::Bool(true))
    };
    let one_each = metrics_writes(&events, &[1, 1, 1, 1]);
    assert_eq!(one_each[0].event_name, "INSERT");
    assert!(!marked(&one_each[0]));
    let together = metrics_writes(&events, &[2, 2]);
    assert_eq!(together[0].event_name, "INSERT");
    assert!(marked(&together[0]));
}

#[test]
fn the_events_of_a_write_are_those_after_the_old_image() {
    let events = cut_raise_cut();
    // Batches of 1 then 3: the MODIFY's item keeps all 4 events; 3 are after its old image.
    let record = metrics_writes(&events, &[1, 3]).remove(1);
    let change = classify(record).expect("decodes");
    assert_eq!(change.new.recent_events.len(), 4);
    let judged = per_event(change.clone());
    assert_eq!(judged.len(), 3);
    assert_eq!(judged[0].old.listing.price_minor, 60_000_000);
    assert_eq!(
        judged
            .iter()
            .map(|c| c.new.listing.price_minor)
            .collect::<Vec<_>>(),
        [48_000_000, 60_000_000, 45_000_000]
    );
    // A list that does not end at the item (not written by this build): one change.
    let mut stale = change;
    stale.new.recent_events.pop();
    let judged = per_event(stale.clone());
    assert_eq!(judged.len(), 1, "judged as one change");
    assert!(judged[0].new.recent_events.is_empty());
    assert_eq!(judged[0].old.listing, stale.old.listing);
}
