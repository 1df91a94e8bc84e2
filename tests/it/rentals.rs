//! Rentals polled end to end: the poller reads each market's rentals from the simulator's
//! Zillow (`status_type=ForRent`) and Realtor.com (`status: ["for_rent"]`) APIs in a read
//! of their own, finds exactly the simulator's rental ground truth, and keeps rentals and
//! sale listings apart: a sale poll never delists a rental, nor a rental poll a sale
//! listing, and a rental read that does not add up delists no rental.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use libtest_mimic::Failed;
use realty_model::listing::{EventKind, ListingEvent, Offer};
use realty_model::markets::SourceKind;
use realty_poller::run::{PollRequest, PollSummary};
use realty_sim::{EventKind as Truth, FaultConfig, ListingStatus, SimServer};
use realty_tests::{TestAws, ensure};

use crate::poller::{MARKETS, sim_of, source_poller, stack, stream_events, truth_id};

crate::async_tests!(
    zillow_rental_polls_find_exactly_the_rental_ground_truth,
    realtor_rental_polls_find_exactly_the_rental_ground_truth,
    a_rental_read_that_never_adds_up_delists_no_rental,
);

/// Live sale listings per market (a third as many rentals: 200, five Zillow pages, one of
/// Realtor.com's).
const LISTINGS: u32 = 600;

async fn zillow_rental_polls_find_exactly_the_rental_ground_truth(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    rental_polls_against_the_ground_truth(&aws, SourceKind::Zillow).await
}

async fn realtor_rental_polls_find_exactly_the_rental_ground_truth(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    rental_polls_against_the_ground_truth(&aws, SourceKind::Realtor).await
}

/// The listed rentals of [`MARKETS`] now, by native id in `source`, with their rent.
fn listed_rentals(sim: &SimServer, source: SourceKind) -> BTreeMap<String, u64> {
    sim.handle().with_market(|m| {
        MARKETS
            .iter()
            .flat_map(|key| m.rentals(key).unwrap_or_default())
            .filter(|r| r.status == ListingStatus::Active)
            .map(|r| (truth_id(source, &r.ids).to_owned(), r.list_price))
            .collect()
    })
}

/// `(native id, kind)` of one poll's events of one offer.
fn events_of(
    events: &[ListingEvent],
    poll: &PollSummary,
    offer: Offer,
) -> Result<BTreeMap<String, &'static str>, Failed> {
    let mut out = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.poll_id.starts_with(&poll.poll_id) && e.listing.offer == offer)
    {
        let kind = match e.kind {
            EventKind::New => "new",
            EventKind::Changed { .. } => "changed",
            EventKind::Delisted => "delisted",
        };
        let id = e.listing.id.home_id().to_owned();
        if out.insert(id.clone(), kind).is_some() {
            return Err(format!("listing {id} emitted twice in one poll").into());
        }
    }
    Ok(out)
}

/// Rentals taken while a rental read never adds up (every page after the first moves a
/// rental onto a page already read, on every pass) are not delisted from it; the next whole
/// read delists them.
async fn a_rental_read_that_never_adds_up_delists_no_rental(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let spec = "page_shift=1,faulty_attempts=100";
    let clean = sim_of(31, LISTINGS, FaultConfig::none()).await?;
    let faulty = sim_of(31, LISTINGS, spec.parse()?).await?;
    let clean_poller = source_poller(&aws, &resources, &clean, SourceKind::Zillow).await?;
    let faulty_poller = source_poller(&aws, &resources, &faulty, SourceKind::Zillow).await?;
    poll_at(&clean_poller, clean.handle().now(), true).await?;
    clean.handle().advance(TimeDelta::days(2))?;
    faulty.handle().advance(TimeDelta::days(2))?;

    let request = PollRequest {
        markets: MARKETS.iter().map(|m| m.to_string()).collect(),
        rentals: true,
        ..PollRequest::default()
    };
    let cut_short = Box::pin(faulty_poller.poll(&request, faulty.handle().now())).await;
    let rental_reads: Vec<_> = cut_short.per_market.iter().filter(|m| m.rentals).collect();
    ensure(
        rental_reads.len() == MARKETS.len()
            && rental_reads
                .iter()
                .all(|m| m.error.is_none() && m.incomplete && m.delisted == 0),
        format!("{spec}: rental reads that never add up delist nothing: {cut_short:?}"),
    )?;
    let events = stream_events(&aws, &resources.listing_events_stream).await?;
    let rent_events = events_of(&events, &cut_short, Offer::Rent)?;
    ensure(
        rent_events.values().all(|k| *k != "delisted"),
        format!("{spec}: rentals delisted in the stream: {rent_events:?}"),
    )?;

    let whole = poll_at(&clean_poller, clean.handle().now(), true).await?;
    let delisted: usize = whole
        .per_market
        .iter()
        .filter(|m| m.rentals)
        .map(|m| m.delisted)
        .sum();
    ensure(
        delisted > 0,
        format!("the next whole read delists the rentals taken: {whole:?}"),
    )?;
    clean.shutdown().await?;
    faulty.shutdown().await?;
    Ok(())
}

