//! Change detection's tests: what a read against a state emits and keeps.

use super::*;
use std::io::Write;

use realty_model::listing::{EventKind, ListingStatus};

/// The first listing of the Nashville Zillow fixture, as `zillow:<id>` at `price`.
pub(crate) fn listing(id: u32, price: i64) -> Listing {
    let page = include_bytes!(
        "../../sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
    );
    let at = DateTime::parse_from_rfc3339("2025-09-12T15:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let mut l = realty_sources::normalize_file(realty_model::markets::SourceKind::Zillow, page, at)
        .expect("fixture")
        .listings
        .remove(0);
    l.id = realty_model::listing::ListingId::new(
        realty_model::listing::ListingSource::Zillow,
        &id.to_string(),
    )
    .expect("id");
    l.price_minor = price;
    l
}

fn at(minute: u32) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("2025-09-12T16:{minute:02}:00Z"))
        .expect("time")
        .with_timezone(&Utc)
}

fn state(listings: &[Listing]) -> PollState {
    PollState {
        listings: listings
            .iter()
            .map(|l| (l.id.as_str().to_owned(), l.clone()))
            .collect(),
        ..PollState::default()
    }
}

fn id(l: &Listing) -> String {
    l.id.as_str().to_owned()
}

fn kinds(d: &Detection) -> Vec<(String, &'static str)> {
    d.events
        .iter()
        .map(|e| {
            let kind = match e.kind {
                EventKind::New => "new",
                EventKind::Changed { .. } => "changed",
                EventKind::Delisted => "delisted",
            };
            (e.listing.id.as_str().to_owned(), kind)
        })
        .collect()
}

/// A rental state kept before rentals had ids of their own holds `zillow:<zpid>`; read
/// again as `zillow:rent:<zpid>`, each is delisted under the old id and new under its
/// own, once, by a read of any completeness and past the mass-loss guard (the read sees
/// every one of them); a rejected rental whose status was unreadable stays.
#[test]
fn rentals_kept_under_their_home_s_id_move_to_their_own_once() {
    let rental = |zpid: u32| {
        let mut l = listing(zpid, 250_000);
        l.offer = Offer::Rent;
        l
    };
    let own = |l: &Listing| {
        let mut l = l.clone();
        l.id = realty_model::listing::ListingId::of_offer(
            realty_model::listing::ListingSource::Zillow,
            l.id.native_id(),
            Offer::Rent,
        )
        .expect("id");
        l
    };
    let kept = [rental(1), rental(2), rental(3)];
    let previous = state(&kept);
    for complete in [false, true] {
        let read = MarketRead {
            listings: kept[..2].iter().map(own).collect(),
            complete,
            // Rejected without a readable status: the home's id.
            rejected_ids: [id(&kept[2])].into(),
            ..MarketRead::default()
        };
        let d = detect(&previous, read, "p", at(9), DelistingGuard::default());
        assert_eq!(
            kinds(&d),
            vec![
                ("zillow:1".into(), "delisted"),
                ("zillow:2".into(), "delisted"),
                ("zillow:rent:1".into(), "new"),
                ("zillow:rent:2".into(), "new"),
            ],
            "complete: {complete}"
        );
        assert_eq!(d.held_delistings, 0);
        assert_eq!(
            d.next.listings.keys().collect::<Vec<_>>(),
            ["zillow:3", "zillow:rent:1", "zillow:rent:2"]
        );
        assert_eq!(d.next.delisted_at.get("zillow:1"), Some(&at(9)));
        // The next read of the same rentals changes nothing.
        let again = MarketRead {
            listings: kept[..2].iter().map(own).collect(),
            complete,
            rejected_ids: [id(&kept[2])].into(),
            ..MarketRead::default()
        };
        let next = detect(&d.next, again, "p2", at(10), DelistingGuard::default());
        assert_eq!(kinds(&next), vec![], "complete: {complete}");
        assert_eq!(next.held_delistings, 0);
    }
}

