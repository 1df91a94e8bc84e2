//! The ground truth matches what the APIs serve: read every API before and after an
//! advance, and the difference is exactly what the ground truth says happened.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::client::{Client, Failure};
use crate::readers::{self, ReadStats, Seen, Snapshot};
use realty_sim::{EventKind, GroundTruthEvent, ListingStatus, MarketConfig, SimConfig, SimServer};
use serde_json::{Value, json};

const MARKETS: [(&str, &str, &str); 3] = [
    ("nashville-tn", "Nashville", "TN"),
    ("syracuse-ny", "Syracuse", "NY"),
    ("miami-fl", "Miami", "FL"),
];

async fn start() -> SimServer {
    let config = SimConfig {
        seed: 2024,
        market: MarketConfig {
            markets: MARKETS
                .iter()
                .map(|(key, _, _)| (*key).to_owned())
                .collect(),
            listings_per_market: 1_200,
            ..MarketConfig::default()
        },
        ..SimConfig::default()
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
    SimServer::start(addr, config).await.expect("server starts")
}

struct Observation {
    zillow: Snapshot,
    realtor: Snapshot,
    reso: Snapshot,
    zillow_props: Vec<Value>,
}

async fn observe(client: &Client) -> Observation {
    let mut stats = ReadStats::default();
    let mut zillow = Snapshot::new();
    let mut realtor = Snapshot::new();
    for (_, city, state) in MARKETS {
        let location = format!("{city}, {state}");
        zillow.extend(
            readers::zillow_for_sale(client, &location, &mut stats)
                .await
                .expect("zillow read"),
        );
        realtor.extend(
            readers::realtor_for_sale(client, city, state, &mut stats)
                .await
                .expect("realtor read"),
        );
    }
    let reso = readers::reso_sync(client, None, &mut stats)
        .await
        .expect("reso sync");
    // Without faults, every paged read adds up the first time.
    assert_eq!(stats.restarts, 0);
    let mut zillow_props = Vec::new();
    for (_, city, state) in MARKETS {
        let first = client
            .get(&readers::zillow_target(
                &format!("{city}, {state}"),
                0,
                Some(300_000),
                1,
            ))
            .await
            .expect("zillow page");
        zillow_props.extend(first["props"].as_array().cloned().unwrap_or_default());
    }
    Observation {
        zillow,
        realtor,
        reso,
        zillow_props,
    }
}

fn status_name(status: ListingStatus) -> String {
    status.as_str().to_owned()
}

/// Applies the events to what was seen before, checking each event against the state it
/// applies to. `live_only` drops listings that leave the market (for-sale searches).
fn replay(
    before: &Snapshot,
    events: &[GroundTruthEvent],
    id: impl Fn(&GroundTruthEvent) -> String,
    live_only: bool,
) -> Snapshot {
    let mut state = before.clone();
    for event in events {
        let key = id(event);
        match event.kind {
            EventKind::New { price, status } => {
                assert!(
                    !state.contains_key(&key),
                    "new listing {key} was already seen"
                );
                state.insert(
                    key,
                    Seen {
                        price,
                        status: status_name(status),
                    },
                );
            }
            EventKind::PriceChange { old, new } => {
                let seen = state
                    .get_mut(&key)
                    .unwrap_or_else(|| panic!("price change of unseen {key}"));
                assert_eq!(seen.price, old, "{key}: old price");
                seen.price = new;
            }
            EventKind::StatusChange { old, new } => {
                let seen = state
                    .get_mut(&key)
                    .unwrap_or_else(|| panic!("status change of unseen {key}"));
                assert_eq!(seen.status, status_name(old), "{key}: old status");
                seen.status = status_name(new);
            }
            EventKind::Delisted { old, new } => {
                let seen = state
                    .get_mut(&key)
                    .unwrap_or_else(|| panic!("delisting of unseen {key}"));
                assert_eq!(seen.status, status_name(old), "{key}: old status");
                if live_only {
                    state.remove(&key);
                } else {
                    seen.status = status_name(new);
                }
            }
        }
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_apis_serve_changes_exactly_as_the_ground_truth_says() {
    let server = start().await;
    let client = Client::naive(server.addr());

    // Some history first, then the observation window (t1, t2].
    let advanced = client
        .post("/control/advance", &json!({"hours": 3}))
        .await
        .expect("advance");
    let t1 = advanced["now"].as_str().expect("now").to_owned();
    let before = observe(&client).await;

    let advanced = client
        .post("/control/advance", &json!({"hours": 30}))
        .await
        .expect("advance");
    let t2 = advanced["now"].as_str().expect("now").to_owned();
    assert!(advanced["events"].as_u64().is_some_and(|n| n > 0));
    let after = observe(&client).await;

    let truth = client
        .get(&format!(
            "/control/ground-truth?from={}&to={}",
            readers::percent_encode(&t1),
            readers::percent_encode(&t2)
        ))
        .await
        .expect("ground truth");
    let events: Vec<GroundTruthEvent> =
        serde_json::from_value(truth["events"].clone()).expect("ground truth events");
    assert_eq!(truth["count"].as_u64(), Some(events.len() as u64));
    assert_eq!(
        events.len() as u64,
        advanced["events"].as_u64().unwrap_or(0)
    );
    let kinds: BTreeSet<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds.len(), 4, "every kind of event happens: {kinds:?}");
    let window = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .expect("RFC 3339 time")
            .with_timezone(&chrono::Utc)
    };
    let (from, to) = (window(&t1), window(&t2));
    assert!(events.iter().all(|e| e.at > from && e.at <= to));

    // Each API, replayed from its first observation through the ground truth, lands on its
    // second observation exactly: nothing missing, nothing extra, nothing else changed.
    assert_eq!(
        replay(&before.zillow, &events, |e| e.ids.zpid.clone(), true),
        after.zillow
    );
    assert_eq!(
        replay(
            &before.realtor,
            &events,
            |e| e.ids.realtor_property_id.clone(),
            true
        ),
        after.realtor
    );
    assert_eq!(
        replay(
            &before.reso,
            &events,
            |e| e.ids.reso_listing_key.clone(),
            false
        ),
        after.reso
    );
    // And something did change in each.
    assert_ne!(before.zillow, after.zillow);
    assert_ne!(before.realtor, after.realtor);
    assert_ne!(before.reso, after.reso);

    // An incremental RESO sync from t1 returns exactly the listings the events touched.
    let mut stats = ReadStats::default();
    let changed = readers::reso_sync(&client, Some(&t1), &mut stats)
        .await
        .expect("incremental sync");
    let touched: BTreeSet<String> = events
        .iter()
        .map(|e| e.ids.reso_listing_key.clone())
        .collect();
    assert_eq!(changed.keys().cloned().collect::<BTreeSet<_>>(), touched);

    // Zillow's priceChange is the signed size of the listing's last change.
    let last_change = |zpid: &str| {
        server.handle().with_market(|market| {
            market
                .all_listings()
                .find(|l| l.ids.zpid == zpid)
                .map(|l| l.last_price_change.map(|c| c.signed_amount()))
        })
    };
    let mut with_change = 0;
    for prop in &after.zillow_props {
        let zpid = prop["zpid"].as_str().expect("zpid");
        let expected = last_change(zpid).expect("listing exists");
        assert_eq!(prop["priceChange"].as_i64(), expected, "{zpid}");
        with_change += usize::from(expected.is_some());
    }
    assert!(with_change > 0);

    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ground_truth_endpoint_filters_and_validates() {
    let server = start().await;
    let client = Client::naive(server.addr());
    client
        .post("/control/advance", &json!({"minutes": 600}))
        .await
        .expect("advance");
    let all = client
        .get("/control/ground-truth")
        .await
        .expect("all events");
    let count = all["count"].as_u64().expect("count");
    assert!(count > 0);
    let miami = client
        .get("/control/ground-truth?market=miami-fl")
        .await
        .expect("miami events");
    let miami_events = miami["events"].as_array().expect("events");
    assert!(!miami_events.is_empty() && (miami_events.len() as u64) < count);
    assert!(miami_events.iter().all(|e| e["market"] == "miami-fl"));
    let in_process = server.handle().ground_truth(
        server.handle().with_market(|m| m.start()),
        server.handle().now(),
    );
    assert_eq!(in_process.len() as u64, count);

    // Rentals have a ground truth of their own.
    let rentals = client
        .get("/control/ground-truth?offer=rent")
        .await
        .expect("rental events");
    let rental_events = rentals["events"].as_array().expect("events");
    let in_process = server.handle().rental_ground_truth(
        server.handle().with_market(|m| m.start()),
        server.handle().now(),
    );
    assert!(!rental_events.is_empty());
    assert_eq!(rental_events.len(), in_process.len());
    assert_eq!(rental_events[0]["ids"]["zpid"], in_process[0].ids.zpid);
    for bad in [
        "/control/ground-truth?from=yesterday",
        "/control/ground-truth?from=2030-01-01T00:00:00Z&to=2025-01-01T00:00:00Z",
        "/control/ground-truth?offer=lease",
    ] {
        assert_eq!(client.get(bad).await, Err(Failure::Status(400)), "{bad}");
    }
    server.shutdown().await.expect("shutdown");
}
