//! The metrics Lambda function: configuration and AWS clients are built once per container,
//! outside the handler; the work is `realty_metrics`.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

use aws_lambda_events::event::kinesis::KinesisEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use realty_aws::functions::metrics::MetricsFunction;
use realty_metrics::interest::InterestRules;
use realty_model::config::StackResources;

#[tokio::main]
async fn main() -> Result<(), Error> {
    realty_aws::telemetry::init_lambda_logging();
    // A cold start without the stack's configuration fails with the variable's name.
    let resources = StackResources::from_env()?;
    let emf = realty_aws::telemetry::init_emf("metrics")?;
    let aws = realty_aws::sdk::lambda_sdk_config(|name| std::env::var(name).ok())?;
    let mut function = MetricsFunction::new(&aws, &resources);
    function.rules = InterestRules::from_lookup(|name| std::env::var(name).ok())?;
    let function = &function;
    run(service_fn(
        move |event: LambdaEvent<KinesisEvent>| async move {
            // Boxed: the batch future is deep, and lives on the heap once per invocation.
            let (response, _) = Box::pin(function.handle(event.payload)).await;
            if let Err(e) = emf.flush(std::io::stdout()) {
                tracing::warn!(error = %e, "cannot write EMF metrics");
            }
            Ok::<_, Error>(response)
        },
    ))
    .await
}
