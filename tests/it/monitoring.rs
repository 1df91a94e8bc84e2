//! The stack's alarms and dashboard watch what the functions really emit: the three handlers
//! run on a provisioned local stack (two polls, the metrics and alerts triggers between
//! them; then the curator, and the importer given a message no import), each under its own
//! metrics recorder; every alarm the operations guide promises
//! exists, every custom metric an alarm or a widget names is one a function emitted (name,
//! namespace and dimensions as the EMF recorder would write them), and every AWS metric
//! names a resource of the stack.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use chrono::TimeDelta;
use libtest_mimic::Failed;
use metrics_util::debugging::DebuggingRecorder;
use realty_alerts::config::AlertsConfig;
use realty_aws::adapters::config::DynamoConfigStore;
use realty_aws::adapters::secrets::SecretsManagerSource;
use realty_aws::functions::alerts::AlertsFunction;
use realty_aws::functions::importer::ImporterFunction;
use realty_aws::functions::metrics::MetricsFunction;
use realty_aws::functions::poller::PollerFunction;
use realty_infra::runner::{FunctionError, Mapping, StreamFunction};
use realty_infra::template::{Context, MonitoredMetric, monitored_metrics};
use realty_lake::curate::Curator;
use realty_model::config::StackResources;
use realty_model::markets::ConfigStore;
use realty_model::markets::SourceKind;
use realty_model::markets::WatchedMarket;
use realty_model::ports::SecretSource;
use realty_poller::config::{PollerConfig, with_key};
use realty_poller::run::PollRequest;
use realty_sim::{FaultConfig, MarketConfig, SimConfig, SimServer};
use realty_tests::{MetricsHandler, TestAws, ensure};

use crate::demo::pump_until_quiet;

crate::async_tests!(alarms_and_the_dashboard_watch_metrics_the_functions_emit);

/// The functions' EMF namespace (`realty_aws::telemetry::init_emf`).
const NAMESPACE: &str = "RealtyStream";

/// What one function emitted: metric name, and the label names (EMF dimensions besides
/// `function`).
type Emitted = BTreeMap<String, BTreeSet<BTreeSet<String>>>;

/// Runs `work` with `recorder` as this thread's metrics recorder. The runtime is
/// single-threaded, so everything the handlers record lands in it.
fn recorded<T>(
    runtime: &tokio::runtime::Runtime,
    work: impl std::future::Future<Output = T>,
) -> (T, Emitted) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let out = {
        let _guard = metrics::set_default_local_recorder(&recorder);
        runtime.block_on(work)
    };
    let mut emitted = Emitted::new();
    for (key, _, _, _) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        emitted
            .entry(key.name().to_owned())
            .or_default()
            .insert(key.labels().map(|l| l.key().to_owned()).collect());
    }
    (out, emitted)
}

/// The alerts function as the local runner invokes it (the dashboard test runs it too).
pub(crate) struct Alerts(pub(crate) AlertsFunction);

impl StreamFunction for Alerts {
    type Event = DynamoDbEvent;
    type Response = DynamoDbEventResponse;

    async fn invoke(&self, event: DynamoDbEvent) -> Result<DynamoDbEventResponse, FunctionError> {
        Ok(Box::pin(self.0.handle(event)).await.0)
    }
}

