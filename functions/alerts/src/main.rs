//! The alerts Lambda function: configuration and AWS clients are built once per container,
//! outside the handler; the work is `realty_alerts`.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use realty_alerts::config::AlertsConfig;
use realty_aws::functions::alerts::AlertsFunction;
use realty_model::config::StackResources;

#[tokio::main]
async fn main() -> Result<(), Error> {
    realty_aws::telemetry::init_lambda_logging();
    // A cold start without the stack's configuration, or with a bad threshold, fails with
    // the variable's name.
    let resources = StackResources::from_env()?;
    let config = AlertsConfig::from_env()?;
    let emf = realty_aws::telemetry::init_emf("alerts")?;
    let aws = realty_aws::sdk::lambda_sdk_config(|name| std::env::var(name).ok())?;
    let function = AlertsFunction::new(&aws, &resources, &config);
    tracing::info!(thresholds = ?function.thresholds, "alerts ready");
    let function = &function;
    run(service_fn(move |event: LambdaEvent<Event>| async move {
        // Boxed: the batch future is deep, and lives on the heap once per invocation.
        // Claims are leased until Lambda stops this invocation.
        let deadline = i64::try_from(event.context.deadline)
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .unwrap_or_else(realty_aws::functions::alerts::default_deadline);
        let (response, _) = Box::pin(function.handle_until(event.payload, deadline)).await;
        if let Err(e) = emf.flush(std::io::stdout()) {
            tracing::warn!(error = %e, "cannot write EMF metrics");
        }
        Ok::<_, Error>(response)
    }))
    .await
}
