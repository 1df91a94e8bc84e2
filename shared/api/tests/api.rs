//! The market API over in-memory stores filled by the real metrics workflow from a real
//! Zillow page: every route of the OpenAPI document answers with a body its schema accepts,
//! bad input is a 4xx with a message, and a market's answer is its `market_report`.

// Test code: exempt from the 80-line bar (clippy.toml).
#![allow(clippy::too_many_lines)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use realty_alerts::feed::{AlertFeedItem, feed_key, feed_sort_key};
use realty_alerts::message::AlertBody;
use realty_alerts::rules::AlertKind;
use realty_api::routes::ApiRequest;
use realty_api::views::market_report;
use realty_api::{OPENAPI, respond};
use realty_metrics::memory::{KeyedItem, MemoryStores};
use realty_metrics::process::{InputRecord, process_batch};
use realty_model::listing::ListingEvent;
use realty_model::markets::ConfigStore;
use realty_model::markets::MemoryConfigStore;
use realty_model::markets::SourceKind;
use realty_model::markets::{PollRecord, WatchedMarket};
use realty_sources::normalize_file;
use serde_json::Value;

fn observed_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 11, 9, 30, 0)
        .single()
        .expect("a valid time")
}

/// Stores holding what the metrics function makes of the real Nashville page.
async fn stores() -> (MemoryStores, MemoryConfigStore) {
    let page = normalize_file(
        SourceKind::Zillow,
        include_bytes!(
            "../../sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
        ),
        observed_at(),
    )
    .expect("the real page parses");
    let records: Vec<InputRecord> = page
        .listings
        .into_iter()
        .enumerate()
        .map(|(i, listing)| InputRecord {
            sequence_number: format!("{:020}", i + 1),
            data: ListingEvent::new_listing(listing, "poll-1")
                .encode()
                .expect("encodes"),
            approximate_arrival: observed_at(),
        })
        .collect();
    let markets = MemoryStores::default();
    let outcome = process_batch(&markets.ports(), "shardId-0", &records).await;
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    let config = MemoryConfigStore::default();
    for (market, sources) in [
        ("nashville-tn", "zillow"),
        ("syracuse-ny", "zillow,realtor"),
    ] {
        config
            .put_market(&WatchedMarket {
                market: market.into(),
                sources: sources.split(',').map(str::to_owned).collect(),
                min_price: None,
                max_price: None,
                home_types: Vec::new(),
                poll_every_minutes: 30,
                reso_filter: None,
                rentals: false,
                watched_since: Default::default(),
            })
            .await
            .expect("stored");
    }
    config
        .record_poll(&PollRecord {
            source: "zillow".into(),
            market: "nashville-tn".into(),
            polled_at: observed_at(),
            requests: 2,
            last_event_at: Some(observed_at()),
            failed_since: None,
        })
        .await
        .expect("stored");
    for (minute, kind) in [(0, AlertKind::PriceDrop), (5, AlertKind::Undervalued)] {
        put_alert(
            &markets,
            "nashville-tn",
            kind,
            observed_at() + Duration::minutes(minute),
        );
    }
    (markets, config)
}

/// An alert in the feed, as the alerts function keeps it.
fn put_alert(stores: &MemoryStores, market: &str, kind: AlertKind, at: DateTime<Utc>) {
    let body = AlertBody {
        alert_type: kind,
        new_listing: false,
        alert_id: format!("{}:zillow:42:{}", kind.as_str(), at.timestamp()),
        listing_id: "zillow:42".into(),
        address: "740 1st Ave N, Nashville, TN 37201".into(),
        market: market.into(),
        zip: Some("37201".into()),
        property_type: "condo".into(),
        currency: "USD".into(),
        old_price: 500_000.0,
        new_price: 400_000.0,
        drop_amount: 100_000.0,
        drop_pct: 20.0,
        price_per_sqft: Some(200.0),
        market_median_price_per_sqft: Some(300.0),
        price_per_sqft_to_median: Some(0.6667),
        median_scope: Some("city#nashville-tn#condo".into()),
        living_area_sqft: Some(2_000),
        beds: Some(2),
        baths: Some(2.0),
        url: Some("https://www.zillow.com/homedetails/42_zpid/".into()),
        observed_at: at,
    };
    let item = AlertFeedItem {
        pk: feed_key(market),
        sk: feed_sort_key(kind.as_str(), at, &body.alert_id),
        alert_type: kind,
        observed_at: at,
        body: serde_json::to_string(&body).expect("json"),
        expires_at: at.timestamp() + 30 * 86_400,
    };
    stores.keyed.lock().expect("lock").insert(
        (item.pk.clone(), item.sk.clone()),
        KeyedItem::Json(serde_json::to_value(&item).expect("json")),
    );
}