async fn alarms_and_the_dashboard_watch_metrics_the_functions_emit(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let stack = aws.provision(&[]).await;
    let template = aws.template();
    // The handlers run on a thread of their own, where one recorder sees all they record.
    let emitted = tokio::task::spawn_blocking({
        let aws = aws.clone();
        let stack = stack.clone();
        let template = template.clone();
        move || -> Result<BTreeMap<&'static str, Emitted>, String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            run_functions(&runtime, &aws, &stack, &template).map_err(|e| format!("{e:?}"))
        }
    })
    .await??;

    let monitored = monitored_metrics(&template, &Context::symbolic(&template)?)?;
    ensure(!monitored.is_empty(), "the template monitors nothing")?;
    for m in &monitored {
        if m.namespace == NAMESPACE {
            check_emitted(m, &emitted)?;
        } else {
            check_names_a_resource(m, &template)?;
        }
    }

    // Every alarm the guide lists, with its metric.
    let alarms: Vec<&MonitoredMetric> = monitored
        .iter()
        .filter(|m| m.used_by.starts_with("alarm "))
        .collect();
    let has = |namespace: &str, metric: &str, dimension: &str, value: &str| {
        alarms.iter().any(|m| {
            m.namespace == namespace
                && m.metric == metric
                && m.dimensions
                    .get(dimension)
                    .is_some_and(|v| v == value || v.starts_with(&format!("{value}.")))
        })
    };
    let mut missing = Vec::new();
    let mut want = |ok: bool, what: String| {
        if !ok {
            missing.push(what);
        }
    };
    for f in ["MetricsFunction", "AlertsFunction"] {
        want(
            has("AWS/Lambda", "IteratorAge", "FunctionName", f),
            format!("{f} iterator age"),
        );
    }
    for f in ["PollerFunction", "MetricsFunction", "AlertsFunction"] {
        for metric in ["Errors", "Throttles"] {
            want(
                has("AWS/Lambda", metric, "FunctionName", f),
                format!("{f} {metric}"),
            );
        }
    }
    for q in [
        "PoisonRecordQueue",
        "PollerFailureQueue",
        "MetricsFailureQueue",
        "AlertsFailureQueue",
    ] {
        want(
            has(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                q,
            ),
            format!("messages in {q}"),
        );
    }
    want(
        alarms
            .iter()
            .any(|m| m.namespace == "AWS/Firehose" && m.metric.starts_with("DeliveryToS3.")),
        "Firehose delivery".into(),
    );
    want(
        alarms
            .iter()
            .any(|m| m.namespace == "AWS/DynamoDB" && m.metric.contains("Throttle")),
        "DynamoDB throttles".into(),
    );
    for metric in [
        "poll_failed_markets",
        "poll_empty_markets",
        "sources_without_key",
        "sources_out_of_budget",
        "portal_oldest_unverified_ad_hours",
    ] {
        want(
            has(NAMESPACE, metric, "function", "poller"),
            format!("poller {metric}"),
        );
    }
    want(
        has(NAMESPACE, "import_messages_dropped", "function", "importer"),
        "importer import_messages_dropped".into(),
    );
    ensure(missing.is_empty(), format!("alarms missing: {missing:?}"))?;

    // Each alarm and the dashboard were provisioned, or skipped with the emulator's reason.
    for (id, resource) in &template.resources {
        if !resource.kind.starts_with("AWS::CloudWatch::") {
            continue;
        }
        let provisioned = stack.resources.iter().any(|r| &r.logical_id == id);
        let skipped = stack
            .skipped
            .iter()
            .any(|s| &s.logical_id == id && !s.reason.is_empty());
        ensure(
            provisioned || skipped,
            format!("{id} neither provisioned nor skipped"),
        )?;
    }
    Ok(())
}

