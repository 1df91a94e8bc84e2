//! A market's first read is its inventory, not news (issue 58), through the pipeline as
//! Lambda runs it: the poller function over the simulator, the metrics and alerts functions
//! through the local event source mappings, `NewListingAlerts` on. The first poll of a market
//! just added raises no alert for the homes already for sale, and its day counts as new
//! listings only those listed that day; the listings the next poll finds are news (each a
//! `new_listing` alert, each counted); a market removed and added again reads a baseline
//! again.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use libtest_mimic::Failed;
use realty_alerts::config::{AlertsConfig, NEW_LISTING_ALERTS_ENV};
use realty_alerts::feed::feed_key;
use realty_aws::functions::alerts::AlertsFunction;
use realty_aws::functions::api::ApiFunction;
use realty_aws::functions::metrics::MetricsFunction;
use realty_infra::runner::Mapping;
use realty_model::listing::{EventKind, ListingEvent, ListingStatus, Offer};
use realty_model::markets::ConfigStore;
use realty_model::markets::SourceKind;
use realty_model::markets::WatchedMarket;
use realty_poller::run::{PollRequest, PollSummary};
use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};
use realty_tests::{Explain, MetricsHandler, TestAws, ensure};
use serde_json::Value;

use crate::api::get_json;
use crate::demo::pump_until_quiet;
use crate::monitoring::Alerts;
use crate::operations::{Setup, setup};

crate::async_tests!(a_market_s_first_read_is_its_inventory_not_news);

const MARKET: &str = "nashville-tn";

/// The pipeline of the test: the poller, metrics and alerts functions, the API.
struct Pipeline {
    aws: Arc<TestAws>,
    s: Setup,
    sim: SimServer,
    poller: realty_aws::functions::poller::PollerFunction,
    metrics: Mapping<MetricsHandler>,
    alerts: Mapping<Alerts>,
    api: ApiFunction,
}

impl Pipeline {
    /// Polls the watched market now (simulated time), then runs the metrics and alerts
    /// functions over what it published; the poll and its events.
    async fn poll(&mut self) -> Result<(PollSummary, Vec<ListingEvent>), Failed> {
        let polled = self
            .poller
            .handle(&PollRequest::default(), self.sim.handle().now())
            .await;
        ensure(polled.failed_markets == 0, format!("{polled:?}"))?;
        pump_until_quiet(&mut self.metrics).await?;
        // The table's stream hands out the metrics' writes a moment after them.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        pump_until_quiet(&mut self.alerts).await?;
        let events =
            crate::poller::stream_events(&self.aws, &self.s.resources.listing_events_stream)
                .await?;
        let ours = events
            .into_iter()
            .filter(|e| e.poll_id.starts_with(&polled.poll_id))
            .collect();
        Ok((polled, ours))
    }

    /// The alert feed of the market: (alert type, listing id, observed at) of each alert.
    async fn alerts(&self) -> Result<BTreeSet<(String, String, DateTime<Utc>)>, Failed> {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.s.sdk);
        let items = dynamodb
            .query()
            .table_name(&self.s.resources.market_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(feed_key(MARKET)),
            )
            .send()
            .await
            .explain("Query")?
            .items
            .unwrap_or_default();
        let mut out = BTreeSet::new();
        for item in items {
            let body = item
                .get("body")
                .and_then(|b| b.as_s().ok())
                .ok_or("no body")?;
            let body: Value = serde_json::from_str(body)?;
            let text = |field: &str| body[field].as_str().unwrap_or_default().to_owned();
            out.insert((
                text("alert_type"),
                text("listing_id"),
                serde_json::from_value(body["observed_at"].clone())?,
            ));
        }
        Ok(out)
    }

    /// The market's `new_listings_today` on `day`, as the API reports it.
    async fn new_listings_on(&self, day: NaiveDate) -> Result<Option<i64>, Failed> {
        let report = get_json(&self.api, &format!("/markets/{MARKET}"), &[]).await?;
        let daily = report["daily"].as_array().ok_or("no daily figures")?;
        Ok(daily
            .iter()
            .find(|d| d["period"] == day.to_string())
            .and_then(|d| d["figures"]["new_listings_today"].as_i64()))
    }

    /// Watches the market as `realty markets add` adds it at `at`.
    async fn watch_from(&self, at: DateTime<Utc>) -> Result<(), Failed> {
        let mut market = WatchedMarket::with_defaults(MARKET, vec!["zillow".into()]);
        market.rentals = false;
        market.watch_from(None, at);
        self.s.config.put_market(&market).await?;
        Ok(())
    }
}

/// A sale listing the metrics count in inventory (for sale or pending).
fn on_market(e: &ListingEvent) -> bool {
    e.listing.offer == Offer::Sale
        && matches!(
            e.listing.status,
            ListingStatus::Active | ListingStatus::UnderContract | ListingStatus::Pending
        )
}

