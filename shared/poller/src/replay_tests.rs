//! Replay's tests over in-memory ports, from the real Nashville page of Zillow.

use super::*;
use crate::memory::{MemoryPollStates as MemoryStates, MemoryStream};
use chrono::Duration;
use realty_model::listing::{EventKind, ListingStatus};
use realty_sources::file::{write_csv, write_json_lines};
use std::collections::BTreeSet;

/// The real Nashville page of Zillow, normalised (41 listings).
pub(crate) fn nashville() -> Vec<Listing> {
    let page = include_bytes!(
        "../../sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
    );
    realty_sources::normalize_file(realty_model::markets::SourceKind::Zillow, page, at(0))
        .expect("fixture")
        .listings
}

pub(crate) fn at(minute: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
        + Duration::minutes(minute)
}

pub(crate) fn csv(listings: &[Listing]) -> Vec<u8> {
    let mut out = Vec::new();
    write_csv(listings, &mut out).expect("csv");
    out
}

fn options(minute: i64) -> ReplayOptions {
    ReplayOptions {
        rate_per_second: None,
        started_at: at(minute),
        run_budget: None,
    }
}

#[tokio::test]
async fn a_second_replay_of_the_same_file_publishes_nothing() {
    let listings = nashville();
    assert!(listings.len() > 30, "{}", listings.len());
    let file = csv(&listings);
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    let first = replay(&file, &stream, &states, options(10), &())
        .await
        .expect("replay");
    assert_eq!(first.rows, listings.len());
    assert_eq!(first.rejected, 0);
    assert_eq!(first.published, listings.len());
    assert_eq!(first.new, listings.len());
    assert!(first.finished());
    let sent = stream.taken();
    assert_eq!(sent.len(), listings.len());
    assert!(sent.iter().all(|e| e.kind == EventKind::New));
    // Kept where the poller keeps Nashville's Zillow state.
    assert!(states.state("zillow/nashville-tn").is_some());

    let second = replay(&file, &stream, &states, options(20), &())
        .await
        .expect("replay");
    assert_eq!(second.published, 0);
    assert_eq!(second.unchanged, listings.len());
    assert!(stream.taken().is_empty());
}

/// A history export, newest row first: the newest row of each listing is what the
/// state and the stream get, whatever the order, and the older rows count as stale.
#[tokio::test]
async fn a_listing_in_several_rows_is_its_newest_row() {
    let listings = nashville();
    let mut newer = listings[0].clone();
    newer.observed_at = listings[0].observed_at + Duration::hours(1);
    newer.price_minor -= 500_000;
    for rows in [
        vec![newer.clone(), listings[0].clone()],
        vec![listings[0].clone(), newer.clone()],
    ] {
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        let report = replay(&csv(&rows), &stream, &states, options(120), &())
            .await
            .expect("replay");
        assert_eq!((report.published, report.stale), (1, 1), "{report:?}");
        let sent = stream.taken();
        assert_eq!(sent[0].listing.price_minor, newer.price_minor);
        let state = states.state("zillow/nashville-tn").expect("a state");
        assert_eq!(
            state.listings[newer.id.as_str()].price_minor,
            newer.price_minor
        );
    }
}

/// An older file holding a listing delisted since does not put it back on the market:
/// its row is from before the delisting (stale), and the next poll has nothing to
/// delist again.
#[tokio::test]
async fn a_row_from_before_a_listing_was_delisted_is_stale() {
    use crate::deliver::deliver;
    let listings = nashville();
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    let key = "zillow/nashville-tn";
    replay(&csv(&listings[..3]), &stream, &states, options(10), &())
        .await
        .expect("replay");
    // A complete poll without the first listing delists it.
    let read = MarketRead {
        listings: listings[1..3].to_vec(),
        complete: true,
        ..MarketRead::default()
    };
    let stored = states.load(key).await.expect("load");
    let guard = DelistingGuard { max_share: 1.0 };
    deliver(
        &stream,
        &states,
        key,
        &stored,
        read,
        "poll",
        at(20),
        guard,
        crate::deliver::OnConflict::Yield,
    )
    .await
    .expect("delivered");
    stream.taken();
    let report = replay(&csv(&listings[..3]), &stream, &states, options(30), &())
        .await
        .expect("replay");
    assert_eq!((report.published, report.stale), (0, 1), "{report:?}");
    assert!(stream.taken().is_empty());
    let state = states.state(key).expect("a state");
    assert!(!state.listings.contains_key(listings[0].id.as_str()));
    // Seen after its delisting, it is back on the market.
    let mut relisted = listings[0].clone();
    relisted.observed_at = at(25);
    let report = replay(&csv(&[relisted]), &stream, &states, options(30), &())
        .await
        .expect("replay");
    assert_eq!((report.published, report.new), (1, 1), "{report:?}");
}

