//! Polls find exactly what the simulator's ground truth says happened, through every fault
//! mode, and invent no delisting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::TimeDelta;
use libtest_mimic::Failed;
use realty_model::markets::SourceKind;
use realty_poller::run::PollSummary;
use realty_sim::{EventKind as Truth, FaultConfig};
use realty_tests::{TestAws, ensure};

use super::helpers::{MARKETS, by_listing, poll, sim, sim_of, source_poller, stack, stream_events};

pub(super) async fn two_polls_find_exactly_the_ground_truth(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    two_polls_against_the_ground_truth(&aws, SourceKind::Zillow, 400).await?;
    Ok(())
}

/// The listing's id in `source`, as the simulator's ground truth names it.
pub(crate) fn truth_id(source: SourceKind, ids: &realty_sim::SourceIds) -> &str {
    match source {
        SourceKind::Realtor => &ids.realtor_property_id,
        SourceKind::Reso => &ids.reso_listing_key,
        SourceKind::Zillow => &ids.zpid,
        SourceKind::File | SourceKind::Avito | SourceKind::Mubawab => {
            panic!("the simulator's ground truth has no {source} ids")
        }
    }
}

/// Polls [`MARKETS`] of `source` (`listings` each), lets two simulated days pass, polls
/// again, and checks the second poll's events, listing by listing, against what the
/// simulator's ground truth says happened between the polls. Returns both polls.
pub(crate) async fn two_polls_against_the_ground_truth(
    aws: &TestAws,
    source: SourceKind,
    listings: u32,
) -> Result<(PollSummary, PollSummary), Failed> {
    let resources = stack(aws).await?;
    let sim = sim_of(11, listings, FaultConfig::none()).await?;
    let p = source_poller(aws, &resources, &sim, source).await?;
    let first = poll(&p, &sim).await;
    ensure(
        first.failed_markets == 0 && first.new > listings as usize * MARKETS.len() * 7 / 8,
        format!("first poll: {first:?}"),
    )?;
    let t0 = sim.handle().now();
    let report = sim.handle().advance(TimeDelta::days(2))?;
    let second = poll(&p, &sim).await;
    ensure(
        second.failed_markets == 0,
        format!("second poll: {second:?}"),
    )?;

    let events = stream_events(aws, &resources.listing_events_stream).await?;
    let seen_first: BTreeSet<String> = by_listing(&events, &first)?.into_keys().collect();
    let got = by_listing(&events, &second)?;

    // What the ground truth says the second poll must find, per zpid.
    let mut expected = BTreeMap::new();
    let mut either = BTreeSet::new();
    let mut per_listing: BTreeMap<String, Vec<Truth>> = BTreeMap::new();
    for e in sim.handle().ground_truth(t0, report.to) {
        if MARKETS.contains(&e.market.as_str()) {
            per_listing
                .entry(truth_id(source, &e.ids).to_owned())
                .or_default()
                .push(e.kind);
        }
    }
    for (zpid, history) in per_listing {
        let was_there = seen_first.contains(&zpid);
        let (mut there, mut relisted) = (was_there, false);
        let (mut first_price, mut last_price, mut first_status, mut last_status) =
            (None, None, None, None);
        for k in history {
            match k {
                Truth::New { .. } => {
                    relisted |= was_there || !there;
                    there = true;
                }
                Truth::PriceChange { old, new } => {
                    first_price.get_or_insert(old);
                    last_price = Some(new);
                }
                Truth::StatusChange { old, new } => {
                    first_status.get_or_insert(old);
                    last_status = Some(new);
                }
                Truth::Delisted { .. } => there = false,
            }
        }
        match (was_there, there) {
            (false, true) => {
                expected.insert(zpid, "new");
            }
            (true, false) => {
                expected.insert(zpid, "delisted");
            }
            (true, true) if relisted => {
                either.insert(zpid);
            }
            (true, true) if first_price != last_price || first_status != last_status => {
                expected.insert(zpid, "changed");
            }
            _ => {}
        }
    }
    let got_checked: BTreeMap<String, &str> = got
        .iter()
        .filter(|(z, _)| !either.contains(*z))
        .map(|(z, k)| (z.clone(), *k))
        .collect();
    ensure(
        expected.len() > 20,
        format!("only {} changes in two simulated days", expected.len()),
    )?;
    for kind in ["new", "changed", "delisted"] {
        ensure(
            expected.values().any(|k| *k == kind),
            format!("the ground truth has no {kind} listing"),
        )?;
    }
    let missing: Vec<_> = expected
        .iter()
        .filter(|(z, k)| got_checked.get(*z) != Some(k))
        .collect();
    let extra: Vec<_> = got_checked
        .iter()
        .filter(|(z, k)| expected.get(*z) != Some(k))
        .collect();
    ensure(
        missing.is_empty() && extra.is_empty(),
        format!("missing or different: {missing:?}\nnot in the ground truth: {extra:?}"),
    )?;
    sim.shutdown().await?;
    Ok((first, second))
}

pub(super) async fn every_fault_mode_loses_nothing_and_invents_no_delisting(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    every_fault_mode_against(&aws, SourceKind::Zillow).await
}

/// For each fault mode of the simulator, at the rate its first attempts fail: a first poll
/// of `source` through the faults finds what a clean read finds, and a second poll of the
/// unchanged market publishes nothing (no invented delisting).
pub(crate) async fn every_fault_mode_against(
    aws: &TestAws,
    source: SourceKind,
) -> Result<(), Failed> {
    for spec in [
        "rate_limit=0.3",
        "server_error=0.3",
        "slow=0.15,slow_ms=3000",
        "truncated=0.3",
        "malformed=0.3",
        "page_shift=0.5",
    ] {
        let resources = stack(aws).await?;
        let faults: FaultConfig = spec.parse()?;
        let clean = sim(23, FaultConfig::none()).await?;
        let faulty = sim(23, faults).await?;
        let clean_poller = source_poller(aws, &stack(aws).await?, &clean, source).await?;
        let p = source_poller(aws, &resources, &faulty, source).await?;

        let truth = poll(&clean_poller, &clean).await;
        let first = poll(&p, &faulty).await;
        ensure(
            first.failed_markets == 0 && first.new == truth.new,
            format!(
                "{spec}: first poll found {} new listings of {}: {first:?}",
                first.new, truth.new
            ),
        )?;
        // Nothing changes between these two polls: any delisting would be invented.
        let second = poll(&p, &faulty).await;
        ensure(
            second.new + second.changed + second.delisted == 0,
            format!("{spec}: an unchanged market gave events: {second:?}"),
        )?;
        let events = stream_events(aws, &resources.listing_events_stream).await?;
        let first_events = by_listing(&events, &first)?;
        ensure(
            first_events.len() == truth.new,
            format!(
                "{spec}: {} events in the stream, {} expected",
                first_events.len(),
                truth.new
            ),
        )?;
        let served = faulty.handle().faults_served();
        ensure(
            served.values().sum::<u64>() > 0,
            format!("{spec}: the simulator served no fault"),
        )?;
        clean.shutdown().await?;
        faulty.shutdown().await?;
    }
    Ok(())
}
