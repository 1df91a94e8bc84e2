//! The anti-entropy comparison and pass: what counts as a divergence, what is no evidence,
//! and, over reads of a market whose events are partly lost, that one pass brings the table to
//! the figures of a clean delivery and a second publishes nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::TimeDelta;
use proptest::prelude::*;

use super::*;
use crate::detect::tests::listing;
use crate::detect::{DelistingGuard, MarketRead, detect};
use crate::memory::{MemoryPollStates, MemoryStream};
use realty_metrics::memory::MemoryStores;
use realty_metrics::process::{InputRecord, process_batch};
use realty_model::listing::{EventKind, Listing, ListingStatus};
use realty_model::state::Version;

const KEY: &str = "zillow/nashville-tn";

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-09-12T16:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
        + TimeDelta::minutes(minutes)
}

/// Listing `id` for sale (in inventory) at `price`, seen `minutes` after the first read.
fn seen(id: u32, price: i64, minutes: i64) -> Listing {
    let mut l = listing(id, price);
    l.status = ListingStatus::Active;
    l.observed_at = at(minutes);
    l
}

/// The table's entry of `l`, as an event observed at `minutes` left it.
fn stored(l: &Listing, delisted: bool, minutes: i64) -> ListingState {
    ListingState {
        listing: l.clone(),
        first_price_minor: l.price_minor,
        delisted,
        version: Version {
            observed_at: at(minutes),
            sequence: realty_model::state::SequenceNumber::parse("1").expect("digits"),
        },
        recent_events: Vec::new(),
        interest: Vec::new(),
        baseline: false,
        may_alert: false,
    }
}

fn holding(listings: &[Listing]) -> PollState {
    PollState {
        listings: listings
            .iter()
            .map(|l| (l.id.as_str().to_owned(), l.clone()))
            .collect(),
        ..PollState::default()
    }
}

fn kind_of(d: Option<Divergence>) -> Option<(DivergenceKind, &'static str)> {
    d.map(|d| {
        let event = match d.event.kind {
            EventKind::New => "new",
            EventKind::Changed { .. } => "changed",
            EventKind::Delisted => "delisted",
        };
        (d.kind, event)
    })
}

#[test]
fn a_listing_the_state_holds_and_the_table_lacks_or_holds_behind_is_republished() {
    let now = seen(1, 50_000_000, 60);
    let state = holding(std::slice::from_ref(&now));
    let id = now.id.as_str();
    let missing = diverges(KEY, &state, id, None, "p").expect("missing");
    assert_eq!(missing.kind, DivergenceKind::Missing);
    assert!(missing.event.baseline, "inventory, not news");
    assert_eq!(
        kind_of(diverges(KEY, &state, id, Some(&stored(&now, true, 0)), "p")),
        Some((DivergenceKind::Missing, "new"))
    );
    let cheaper_before = seen(1, 52_000_000, 0);
    assert_eq!(
        kind_of(diverges(
            KEY,
            &state,
            id,
            Some(&stored(&cheaper_before, false, 0)),
            "p"
        )),
        Some((DivergenceKind::Behind, "changed"))
    );
    let mut sold = now.clone();
    sold.status = ListingStatus::Sold;
    assert_eq!(
        kind_of(diverges(
            KEY,
            &state,
            id,
            Some(&stored(&sold, false, 0)),
            "p"
        )),
        Some((DivergenceKind::Behind, "changed"))
    );
    // The same tracked values, observed earlier: nothing to say.
    assert_eq!(
        diverges(
            KEY,
            &state,
            id,
            Some(&stored(&seen(1, 50_000_000, 0), false, 0)),
            "p"
        ),
        None
    );
}

#[test]
fn nothing_is_republished_over_a_newer_observation_or_without_evidence() {
    let now = seen(1, 50_000_000, 60);
    let id = now.id.as_str().to_owned();
    let mut state = holding(std::slice::from_ref(&now));
    // The table observed it later (an import ahead of the state).
    let later = seen(1, 48_000_000, 90);
    assert_eq!(
        diverges(KEY, &state, &id, Some(&stored(&later, false, 90)), "p"),
        None
    );
    assert_eq!(
        diverges(KEY, &state, &id, Some(&stored(&later, true, 90)), "p"),
        None
    );
    // Held while the reads miss it: the poller does not know yet.
    state.unconfirmed_delistings.insert(id.clone());
    assert_eq!(diverges(KEY, &state, &id, None, "p"), None);
    // A state reading its baseline is no evidence at all.
    state.unconfirmed_delistings.clear();
    assert!(settled(&state));
    state.baseline_since = Some(at(0));
    assert!(!settled(&state));
}