async fn a_market_s_first_read_is_its_inventory_not_news(aws: Arc<TestAws>) -> Result<(), Failed> {
    let s = setup(&aws).await?;
    let now = Utc::now();
    let sim = SimServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        SimConfig {
            seed: 58,
            market: MarketConfig {
                markets: vec![MARKET.into()],
                listings_per_market: 200,
                // Busier than a real market, so a day brings new listings.
                activity: 6.0,
                // Days before now, as `make demo` runs: the API's window is the wall clock's.
                start: chrono::DurationRound::duration_trunc(now, TimeDelta::hours(1))
                    .unwrap_or(now)
                    - TimeDelta::days(3),
                ..MarketConfig::default()
            },
            faults: FaultConfig::none(),
        },
    )
    .await?;
    s.set_key(SourceKind::Zillow, "test-key-zillow").await?;
    let template = aws.template();
    let metrics = Mapping::new(
        &s.sdk,
        &template,
        &s.stack,
        "MetricsFunction",
        MetricsHandler(MetricsFunction::new(
            &aws.function_sdk("MetricsFunction").await,
            &s.resources,
        )),
    )
    .await?;
    let thresholds = AlertsConfig::from_lookup(|name| {
        (name == NEW_LISTING_ALERTS_ENV).then(|| "true".to_owned())
    })?;
    let alerts = Mapping::new(
        &s.sdk,
        &template,
        &s.stack,
        "AlertsFunction",
        Alerts(AlertsFunction::new(
            &aws.function_sdk("AlertsFunction").await,
            &s.resources,
            &thresholds,
        )),
    )
    .await?;
    let mut p = Pipeline {
        aws: aws.clone(),
        poller: s.function(&sim).await?,
        api: ApiFunction::new(&aws.function_sdk("ApiFunction").await, &s.resources),
        s,
        sim,
        metrics,
        alerts,
    };

    // The market added, and read: every listing is inventory.
    let added = p.sim.handle().now();
    p.watch_from(added).await?;
    let (_, first) = p.poll().await?;
    let day = added.date_naive();
    ensure(
        !first.is_empty() && first.iter().all(|e| e.kind == EventKind::New && e.baseline),
        format!("the first read's events are not all baseline: {first:?}"),
    )?;
    let listed_before = first
        .iter()
        .filter(|e| e.listing.on_market_date.is_none_or(|d| d < day))
        .count();
    let listed_that_day = first
        .iter()
        .filter(|e| on_market(e) && e.listing.on_market_date == Some(day))
        .count() as i64;
    let for_sale = first.iter().filter(|e| on_market(e)).count() as i64;
    ensure(
        listed_before > 0 && listed_that_day < for_sale,
        format!("{listed_before} listed before {day}, {listed_that_day} that day of {for_sale}"),
    )?;
    let raised = p.alerts().await?;
    ensure(
        raised.is_empty(),
        format!(
            "the first read raised {} alerts: {:?}...",
            raised.len(),
            raised.iter().take(10).collect::<Vec<_>>()
        ),
    )?;
    let counted = p.new_listings_on(day).await?;
    ensure(
        counted == Some(listed_that_day),
        format!("{day}: {counted:?} new listings, {listed_that_day} listed that day"),
    )?;

    // A day later: what the read finds new is news, alerted and counted.
    p.sim.handle().advance(TimeDelta::days(1))?;
    let (second, news) = p.poll().await?;
    let found: Vec<&ListingEvent> = news.iter().filter(|e| e.kind == EventKind::New).collect();
    ensure(
        !found.is_empty() && found.iter().all(|e| !e.baseline),
        format!("the next read's new listings: {found:?}"),
    )?;
    let at = second.observed_at.ok_or("no poll time")?;
    let alertable: BTreeSet<String> = found
        .iter()
        .filter(|e| {
            e.listing.offer == Offer::Sale
                && !matches!(
                    e.listing.status,
                    ListingStatus::Sold | ListingStatus::OffMarket
                )
        })
        .map(|e| e.listing.id.to_string())
        .collect();
    let announced: BTreeSet<String> = p
        .alerts()
        .await?
        .into_iter()
        .filter(|(kind, _, seen)| kind == "new_listing" && *seen == at)
        .map(|(_, id, _)| id)
        .collect();
    ensure(
        announced == alertable && !announced.is_empty(),
        format!("new-listing alerts {announced:?}, new listings {alertable:?}"),
    )?;
    let day = at.date_naive();
    let counted = p.new_listings_on(day).await?;
    let expected = found.iter().filter(|e| on_market(e)).count() as i64;
    ensure(
        counted == Some(expected),
        format!("{day}: {counted:?} new listings, the read found {expected}"),
    )?;

    // Removed, and added again a day later: its first read is inventory again.
    ensure(p.s.config.remove_market(MARKET).await?, "not watched")?;
    p.sim.handle().advance(TimeDelta::days(1))?;
    let again = p.sim.handle().now();
    p.watch_from(again).await?;
    let (_, readded) = p.poll().await?;
    let found: BTreeSet<String> = readded
        .iter()
        .filter(|e| e.kind == EventKind::New)
        .map(|e| e.listing.id.to_string())
        .collect();
    ensure(
        !found.is_empty()
            && readded
                .iter()
                .all(|e| (e.kind == EventKind::New) == e.baseline),
        format!("the read of the market added again: {readded:?}"),
    )?;
    // Its listings found new are inventory; the changes of those it knew alert as ever.
    let news: Vec<_> = p
        .alerts()
        .await?
        .into_iter()
        .filter(|(kind, id, seen)| {
            *seen == again
                && found.contains(id)
                && ["new_listing", "undervalued", "anomaly"].contains(&kind.as_str())
        })
        .collect();
    ensure(
        news.is_empty(),
        format!("the market added again alerted its inventory: {news:?}"),
    )?;
    p.sim.shutdown().await?;
    Ok(())
}
