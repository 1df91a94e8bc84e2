//! [`read_market`] against an API on a loopback port that answers as each test says: the
//! bounds a read keeps when the API misbehaves.

use realty_model::markets::SearchFilter;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::*;
use crate::fetch::http_client;
use realty_sources::zillow::MAX_PRICE_BAND_SPLITS;

/// Requests after which the API answers 400: a read that does not stop by itself fails.
const REQUESTS_BEFORE_REFUSING: u32 = 2_000;

type Answer = Arc<dyn Fn(u32, &Value) -> Value + Send + Sync>;

/// An API on a loopback port answering request `n` (from 1) and its query (GET) or body
/// (POST) with `answer(n, query)`; its base URL and the request counter.
async fn serve(
    answer: impl Fn(u32, &Value) -> Value + Send + Sync + 'static,
) -> (String, Arc<AtomicU32>) {
    #[derive(Clone)]
    struct Api {
        answer: Answer,
        requests: Arc<AtomicU32>,
    }
    fn reply(api: &Api, asked: &Value) -> (axum::http::StatusCode, axum::Json<Value>) {
        let n = api.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if n > REQUESTS_BEFORE_REFUSING {
            return (axum::http::StatusCode::BAD_REQUEST, axum::Json(json!({})));
        }
        (
            axum::http::StatusCode::OK,
            axum::Json((api.answer)(n, asked)),
        )
    }
    async fn get(
        State(api): State<Api>,
        Query(query): Query<std::collections::BTreeMap<String, String>>,
    ) -> (axum::http::StatusCode, axum::Json<Value>) {
        reply(&api, &json!(query))
    }
    async fn post(
        State(api): State<Api>,
        axum::Json(body): axum::Json<Value>,
    ) -> (axum::http::StatusCode, axum::Json<Value>) {
        reply(&api, &body)
    }
    let requests = Arc::new(AtomicU32::new(0));
    let api = Api {
        answer: Arc::new(answer),
        requests: requests.clone(),
    };
    let router = axum::Router::new()
        .route("/propertyExtendedSearch", axum::routing::get(get))
        .route("/properties/v3/list", axum::routing::post(post))
        .route("/Property", axum::routing::get(get))
        .with_state(api);
    (crate::serve_on_loopback(router).await, requests)
}

async fn read_from(kind: SourceKind, base_url: String, market: &str) -> (MarketRead, ReadStats) {
    let endpoint = SourceEndpoint {
        kind,
        base_url,
        key: "test".into(),
        reso_auth: None,
        reso_full_read_every: chrono::TimeDelta::hours(24),
        crawler: None,
    };
    read_with(&endpoint, market, &PollState::default(), Utc::now())
        .await
        .expect("the read ends by itself")
}

/// `market`'s read from `endpoint` (one attempt a page, every price), after `previous`.
async fn read_with(
    endpoint: &SourceEndpoint,
    market: &str,
    previous: &PollState,
    observed_at: DateTime<Utc>,
) -> Result<(MarketRead, ReadStats), FetchError> {
    read_allowed(endpoint, market, previous, observed_at, None).await
}

/// [`read_with`] allowed at most `allowance` requests (the run's budget; `None`: any).
async fn read_allowed(
    endpoint: &SourceEndpoint,
    market: &str,
    previous: &PollState,
    observed_at: DateTime<Utc>,
    allowance: Option<u64>,
) -> Result<(MarketRead, ReadStats), FetchError> {
    let limiter = RateLimiter::per_second(0.0);
    limiter.start_run(allowance);
    let policy = HttpPolicy {
        max_attempts: 1,
        ..HttpPolicy::default()
    };
    let filter = SearchFilter::default();
    read_market(
        &http_client(std::time::Duration::from_secs(2)).expect("client"),
        &limiter,
        &policy,
        endpoint,
        MarketSearch {
            market,
            filter: &filter,
            offer: Offer::Sale,
        },
        previous,
        observed_at,
        &(),
    )
    .await
}

