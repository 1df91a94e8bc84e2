//! The poller against the simulated market and the local AWS: it finds exactly what the
//! simulator's ground truth says happened, survives every fault mode, and never advances a
//! market past an event it could not publish.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::TimeDelta;
use libtest_mimic::Failed;
use realty_aws::functions::poller::{LambdaPoller, build_poller};
use realty_core::config::StackResources;
use realty_core::listing::{EventKind, ListingEvent};
use realty_core::poller::config::{ApiKeys, PollerConfig};
use realty_core::poller::ports::{EventPublisher, PublishFailure};
use realty_core::poller::run::{PollRequest, PollSummary, Poller};
use realty_core::ports::PortError;
use realty_core::sources::SourceKind;
use realty_sim::{EventKind as Truth, FaultConfig, MarketConfig, SimConfig, SimServer};
use realty_tests::{TestAws, ensure};

crate::async_tests!(
    two_polls_find_exactly_the_ground_truth,
    every_fault_mode_loses_nothing_and_invents_no_delisting,
    events_that_cannot_be_published_are_found_again,
    overlapping_polls_cannot_both_advance_a_market,
    a_page_without_a_total_infers_no_delisting,
    a_listing_that_becomes_a_reject_stays_listed,
    a_null_realtor_search_is_not_an_empty_market,
    a_mass_loss_waits_for_a_second_read,
    listings_hidden_from_a_read_are_not_delisted,
    a_gzip_bomb_or_a_huge_page_fails_its_read_alone,
    an_event_over_1_mib_is_rejected_alone,
    reso_reads_records_committed_late_at_the_cursor,
);

pub(crate) const MARKETS: [&str; 2] = ["nashville-tn", "syracuse-ny"];