/// Two polls of a watched market (a source without a key beside it, a budget on the other)
/// and of a portal market, each followed by the metrics and alerts triggers; what each
/// function recorded.
fn run_functions(
    runtime: &tokio::runtime::Runtime,
    aws: &TestAws,
    stack: &realty_infra::provision::ProvisionedStack,
    template: &realty_infra::template::Template,
) -> Result<BTreeMap<&'static str, Emitted>, Failed> {
    let resources = StackResources::from_outputs(&stack.outputs)?;
    let (sdk, sim) = runtime.block_on(async {
        let sdk = aws.sdk_config().await;
        let sim = SimServer::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            SimConfig {
                seed: 81,
                market: MarketConfig {
                    markets: vec!["nashville-tn".into()],
                    listings_per_market: 120,
                    activity: 3.0,
                    ..MarketConfig::default()
                },
                faults: FaultConfig::none(),
            },
        )
        .await;
        (sdk, sim)
    });
    let sim = sim?;
    let base = sim.base_url();
    let env = |name: &str| match name {
        "REALTY_ZILLOW_URL" | "REALTY_REALTOR_URL" => Some(base.clone()),
        "REALTY_AVITO_URL" => Some(format!("{base}/avito")),
        "REALTY_REQUESTS_PER_SECOND" | "REALTY_PORTAL_REQUESTS_PER_SECOND" => Some("1000".into()),
        "REALTY_LISTING_API_SECRET_ARN" => Some(resources.api_key_secret.clone()),
        _ => None,
    };
    let (poller, mut metrics, mut alerts) = runtime.block_on(async {
        let secrets = SecretsManagerSource {
            client: aws_sdk_secretsmanager::Client::new(&sdk),
        };
        let current = secrets.secret_string(&resources.api_key_secret).await?;
        secrets
            .put_secret_string(
                &resources.api_key_secret,
                &with_key(&current, SourceKind::Zillow, "test-key")?,
            )
            .await?;
        let config = DynamoConfigStore {
            client: aws_sdk_dynamodb::Client::new(&sdk),
            table: resources.config_table.clone(),
        };
        config
            .put_market(&WatchedMarket {
                market: "nashville-tn".into(),
                sources: vec!["zillow".into(), "realtor".into()],
                min_price: None,
                max_price: None,
                home_types: Vec::new(),
                poll_every_minutes: 60,
                reso_filter: None,
                rentals: false,
                watched_since: Default::default(),
            })
            .await?;
        // A portal market beside it: its ads' verification has a metric and an alarm.
        config
            .put_market(&WatchedMarket {
                market: "ma/marrakech".into(),
                sources: vec!["avito".into()],
                min_price: None,
                max_price: None,
                home_types: Vec::new(),
                poll_every_minutes: 60,
                reso_filter: None,
                rentals: false,
                watched_since: Default::default(),
            })
            .await?;
        config.set_budget("zillow", Some(10_000)).await?;
        let poller = PollerFunction::new(
            &aws.function_sdk("PollerFunction").await,
            &resources,
            PollerConfig::from_lookup(env)?,
            env,
        )
        .await?;
        let metrics = Mapping::new(
            &sdk,
            template,
            stack,
            "MetricsFunction",
            MetricsHandler(MetricsFunction::new(
                &aws.function_sdk("MetricsFunction").await,
                &resources,
            )),
        )
        .await?;
        let alerts_config = AlertsConfig::from_lookup(|_| None)?;
        let alerts = Mapping::new(
            &sdk,
            template,
            stack,
            "AlertsFunction",
            Alerts(AlertsFunction::new(
                &aws.function_sdk("AlertsFunction").await,
                &resources,
                &alerts_config,
            )),
        )
        .await?;
        Ok::<_, Failed>((poller, metrics, alerts))
    })?;

    let mut all: BTreeMap<&'static str, Emitted> = BTreeMap::new();
    let mut merge = |function: &'static str, emitted: Emitted| {
        let entry = all.entry(function).or_default();
        for (name, labels) in emitted {
            entry.entry(name).or_default().extend(labels);
        }
    };
    for hours in [0, 48] {
        let now = sim.handle().now() + TimeDelta::hours(hours);
        if hours > 0 {
            sim.handle().advance(TimeDelta::hours(hours))?;
        }
        let (summary, emitted) = recorded(runtime, poller.handle(&PollRequest::default(), now));
        ensure(
            summary.failed_markets == 0 && summary.sources_without_key == 1,
            format!("poll at +{hours} h: {summary:?}"),
        )?;
        merge("poller", emitted);
        let (drained, emitted) = recorded(runtime, pump_until_quiet(&mut metrics));
        drained?;
        merge("metrics", emitted);
        let (drained, emitted) = recorded(runtime, async {
            // The table's stream hands out the metrics' writes a moment after them.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            pump_until_quiet(&mut alerts).await
        });
        drained?;
        merge("alerts", emitted);
    }
    ensure(
        metrics.stats.records_read > 0 && alerts.stats.records_read > 0,
        format!("metrics {:?}, alerts {:?}", metrics.stats, alerts.stats),
    )?;
    // The lake's curator, as its schedule runs it (its run, then the data-quality checks).
    let curator = runtime.block_on(async {
        Curator::new(&aws.function_sdk("CuratorFunction").await, &resources).await
    })?;
    let (curated, emitted) = recorded(runtime, curator.handle(chrono::Utc::now()));
    curated?;
    merge("curator", emitted);
    // The importer, handed a message of its queue that is no S3 notification: dropped, and
    // counted for its alarm.
    let importer = runtime.block_on(async {
        ImporterFunction::new(&aws.function_sdk("ImporterFunction").await, &resources)
    });
    let event: SqsEvent = serde_json::from_value(serde_json::json!({
        "Records": [{ "messageId": "not-from-s3", "body": "Message Body" }]
    }))?;
    let ((response, outcomes), emitted) =
        recorded(runtime, importer.handle(event, chrono::Utc::now()));
    ensure(
        response.batch_item_failures.is_empty() && outcomes.is_empty(),
        format!("a message that is no notification: {response:?} {outcomes:?}"),
    )?;
    merge("importer", emitted);
    runtime.block_on(sim.shutdown())?;
    Ok(all)
}

