//! Nothing lost for good (issue 58): a delisting that never reaches the metrics function
//! leaves its listing active with no later event to correct it; `realty reconcile --check`'s
//! comparison reports it, the anti-entropy pass publishes it through the stream, the metrics
//! function applies it, and a second pass publishes nothing and moves no figure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use libtest_mimic::Failed;
use realty_aws::adapters::dynamodb::{DynamoListingStore, DynamoMarketStore};
use realty_aws::adapters::retry::RetryPolicy;
use realty_aws::functions::metrics::MetricsFunction;
use realty_infra::runner::{FunctionError, Mapping, StreamFunction};
use realty_metrics::aggregate::MarketAggregate;
use realty_metrics::ports::MarketStore as _;
use realty_model::config::StackResources;
use realty_model::listing::{EventKind, ListingStatus, Offer};
use realty_model::state::ListingStore as _;
use realty_poller::anti_entropy::{DivergenceKind, LISTINGS_PER_PASS, check, run_pass};
use realty_tests::{MetricsHandler, TestAws, ensure};

use super::helpers::{
    FixtureApi, fixture_poller, poll_markets, serve_json, stream_events, syracuse_props,
    zillow_envelope,
};
use crate::demo::pump_until_quiet;

const MARKET: &str = "syracuse-ny";
const CITY: &str = "city#syracuse-ny#all";

/// The metrics function, or, while `lose` is set, a batch acknowledged unapplied: its events
/// never reach the tables (as a batch discarded before its journal was written).
struct LossyMetrics {
    real: MetricsHandler,
    lose: AtomicBool,
    lost: AtomicUsize,
}

impl StreamFunction for LossyMetrics {
    type Event = KinesisEvent;
    type Response = KinesisEventResponse;

    async fn invoke(&self, event: KinesisEvent) -> Result<KinesisEventResponse, FunctionError> {
        if self.lose.load(Ordering::SeqCst) {
            self.lost.fetch_add(event.records.len(), Ordering::SeqCst);
            return Ok(KinesisEventResponse::default());
        }
        self.real.invoke(event).await
    }
}

async fn city(markets: &DynamoMarketStore) -> Result<MarketAggregate, Failed> {
    let key = CITY.to_owned();
    Ok(markets
        .get_aggregates(std::slice::from_ref(&key))
        .await?
        .remove(&key)
        .ok_or("no Syracuse market item")?
        .aggregate)
}

fn listing_store(sdk: &aws_config::SdkConfig, resources: &StackResources) -> DynamoListingStore {
    DynamoListingStore {
        client: aws_sdk_dynamodb::Client::new(sdk),
        table: resources.listing_table.clone(),
        retry: RetryPolicy::default(),
    }
}

