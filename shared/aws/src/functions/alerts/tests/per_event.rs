//! Alert decisions per event: the same events of a listing, cut into metrics batches in
//! different ways, make the same stream of listing changes to judge and fire the same alerts.

use super::*;

/// The stream records the listing table gets when the metrics function applies `events`
/// (one listing's, in order) in Kinesis batches of the given sizes: one record per batch,
/// an INSERT for the first, then MODIFYs whose old image is the state before.
fn metrics_writes(events: &[ListingEvent], cuts: &[usize]) -> Vec<EventRecord> {
    use realty_metrics::batch::{DecodedRecord, plan_batch};
    use realty_model::state::SequenceNumber;
    let mut stored = realty_model::state::StoredStates::default();
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
                Some(old) => record(&sequence_number, &ListingItem::from(&**old), &new),
                None => {
                    let mut insert = record(&sequence_number, &new, &new);
                    insert.event_name = "INSERT".into();
                    insert.change.old_image = Default::default();
                    insert
                }
            });
            stored.insert(id, std::sync::Arc::new(state));
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
            baseline: false,
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

#[tokio::test(flavor = "current_thread")]
async fn a_cut_stamped_early_by_a_slow_clock_alerts_however_metrics_batched_it() {
    // Seen at $600,000; then a poller whose clock is 2 minutes slow sees it cut 29 % to
    // $426,000; then it is raised to $500,000. Within the clock skew the stream order
    // decides, so metrics applies the cut: it must alert whatever the batches.
    let mut events = cut_raise_cut();
    events.truncate(3);
    let early = events[0].observed_at - chrono::Duration::minutes(2);
    events[1].listing.price_minor = 42_600_000;
    events[1].observed_at = early;
    events[1].listing.observed_at = early;
    let later = events[0].observed_at + chrono::Duration::minutes(1);
    events[2].listing.price_minor = 50_000_000;
    events[2].observed_at = later;
    events[2].listing.observed_at = later;
    for cuts in [&[1, 1, 1][..], &[1, 2], &[3]] {
        let world = World::default();
        let (response, _) = world.handle(event(metrics_writes(&events, cuts))).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            world.publisher.published(),
            ["alert#price_drop#zillow:1#2"],
            "batches of {cuts:?}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_new_undervalued_listing_alerts_once_however_metrics_batched_it() {
    // First seen at $350,000 for 1,000 sqft (350 $/sqft, 30 % under the condo median of
    // 500), then cut 5 %: undervalued as a new listing, then a price cut that takes it
    // further under the bound.
    let mut events = cut_raise_cut();
    events.truncate(2);
    events[0].listing.price_minor = 35_000_000;
    events[1].listing.price_minor = 33_250_000;
    for cuts in [&[1, 1][..], &[2]] {
        let world = World::default();
        let records = metrics_writes(&events, cuts);
        assert_eq!(records[0].event_name, "INSERT");
        for _ in 0..2 {
            // Delivered twice: once per event all the same.
            let (response, _) = world.handle(event(records.clone())).await;
            assert!(response.batch_item_failures.is_empty());
        }
        assert_eq!(
            world.publisher.published(),
            [
                "alert#undervalued#zillow:1#1",
                "alert#price_cut#zillow:1#2",
                "alert#undervalued#zillow:1#2"
            ],
            "batches of {cuts:?}"
        );
        let first: AlertBody =
            serde_json::from_str(&world.publisher.sent.lock().expect("lock")[0].body)
                .expect("an alert body");
        assert!(first.new_listing, "batches of {cuts:?}");
        assert_eq!((first.old_price, first.new_price), (350_000.0, 350_000.0));
    }
}

/// A market's first read (a baseline, docs/alerts.md): a listing already on the market
/// that is undervalued and anomalous raises neither alert, nor a new-listing one, however
/// metrics batched its events; its later cut alerts as any listing's, and the same listing
/// found new by a later read (news) raises all three.
#[tokio::test(flavor = "current_thread")]
async fn a_first_read_s_listing_raises_no_new_listing_alerts_however_batched() {
    let mut events = cut_raise_cut();
    events.truncate(2);
    events[0].baseline = true;
    events[0].listing.price_minor = 35_000_000;
    events[1].listing.price_minor = 33_250_000;
    let on = AlertThresholds {
        new_listing_alerts: true,
        ..AlertThresholds::default()
    };
    for cuts in [&[1, 1][..], &[2]] {
        let world = World::default();
        let mut records = metrics_writes(&events, cuts);
        // The metrics function flagged the listing anomalous from its first write.
        records.iter_mut().for_each(flag_anomalous);
        let (response, _) = world.handle_with(&on, event(records)).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            world.publisher.published(),
            ["alert#price_cut#zillow:1#2", "alert#undervalued#zillow:1#2"],
            "batches of {cuts:?}"
        );
    }
    events[0].baseline = false;
    let world = World::default();
    let mut records = metrics_writes(&events[..1], &[1]);
    records.iter_mut().for_each(flag_anomalous);
    let (response, _) = world.handle_with(&on, event(records)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        world.publisher.published(),
        [
            "alert#undervalued#zillow:1#1",
            "alert#new_listing#zillow:1#1",
            "alert#anomaly#zillow:1#1"
        ]
    );
}

