//! Fault modes: each happens when enabled and never when disabled, and a careful client
//! still reads every listing with all of them on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::client::{Client, Failure, SimHttp, reso_token};
use crate::readers::{self, PagingCheck, ReadStats, Seen, Snapshot};
use realty_sim::{FaultConfig, FaultKind, ListingStatus, MarketConfig, SimConfig, SimServer};
use serde_json::json;

/// A slow answer takes this long; the clients give up after a second, far longer than a
/// clean answer takes even on a busy machine, so only slow faults time out.
const SLOW_DELAY: Duration = Duration::from_millis(2_000);
const CLIENT_TIMEOUT: Duration = Duration::from_millis(1_000);

async fn start(faults: FaultConfig, seed: u64) -> SimServer {
    start_with(faults, seed, 500).await
}

async fn start_with(faults: FaultConfig, seed: u64, listings_per_market: u32) -> SimServer {
    let config = SimConfig {
        seed,
        market: MarketConfig {
            markets: vec!["cleveland-oh".into(), "austin-tx".into()],
            listings_per_market,
            ..MarketConfig::default()
        },
        faults,
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
    SimServer::start(addr, config).await.expect("server starts")
}

fn only(kind: FaultKind, probability: f64) -> FaultConfig {
    let mut faults = FaultConfig {
        slow_delay: SLOW_DELAY,
        ..FaultConfig::none()
    };
    faults.set(kind, probability);
    faults
}

/// What a client saw when it asked once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Symptom {
    Fine,
    RateLimitedWithRetryAfter,
    ServerError,
    TimedOut,
    TruncatedJson,
    MalformedJson,
    /// Not JSON, seen in a paged read (which does not tell truncated from malformed).
    BrokenJson,
    PageShift,
    Other,
}

/// The listing-API requests one round of the tests sends: Zillow and RESO pages and
/// Realtor.com offsets.
fn requests() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut requests = Vec::new();
    for location in ["Cleveland, OH", "Austin, TX"] {
        for page in 1..=6 {
            requests.push((
                "GET",
                readers::zillow_target(location, 0, None, page),
                Vec::new(),
            ));
        }
    }
    for (city, state) in [("Cleveland", "OH"), ("Austin", "TX")] {
        for offset in [0, 50, 100, 150] {
            let body = json!({"city": city, "state_code": state, "limit": 50, "offset": offset});
            requests.push((
                "POST",
                "/properties/v3/list".to_owned(),
                body.to_string().into_bytes(),
            ));
        }
    }
    for skip in [0, 100, 200, 300] {
        requests.push((
            "GET",
            format!("/reso/odata/Property?$filter=ModificationTimestamp%20ge%201970-01-01T00%3A00%3A00Z&$top=100&$skip={skip}"),
            Vec::new(),
        ));
    }
    requests
}

async fn symptom_of(http: &SimHttp, method: &str, target: &str, body: &[u8]) -> Symptom {
    let auth = format!("Bearer {}", reso_token());
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let response = match http
        .send(method, target, &headers, body, CLIENT_TIMEOUT)
        .await
    {
        Ok(response) => response,
        Err(error) if error.is_timeout() => return Symptom::TimedOut,
        Err(_) => return Symptom::Other,
    };
    match response.status {
        200 => {}
        429 if response.header("retry-after").is_some() => {
            return Symptom::RateLimitedWithRetryAfter;
        }
        500..=599 => return Symptom::ServerError,
        _ => return Symptom::Other,
    }
    if response.json().is_ok() {
        return Symptom::Fine;
    }
    // The same request again until it is answered properly (later attempts never fault):
    // a truncated body is a prefix of the real one, a malformed one is not.
    let mut clean = None;
    for _ in 0..10 {
        let retry = http
            .send(method, target, &headers, body, Duration::from_secs(5))
            .await;
        if let Ok(r) = retry
            && r.status == 200
            && r.json().is_ok()
        {
            clean = Some(r.body);
            break;
        }
    }
    match clean {
        Some(clean) if clean.starts_with(&response.body) && clean.len() > response.body.len() => {
            Symptom::TruncatedJson
        }
        Some(_) => Symptom::MalformedJson,
        None => Symptom::Other,
    }
}

