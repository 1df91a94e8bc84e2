//! Realtor.com end to end: the poller, built as Lambda builds it, reads the simulator's
//! Realtor.com API (`POST /properties/v3/list`, 200 results a page) over the local stack.
//! Two polls find exactly what the simulator's ground truth says happened; the faults the
//! simulator serves lose nothing; a read cut short (faults past every retry, pages that
//! never add up) delists nothing, and the listings it could not judge are delisted by the
//! next whole read. The checks are the Zillow path's (tests/it/poller/), run on Realtor.

use std::sync::Arc;

use chrono::TimeDelta;
use libtest_mimic::Failed;
use realty_model::markets::SourceKind;
use realty_sim::FaultConfig;
use realty_tests::{TestAws, ensure};

use crate::poller::{
    MARKETS, by_listing, every_fault_mode_against, hidden_listings_against, poll, sim_of,
    source_poller, stack, stream_events, two_polls_against_the_ground_truth,
};

crate::async_tests!(
    a_realtor_market_poll_finds_exactly_the_ground_truth,
    every_fault_mode_of_realtor_loses_nothing_and_invents_no_delisting,
    a_listing_hidden_from_a_realtor_read_is_not_delisted,
    a_realtor_read_that_fails_past_its_retries_delists_nothing,
    a_realtor_read_whose_pages_never_add_up_delists_nothing,
);

/// Live listings per market: three pages of 200.
const LISTINGS: u32 = 500;

async fn a_realtor_market_poll_finds_exactly_the_ground_truth(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let (first, second) =
        two_polls_against_the_ground_truth(&aws, SourceKind::Realtor, LISTINGS).await?;
    for poll in [&first, &second] {
        ensure(
            poll.per_market.len() == MARKETS.len()
                && poll
                    .per_market
                    .iter()
                    .all(|m| m.source == "realtor" && m.complete && m.pages >= 3),
            format!("each market is read whole from Realtor.com, over several pages: {poll:?}"),
        )?;
    }
    Ok(())
}

async fn every_fault_mode_of_realtor_loses_nothing_and_invents_no_delisting(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    every_fault_mode_against(&aws, SourceKind::Realtor).await
}

async fn a_listing_hidden_from_a_realtor_read_is_not_delisted(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let (first, hidden) = hidden_listings_against(&aws, SourceKind::Realtor, LISTINGS).await?;
    ensure(
        first.per_market.first().is_some_and(|m| m.pages >= 3) && hidden >= 1,
        format!("a read of several pages, a listing hidden from {hidden} reads: {first:?}"),
    )
}

/// A first poll through a clean simulator; two simulated days; a poll of the same markets
/// at the same time through `faults` (which outlast every retry), which must delist
/// nothing; then a clean poll, which delists what really went. Returns the faulty poll.
async fn a_poll_through_lasting_faults(
    aws: &TestAws,
    faults: &str,
) -> Result<realty_poller::run::PollSummary, Failed> {
    let resources = stack(aws).await?;
    let clean = sim_of(29, LISTINGS, FaultConfig::none()).await?;
    let faulty = sim_of(29, LISTINGS, faults.parse()?).await?;
    let clean_poller = source_poller(aws, &resources, &clean, SourceKind::Realtor).await?;
    let faulty_poller = source_poller(aws, &resources, &faulty, SourceKind::Realtor).await?;
    let first = poll(&clean_poller, &clean).await;
    ensure(
        first.failed_markets == 0 && first.per_market.iter().all(|m| m.complete),
        format!("the first poll reads every market whole: {first:?}"),
    )?;
    clean.handle().advance(TimeDelta::days(2))?;
    faulty.handle().advance(TimeDelta::days(2))?;
    ensure(
        clean.handle().now() == faulty.handle().now(),
        "both simulators at the same time",
    )?;

    let cut_short = poll(&faulty_poller, &faulty).await;
    ensure(
        cut_short.delisted == 0 && cut_short.held_delistings == 0,
        format!("{faults}: a read cut short delisted listings: {cut_short:?}"),
    )?;
    let events = stream_events(aws, &resources.listing_events_stream).await?;
    let kinds = by_listing(&events, &cut_short)?;
    ensure(
        kinds.values().all(|k| *k != "delisted"),
        format!("{faults}: delisted events in the stream: {kinds:?}"),
    )?;
    ensure(
        faulty.handle().faults_served().values().sum::<u64>() > 0,
        format!("{faults}: the simulator served no fault"),
    )?;

    // The listings that went in those two days are delisted by the next whole read.
    let whole = poll(&clean_poller, &clean).await;
    ensure(
        whole.failed_markets == 0 && whole.delisted > 0,
        format!("{faults}: the next whole read delists what went: {whole:?}"),
    )?;
    clean.shutdown().await?;
    faulty.shutdown().await?;
    Ok(cut_short)
}

async fn a_realtor_read_that_fails_past_its_retries_delists_nothing(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let spec = "truncated=1,faulty_attempts=100";
    let cut_short = a_poll_through_lasting_faults(&aws, spec).await?;
    ensure(
        cut_short.failed_markets == MARKETS.len()
            && cut_short.new + cut_short.changed + cut_short.delisted == 0,
        format!("{spec}: every market fails, and nothing is published: {cut_short:?}"),
    )
}

async fn a_realtor_read_whose_pages_never_add_up_delists_nothing(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    // Every page after the first moves a listing onto a page already read, on every pass.
    let spec = "page_shift=1,faulty_attempts=100";
    let cut_short = a_poll_through_lasting_faults(&aws, spec).await?;
    ensure(
        cut_short.failed_markets == 0
            && cut_short
                .per_market
                .iter()
                .all(|m| !m.complete && m.incomplete),
        format!("{spec}: every market is read, none whole: {cut_short:?}"),
    )
}