#[test]
fn finds_new_changed_and_delisted() {
    let previous = state(&[
        listing(1, 10_000_000),
        listing(2, 20_000_000),
        listing(3, 30_000_000),
    ]);
    let mut cut = listing(2, 18_000_000);
    cut.observed_at = at(5);
    let read = MarketRead {
        listings: vec![listing(1, 10_000_000), cut, listing(4, 40_000_000)],
        complete: true,
        cursor: None,
        ..MarketRead::default()
    };
    let d = detect(
        &previous,
        read,
        "p",
        at(5),
        DelistingGuard { max_share: 1.0 },
    );
    assert_eq!(
        kinds(&d),
        [
            ("zillow:2".into(), "changed"),
            ("zillow:4".into(), "new"),
            ("zillow:3".into(), "delisted")
        ]
    );
    assert_eq!(
        d.next.listings.keys().collect::<Vec<_>>(),
        ["zillow:1", "zillow:2", "zillow:4"]
    );
}

#[test]
fn an_incomplete_read_infers_no_delisting_and_forgets_nothing() {
    let previous = state(&[listing(1, 10_000_000), listing(3, 30_000_000)]);
    let read = MarketRead {
        listings: vec![listing(1, 10_000_000)],
        complete: false,
        cursor: None,
        ..MarketRead::default()
    };
    let d = detect(
        &previous,
        read,
        "p",
        at(5),
        DelistingGuard { max_share: 1.0 },
    );
    assert!(d.events.is_empty());
    assert_eq!(d.next, previous);
}

#[test]
fn an_incomplete_read_delists_only_listings_whose_own_page_is_gone() {
    let (one, two, three, four) = (
        listing(1, 10_000_000),
        listing(2, 20_000_000),
        listing(3, 30_000_000),
        listing(4, 40_000_000),
    );
    let mut previous = state(&[one.clone(), two.clone(), three.clone(), four.clone()]);
    previous.unconfirmed_delistings.insert(id(&two));
    // Listing 4 was checked before; this read sees it again, so the check is forgotten.
    previous.page_checked_at.insert(id(&four), at(1));
    let read = MarketRead {
        listings: vec![one.clone(), four.clone()],
        complete: false,
        // Listing 1's page "gone" while this read saw it: seeing wins.
        gone_ids: BTreeSet::from([id(&one), id(&two)]),
        asked_not_gone_ids: BTreeSet::from([id(&three)]),
        ..MarketRead::default()
    };
    let d = detect(
        &previous,
        read,
        "p",
        at(5),
        DelistingGuard { max_share: 0.0 },
    );
    assert_eq!(kinds(&d), [(id(&two), "delisted")]);
    assert_eq!(
        d.next.listings.keys().cloned().collect::<Vec<_>>(),
        [id(&one), id(&three), id(&four)]
    );
    assert!(d.next.unconfirmed_delistings.is_empty());
    assert_eq!(
        d.next.page_checked_at,
        BTreeMap::from([(id(&three), at(5))])
    );
    // A delisting that failed to publish puts the listing back, as any event does.
    let failed = BTreeSet::from([0]);
    let kept = settle(&previous, d, &failed);
    assert!(kept.listings.contains_key(&id(&two)));
}

#[test]
fn a_one_day_move_of_the_derived_on_market_date_is_no_change() {
    let before = listing(1, 10_000_000);
    let previous = state(std::slice::from_ref(&before));
    let mut later = before.clone();
    later.on_market_date = before.on_market_date.map(|d| d + chrono::Duration::days(1));
    let d = detect(
        &previous,
        complete(vec![later.clone()], &[]),
        "p",
        at(5),
        DelistingGuard { max_share: 1.0 },
    );
    assert!(d.events.is_empty(), "{:?}", d.events);
    assert_eq!(
        d.next.listings["zillow:1"].on_market_date,
        before.on_market_date
    );
    // A source that gives the date itself (RESO's `OnMarketDate`): a one-day move is a
    // correction, reported.
    let as_reso = |l: &Listing| {
        let mut l = l.clone();
        l.source = realty_model::listing::ListingSource::Reso;
        l.id =
            realty_model::listing::ListingId::new(realty_model::listing::ListingSource::Reso, "1")
                .expect("id");
        l
    };
    let d = detect(
        &state(&[as_reso(&before)]),
        complete(vec![as_reso(&later)], &[]),
        "p",
        at(5),
        DelistingGuard { max_share: 1.0 },
    );
    assert_eq!(kinds(&d), [("reso:1".into(), "changed")]);
    // A relisting weeks later is a change.
    later.on_market_date = before
        .on_market_date
        .map(|d| d + chrono::Duration::days(30));
    let d = detect(
        &previous,
        complete(vec![later], &[]),
        "p",
        at(5),
        DelistingGuard { max_share: 1.0 },
    );
    assert_eq!(kinds(&d), [("zillow:1".into(), "changed")]);
}

