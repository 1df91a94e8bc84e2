use chrono::{Duration, TimeZone, Utc};

use super::*;
use realty_metrics::testing::listing;
use realty_model::listing::{EventKind, ListingEvent, ListingStatus};

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

/// `realty replay-raw` after a parser fix: the cut of 11:00 parsed again, at the same instant
/// and of the same kind as the poller's event, with what the fixed parser reads.
#[test]
fn a_replayed_correction_has_its_own_id_and_the_same_correction_one() {
    let events = history();
    let polled = &events[1];
    let corrected = |price: i64, poll_id: &str| {
        let mut fixed = polled.listing.clone();
        fixed.price_minor = price;
        ListingEvent::changed(&events[0].listing, fixed, poll_id).expect("a change")
    };
    let replayed = corrected(34_500_000, "replay-raw-2026-11-27T10:00:00.000Z-zillow-x");
    assert_eq!(replayed.observed_at, polled.observed_at);
    assert!(matches!(replayed.kind, EventKind::Changed { .. }));
    let id = event_id(&replayed);
    assert!(
        id.starts_with(&format!("{}@replay-", event_id(polled))),
        "{id}"
    );
    // Sent again by a replay run again: the same row.
    let again = corrected(34_500_000, "replay-raw-2026-11-27T11:00:00.000Z-zillow-x");
    assert_eq!(event_id(&again), id);
    // A later fix reading another price: a row of its own.
    assert_ne!(event_id(&corrected(34_400_000, "replay-raw-x")), id);
    // The poller's own ids are as they were.
    assert!(!event_id(&corrected(34_500_000, "poll-9")).contains("@replay-"));
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

    // Folded one event at a time (a rebuild reading the lake a batch at a time), the same.
    let mut merge = ListingsMerge::default();
    for row in reversed.chunks(1) {
        merge.add(row);
    }
    assert_eq!(merge.finish(), in_order);
}

#[test]
fn the_newest_event_per_listing_wins_ties_by_event_id() {
    let rows: Vec<EventRow> = history().iter().map(EventRow::from).collect();
    let newest = newest_per_listing(&rows);
    assert_eq!(newest["zillow:100001"].kind, "delisted");
}

/// A status misread as a new listing at an instant, corrected by `realty replay-raw` with a
/// change at the same instant (the metrics apply the correction, in stream order): in
/// `listings` the correction wins, whatever the kinds' names sort as, in either order.
#[test]
fn a_replayed_correction_wins_the_tie_with_the_event_it_corrects() {
    let seen = listing(1, 0, 35_000_000, ListingStatus::Pending, at(0));
    let polled = ListingEvent::new_listing(seen.clone(), "poll-1");
    let fixed = listing(1, 0, 35_000_000, ListingStatus::Active, at(0));
    let replayed = ListingEvent::changed(&seen, fixed, "replay-raw-2026-11-27T10:00:00.000Z-x")
        .expect("a change");
    assert_eq!(replayed.observed_at, polled.observed_at);
    let rows = [EventRow::from(&polled), EventRow::from(&replayed)];
    // The ids alone sort the poller's `#new` after the replay's `#changed@replay-...`.
    assert!(rows[0].event_id > rows[1].event_id);
    for order in [[0, 1], [1, 0]] {
        let events = order.map(|i| rows[i].clone());
        let merged = merge_listings(Vec::new(), &events);
        assert_eq!(merged[0].status, "active", "{order:?}");
        assert_eq!(merged[0].last_event_kind, "changed");
        assert_eq!(newest_per_listing(&events)["zillow:100001"].kind, "changed");
    }
}

mod checks {
    use std::collections::BTreeMap;

    use chrono::{Duration, TimeZone, Utc};

    use super::history;
    use crate::rows::{EventRow, LakeRows, Outside, merge_listings, run_checks};

    fn rows() -> LakeRows {
        let events: Vec<EventRow> = history().iter().map(EventRow::from).collect();
        LakeRows {
            listings: merge_listings(Vec::new(), &events),
            events,
            days: Vec::new(),
        }
    }

    /// Nashville's `market_daily` row of `day`, with no listing.
    fn day_row(day: chrono::DateTime<Utc>) -> crate::rows::MarketDayRow {
        crate::rows::market_day_row(&realty_metrics::items::MarketSnapshotItem {
            pk: "city#nashville-tn#all".into(),
            sk: String::new(),
            period: realty_metrics::ports::Period::Day(day.date_naive()),
            figures: Default::default(),
            trends: None,
            expires_at: None,
        })
        .expect("a day")
    }

    fn failed(rows: &LakeRows, outside: &Outside) -> Vec<String> {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 23, 13, 0, 0)
            .single()
            .expect("valid");
        run_checks(rows, outside, now)
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn clean_rows_pass_every_check() {
        assert!(failed(&rows(), &Outside::default()).is_empty());
    }

