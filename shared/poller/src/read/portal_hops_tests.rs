//! [`read_pages`] against a site on a loopback port whose robots.txt and search pages
//! redirect as each test says: a hop is followed only on the site, where robots.txt allows,
//! to the page asked for.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::*;
use crate::fetch::http_client;

const SEARCH_PAGE: &[u8] =
    include_bytes!("../../../sources/tests/fixtures/mubawab_search_real_estate_for_rent_en.html");

/// A site answering its robots.txt with `robots`, a page of `redirects` with a 301 to its
/// `Location`, and any other page with a search page; the paths asked for, in order.
#[derive(Clone, Default)]
struct LoopbackSite {
    robots: String,
    redirects: BTreeMap<String, String>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl LoopbackSite {
    fn asked(&self) -> Vec<String> {
        self.asked.lock().expect("asked").clone()
    }

    async fn serve(&self) -> String {
        async fn any(State(site): State<LoopbackSite>, uri: Uri) -> Response {
            let target = uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_owned();
            site.asked.lock().expect("asked").push(target.clone());
            if let Some(location) = site.redirects.get(&target) {
                return (
                    StatusCode::MOVED_PERMANENTLY,
                    [("location", location.clone())],
                )
                    .into_response();
            }
            if uri.path().ends_with(".txt") {
                return site.robots.clone().into_response();
            }
            ([("content-type", "text/html; charset=utf-8")], SEARCH_PAGE).into_response()
        }
        crate::serve_on_loopback(axum::Router::new().fallback(any).with_state(self.clone())).await
    }
}

/// Casablanca's sale searches read from `site`.
async fn read(site: &LoopbackSite) -> Result<PortalPages, FetchError> {
    let base = site.serve().await;
    let crawler = PortalCrawler::new("realty-stream test".to_owned());
    crawler.start_run();
    read_pages(
        &http_client(Duration::from_secs(2)).expect("client"),
        &RateLimiter::per_second(0.0),
        &HttpPolicy {
            max_attempts: 1,
            ..HttpPolicy::default()
        },
        SourceKind::Mubawab,
        &base,
        &crawler,
        "ma/casablanca",
        Offer::Sale,
        Utc::now(),
    )
    .await
}

const FLATS: &str = "/fr/st/casablanca/appartements-a-vendre";
const HOUSES: &str = "/fr/st/casablanca/maisons-a-vendre";

fn site(redirects: &[(&str, &str)]) -> LoopbackSite {
    LoopbackSite {
        robots: "User-agent: *\nDisallow: /*:\nDisallow: /*?n=1\n".into(),
        redirects: redirects
            .iter()
            .map(|(from, to)| ((*from).to_owned(), (*to).to_owned()))
            .collect(),
        ..LoopbackSite::default()
    }
}

#[tokio::test]
async fn a_search_redirected_to_its_own_address_spelt_otherwise_is_read() {
    let flats_with_a_slash = format!("{FLATS}/");
    let site = site(&[(FLATS, &flats_with_a_slash)]);
    let pages = read(&site).await.expect("read");
    assert_eq!(pages.pages.len(), 2);
    assert_eq!(
        site.asked(),
        ["/robots.txt", FLATS, &flats_with_a_slash, HOUSES]
    );
}

/// A search sent to another city's (a city the portal merged, a search it widened) is not
/// this market's: before, the other city's ads were read as this market's listings.
#[tokio::test]
async fn a_search_redirected_to_another_city_fails_the_read_unread() {
    let site = site(&[(HOUSES, "/fr/st/marrakech/maisons-a-vendre")]);
    let failed = read(&site).await.err();
    assert!(
        matches!(&failed, Some(FetchError::Redirected { location, .. }) if location.contains("marrakech")),
        "{failed:?}"
    );
    assert_eq!(site.asked(), ["/robots.txt", FLATS, HOUSES]);
}

/// robots.txt is matched on every hop, not only the address asked for.
#[tokio::test]
async fn a_search_redirected_where_robots_txt_disallows_is_not_followed() {
    let disallowed = format!("{HOUSES}?n=1");
    let site = site(&[(HOUSES, &disallowed)]);
    let failed = read(&site).await.err();
    assert!(
        matches!(&failed, Some(FetchError::Redirected { .. })),
        "{failed:?}"
    );
    assert!(!site.asked().contains(&disallowed), "{:?}", site.asked());
}

/// A robots.txt moved on the site is read where it went; one sent to another host is a
/// robots.txt that could not be read: nothing is crawled.
#[tokio::test]
async fn robots_txt_is_followed_on_the_site_only() {
    let moved = LoopbackSite {
        robots: "User-agent: *\nDisallow: /fr/st/casablanca/\n".into(),
        redirects: [("/robots.txt".to_owned(), "/robots-2026.txt".to_owned())].into(),
        ..LoopbackSite::default()
    };
    let refused = read(&moved).await.err();
    assert!(
        matches!(&refused, Some(FetchError::Disallowed { reason, .. }) if reason.contains("disallows")),
        "{refused:?}"
    );
    let elsewhere = LoopbackSite::default();
    let other_host = elsewhere.serve().await;
    let away = LoopbackSite {
        redirects: [("/robots.txt".to_owned(), format!("{other_host}/robots.txt"))].into(),
        ..LoopbackSite::default()
    };
    let refused = read(&away).await.err();
    assert!(
        matches!(&refused, Some(FetchError::Disallowed { reason, .. }) if reason.contains("could not be read")),
        "{refused:?}"
    );
    assert!(elsewhere.asked().is_empty());
    assert_eq!(away.asked(), ["/robots.txt"]);
}