#[test]
fn a_listing_read_twice_counts_once() {
    let read = MarketRead {
        listings: vec![listing(7, 100_000_000), listing(7, 100_000_000)],
        complete: true,
        cursor: None,
        ..MarketRead::default()
    };
    let d = detect(
        &PollState::default(),
        read,
        "p",
        at(5),
        DelistingGuard::default(),
    );
    assert_eq!(kinds(&d), [("zillow:7".into(), "new")]);
}

#[test]
fn unpublished_events_are_found_again_next_poll() {
    let previous = state(&[listing(1, 10_000_000), listing(2, 20_000_000)]);
    let mut pending = listing(1, 10_000_000);
    pending.status = ListingStatus::Pending;
    let read = MarketRead {
        listings: vec![pending, listing(5, 50_000_000)],
        complete: true,
        cursor: None,
        ..MarketRead::default()
    };
    let d = detect(
        &previous,
        read.clone(),
        "p",
        at(5),
        DelistingGuard { max_share: 1.0 },
    );
    // Every event failed: the state stays as it was.
    let all: BTreeSet<usize> = (0..d.events.len()).collect();
    let kept = settle(&previous, d, &all);
    assert_eq!(kept, previous);
    let again = detect(&kept, read, "p2", at(10), DelistingGuard { max_share: 1.0 });
    assert_eq!(again.events.len(), 3);
}

#[test]
fn an_incremental_source_remembers_its_last_complete_read() {
    let previous = state(&[listing(1, 10_000_000), listing(2, 20_000_000)]);
    let incremental = MarketRead {
        listings: vec![listing(1, 11_000_000)],
        complete: false,
        cursor: Some(at(4)),
        ..MarketRead::default()
    };
    let d = detect(
        &previous,
        incremental,
        "p",
        at(5),
        DelistingGuard::default(),
    );
    assert_eq!(d.next.last_complete_read, None);
    assert_eq!(kinds(&d), [("zillow:1".into(), "changed")]);
    assert_eq!(d.next.last_full_read, None);
    let full = MarketRead {
        listings: vec![listing(1, 11_000_000)],
        complete: true,
        cursor: Some(at(6)),
        full: true,
        ..MarketRead::default()
    };
    let d = detect(
        &previous,
        full.clone(),
        "p",
        at(7),
        DelistingGuard { max_share: 1.0 },
    );
    assert_eq!(d.next.last_complete_read, Some(at(7)));
    assert_eq!(d.next.last_full_read, Some(at(7)));
    assert!(kinds(&d).contains(&("zillow:2".into(), "delisted")));
    // Its delisting not delivered: the reconciliation is not counted as done.
    let all: BTreeSet<usize> = (0..d.events.len()).collect();
    assert_eq!(settle(&previous, d, &all).last_complete_read, None);
}

fn complete(listings: Vec<Listing>, rejected: &[&str]) -> MarketRead {
    MarketRead {
        listings,
        complete: true,
        cursor: None,
        rejected_ids: rejected.iter().map(|id| id.to_string()).collect(),
        ..MarketRead::default()
    }
}

