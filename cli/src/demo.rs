//! `realty demo`: the whole pipeline, locally, against a simulated market.
//!
//! Brings the local AWS up with a fresh stack (resource-name prefix `demo-<time>`, so a
//! second demo never meets the first one's data), starts the simulated market, and then for
//! each step of simulated time: advances the market, runs the poller (observing at the
//! simulated time) while the local event source mappings ([`realty_infra::runner`]) feed the
//! metrics and alerts handlers from the streams, drains both streams, and collects the alerts
//! from an SQS queue subscribed to the alert topic. At the end it prints a summary per market
//! and the alert latency, writes the HTML report (and its data as JSON), and leaves the
//! stack running. docs/demo.md describes it.

mod alert_queue;
mod steps;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use clap::Args;
use realty_aws::adapters::dynamodb::DynamoMarketStore;
use realty_aws::adapters::retry::RetryPolicy;
use realty_aws::functions::poller::build_poller;
use realty_infra::emulator::{self, EmulatorKind};
use realty_infra::provision::{ProvisionOptions, physical_name};
use realty_infra::runner;
use realty_infra::stack::{self, LocalAws, UpOptions};
use realty_infra::template::Template;
use realty_lake::curate::{CurateReport, Curator};
use realty_model::config::StackResources;
use realty_model::listing::MarketKey;
use realty_model::markets::ConfigStore;
use realty_model::markets::SourceKind;
use realty_model::markets::WatchedMarket;
use realty_poller::config::PollerConfig;
use realty_poller::run::Poller;
use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};
use serde_json::json;

use crate::html::{self, LatencySummary, MarketSection, Report};
use crate::pipeline::{self, PipelineSdks, SentAt, StampedPublisher, StreamMappings};
use alert_queue::subscribe_alert_queue;
use steps::{AlertQueue, DemoPoller, Steps, Tally};

/// `realty demo` options. The defaults fit in about two minutes on two cores (debug build).
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Seed of the simulated market.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Markets to simulate and poll.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "nashville-tn,syracuse-ny,austin-tx"
    )]
    pub markets: Vec<String>,
    /// The source each market is polled from, in turn: the first market from the first
    /// source, and so on, starting over past the last (the default polls the default markets
    /// from one source each). zillow, realtor or reso for US markets; avito or mubawab for the
    /// simulator's Moroccan ones (ma/casablanca, ma/rabat, ma/marrakech): all served by the
    /// simulator.
    #[arg(
        long = "source",
        value_delimiter = ',',
        default_value = "zillow,realtor,reso"
    )]
    pub sources: Vec<SourceKind>,
    /// Live listings per market.
    #[arg(long, default_value_t = 200)]
    pub listings: u32,
    /// Simulated days to run.
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Simulated hours between two polls.
    #[arg(long, default_value_t = 24)]
    pub step_hours: u32,
    /// Multiplies the market's event rates (more happens per simulated day).
    #[arg(long, default_value_t = 4.0)]
    pub activity: f64,
    /// Resource-name prefix of the demo's stack (default: `demo-<UTC time>`, new each run).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Where to write index.html and report.json (default: target/realty/report).
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// The local emulator: localstack or moto (default: REALTY_EMULATOR, else LocalStack
    /// where it can run). A running `realty up` emulator is reused.
    #[arg(long, value_parser = crate::parse_emulator)]
    pub emulator: Option<realty_infra::emulator::EmulatorKind>,
}

/// The stack prefix a demo picks when none is given: `demo-YYYYMMDD-HHMMSS`.
fn is_automatic_prefix(prefix: &str) -> bool {
    let Some(stamp) = prefix.strip_prefix("demo-") else {
        return false;
    };
    let bytes = stamp.as_bytes();
    bytes.len() == 15
        && bytes[8] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 8 || b.is_ascii_digit())
}

