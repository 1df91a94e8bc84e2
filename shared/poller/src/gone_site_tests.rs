//! [`Site::check`] against a site on a loopback port whose ad pages answer as each test says.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::tests::{ad, at, state};
use super::*;
use crate::fetch::http_client;

/// The status each ad page answers with (200 when not set), the pages that redirect (by
/// path, 301 to their `Location`), and the ads asked for, in order.
#[derive(Clone, Default)]
struct LoopbackSite {
    status: Arc<Mutex<BTreeMap<u32, u16>>>,
    redirects: Arc<Mutex<BTreeMap<String, String>>>,
    asked: Arc<Mutex<Vec<u32>>>,
}

impl LoopbackSite {
    fn answer(&self, id: u32, status: u16) {
        self.status.lock().expect("status").insert(id, status);
    }

    /// Ad `id`'s page (at the address [`ad`] gives it) answers 301 to `location`.
    fn redirect(&self, id: u32, location: &str) {
        self.redirects
            .lock()
            .expect("redirects")
            .insert(format!("/fr/a/{id}/appartement"), location.to_owned());
    }

    fn asked(&self) -> Vec<u32> {
        self.asked.lock().expect("asked").clone()
    }

    /// Serves the site; its base URL.
    async fn serve(&self) -> String {
        async fn page(
            State(site): State<LoopbackSite>,
            Path((id, _)): Path<(u32, String)>,
            uri: axum::http::Uri,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            site.asked.lock().expect("asked").push(id);
            let location = site
                .redirects
                .lock()
                .expect("redirects")
                .get(uri.path())
                .cloned();
            if let Some(location) = location {
                return (StatusCode::MOVED_PERMANENTLY, [("location", location)]).into_response();
            }
            let status = site.status.lock().expect("status").get(&id).copied();
            StatusCode::from_u16(status.unwrap_or(200))
                .unwrap_or(StatusCode::OK)
                .into_response()
        }
        let router = axum::Router::new()
            .route("/fr/a/{id}/{slug}", axum::routing::get(page))
            // Every other page (a search, the home page) is up.
            .fallback(|| async { StatusCode::OK })
            .with_state(self.clone());
        crate::serve_on_loopback(router).await
    }
}

/// The checks at hour 48 of a market whose state holds `seen` (last seen by a read at hour
/// 40: the controls) and `unseen` (last seen at hour 0: due), at most `most` of them asked,
/// on `site` with `rules`.
async fn checks_with(
    site: &LoopbackSite,
    seen: &[u32],
    unseen: &[u32],
    most: usize,
    rules: &RobotsRules,
) -> GoneChecks {
    let base = site.serve().await;
    let known: Vec<Listing> = seen
        .iter()
        .map(|&id| ad(id, at(40)))
        .chain(unseen.iter().map(|&id| ad(id, at(0))))
        .collect();
    let crawler = PortalCrawler::new("realty-stream test".to_owned());
    crawler.start_run();
    let policy = HttpPolicy {
        max_attempts: 1,
        ..HttpPolicy::default()
    };
    let client = http_client(std::time::Duration::from_secs(2)).expect("client");
    let limiter = RateLimiter::per_second(0.0);
    let site = Site {
        kind: SourceKind::Mubawab,
        client: &client,
        limiter: &limiter,
        policy: &policy,
        crawler: &crawler,
        rules,
        base: &base,
    };
    site.check(&state(&known), most, at(48), &mut false).await
}

/// [`checks_with`] every due ad, robots.txt allowing everything.
async fn checks(site: &LoopbackSite, seen: &[u32], unseen: &[u32]) -> GoneChecks {
    checks_with(site, seen, unseen, usize::MAX, &RobotsRules::parse(b"")).await
}

fn ids(ids: &[u32]) -> BTreeSet<String> {
    ids.iter()
        .map(|id| ad(*id, at(0)).id.as_str().to_owned())
        .collect()
}