/// A delisting is remembered with its time until the listing is seen again, for
/// [`DELISTINGS_REMEMBERED`], and not at all when its event was not delivered.
#[test]
fn delistings_are_remembered_until_seen_again_or_old() {
    let no_guard = DelistingGuard { max_share: 1.0 };
    let previous = state(&[listing(1, 10_000_000), listing(2, 20_000_000)]);
    let d = detect(
        &previous,
        complete(vec![listing(1, 10_000_000)], &[]),
        "p",
        at(5),
        no_guard,
    );
    assert_eq!(kinds(&d), [("zillow:2".into(), "delisted")]);
    assert_eq!(
        d.next.delisted_at,
        BTreeMap::from([("zillow:2".into(), at(5))])
    );
    // Not delivered: not remembered, and the listing stays.
    let all: BTreeSet<usize> = (0..d.events.len()).collect();
    let kept = settle(&previous, d.clone(), &all);
    assert!(kept.delisted_at.is_empty() && kept.listings.contains_key("zillow:2"));
    // Remembered through reads that do not see it; forgotten once it is old...
    let after = detect(
        &d.next,
        complete(vec![listing(1, 10_000_000)], &[]),
        "p",
        at(10),
        no_guard,
    );
    assert_eq!(after.next.delisted_at, d.next.delisted_at);
    let later = at(10) + DELISTINGS_REMEMBERED + TimeDelta::minutes(1);
    let old = detect(
        &d.next,
        complete(vec![listing(1, 10_000_000)], &[]),
        "p",
        later,
        no_guard,
    );
    assert!(old.next.delisted_at.is_empty());
    // ...or seen again (back on the market: new).
    let back = complete(vec![listing(1, 10_000_000), listing(2, 20_000_000)], &[]);
    let back = detect(&d.next, back, "p", at(15), no_guard);
    assert_eq!(kinds(&back), [("zillow:2".into(), "new")]);
    assert!(back.next.delisted_at.is_empty());
}

/// At most the newest [`MAX_DELISTINGS_REMEMBERED`]: at the bound all are kept, one
/// past it the oldest goes.
#[test]
fn the_newest_delistings_are_remembered_up_to_the_bound() {
    let full = PollState {
        delisted_at: (0..MAX_DELISTINGS_REMEMBERED)
            .map(|i| (format!("zillow:{i}"), at(0) + TimeDelta::seconds(i as i64)))
            .collect(),
        ..PollState::default()
    };
    let none = BTreeSet::new();
    let kept = remember_delistings(&full, &[], &none, at(59));
    assert_eq!(kept, full.delisted_at);
    let one_more = [ListingEvent::delisted(listing(50_000, 1), at(59), "p")];
    let kept = remember_delistings(&full, &one_more, &none, at(59));
    assert_eq!(kept.len(), MAX_DELISTINGS_REMEMBERED);
    assert!(!kept.contains_key("zillow:0") && kept.contains_key("zillow:1"));
    assert_eq!(kept.get("zillow:50000"), Some(&at(59)));
}

#[test]
fn a_listing_whose_record_is_rejected_stays_as_last_seen() {
    let previous = state(&[listing(1, 10_000_000), listing(2, 20_000_000)]);
    let read = complete(vec![listing(1, 10_000_000)], &["zillow:2"]);
    let d = detect(&previous, read, "p", at(5), DelistingGuard::default());
    assert!(d.events.is_empty(), "{:?}", kinds(&d));
    assert_eq!(d.next, previous);
    // Priced again later: compared with its last good price, not new.
    let read = complete(vec![listing(1, 10_000_000), listing(2, 19_000_000)], &[]);
    let d = detect(&d.next, read, "p2", at(10), DelistingGuard::default());
    assert_eq!(kinds(&d), [("zillow:2".into(), "changed")]);
}