pub(super) async fn a_lost_delisting_is_reported_then_republished_once_by_anti_entropy(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let stack = aws.provision(&[]).await;
    let resources = StackResources::from_outputs(&stack.outputs)?;
    let sdk = aws.sdk_config().await;
    let mut props = syracuse_props()?;
    let api = FixtureApi::start(serve_json(zillow_envelope(&props))).await?;
    let p = fixture_poller(&aws, &resources, "zillow", &api.base_url, None).await?;
    let mut metrics = Mapping::new(
        &sdk,
        &aws.template(),
        &stack,
        "MetricsFunction",
        LossyMetrics {
            real: MetricsHandler(MetricsFunction::new(
                &aws.function_sdk("MetricsFunction").await,
                &resources,
            )),
            lose: AtomicBool::new(false),
            lost: AtomicUsize::new(0),
        },
    )
    .await?;
    // The operator's view (`realty reconcile`), and the pass's, as the poller's role.
    let operator = listing_store(&sdk, &resources);
    let pass_listings = listing_store(&aws.function_sdk("PollerFunction").await, &resources);
    let markets = DynamoMarketStore {
        client: aws_sdk_dynamodb::Client::new(&sdk),
        table: resources.market_table.clone(),
        retry: RetryPolicy::default(),
    };

    let first = poll_markets(&p, &[MARKET]).await;
    ensure(first.new > 30, format!("{first:?}"))?;
    pump_until_quiet(&mut metrics).await?;
    let before = city(&markets).await?;
    // A listing for sale, counted active, leaves the source.
    let events = stream_events(&aws, &resources.listing_events_stream).await?;
    let gone = events
        .iter()
        .find(|e| e.listing.offer == Offer::Sale && e.listing.status == ListingStatus::Active)
        .map(|e| e.listing.id.clone())
        .ok_or("no active sale listing")?;
    let native = gone.as_str().trim_start_matches("zillow:").to_owned();
    props.retain(|prop| prop["zpid"].as_str() != Some(native.as_str()));
    api.answer(serve_json(zillow_envelope(&props)));
    let second = poll_markets(&p, &[MARKET]).await;
    ensure(second.delisted == 1, format!("{second:?}"))?;
    // Its delisting never reaches the metrics function.
    metrics.function().lose.store(true, Ordering::SeqCst);
    pump_until_quiet(&mut metrics).await?;
    metrics.function().lose.store(false, Ordering::SeqCst);
    ensure(
        metrics.function().lost.load(Ordering::SeqCst) == 1,
        "the delisting's batch was not lost",
    )?;
    let id = gone.as_str();
    let stale = operator.get_states(&[id]).await?;
    ensure(
        stale.get(id).is_some_and(|s| !s.delisted),
        format!("the table no longer holds {id} active"),
    )?;
    ensure(
        city(&markets).await?.active == before.active,
        "the loss moved the market",
    )?;

    // `realty reconcile --check` reports it.
    let reported = check(&p.states, &operator, Some(MARKET), chrono::Utc::now()).await?;
    ensure(
        reported.total() == 1
            && reported.divergences.get(&DivergenceKind::NotDelisted) == Some(&1)
            && reported.examples.first().map(|(_, _, l)| l.as_str()) == Some(id),
        format!("check: {reported:?}"),
    )?;

    // The pass publishes the delisting, and the metrics function applies it.
    let pass = run_pass(
        &p.states,
        &pass_listings,
        &p.publisher,
        LISTINGS_PER_PASS,
        chrono::Utc::now(),
    )
    .await?;
    ensure(
        pass.published == 1 && pass.unpublished == 0 && pass.round_ended,
        format!("pass: {pass:?}"),
    )?;
    let published = stream_events(&aws, &resources.listing_events_stream).await?;
    let republished: Vec<_> = published
        .iter()
        .filter(|e| e.poll_id.starts_with("anti-entropy-"))
        .collect();
    ensure(
        republished.len() == 1
            && republished[0].kind == EventKind::Delisted
            && republished[0].listing.id == gone,
        format!("republished: {republished:?}"),
    )?;
    pump_until_quiet(&mut metrics).await?;
    let after = city(&markets).await?;
    ensure(
        after.active == before.active - 1
            && after.price_sum_minor == before.price_sum_minor - stale[id].listing.price_minor,
        format!(
            "active {} -> {}, price sum {} -> {}",
            before.active, after.active, before.price_sum_minor, after.price_sum_minor
        ),
    )?;
    ensure(
        operator
            .get_states(&[id])
            .await?
            .get(id)
            .is_some_and(|s| s.delisted),
        format!("{id} not delisted"),
    )?;

    // Exactly once: nothing left to say, and nothing moves.
    let again = run_pass(
        &p.states,
        &pass_listings,
        &p.publisher,
        LISTINGS_PER_PASS,
        chrono::Utc::now(),
    )
    .await?;
    ensure(
        again.total() == 0 && again.published == 0,
        format!("second pass: {again:?}"),
    )?;
    pump_until_quiet(&mut metrics).await?;
    ensure(
        city(&markets).await? == after,
        "the second pass moved the market",
    )?;
    let clean = check(&p.states, &operator, None, chrono::Utc::now()).await?;
    ensure(clean.total() == 0, format!("check after: {clean:?}"))
}