/// Earlier demo stacks (those with an automatic prefix) keep their tables and objects for
/// inspection but give back their Firehose delivery stream: moto, like an AWS account,
/// allows 50 per region, and every demo run provisions a new stack. Returns how many were
/// deleted.
async fn retire_previous_demos(sdk: &aws_config::SdkConfig, current: &str) -> Result<usize> {
    let firehose = aws_sdk_firehose::Client::new(sdk);
    let mut names: Vec<String> = Vec::new();
    loop {
        let page = firehose
            .list_delivery_streams()
            .limit(100)
            .set_exclusive_start_delivery_stream_name(names.last().cloned())
            .send()
            .await
            .context("listing Firehose delivery streams")?;
        let more = page.has_more_delivery_streams && !page.delivery_stream_names.is_empty();
        names.extend(page.delivery_stream_names);
        if !more {
            break;
        }
    }
    let mut retired = 0;
    for name in names {
        let Some(prefix) = name.strip_suffix("-delivery-stream") else {
            continue;
        };
        if prefix == current
            || !is_automatic_prefix(prefix)
            || physical_name(prefix, "DeliveryStream") != name
        {
            continue;
        }
        firehose
            .delete_delivery_stream()
            .delivery_stream_name(&name)
            .allow_force_delete(true)
            .send()
            .await
            .with_context(|| format!("deleting the delivery stream {name}"))?;
        retired += 1;
    }
    Ok(retired)
}
pub async fn run(args: DemoArgs, endpoint: Option<String>) -> Result<()> {
    if args.days == 0 || args.step_hours == 0 {
        bail!("--days and --step-hours must be at least 1");
    }
    let market_sources = assign_sources(&args.markets, &args.sources)?;
    let started = Instant::now();
    let root = emulator::project_root()?;
    let template = Template::load(&root.join("template.yaml"))?;
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("demo-{}", Utc::now().format("%Y%m%d-%H%M%S")));
    let stack = DemoStack::up(&args, &root, prefix, endpoint).await?;

    // The simulated days end now (on the hour), so the figures, the lake's freshness and the
    // dashboard's dates are today's, as a live stack's would be.
    let sim_start = demo_start(Utc::now(), args.days);
    let sim = start_market(&args, sim_start).await?;
    let sent: SentAt = Arc::default();
    let poller = demo_poller(&stack, &market_sources, &sim.base_url(), &sent)?;
    watch_markets(&poller, &market_sources, sim_start).await?;

    let mut streams = DemoStreams::new(&stack, &template).await?;
    let tally = streams.run_steps(&sim, &poller, &args).await?;
    let run_seconds = started.elapsed().as_secs_f64();
    sim.shutdown().await?;

    // Latency of each alert, from PutRecords of the event that made it to its publish.
    let latencies = pipeline::alert_latencies_ms(&streams.mappings.published, &sent)?;
    let latency = LatencySummary::of(&latencies);
    // Each market as the API answers it: figures, lists of interest, and the alerts of its
    // feed (those the subscriber queue received are for the latency and the count below).
    let markets = html::gather(&stack.market_store(), &args.markets).await?;
    let curated = curate_twice(&stack).await?;
    let outcome = Outcome {
        args: &args,
        stack: &stack,
        market_sources: &market_sources,
        sim_start,
        tally,
        run_seconds,
        curated,
        alerts_in_feed: markets.iter().map(|m| m.alerts.len()).sum(),
        streams: &streams,
    };
    let report = outcome.report(markets, latency.clone());
    let index = write_report(&args, &root, &report)?;
    let StreamMappings {
        metrics, alerts, ..
    } = &streams.mappings;
    print_summary(&report, &latency, &metrics.stats, &alerts.stats);
    outcome.print_where_to_look(&index);
    Ok(())
}

/// The demo's stack on the local AWS, and how to reach it.
struct DemoStack {
    prefix: String,
    local: LocalAws,
    sdk: aws_config::SdkConfig,
    resources: StackResources,
}

impl DemoStack {
    /// Starts the local AWS (or reuses a running one), provisions the stack `prefix` from
    /// template.yaml, and retires earlier demos' delivery streams.
    async fn up(
        args: &DemoArgs,
        root: &Path,
        prefix: String,
        endpoint: Option<String>,
    ) -> Result<Self> {
        eprintln!("starting the local AWS and provisioning stack {prefix} from template.yaml...");
        let local = stack::up(&UpOptions {
            project_root: root.to_path_buf(),
            endpoint,
            emulator: args.emulator,
            provision: ProvisionOptions {
                stack_name: prefix.clone(),
                parameters: BTreeMap::new(),
            },
        })
        .await
        .context("bringing up the local AWS")?;
        let sdk = realty_aws::sdk::sdk_config(Some(&local.endpoint)).await;
        let resources = StackResources::from_outputs(&local.stack.outputs)?;
        let retired = retire_previous_demos(&sdk, &prefix).await?;
        if retired > 0 {
            eprintln!("retired the Firehose delivery streams of {retired} earlier demo stack(s)");
        }
        Ok(Self {
            prefix,
            local,
            sdk,
            resources,
        })
    }