#[tokio::test]
async fn a_gone_page_is_believed_between_two_pages_of_ads_just_seen_that_answer() {
    let site = LoopbackSite::default();
    site.answer(3, 404);
    site.answer(5, 410);
    let out = checks(&site, &[1, 2], &[3, 4, 5]).await;
    assert_eq!(out.gone, ids(&[3, 5]));
    assert_eq!(out.asked_not_gone, ids(&[4]));
    assert!(!out.untrusted);
    // The control before (ad 1), the three checks, another control after (ad 2).
    assert_eq!(site.asked(), [1, 3, 4, 5, 2]);
    assert_eq!(out.asked, 5);
}

#[tokio::test]
async fn when_a_page_of_an_ad_just_seen_is_gone_no_page_is_asked_or_believed() {
    let site = LoopbackSite::default();
    site.answer(1, 404);
    site.answer(3, 404);
    let out = checks(&site, &[1, 2], &[3, 4]).await;
    assert!(out.untrusted);
    assert_eq!(
        out,
        GoneChecks {
            asked: 1,
            untrusted: true,
            ..GoneChecks::default()
        }
    );
    assert_eq!(site.asked(), [1]);
}

#[tokio::test]
async fn when_the_site_stops_answering_after_the_checks_their_404s_say_nothing() {
    let site = LoopbackSite::default();
    site.answer(3, 404);
    // The second control is refused: blocked, or the site moved meanwhile.
    site.answer(2, 403);
    let out = checks(&site, &[1, 2], &[3, 4]).await;
    assert!(out.gone.is_empty());
    assert_eq!(out.asked_not_gone, ids(&[4]));
    assert!(!out.untrusted);
    assert_eq!(site.asked(), [1, 3, 4, 2]);
}

#[tokio::test]
async fn a_read_that_saw_one_ad_asks_its_page_again_after_the_checks() {
    let site = LoopbackSite::default();
    site.answer(3, 404);
    let out = checks(&site, &[1], &[3]).await;
    assert_eq!(out.gone, ids(&[3]));
    assert_eq!(site.asked(), [1, 3, 1]);
}

/// A market's checks stop at its share of the site's run; the control that confirms what
/// they found is asked beyond it, so that the checks made count.
#[tokio::test]
async fn the_checks_stop_at_the_share_and_the_closing_control_is_asked_beyond_it() {
    let site = LoopbackSite::default();
    site.answer(3, 404);
    let out = checks_with(&site, &[1, 2], &[3, 4], 1, &RobotsRules::parse(b"")).await;
    assert_eq!(out.gone, ids(&[3]));
    assert!(out.asked_not_gone.is_empty());
    assert_eq!(site.asked(), [1, 3, 2]);
    assert_eq!(out.asked, 3);
    // A share of none asks nothing.
    let site = LoopbackSite::default();
    let out = checks_with(&site, &[1, 2], &[3, 4], 0, &RobotsRules::parse(b"")).await;
    assert_eq!(out, GoneChecks::default());
    assert!(site.asked().is_empty());
}

#[tokio::test]
async fn when_the_closing_control_is_gone_the_checks_are_untrusted_and_believe_nothing() {
    let site = LoopbackSite::default();
    site.answer(3, 404);
    // Ad 2's page, up a moment ago, is gone after the checks: the site moved its ad pages.
    site.answer(2, 404);
    let out = checks(&site, &[1, 2], &[3, 4]).await;
    assert!(out.untrusted);
    assert!(out.gone.is_empty());
    assert_eq!(site.asked(), [1, 3, 4, 2]);
    assert_eq!(out.asked, 4);
}

/// The portals send a taken-down ad's address elsewhere on the site (docs/sources.md): a
/// redirect to another page of the site (a search) is the ad gone; one to the same ad's page
/// (its slug rewritten) is followed and read as the page; one off the site decides nothing
/// and is not followed. Before, the client followed every redirect and read the search it
/// landed on as the ad up, for ever.
#[tokio::test]
async fn an_ad_page_redirected_to_a_search_is_gone_and_to_its_own_new_address_up() {
    let site = LoopbackSite::default();
    let elsewhere = LoopbackSite::default();
    let other_host = elsewhere.serve().await;
    site.redirect(3, "/fr/st/casablanca/appartements-a-vendre");
    site.redirect(4, "/fr/a/4/appartement-renove");
    site.redirect(5, &format!("{other_host}/fr/a/5/appartement"));
    site.redirect(6, "https://www.mubawab.ma/fr/a/6/appartement");
    let out = checks(&site, &[1, 2], &[3, 4, 5, 6]).await;
    assert_eq!(out.gone, ids(&[3]));
    assert_eq!(out.asked_not_gone, ids(&[4, 5, 6]));
    assert!(!out.untrusted);
    // Ad 4 at its new address; the other host asked nothing.
    assert_eq!(site.asked(), [1, 3, 4, 4, 5, 6, 2]);
    assert!(elsewhere.asked().is_empty());
}