/// `listing` re-filed in Antioch, TN, observed at `minute`.
pub(crate) fn in_antioch(listing: &Listing, minute: i64) -> Listing {
    let mut moved = listing.clone();
    moved.address.city = "Antioch".into();
    moved.market = realty_model::listing::MarketKey::for_address(&moved.address).expect("a market");
    moved.observed_at = at(minute);
    moved
}

/// A history showing a listing moving from Nashville to Antioch, in any order, after a
/// poll kept it in Nashville's state: its newest row puts it in Antioch's state alone,
/// and the next complete read of Nashville, which no longer lists it, delists nothing
/// (before, both states kept it and that read delisted it).
#[tokio::test]
async fn a_history_moving_a_listing_leaves_it_in_its_last_market_s_state_alone() {
    let listings = nashville();
    let moved = in_antioch(&listings[0], 30);
    for rows in [
        vec![listings[0].clone(), moved.clone()],
        vec![moved.clone(), listings[0].clone()],
    ] {
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        replay(&csv(&listings[..3]), &stream, &states, options(10), &())
            .await
            .expect("replay");
        stream.taken();
        let report = replay(&csv(&rows), &stream, &states, options(40), &())
            .await
            .expect("replay");
        assert_eq!((report.new, report.stale, report.markets), (1, 1, 2));
        let sent = stream.taken();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].listing.market.city_state, "antioch-tn");
        let (old, new) = ("zillow/nashville-tn", "zillow/antioch-tn");
        let id = moved.id.as_str();
        assert!(!states.state(old).expect("state").listings.contains_key(id));
        assert!(states.state(new).expect("state").listings.contains_key(id));
        // Nashville's next complete read, without it: nothing delisted.
        let stored = states.load(old).await.expect("load");
        let read = MarketRead {
            listings: listings[1..3].to_vec(),
            complete: true,
            ..MarketRead::default()
        };
        let guard = DelistingGuard { max_share: 1.0 };
        let delivery = deliver(
            &stream,
            &states,
            old,
            &stored,
            read,
            "poll",
            at(50),
            guard,
            crate::deliver::OnConflict::Yield,
        )
        .await
        .expect("delivered");
        assert_eq!(delivery.events(), 0, "{:?}", stream.taken());
    }
}

/// A row older than what Nashville's state holds of the listing does not take it out.
#[tokio::test]
async fn a_move_older_than_the_state_s_listing_leaves_it() {
    let listings = nashville();
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    let mut seen_later = listings[0].clone();
    seen_later.observed_at = at(35);
    replay(&csv(&[seen_later]), &stream, &states, options(36), &())
        .await
        .expect("replay");
    let rows = [listings[0].clone(), in_antioch(&listings[0], 30)];
    replay(&csv(&rows), &stream, &states, options(40), &())
        .await
        .expect("replay");
    let kept = states.state("zillow/nashville-tn").expect("state");
    assert!(kept.listings.contains_key(listings[0].id.as_str()));
}

/// A state one listing short of [`MAX_STATE_LISTINGS`]: an import brings in one new
/// listing more, and rejects the others by line, saying why; a listing the state holds
/// already goes through (a change), and the state never passes the bound.
#[tokio::test]
async fn an_import_never_grows_a_state_past_its_bound() {
    let listings = nashville();
    let key = "zillow/nashville-tn";
    let filler = |i: usize| {
        let mut l = listings[0].clone();
        l.id = realty_model::listing::ListingId::new(
            realty_model::listing::ListingSource::Zillow,
            &(1_000_000 + i).to_string(),
        )
        .expect("id");
        l
    };
    let mut held: PollState = PollState::default();
    for i in 0..MAX_STATE_LISTINGS - 2 {
        let l = filler(i);
        held.listings.insert(l.id.as_str().to_owned(), l);
    }
    let known = &listings[1];
    held.listings
        .insert(known.id.as_str().to_owned(), known.clone());
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    assert!(states.save(key, &held, None).await.expect("saved"));
    let mut cut = known.clone();
    cut.price_minor -= 1_000_000;
    cut.observed_at = at(5);
    // Line 2: a listing the state holds; lines 3-5: three new ones.
    let rows = [
        cut,
        listings[2].clone(),
        listings[3].clone(),
        listings[4].clone(),
    ];
    let report = replay(&csv(&rows), &stream, &states, options(10), &())
        .await
        .expect("replay");
    assert_eq!((report.changed, report.new, report.rejected), (1, 1, 2));
    let lines: Vec<String> = report
        .rejects
        .iter()
        .map(|r| r.position.to_string())
        .collect();
    assert_eq!(lines, ["line 4", "line 5"]);
    assert!(
        report.rejects[0].reason.contains("holds 50000 listings"),
        "{}",
        report.rejects[0]
    );
    assert_eq!(
        states.state(key).expect("state").listings.len(),
        MAX_STATE_LISTINGS
    );
    assert_eq!(stream.taken().len(), 2);
}