async fn sim(seed: u64, faults: FaultConfig) -> Result<SimServer, Failed> {
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

async fn poller(
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
        &aws.sdk_config().await,
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

async fn two_polls_find_exactly_the_ground_truth(aws: Arc<TestAws>) -> Result<(), Failed> {
    two_polls_against_the_ground_truth(&aws, SourceKind::Zillow, 400).await?;
    Ok(())
}

/// The listing's id in `source`, as the simulator's ground truth names it.
pub(crate) fn truth_id(source: SourceKind, ids: &realty_sim::SourceIds) -> &str {
    match source {
        SourceKind::Realtor => &ids.realtor_property_id,
        SourceKind::Reso => &ids.reso_listing_key,
        SourceKind::Zillow => &ids.zpid,
        SourceKind::File | SourceKind::Avito | SourceKind::Mubawab => {
            panic!("the simulator's ground truth has no {source} ids")
        }
    }
}

/// Polls [`MARKETS`] of `source` (`listings` each), lets two simulated days pass, polls
/// again, and checks the second poll's events, listing by listing, against what the
/// simulator's ground truth says happened between the polls. Returns both polls.
pub(crate) async fn two_polls_against_the_ground_truth(
    aws: &TestAws,
    source: SourceKind,
    listings: u32,
) -> Result<(PollSummary, PollSummary), Failed> {
    let resources = stack(aws).await?;
    let sim = sim_of(11, listings, FaultConfig::none()).await?;
    let p = source_poller(aws, &resources, &sim, source).await?;
    let first = poll(&p, &sim).await;
    ensure(
        first.failed_markets == 0 && first.new > listings as usize * MARKETS.len() * 7 / 8,
        format!("first poll: {first:?}"),
    )?;
    let t0 = sim.handle().now();
    let report = sim.handle().advance(TimeDelta::days(2))?;
    let second = poll(&p, &sim).await;
    ensure(
        second.failed_markets == 0,
        format!("second poll: {second:?}"),
    )?;

    let events = stream_events(aws, &resources.listing_events_stream).await?;
    let seen_first: BTreeSet<String> = by_listing(&events, &first)?.into_keys().collect();
    let got = by_listing(&events, &second)?;

    // What the ground truth says the second poll must find, per zpid.
    let mut expected = BTreeMap::new();
    let mut either = BTreeSet::new();
    let mut per_listing: BTreeMap<String, Vec<Truth>> = BTreeMap::new();
    for e in sim.handle().ground_truth(t0, report.to) {
        if MARKETS.contains(&e.market.as_str()) {
            per_listing
                .entry(truth_id(source, &e.ids).to_owned())
                .or_default()
                .push(e.kind);
        }
    }
    for (zpid, history) in per_listing {
        let was_there = seen_first.contains(&zpid);
        let (mut there, mut relisted) = (was_there, false);
        let (mut first_price, mut last_price, mut first_status, mut last_status) =
            (None, None, None, None);
        for k in history {
            match k {
                Truth::New { .. } => {
                    relisted |= was_there || !there;
                    there = true;
                }
                Truth::PriceChange { old, new } => {
                    first_price.get_or_insert(old);
                    last_price = Some(new);
                }
                Truth::StatusChange { old, new } => {
                    first_status.get_or_insert(old);
                    last_status = Some(new);
                }
                Truth::Delisted { .. } => there = false,
            }
        }
        match (was_there, there) {
            (false, true) => {
                expected.insert(zpid, "new");
            }
            (true, false) => {
                expected.insert(zpid, "delisted");
            }
            (true, true) if relisted => {
                either.insert(zpid);
            }
            (true, true) if first_price != last_price || first_status != last_status => {
                expected.insert(zpid, "changed");
            }
            _ => {}
        }
    }
    let got_checked: BTreeMap<String, &str> = got
        .iter()
        .filter(|(z, _)| !either.contains(*z))
        .map(|(z, k)| (z.clone(), *k))
        .collect();
    ensure(
        expected.len() > 20,
        format!("only {} changes in two simulated days", expected.len()),
    )?;
    for kind in ["new", "changed", "delisted"] {
        ensure(
            expected.values().any(|k| *k == kind),
            format!("the ground truth has no {kind} listing"),
        )?;
    }
    let missing: Vec<_> = expected
        .iter()
        .filter(|(z, k)| got_checked.get(*z) != Some(k))
        .collect();
    let extra: Vec<_> = got_checked
        .iter()
        .filter(|(z, k)| expected.get(*z) != Some(k))
        .collect();
    ensure(
        missing.is_empty() && extra.is_empty(),
        format!("missing or different: {missing:?}\nnot in the ground truth: {extra:?}"),
    )?;
    sim.shutdown().await?;
    Ok((first, second))
}

async fn every_fault_mode_loses_nothing_and_invents_no_delisting(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    every_fault_mode_against(&aws, SourceKind::Zillow).await
}

/// For each fault mode of the simulator, at the rate its first attempts fail: a first poll
/// of `source` through the faults finds what a clean read finds, and a second poll of the
/// unchanged market publishes nothing (no invented delisting).
pub(crate) async fn every_fault_mode_against(
    aws: &TestAws,
    source: SourceKind,
) -> Result<(), Failed> {
    for spec in [
        "rate_limit=0.3",
        "server_error=0.3",
        "slow=0.15,slow_ms=3000",
        "truncated=0.3",
        "malformed=0.3",
        "page_shift=0.5",
    ] {
        let resources = stack(aws).await?;
        let faults: FaultConfig = spec.parse()?;
        let clean = sim(23, FaultConfig::none()).await?;
        let faulty = sim(23, faults).await?;
        let clean_poller = source_poller(aws, &stack(aws).await?, &clean, source).await?;
        let p = source_poller(aws, &resources, &faulty, source).await?;

        let truth = poll(&clean_poller, &clean).await;
        let first = poll(&p, &faulty).await;
        ensure(
            first.failed_markets == 0 && first.new == truth.new,
            format!(
                "{spec}: first poll found {} new listings of {}: {first:?}",
                first.new, truth.new
            ),
        )?;
        // Nothing changes between these two polls: any delisting would be invented.
        let second = poll(&p, &faulty).await;
        ensure(
            second.new + second.changed + second.delisted == 0,
            format!("{spec}: an unchanged market gave events: {second:?}"),
        )?;
        let events = stream_events(aws, &resources.listing_events_stream).await?;
        let first_events = by_listing(&events, &first)?;
        ensure(
            first_events.len() == truth.new,
            format!(
                "{spec}: {} events in the stream, {} expected",
                first_events.len(),
                truth.new
            ),
        )?;
        let served = faulty.handle().faults_served();
        ensure(
            served.values().sum::<u64>() > 0,
            format!("{spec}: the simulator served no fault"),
        )?;
        clean.shutdown().await?;
        faulty.shutdown().await?;
    }
    Ok(())
}

/// A publisher whose every third event fails, until told otherwise.
struct Flaky<'a> {
    real: &'a realty_aws::adapters::kinesis::KinesisPublisher,
    failing: std::sync::atomic::AtomicBool,
}

impl EventPublisher for Flaky<'_> {
    async fn publish(&self, events: &[ListingEvent]) -> Result<Vec<PublishFailure>, PortError> {
        if !self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return self.real.publish(events).await;
        }
        let (bad, good): (Vec<usize>, Vec<usize>) = (0..events.len()).partition(|i| i % 3 == 0);
        let good_events: Vec<ListingEvent> = good.iter().map(|&i| events[i].clone()).collect();
        let mut failures: Vec<PublishFailure> = self
            .real
            .publish(&good_events)
            .await?
            .into_iter()
            .map(|f| PublishFailure {
                index: good[f.index],
                error: f.error,
            })
            .collect();
        failures.extend(bad.into_iter().map(|index| PublishFailure {
            index,
            error: "injected".into(),
        }));
        Ok(failures)
    }
}

