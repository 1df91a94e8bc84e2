//! A poll run verifying a portal market it does not read, against a site on a loopback port.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{StatusCode, Uri};

use super::*;
use crate::detect::DelistingGuard;
use crate::gone::tests::{ad, at, state};
use crate::memory::{MemoryPollStates, MemoryStream};
use crate::read::portal::PortalCrawler;
use realty_model::markets::MemoryConfigStore;
use realty_model::markets::PollRecord;

/// A Mubawab whose ad pages of `gone` answer 404 and every other page 200; the ads asked.
#[derive(Clone, Default)]
struct Site {
    gone: BTreeSet<u32>,
    asked: Arc<Mutex<Vec<u32>>>,
}

impl Site {
    async fn serve(&self) -> String {
        async fn any(State(site): State<Site>, uri: Uri) -> StatusCode {
            let id = mubawab_number(uri.path());
            if let Some(id) = id {
                site.asked.lock().expect("asked").push(id);
            }
            match id {
                Some(id) if site.gone.contains(&id) => StatusCode::NOT_FOUND,
                // robots.txt too: allows everything.
                None => StatusCode::NOT_FOUND,
                Some(_) => StatusCode::OK,
            }
        }
        crate::serve_on_loopback(axum::Router::new().fallback(any).with_state(self.clone())).await
    }
}

fn mubawab_number(path: &str) -> Option<u32> {
    realty_sources::portal::mubawab::ad_identity(path)?
        .strip_prefix("a/")?
        .parse()
        .ok()
}

type TestPoller = Poller<MemoryStream, MemoryPollStates, MemoryConfigStore, ()>;

/// A poller crawling Mubawab at `base`, watching Casablanca from it, polled at `polled_at`.
async fn poller(base: String, polled_at: DateTime<Utc>) -> TestPoller {
    let config = MemoryConfigStore::default();
    config
        .put_market(&realty_model::markets::WatchedMarket::new(
            "ma/casablanca",
            &["mubawab"],
            60,
        ))
        .await
        .expect("watched");
    config
        .record_poll(&PollRecord {
            source: "mubawab".into(),
            market: "ma/casablanca".into(),
            polled_at,
            requests: 2,
            last_event_at: None,
            failed_since: None,
        })
        .await
        .expect("recorded");
    Poller {
        client: crate::fetch::http_client(std::time::Duration::from_secs(2)).expect("client"),
        endpoints: vec![SourceEndpoint {
            kind: SourceKind::Mubawab,
            base_url: base,
            key: String::new(),
            reso_auth: None,
            reso_full_read_every: chrono::TimeDelta::hours(24),
            crawler: Some(Arc::new(PortalCrawler::new("realty-stream test".into()))),
        }],
        unkeyed: Vec::new(),
        secret: "secret".into(),
        policy: HttpPolicy {
            max_attempts: 1,
            ..HttpPolicy::default()
        },
        limiters: BTreeMap::new(),
        publisher: MemoryStream::default(),
        states: MemoryPollStates::default(),
        config,
        raw: (),
        concurrency: 1,
        delisting_guard: DelistingGuard::default(),
        run_budget: std::time::Duration::from_secs(60),
    }
}

/// A market polled a moment ago is not read, and its state is verified all the same: every
/// due ad's page asked, those gone delisted, the oldest verification measured. Before, ads
/// were asked about only after a read of their market, six at most, sixteen a poll per site.
#[tokio::test]
async fn a_market_not_read_this_run_has_its_due_ads_verified() {
    let site = Site {
        gone: (10..20).collect(),
        ..Site::default()
    };
    let base = site.serve().await;
    let now = at(100);
    let poller = poller(base, now - chrono::TimeDelta::minutes(5)).await;
    // Ads 1 and 2 seen by the last read; 10 to 49 not for two days.
    let mut ads: Vec<_> = (1..=2)
        .map(|id| ad(id, now - chrono::TimeDelta::hours(1)))
        .collect();
    ads.extend((10..50).map(|id| ad(id, now - chrono::TimeDelta::hours(48))));
    let key = state_key("mubawab", "ma/casablanca", Offer::Sale);
    poller
        .states
        .save(&key, &state(&ads), None)
        .await
        .expect("saved");
    let summary = poller.poll(&PollRequest::default(), now).await;
    assert!(summary.per_market.is_empty(), "not due: {summary:?}");
    let [verified] = summary.verifications.as_slice() else {
        panic!("{:?}", summary.verifications);
    };
    assert_eq!(verified.delisted, 10, "{verified:?}");
    // Two controls and the forty due ads.
    assert_eq!(verified.ad_pages_checked, 42);
    assert_eq!(
        (
            summary.delisted,
            summary.published,
            summary.ad_pages_checked
        ),
        (10, 10, 42)
    );
    // The oldest verification is the last read's, an hour ago.
    assert_eq!(summary.oldest_unverified_ad_hours, Some(1.0));
    let kept = poller.states.state(&key).expect("state");
    assert_eq!(kept.listings.len(), 32);
    let events = poller.publisher.taken();
    assert!(
        events.len() == 10
            && events
                .iter()
                .all(|e| matches!(e.kind, realty_model::listing::EventKind::Delisted))
    );
    // A run a moment later finds nothing due and asks nothing.
    let asked = site.asked.lock().expect("asked").len();
    let again = poller
        .poll(&PollRequest::default(), now + chrono::TimeDelta::minutes(5))
        .await;
    assert_eq!(again.ad_pages_checked, 0);
    assert_eq!(site.asked.lock().expect("asked").len(), asked);
}