#[test]
fn a_delisting_is_republished_only_where_the_poller_recorded_it() {
    let last = seen(2, 30_000_000, 0);
    let id = last.id.as_str().to_owned();
    let mut state = PollState::default();
    // Not held and not recorded as delisted: moved to another state, or never here.
    assert_eq!(
        diverges(KEY, &state, &id, Some(&stored(&last, false, 0)), "p"),
        None
    );
    state.delisted_at.insert(id.clone(), at(30));
    let found = diverges(KEY, &state, &id, Some(&stored(&last, false, 0)), "p").expect("lost");
    assert_eq!(found.kind, DivergenceKind::NotDelisted);
    assert_eq!(found.event.kind, EventKind::Delisted);
    assert_eq!(found.event.observed_at, at(30), "at the poller's delisting");
    // Delisted already, absent, or observed since the delisting: nothing.
    assert_eq!(
        diverges(KEY, &state, &id, Some(&stored(&last, true, 30)), "p"),
        None
    );
    assert_eq!(diverges(KEY, &state, &id, None, "p"), None);
    assert_eq!(
        diverges(KEY, &state, &id, Some(&stored(&last, false, 45)), "p"),
        None
    );
    // The table holds it in another market now (it moved): that market's state speaks of it.
    assert_eq!(
        diverges(
            "zillow/austin-tx",
            &state,
            &id,
            Some(&stored(&last, false, 0)),
            "p"
        ),
        None
    );
}

#[test]
fn pages_go_through_held_and_delisted_ids_in_order() {
    let mut state = holding(&[seen(3, 1, 0), seen(1, 1, 0)]);
    state.delisted_at.insert("zillow:2".into(), at(0));
    // A delisting remembered of a listing back in the state is that listing once.
    state.delisted_at.insert("zillow:3".into(), at(0));
    assert_eq!(
        page_ids(&state, None, 10),
        ["zillow:1", "zillow:2", "zillow:3"]
    );
    assert_eq!(page_ids(&state, Some("zillow:1"), 1), ["zillow:2"]);
    assert!(page_ids(&state, Some("zillow:3"), 10).is_empty());
}

/// Sequence numbers rising across every batch of a test, as one shard's do.
static SEQUENCE: AtomicU64 = AtomicU64::new(1);

async fn apply(stores: &MemoryStores, events: &[ListingEvent]) {
    if events.is_empty() {
        return;
    }
    let records: Vec<InputRecord> = events
        .iter()
        .map(|e| InputRecord {
            sequence_number: format!("4959{:020}", SEQUENCE.fetch_add(1, Ordering::Relaxed)),
            data: e.encode().expect("encodes"),
            approximate_arrival: e.observed_at,
        })
        .collect();
    let outcome = process_batch(&stores.ports(), "shardId-0", &records).await;
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(outcome.stats.accepted, events.len(), "{:?}", outcome.stats);
}

/// (active, sum of active prices) of every market.
fn inventory(stores: &MemoryStores) -> BTreeMap<String, (i64, i64)> {
    stores
        .aggregates
        .lock()
        .expect("lock")
        .iter()
        .map(|(k, v)| (k.clone(), (v.aggregate.active, v.aggregate.price_sum_minor)))
        .collect()
}

/// The listings the table holds on the market, with their price.
fn on_the_market(stores: &MemoryStores) -> BTreeMap<String, i64> {
    stores
        .listings
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, s)| !s.delisted)
        .map(|(id, s)| (id.clone(), s.listing.price_minor))
        .collect()
}