fn get(path: &str, query: &[(&str, &str)]) -> ApiRequest {
    ApiRequest {
        method: "GET".into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// The spec's path template a concrete path matches.
fn template_of<'a>(spec: &'a Value, path: &str) -> Option<&'a str> {
    let parts: Vec<&str> = path.split('/').collect();
    spec["paths"]
        .as_object()?
        .keys()
        .map(String::as_str)
        .find(|t| {
            let tparts: Vec<&str> = t.split('/').collect();
            tparts.len() == parts.len()
                && tparts
                    .iter()
                    .zip(&parts)
                    .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}')))
        })
}

/// Checks a body against the schema the spec gives the route and status.
fn check_against_spec(spec: &Value, request: &ApiRequest, status: u16, body: &str) {
    let template = template_of(spec, &request.path)
        .unwrap_or_else(|| panic!("{} is answered but not in the spec", request.path));
    let response = &spec["paths"][template]["get"]["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{} answered {status}, which the spec does not declare",
        request.path
    );
    let schema = &response["content"]["application/json"]["schema"];
    let root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": schema["$ref"].as_str().map_or("#/$defs/inline", |r| r),
        "$defs": { "inline": schema },
        "components": spec["components"],
    });
    let validator = jsonschema::validator_for(&root).expect("a valid schema");
    let value: Value = serde_json::from_str(body).expect("a JSON body");
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .take(5)
        .collect();
    assert!(
        errors.is_empty(),
        "{} {status}: {errors:?}\n{body}",
        request.path
    );
}