/// A page of an ad the read just saw that redirects to a search: the site sends up ads'
/// pages elsewhere too (moved, or blocking us), so no redirect or 404 is believed.
#[tokio::test]
async fn when_a_page_of_an_ad_just_seen_redirects_elsewhere_no_page_is_believed() {
    let site = LoopbackSite::default();
    site.redirect(1, "/fr/");
    site.answer(3, 404);
    let out = checks(&site, &[1, 2], &[3]).await;
    assert!(out.untrusted && out.gone.is_empty(), "{out:?}");
    assert_eq!(site.asked(), [1]);
}

/// A redirect to the same ad's page that robots.txt disallows, or a chain of them past the
/// hops' bound, decides nothing.
#[tokio::test]
async fn a_redirect_to_the_ad_s_own_page_that_cannot_be_followed_decides_nothing() {
    let site = LoopbackSite::default();
    site.redirect(3, "/fr/a/3/x:y");
    // A loop of the ad's own addresses.
    site.redirect(4, "/fr/a/4/appartement");
    let rules = RobotsRules::parse(b"User-agent: *\nDisallow: /*:\n");
    let out = checks_with(&site, &[1], &[3, 4], usize::MAX, &rules).await;
    assert!(out.gone.is_empty(), "{out:?}");
    assert_eq!(out.asked_not_gone, ids(&[3, 4]));
    // Ad 4: the first request and MAX_HOPS more.
    let fours = site.asked().iter().filter(|id| **id == 4).count();
    assert_eq!(fours, 1 + crate::hops::MAX_HOPS);
}

/// Without a read's sighting of the last day, no page could be trusted: none is asked.
#[tokio::test]
async fn without_an_ad_seen_lately_no_page_is_asked() {
    let site = LoopbackSite::default();
    site.answer(3, 404);
    let out = checks(&site, &[], &[3, 4]).await;
    assert_eq!(out, GoneChecks::default());
    assert!(site.asked().is_empty());
}

/// One control opens a run's checks for the whole site: a second market's checks ask none
/// before theirs (each market asked its own, twice a run, costing the site as many requests
/// as its checks).
#[tokio::test]
async fn a_site_that_answered_a_control_this_run_is_not_asked_another_first() {
    let site = LoopbackSite::default();
    site.answer(4, 404);
    let base = site.serve().await;
    let crawler = PortalCrawler::new("realty-stream test".to_owned());
    crawler.start_run();
    let (client, limiter) = (
        http_client(std::time::Duration::from_secs(2)).expect("client"),
        RateLimiter::per_second(0.0),
    );
    let policy = HttpPolicy {
        max_attempts: 1,
        ..HttpPolicy::default()
    };
    let rules = RobotsRules::parse(b"");
    let checker = Site {
        kind: SourceKind::Mubawab,
        client: &client,
        limiter: &limiter,
        policy: &policy,
        crawler: &crawler,
        rules: &rules,
        base: &base,
    };
    let first = state(&[ad(1, at(40)), ad(3, at(0))]);
    let second = state(&[ad(2, at(40)), ad(4, at(0))]);
    let mut answers = false;
    let out = checker
        .check(&first, usize::MAX, at(48), &mut answers)
        .await;
    assert_eq!((out.asked, answers), (2, true));
    let out = checker
        .check(&second, usize::MAX, at(48), &mut answers)
        .await;
    assert_eq!(out.gone, ids(&[4]));
    // Ad 4, then the closing control (ad 2): no opening one.
    assert_eq!(site.asked(), [1, 3, 4, 2]);
    assert!(answers);
}