    fn market_store(&self) -> DynamoMarketStore {
        DynamoMarketStore {
            client: aws_sdk_dynamodb::Client::new(&self.sdk),
            table: self.resources.market_table.clone(),
            retry: RetryPolicy::default(),
        }
    }
}

/// The two event source mappings, with the real handlers, and the queue subscribed to the
/// alert topic.
struct DemoStreams {
    mappings: StreamMappings,
    queue: AlertQueue,
}

impl DemoStreams {
    async fn new(stack: &DemoStack, template: &Template) -> Result<Self> {
        let mappings = StreamMappings::new(
            &PipelineSdks::same(&stack.sdk),
            template,
            &stack.local.stack,
            &stack.resources,
        )
        .await?;
        let queue = AlertQueue {
            url: subscribe_alert_queue(&stack.sdk, &stack.resources, &stack.prefix).await?,
            sqs: aws_sdk_sqs::Client::new(&stack.sdk),
        };
        Ok(Self { mappings, queue })
    }

    /// The demo's simulated time, a poll every `--step-hours` over `--days`.
    async fn run_steps(
        &mut self,
        sim: &SimServer,
        poller: &DemoPoller,
        args: &DemoArgs,
    ) -> Result<Tally> {
        Steps {
            sim,
            poller,
            metrics: &mut self.mappings.metrics,
            alerts: &mut self.mappings.alerts,
            queue: &self.queue,
            step_hours: args.step_hours,
            steps: args.days * 24 / args.step_hours,
        }
        .run()
        .await
    }
}

/// The simulated market of the demo's US markets, from `sim_start`.
async fn start_market(args: &DemoArgs, sim_start: DateTime<Utc>) -> Result<SimServer> {
    SimServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        SimConfig {
            seed: args.seed,
            market: MarketConfig {
                // The US markets; the Moroccan ones are the simulator's portals'.
                markets: us_markets(&args.markets),
                listings_per_market: args.listings,
                activity: args.activity,
                start: sim_start,
                ..MarketConfig::default()
            },
            faults: FaultConfig::none(),
        },
    )
    .await
    .context("starting the simulated market")
}

/// The poller, as `realty invoke poller` builds it, with its publisher timed into `sent`.
fn demo_poller(
    stack: &DemoStack,
    market_sources: &BTreeMap<String, SourceKind>,
    base_url: &str,
    sent: &SentAt,
) -> Result<DemoPoller> {
    let built = build_poller(
        &stack.sdk,
        &stack.resources,
        &poller_config(market_sources, base_url)?,
        &crate::sim::poller_keys(base_url),
    )?;
    Ok(Poller {
        client: built.client,
        endpoints: built.endpoints,
        unkeyed: built.unkeyed,
        secret: built.secret,
        config: built.config,
        policy: built.policy,
        limiters: built.limiters,
        publisher: StampedPublisher {
            inner: built.publisher,
            sent: sent.clone(),
        },
        states: built.states,
        raw: built.raw,
        concurrency: built.concurrency,
        delisting_guard: built.delisting_guard,
        run_budget: built.run_budget,
    })
}

/// The poller's configuration: every source of the demo's markets at the simulator, RESO
/// with the client credentials its token endpoint takes.
fn poller_config(
    market_sources: &BTreeMap<String, SourceKind>,
    base_url: &str,
) -> Result<PollerConfig> {
    let sources: BTreeSet<SourceKind> = market_sources.values().copied().collect();
    let source_names: Vec<&str> = sources.iter().map(|s| s.as_str()).collect();
    Ok(PollerConfig::from_lookup(|name| match name {
        "REALTY_SOURCES" => Some(source_names.join(",")),
        "REALTY_ZILLOW_URL" | "REALTY_REALTOR_URL" => Some(base_url.to_owned()),
        "REALTY_RESO_URL" => Some(format!("{base_url}/reso/odata")),
        "REALTY_AVITO_URL" => Some(format!("{base_url}/avito")),
        "REALTY_MUBAWAB_URL" => Some(format!("{base_url}/mubawab")),
        // The simulator needs no politeness.
        "REALTY_REQUESTS_PER_SECOND" | "REALTY_PORTAL_REQUESTS_PER_SECOND" => Some("500".into()),
        _ => None,
    })?)
}