/// A RESO feed at `base_url` with a bearer token, read whole every `full_read_every`.
fn reso_endpoint(base_url: String, full_read_every: chrono::TimeDelta) -> SourceEndpoint {
    SourceEndpoint {
        kind: SourceKind::Reso,
        base_url,
        key: "test".into(),
        reso_auth: Some(Arc::new(crate::reso_auth::ResoAuth::new(
            crate::reso_auth::ResoKey::Token("token".into()),
        ))),
        reso_full_read_every: full_read_every,
        crawler: None,
    }
}

/// The state a poll keeps after `read` (the guard's default).
fn state_after(previous: &PollState, read: MarketRead, observed_at: DateTime<Utc>) -> PollState {
    crate::detect::detect(
        previous,
        read,
        "poll",
        observed_at,
        crate::detect::DelistingGuard::default(),
    )
    .next
}

fn fixture(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("fixture")
}

#[tokio::test]
async fn a_zillow_api_that_ignores_the_price_filter_is_read_in_three_requests() {
    let page = fixture(include_bytes!(
        "../../../sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
    ));
    let (base_url, requests) = serve(move |_, _| {
        let mut page = page.clone();
        page["totalResultCount"] = json!(5_000);
        page["totalPages"] = json!(122);
        page
    })
    .await;
    let (read, stats) = read_from(SourceKind::Zillow, base_url, "nashville-tn").await;
    assert!(!read.complete);
    // The whole range, then its two halves: no more splits, no second pass.
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    assert_eq!(stats.pages, 3);
}

#[tokio::test]
async fn a_zillow_api_whose_bands_never_fit_is_cut_off_at_the_split_limit() {
    let page = fixture(include_bytes!(
        "../../../sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
    ));
    // Each band reports one result fewer the narrower it is: the splits narrow, never
    // enough.
    let (base_url, requests) = serve(move |_, query| {
        let price = |key: &str| query[key].as_str().and_then(|p| p.parse::<u64>().ok());
        let width = price("maxPrice").unwrap_or(u64::MAX) - price("minPrice").unwrap_or(0);
        let mut page = page.clone();
        page["totalResultCount"] = json!(1_000 + u64::from(width.max(1).ilog2()));
        page["totalPages"] = json!(25);
        page
    })
    .await;
    let (read, _) = read_from(SourceKind::Zillow, base_url, "nashville-tn").await;
    assert!(!read.complete);
    assert_eq!(requests.load(Ordering::SeqCst), MAX_PRICE_BAND_SPLITS + 1);
}

/// A Realtor.com page of `records` results with property ids from `first_id`, the query
/// holding `total`.
fn realtor_page(template: &Value, first_id: u64, records: u64, total: u64) -> Value {
    let result = &template["data"]["home_search"]["results"][0];
    let results: Vec<Value> = (first_id..first_id + records)
        .map(|id| {
            let mut r = result.clone();
            r["property_id"] = json!(id.to_string());
            r
        })
        .collect();
    json!({"data": {"home_search": {"count": records, "total": total, "results": results}}})
}