async fn events_that_cannot_be_published_are_found_again(aws: Arc<TestAws>) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let sim = sim(31, FaultConfig::none()).await?;
    let real = poller(&aws, &resources, &sim).await?;
    let flaky = Poller {
        client: real.client.clone(),
        endpoints: real.endpoints.clone(),
        unkeyed: Vec::new(),
        secret: real.secret.clone(),
        config: real.config.clone(),
        policy: real.policy,
        limiters: BTreeMap::new(),
        publisher: Flaky {
            real: &real.publisher,
            failing: true.into(),
        },
        states: real.states.clone(),
        raw: real.raw.clone(),
        concurrency: 2,
        delisting_guard: real.delisting_guard,
    };
    let first = poll_with(&flaky, &sim).await;
    ensure(
        first.unpublished > 0 && first.unpublished < first.new,
        format!("{first:?}"),
    )?;
    flaky
        .publisher
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let second = poll_with(&flaky, &sim).await;
    ensure(
        second.new == first.unpublished && second.unpublished == 0,
        format!(
            "the second poll must publish exactly the {} events the first could not: {second:?}",
            first.unpublished
        ),
    )?;
    let events = stream_events(&aws, &resources.listing_events_stream).await?;
    let ids: Vec<&str> = events.iter().map(|e| e.listing.id.as_str()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    ensure(
        ids.len() == unique.len() && ids.len() == first.new,
        format!("{} events for {} listings", ids.len(), unique.len()),
    )?;
    sim.shutdown().await?;
    Ok(())
}

async fn poll_with<
    S: realty_core::poller::ports::PollStateStore,
    C: realty_core::poller::ports::ConfigStore,
    R: realty_core::poller::raw::RawPageStore,
>(
    p: &Poller<Flaky<'_>, S, C, R>,
    sim: &SimServer,
) -> PollSummary {
    let request = PollRequest {
        markets: MARKETS.iter().map(|m| m.to_string()).collect(),
        ..PollRequest::default()
    };
    Box::pin(p.poll(&request, sim.handle().now())).await
}

