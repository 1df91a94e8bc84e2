//! Day one on an account, locally: the poller as Lambda builds it (`PollerFunction`) reads
//! the stack's secret and ConfigTable at every run. A source without a key is reported while
//! the others poll, a key set afterwards is used at the next run, a spent budget stops its
//! source without delisting anything, and `realty markets add` is polled at the next run
//! without a redeploy.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use libtest_mimic::Failed;
use realty_aws::adapters::config::DynamoConfigStore;
use realty_aws::adapters::secrets::SecretsManagerSource;
use realty_aws::functions::poller::PollerFunction;
use realty_infra::provision::ProvisionedStack;
use realty_infra::stack::LocalAws;
use realty_model::config::StackResources;
use realty_model::listing::{EventKind, ListingEvent};
use realty_model::markets::ConfigStore;
use realty_model::markets::SourceKind;
use realty_model::markets::{WatchedMarket, month_of};
use realty_model::ports::SecretSource;
use realty_poller::config::{PollerConfig, with_key};
use realty_poller::run::{PollRequest, PollSummary, SourceReport, SourceStatus};
use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};
use realty_tests::{TestAws, ensure};

crate::async_tests!(
    a_source_without_a_key_is_reported_while_the_others_poll,
    a_spent_budget_stops_its_source_without_delisting,
    a_market_added_with_the_cli_is_polled_at_the_next_run,
);

const MARKETS: [&str; 2] = ["nashville-tn", "syracuse-ny"];

async fn sim(seed: u64) -> Result<SimServer, Failed> {
    let config = SimConfig {
        seed,
        market: MarketConfig {
            markets: MARKETS.iter().map(|m| m.to_string()).collect(),
            listings_per_market: 120,
            ..MarketConfig::default()
        },
        faults: FaultConfig::none(),
    };
    Ok(SimServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await?)
}

pub(crate) struct Setup {
    pub stack: ProvisionedStack,
    pub resources: StackResources,
    pub sdk: aws_config::SdkConfig,
    /// The poller's: its calls are checked against its role.
    pub poller_sdk: aws_config::SdkConfig,
    pub config: DynamoConfigStore,
    pub secrets: SecretsManagerSource,
}

pub(crate) async fn setup(aws: &TestAws) -> Result<Setup, Failed> {
    let stack = aws.provision(&[]).await;
    let resources = StackResources::from_outputs(&stack.outputs)?;
    let sdk = aws.sdk_config().await;
    Ok(Setup {
        config: DynamoConfigStore {
            client: aws_sdk_dynamodb::Client::new(&sdk),
            table: resources.config_table.clone(),
        },
        secrets: SecretsManagerSource {
            client: aws_sdk_secretsmanager::Client::new(&sdk),
        },
        stack,
        resources,
        sdk,
        poller_sdk: aws.function_sdk("PollerFunction").await,
    })
}

impl Setup {
    /// The poller function as its `main.rs` builds it, over the simulator.
    pub(crate) async fn function(&self, sim: &SimServer) -> Result<PollerFunction, Failed> {
        let base = sim.base_url();
        let env = |name: &str| match name {
            "REALTY_ZILLOW_URL" | "REALTY_REALTOR_URL" => Some(base.clone()),
            "REALTY_REQUESTS_PER_SECOND" => Some("1000".into()),
            "REALTY_LISTING_API_SECRET_ARN" => Some(self.resources.api_key_secret.clone()),
            _ => None,
        };
        let config = PollerConfig::from_lookup(env)?;
        Ok(PollerFunction::new(&self.poller_sdk, &self.resources, config, env).await?)
    }

    pub(crate) async fn set_key(&self, source: SourceKind, key: &str) -> Result<(), Failed> {
        let id = &self.resources.api_key_secret;
        let current = self.secrets.secret_string(id).await?;
        self.secrets
            .put_secret_string(id, &with_key(&current, source, key)?)
            .await?;
        Ok(())
    }

    pub(crate) async fn watch(&self, market: &str, sources: &[&str]) -> Result<(), Failed> {
        let market = WatchedMarket {
            market: market.into(),
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
            min_price: None,
            max_price: None,
            home_types: Vec::new(),
            poll_every_minutes: 60,
            reso_filter: None,
            rentals: false,
            watched_since: Default::default(),
        };
        self.config.put_market(&market).await?;
        Ok(())
    }

    /// The `realty` binary pointed at this stack, as `realty up` would leave it: the local
    /// stack's state file names the endpoint and the stack's outputs.
    pub(crate) async fn local_cli(&self, aws: &TestAws) -> Result<LocalCli, Failed> {
        let state_dir = std::env::temp_dir().join(format!(
            "realty-cli-it-{}-{}",
            std::process::id(),
            self.stack.stack_name
        ));
        std::fs::create_dir_all(&state_dir)?;
        let state = LocalAws {
            emulator: None,
            endpoint: aws.endpoint.clone(),
            pid: None,
            pid_started: None,
            log_path: None,
            instance_dir: None,
            stack: self.stack.clone(),
        };
        std::fs::write(
            state_dir.join("local-aws.json"),
            serde_json::to_vec(&state)?,
        )?;
        Ok(LocalCli {
            realty: crate::demo::realty_binary(&aws.project_root, &state_dir).await?,
            state_dir,
            region: self.stack.region.clone(),
        })
    }