#[tokio::test]
async fn a_realtor_api_that_repeats_its_page_is_read_twice_not_until_its_total() {
    let template = fixture(include_bytes!(
        "../../../sources/tests/fixtures/realtor_realty-in-us_properties_v3_list.json"
    ));
    // Whatever the offset, the same ten results, of a million.
    let (base_url, requests) = serve(move |_, _| realtor_page(&template, 1, 10, 1_000_000)).await;
    let (read, _) = read_from(SourceKind::Realtor, base_url, "los-angeles-ca").await;
    assert!(!read.complete);
    assert_eq!(read.listings.len(), 10);
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_realtor_read_takes_its_total_from_the_first_page_and_stops_at_the_page_limit() {
    let template = fixture(include_bytes!(
        "../../../sources/tests/fixtures/realtor_realty-in-us_properties_v3_list.json"
    ));
    // One new result a page; `pages` of them. Later pages report a total far larger: the
    // first page's stands.
    let market_of = |pages: u32| {
        let template = template.clone();
        move |n: u32, body: &Value| {
            let offset = body["offset"].as_u64().unwrap_or(0);
            let total = if n == 1 { u64::from(pages) } else { 1_000_000 };
            realtor_page(&template, offset + 1, 1, total)
        }
    };
    let (base_url, requests) = serve(market_of(MAX_REALTOR_PAGES)).await;
    let (read, _) = read_from(SourceKind::Realtor, base_url, "los-angeles-ca").await;
    assert!(read.complete);
    assert_eq!(read.listings.len() as u32, MAX_REALTOR_PAGES);
    assert_eq!(requests.load(Ordering::SeqCst), MAX_REALTOR_PAGES);
    let (base_url, requests) = serve(market_of(MAX_REALTOR_PAGES + 1)).await;
    let (read, _) = read_from(SourceKind::Realtor, base_url, "los-angeles-ca").await;
    assert!(!read.complete);
    assert_eq!(read.listings.len() as u32, MAX_REALTOR_PAGES);
    // Cut off, and not read again in the same poll.
    assert_eq!(requests.load(Ordering::SeqCst), MAX_REALTOR_PAGES);
}

/// A complete read that misses a known listing is confirmed by a second pass; one cut short
/// by the run's budget (or deadline) leaves the first standing, incomplete: its listings
/// delivered, nothing delisted. Before, the whole read was dropped, and, not recorded as
/// polled, made again at the next run and cut again.
#[tokio::test]
async fn a_confirming_pass_cut_short_leaves_the_first_standing_incomplete() {
    let template = fixture(include_bytes!(
        "../../../sources/tests/fixtures/realtor_realty-in-us_properties_v3_list.json"
    ));
    let page = realtor_page(&template, 1, 3, 3);
    let answered = page.clone();
    let (base_url, requests) = serve(move |_, _| answered.clone()).await;
    let observed_at = Utc::now();
    let mut previous = PollState::default();
    let known =
        realty_sources::realtor::parse_value(&realtor_page(&template, 9, 1, 1), observed_at)
            .expect("page")
            .listings;
    previous.listings = known
        .iter()
        .map(|l| (l.id.as_str().to_owned(), l.clone()))
        .collect();
    let endpoint = SourceEndpoint {
        kind: SourceKind::Realtor,
        base_url,
        key: "test".into(),
        reso_auth: None,
        reso_full_read_every: chrono::TimeDelta::hours(24),
        crawler: None,
    };
    let (read, stats) = read_allowed(&endpoint, "los-angeles-ca", &previous, observed_at, Some(1))
        .await
        .expect("the first pass stands");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert!(stats.cut_short, "{stats:?}");
    assert!(!read.complete, "a read cut short delists nothing");
    assert_eq!(read.listings.len(), 3);
    // Allowed both passes, the same read is complete.
    let (read, stats) = read_allowed(&endpoint, "los-angeles-ca", &previous, observed_at, None)
        .await
        .expect("read");
    assert!(read.complete && !stats.cut_short, "{stats:?}");
    assert_eq!(stats.reconciliations, 1);
}

/// A due RESO full read cut short by the run's budget is saved as the interval's try, and
/// no read of the changes is attempted after it: the next poll reads them. Before, the
/// failed full read was tried again at every poll, and the changes never read.
#[tokio::test]
async fn a_reso_full_read_cut_short_waits_an_interval_and_reads_nothing_more() {
    // A full read of two pages (the first links to the second on the same server).
    let mut page = fixture(include_bytes!(
        "../../../sources/tests/fixtures/reso_property_page2.json"
    ));
    page["@odata.count"] = json!(100);
    page["@odata.nextLink"] = json!("Property?$skip=6");
    let (base_url, requests) = serve(move |_, _| page.clone()).await;
    let every = chrono::TimeDelta::hours(24);
    let endpoint = reso_endpoint(base_url, every);
    let observed_at = DateTime::parse_from_rfc3339("2024-03-02T00:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let previous = PollState {
        cursor: Some(observed_at - chrono::TimeDelta::days(1)),
        last_complete_read: Some(observed_at - every),
        ..PollState::default()
    };
    let (read, stats) = read_allowed(&endpoint, "nashville-tn", &previous, observed_at, Some(1))
        .await
        .expect("cut short, not failed");
    assert!(stats.cut_short, "{stats:?}");
    assert!(
        read.full && !read.complete && read.listings.is_empty(),
        "{read:?}"
    );
    assert_eq!(read.cursor, previous.cursor);
    assert_eq!(
        state_after(&previous, read, observed_at).last_full_read,
        Some(observed_at)
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

/// A Zillow answer without a total (a bare `props` array) can never be complete: read once
/// a poll, not once per pass.
#[tokio::test]
async fn a_read_without_a_total_is_made_once_not_once_a_pass() {
    let props = fixture(include_bytes!(
        "../../../sources/tests/fixtures/zillow_propertyExtendedSearch_props_syracuse_ny.json"
    ));
    let (base_url, requests) = serve(move |_, _| props.clone()).await;
    let (read, stats) = read_from(SourceKind::Zillow, base_url, "syracuse-ny").await;
    assert!(!read.complete && !read.listings.is_empty());
    assert_eq!(requests.load(Ordering::SeqCst), 1, "{stats:?}");
    assert_eq!(stats.rereads, 0);
}

/// A due full read that fails (its first page links to another server) gives way to the
/// read of the changes since the cursor in the same poll, and counts as the interval's try:
/// before, the failure returned before any state was kept, so every poll tried the full read
/// again and no change of the market was ever read.
#[tokio::test]
async fn a_failed_reso_full_read_gives_way_to_the_changes_and_waits_an_interval() {
    let page1 = fixture(include_bytes!(
        "../../../sources/tests/fixtures/reso_property_page1.json"
    ));
    let page2 = fixture(include_bytes!(
        "../../../sources/tests/fixtures/reso_property_page2.json"
    ));
    let (base_url, requests) = serve(move |_, query| {
        // The full read asks for the count; its first page links off the server.
        if query.get("$count").is_some() {
            page1.clone()
        } else {
            page2.clone()
        }
    })
    .await;
    let every = chrono::TimeDelta::hours(24);
    let endpoint = reso_endpoint(base_url, every);
    let at = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    };
    let observed_at = at("2024-03-02T00:00:00Z");
    let previous = PollState {
        cursor: Some(at("2024-03-01T00:00:00Z")),
        last_complete_read: Some(observed_at - every),
        ..PollState::default()
    };
    let (read, _) = read_with(&endpoint, "nashville-tn", &previous, observed_at)
        .await
        .expect("the changes are read though the full read failed");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        2,
        "one full page, one of changes"
    );
    let changes = realty_sources::reso::parse_value(
        &fixture(include_bytes!(
            "../../../sources/tests/fixtures/reso_property_page2.json"
        )),
        observed_at,
    )
    .expect("page");
    assert_eq!(read.listings.len(), changes.listings.len());
    assert!(!read.listings.is_empty());
    assert!(!read.complete, "nothing is inferred from absence");
    assert!(read.full, "the full read was tried: {read:?}");
    let realty_sources::Paging::Reso(paging) = &changes.paging else {
        panic!("a RESO page");
    };
    assert_eq!(
        read.cursor,
        paging.max_modification_timestamp.max(previous.cursor)
    );
    // The try is remembered: the next poll reads the changes alone, an interval later whole.
    assert_eq!(
        state_after(&previous, read, observed_at).last_full_read,
        Some(observed_at)
    );
}

/// A RESO full read whose records add up to its count but miss a record the state holds
/// (paged by `$skip` while a record moved to the end and another was added): a second full
/// read confirms; the record it finds is not delisted, one missing from both is.
#[tokio::test]
async fn a_reso_full_read_missing_a_known_record_is_confirmed_by_a_second() {
    let at = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    };
    let observed_at = at("2024-03-02T00:00:00Z");
    let page = fixture(include_bytes!(
        "../../../sources/tests/fixtures/reso_property_page2.json"
    ));
    let records = page["value"].as_array().expect("records").clone();
    let known = realty_sources::reso::parse_value(&page, observed_at)
        .expect("page")
        .listings;
    assert!(known.len() >= 2, "{known:?}");
    let missed = known[1].id.as_str().to_owned();
    let previous = PollState {
        listings: known
            .iter()
            .map(|l| (l.id.as_str().to_owned(), l.clone()))
            .collect(),
        ..PollState::default()
    };
    let answer = |records: Vec<Value>| {
        let count = records.len();
        json!({ "value": records, "@odata.count": count })
    };
    let without_it: Vec<Value> = records
        .iter()
        .filter(|r| {
            r["ListingKey"]
                .as_str()
                .is_none_or(|key| !missed.ends_with(&format!(":{key}")))
        })
        .cloned()
        .collect();
    assert_eq!(without_it.len(), records.len() - 1);
    for (second, delisted) in [(records.clone(), false), (without_it.clone(), true)] {
        let (first, second) = (answer(without_it.clone()), answer(second));
        let (base_url, requests) = serve(move |n, _| {
            if n == 1 {
                first.clone()
            } else {
                second.clone()
            }
        })
        .await;
        let endpoint = reso_endpoint(base_url, chrono::TimeDelta::hours(24));
        let (read, stats) = read_with(&endpoint, "nashville-tn", &previous, observed_at)
            .await
            .expect("read");
        assert_eq!(requests.load(Ordering::SeqCst), 2, "two full reads");
        assert_eq!(stats.reconciliations, 1);
        assert!(read.complete && read.full, "{read:?}");
        let found = read.listings.iter().any(|l| l.id.as_str() == missed);
        assert_eq!(found, !delisted, "{missed}");
        let detection = crate::detect::detect(
            &previous,
            read,
            "poll",
            observed_at,
            // One of three is past the mass-loss share: the guard is another test's.
            crate::detect::DelistingGuard { max_share: 1.0 },
        );
        let delistings: Vec<&str> = detection
            .events
            .iter()
            .filter(|e| e.kind == realty_model::listing::EventKind::Delisted)
            .map(|e| e.listing.id.as_str())
            .collect();
        assert_eq!(delistings.is_empty(), !delisted, "{delistings:?}");
    }
}

