//! The HTTP surface: shapes like the real APIs', byte-identical for a seed, control
//! endpoints, authorisation, encoding and errors.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::net::SocketAddr;
use std::time::Duration;

use crate::client::{Client, Failure, HttpResponse, SimHttp, reso_token};
use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(30);

async fn start(seed: u64, markets: &[&str], listings: u32) -> SimServer {
    let config = SimConfig {
        seed,
        market: MarketConfig {
            markets: markets.iter().map(|m| (*m).to_owned()).collect(),
            listings_per_market: listings,
            ..MarketConfig::default()
        },
        faults: FaultConfig::none(),
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
    SimServer::start(addr, config).await.expect("server starts")
}

async fn raw(
    server: &SimServer,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    SimHttp::new(server.addr())
        .send(method, target, headers, body, TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/real-payloads/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// JSON type names a field takes across records (`null` included).
fn field_types(records: &[Value]) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut types: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for record in records {
        for (key, value) in record.as_object().into_iter().flatten() {
            let name = match value {
                Value::Null => "null",
                Value::Bool(_) => "bool",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            types.entry(key.clone()).or_default().insert(name);
        }
    }
    types
}

/// Every field the real records have with a value, ours have with a value of the same JSON
/// type (ours may also be null where the real ones happened not to be).
fn assert_same_fields(real: &[Value], ours: &[Value], what: &str, optional: &[&str]) {
    let real_types = field_types(real);
    let our_types = field_types(ours);
    for (key, types) in &real_types {
        if optional.contains(&key.as_str()) {
            continue;
        }
        let ours = our_types
            .get(key)
            .unwrap_or_else(|| panic!("{what}: field {key} missing"));
        for kind in types.iter().filter(|t| **t != "null") {
            assert!(
                ours.contains(kind),
                "{what}.{key}: real {types:?}, ours {ours:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_have_the_shape_of_the_real_apis() {
    let server = start(1, &["nashville-tn", "syracuse-ny", "los-angeles-ca"], 1_500).await;
    server
        .handle()
        .advance(chrono::TimeDelta::days(3))
        .expect("advance");
    let client = Client::naive(server.addr());

    // Zillow: the envelope and every prop field of both real captures.
    let real = fixture("zillow_propertyExtendedSearch_37201_nashville_tn.json");
    let ours = client
        .get("/propertyExtendedSearch?location=Nashville%2C%20TN&page=2&status_type=ForSale")
        .await
        .expect("zillow page");
    for key in [
        "props",
        "resultsPerPage",
        "totalPages",
        "totalResultCount",
        "currentPage",
        "schools",
    ] {
        assert!(real.get(key).is_some() && ours.get(key).is_some(), "{key}");
    }
    assert_eq!(ours["resultsPerPage"], 41);
    assert_eq!(ours["currentPage"], 2);
    assert_eq!(ours["totalPages"], 20, "a big market overflows 20 pages");
    assert!(ours["totalResultCount"].as_u64().is_some_and(|n| n > 820));
    let mut our_props: Vec<Value> = Vec::new();
    for location in ["Nashville%2C%20TN", "Syracuse%2C%20NY", "13204", "37201"] {
        for page in 1..=3 {
            let page = client
                .get(&format!(
                    "/propertyExtendedSearch?location={location}&page={page}"
                ))
                .await
                .expect("zillow page");
            our_props.extend(page["props"].as_array().cloned().unwrap_or_default());
        }
    }
    let nashville_props = real["props"].as_array().cloned().unwrap_or_default();
    // `unit` only exists for units; `carouselPhotos` and friends are always null.
    assert_same_fields(&nashville_props, &our_props, "zillow prop", &["unit"]);
    let syracuse = fixture("zillow_propertyExtendedSearch_props_syracuse_ny.json");
    let syracuse_props = syracuse.as_array().cloned().unwrap_or_default();
    assert_same_fields(
        &syracuse_props,
        &our_props,
        "zillow prop",
        &["unit", "dateSold"],
    );
    // The faithful quirks: daysOnZillow as number and as string, nulls, relative detail URLs.
    let types = field_types(&our_props);
    assert_eq!(types["daysOnZillow"], BTreeSet::from(["number", "string"]));
    assert!(types["zestimate"].contains("null") && types["zestimate"].contains("number"));
    assert!(types["rentZestimate"].contains("null") && types["rentZestimate"].contains("number"));
    assert!(types["priceChange"].contains("null") && types["priceChange"].contains("number"));
    for prop in &our_props {
        let address = prop["address"].as_str().expect("address");
        let zpid = prop["zpid"].as_str().expect("zpid is a string");
        assert!(zpid.bytes().all(|b| b.is_ascii_digit()));
        assert!(prop["detailUrl"].as_str().is_some_and(
            |u| u.starts_with("/homedetails/") && u.ends_with(&format!("/{zpid}_zpid/"))
        ));
        let (_, state_zip) = address.rsplit_once(", ").expect("street, City, ST zip");
        let mut parts = state_zip.split(' ');
        assert!(matches!(parts.next(), Some("TN" | "NY")), "{address}");
        assert!(parts.next().is_some_and(|zip| zip.len() == 5), "{address}");
        let status = prop["listingStatus"].as_str().expect("status");
        assert!(["FOR_SALE", "PENDING"].contains(&status));
        assert!(
            [
                "SINGLE_FAMILY",
                "CONDO",
                "TOWNHOUSE",
                "MULTI_FAMILY",
                "LOT",
                "MANUFACTURED"
            ]
            .contains(&prop["propertyType"].as_str().expect("type"))
        );
    }
    for prop in our_props
        .iter()
        .filter(|p| p["address"].as_str().is_some_and(|a| a.contains("13204")))
    {
        assert!(
            prop["address"]
                .as_str()
                .is_some_and(|a| a.ends_with("Syracuse, NY 13204"))
        );
    }

    // Realtor.com: the envelope and the result fields of the real capture.
    let real = fixture("realtor_realty-in-us_properties_v3_list.json");
    let ours = client
        .post(
            "/properties/v3/list",
            &json!({"limit": 200, "offset": 0, "postal_code": "90004", "status": ["for_sale"],
                    "sort": {"direction": "desc", "field": "list_date"}}),
        )
        .await
        .expect("realtor page");
    let search = &ours["data"]["home_search"];
    assert!(search["count"].as_u64().is_some_and(|n| n > 0));
    assert!(search["total"].as_u64() >= search["count"].as_u64());
    let real_results = real["data"]["home_search"]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let our_results = search["results"].as_array().cloned().unwrap_or_default();
    // Fields about agents, brands and products the simulation has no counterpart for.
    let skipped = [
        "lead_attributes",
        "products",
        "last_sold_price",
        "last_sold_date",
        "estimate",
        "open_houses",
    ];
    assert_same_fields(&real_results, &our_results, "realtor result", &skipped);
    for nested in ["description", "flags", "location", "source"] {
        let real_nested: Vec<Value> = real_results.iter().map(|r| r[nested].clone()).collect();
        let our_nested: Vec<Value> = our_results.iter().map(|r| r[nested].clone()).collect();
        assert_same_fields(
            &real_nested,
            &our_nested,
            nested,
            &["street_view_url", "agents"],
        );
    }
    let real_address: Vec<Value> = real_results
        .iter()
        .map(|r| r["location"]["address"].clone())
        .collect();
    let our_address: Vec<Value> = our_results
        .iter()
        .map(|r| r["location"]["address"].clone())
        .collect();
    assert_same_fields(&real_address, &our_address, "location.address", &[]);
    assert!(
        our_results
            .iter()
            .all(|r| r["location"]["address"]["postal_code"] == "90004")
    );
    // list_date is newest first, with Realtor.com's microsecond format.
    let dates: Vec<&str> = our_results
        .iter()
        .filter_map(|r| r["list_date"].as_str())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
    assert!(
        dates
            .iter()
            .all(|d| d.len() == "2024-02-15T04:07:56.000000Z".len())
    );

    // RESO: OData envelope and Data Dictionary names.
    let page = client
        .get("/reso/odata/Property?$filter=ModificationTimestamp%20ge%201970-01-01T00%3A00%3A00Z&$top=50")
        .await
        .expect("reso page");
    assert_eq!(
        page["@odata.context"],
        "http://sim.test/reso/odata/$metadata#Property"
    );
    assert!(
        page["@odata.nextLink"]
            .as_str()
            .is_some_and(|l| l.starts_with("http://sim.test/reso/odata/Property?"))
    );
    let record = &page["value"][0];
    for field in [
        "ListingKey",
        "ListingId",
        "ListPrice",
        "OriginalListPrice",
        "PreviousListPrice",
        "PriceChangeTimestamp",
        "StandardStatus",
        "ModificationTimestamp",
        "OnMarketDate",
        "PropertyType",
        "LivingArea",
        "LivingAreaUnits",
        "BedroomsTotal",
        "BathroomsTotalInteger",
        "UnparsedAddress",
        "City",
        "StateOrProvince",
        "PostalCode",
        "Latitude",
        "Longitude",
        "DaysOnMarket",
    ] {
        assert!(record.get(field).is_some(), "RESO field {field} missing");
    }
    server.shutdown().await.expect("shutdown");
}

/// The requests of a short session, control calls included.
fn session() -> Vec<(&'static str, String, Value)> {
    let zillow = |location: &str, page: u32| {
        (
            "GET",
            format!("/propertyExtendedSearch?location={location}&page={page}"),
            Value::Null,
        )
    };
    vec![
        zillow("Austin%2C%20TX", 1),
        zillow("Austin%2C%20TX", 3),
        ("POST", "/properties/v3/list".into(), json!({"city": "Austin", "state_code": "TX", "limit": 200, "offset": 200})),
        ("GET", "/reso/odata/Property?$filter=ModificationTimestamp%20ge%201970-01-01T00%3A00%3A00Z&$top=300&$skip=300".into(), Value::Null),
        ("POST", "/control/advance".into(), json!({"hours": 7.5})),
        zillow("78704", 1),
        zillow("Cleveland%2C%20OH&home_type=Houses&minPrice=50000&maxPrice=150000&sort=Price_High_Low", 2),
        ("POST", "/properties/v3/list".into(), json!({"postal_code": "44102", "status": ["sold", "off_market"]})),
        ("GET", "/reso/odata/Property?$filter=ModificationTimestamp%20gt%202025-03-03T12:00:00Z%20and%20City%20eq%20%27Cleveland%27&$top=200".into(), Value::Null),
        ("POST", "/control/advance".into(), json!({"to": "2025-03-05T00:00:00Z"})),
        ("GET", "/control/ground-truth".into(), Value::Null),
        ("GET", "/control/state".into(), Value::Null),
        ("GET", "/control/markets".into(), Value::Null),
    ]
}

async fn replay_session(server: &SimServer) -> Vec<Vec<u8>> {
    let auth = format!("Bearer {}", reso_token());
    let mut bodies = Vec::new();
    for (method, target, body) in session() {
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let response = raw(server, method, &target, &[("Authorization", &auth)], &body).await;
        assert_eq!(
            response.status,
            200,
            "{method} {target}: {}",
            String::from_utf8_lossy(&response.body)
        );
        bodies.push(response.body);
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_serves_the_same_bytes() {
    let markets = ["austin-tx", "cleveland-oh"];
    let first = start(77, &markets, 900).await;
    let second = start(77, &markets, 900).await;
    let other = start(78, &markets, 900).await;
    let a = replay_session(&first).await;
    let b = replay_session(&second).await;
    let c = replay_session(&other).await;
    assert_eq!(a, b);
    // Another seed: other listings, events and counts in every answer.
    for (position, (x, y)) in a.iter().zip(&c).enumerate() {
        assert_ne!(x, y, "request {position} of the session");
    }
    let truth: Value = serde_json::from_slice(&a[10]).expect("ground truth");
    assert!(truth["count"].as_u64().is_some_and(|n| n > 100));
    for server in [first, second, other] {
        server.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_endpoints_advance_and_report() {
    let server = start(3, &["denver-co", "boston-ma"], 400).await;
    let client = Client::naive(server.addr());
    let state = client.get("/control/state").await.expect("state");
    assert_eq!(state["seed"], 3);
    assert_eq!(state["now"], "2025-03-03T12:00:00.000Z");
    assert_eq!(state["start"], state["now"]);
    let markets = state["markets"].as_array().expect("markets");
    assert_eq!(markets.len(), 2);
    assert!(
        markets
            .iter()
            .all(|m| m["active"].as_u64().unwrap_or(0) + m["pending"].as_u64().unwrap_or(0) == 400)
    );

    let advanced = client
        .post("/control/advance", &json!({"minutes": 90}))
        .await
        .expect("advance");
    assert_eq!(advanced["previous"], "2025-03-03T12:00:00.000Z");
    assert_eq!(advanced["now"], "2025-03-03T13:30:00.000Z");
    let advanced = client
        .post("/control/advance", &json!({"seconds": 30}))
        .await
        .expect("advance");
    assert_eq!(advanced["now"], "2025-03-03T13:30:30.000Z");
    let advanced = client
        .post(
            "/control/advance",
            &json!({"to": "2025-03-04T00:00:00+01:00"}),
        )
        .await
        .expect("advance");
    assert_eq!(advanced["now"], "2025-03-03T23:00:00.000Z");
    assert_eq!(
        server.handle().now().to_rfc3339(),
        "2025-03-03T23:00:00+00:00"
    );
    let state = client.get("/control/state").await.expect("state");
    assert_eq!(
        state["events"].as_u64(),
        Some(server.handle().with_market(|m| m.events().len() as u64))
    );

    for bad in [
        json!({"hours": -1}),
        json!({"fortnights": 1}),
        json!({"to": "2025-03-01T00:00:00Z"}),
        json!({"to": "soon"}),
        json!({"hours": 24 * 500}),
        json!("1 hour"),
    ] {
        assert_eq!(
            client.post("/control/advance", &bad).await,
            Err(Failure::Status(400)),
            "{bad}"
        );
    }
    let bad_json = raw(&server, "POST", "/control/advance", &[], b"{hours").await;
    assert_eq!(bad_json.status, 400);

    let markets = client.get("/control/markets").await.expect("markets");
    let denver = markets
        .as_array()
        .and_then(|m| m.iter().find(|m| m["key"] == "denver-co"))
        .expect("denver listed");
    assert_eq!(denver["zillow_location"], "Denver, CO");
    assert!(
        denver["zips"]
            .as_array()
            .is_some_and(|z| z.iter().any(|zip| zip == "80202"))
    );
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reso_needs_a_bearer_token_and_honours_gzip() {
    let server = start(4, &["chicago-il"], 300).await;
    let target = "/reso/odata/Property?$filter=ModificationTimestamp%20ge%201970-01-01T00%3A00%3A00Z&$top=20";
    for headers in [
        vec![],
        vec![("Authorization", "Bearer ")],
        vec![("Authorization", "Basic dXNlcjpwdw==")],
        vec![("Authorization", "Bearer anything")],
    ] {
        let response = raw(&server, "GET", target, &headers, b"").await;
        assert_eq!(response.status, 401, "{headers:?}");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
    // Client credentials at the token endpoint give the token the API takes.
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        realty_sim::RESO_CLIENT_ID,
        realty_sim::RESO_CLIENT_SECRET,
        realty_sim::RESO_SCOPE
    );
    let form_type = [("Content-Type", "application/x-www-form-urlencoded")];
    let granted = raw(&server, "POST", "/reso/token", &form_type, form.as_bytes()).await;
    assert_eq!(granted.status, 200);
    let grant: Value = serde_json::from_slice(&granted.body).expect("json");
    let auth = format!("Bearer {}", grant["access_token"].as_str().expect("token"));
    let wrong = raw(
        &server,
        "POST",
        "/reso/token",
        &form_type,
        form.replace("realty-sim-secret", "guess").as_bytes(),
    )
    .await;
    assert_eq!(wrong.status, 401);
    // Without a $filter, even with a token: 400.
    let unfiltered = raw(
        &server,
        "GET",
        "/reso/odata/Property?$top=20",
        &[("Authorization", auth.as_str())],
        b"",
    )
    .await;
    assert_eq!(unfiltered.status, 400);
    let plain = raw(
        &server,
        "GET",
        target,
        &[("Authorization", auth.as_str())],
        b"",
    )
    .await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None);
    let zipped = raw(
        &server,
        "GET",
        target,
        &[
            ("Authorization", auth.as_str()),
            ("Accept-Encoding", "gzip, deflate"),
        ],
        b"",
    )
    .await;
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(zipped.body.as_slice())
        .read_to_end(&mut unzipped)
        .expect("valid gzip");
    assert_eq!(unzipped, plain.body);
    assert!(zipped.body.len() < plain.body.len());
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_apis_error_answers() {
    let server = start(5, &["tampa-fl"], 200).await;
    let bearer = format!("Bearer {}", reso_token());
    let auth = [("Authorization", bearer.as_str())];
    for (method, target, body, status) in [
        ("GET", "/propertyExtendedSearch", &b""[..], 400),
        (
            "GET",
            "/propertyExtendedSearch?location=Tampa%2C%20FL&page=21",
            b"",
            400,
        ),
        (
            "GET",
            "/propertyExtendedSearch?location=Tampa%2C%20FL&home_type=Igloos",
            b"",
            400,
        ),
        ("POST", "/properties/v3/list", b"{\"city\": \"Tampa\"}", 400),
        (
            "POST",
            "/properties/v3/list",
            b"{\"postal_code\": \"33602\", \"limit\": 500}",
            400,
        ),
        ("POST", "/properties/v3/list", b"<xml/>", 400),
        (
            "GET",
            "/reso/odata/Property?$filter=City%20eq%20%27Tampa%27%20or%20City%20eq%20%27Miami%27",
            b"",
            400,
        ),
        (
            "GET",
            "/reso/odata/Property?$filter=ModificationTimestamp%20ge%201970-01-01T00%3A00%3A00Z&$top=9999",
            b"",
            400,
        ),
        ("GET", "/reso/odata/Property?$top=10", b"", 400),
        ("GET", "/propertyDetail?zpid=1", b"", 404),
        (
            "DELETE",
            "/propertyExtendedSearch?location=Tampa%2C%20FL",
            b"",
            405,
        ),
    ] {
        let response = raw(&server, method, target, &auth, body).await;
        assert_eq!(response.status, status, "{method} {target}");
        if status != 405 {
            let error = response
                .json()
                .unwrap_or_else(|_| panic!("{target}: JSON error body"));
            assert!(
                error.get("message").is_some() || error["error"]["message"].is_string(),
                "{error}"
            );
        }
    }
    // An unknown place is an empty result, not an error.
    let client = Client::naive(server.addr());
    let nowhere = client
        .get("/propertyExtendedSearch?location=Gotham%2C%20NY")
        .await
        .expect("empty search");
    assert_eq!(nowhere["totalResultCount"], 0);
    assert_eq!(nowhere["props"], json!([]));
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_slow_responses_short_and_frees_the_port() {
    let config = SimConfig {
        seed: 6,
        market: MarketConfig {
            markets: vec!["columbus-oh".into()],
            listings_per_market: 100,
            ..MarketConfig::default()
        },
        faults: FaultConfig {
            slow: 1.0,
            slow_delay: Duration::from_secs(120),
            ..FaultConfig::none()
        },
    };
    let server = SimServer::start("127.0.0.1:0".parse().expect("address"), config)
        .await
        .expect("server starts");
    let addr = server.addr();
    let http = SimHttp::new(addr);
    let pending = tokio::spawn(async move {
        http.send(
            "GET",
            "/propertyExtendedSearch?location=Columbus%2C%20OH",
            &[],
            b"",
            TIMEOUT,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    server.shutdown().await.expect("shutdown");
    assert!(started.elapsed() < Duration::from_secs(10));
    let answer = pending.await.expect("request task");
    assert!(answer.is_ok_and(|r| r.status == 503));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
