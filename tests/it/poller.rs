//! The poller against the simulated market and the local AWS: it finds exactly what the
//! simulator's ground truth says happened, survives every fault mode, and never advances a
//! market past an event it could not publish.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::TimeDelta;
use libtest_mimic::Failed;
use realty_shared::config::StackResources;
use realty_shared::listing::{EventKind, ListingEvent};
use realty_shared::metrics::ports::PortError;
use realty_shared::poller::lambda::{ApiKeys, LambdaPoller, PollerConfig, build_poller};
use realty_shared::poller::ports::{EventPublisher, PublishFailure};
use realty_shared::poller::run::{PollRequest, PollSummary, Poller};
use realty_sim::{EventKind as Truth, FaultConfig, MarketConfig, SimConfig, SimServer};
use realty_tests::TestAws;

crate::async_tests!(
    two_polls_find_exactly_the_ground_truth,
    every_fault_mode_loses_nothing_and_invents_no_delisting,
    events_that_cannot_be_published_are_found_again,
    overlapping_polls_cannot_both_advance_a_market,
);

const MARKETS: [&str; 2] = ["nashville-tn", "syracuse-ny"];

fn ensure(condition: bool, message: impl Into<String>) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message.into().into())
    }
}

async fn sim(seed: u64, faults: FaultConfig) -> Result<SimServer, Failed> {
    let config = SimConfig {
        seed,
        market: MarketConfig {
            markets: MARKETS.iter().map(|m| m.to_string()).collect(),
            listings_per_market: 400,
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
    let base = sim.base_url();
    let config = PollerConfig::from_lookup(|name| match name {
        "REALTY_SOURCES" => Some("zillow".into()),
        "REALTY_ZILLOW_URL" => Some(base.clone()),
        "REALTY_REQUESTS_PER_SECOND" => Some("1000".into()),
        // Below the simulator's slow-response delay, so "slow" faults time out.
        "REALTY_HTTP_TIMEOUT_MS" => Some("1500".into()),
        _ => None,
    })?;
    let keys = ApiKeys {
        rapidapi_key: Some("test".into()),
        reso_token: None,
    };
    Ok(build_poller(
        &aws.sdk_config().await,
        resources,
        &config,
        &keys,
    )?)
}

async fn stack(aws: &TestAws) -> Result<StackResources, Failed> {
    Ok(StackResources::from_outputs(
        &aws.provision(&[]).await.outputs,
    )?)
}

/// Every event in the stream, in shard order.
async fn stream_events(aws: &TestAws, stream: &str) -> Result<Vec<ListingEvent>, Failed> {
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

/// `(zpid, kind)` of one poll's events, checking that no listing appears twice.
fn by_listing(
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

async fn poll(p: &LambdaPoller, sim: &SimServer) -> PollSummary {
    let request = PollRequest {
        markets: MARKETS.iter().map(|m| m.to_string()).collect(),
    };
    Box::pin(p.poll(&request, sim.handle().now())).await
}

async fn two_polls_find_exactly_the_ground_truth(aws: Arc<TestAws>) -> Result<(), Failed> {
    let resources = stack(&aws).await?;
    let sim = sim(11, FaultConfig::none()).await?;
    let p = poller(&aws, &resources, &sim).await?;
    let first = poll(&p, &sim).await;
    ensure(
        first.failed_markets == 0 && first.new > 700,
        format!("first poll: {first:?}"),
    )?;
    let t0 = sim.handle().now();
    let report = sim.handle().advance(TimeDelta::days(2))?;
    let second = poll(&p, &sim).await;
    ensure(
        second.failed_markets == 0,
        format!("second poll: {second:?}"),
    )?;

    let events = stream_events(&aws, &resources.listing_events_stream).await?;
    let seen_first: BTreeSet<String> = by_listing(&events, &first)?.into_keys().collect();
    let got = by_listing(&events, &second)?;

    // What the ground truth says the second poll must find, per zpid.
    let mut expected = BTreeMap::new();
    let mut either = BTreeSet::new();
    let mut per_listing: BTreeMap<String, Vec<Truth>> = BTreeMap::new();
    for e in sim.handle().ground_truth(t0, report.to) {
        if MARKETS.contains(&e.market.as_str()) {
            per_listing
                .entry(e.ids.zpid.clone())
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
    Ok(())
}

async fn every_fault_mode_loses_nothing_and_invents_no_delisting(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    for spec in [
        "rate_limit=0.3",
        "server_error=0.3",
        "slow=0.15,slow_ms=3000",
        "truncated=0.3",
        "malformed=0.3",
        "page_shift=0.5",
    ] {
        let resources = stack(&aws).await?;
        let faults: FaultConfig = spec.parse()?;
        let clean = sim(23, FaultConfig::none()).await?;
        let faulty = sim(23, faults).await?;
        let clean_poller = poller(&aws, &stack(&aws).await?, &clean).await?;
        let p = poller(&aws, &resources, &faulty).await?;

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
        let events = stream_events(&aws, &resources.listing_events_stream).await?;
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
    real: &'a realty_shared::adapters::kinesis::KinesisPublisher,
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
        policy: real.policy,
        limiters: BTreeMap::new(),
        publisher: Flaky {
            real: &real.publisher,
            failing: true.into(),
        },
        states: real.states.clone(),
        concurrency: 2,
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

async fn poll_with<S: realty_shared::poller::ports::PollStateStore>(
    p: &Poller<Flaky<'_>, S>,
    sim: &SimServer,
) -> PollSummary {
    let request = PollRequest {
        markets: MARKETS.iter().map(|m| m.to_string()).collect(),
    };
    Box::pin(p.poll(&request, sim.handle().now())).await
}

async fn overlapping_polls_cannot_both_advance_a_market(aws: Arc<TestAws>) -> Result<(), Failed> {
    use realty_shared::adapters::poll_state::S3PollStateStore;
    use realty_shared::poller::detect::PollState;
    use realty_shared::poller::ports::PollStateStore;

    let resources = stack(&aws).await?;
    let store = S3PollStateStore {
        client: realty_shared::aws::s3_client(&aws.sdk_config().await),
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