async fn overlapping_polls_cannot_both_advance_a_market(aws: Arc<TestAws>) -> Result<(), Failed> {
    use realty_aws::adapters::poll_state::S3PollStateStore;
    use realty_core::poller::detect::PollState;
    use realty_core::poller::ports::PollStateStore;

    let resources = stack(&aws).await?;
    let store = S3PollStateStore {
        client: realty_aws::sdk::s3_client(&aws.sdk_config().await),
        bucket: resources.data_lake_bucket.clone(),
    };
    // Two polls start from the same (missing) state.
    let a = store.load("zillow/nashville-tn").await?;
    let b = store.load("zillow/nashville-tn").await?;
    ensure(
        a.version.is_none() && b.version.is_none(),
        "a fresh market has no state",
    )?;
    let state = PollState {
        cursor: Some(chrono::Utc::now()),
        ..PollState::default()
    };
    ensure(
        store
            .save("zillow/nashville-tn", &state, a.version.as_deref())
            .await?,
        "the first save lands",
    )?;
    ensure(
        !store
            .save(
                "zillow/nashville-tn",
                &PollState::default(),
                b.version.as_deref(),
            )
            .await?,
        "the overlapping save must be refused",
    )?;
    // The next poll reads the first poll's state, and can advance it.
    let c = store.load("zillow/nashville-tn").await?;
    ensure(
        c.state == state && c.version.is_some(),
        "the stored state is the first poll's",
    )?;
    ensure(
        store
            .save(
                "zillow/nashville-tn",
                &PollState::default(),
                c.version.as_deref(),
            )
            .await?,
        "a save from the current version lands",
    )?;
    ensure(
        !store
            .save("zillow/nashville-tn", &state, c.version.as_deref())
            .await?,
        "a save from a stale version is refused",
    )
}

// ---- Reads that must not delist (issue 12, point 3) and bounded resources (point 6) ----

/// One answer of the fixture API.
struct FixtureReply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl FixtureReply {
    fn json(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body,
        }
    }
}

type FixtureHandler = Box<dyn Fn(&str, &[u8]) -> FixtureReply + Send + Sync>;

/// A local HTTP server answering every request with what its handler (given the path and
/// query, and the body) says: real API payloads, edited to the case under test.
struct FixtureApi {
    base_url: String,
    handler: Arc<std::sync::Mutex<FixtureHandler>>,
    /// Requests served, by path and query.
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FixtureApi {
    async fn start(handler: FixtureHandler) -> Result<Self, Failed> {
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

    fn answer(&self, handler: FixtureHandler) {
        *self.handler.lock().unwrap_or_else(|e| e.into_inner()) = handler;
    }

    fn requests_containing(&self, text: &str) -> usize {
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
async fn fixture_poller(
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
        &aws.sdk_config().await,
        resources,
        &config,
        &keys,
    )?)
}

async fn poll_markets(p: &LambdaPoller, markets: &[&str]) -> PollSummary {
    let request = PollRequest {
        markets: markets.iter().map(|m| m.to_string()).collect(),
        ..PollRequest::default()
    };
    Box::pin(p.poll(&request, chrono::Utc::now())).await
}

/// The real Zillow answer for Syracuse: a bare `props` array, 41 listings.
fn syracuse_props() -> Result<Vec<serde_json::Value>, Failed> {
    let bytes = include_bytes!(
        "../../../shared/core/tests/fixtures/zillow_propertyExtendedSearch_props_syracuse_ny.json"
    );
    Ok(serde_json::from_slice(bytes)?)
}

/// `props` in a one-page envelope whose total says how many there are.
fn zillow_envelope(props: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "props": props,
        "resultsPerPage": 41,
        "totalPages": 1,
        "totalResultCount": props.len(),
        "currentPage": 1,
    }))
    .unwrap_or_default()
}

fn serve_json(body: Vec<u8>) -> FixtureHandler {
    Box::new(move |_, _| FixtureReply::json(body.clone()))
}

