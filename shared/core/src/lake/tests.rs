use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::listing::{ListingEvent, ListingStatus};
use crate::metrics::tests::listing;

fn at(minutes: i64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0)
        .single()
        .expect("valid")
        + Duration::minutes(minutes)
}

/// A listing's history: seen at 350k, cut to 340k, then gone.
fn history() -> Vec<ListingEvent> {
    let first = listing(1, 0, 35_000_000, ListingStatus::Active, at(0));
    let cut = listing(1, 0, 34_000_000, ListingStatus::Active, at(60));
    let new = ListingEvent::new_listing(first, "poll-1");
    let changed = ListingEvent::changed(&new.listing, cut.clone(), "poll-2").expect("a change");
    let gone = ListingEvent::delisted(cut, at(120), "poll-3");
    vec![new, changed, gone]
}

#[test]
fn an_event_id_names_the_listing_the_instant_and_the_kind() {
    let events = history();
    assert_eq!(
        event_id(&events[1]),
        "zillow:100001@2026-11-23T11:00:00.000000Z#changed"
    );
    let ids: std::collections::HashSet<String> = events.iter().map(event_id).collect();
    assert_eq!(ids.len(), 3, "each event has its own id");
    assert_eq!(event_id(&events[0]), event_id(&events[0].clone()), "stable");
}

#[test]
fn an_event_row_carries_the_listing_and_its_change() {
    let events = history();
    let row = EventRow::from(&events[1]);
    assert_eq!(row.kind, "changed");
    assert_eq!(row.price_minor, 34_000_000);
    assert_eq!(row.old_price_minor, Some(35_000_000));
    assert_eq!(row.market, "nashville-tn");
    assert_eq!(row.status, "active");
    assert_eq!(row.offer, "sale");
}

#[test]
fn listings_keep_the_newest_state_in_any_order_and_flag_delistings() {
    let rows: Vec<EventRow> = history().iter().map(EventRow::from).collect();
    let in_order = merge_listings(Vec::new(), &rows);
    let mut reversed = rows.clone();
    reversed.reverse();
    let backwards = merge_listings(Vec::new(), &reversed);
    assert_eq!(in_order, backwards);
    assert_eq!(in_order.len(), 1);
    let state = &in_order[0];
    assert!(state.delisted);
    assert_eq!(state.price_minor, 34_000_000);
    assert_eq!(state.first_price_minor, 35_000_000);
    assert_eq!(state.first_observed_at, at(0));
    assert_eq!(state.last_event_kind, "delisted");
    assert_eq!(state.events, 3);

    // Merged in two runs, the same rows.
    let first_run = merge_listings(Vec::new(), &rows[..1]);
    assert_eq!(merge_listings(first_run, &rows[1..]), in_order);
}

#[test]
fn the_newest_event_per_listing_wins_ties_by_event_id() {
    let rows: Vec<EventRow> = history().iter().map(EventRow::from).collect();
    let newest = newest_per_listing(&rows);
    assert_eq!(newest["zillow:100001"].kind, "delisted");
}