/// A custom metric of an alarm or widget: emitted by its function with these dimensions.
fn check_emitted(
    m: &MonitoredMetric,
    emitted: &BTreeMap<&'static str, Emitted>,
) -> Result<(), Failed> {
    let wanted: BTreeSet<String> = m
        .dimensions
        .keys()
        .filter(|k| *k != "function")
        .cloned()
        .collect();
    let functions: Vec<&str> = match m.dimensions.get("function").map(String::as_str) {
        Some("*") | None => emitted.keys().copied().collect(),
        Some(f) => vec![f],
    };
    let found = functions.iter().any(|f| {
        emitted
            .get(f)
            .and_then(|e| e.get(&m.metric))
            .is_some_and(|label_sets| label_sets.contains(&wanted))
    });
    ensure(
        found,
        format!(
            "{} reads {}/{} {:?}, which no function emits with those dimensions",
            m.used_by, m.namespace, m.metric, m.dimensions
        ),
    )
}

/// An AWS metric: a namespace the stack has resources in, its dimension naming one of them.
fn check_names_a_resource(
    m: &MonitoredMetric,
    template: &realty_infra::template::Template,
) -> Result<(), Failed> {
    let kinds: &[&str] = match m.namespace.as_str() {
        "AWS/Lambda" => &["AWS::Serverless::Function"],
        "AWS/SQS" => &["AWS::SQS::Queue"],
        "AWS/Firehose" => &["AWS::KinesisFirehose::DeliveryStream"],
        "AWS/DynamoDB" => &["AWS::DynamoDB::Table"],
        "AWS/Kinesis" => &["AWS::Kinesis::Stream"],
        "AWS/SNS" => &["AWS::SNS::Topic"],
        "AWS/ApiGateway" => &["AWS::Serverless::HttpApi"],
        other => return Err(format!("{}: namespace {other} is not the stack's", m.used_by).into()),
    };
    for (name, value) in &m.dimensions {
        if value == "*" || name == "Operation" || name == "GlobalSecondaryIndexName" {
            continue;
        }
        let logical_id = value.split('.').next().unwrap_or(value);
        let ok = template
            .resources
            .get(logical_id)
            .is_some_and(|r| kinds.contains(&r.kind.as_str()));
        ensure(
            ok,
            format!(
                "{} reads {} {name}={value}: not a resource of the stack",
                m.used_by, m.metric
            ),
        )?;
    }
    Ok(())
}