/// The kinds of the events of one poll, by listing id.
async fn poll_events(
    aws: &TestAws,
    resources: &StackResources,
    poll: &PollSummary,
) -> Result<BTreeMap<String, &'static str>, Failed> {
    let events = stream_events(aws, &resources.listing_events_stream).await?;
    by_listing(&events, poll)
}

async fn a_page_without_a_total_infers_no_delisting(aws: Arc<TestAws>) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let props = syracuse_props()?;
    let api = FixtureApi::start(serve_json(zillow_envelope(&props))).await?;
    // No guard: only the missing total may stop the delistings.
    let p = fixture_poller(&aws, &resources, "zillow", &api.base_url, Some("1")).await?;
    let first = poll_markets(&p, &["syracuse-ny"]).await;
    ensure(
        first.failed_markets == 0 && first.per_market[0].complete && first.new > 30,
        format!("a page with its total is a complete read: {first:?}"),
    )?;
    // The same API now answers with a bare `props` array (no total), five listings short.
    api.answer(serve_json(serde_json::to_vec(&props[..36])?));
    let second = poll_markets(&p, &["syracuse-ny"]).await;
    ensure(
        second.failed_markets == 0 && !second.per_market[0].complete,
        format!("a page without a total is no complete read: {second:?}"),
    )?;
    ensure(
        second.delisted == 0,
        format!(
            "a read without a total delisted {}: {second:?}",
            second.delisted
        ),
    )?;
    let events = poll_events(&aws, &resources, &second).await?;
    ensure(events.is_empty(), format!("events: {events:?}"))
}

async fn a_listing_that_becomes_a_reject_stays_listed(aws: Arc<TestAws>) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let mut props = syracuse_props()?;
    let api = FixtureApi::start(serve_json(zillow_envelope(&props))).await?;
    let p = fixture_poller(&aws, &resources, "zillow", &api.base_url, None).await?;
    let first = poll_markets(&p, &["syracuse-ny"]).await;
    let listed = poll_events(&aws, &resources, &first).await?;
    ensure(first.new > 30, format!("{first:?}"))?;
    // A listing of the first poll now has "call for price".
    let (index, zpid) = props
        .iter()
        .enumerate()
        .find_map(|(i, prop)| {
            let zpid = prop.get("zpid")?.as_str()?.to_owned();
            listed.contains_key(&zpid).then_some((i, zpid))
        })
        .ok_or("no listed prop")?;
    let price = props[index]["price"].as_f64().ok_or("a numeric price")?;
    props[index]["price"] = serde_json::json!("call for price");
    api.answer(serve_json(zillow_envelope(&props)));
    let second = poll_markets(&p, &["syracuse-ny"]).await;
    ensure(
        second.per_market[0].complete && second.rejects == first.rejects + 1,
        format!("the call-for-price record is a reject of a complete read: {second:?}"),
    )?;
    ensure(
        second.delisted == 0 && second.new + second.changed == 0,
        format!("a listing that became a reject was delisted: {second:?}"),
    )?;
    // Priced again, lower: a price cut of a listing known all along, not a new listing.
    props[index]["price"] = serde_json::json!((price * 0.9).round());
    api.answer(serve_json(zillow_envelope(&props)));
    let third = poll_markets(&p, &["syracuse-ny"]).await;
    let events = poll_events(&aws, &resources, &third).await?;
    ensure(
        events.len() == 1 && events.get(&zpid) == Some(&"changed"),
        format!("expected one change of {zpid}, got {events:?}: {third:?}"),
    )
}