/// Reads of a market (each listing absent or at one of four prices), with the events that
/// are lost: however many and which, one pass gives the table the figures all of them gave,
/// and the next pass publishes nothing. With `in_flight`, the last read's events are still in
/// the stream when the pass runs (applied after it, before what it published): repeating
/// them moves nothing, so with none lost every figure (daily counts too) is the clean one.
async fn lost_events_are_restored_by_one_pass(
    reads: Vec<Vec<Option<u8>>>,
    lost: Vec<bool>,
    in_flight: bool,
) {
    let states = MemoryPollStates::default();
    let clean = MemoryStores::default();
    let lossy = MemoryStores::default();
    let mut state = PollState::default();
    let mut n = 0;
    let mut unapplied = Vec::new();
    for (i, read) in reads.iter().enumerate() {
        let minutes = 30 * i as i64;
        let listings = read
            .iter()
            .enumerate()
            .filter_map(|(id, p)| {
                p.map(|p| seen(id as u32, 40_000_000 + i64::from(p) * 1_000_000, minutes))
            })
            .collect();
        let read = MarketRead {
            listings,
            complete: true,
            ..MarketRead::default()
        };
        let guard = DelistingGuard { max_share: 1.0 };
        let detection = detect(&state, read, &format!("poll-{i}"), at(minutes), guard);
        apply(&clean, &detection.events).await;
        let kept: Vec<ListingEvent> = detection
            .events
            .iter()
            .filter(|_| {
                n += 1;
                !lost.get(n - 1).copied().unwrap_or(false)
            })
            .cloned()
            .collect();
        if in_flight && i + 1 == reads.len() {
            unapplied = kept;
        } else {
            apply(&lossy, &kept).await;
        }
        state = detection.next;
    }
    {
        use crate::ports::PollStateStore as _;
        assert!(states.save(KEY, &state, None).await.expect("saved"));
        let stream = MemoryStream::default();
        let now = at(30 * reads.len() as i64);
        let first = run_pass(&states, &lossy, &stream, LISTINGS_PER_PASS, now)
            .await
            .expect("pass");
        assert!(first.round_ended && first.published == first.total());
        apply(&lossy, &unapplied).await;
        apply(&lossy, &stream.taken()).await;
        if !lost.iter().take(n).any(|l| *l) {
            let whole = |s: &MemoryStores| {
                let items = s.aggregates.lock().expect("lock");
                items
                    .iter()
                    .map(|(k, v)| (k.clone(), v.aggregate.clone()))
                    .collect::<BTreeMap<_, _>>()
            };
            assert_eq!(whole(&lossy), whole(&clean), "{first:?}");
        }
        assert_eq!(on_the_market(&lossy), on_the_market(&clean), "{first:?}");
        assert_eq!(inventory(&lossy), inventory(&clean), "{first:?}");
        let check = check(&states, &lossy, None, now).await.expect("check");
        assert_eq!(check.total(), 0, "{check:?}");
        let second = run_pass(&states, &lossy, &stream, LISTINGS_PER_PASS, now)
            .await
            .expect("pass");
        assert_eq!((second.total(), stream.taken().len()), (0, 0), "{second:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn lost_events_are_restored_by_one_pass_and_only_once(
        reads in prop::collection::vec(prop::collection::vec(prop::option::weighted(0.8, 0u8..4), 6), 1..5),
        lost in prop::collection::vec(any::<bool>(), 0..40),
        in_flight in any::<bool>(),
    ) {
        crate::testing_block_on(lost_events_are_restored_by_one_pass(reads, lost, in_flight));
    }
}

/// A pass bounded to fewer listings than the market goes on where the last stopped, and the
/// passes of one round compare each listing once.
#[test]
fn bounded_passes_page_through_every_state_with_the_cursor() {
    use crate::ports::PollStateStore as _;
    crate::testing_block_on(async {
        let states = MemoryPollStates::default();
        let table = MemoryStores::default();
        let stream = MemoryStream::default();
        let a: Vec<Listing> = (0..5).map(|i| seen(i, 40_000_000, 0)).collect();
        let b: Vec<Listing> = (10..13).map(|i| seen(i, 40_000_000, 0)).collect();
        assert!(
            states
                .save("zillow/a", &holding(&a), None)
                .await
                .expect("saved")
        );
        assert!(
            states
                .save("zillow/b", &holding(&b), None)
                .await
                .expect("saved")
        );
        let mut compared = Vec::new();
        for pass in 0..3 {
            let report = run_pass(&states, &table, &stream, 3, at(pass))
                .await
                .expect("pass");
            compared.push((report.compared, report.round_ended));
        }
        assert_eq!(compared, [(3, false), (3, false), (2, true)]);
        let mut ids: Vec<String> = stream
            .taken()
            .iter()
            .map(|e| e.listing.id.as_str().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 8, "every listing once: {ids:?}");
        let cursor = states.load_cursor().await.expect("cursor");
        assert_eq!(cursor.last_round_ended, Some(at(2)));
        assert_eq!(cursor.state_key, None);
    });
}