/// A market whose read failed this run is not asked about: a site answering oddly says
/// nothing of its ads.
#[test]
fn a_market_whose_read_failed_this_run_is_left_alone() {
    let endpoint = SourceEndpoint {
        kind: SourceKind::Mubawab,
        base_url: "http://127.0.0.1:9".into(),
        key: String::new(),
        reso_auth: None,
        reso_full_read_every: chrono::TimeDelta::hours(24),
        crawler: None,
    };
    let targets = vec![
        (&endpoint, "ma/casablanca", Offer::Sale),
        (&endpoint, "ma/casablanca", Offer::Rent),
        (&endpoint, "ma/rabat", Offer::Sale),
    ];
    let read = |market: &str, rentals: bool, error: Option<&str>| MarketSummary {
        source: "mubawab".into(),
        market: market.into(),
        rentals,
        error: error.map(str::to_owned),
        ..MarketSummary::default()
    };
    let reads = [
        read("ma/casablanca", false, Some("redirected (HTTP 301)")),
        read("ma/casablanca", true, None),
    ];
    let left: Vec<(&str, Offer)> = unfailed(targets, &reads)
        .into_iter()
        .map(|(_, market, offer)| (market, offer))
        .collect();
    assert_eq!(
        left,
        [("ma/casablanca", Offer::Rent), ("ma/rabat", Offer::Sale)]
    );
}

/// A site's time is shared: the first market takes an even share, and what the others do
/// not need goes back to it in a second round, within the site's time a run (before, at
/// most 16 ad pages a run per site, six a read).
#[tokio::test]
async fn what_other_markets_do_not_need_goes_to_the_one_that_does() {
    let site = Site::default();
    let base = site.serve().await;
    // Casablanca goes first at this minute ([`rotated`] of Casablanca, Rabat).
    let now = at(100);
    let mut poller = poller(base, now - chrono::TimeDelta::minutes(5)).await;
    poller
        .config
        .put_market(&realty_model::markets::WatchedMarket::new(
            "ma/rabat",
            &["mubawab"],
            60,
        ))
        .await
        .expect("watched");
    poller
        .config
        .record_poll(&PollRecord {
            source: "mubawab".into(),
            market: "ma/rabat".into(),
            polled_at: now,
            requests: 2,
            last_event_at: None,
            failed_since: None,
        })
        .await
        .expect("recorded");
    // 3 s of the site a run at 100 requests a second: about 300 requests.
    let endpoint = &mut poller.endpoints[0];
    endpoint.crawler = Some(Arc::new(
        PortalCrawler::new("realty-stream test".into())
            .with_run_budget(std::time::Duration::from_secs(3)),
    ));
    poller
        .limiters
        .insert("mubawab".into(), RateLimiter::per_second(100.0));
    let mut ads: Vec<_> = (1..=2)
        .map(|id| ad(id, now - chrono::TimeDelta::hours(1)))
        .collect();
    ads.extend((100..1_100).map(|id| ad(id, now - chrono::TimeDelta::hours(48))));
    let key = state_key("mubawab", "ma/casablanca", Offer::Sale);
    poller
        .states
        .save(&key, &state(&ads), None)
        .await
        .expect("saved");
    let turn = turn_of(now);
    assert_eq!(
        rotated(vec!["ma/casablanca", "ma/rabat"], turn)[0],
        "ma/casablanca"
    );
    let summary = poller.poll(&PollRequest::default(), now).await;
    let casablanca = summary
        .verifications
        .iter()
        .find(|v| v.market == "ma/casablanca")
        .expect("verified");
    // Its first share was half the site's time (about 150 pages, less two controls); it
    // was given Rabat's unneeded half too, and no more than the site's time allowed.
    assert!(
        casablanca.ad_pages_checked > 160 && casablanca.ad_pages_checked < 320,
        "{summary:?}"
    );
    let kept = poller.states.state(&key).expect("state");
    assert_eq!(
        kept.page_checked_at.len() as u32 + 1,
        casablanca.ad_pages_checked
    );
}