#[tokio::test]
async fn the_json_lines_of_realty_normalize_are_an_export() {
    let listings = nashville();
    let mut file = Vec::new();
    write_json_lines(&listings, &mut file).expect("json lines");
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    let report = replay(&file, &stream, &states, options(10), &())
        .await
        .expect("replay");
    assert_eq!(report.published, listings.len());
    // The same listings as CSV change nothing.
    let again = replay(&csv(&listings), &stream, &states, options(20), &())
        .await
        .expect("replay");
    assert_eq!((again.published, again.unchanged), (0, listings.len()));
}

#[tokio::test]
async fn listings_outside_the_us_are_replayed_into_their_own_market() {
    let mut listings = nashville();
    let moroccan = &mut listings[1];
    moroccan.address.country = realty_model::listing::CountryCode::MA;
    moroccan.address.state = String::new();
    moroccan.currency = "MAD".to_owned();
    moroccan.market =
        realty_model::listing::MarketKey::for_address(&moroccan.address).expect("a market");
    let mut file = Vec::new();
    write_json_lines(&listings[..3], &mut file).expect("json lines");
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    let report = replay(&file, &stream, &states, options(10), &())
        .await
        .expect("replay");
    assert_eq!((report.published, report.rejected), (3, 0), "{report:?}");
    let markets: Vec<String> = stream
        .taken()
        .iter()
        .map(|e| e.listing.market.city_state.clone())
        .collect();
    assert!(markets.contains(&"ma/nashville".to_owned()), "{markets:?}");
}