    /// Every event in the stream.
    pub(crate) async fn events(&self) -> Result<Vec<ListingEvent>, Failed> {
        let kinesis = aws_sdk_kinesis::Client::new(&self.sdk);
        realty_tests::kinesis_records(&kinesis, &self.resources.listing_events_stream)
            .await?
            .iter()
            .map(|r| {
                ListingEvent::decode(r.data().as_ref())
                    .map_err(|e| format!("stream record: {e}").into())
            })
            .collect()
    }
}

/// The `realty` binary and the state folder that points it at a test's stack.
pub(crate) struct LocalCli {
    pub realty: std::path::PathBuf,
    pub state_dir: std::path::PathBuf,
    region: String,
}

impl LocalCli {
    pub(crate) fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.realty);
        command
            .args(args)
            .env_remove("AWS_ENDPOINT_URL")
            .env("REALTY_STATE_DIR", &self.state_dir)
            .env("AWS_REGION", &self.region)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        command
    }
}

fn report<'a>(summary: &'a PollSummary, source: &str) -> Result<&'a SourceReport, Failed> {
    summary
        .sources
        .iter()
        .find(|s| s.source == source)
        .ok_or_else(|| format!("no report for {source}: {summary:?}").into())
}

async fn a_source_without_a_key_is_reported_while_the_others_poll(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let s = setup(&aws).await?;
    let sim = sim(71).await?;
    s.set_key(SourceKind::Zillow, "test-key-zillow").await?;
    s.watch("nashville-tn", &["zillow", "realtor"]).await?;
    let function = s.function(&sim).await?;

    // The schedule's input is `{}`: the watched markets that are due.
    let first = function
        .handle(&PollRequest::default(), sim.handle().now())
        .await;
    let zillow = report(&first, "zillow")?;
    let realtor = report(&first, "realtor")?;
    ensure(
        zillow.status == SourceStatus::Polled && zillow.requests > 0,
        format!("{zillow:?}"),
    )?;
    ensure(
        realtor.status == SourceStatus::NoKey && realtor.requests == 0,
        format!("{realtor:?}"),
    )?;
    let message = realtor.message.clone().unwrap_or_default();
    ensure(
        message.starts_with("no key for realtor: put it in secret ")
            && message.ends_with("with `realty secrets set --source realtor`"),
        message,
    )?;
    ensure(
        first.sources_without_key == 1 && first.failed_markets == 0 && first.published > 0,
        format!("{first:?}"),
    )?;
    let events = s.events().await?;
    ensure(
        !events.is_empty()
            && events
                .iter()
                .all(|e| e.listing.id.as_str().starts_with("zillow:")),
        format!("{} events, not all from zillow", events.len()),
    )?;
    ensure(
        events.len() == first.published,
        format!(
            "{} in the stream, {} published",
            events.len(),
            first.published
        ),
    )?;

    // A key set now is read at the next run, without a cold start; zillow is not due yet.
    s.set_key(SourceKind::Realtor, "test-key-realtor").await?;
    let second = function
        .handle(
            &PollRequest::default(),
            sim.handle().now() + TimeDelta::minutes(5),
        )
        .await;
    let realtor = report(&second, "realtor")?;
    ensure(
        realtor.status == SourceStatus::Polled && realtor.requests > 0,
        format!("{second:?}"),
    )?;
    ensure(
        second.sources.iter().all(|r| r.source != "zillow"),
        format!("zillow polled again before its interval: {second:?}"),
    )?;
    let now = sim.handle().now();
    let snapshot = s.config.load(&month_of(now)).await?;
    ensure(
        snapshot.used.get("zillow") == Some(&zillow.requests),
        format!("zillow requests counted: {:?}", snapshot.used),
    )?;
    sim.shutdown().await?;
    Ok(())
}