/// A RESO feed whose pages of 1,000 records go on to `records` in all, each with its own
/// key: the first read of a market (a full one) holds what a state may ([`MAX_STATE_LISTINGS`]
/// records) and fails past it, saying why, rather than hold a market of any size.
#[tokio::test]
async fn a_reso_read_holds_a_state_s_bound_of_records_and_fails_past_it() {
    use crate::detect::MAX_STATE_LISTINGS;
    let page = fixture(include_bytes!(
        "../../../sources/tests/fixtures/reso_property_page1.json"
    ));
    let record = page["value"][0].clone();
    for (records, holds) in [(MAX_STATE_LISTINGS, true), (MAX_STATE_LISTINGS + 1, false)] {
        let record = record.clone();
        let (base_url, _) = serve(move |n, _| {
            let first = (n as usize - 1) * 1_000;
            let value: Vec<Value> = (first..records.min(first + 1_000))
                .map(|i| {
                    let mut r = record.clone();
                    r["ListingKey"] = json!(format!("NSH{i:07}"));
                    r["ListingId"] = json!(i.to_string());
                    r
                })
                .collect();
            let mut answer = json!({ "value": value, "@odata.count": records });
            if first + 1_000 < records {
                answer["@odata.nextLink"] =
                    json!(format!("/Property?$top=1000&$skip={}", first + 1_000));
            }
            answer
        })
        .await;
        let endpoint = reso_endpoint(base_url.clone(), chrono::TimeDelta::hours(24));
        let read = read_with(&endpoint, "nashville-tn", &PollState::default(), Utc::now()).await;
        match read {
            Ok((read, _)) => {
                assert!(holds, "{records} records read");
                assert_eq!(read.listings.len(), records);
            }
            Err(error) => {
                assert!(!holds, "{records}: {error}");
                assert!(
                    error.to_string().contains("narrow the market's filter"),
                    "{error}"
                );
            }
        }
    }
}