#[tokio::test]
async fn bad_rows_are_reported_by_row_and_the_good_ones_published() {
    let listings = nashville();
    let text = String::from_utf8(csv(&listings[..5])).expect("utf-8");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Line 3 (the second listing): a price that is not a number.
    let price = listings[1].price_minor.to_string();
    lines[2] = lines[2].replacen(&format!(",{price},"), ",call for price,", 1);
    // Line 5: observed an hour after the replay runs.
    let observed = listings[3]
        .observed_at
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let future = (at(70)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    lines[4] = lines[4].replace(&observed, &future);
    // Line 7: not a CSV row of the export at all.
    lines.push("garbage".into());
    let file = lines.join("\n").into_bytes();
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    let report = replay(&file, &stream, &states, options(10), &())
        .await
        .expect("replay");
    assert_eq!(report.rows, 6);
    assert_eq!(report.published, 3);
    assert_eq!(report.rejected, 3);
    let rows: Vec<String> = report
        .rejects
        .iter()
        .map(|r| r.position.to_string())
        .collect();
    assert_eq!(rows, ["line 3", "line 5", "line 7"], "{:?}", report.rejects);
    assert!(
        report.rejects[0].reason.contains("price_minor"),
        "{}",
        report.rejects[0]
    );
    assert!(
        report.rejects[1].reason.contains("clock skew"),
        "{}",
        report.rejects[1]
    );
}

#[tokio::test]
async fn a_file_without_a_listing_infers_no_delisting() {
    let listings = nashville();
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    replay(&csv(&listings), &stream, &states, options(10), &())
        .await
        .expect("replay");
    stream.taken();
    // A later export: one listing cut by 5 %, one marked sold.
    let mut cut = listings[0].clone();
    cut.price_minor = cut.price_minor / 100 * 95;
    cut.observed_at = at(30);
    let mut sold = listings[1].clone();
    sold.status = ListingStatus::Sold;
    sold.observed_at = at(30);
    // The rest but the last two as they were: few enough missing that a complete read
    // would delist them at once (under the delisting guard's share).
    let mut later = vec![cut.clone(), sold];
    later.extend_from_slice(&listings[2..listings.len() - 2]);
    let report = replay(&csv(&later), &stream, &states, options(40), &())
        .await
        .expect("replay");
    assert_eq!((report.changed, report.published), (2, 2));
    assert_eq!(report.unchanged, listings.len() - 4);
    let sent = stream.taken();
    assert!(
        sent.iter()
            .all(|e| matches!(e.kind, EventKind::Changed { .. })),
        "{sent:?}"
    );
    let kept = states.state("zillow/nashville-tn").expect("a state");
    assert_eq!(kept.listings.len(), listings.len());
    assert_eq!(kept.listings[cut.id.as_str()].price_minor, cut.price_minor);
}

#[tokio::test]
async fn an_older_export_does_not_move_a_listing_back() {
    let listings = nashville();
    let mut newer = listings[0].clone();
    newer.price_minor += 1_000_000;
    newer.observed_at = at(30);
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    replay(&csv(&[newer]), &stream, &states, options(40), &())
        .await
        .expect("replay");
    stream.taken();
    let report = replay(&csv(&listings[..1]), &stream, &states, options(50), &())
        .await
        .expect("replay");
    assert_eq!((report.stale, report.published), (1, 0));
    assert!(stream.taken().is_empty());
}

#[tokio::test(start_paused = true)]
async fn events_the_stream_refused_are_sent_by_the_next_replay() {
    let listings = nashville();
    let file = csv(&listings);
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    // One early in the file and two in later chunks, to check the chunks' indexes.
    let refused: BTreeSet<String> = [0, 15, 33]
        .iter()
        .map(|&i| listings[i].id.as_str().to_owned())
        .collect();
    *stream.refuse.lock().expect("lock") = refused.clone();
    let paced = ReplayOptions {
        rate_per_second: Some(10.0),
        ..options(10)
    };
    let first = replay(&file, &stream, &states, paced, &())
        .await
        .expect("replay");
    assert_eq!(first.unpublished, 3);
    assert_eq!(first.published, listings.len() - 3);
    assert!(!first.finished());
    let sent: BTreeSet<String> = stream
        .taken()
        .iter()
        .map(|e| e.listing.id.as_str().to_owned())
        .collect();
    assert!(sent.is_disjoint(&refused));
    stream.refuse.lock().expect("lock").clear();
    let second = replay(&file, &stream, &states, options(20), &())
        .await
        .expect("replay");
    assert_eq!(second.published, 3);
    let resent: BTreeSet<String> = stream
        .taken()
        .iter()
        .map(|e| e.listing.id.as_str().to_owned())
        .collect();
    assert_eq!(resent, refused);
}

#[tokio::test(start_paused = true)]
async fn the_rate_paces_the_chunks_and_progress_counts_every_row() {
    struct Count(AtomicUsize);
    impl ReplayProgress for Count {
        fn advance(&self, rows: usize) {
            self.0.fetch_add(rows, Ordering::Relaxed);
        }
    }
    let listings = nashville();
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    let progress = Count(AtomicUsize::new(0));
    let paced = ReplayOptions {
        rate_per_second: Some(10.0),
        ..options(10)
    };
    let mut file = csv(&listings);
    file.extend_from_slice(b"not,a,row\n");
    let started = tokio::time::Instant::now();
    let report = replay(&file, &stream, &states, paced, &progress)
        .await
        .expect("replay");
    assert_eq!(report.published, listings.len());
    assert_eq!(progress.0.load(Ordering::Relaxed), listings.len() + 1);
    // Ten a call, one call a second.
    let calls = listings.len().div_ceil(10);
    assert_eq!(stream.calls.load(Ordering::Relaxed), calls);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_secs(calls as u64 - 1),
        "{elapsed:?}"
    );
    // Unpaced: PutRecords-sized calls.
    stream.calls.store(0, Ordering::Relaxed);
    let mut cut = listings.clone();
    for l in &mut cut {
        l.price_minor -= 100_000;
        l.observed_at = at(15);
    }
    let report = replay(&csv(&cut), &stream, &states, options(20), &())
        .await
        .expect("replay");
    assert_eq!(report.changed, listings.len());
    assert_eq!(stream.calls.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn rentals_are_replayed_against_the_rental_state() {
    let mut rentals = nashville();
    rentals.truncate(3);
    for l in &mut rentals {
        l.offer = realty_model::listing::Offer::Rent;
        l.price_minor = 250_000;
    }
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    replay(&csv(&rentals), &stream, &states, options(10), &())
        .await
        .expect("replay");
    // Where the poller keeps the market's rentals, apart from its sale listings.
    assert_eq!(
        states
            .state("zillow/nashville-tn/rent")
            .map(|s| s.listings.len()),
        Some(3)
    );
    assert!(states.state("zillow/nashville-tn").is_none());
}

#[tokio::test]
async fn a_file_that_is_not_an_export_is_refused_whole() {
    let (stream, states) = (MemoryStream::default(), MemoryStates::default());
    let page = include_bytes!(
        "../../sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
    );
    let error = replay(page, &stream, &states, options(10), &())
        .await
        .expect_err("an API page");
    assert!(error.to_string().contains("JSON"), "{error}");
    assert_eq!(stream.calls.load(Ordering::Relaxed), 0);
}
