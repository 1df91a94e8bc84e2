//! What the portals' reads no longer reach, and searches sent elsewhere: ads past the pages a
//! poll may read are delisted once their own pages say they are gone (a 404, or a redirect to
//! another page of the site), never while they are up; a search emptied or redirected to
//! another city delists nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::TimeDelta;
use libtest_mimic::Failed;
use realty_sim::moroccan_cities;
use realty_tests::{TestAws, ensure};

use crate::poller::{stack, stream_events};
use crate::portals::{
    MARKETS, Read, beyond_one_page, events_by_read, first_pages, kind, live_ads, offer_of, polite,
    poll, portal_of, portal_poller, portal_sim, reads,
};

crate::async_tests!(
    ads_past_the_pages_read_are_delisted_once_their_own_pages_are_gone,
    ads_whose_pages_redirect_to_a_search_are_delisted,
    an_emptied_search_delists_no_ad_still_up,
    a_search_redirected_to_another_city_fails_its_reads_and_delists_nothing,
);

/// Mubawab's Casablanca searches are larger than the one page robots.txt lets a crawler
/// read: an ad pushed past it by newer ones, or taken down, is not seen again either way.
/// Polls ask for the pages of those ads, a few at a time: the ones taken down are delisted,
/// the others kept, until what the stream says is up is exactly the ads ever seen that are
/// up. Then the checks stop (each is asked again only hours later).
async fn ads_past_the_pages_read_are_delisted_once_their_own_pages_are_gone(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    converge_on_the_ads_up(aws, 33, false).await
}

/// As above, the portal sending a taken-down ad's address to its search, as the real ones
/// do (docs/sources.md): before, such a page read as the ad up, for ever.
async fn ads_whose_pages_redirect_to_a_search_are_delisted(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    converge_on_the_ads_up(aws, 34, true).await
}

/// Polls until what the stream says is up of the crawl-limited reads is exactly the ads
/// ever seen that are up, the simulator answering taken-down ads with a 404 or, with
/// `redirect`, a 301 to their search.
async fn converge_on_the_ads_up(
    aws: Arc<TestAws>,
    seed: u64,
    redirect: bool,
) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let sim = portal_sim(seed).await?;
    sim.handle().redirect_taken_down_ads(redirect);
    let p = portal_poller(&aws, &resources, &sim).await?;
    let limited: Vec<Read> = reads().into_iter().filter(beyond_one_page).collect();
    let t0 = sim.handle().now();
    let mut ever_seen: BTreeMap<Read, BTreeSet<String>> = limited
        .iter()
        .map(|read| {
            (
                read.clone(),
                first_pages(&sim, read, t0).into_keys().collect(),
            )
        })
        .collect();
    poll(&p, &sim).await;
    sim.handle().advance(TimeDelta::days(3))?;
    let t1 = sim.handle().now();
    for read in &limited {
        ever_seen
            .entry(read.clone())
            .or_default()
            .extend(first_pages(&sim, read, t1).into_keys());
    }
    // What a whole crawl would know: the ads ever seen that are up now.
    let truth = |read: &Read| -> BTreeSet<String> {
        let live = live_ads(&sim, read, t1);
        ever_seen[read]
            .iter()
            .filter(|id| live.contains_key(*id))
            .cloned()
            .collect()
    };
    let taken_down: usize = limited
        .iter()
        .map(|read| ever_seen[read].len() - truth(read).len())
        .sum();
    ensure(
        taken_down >= 3,
        format!("only {taken_down} seen ads taken down in three days: the test shows nothing"),
    )?;
    // Each poll checks a few pages of each read; the clock stands still meanwhile.
    let mut checks = Vec::new();
    for _ in 0..20 {
        let summary = poll(&p, &sim).await;
        ensure(summary.failed_markets == 0, format!("{summary:?}"))?;
        checks.push(summary.ad_pages_checked);
        if summary.ad_pages_checked == 0 {
            break;
        }
    }
    eprintln!(
        "crawl-limited reads: {taken_down} seen ads taken down; ad pages asked per poll {checks:?}"
    );
    ensure(
        checks.last() == Some(&0) && checks.len() > 2,
        format!("ad pages asked per poll: {checks:?}"),
    )?;
    let events = stream_events(&aws, &resources.listing_events_stream).await?;
    for read in &limited {
        // What the stream says is up: each ad's last event, in its order on the stream.
        let mut up = BTreeSet::new();
        for e in &events {
            let ad = (
                portal_of(e.listing.source.as_str()),
                e.listing.market.city_state.as_str(),
                offer_of(e.listing.offer),
            );
            if ad != (Some(read.0), read.1.as_str(), read.2) {
                continue;
            }
            let id = e.listing.id.native_id().to_owned();
            if kind(e) == "delisted" {
                up.remove(&id);
            } else {
                up.insert(id);
            }
        }
        let truth = truth(read);
        ensure(
            up == truth,
            format!(
                "{read:?}: up on the stream but taken down {:?}; up but not on the stream {:?}",
                up.difference(&truth).collect::<Vec<_>>(),
                truth.difference(&up).collect::<Vec<_>>()
            ),
        )?;
    }
    polite(&sim)?;
    sim.shutdown().await?;
    Ok(())
}