async fn a_null_realtor_search_is_not_an_empty_market(aws: Arc<TestAws>) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let mut page: serde_json::Value = serde_json::from_slice(include_bytes!(
        "../../../shared/core/tests/fixtures/realtor_realty-in-us_properties_v3_list.json"
    ))?;
    // The saved page is the first of 79; here it is the whole market.
    let results = page["data"]["home_search"]["results"]
        .as_array()
        .map_or(0, Vec::len);
    page["data"]["home_search"]["total"] = serde_json::json!(results);
    let api = FixtureApi::start(serve_json(serde_json::to_vec(&page)?)).await?;
    // No guard: only reading the null search right may stop the delistings.
    let p = fixture_poller(&aws, &resources, "realtor", &api.base_url, Some("1")).await?;
    let first = poll_markets(&p, &["los-angeles-ca"]).await;
    ensure(
        first.failed_markets == 0 && first.per_market[0].complete && first.new > 0,
        format!("{first:?}"),
    )?;
    api.answer(serve_json(br#"{"data": {"home_search": null}}"#.to_vec()));
    let second = poll_markets(&p, &["los-angeles-ca"]).await;
    ensure(
        !second.per_market[0].complete && second.delisted == 0,
        format!("a null search emptied the market: {second:?}"),
    )
}

async fn a_mass_loss_waits_for_a_second_read(aws: Arc<TestAws>) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let props = syracuse_props()?;
    let api = FixtureApi::start(serve_json(zillow_envelope(&props))).await?;
    // The default share, 30 %.
    let p = fixture_poller(&aws, &resources, "zillow", &api.base_url, None).await?;
    let first = poll_markets(&p, &["syracuse-ny"]).await;
    ensure(first.new > 30, format!("{first:?}"))?;
    // A complete read (its total agrees) of half the market.
    api.answer(serve_json(zillow_envelope(&props[..20])));
    let second = poll_markets(&p, &["syracuse-ny"]).await;
    let gone = first.new - second.listings;
    ensure(
        second.per_market[0].complete && second.delisted == 0 && second.held_delistings == gone,
        format!(
            "{gone} of {} missing at once must wait: {second:?}",
            first.new
        ),
    )?;
    // A second read confirms: now they go.
    let third = poll_markets(&p, &["syracuse-ny"]).await;
    ensure(
        third.delisted == gone && third.held_delistings == 0,
        format!("the confirming read must delist the {gone}: {third:?}"),
    )?;
    let events = poll_events(&aws, &resources, &third).await?;
    ensure(
        events.len() == gone && events.values().all(|k| *k == "delisted"),
        format!("{events:?}"),
    )?;
    // Nothing more happens after.
    let fourth = poll_markets(&p, &["syracuse-ny"]).await;
    ensure(
        fourth.new + fourth.changed + fourth.delisted + fourth.held_delistings == 0,
        format!("{fourth:?}"),
    )
}

async fn listings_hidden_from_a_read_are_not_delisted(aws: Arc<TestAws>) -> Result<(), Failed> {
    // Big enough that Zillow reads it in price bands, so a listing hides from one band read.
    let (first, hidden) = hidden_listings_against(&aws, SourceKind::Zillow, 1_200).await?;
    ensure(
        first.new > 820,
        format!("a market past 20 pages: {first:?}"),
    )?;
    ensure(
        hidden >= 2,
        format!("the simulator hid listings from {hidden} band reads"),
    )
}