async fn a_spent_budget_stops_its_source_without_delisting(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let s = setup(&aws).await?;
    let sim = sim(72).await?;
    s.set_key(SourceKind::Zillow, "test-key-zillow").await?;
    let function = s.function(&sim).await?;
    let request = PollRequest {
        markets: vec!["nashville-tn".into()],
        ..PollRequest::default()
    };
    let first = function.handle(&request, sim.handle().now()).await;
    let used = report(&first, "zillow")?.requests;
    ensure(first.failed_markets == 0 && used >= 2, format!("{first:?}"))?;

    // One request left: the next read stops after its first page.
    s.config.set_budget("zillow", Some(used + 1)).await?;
    sim.handle().advance(TimeDelta::days(3))?;
    let second = function.handle(&request, sim.handle().now()).await;
    let zillow = report(&second, "zillow")?;
    ensure(
        zillow.status == SourceStatus::OutOfBudget && zillow.requests == 1,
        format!("{second:?}"),
    )?;
    ensure(
        second.delisted == 0 && second.published == 0 && second.per_market[0].budget_spent,
        format!("{second:?}"),
    )?;
    // Spent: reported at once, no request made.
    let third = function.handle(&request, sim.handle().now()).await;
    let zillow = report(&third, "zillow")?;
    ensure(
        zillow.status == SourceStatus::OutOfBudget
            && zillow.requests == 0
            && third.sources_out_of_budget == 1
            && third.markets == 0,
        format!("{third:?}"),
    )?;
    let delisted = s
        .events()
        .await?
        .iter()
        .filter(|e| e.kind == EventKind::Delisted)
        .count();
    ensure(delisted == 0, format!("{delisted} delisted events"))?;
    let snapshot = s.config.load(&month_of(sim.handle().now())).await?;
    ensure(
        snapshot.used.get("zillow") == Some(&(used + 1)),
        format!("{:?}", snapshot.used),
    )?;
    // A larger budget lets the same read through again, and it finds the three days' news.
    s.config.set_budget("zillow", Some(used + 1_000)).await?;
    let fourth = function.handle(&request, sim.handle().now()).await;
    ensure(
        report(&fourth, "zillow")?.status == SourceStatus::Polled
            && fourth.failed_markets == 0
            && fourth.new + fourth.changed > 0,
        format!("{fourth:?}"),
    )?;
    sim.shutdown().await?;
    Ok(())
}

async fn a_market_added_with_the_cli_is_polled_at_the_next_run(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let s = setup(&aws).await?;
    let sim = sim(73).await?;
    s.set_key(SourceKind::Zillow, "test-key-zillow").await?;
    s.watch("nashville-tn", &["zillow"]).await?;
    let function = s.function(&sim).await?;
    let first = function
        .handle(&PollRequest::default(), sim.handle().now())
        .await;
    ensure(
        first.per_market.len() == 1 && first.per_market[0].market == "nashville-tn",
        format!("{first:?}"),
    )?;

    // `realty markets add` against this stack, as a user runs it.
    let cli = s.local_cli(&aws).await?;
    let state_dir = cli.state_dir.clone();
    let cli = |args: &[&str]| cli.command(args);
    let refused = run(
        cli(&["markets", "add", "Syracuse-NY"]),
        &state_dir,
        "add-bad",
    )
    .await?;
    ensure(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("syracuse-ny"),
        format!("a bad key: {}", String::from_utf8_lossy(&refused.stderr)),
    )?;
    let added = run(
        cli(&[
            "markets",
            "add",
            "syracuse-ny",
            "--sources",
            "zillow",
            "--every",
            "30m",
        ]),
        &state_dir,
        "add",
    )
    .await?;
    ensure(
        added.status.success(),
        String::from_utf8_lossy(&added.stderr).into_owned(),
    )?;
    let listed = run(cli(&["markets", "list", "--json"]), &state_dir, "list").await?;
    let markets: Vec<WatchedMarket> = serde_json::from_slice(&listed.stdout)?;
    ensure(
        markets
            .iter()
            .map(|m| m.market.as_str())
            .collect::<Vec<_>>()
            == MARKETS,
        format!("{markets:?}"),
    )?;

    // The next run polls the new market, its sale listings and (added without
    // `--no-rentals`) its rentals; the other is not due yet.
    let second = function
        .handle(
            &PollRequest::default(),
            sim.handle().now() + TimeDelta::minutes(5),
        )
        .await;
    let reads: Vec<(&str, bool)> = second
        .per_market
        .iter()
        .map(|m| (m.market.as_str(), m.rentals))
        .collect();
    ensure(
        reads == [("syracuse-ny", false), ("syracuse-ny", true)]
            && second
                .per_market
                .iter()
                .all(|m| m.error.is_none() && m.new > 0),
        format!("{second:?}"),
    )?;
    ensure(
        markets
            .iter()
            .all(|m| m.rentals == (m.market == "syracuse-ny")),
        format!("rentals are on unless the market says otherwise: {markets:?}"),
    )?;
    let plan = run(cli(&["markets", "plan", "--json"]), &state_dir, "plan").await?;
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout)?;
    ensure(
        plan[0]["source"] == "zillow" && plan[0]["markets"] == 2,
        plan.to_string(),
    )?;
    let removed = run(
        cli(&["markets", "remove", "nashville-tn"]),
        &state_dir,
        "remove",
    )
    .await?;
    ensure(removed.status.success(), "remove")?;
    let _ = std::fs::remove_dir_all(&state_dir);
    sim.shutdown().await?;
    Ok(())
}

pub(crate) async fn run(
    command: tokio::process::Command,
    dir: &Path,
    name: &str,
) -> Result<std::process::Output, Failed> {
    Ok(realty_tests::run_bounded(command, Duration::from_secs(120), dir, name).await?)
}