/// The demo's markets are watched, as `realty markets add` would make them, each from its
/// source: the API, the dashboard and a scheduled poll see them, and each step's poll
/// reads the watched markets due (all of them: a step is at least their interval).
/// Added when the simulated run starts: its first poll records their inventory, not news.
async fn watch_markets(
    poller: &DemoPoller,
    market_sources: &BTreeMap<String, SourceKind>,
    sim_start: DateTime<Utc>,
) -> Result<()> {
    for (market, source) in market_sources {
        // Zillow, Realtor.com and portal markets read their rentals too (market rents).
        let mut watched =
            WatchedMarket::with_defaults(market.clone(), vec![source.as_str().into()]);
        watched.watch_from(None, sim_start);
        poller
            .config
            .put_market(&watched)
            .await
            .with_context(|| format!("watching {market}"))?;
    }
    Ok(())
}

/// The lake's Iceberg tables, as the hourly curator makes them; twice, as a retried or
/// overlapping run would (the second adds nothing).
async fn curate_twice(stack: &DemoStack) -> Result<[CurateReport; 2]> {
    let curator = Curator::new(&stack.sdk, &stack.resources).await?;
    let curated = Box::pin(curator.run(Utc::now())).await?;
    let curated_again = Box::pin(curator.run(Utc::now())).await?;
    Ok([curated, curated_again])
}

/// Writes index.html and report.json into the report directory; returns index.html's path.
fn write_report(args: &DemoArgs, root: &Path, report: &Report) -> Result<PathBuf> {
    let dir = args
        .report_dir
        .clone()
        .unwrap_or_else(|| stack::state_dir(root).join("report"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let index = dir.join("index.html");
    std::fs::write(&index, html::render(report)?)
        .with_context(|| format!("writing {}", index.display()))?;
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("writing {}", dir.join("report.json").display()))?;
    Ok(index)
}

/// How a demo run came about and what went through it.
struct Outcome<'a> {
    args: &'a DemoArgs,
    stack: &'a DemoStack,
    market_sources: &'a BTreeMap<String, SourceKind>,
    sim_start: DateTime<Utc>,
    tally: Tally,
    run_seconds: f64,
    /// The curator's first run and its second (which adds nothing).
    curated: [CurateReport; 2],
    alerts_in_feed: usize,
    streams: &'a DemoStreams,
}