#[tokio::test]
async fn every_route_answers_what_the_spec_says() {
    let spec: Value = serde_json::from_str(OPENAPI).expect("the spec is JSON");
    let (markets, config) = stores().await;
    let now = observed_at();
    let good = [
        get("/markets", &[]),
        get("/markets", &[("limit", "1")]),
        get("/markets", &[("limit", "1"), ("after", "nashville-tn")]),
        get("/markets/nashville-tn", &[]),
        get("/markets/nashville-tn/history", &[]),
        get(
            "/markets/nashville-tn/history",
            &[
                ("period", "hour"),
                ("from", "2024-03-10"),
                ("to", "2024-03-11"),
            ],
        ),
        get("/markets/nashville-tn/listings", &[("kind", "price_cut")]),
        get(
            "/markets/nashville-tn/listings",
            &[("kind", "undervalued"), ("limit", "5")],
        ),
        get("/markets/nashville-tn/listings", &[("kind", "anomalous")]),
        get("/alerts", &[]),
        get(
            "/alerts",
            &[
                ("market", "nashville-tn"),
                ("type", "price_drop"),
                ("limit", "1"),
            ],
        ),
        get("/health", &[]),
        get("/openapi.json", &[]),
    ];
    let mut templates = std::collections::BTreeSet::new();
    for request in &good {
        let answer = respond(&markets, &config, request, now).await;
        assert_eq!(answer.status, 200, "{request:?}: {}", answer.body);
        if request.path != "/openapi.json" {
            check_against_spec(&spec, request, answer.status, &answer.body);
        }
        templates.insert(template_of(&spec, &request.path).expect("in the spec"));
    }
    let in_spec: std::collections::BTreeSet<&str> = spec["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(templates, in_spec, "every route of the spec is exercised");

    let bad = [
        get("/markets/Nashville-TN", &[]),
        get("/markets/nowhere-zz", &[]),
        get("/markets/nowhere-zz/history", &[]),
        get("/markets", &[("limit", "100000")]),
        get("/markets", &[("after", "../../etc")]),
        get("/markets/nashville-tn/history", &[("from", "yesterday")]),
        get(
            "/markets/nashville-tn/history",
            &[("from", "2020-01-01"), ("to", "2024-01-01")],
        ),
        get("/markets/nashville-tn/listings", &[]),
        get("/markets/nowhere-zz/listings", &[("kind", "price_cut")]),
        get("/markets/nashville-tn/listings", &[("kind", "cheap")]),
        get(
            "/markets/nashville-tn/listings",
            &[("kind", "price_cut"), ("after", "price_cut#yesterday")],
        ),
        get(
            "/markets/nashville-tn/listings",
            &[("kind", "undervalued"), ("after", "undervalued#0")],
        ),
        get(
            "/markets/nashville-tn/listings",
            &[("kind", "price_cut"), ("limit", "51")],
        ),
        get("/alerts", &[("type", "price_rise")]),
        get("/alerts", &[("before", "2024-03-11T09:30:00Z#zz")]),
        get("/alerts", &[("limit", "0")]),
        get("/alerts", &[("market", "Nashville")]),
    ];
    for request in &bad {
        let answer = respond(&markets, &config, request, now).await;
        assert!(
            (400..500).contains(&answer.status),
            "{request:?}: {} {}",
            answer.status,
            answer.body
        );
        check_against_spec(&spec, request, answer.status, &answer.body);
        let body: Value = serde_json::from_str(&answer.body).expect("json");
        assert!(
            body["error"].as_str().is_some_and(|m| m.len() > 10),
            "{body}"
        );
    }
    let unknown = respond(&markets, &config, &get("/admin", &[]), now).await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn a_market_answers_its_report_and_the_list_pages() {
    let (markets, config) = stores().await;
    let now = observed_at();
    let answer = respond(&markets, &config, &get("/markets/nashville-tn", &[]), now).await;
    let report = market_report(&markets, "nashville-tn")
        .await
        .expect("reads")
        .expect("the market has figures");
    assert_eq!(
        serde_json::from_str::<Value>(&answer.body).expect("json"),
        serde_json::to_value(&report).expect("json")
    );
    assert!(report.live.active_listings > 0);

    let first = respond(&markets, &config, &get("/markets", &[("limit", "1")]), now).await;
    let first: Value = serde_json::from_str(&first.body).expect("json");
    assert_eq!(first["markets"][0]["market"], "nashville-tn");
    assert_eq!(
        first["markets"][0]["active_listings"].as_i64(),
        Some(report.live.active_listings)
    );
    let next = first["next"].as_str().expect("a second page");
    let second = respond(
        &markets,
        &config,
        &get("/markets", &[("limit", "1"), ("after", next)]),
        now,
    )
    .await;
    let second: Value = serde_json::from_str(&second.body).expect("json");
    assert_eq!(second["markets"][0]["market"], "syracuse-ny");
    assert_eq!(second["markets"][0]["active_listings"], Value::Null);
    assert_eq!(second["next"], Value::Null);

    let health = respond(&markets, &config, &get("/health", &[]), now).await;
    let health: Value = serde_json::from_str(&health.body).expect("json");
    let by_market: BTreeMap<String, Value> = health["markets"]
        .as_array()
        .expect("markets")
        .iter()
        .map(|m| {
            (
                m["market"].as_str().unwrap_or_default().to_owned(),
                m.clone(),
            )
        })
        .collect();
    assert_eq!(by_market["nashville-tn"]["minutes_since_event"], 0);
    assert_eq!(by_market["syracuse-ny"]["last_event_at"], Value::Null);
}

#[tokio::test]
async fn alerts_page_newest_first_and_filter_by_type() {
    let (markets, config) = stores().await;
    let now = observed_at();
    let page = |query: Vec<(&'static str, String)>| {
        let request = ApiRequest {
            method: "GET".into(),
            path: "/alerts".into(),
            query: query.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        };
        let (markets, config) = (&markets, &config);
        async move {
            let answer = respond(markets, config, &request, now).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            serde_json::from_str::<Value>(&answer.body).expect("json")
        }
    };
    let first = page(vec![("limit", "1".into())]).await;
    assert_eq!(
        first["alerts"][0]["alert_type"], "undervalued",
        "newest first"
    );
    let next = first["next"].as_str().expect("a second page").to_owned();
    let second = page(vec![("limit", "1".into()), ("before", next)]).await;
    assert_eq!(second["alerts"][0]["alert_type"], "price_drop");
    assert_eq!(second["next"], Value::Null);
    let drops = page(vec![("type", "price_drop".into())]).await;
    assert_eq!(drops["alerts"].as_array().map(Vec::len), Some(1));
    let elsewhere = page(vec![("market", "syracuse-ny".into())]).await;
    assert_eq!(elsewhere["alerts"].as_array().map(Vec::len), Some(0));
}