/// The images of `record` flagged anomalous, as the metrics function flags a listing
/// outside its market's bounds (an INSERT has no old image).
fn flag_anomalous(record: &mut EventRecord) {
    let flag: serde_dynamo::AttributeValue =
        serde_dynamo::to_attribute_value(vec![InterestKind::Anomalous]).expect("a list");
    for image in [&mut record.change.new_image, &mut record.change.old_image] {
        if !image.is_empty() {
            image.insert("interest".to_owned(), flag.clone());
        }
    }
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
    let old = |c: &ListingChange| c.old.clone().expect("a change of a listing seen before");
    assert_eq!(old(&judged[0]).listing.price_minor, 60_000_000);
    assert_eq!(
        judged
            .iter()
            .map(|c| c.new.listing.price_minor)
            .collect::<Vec<_>>(),
        [48_000_000, 60_000_000, 45_000_000]
    );
    // An old image written before sequence numbers were stored as Kinesis writes them
    // (zero-padded to 128 digits; the events the new item carried over from it were padded
    // too, and read back as Kinesis writes them): the same three events.
    let mut upgraded = change.clone();
    let pad = |s: &mut String| *s = format!("{s:0>128}");
    if let Some(old) = upgraded.old.as_mut() {
        pad(&mut old.sequence);
    }
    let judged_upgraded = per_event(upgraded);
    assert_eq!(
        judged_upgraded
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
    assert_eq!(old(&judged[0]).listing, old(&stale).listing);
}

#[test]
fn recent_events_are_one_binary_attribute_and_lists_written_before_still_read() {
    let events = cut_raise_cut();
    let mut record = metrics_writes(&events, &[1, 3]).remove(1);
    let packed = record
        .change
        .new_image
        .get("recent_events")
        .expect("the item keeps its events")
        .clone();
    assert!(
        matches!(packed, serde_dynamo::AttributeValue::B(ref b) if b.len() < 4 * 45),
        "{packed:?}"
    );
    let change = classify(record.clone()).expect("decodes");
    // The same image as a build before this one wrote it: a list of maps.
    let as_list = serde_dynamo::to_attribute_value(&change.new.recent_events).expect("list");
    assert!(matches!(as_list, serde_dynamo::AttributeValue::L(_)));
    record
        .change
        .new_image
        .insert("recent_events".to_owned(), as_list);
    let before = classify(record).expect("decodes the list form");
    assert_eq!(before.new, change.new);
    assert_eq!(per_event(before), per_event(change));
}