/// A whole read of Nashville (`listings` live listings) from `source` whose every query
/// first misses one listing, its counts still adding up, finds nothing changed since a clean
/// read of the same market at the same time: the missing listing is not delisted, a second
/// read finds it. Returns the clean poll, and how many reads the simulator hid a listing from.
pub(crate) async fn hidden_listings_against(
    aws: &TestAws,
    source: SourceKind,
    listings: u32,
) -> Result<(PollSummary, u64), Failed> {
    let resources = stack(aws).await?;
    let big = |faults: FaultConfig| SimConfig {
        seed: 41,
        market: MarketConfig {
            markets: vec!["nashville-tn".into()],
            listings_per_market: listings,
            ..MarketConfig::default()
        },
        faults,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let clean = SimServer::start(addr, big(FaultConfig::none())).await?;
    // Every query's first read misses one listing, its counts still adding up; reads after
    // it see everything.
    let faulty = SimServer::start(addr, big("hidden=1,faulty_attempts=1".parse()?)).await?;
    let clean_poller = source_poller(aws, &resources, &clean, source).await?;
    let p = source_poller(aws, &resources, &faulty, source).await?;
    let request = PollRequest {
        markets: vec!["nashville-tn".into()],
        ..PollRequest::default()
    };
    let first = Box::pin(clean_poller.poll(&request, clean.handle().now())).await;
    ensure(
        first.failed_markets == 0 && first.per_market.first().is_some_and(|m| m.complete),
        format!("a clean read is complete: {first:?}"),
    )?;
    // The same market at the same time, read through the fault: nothing happened.
    let second = Box::pin(p.poll(&request, faulty.handle().now())).await;
    let hidden = faulty
        .handle()
        .faults_served()
        .get(&realty_sim::FaultKind::Hidden)
        .copied()
        .unwrap_or(0);
    ensure(
        hidden >= 1,
        format!("the simulator hid listings from {hidden} reads"),
    )?;
    ensure(
        second.failed_markets == 0
            && second.new + second.changed + second.delisted == 0
            && second.per_market[0].reconciliations == 1,
        format!("a hidden listing was taken for delisted: {second:?}"),
    )?;
    clean.shutdown().await?;
    faulty.shutdown().await?;
    Ok((first, hidden))
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, Failed> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

async fn a_gzip_bomb_or_a_huge_page_fails_its_read_alone(aws: Arc<TestAws>) -> Result<(), Failed> {
    use realty_core::poller::fetch::DEFAULT_MAX_BODY_BYTES;
    let resources = stack(&aws).await?;
    // 48 KiB on the wire, past the body cap once decompressed.
    let bomb = gzip(&vec![b' '; DEFAULT_MAX_BODY_BYTES + 1024 * 1024])?;
    let huge = vec![b' '; DEFAULT_MAX_BODY_BYTES + 1];
    let good = zillow_envelope(&syracuse_props()?);
    let api = FixtureApi::start(Box::new(move |target, _| {
        if target.contains("Nashville") {
            FixtureReply {
                status: 200,
                headers: vec![
                    ("content-type", "application/json".into()),
                    ("content-encoding", "gzip".into()),
                ],
                body: bomb.clone(),
            }
        } else if target.contains("Austin") {
            FixtureReply::json(huge.clone())
        } else {
            FixtureReply::json(good.clone())
        }
    }))
    .await?;
    let p = fixture_poller(&aws, &resources, "zillow", &api.base_url, None).await?;
    let summary = poll_markets(&p, &["nashville-tn", "austin-tx", "syracuse-ny"]).await;
    let market = |key: &str| summary.per_market.iter().find(|m| m.market == key);
    for key in ["nashville-tn", "austin-tx"] {
        let error = market(key)
            .and_then(|m| m.error.clone())
            .unwrap_or_default();
        ensure(
            error.contains("larger than"),
            format!("{key}: the oversized body must fail its read: {summary:?}"),
        )?;
    }
    ensure(
        api.requests_containing("Nashville") == 1 && api.requests_containing("Austin") == 1,
        "an oversized body is not fetched again",
    )?;
    ensure(
        market("syracuse-ny").is_some_and(|m| m.error.is_none() && m.new > 30),
        format!("the other market is read as usual: {summary:?}"),
    )
}

async fn an_event_over_1_mib_is_rejected_alone(aws: Arc<TestAws>) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let api = FixtureApi::start(serve_json(Vec::new())).await?;
    let p = fixture_poller(&aws, &resources, "zillow", &api.base_url, None).await?;
    let mut listings = realty_core::sources::normalize_file(
        realty_core::sources::SourceKind::Zillow,
        &zillow_envelope(&syracuse_props()?),
        chrono::Utc::now(),
    )?
    .listings;
    listings.truncate(3);
    ensure(listings.len() == 3, "three listings")?;
    let mut events: Vec<ListingEvent> = listings
        .into_iter()
        .map(|l| ListingEvent::new_listing(l, "poll-oversize"))
        .collect();
    events[1].listing.address.line = Some("x".repeat(1024 * 1024));
    let failures = p.publisher.publish(&events).await?;
    ensure(
        failures.len() == 1 && failures[0].index == 1 && failures[0].error.contains("limit"),
        format!("only the oversized event fails, with its reason: {failures:?}"),
    )?;
    let landed = stream_events(&aws, &resources.listing_events_stream).await?;
    let ids: BTreeSet<&str> = landed.iter().map(|e| e.listing.id.as_str()).collect();
    let want: BTreeSet<&str> = [&events[0], &events[2]]
        .iter()
        .map(|e| e.listing.id.as_str())
        .collect();
    ensure(
        ids == want && landed.len() == 2,
        format!("the two good events land, once each: {ids:?}"),
    )
}

/// A RESO Property page of `records` whose `ModificationTimestamp` passes the request's
/// `$filter` (`gt` or `ge` against one timestamp), as a feed evaluates it.
fn reso_answer(records: &[serde_json::Value], target: &str) -> FixtureReply {
    let decoded: String = target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| k.replace("%24", "$") == "$filter")
        .map(|(_, v)| {
            let v = v.replace('+', " ");
            let mut out = Vec::new();
            let bytes = v.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%'
                    && let Some(b) = v
                        .get(i + 1..i + 3)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(b);
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        })
        .next()
        .unwrap_or_default();
    let bound = decoded
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(3)
        .find(|w| w[0] == "ModificationTimestamp")
        .and_then(|w| {
            let at = chrono::DateTime::parse_from_rfc3339(w[2]).ok()?;
            Some((w[1].to_owned(), at))
        });
    let value: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| {
            let Some((op, bound)) = &bound else {
                return true;
            };
            let Some(at) = r["ModificationTimestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            else {
                return false;
            };
            match op.as_str() {
                "gt" => at > *bound,
                "ge" => at >= *bound,
                _ => true,
            }
        })
        .collect();
    FixtureReply::json(
        serde_json::to_vec(&serde_json::json!({
            "@odata.context": "$metadata#Property",
            "value": value,
        }))
        .unwrap_or_default(),
    )
}