    #[test]
    fn each_corruption_fails_its_own_check() {
        let mut duplicate = rows();
        duplicate.events.push(duplicate.events[0].clone());
        assert_eq!(
            failed(&duplicate, &Outside::default()),
            ["listing_events.unique_event_id"]
        );

        let mut bad_status = rows();
        bad_status.events[1].status = "for_sale".into();
        assert_eq!(
            failed(&bad_status, &Outside::default()),
            ["listing_events.accepted_values"]
        );

        let mut no_market = rows();
        no_market.events[2].market = " ".into();
        assert_eq!(
            failed(&no_market, &Outside::default()),
            ["listing_events.not_null_keys"]
        );

        let mut twice = rows();
        twice.listings.push(twice.listings[0].clone());
        assert_eq!(
            failed(&twice, &Outside::default()),
            ["listings.unique_listing_id"]
        );
    }

    #[test]
    fn a_market_is_stale_just_past_its_allowance() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 23, 13, 0, 0)
            .single()
            .expect("valid");
        let allowed = Duration::hours(3);
        let at = |ago: Duration| Outside {
            last_polls: BTreeMap::from([("nashville-tn".to_owned(), (Some(now - ago), allowed))]),
            ..Outside::default()
        };
        assert!(failed(&rows(), &at(allowed)).is_empty(), "at the limit");
        assert_eq!(
            failed(&rows(), &at(allowed + Duration::seconds(1))),
            ["freshness.watched_markets"]
        );
        let never = Outside {
            last_polls: BTreeMap::from([("nashville-tn".to_owned(), (None, allowed))]),
            ..Outside::default()
        };
        assert_eq!(failed(&rows(), &never), ["freshness.watched_markets"]);
    }

    /// A day's `market_daily` counts are compared with the events once the events are read
    /// past its end: not while the curator is behind (a backlog worked off over runs, a day's
    /// last events still in Firehose's buffer at midnight), when a correct row differed.
    #[test]
    fn a_day_is_compared_once_the_events_are_read_past_its_end() {
        let day = Utc
            .with_ymd_and_hms(2026, 11, 22, 0, 0, 0)
            .single()
            .expect("valid");
        // market_daily says 3 active at the end of the 22nd; the events read so far, 0.
        let mut row = day_row(day);
        row.active_listings = 3;
        let rows = LakeRows {
            days: vec![row],
            ..LakeRows::default()
        };
        let read_to = |through| Outside {
            events_through: Some(through),
            ..Outside::default()
        };
        let end = day + Duration::days(1);
        // Read to 00:14 of the 23rd: its last events may still come.
        assert!(failed(&rows, &read_to(end + Duration::minutes(14))).is_empty());
        // Read past 00:15: the day is whole in the events, and they disagree.
        assert_eq!(
            failed(&rows, &read_to(end + Duration::minutes(15))),
            ["market_daily.counts_match_events"]
        );
        // Without a position, every day before today (13:00 on the 23rd) is compared.
        assert_eq!(
            failed(&rows, &Outside::default()),
            ["market_daily.counts_match_events"]
        );
    }

    /// A listing observed on the 22nd and sent by an import on the 23rd: the metrics count
    /// it in the 23rd (the 22nd had closed), the events' replay in the 22nd. A poll's event
    /// of the 22nd that the 22nd's row misses is a failure; an import's is no evidence.
    #[test]
    fn a_day_an_import_added_events_to_after_it_closed_is_not_compared() {
        let day = Utc
            .with_ymd_and_hms(2026, 11, 22, 0, 0, 0)
            .single()
            .expect("valid");
        let row = day_row(day);
        let observed = day + Duration::hours(10);
        let seen = super::listing(
            7,
            0,
            35_000_000,
            realty_model::listing::ListingStatus::Active,
            observed,
        );
        let with_poll = |poll_id: &str| {
            let events = vec![EventRow::from(
                &realty_model::listing::ListingEvent::new_listing(seen.clone(), poll_id),
            )];
            LakeRows {
                listings: merge_listings(Vec::new(), &events),
                events,
                days: vec![row.clone()],
            }
        };
        assert_eq!(
            failed(
                &with_poll("poll-2026-11-22T10:00:00.000Z"),
                &Outside::default()
            ),
            ["market_daily.counts_match_events"]
        );
        for imported in [
            "replay-2026-11-23T09:00:00.000Z",
            "replay-2026-11-23T09:00:00.000Z-zillow/nashville-tn",
            "replay-raw-2026-11-23T09:00:00.000Z-zillow-nashville-tn",
        ] {
            assert!(
                failed(&with_poll(imported), &Outside::default()).is_empty(),
                "{imported}"
            );
        }
        // Replayed the same day: the day is compared as a poll's.
        assert_eq!(
            failed(
                &with_poll("replay-2026-11-22T11:00:00.000Z"),
                &Outside::default()
            ),
            ["market_daily.counts_match_events"]
        );
    }

    #[test]
    fn daily_counts_replay_the_events_per_day() {
        // The listing is seen active at 10:00, cut at 11:00 and gone at 12:00: one active
        // listing during the day, none at its end.
        let counts = crate::rows::daily_counts(&rows().events);
        let day = Utc
            .with_ymd_and_hms(2026, 11, 23, 0, 0, 0)
            .single()
            .expect("valid")
            .date_naive();
        assert_eq!(counts[&("nashville-tn".to_owned(), day)], (0, 0));
        let first_only: Vec<EventRow> = rows().events[..1].to_vec();
        assert_eq!(
            crate::rows::daily_counts(&first_only)[&("nashville-tn".to_owned(), day)],
            (1, 0)
        );
    }
}