impl Outcome<'_> {
    /// The report: each market as the API answers it, the alert latency, and the run.
    fn report(&self, markets: Vec<MarketSection>, latency: Option<LatencySummary>) -> Report {
        Report {
            title: format!("realty-stream demo: {} simulated days", self.args.days),
            generated_at: Utc::now(),
            source: format!(
                "local AWS at {}, stack {}",
                self.stack.local.endpoint, self.stack.prefix
            ),
            markets,
            latency,
            run: Some(self.run_info()),
        }
    }

    /// The report's account of the run.
    fn run_info(&self) -> serde_json::Value {
        let (args, resources, tally) = (self.args, &self.stack.resources, &self.tally);
        let StreamMappings {
            metrics, alerts, ..
        } = &self.streams.mappings;
        json!({
            "stack_name": self.stack.prefix,
            "endpoint": self.stack.local.endpoint,
            "data_lake_bucket": resources.data_lake_bucket,
            "lake_database": resources.lake_database,
            "market_table": resources.market_table,
            "config_table": resources.config_table,
            "curated": self.curated,
            "seed": args.seed,
            "sim_start": self.sim_start,
            "markets": args.markets,
            "market_sources": self.market_sources
                .iter()
                .map(|(market, source)| (market.as_str(), source.as_str()))
                .collect::<BTreeMap<_, _>>(),
            "listings_per_market": args.listings,
            "activity": args.activity,
            "days": args.days,
            "step_hours": args.step_hours,
            "poll_times": tally.poll_times,
            "price_drop_threshold_centi_pct": alerts.function().function.thresholds.price_drop_centi_pct,
            "events_published": tally.events_published,
            "alerts_received": tally.alerts_received.len(),
            "alerts_in_feed": self.alerts_in_feed,
            "metrics_mapping": metrics.stats,
            "alerts_mapping": alerts.stats,
            "run_seconds": self.run_seconds,
            "polling_seconds": tally.polling.as_secs_f64(),
            "draining_seconds": tally.draining.as_secs_f64(),
        })
    }

    /// The lines after the summary table: the sources, the lake, the report, and where the
    /// stack that stays up can be inspected.
    fn print_where_to_look(&self, index: &Path) {
        let (args, local, resources) = (self.args, &self.stack.local, &self.stack.resources);
        let (prefix, received) = (&self.stack.prefix, self.tally.alerts_received.len());
        let polled: Vec<String> = self
            .market_sources
            .iter()
            .map(|(market, source)| format!("{market} from {source}"))
            .collect();
        println!("sources: {}", polled.join(", "));
        println!(
            "lake:    {} events into Iceberg table listing_events ({} already there), listings and market_daily in Glue database {} (docs/lake.md)",
            self.curated[0].events_added, self.curated[0].events_duplicate, resources.lake_database
        );
        if self.alerts_in_feed != received {
            println!(
                "note: the alert feed holds {} alerts, the subscriber queue received {received}",
                self.alerts_in_feed
            );
        }
        println!();
        println!("report:   {}", index.display());
        println!(
            "stack {prefix} stays up on {} at {} (simulated {} days in {:.0} s: {:.0} s polling, {:.0} s draining the streams)",
            local
                .emulator
                .map_or("the given endpoint", EmulatorKind::name),
            local.endpoint,
            args.days,
            self.run_seconds,
            self.tally.polling.as_secs_f64(),
            self.tally.draining.as_secs_f64()
        );
        println!(
            "inspect:  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION={} aws --endpoint-url {} dynamodb scan --table-name {} --max-items 5",
            local.stack.region, local.endpoint, resources.market_table
        );
        println!(
            "          ... aws --endpoint-url {} s3 ls --recursive s3://{}/listings/ | head",
            local.endpoint, resources.data_lake_bucket
        );
        println!(
            "          realty report --market {}",
            args.markets.first().map_or("nashville-tn", String::as_str)
        );
        println!(
            "serve:    realty serve   (the market API and its dashboard on http://127.0.0.1:8080/; the page asks for `realty api token`)"
        );
        println!("stop:     realty down");
    }
}

/// Where the simulated days start: `days` before the current hour.
fn demo_start(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
    hour - TimeDelta::days(i64::from(days))
}

/// The source each market is polled from: the sources in turn, starting over past the
/// last.
fn assign_sources(
    markets: &[String],
    sources: &[SourceKind],
) -> Result<BTreeMap<String, SourceKind>> {
    if sources.is_empty() {
        bail!("--source names no source: zillow, realtor or reso");
    }
    if let Some(source) = sources.iter().find(|s| !s.is_polled()) {
        bail!("--source {source}: {}", source.why_not_polled());
    }
    let moroccan: Vec<String> = realty_sim::moroccan_cities()
        .iter()
        .map(|c| c.market_key())
        .collect();
    let mut assigned = BTreeMap::new();
    for (market, source) in markets.iter().zip(sources.iter().cycle()) {
        let us = MarketKey::country_of(market).is_some_and(|c| c.is_us());
        if source.is_portal() && !moroccan.contains(market) {
            bail!(
                "{market} from {source}: the simulator's portals list {}",
                moroccan.join(", ")
            );
        }
        if !source.is_portal() && !us {
            bail!("{market} from {source}: the APIs list US markets only (nashville-tn)");
        }
        if assigned.insert(market.clone(), *source).is_some() {
            bail!("--markets names {market} twice");
        }
    }
    Ok(assigned)
}

/// The US markets of `markets`, for the simulator's US market (at least one: it simulates
/// every built-in market when given none).
fn us_markets(markets: &[String]) -> Vec<String> {
    let us: Vec<String> = markets
        .iter()
        .filter(|m| MarketKey::country_of(m).is_some_and(|c| c.is_us()))
        .cloned()
        .collect();
    if us.is_empty() {
        vec!["nashville-tn".to_owned()]
    } else {
        us
    }
}

