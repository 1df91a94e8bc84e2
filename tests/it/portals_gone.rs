//! What the portals' reads no longer reach, and searches sent elsewhere: ads past the pages a
//! poll may read are delisted once their own pages say they are gone (a 404, or a redirect to
//! another page of the site), never while they are up; a search emptied or redirected to
//! another city delists nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::TimeDelta;
use libtest_mimic::Failed;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use realty_aws::adapters::poll_state::S3PollStateStore;
use realty_model::listing::{ListingId, ListingSource, Offer};
use realty_poller::gone::{VERIFIED_WITHIN, last_verified};
use realty_poller::ports::PollStateStore;
use realty_poller::read::portal::PortalCrawler;
use realty_poller::run::{PollSummary, state_key};
use realty_sim::{AdKind, AdOffer, Portal, PortalSearch, moroccan_cities};
use realty_tests::{TestAws, ensure};

use crate::poller::{stack, stream_events};
use crate::portals::{
    MARKETS, Read, beyond_one_page, events_by_read, first_pages, kind, live_ads, offer_of, polite,
    poll, portal_of, portal_poller, portal_poller_at, portal_sim, reads,
};

crate::async_tests!(
    ads_past_the_pages_read_are_delisted_once_their_own_pages_are_gone,
    ads_whose_pages_redirect_to_a_search_are_delisted,
    an_emptied_search_delists_no_ad_still_up,
    a_search_redirected_to_another_city_fails_its_reads_and_delists_nothing,
    a_large_state_is_verified_within_the_promised_days,
);

/// Mubawab's Casablanca searches are larger than the one page robots.txt lets a crawler
/// read: an ad pushed past it by newer ones, or taken down, is not seen again either way.
/// Polls ask for the pages of those ads unseen for a day: the ones taken down are delisted,
/// the others kept, until what the stream says is up is exactly the ads ever seen that are
/// up. Then the checks stop (each is asked again only a day later).
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
    // The first poll asks for every due page (a site this fast has the time for all of
    // them), the next for none; the clock stands still meanwhile.
    let mut checks = Vec::new();
    for _ in 0..3 {
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
        checks.first() > Some(&0) && checks.last() == Some(&0),
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
    // The second poll is past realty_poller::detect::MASS_LOSS_CONFIRMATION.
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
                    && m.rentals == (read.2 == AdOffer::Rent)
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

/// A Mubawab market whose state holds far more ads than its one readable page shows (a city
/// crawled for months, its ads taken down unseen): each run asks for as many of their pages
/// as its share of the site's time allows, the rest waiting for later runs, and within
/// `VERIFIED_WITHIN` every ad is verified: those taken down delisted, none up, and the oldest
/// unverified ad younger than the alarm's threshold. Before, six pages a read and sixteen a
/// run per site left such a state's removed ads up for weeks.
async fn a_large_state_is_verified_within_the_promised_days(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let sim = portal_sim(57).await?;
    // 10 s of each site a run at 20 requests a second: at most 200 requests, searches
    // included, and what the run's reads leave of the 10 s.
    let mut p = portal_poller_at(&aws, &resources, &sim, 20).await?;
    for endpoint in &mut p.endpoints {
        let Some(crawler) = &endpoint.crawler else {
            continue;
        };
        let bounded = PortalCrawler::new(crawler.user_agent.clone())
            .with_run_budget(std::time::Duration::from_secs(10));
        endpoint.crawler = Some(Arc::new(bounded));
    }
    let first = poll(&p, &sim).await;
    ensure(first.failed_markets == 0, format!("first poll: {first:?}"))?;
    let t0 = sim.handle().now();
    let store = S3PollStateStore {
        client: realty_aws::sdk::s3_client(&aws.sdk_config().await),
        bucket: resources.data_lake_bucket.clone(),
    };
    let key = state_key("mubawab", MARKETS[0], Offer::Sale);
    let (grown, removed) = grow_state(&store, &key, &sim, t0).await?;
    let (runs, gauges, last) = poll_every_6_hours(&p, &sim, t0 + VERIFIED_WITHIN).await?;
    eprintln!(
        "a state of {grown} ads, {} taken down: Mubawab's ad pages asked per run {runs:?}, \
         its oldest unverified ad (hours, the metric) {gauges:?}",
        removed.len()
    );
    // Bounded by the site's time, spread over runs.
    ensure(
        runs.iter().all(|n| *n <= 200) && runs.iter().filter(|n| **n > 0).count() > 2,
        format!("ad pages per run: {runs:?}"),
    )?;
    // The metric of every run, per site, says what the summary says; within the promise at
    // the end.
    let promised = VERIFIED_WITHIN.num_hours() as f64;
    ensure(
        gauges.iter().all(Option::is_some)
            && gauges.last().copied().flatten()
                == last
                    .verifications
                    .iter()
                    .filter(|v| v.source == "mubawab")
                    .filter_map(|v| v.oldest_unverified_hours)
                    .reduce(f64::max)
            && gauges
                .last()
                .copied()
                .flatten()
                .is_some_and(|h| h <= promised)
            && last
                .oldest_unverified_ad_hours
                .is_some_and(|h| h <= promised),
        format!("portal_oldest_unverified_ad_hours of Mubawab per run: {gauges:?}; {last:?}"),
    )?;
    // Every ad taken down before the state grew was delisted on the stream.
    let delisted: BTreeSet<String> = stream_events(&aws, &resources.listing_events_stream)
        .await?
        .iter()
        .filter(|e| kind(e) == "delisted" && e.listing.source == ListingSource::Mubawab)
        .map(|e| e.listing.id.as_str().to_owned())
        .collect();
    let still_up: Vec<&String> = removed.difference(&delisted).collect();
    ensure(
        still_up.is_empty(),
        format!("taken down and never delisted: {still_up:?}"),
    )?;
    let kept = verified_and_up(&store, &key, &sim).await?;
    ensure(kept * 3 < grown, format!("{kept} of {grown} ads kept"))?;
    sim.shutdown().await?;
    Ok(())
}

/// Polls every 6 hours of the simulated clock until `until`, each poll's metrics recorded:
/// Mubawab's ad pages asked per run, its `portal_oldest_unverified_ad_hours` per run, and
/// the last poll's summary.
async fn poll_every_6_hours(
    p: &realty_aws::functions::poller::LambdaPoller,
    sim: &realty_sim::SimServer,
    until: chrono::DateTime<chrono::Utc>,
) -> Result<(Vec<u32>, Vec<Option<f64>>, PollSummary), Failed> {
    let (mut runs, mut gauges, mut last) = (Vec::new(), Vec::new(), None);
    while sim.handle().now() + TimeDelta::hours(6) <= until {
        sim.handle().advance(TimeDelta::hours(6))?;
        let (summary, oldest) = poll_measured(p, sim).await;
        ensure(summary.failed_markets == 0, format!("{summary:?}"))?;
        gauges.push(oldest);
        runs.push(
            summary
                .verifications
                .iter()
                .filter(|v| v.source == "mubawab")
                .map(|v| v.ad_pages_checked)
                .sum(),
        );
        last = Some(summary);
    }
    Ok((runs, gauges, last.ok_or("no poll")?))
}

/// Checks that every ad the state at `key` keeps was verified within the promise, and up
/// when it was; how many it keeps.
async fn verified_and_up(
    store: &S3PollStateStore,
    key: &str,
    sim: &realty_sim::SimServer,
) -> Result<usize, Failed> {
    let now = sim.handle().now();
    let state = store.load(key).await?.state;
    for (id, listing) in &state.listings {
        let verified = last_verified(&state, id, listing);
        let ad = sim
            .handle()
            .portals()
            .ad(Portal::Mubawab, listing.id.native_id(), now);
        ensure(
            now - verified <= VERIFIED_WITHIN && ad.is_some_and(|ad| ad.live_at(verified)),
            format!("{id} kept, verified at {verified}: {listing:?}"),
        )?;
    }
    Ok(state.listings.len())
}

/// A poll of the markets, under a recorder of its metrics: its summary, and the gauge
/// `portal_oldest_unverified_ad_hours` it emitted for Mubawab.
async fn poll_measured(
    p: &realty_aws::functions::poller::LambdaPoller,
    sim: &realty_sim::SimServer,
) -> (PollSummary, Option<f64>) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let summary = {
        // The test's future runs on this thread (the runtime's `block_on`), and the poll
        // spawns no task: all it records lands here.
        let _guard = metrics::set_default_local_recorder(&recorder);
        poll(p, sim).await
    };
    let gauge = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            let key = key.key();
            let mubawab = key
                .labels()
                .any(|l| l.key() == "source" && l.value() == "mubawab");
            match value {
                DebugValue::Gauge(hours)
                    if key.name() == "portal_oldest_unverified_ad_hours" && mubawab =>
                {
                    Some(hours.into_inner())
                }
                _ => None,
            }
        });
    (summary, gauge)
}

