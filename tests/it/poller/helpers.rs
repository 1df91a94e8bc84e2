//! What the poller tests share: the simulated markets and the real poller reading them,
//! the stream's events, and a fixture API serving real payloads edited to the case.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use libtest_mimic::Failed;
use realty_aws::functions::poller::{LambdaPoller, build_poller};
use realty_model::config::StackResources;
use realty_model::listing::{EventKind, ListingEvent};
use realty_model::markets::SourceKind;
use realty_poller::config::{ApiKeys, PollerConfig};
use realty_poller::run::{PollRequest, PollSummary};
use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};
use realty_tests::TestAws;

pub(crate) const MARKETS: [&str; 2] = ["nashville-tn", "syracuse-ny"];

pub(super) async fn sim(seed: u64, faults: FaultConfig) -> Result<SimServer, Failed> {
    sim_of(seed, 400, faults).await
}

/// The simulated [`MARKETS`], `listings` live listings each.
pub(crate) async fn sim_of(
    seed: u64,
    listings: u32,
    faults: FaultConfig,
) -> Result<SimServer, Failed> {
    let config = SimConfig {
        seed,
        market: MarketConfig {
            markets: MARKETS.iter().map(|m| m.to_string()).collect(),
            listings_per_market: listings,
            ..MarketConfig::default()
        },
        faults,
    };
    Ok(SimServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await?)
}

pub(super) async fn poller(
    aws: &TestAws,
    resources: &StackResources,
    sim: &SimServer,
) -> Result<LambdaPoller, Failed> {
    source_poller(aws, resources, sim, SourceKind::Zillow).await
}

/// The real poller, built as Lambda builds it, reading one source of the simulator.
pub(crate) async fn source_poller(
    aws: &TestAws,
    resources: &StackResources,
    sim: &SimServer,
    source: SourceKind,
) -> Result<LambdaPoller, Failed> {
    let base = sim.base_url();
    let config = PollerConfig::from_lookup(|name| match name {
        "REALTY_SOURCES" => Some(source.as_str().into()),
        "REALTY_ZILLOW_URL" | "REALTY_REALTOR_URL" => Some(base.clone()),
        "REALTY_REQUESTS_PER_SECOND" => Some("1000".into()),
        // Below the simulator's slow-response delay, so "slow" faults time out.
        "REALTY_HTTP_TIMEOUT_MS" => Some("1500".into()),
        _ => None,
    })?;
    let keys = ApiKeys {
        zillow: Some("test".into()),
        realtor: Some("test".into()),
        ..ApiKeys::default()
    };
    Ok(build_poller(
        &aws.function_sdk("PollerFunction").await,
        resources,
        &config,
        &keys,
    )?)
}

pub(crate) async fn stack(aws: &TestAws) -> Result<StackResources, Failed> {
    Ok(StackResources::from_outputs(
        &aws.provision(&[]).await.outputs,
    )?)
}

/// Every event in the stream, in shard order.
pub(crate) async fn stream_events(
    aws: &TestAws,
    stream: &str,
) -> Result<Vec<ListingEvent>, Failed> {
    let kinesis = aws_sdk_kinesis::Client::new(&aws.sdk_config().await);
    realty_tests::kinesis_records(&kinesis, stream)
        .await?
        .iter()
        .map(|r| {
            ListingEvent::decode(r.data().as_ref())
                .map_err(|e| format!("stream record: {e}").into())
        })
        .collect()
}

fn kind(e: &ListingEvent) -> &'static str {
    match e.kind {
        EventKind::New => "new",
        EventKind::Changed { .. } => "changed",
        EventKind::Delisted => "delisted",
    }
}

/// `(native id, kind)` of one poll's events, checking that no listing appears twice.
pub(crate) fn by_listing(
    events: &[ListingEvent],
    poll: &PollSummary,
) -> Result<BTreeMap<String, &'static str>, Failed> {
    let mut out = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.poll_id.starts_with(&poll.poll_id))
    {
        let zpid = e.listing.id.native_id().to_owned();
        if out.insert(zpid.clone(), kind(e)).is_some() {
            return Err(format!("listing {zpid} emitted twice in one poll").into());
        }
    }
    Ok(out)
}

pub(crate) async fn poll(p: &LambdaPoller, sim: &SimServer) -> PollSummary {
    let request = PollRequest {
        markets: MARKETS.iter().map(|m| m.to_string()).collect(),
        ..PollRequest::default()
    };
    Box::pin(p.poll(&request, sim.handle().now())).await
}

// ---- a fixture API, for the reads that must not delist (issue 12, point 3) and bounded
// resources (point 6) ----

/// One answer of the fixture API.
pub(super) struct FixtureReply {
    pub(super) status: u16,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Vec<u8>,
}

impl FixtureReply {
    pub(super) fn json(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body,
        }
    }
}