#[test]
fn a_read_that_finds_nothing_where_the_state_had_listings_delists_nothing() {
    let all: Vec<Listing> = (1..=10).map(|i| listing(i, 10_000_000)).collect();
    let previous = state(&all);
    let guard = DelistingGuard::default();
    // `{"props": [], "totalResultCount": 0}` poll after poll, a day apart: an outage.
    let mut kept = previous.clone();
    for day in 0..3 {
        let d = detect(
            &kept,
            complete(Vec::new(), &[]),
            "p",
            at(5) + TimeDelta::days(day),
            guard,
        );
        assert!(d.events.is_empty(), "{:?}", kinds(&d));
        assert_eq!(d.held_delistings, 0);
        kept = d.next;
    }
    assert_eq!(kept, previous);
    // One listing read is evidence the source answers: the others are held as a mass
    // loss (not delisted at once).
    let d = detect(
        &previous,
        complete(all[..1].to_vec(), &[]),
        "p",
        at(5),
        guard,
    );
    assert!(d.events.is_empty(), "{:?}", kinds(&d));
    assert_eq!(d.held_delistings, 9);
    // An empty read of an empty market is complete (nothing to infer either way).
    let empty = PollState {
        cursor: Some(at(1)),
        ..PollState::default()
    };
    let mut read = complete(Vec::new(), &[]);
    read.cursor = Some(at(2));
    let d = detect(&empty, read, "p", at(5), guard);
    assert_eq!(d.next.last_complete_read, Some(at(5)));
}

#[test]
fn a_mass_loss_is_delisted_only_once_the_reads_have_missed_it_for_the_confirmation_time() {
    let all: Vec<Listing> = (1..=10).map(|i| listing(i, 10_000_000)).collect();
    let previous = state(&all);
    let guard = DelistingGuard::default();
    // 3 of 10 missing is the share itself: delisted at once.
    let d = detect(
        &previous,
        complete(all[3..].to_vec(), &[]),
        "p",
        at(5),
        guard,
    );
    assert_eq!(d.events.len(), 3);
    assert_eq!(d.held_delistings, 0);
    // 4 of 10 is more: held, kept, remembered.
    let d = detect(
        &previous,
        complete(all[4..].to_vec(), &[]),
        "p",
        at(5),
        guard,
    );
    assert!(d.events.is_empty(), "{:?}", kinds(&d));
    assert_eq!(d.held_delistings, 4);
    assert_eq!(d.next.listings, previous.listings);
    assert_eq!(d.next.unconfirmed_delistings.len(), 4);
    let held = d.next;
    assert_eq!(held.unconfirmed_since, Some(at(5)));
    // The next reads miss the same four: still held until they have been missed for
    // the confirmation time.
    let just_before = at(5) + MASS_LOSS_CONFIRMATION - TimeDelta::seconds(1);
    let d = detect(
        &held,
        complete(all[4..].to_vec(), &[]),
        "p2",
        just_before,
        guard,
    );
    assert!(d.events.is_empty(), "{:?}", kinds(&d));
    assert_eq!(d.next, held);
    let d = detect(
        &held,
        complete(all[4..].to_vec(), &[]),
        "p2",
        at(5) + MASS_LOSS_CONFIRMATION,
        guard,
    );
    assert_eq!(
        kinds(&d),
        ["zillow:1", "zillow:2", "zillow:3", "zillow:4"].map(|id| (id.to_owned(), "delisted"))
    );
    assert!(d.next.unconfirmed_delistings.is_empty());
    assert_eq!(d.next.unconfirmed_since, None);
    assert_eq!(d.next.listings.len(), 6);
    // A listing newly missed is held, and restarts the count.
    let d = detect(
        &held,
        complete(all[5..].to_vec(), &[]),
        "p2",
        at(5) + MASS_LOSS_CONFIRMATION,
        guard,
    );
    assert_eq!(d.events.len(), 4);
    assert_eq!(d.held_delistings, 1);
    assert_eq!(
        d.next.unconfirmed_since,
        Some(at(5) + MASS_LOSS_CONFIRMATION)
    );
    // A read missing fewer of them (an outage recovering): those it sees leave the
    // list, those it misses stay held, counted from when they were first held.
    let d = detect(
        &held,
        complete([&all[..2], &all[4..]].concat(), &[]),
        "p2",
        at(10),
        guard,
    );
    assert!(d.events.is_empty(), "{:?}", kinds(&d));
    assert_eq!(d.held_delistings, 2);
    assert_eq!(
        d.next.unconfirmed_delistings,
        ["zillow:3", "zillow:4"].map(str::to_owned).into()
    );
    assert_eq!(d.next.unconfirmed_since, Some(at(5)));
    let d = detect(
        &d.next,
        complete([&all[..2], &all[4..]].concat(), &[]),
        "p3",
        at(5) + MASS_LOSS_CONFIRMATION,
        guard,
    );
    assert_eq!(
        kinds(&d),
        ["zillow:3", "zillow:4"].map(|id| (id.to_owned(), "delisted"))
    );
    // Or it sees them all again: nothing happened.
    let d = detect(&held, complete(all.clone(), &[]), "p2", at(10), guard);
    assert!(d.events.is_empty(), "{:?}", kinds(&d));
    assert!(d.next.unconfirmed_delistings.is_empty());
}

