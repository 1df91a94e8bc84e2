//! A market advances only past events that were published, and only by one poll at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use libtest_mimic::Failed;
use realty_model::listing::ListingEvent;
use realty_model::ports::PortError;
use realty_poller::ports::{EventPublisher, PublishFailure};
use realty_poller::run::{PollRequest, PollSummary, Poller};
use realty_sim::{FaultConfig, SimServer};
use realty_tests::{TestAws, ensure};

use super::helpers::{MARKETS, poller, sim, stack, stream_events};

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

pub(super) async fn events_that_cannot_be_published_are_found_again(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
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
        run_budget: real.run_budget,
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
    S: realty_poller::ports::PollStateStore,
    C: realty_model::markets::ConfigStore,
    R: realty_poller::raw::RawPageStore,
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

pub(super) async fn overlapping_polls_cannot_both_advance_a_market(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    use realty_aws::adapters::poll_state::S3PollStateStore;
    use realty_poller::detect::PollState;
    use realty_poller::ports::PollStateStore;

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