fn print_summary(
    report: &Report,
    latency: &Option<LatencySummary>,
    metrics: &runner::MappingStats,
    alerts: &runner::MappingStats,
) {
    println!();
    println!(
        "{:<16} {:>8} {:>15} {:>10} {:>12} {:>8} {:>8} {:>7}",
        "market", "active", "median price", "7d trend", "cuts (7d)", "rentals", "yield", "alerts"
    );
    for m in &report.markets {
        println!(
            "{:<16} {:>8} {:>15} {:>10} {:>12} {:>8} {:>8} {:>7}",
            m.report.market,
            m.report.live.active_listings,
            realty_model::format::amount(m.report.live.median_price, m.report.units.currency),
            m.report
                .trends
                .median_price_change_7d_pct
                .map_or("-".into(), |p| format!("{p:+.1}%")),
            m.report.live.price_cuts_7d,
            m.report.live.active_rentals,
            m.report
                .live
                .gross_yield
                .map_or("-".into(), |y| format!("{:.2}%", y * 100.0)),
            m.alerts.len()
        );
    }
    println!();
    println!(
        "metrics: {} records in {} invocations ({} retries, {} discarded); alerts: {} of {} stream records passed the trigger's filter (MODIFY, or INSERT of several events), {} invocations",
        metrics.records_succeeded,
        metrics.invocations,
        metrics.retries,
        metrics.records_discarded,
        alerts.records_read - alerts.filtered_out,
        alerts.records_read,
        alerts.invocations
    );
    match latency {
        Some(l) => println!(
            "alert latency (poller PutRecords -> SNS publish, {} alerts): p50 {:.0} ms, p99 {:.0} ms",
            l.alerts, l.p50_ms, l.p99_ms
        ),
        None => println!("alert latency: no alert was raised"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markets_take_the_sources_in_turn() {
        let markets: Vec<String> = ["a-tn", "b-ny", "c-tx", "d-ca"]
            .iter()
            .map(|m| m.to_string())
            .collect();
        let all = [SourceKind::Zillow, SourceKind::Realtor, SourceKind::Reso];
        let assigned = assign_sources(&markets, &all).expect("assigned");
        assert_eq!(
            assigned.into_iter().collect::<Vec<_>>(),
            [
                ("a-tn".to_owned(), SourceKind::Zillow),
                ("b-ny".to_owned(), SourceKind::Realtor),
                ("c-tx".to_owned(), SourceKind::Reso),
                ("d-ca".to_owned(), SourceKind::Zillow),
            ]
        );
        let one = assign_sources(&markets[..2], &[SourceKind::Realtor]).expect("one source");
        assert!(one.values().all(|s| *s == SourceKind::Realtor));
        assert!(assign_sources(&markets, &[]).is_err());
        assert!(assign_sources(&markets, &[SourceKind::File]).is_err());
        assert!(assign_sources(&[markets[0].clone(), markets[0].clone()], &all).is_err());
        // A Moroccan market beside the US ones, from a portal.
        let beside: Vec<String> = vec!["a-tn".into(), "ma/casablanca".into()];
        let assigned =
            assign_sources(&beside, &[SourceKind::Zillow, SourceKind::Avito]).expect("beside");
        assert_eq!(assigned.get("ma/casablanca"), Some(&SourceKind::Avito));
        assert_eq!(us_markets(&beside), ["a-tn"]);
        assert!(assign_sources(&beside, &[SourceKind::Avito]).is_err());
        assert!(assign_sources(&beside[1..], &[SourceKind::Zillow]).is_err());
        assert!(assign_sources(&["ma/fes".to_owned()], &[SourceKind::Mubawab]).is_err());
    }

    #[test]
    fn only_automatic_demo_prefixes_are_retired() {
        assert!(is_automatic_prefix("demo-20261121-201533"));
        for other in [
            "realty",
            "demo",
            "demo-2026112-201533",
            "demo-20261121-20153x",
            "it42-0",
        ] {
            assert!(!is_automatic_prefix(other), "{other}");
        }
    }
}