async fn poll_at(
    p: &realty_aws::functions::poller::LambdaPoller,
    at: DateTime<Utc>,
    rentals: bool,
) -> Result<PollSummary, Failed> {
    let request = PollRequest {
        markets: MARKETS.iter().map(|m| m.to_string()).collect(),
        rentals,
        ..PollRequest::default()
    };
    let summary = Box::pin(p.poll(&request, at)).await;
    ensure(
        summary.failed_markets == 0 && summary.incomplete_reads == 0,
        format!("poll (rentals: {rentals}): {summary:?}"),
    )?;
    Ok(summary)
}

/// Polls the markets' sale listings and rentals, then sale listings alone and both again
/// at the same instant (nothing may be published: a read of one kind delisting the other
/// would show), lets two simulated days pass, and checks the next rental read's events,
/// rental by rental, against the simulator's rental ground truth.
async fn rental_polls_against_the_ground_truth(
    aws: &TestAws,
    source: SourceKind,
) -> Result<(), Failed> {
    let resources = stack(aws).await?;
    let sim = sim_of(29, LISTINGS, FaultConfig::none()).await?;
    let p = source_poller(aws, &resources, &sim, source).await?;
    let t0 = sim.handle().now();
    let at_start = listed_rentals(&sim, source);

    let first = poll_at(&p, t0, true).await?;
    let rental_reads: Vec<_> = first.per_market.iter().filter(|m| m.rentals).collect();
    ensure(
        rental_reads.len() == MARKETS.len()
            && rental_reads.iter().all(|m| m.complete && m.listings > 0),
        format!("each market's rentals are read whole: {first:?}"),
    )?;
    let sale_only = poll_at(&p, t0, false).await?;
    let both_again = poll_at(&p, t0, true).await?;
    for (name, poll) in [("a sale poll", &sale_only), ("a second poll", &both_again)] {
        ensure(
            poll.new + poll.changed + poll.delisted == 0,
            format!("{name} of unchanged markets published events: {poll:?}"),
        )?;
    }

    let report = sim.handle().advance(TimeDelta::days(2))?;
    let second = poll_at(&p, report.to, true).await?;
    let events = stream_events(aws, &resources.listing_events_stream).await?;

    let found_first = events_of(&events, &first, Offer::Rent)?;
    ensure(
        found_first.len() == at_start.len() && found_first.keys().eq(at_start.keys()),
        format!(
            "the first rental read found {} rentals, the simulator lists {}",
            found_first.len(),
            at_start.len()
        ),
    )?;
    let sale_ids: BTreeSet<String> = events_of(&events, &first, Offer::Sale)?
        .into_keys()
        .collect();
    ensure(
        sale_ids.len() > LISTINGS as usize
            && sale_ids.is_disjoint(&at_start.keys().cloned().collect()),
        "sale listings and rentals are different listings",
    )?;

    // The rental ground truth replayed over the rentals listed at t0 lands on those listed
    // now; what the second read must find is the net change.
    let mut replayed: BTreeMap<String, (u64, bool)> = at_start
        .iter()
        .map(|(id, rent)| (id.clone(), (*rent, true)))
        .collect();
    let truth = sim.handle().rental_ground_truth(t0, report.to);
    for e in truth
        .iter()
        .filter(|e| MARKETS.contains(&e.market.as_str()))
    {
        let id = truth_id(source, &e.ids).to_owned();
        match e.kind {
            Truth::New { price, .. } => {
                replayed.insert(id, (price, true));
            }
            Truth::PriceChange { new, .. } => {
                replayed.entry(id).or_insert((new, true)).0 = new;
            }
            Truth::Delisted { .. } => {
                replayed.entry(id).or_insert((0, false)).1 = false;
            }
            Truth::StatusChange { .. } => {
                return Err(format!("a rental changed status: {e:?}").into());
            }
        }
    }
    let now_listed = listed_rentals(&sim, source);
    let replayed_listed: BTreeMap<String, u64> = replayed
        .iter()
        .filter(|(_, (_, listed))| *listed)
        .map(|(id, (rent, _))| (id.clone(), *rent))
        .collect();
    ensure(
        replayed_listed == now_listed,
        "the rental ground truth replays to the rentals listed",
    )?;
    let mut expected: BTreeMap<String, &str> = BTreeMap::new();
    for (id, (rent, listed)) in &replayed {
        match (at_start.get(id), listed) {
            (None, true) => {
                expected.insert(id.clone(), "new");
            }
            (Some(_), false) => {
                expected.insert(id.clone(), "delisted");
            }
            (Some(old), true) if old != rent => {
                expected.insert(id.clone(), "changed");
            }
            _ => {}
        }
    }
    for kind in ["new", "changed", "delisted"] {
        ensure(
            expected.values().any(|k| *k == kind),
            format!("the rental ground truth has no {kind} rental in two days"),
        )?;
    }
    let got = events_of(&events, &second, Offer::Rent)?;
    let got: BTreeMap<String, &str> = got.into_iter().collect();
    ensure(
        got == expected,
        format!("rental events {got:?}\nexpected from the ground truth {expected:?}"),
    )?;
    // The sale read of the same poll names no rental, and delists only sale listings.
    let sale_events = events_of(&events, &second, Offer::Sale)?;
    ensure(
        sale_events.keys().all(|id| !replayed.contains_key(id)),
        "a sale read published a rental",
    )?;
    sim.shutdown().await?;
    Ok(())
}