/// Sends every request once and reads two paging sessions naively; counts what it saw.
async fn survey(server: &SimServer) -> BTreeMap<Symptom, u32> {
    let addr = server.addr();
    let http = SimHttp::new(addr);
    let mut seen = BTreeMap::new();
    for (method, target, body) in requests() {
        *seen
            .entry(symptom_of(&http, method, &target, &body).await)
            .or_insert(0) += 1;
    }
    // Naive paged reads: a page shift shows as pages that do not add up.
    let naive = Client {
        timeout: CLIENT_TIMEOUT,
        ..Client::naive(addr)
    };
    let paged_symptom = |check: &PagingCheck| {
        if check.consistent() {
            Symptom::Fine
        } else {
            Symptom::PageShift
        }
    };
    let failed_symptom = |failure: Failure| match failure {
        Failure::Timeout => Symptom::TimedOut,
        Failure::Status(429) => Symptom::RateLimitedWithRetryAfter,
        Failure::Status(500..=599) => Symptom::ServerError,
        Failure::NotJson => Symptom::BrokenJson,
        _ => Symptom::Other,
    };
    for location in ["Cleveland, OH", "Austin, TX"] {
        for band in [(0, Some(150_000)), (150_001, None)] {
            let symptom = match readers::zillow_pages(&naive, location, band.0, band.1).await {
                Ok((_, check)) => paged_symptom(&check),
                Err(failure) => failed_symptom(failure),
            };
            *seen.entry(symptom).or_insert(0) += 1;
        }
    }
    for (city, state) in [("Cleveland", "OH"), ("Austin", "TX")] {
        let symptom = match readers::realtor_pages(&naive, city, state, 40).await {
            Ok((_, check)) => paged_symptom(&check),
            Err(failure) => failed_symptom(failure),
        };
        *seen.entry(symptom).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_faults_every_answer_is_clean() {
    let server = start(FaultConfig::none(), 5).await;
    let seen = survey(&server).await;
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        vec![&Symptom::Fine],
        "{seen:?}"
    );
    assert!(server.handle().faults_served().values().all(|&n| n == 0));
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_mode_happens_when_enabled_and_no_other() {
    let cases = [
        (FaultKind::RateLimit, Symptom::RateLimitedWithRetryAfter),
        (FaultKind::ServerError, Symptom::ServerError),
        (FaultKind::Slow, Symptom::TimedOut),
        (FaultKind::Truncated, Symptom::TruncatedJson),
        (FaultKind::Malformed, Symptom::MalformedJson),
        (FaultKind::PageShift, Symptom::PageShift),
    ];
    for (kind, symptom) in cases {
        // Fewer slow answers keep the test quick: each costs a client timeout.
        let probability = if kind == FaultKind::Slow { 0.25 } else { 0.5 };
        let server = start(only(kind, probability), 6).await;
        let seen = survey(&server).await;
        assert!(
            seen.get(&symptom).is_some_and(|&n| n > 0),
            "{kind:?}: {seen:?}"
        );
        let broken_json_expected = matches!(kind, FaultKind::Truncated | FaultKind::Malformed);
        for other in seen.keys() {
            assert!(
                *other == symptom
                    || *other == Symptom::Fine
                    || (*other == Symptom::BrokenJson && broken_json_expected),
                "{kind:?} enabled, but also saw {other:?}: {seen:?}"
            );
        }
        let served = server.handle().faults_served();
        assert!(served[&kind] > 0, "{kind:?}: {served:?}");
        assert!(
            served.iter().all(|(k, &n)| *k == kind || n == 0),
            "{kind:?}: {served:?}"
        );
        server.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_repeat_for_a_seed() {
    let mut runs = Vec::new();
    // Slow answers are left out: only their timing would show, at a second each.
    let faults = FaultConfig {
        slow: 0.0,
        ..FaultConfig::uniform(0.1)
    };
    for _ in 0..2 {
        let server = start(faults.clone(), 8).await;
        let http = SimHttp::new(server.addr());
        let mut statuses = Vec::new();
        for (method, target, body) in requests() {
            let auth = format!("Bearer {}", reso_token());
            let headers = [("Authorization", auth.as_str())];
            let answer = http
                .send(method, &target, &headers, &body, CLIENT_TIMEOUT)
                .await;
            statuses.push(match answer {
                Ok(response) => format!("{} {}", response.status, response.body.len()),
                Err(error) => error.to_string(),
            });
        }
        runs.push(statuses);
        server.shutdown().await.expect("shutdown");
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].iter().any(|s| !s.starts_with("200")),
        "{:?}",
        runs[0]
    );
}

/// What the simulator holds for sale (for Zillow and Realtor.com) and in total (RESO).
fn truth(server: &SimServer) -> (Snapshot, Snapshot, Snapshot) {
    server.handle().with_market(|market| {
        let seen = |status: ListingStatus, price: u64| Seen {
            price,
            status: status.as_str().to_owned(),
        };
        let mut zillow = Snapshot::new();
        let mut realtor = Snapshot::new();
        let mut reso = Snapshot::new();
        for listing in market.all_listings() {
            let now = seen(listing.status, listing.list_price);
            if listing.status.is_live() {
                zillow.insert(listing.ids.zpid.clone(), now.clone());
                realtor.insert(listing.ids.realtor_property_id.clone(), now.clone());
            }
            reso.insert(listing.ids.reso_listing_key.clone(), now);
        }
        (zillow, realtor, reso)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_careful_client_reads_every_listing_with_all_faults_on() {
    let faults = FaultConfig {
        slow_delay: SLOW_DELAY,
        ..FaultConfig::uniform(0.08)
    };
    let server = start_with(faults, 9, 300).await;
    server
        .handle()
        .advance(chrono::TimeDelta::hours(6))
        .expect("advance");
    let client = Client::careful(server.addr(), CLIENT_TIMEOUT);
    let mut stats = ReadStats::default();
    let mut zillow = Snapshot::new();
    let mut realtor = Snapshot::new();
    for (city, state) in [("Cleveland", "OH"), ("Austin", "TX")] {
        zillow.extend(
            readers::zillow_for_sale(&client, &format!("{city}, {state}"), &mut stats)
                .await
                .expect("zillow read"),
        );
        realtor.extend(
            readers::realtor_for_sale(&client, city, state, &mut stats)
                .await
                .expect("realtor read"),
        );
    }
    let reso = readers::reso_sync(&client, None, &mut stats)
        .await
        .expect("reso sync");

    let (want_zillow, want_realtor, want_reso) = truth(&server);
    assert_eq!(zillow, want_zillow);
    assert_eq!(realtor, want_realtor);
    assert_eq!(reso, want_reso);

    // The faults really were there.
    let served = server.handle().faults_served();
    for kind in FaultKind::DETECTABLE {
        assert!(served[&kind] > 0, "{kind:?} never served: {served:?}");
    }
    assert!(
        stats.restarts > 0,
        "a page shift made the reader re-read: {stats:?}"
    );
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_answered_after_its_faulty_attempts() {
    // Every attempt that may fault does; the next one is answered.
    let faults = FaultConfig {
        max_faulty_attempts: 2,
        ..only(FaultKind::ServerError, 1.0)
    };
    let server = start(faults, 10).await;
    let naive = Client::naive(server.addr());
    let target = readers::zillow_target("Austin, TX", 0, None, 1);
    for _ in 0..2 {
        assert!(matches!(
            naive.get(&target).await,
            Err(Failure::Status(500..=599))
        ));
    }
    assert!(naive.get(&target).await.is_ok());
    // Advancing time starts a new round of decisions.
    server
        .handle()
        .advance(chrono::TimeDelta::minutes(5))
        .expect("advance");
    assert!(matches!(
        naive.get(&target).await,
        Err(Failure::Status(500..=599))
    ));
    server.shutdown().await.expect("shutdown");
}