#[test]
fn rows_carry_a_moroccan_listing_s_place_details_and_currency() {
    let page =
        include_bytes!("../../../sources/tests/fixtures/avito_search_appartements_a_vendre.html");
    let listing = realty_sources::portal::avito::parse_page(page, at(0))
        .expect("fixture")
        .listings
        .into_iter()
        .find(|l| l.address.neighbourhood.is_some() && l.details.living_area_sqm.is_some())
        .expect("a listing with a neighbourhood and a surface");
    let row = EventRow::from(&ListingEvent::new_listing(listing.clone(), "poll-1"));
    assert_eq!(row.country.as_deref(), Some("MA"));
    assert_eq!(row.currency, "MAD");
    assert_eq!(row.neighbourhood, listing.address.neighbourhood);
    assert_eq!(
        row.living_area_sqm,
        listing.details.living_area_sqm.map(|v| v as i32)
    );
    let images: Option<Vec<String>> = row
        .images
        .as_deref()
        .map(|json| serde_json::from_str(json).expect("a JSON array"));
    assert_eq!(
        images.unwrap_or_default(),
        listing.details.images,
        "photos as a JSON array, null when none"
    );
    let state = merge_listings(Vec::new(), std::slice::from_ref(&row));
    assert_eq!(state[0].country.as_deref(), Some("MA"));
    assert_eq!(state[0].neighbourhood, row.neighbourhood);

    // A US listing of schema version 1 reads as in the US; no details.
    let us = EventRow::from(&history()[0]);
    assert_eq!(us.country.as_deref(), Some("US"));
    assert_eq!((us.equipment, us.images), (None, None));
}

#[test]
fn a_market_day_names_its_country_and_currency() {
    let day = |pk: &str| realty_metrics::items::MarketSnapshotItem {
        pk: pk.into(),
        sk: "day#2026-11-23".into(),
        period: realty_metrics::ports::Period::Day(at(0).date_naive()),
        figures: Default::default(),
        trends: None,
        expires_at: None,
    };
    let row = market_day_row(&day("city#ma/casablanca#all")).expect("a day");
    assert_eq!(
        (
            row.market.as_str(),
            row.country.as_deref(),
            row.currency.as_deref()
        ),
        ("ma/casablanca", Some("MA"), Some("MAD"))
    );
    let row = market_day_row(&day("city#nashville-tn#all")).expect("a day");
    assert_eq!(
        (row.country.as_deref(), row.currency.as_deref()),
        (Some("US"), Some("USD"))
    );
}

#[test]
fn a_market_no_longer_watched_keeps_its_days_and_a_watched_one_takes_the_tables() {
    let day = |pk: &str, d: i64| {
        market_day_row(&realty_metrics::items::MarketSnapshotItem {
            pk: pk.into(),
            sk: String::new(),
            period: realty_metrics::ports::Period::Day((at(0) + Duration::days(d)).date_naive()),
            figures: Default::default(),
            trends: None,
            expires_at: None,
        })
        .expect("a day")
    };
    let previous = vec![
        day("city#syracuse-ny#all", 0),
        day("city#nashville-tn#all", 0),
        day("city#syracuse-ny#all", 1),
    ];
    // Nashville is still watched: its rows are what the market table holds now. Syracuse
    // was removed from the watch list: its two days stay.
    let watched = std::collections::HashSet::from(["nashville-tn"]);
    let now = vec![
        day("city#nashville-tn#all", 2),
        day("city#nashville-tn#all", 1),
    ];
    let rows = market_daily_rows(&watched, now, previous);
    let keys: Vec<(&str, i64)> = rows
        .iter()
        .map(|r| (r.market.as_str(), (r.day - at(0).date_naive()).num_days()))
        .collect();
    assert_eq!(
        keys,
        [
            ("nashville-tn", 1),
            ("nashville-tn", 2),
            ("syracuse-ny", 0),
            ("syracuse-ny", 1)
        ]
    );
}