/// A state of thousands of ads, few of them seen by the reads (a crawl-limited city): runs
/// every 6 hours for four days, each at most what the site's time allows (2 s a run at 200
/// requests a second: 400; the rate, not the machine, bounds it, so a loaded machine asks as
/// many), and at every run every ad the state keeps was verified within [`VERIFIED_WITHIN`],
/// the oldest unverified ad measured as such, and the ads taken down are delisted within it
/// too. Before, 16 ad pages a run per site verified such a state's ads once in weeks.
#[tokio::test]
async fn a_state_of_thousands_of_ads_is_verified_within_the_promised_days() {
    use crate::gone::{GONE_CHECK_AFTER, VERIFIED_WITHIN, last_verified};
    // Ads 10..1_010, all unverified for a day at the start; every 7th one taken down.
    let site = Site {
        gone: (10..1_010).filter(|id| id % 7 == 0).collect(),
        ..Site::default()
    };
    let base = site.serve().await;
    let t0 = at(100);
    let mut poller = poller(base, t0).await;
    poller.endpoints[0].crawler = Some(Arc::new(
        PortalCrawler::new("realty-stream test".into())
            .with_run_budget(std::time::Duration::from_secs(2)),
    ));
    poller
        .limiters
        .insert("mubawab".into(), RateLimiter::per_second(200.0));
    let key = state_key("mubawab", "ma/casablanca", Offer::Sale);
    let mut ads: Vec<_> = (1..=2).map(|id| ad(id, t0)).collect();
    ads.extend((10..1_010).map(|id| ad(id, t0 - GONE_CHECK_AFTER)));
    poller
        .states
        .save(&key, &state(&ads), None)
        .await
        .expect("saved");
    let mut per_run = Vec::new();
    for run in 0..16 {
        let now = t0 + chrono::TimeDelta::hours(6 * run);
        // What the market's reads would do, not made here: they see ads 1 and 2 (the
        // controls), and the market is not due.
        seen_by_a_read(&poller, &key, now).await;
        let summary = poller.poll(&PollRequest::default(), now).await;
        let checked = summary.ad_pages_checked;
        per_run.push(checked);
        assert!(checked <= 402, "ad pages asked per run: {per_run:?}");
        let kept = poller.states.state(&key).expect("state");
        let oldest = kept
            .listings
            .iter()
            .map(|(id, l)| now - last_verified(&kept, id, l))
            .max()
            .expect("ads kept");
        assert!(
            oldest <= VERIFIED_WITHIN,
            "run {run}: an ad unverified for {oldest}; pages asked per run {per_run:?}"
        );
        let hours = summary.oldest_unverified_ad_hours.expect("measured");
        assert!((hours - oldest.num_seconds() as f64 / 3600.0).abs() < 1e-9);
        if now - t0 >= VERIFIED_WITHIN - GONE_CHECK_AFTER {
            // Every ad taken down was unverified a day at the start: delisted by now.
            let up: Vec<u32> = site
                .gone
                .iter()
                .copied()
                .filter(|id| kept.listings.keys().any(|k| mubawab_id(k) == Some(*id)))
                .collect();
            assert!(up.is_empty(), "run {run}: taken down, kept: {up:?}");
        }
    }
    // Spread over the runs, not asked all at once.
    assert!(
        per_run.iter().filter(|n| **n > 0).count() > 4,
        "ad pages asked per run: {per_run:?}"
    );
}

/// The native number of the Mubawab listing `id` (`mubawab:N`).
fn mubawab_id(id: &str) -> Option<u32> {
    id.rsplit(':').next()?.parse().ok()
}

/// Stands in for the reads of Casablanca at `now`: ads 1 and 2 seen, the market polled.
async fn seen_by_a_read(poller: &TestPoller, key: &str, now: DateTime<Utc>) {
    let stored = poller.states.load(key).await.expect("load");
    let mut next = stored.state.clone();
    for l in next.listings.values_mut() {
        if matches!(mubawab_id(l.id.as_str()), Some(1 | 2)) {
            l.observed_at = now;
        }
    }
    assert!(
        poller
            .states
            .save(key, &next, stored.version.as_deref())
            .await
            .expect("saved")
    );
    poller
        .config
        .record_poll(&PollRecord {
            source: "mubawab".into(),
            market: "ma/casablanca".into(),
            polled_at: now,
            requests: 2,
            last_event_at: None,
            failed_since: None,
        })
        .await
        .expect("recorded");
}