/// One search answering "no result" (renamed or redirected: a page of nothing, a total of
/// 0) while the other reads as before: the reads are incomplete, and none of its ads still
/// up is delisted, even past the mass-loss guard's confirmation time (before, a market's
/// houses all went at once, or 6 hours later). Only an ad's own page gone delists it.
async fn an_emptied_search_delists_no_ad_still_up(aws: Arc<TestAws>) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let sim = portal_sim(44).await?;
    let p = portal_poller(&aws, &resources, &sim).await?;
    let first = poll(&p, &sim).await;
    ensure(first.failed_markets == 0, format!("first poll: {first:?}"))?;
    sim.handle()
        .empty_portal_search(Some(realty_sim::AdKind::House));
    let mut polls = Vec::new();
    // The second poll is past realty_core::poller::detect::MASS_LOSS_CONFIRMATION.
    for hours in [1, 7] {
        sim.handle().advance(TimeDelta::hours(hours))?;
        let summary = poll(&p, &sim).await;
        ensure(summary.failed_markets == 0, format!("{summary:?}"))?;
        polls.push((summary, sim.handle().now()));
    }
    let events = stream_events(&aws, &resources.listing_events_stream).await?;
    let mut houses_up = 0;
    for (summary, at) in &polls {
        for (read, by_id) in events_by_read(&events, summary)? {
            let live = live_ads(&sim, &read, *at);
            for (id, e) in by_id {
                ensure(
                    !(kind(e) == "delisted" && live.contains_key(&id)),
                    format!("{read:?}: ad {id} delisted while it is up"),
                )?;
            }
        }
        houses_up = reads()
            .iter()
            .flat_map(|read| live_ads(&sim, read, *at).into_values())
            .filter(|ad| ad.kind == realty_sim::AdKind::House)
            .count();
    }
    // Otherwise the test shows nothing.
    ensure(houses_up > 10, format!("{houses_up} houses up"))?;
    sim.shutdown().await?;
    Ok(())
}

/// Casablanca's searches sent to Marrakech's (a portal merging two cities' pages, or widening
/// a search): before, the client followed the redirect and Marrakech's ads were read as
/// Casablanca's, new there, and Casablanca's own delisted by the next complete read. Now
/// every Casablanca read fails, publishing and delisting nothing, and reads again once the
/// searches do.
async fn a_search_redirected_to_another_city_fails_its_reads_and_delists_nothing(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let sim = portal_sim(45).await?;
    let p = portal_poller(&aws, &resources, &sim).await?;
    let first = poll(&p, &sim).await;
    ensure(first.failed_markets == 0, format!("first poll: {first:?}"))?;
    let city = |market: &str| {
        moroccan_cities()
            .iter()
            .position(|c| c.market_key() == market)
    };
    let (from, to) = (MARKETS[0], MARKETS[1]);
    sim.handle().redirect_portal_city(city(from).zip(city(to)));
    // Long enough for some of Casablanca's ads to be taken down.
    sim.handle().advance(TimeDelta::days(3))?;
    let redirected = poll(&p, &sim).await;
    let events = stream_events(&aws, &resources.listing_events_stream).await?;
    let by_read = events_by_read(&events, &redirected)?;
    for read in reads() {
        let summary = redirected
            .per_market
            .iter()
            .find(|m| {
                portal_of(&m.source) == Some(read.0)
                    && m.market == read.1
                    && m.rentals == (read.2 == realty_sim::AdOffer::Rent)
            })
            .ok_or_else(|| format!("no summary of {read:?}"))?;
        let error = summary.error.as_deref().unwrap_or_default();
        if read.1 == from {
            ensure(
                error.contains("redirected (HTTP 301)")
                    && summary.listings == 0
                    && !by_read.contains_key(&read),
                format!("{read:?} read from another city: {summary:?}"),
            )?;
        } else {
            ensure(summary.error.is_none(), format!("{read:?}: {summary:?}"))?;
        }
    }
    ensure(
        redirected.failed_markets == 4,
        format!("the redirected city's four reads fail: {redirected:?}"),
    )?;
    sim.handle().redirect_portal_city(None);
    let mended = poll(&p, &sim).await;
    ensure(
        mended.failed_markets == 0,
        format!("searches back: {mended:?}"),
    )?;
    polite(&sim)?;
    sim.shutdown().await?;
    Ok(())
}
