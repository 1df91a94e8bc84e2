//! `realty invoke FUNCTION --event FILE`: the real handler, once, in-process, against a stack.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use realty_aws::functions::alerts::AlertsFunction;
use realty_aws::functions::metrics::MetricsFunction;
use realty_aws::functions::poller::build_poller;
use realty_core::alerts::config::AlertsConfig;
use realty_core::poller::config::PollerConfig;
use realty_core::poller::run::PollRequest;

use crate::{sim, target};

pub async fn run(function: &str, event_file: &Path, stack: Option<&str>) -> Result<()> {
    if function == "poller"
        && let Some(name) = stack
    {
        // Its sources here are the simulator: against a deployed stack it would publish
        // simulated listings to its subscribers and lake, and delist its real ones.
        bail!(
            "`realty invoke poller` polls the local simulator, so it is not run against the \
             deployed stack {name}: invoke the stack's own poller instead (`aws lambda invoke \
             --function-name <its PollerFunction> --cli-binary-format raw-in-base64-out \
             --payload file://{} out.json`)",
            event_file.display()
        );
    }
    let text = std::fs::read_to_string(event_file)
        .with_context(|| format!("cannot read {}", event_file.display()))?;
    let target = target::resolve(stack).await?;
    match function {
        "metrics" => {
            let event: KinesisEvent = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a Kinesis event", event_file.display()))?;
            let handler = MetricsFunction::new(&target.sdk, &target.resources);
            let (response, outcomes) = Box::pin(handler.handle(event)).await;
            for outcome in &outcomes {
                eprintln!("{}", serde_json::to_string(&outcome.stats)?);
                if let Some(e) = &outcome.error {
                    eprintln!("batch failed: {e}");
                }
            }
            println!("{}", serde_json::to_string_pretty(&response)?);
            Ok(())
        }
        "poller" => {
            let request: PollRequest = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a poller event ({{\"markets\": [...]}})",
                    event_file.display()
                )
            })?;
            // The sources are a running `realty sim serve`, or one started for this call.
            let (base_url, started) = match sim::running() {
                Some(url) => (url, None),
                None => {
                    let server = realty_sim::SimServer::start(
                        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                        sim::config(42, "", &request.markets, Some(1_000))?,
                    )
                    .await?;
                    eprintln!(
                        "started a simulated market at {} for this poll",
                        server.base_url()
                    );
                    (server.base_url(), Some(server))
                }
            };
            let lookup = |name: &str| -> Option<String> {
                match name {
                    "REALTY_ZILLOW_URL" | "REALTY_REALTOR_URL" => Some(base_url.clone()),
                    "REALTY_RESO_URL" => Some(format!("{base_url}/reso/odata")),
                    // A local simulator needs no politeness; a real API's limit stays the default.
                    "REALTY_REQUESTS_PER_SECOND" => std::env::var(name).ok().or(Some("200".into())),
                    other => std::env::var(other).ok(),
                }
            };
            let config = PollerConfig::from_lookup(lookup)?;
            // The simulator takes any RapidAPI key; RESO wants a token from its token endpoint.
            let keys = crate::sim::poller_keys(&base_url);
            let poller = build_poller(&target.sdk, &target.resources, &config, &keys)?;
            let summary = Box::pin(poller.poll(&request, chrono::Utc::now())).await;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            if let Some(server) = started {
                server.shutdown().await?;
            }
            Ok(())
        }
        "alerts" => {
            let event: DynamoDbEvent = serde_json::from_str(&text).with_context(|| {
                format!("{} is not a DynamoDB stream event", event_file.display())
            })?;
            let handler =
                AlertsFunction::new(&target.sdk, &target.resources, &AlertsConfig::from_env()?);
            let (response, outcome) = Box::pin(handler.handle(event)).await;
            eprintln!("{}", serde_json::to_string(&outcome.stats)?);
            if let Some(e) = &outcome.error {
                eprintln!("batch failed: {e}");
            }
            println!("{}", serde_json::to_string_pretty(&response)?);
            Ok(())
        }
        other => bail!("no function {other:?}: poller, metrics or alerts"),
    }
}