async fn reso_reads_records_committed_late_at_the_cursor(aws: Arc<TestAws>) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let page: serde_json::Value = serde_json::from_slice(include_bytes!(
        "../../../shared/core/tests/fixtures/reso_property_page1.json"
    ))?;
    let mut records: Vec<serde_json::Value> = page["value"]
        .as_array()
        .ok_or("a value array")?
        .iter()
        .take(2)
        .cloned()
        .collect();
    ensure(records.len() == 2, "two records")?;
    // Both carry the same timestamp; the second is committed after the first poll.
    for r in &mut records {
        r["ModificationTimestamp"] = serde_json::json!("2025-03-03T12:00:00.000Z");
    }
    let first_only = records[..1].to_vec();
    let api = FixtureApi::start(Box::new(move |t, _| reso_answer(&first_only, t))).await?;
    let p = fixture_poller(&aws, &resources, "reso", &api.base_url, None).await?;
    let first = poll_markets(&p, &["nashville-tn"]).await;
    ensure(
        first.failed_markets == 0 && first.new == 1,
        format!("{first:?}"),
    )?;
    let both = records.clone();
    api.answer(Box::new(move |t, _| reso_answer(&both, t)));
    let second = poll_markets(&p, &["nashville-tn"]).await;
    let events = poll_events(&aws, &resources, &second).await?;
    let late = records[1]["ListingKey"].as_str().unwrap_or_default();
    ensure(
        second.new == 1 && second.changed == 0 && events.len() == 1 && events.contains_key(late),
        format!(
            "the late record {late} must be read once, the other not again: {events:?} {second:?}"
        ),
    )?;
    // And a poll with nothing new finds nothing.
    let third = poll_markets(&p, &["nashville-tn"]).await;
    ensure(
        third.new + third.changed + third.delisted == 0,
        format!("{third:?}"),
    )
}