/// A RESO full read returns the market's closed sales with its active listings: the share
/// is taken over the listings still on the market too, or a read losing most of them
/// would pass under the sales it still returns.
#[test]
fn ended_listings_do_not_hide_a_mass_loss_of_those_on_the_market() {
    let active: Vec<Listing> = (1..=10).map(|i| listing(i, 10_000_000)).collect();
    let sold: Vec<Listing> = (11..=40)
        .map(|i| Listing {
            status: ListingStatus::Sold,
            ..listing(i, 9_000_000)
        })
        .collect();
    let previous = state(&[active.clone(), sold.clone()].concat());
    let read = |listings: Vec<Listing>| {
        detect(
            &previous,
            complete(listings, &[]),
            "p",
            at(5),
            DelistingGuard::default(),
        )
    };
    // 4 of 10 on the market missing (4 of 40 in all): held.
    let d = read([&active[4..], &sold[..]].concat());
    assert!(d.events.is_empty(), "{:?}", kinds(&d));
    assert_eq!(d.held_delistings, 4);
    assert_eq!(d.next.listings, previous.listings);
    // 3 of 10, the share itself: delisted at once.
    let d = read([&active[3..], &sold[..]].concat());
    assert_eq!(
        kinds(&d),
        ["zillow:1", "zillow:2", "zillow:3"].map(|id| (id.to_owned(), "delisted"))
    );
    // Ended records purged by the feed (10 of 40, none on the market): delisted at once.
    let d = read([&active[..], &sold[10..]].concat());
    assert_eq!(d.events.len(), 10);
    assert_eq!(d.held_delistings, 0);
    // Past the share of all the market's listings, held as before, ended or not.
    let d = read(sold[13..].to_vec());
    assert!(d.events.is_empty(), "{:?}", kinds(&d));
    assert_eq!(d.held_delistings, 23);
}

/// A state of [`MAX_STATE_JSON_BYTES`] of JSON is read; one byte more (a gzip bomb, a
/// state written before the bound) is refused, not held; a state past it is never
/// written.
#[test]
fn a_state_is_read_and_written_up_to_its_bound_and_not_past_it() {
    let gzip = |json: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(json).expect("gzip");
        gz.finish().expect("gzip")
    };
    let empty = b"{\"listings\": {}}";
    let padded = |len: usize| {
        let mut json = empty.to_vec();
        json.resize(len, b' ');
        json
    };
    assert!(PollState::decode(&gzip(&padded(MAX_STATE_JSON_BYTES))).is_ok());
    let error =
        PollState::decode(&gzip(&padded(MAX_STATE_JSON_BYTES + 1))).expect_err("past the bound");
    assert!(error.to_string().contains("bound"), "{error}");
    let mut huge = listing(1, 10_000_000);
    huge.address.line = Some("x".repeat(MAX_STATE_JSON_BYTES));
    let error = state(&[huge]).encode().expect_err("past the bound");
    assert!(
        error.to_string().contains("narrow the market's filter"),
        "{error}"
    );
}

#[test]
fn state_round_trips_through_its_encoding() {
    let s = state(&[listing(1, 10_000_000), listing(2, 20_000_000)]);
    assert_eq!(
        PollState::decode(&s.encode().expect("encode")).expect("decode"),
        s
    );
    assert!(PollState::decode(b"not gzip").is_err());
}