pub(super) type FixtureHandler = Box<dyn Fn(&str, &[u8]) -> FixtureReply + Send + Sync>;

/// A local HTTP server answering every request with what its handler (given the path and
/// query, and the body) says: real API payloads, edited to the case under test.
pub(super) struct FixtureApi {
    pub(super) base_url: String,
    handler: Arc<std::sync::Mutex<FixtureHandler>>,
    /// Requests served, by path and query.
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FixtureApi {
    pub(super) async fn start(handler: FixtureHandler) -> Result<Self, Failed> {
        let handler = Arc::new(std::sync::Mutex::new(handler));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (h, r) = (handler.clone(), requests.clone());
        let router =
            axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
                let (h, r) = (h.clone(), r.clone());
                async move {
                    let target = uri
                        .path_and_query()
                        .map_or("/", |pq| pq.as_str())
                        .to_owned();
                    let reply = {
                        let handler = h.lock().unwrap_or_else(|e| e.into_inner());
                        handler(&target, &body)
                    };
                    r.lock().unwrap_or_else(|e| e.into_inner()).push(target);
                    let mut response =
                        axum::response::Response::new(axum::body::Body::from(reply.body));
                    *response.status_mut() = axum::http::StatusCode::from_u16(reply.status)
                        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                    for (name, value) in reply.headers {
                        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                            response.headers_mut().insert(name, value);
                        }
                    }
                    response
                }
            });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            base_url,
            handler,
            requests,
            task,
        })
    }

    pub(super) fn answer(&self, handler: FixtureHandler) {
        *self.handler.lock().unwrap_or_else(|e| e.into_inner()) = handler;
    }

    pub(super) fn requests_containing(&self, text: &str) -> usize {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|t| t.contains(text))
            .count()
    }
}

impl Drop for FixtureApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The real poller, built as Lambda builds it, against a fixture API.
pub(super) async fn fixture_poller(
    aws: &TestAws,
    resources: &StackResources,
    source: &'static str,
    base_url: &str,
    max_delisted_share: Option<&'static str>,
) -> Result<LambdaPoller, Failed> {
    let base = base_url.to_owned();
    let config = PollerConfig::from_lookup(|name| match name {
        "REALTY_SOURCES" => Some(source.into()),
        "REALTY_ZILLOW_URL" | "REALTY_REALTOR_URL" => Some(base.clone()),
        "REALTY_RESO_URL" => Some(format!("{base}/reso/odata")),
        "REALTY_REQUESTS_PER_SECOND" => Some("1000".into()),
        "REALTY_MAX_DELISTED_SHARE" => max_delisted_share.map(str::to_owned),
        _ => None,
    })?;
    let keys = ApiKeys {
        zillow: Some("test".into()),
        realtor: Some("test".into()),
        reso: Some("test".into()),
    };
    Ok(build_poller(
        &aws.function_sdk("PollerFunction").await,
        resources,
        &config,
        &keys,
    )?)
}

pub(super) async fn poll_markets(p: &LambdaPoller, markets: &[&str]) -> PollSummary {
    poll_markets_at(p, markets, chrono::Utc::now()).await
}

/// [`poll_markets`] as if the poll ran at `observed_at`.
pub(super) async fn poll_markets_at(
    p: &LambdaPoller,
    markets: &[&str],
    observed_at: chrono::DateTime<chrono::Utc>,
) -> PollSummary {
    let request = PollRequest {
        markets: markets.iter().map(|m| m.to_string()).collect(),
        ..PollRequest::default()
    };
    Box::pin(p.poll(&request, observed_at)).await
}

/// The real Zillow answer for Syracuse: a bare `props` array, 41 listings.
pub(super) fn syracuse_props() -> Result<Vec<serde_json::Value>, Failed> {
    let bytes = include_bytes!(
        "../../../shared/sources/tests/fixtures/zillow_propertyExtendedSearch_props_syracuse_ny.json"
    );
    Ok(serde_json::from_slice(bytes)?)
}

/// `props` in a one-page envelope whose total says how many there are.
pub(super) fn zillow_envelope(props: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "props": props,
        "resultsPerPage": 41,
        "totalPages": 1,
        "totalResultCount": props.len(),
        "currentPage": 1,
    }))
    .unwrap_or_default()
}

pub(super) fn serve_json(body: Vec<u8>) -> FixtureHandler {
    Box::new(move |_, _| FixtureReply::json(body.clone()))
}

/// The kinds of the events of one poll, by listing id.
pub(super) async fn poll_events(
    aws: &TestAws,
    resources: &StackResources,
    poll: &PollSummary,
) -> Result<BTreeMap<String, &'static str>, Failed> {
    let events = stream_events(aws, &resources.listing_events_stream).await?;
    by_listing(&events, poll)
}