/// Adds to the state at `key` every ad of Casablanca's Mubawab sale searches posted before
/// `t0` (up or taken down since), as last seen two days before it; the state's size, and the
/// ids of the ads added that were taken down before `t0`.
async fn grow_state(
    store: &S3PollStateStore,
    key: &str,
    sim: &realty_sim::SimServer,
    t0: chrono::DateTime<chrono::Utc>,
) -> Result<(usize, BTreeSet<String>), Failed> {
    let stored = store.load(key).await?;
    let mut state = stored.state;
    let template = state
        .listings
        .values()
        .next()
        .cloned()
        .ok_or("the first read kept nothing")?;
    let city = moroccan_cities()
        .iter()
        .position(|c| c.market_key() == MARKETS[0])
        .ok_or("no such city")?;
    let mut removed = BTreeSet::new();
    for kind in [AdKind::Apartment, AdKind::House] {
        let search = PortalSearch {
            portal: Portal::Mubawab,
            city,
            offer: AdOffer::Sale,
            kind,
        };
        for ad in sim.handle().portals().ads(search, t0) {
            let id = ListingId::new(ListingSource::Mubawab, &ad.id)?;
            if state.listings.contains_key(id.as_str()) {
                continue;
            }
            if !ad.live_at(t0) {
                removed.insert(id.as_str().to_owned());
            }
            let mut listing = template.clone();
            listing.source_url = Some(format!("https://www.mubawab.ma/fr/a/{}/annonce", ad.id));
            listing.observed_at = t0 - TimeDelta::days(2);
            listing.id = id;
            state
                .listings
                .insert(listing.id.as_str().to_owned(), listing);
        }
    }
    let grown = state.listings.len();
    ensure(grown > 500, format!("only {grown} ads"))?;
    ensure(
        !removed.is_empty(),
        "no ad taken down: the test shows nothing",
    )?;
    ensure(
        store.save(key, &state, stored.version.as_deref()).await?,
        "the state changed meanwhile",
    )?;
    Ok((grown, removed))
}
