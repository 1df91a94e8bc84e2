//! The poller Lambda function: configuration, API keys (Secrets Manager), the HTTP client and
//! AWS clients are built once per container; the work is `realty_poller`, wired by
//! `realty_aws::functions::poller`.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use realty_aws::functions::poller::PollerFunction;
use realty_model::config::StackResources;
use realty_poller::config::PollerConfig;
use realty_poller::run::PollRequest;

#[tokio::main]
async fn main() -> Result<(), Error> {
    realty_aws::telemetry::init_lambda_logging();
    // A cold start without its configuration fails with the setting's name; a missing key
    // does not fail it: each poll reports the sources without one.
    let env = |name: &str| std::env::var(name).ok();
    let resources = StackResources::from_env()?;
    let config = PollerConfig::from_lookup(env)?;
    let emf = realty_aws::telemetry::init_emf("poller")?;
    let aws = realty_aws::sdk::lambda_sdk_config(|name| std::env::var(name).ok())?;
    let function = PollerFunction::new(&aws, &resources, config, env).await?;
    let function = &function;
    run(service_fn(move |event: LambdaEvent<PollRequest>| async move {
        if event.payload.anti_entropy {
            let report = function.anti_entropy(chrono::Utc::now()).await;
            if let Ok(report) = &report {
                realty_poller::anti_entropy::record_metrics(report);
                tracing::info!(report = %serde_json::to_string(report).unwrap_or_default(), "anti-entropy pass done");
            }
            if let Err(e) = emf.flush(std::io::stdout()) {
                tracing::warn!(error = %e, "cannot write EMF metrics");
            }
            // A pass that failed leaves its cursor where it was: the errors alarm says so,
            // and the next scheduled pass does the same listings again.
            return report
                .map(|r| serde_json::to_value(r).unwrap_or_default())
                .map_err(Error::from);
        }
        let summary = Box::pin(function.handle(&event.payload, chrono::Utc::now())).await;
        tracing::info!(summary = %serde_json::to_string(&summary.for_log()).unwrap_or_default(), "poll done");
        if let Err(e) = emf.flush(std::io::stdout()) {
            tracing::warn!(error = %e, "cannot write EMF metrics");
        }
        // A poll that could not start (its configuration unreadable) fails the invocation:
        // the errors alarm says so, and the event goes to the failure queue.
        match summary.error {
            Some(error) => Err(Error::from(error)),
            None => Ok::<_, Error>(serde_json::to_value(summary).unwrap_or_default()),
        }
    }))
    .await
}
