//! RESO Web API end to end: the poller function as Lambda builds it reads the simulator's
//! RESO API, which refuses a request without a token from its own token endpoint
//! (client credentials) or without a `$filter`. A market's poll sends its city, state and
//! raw filter, the next poll asks only for records modified since the first, and a day
//! after a full read the market is read whole again.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use libtest_mimic::Failed;
use realty_aws::functions::poller::PollerFunction;
use realty_model::markets::ConfigStore;
use realty_model::markets::WatchedMarket;
use realty_poller::config::PollerConfig;
use realty_poller::run::{MarketSummary, PollRequest, PollSummary};
use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};
use realty_tests::{TestAws, ensure};

use crate::operations::{Setup, setup};

crate::async_tests!(a_reso_poll_sends_the_market_filter_and_an_oauth_token_then_reads_only_changes);

async fn sim() -> Result<SimServer, Failed> {
    let config = SimConfig {
        seed: 17,
        market: MarketConfig {
            markets: vec!["nashville-tn".into(), "syracuse-ny".into()],
            listings_per_market: 150,
            ..MarketConfig::default()
        },
        faults: FaultConfig::none(),
    };
    Ok(SimServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await?)
}

/// The poller function reading RESO only, with the keys the stack's secret holds.
async fn function(s: &Setup, sim: &SimServer, secret: &str) -> Result<PollerFunction, Failed> {
    s.secrets
        .put_secret_string(&s.resources.api_key_secret, secret)
        .await?;
    let reso = format!("{}/reso/odata", sim.base_url());
    let env = |name: &str| match name {
        "REALTY_SOURCES" => Some("reso".to_owned()),
        "REALTY_RESO_URL" => Some(reso.clone()),
        "REALTY_REQUESTS_PER_SECOND" => Some("1000".into()),
        "REALTY_LISTING_API_SECRET_ARN" => Some(s.resources.api_key_secret.clone()),
        _ => None,
    };
    let config = PollerConfig::from_lookup(env)?;
    Ok(PollerFunction::new(&s.poller_sdk, &s.resources, config, env).await?)
}

fn market<'a>(poll: &'a PollSummary, key: &str) -> Result<&'a MarketSummary, Failed> {
    poll.per_market
        .iter()
        .find(|m| m.market == key)
        .ok_or_else(|| format!("no summary for {key}: {poll:?}").into())
}

/// Records the simulator's feed holds for Nashville modified at or after `since`.
fn nashville_since(
    sim: &SimServer,
    since: Option<DateTime<Utc>>,
) -> (usize, Option<DateTime<Utc>>) {
    sim.handle().with_market(|m| {
        let modified: Vec<DateTime<Utc>> = m
            .all_listings()
            .filter(|l| l.market == "nashville-tn")
            .map(|l| l.modified_at)
            .filter(|at| since.is_none_or(|s| *at >= s))
            .collect();
        (modified.len(), modified.iter().max().copied())
    })
}

async fn a_reso_poll_sends_the_market_filter_and_an_oauth_token_then_reads_only_changes(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let s = setup(&aws).await?;
    let sim = sim().await?;
    for (key, mls) in [
        // Nashville's MLS: the raw filter matches, so the whole market is read.
        ("nashville-tn", "RealTracs"),
        // Not Syracuse's MLS: were the raw filter not sent, Syracuse's listings would come.
        ("syracuse-ny", "RealTracs"),
    ] {
        s.config
            .put_market(&WatchedMarket {
                market: key.into(),
                sources: vec!["reso".into()],
                min_price: None,
                max_price: None,
                home_types: Vec::new(),
                poll_every_minutes: 60,
                reso_filter: Some(format!("OriginatingSystemName eq '{mls}'")),
                rentals: false,
                watched_since: Default::default(),
            })
            .await?;
    }

    // A made-up bearer token is refused: the simulator takes only its own tokens.
    let static_token = function(&s, &sim, r#"{"reso": "made-up-token"}"#).await?;
    // Failed polls are recorded too: these run earlier, so the markets are due again later.
    let refused = static_token
        .handle(
            &PollRequest::default(),
            sim.handle().now() - TimeDelta::hours(4),
        )
        .await;
    let refused_nashville = market(&refused, "nashville-tn")?;
    ensure(
        refused.failed_markets == 2
            && refused_nashville
                .error
                .as_deref()
                .is_some_and(|e| e.contains("401")),
        format!("a made-up token must get 401: {refused:?}"),
    )?;

    let credentials = serde_json::json!({"reso": {
        "token_url": format!("{}/reso/token", sim.base_url()),
        "client_id": realty_sim::RESO_CLIENT_ID,
        "client_secret": realty_sim::RESO_CLIENT_SECRET,
        "scope": realty_sim::RESO_SCOPE,
    }});
    let wrong = credentials
        .to_string()
        .replace(realty_sim::RESO_CLIENT_SECRET, "guess");
    let wrong_secret = function(&s, &sim, &wrong).await?;
    let refused = wrong_secret
        .handle(
            &PollRequest::default(),
            sim.handle().now() - TimeDelta::hours(2),
        )
        .await;
    ensure(
        refused.failed_markets == 2 && !format!("{refused:?}").contains("guess"),
        format!("a wrong client secret gets no token, and is not shown: {refused:?}"),
    )?;

    let oauth = function(&s, &sim, &credentials.to_string()).await?;
    let (whole, watermark) = nashville_since(&sim, None);
    let first = oauth
        .handle(&PollRequest::default(), sim.handle().now())
        .await;
    let nashville = market(&first, "nashville-tn")?;
    let syracuse = market(&first, "syracuse-ny")?;
    ensure(
        first.failed_markets == 0
            && nashville.listings + nashville.rejects == whole
            && nashville.new == nashville.listings
            && syracuse.listings + syracuse.rejects == 0,
        format!(
            "the first poll reads Nashville's {whole} records and none of Syracuse's: {first:?}"
        ),
    )?;

    ensure(
        nashville.complete,
        format!("the first read is a full one, complete by its @odata.count: {first:?}"),
    )?;

    // Half a day later, only the records modified since the first poll's newest are asked
    // for.
    sim.handle().advance(TimeDelta::hours(12))?;
    let (changed, _) = nashville_since(&sim, watermark);
    ensure(
        changed > 0 && changed < whole,
        format!("a day changes some listings, not most: {changed} of {whole}"),
    )?;
    let second = oauth
        .handle(&PollRequest::default(), sim.handle().now())
        .await;
    let nashville = market(&second, "nashville-tn")?;
    ensure(
        second.failed_markets == 0 && nashville.listings + nashville.rejects == changed,
        format!("the second poll reads the {changed} records modified since the first: {second:?}"),
    )?;
    ensure(
        nashville.delisted == 0 && !nashville.complete,
        format!("an incremental read is not complete and infers no delisting: {second:?}"),
    )?;

    // A day after the first full read, the market is read whole again (the reconciliation
    // that alone may infer delistings; the simulator purges no record, so there are none).
    sim.handle().advance(TimeDelta::hours(13))?;
    let (whole, _) = nashville_since(&sim, None);
    let third = oauth
        .handle(&PollRequest::default(), sim.handle().now())
        .await;
    let nashville = market(&third, "nashville-tn")?;
    ensure(
        third.failed_markets == 0
            && nashville.complete
            && nashville.listings + nashville.rejects == whole
            && nashville.delisted == 0,
        format!("the daily full read reads all {whole} records and delists none: {third:?}"),
    )
}
