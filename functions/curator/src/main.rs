//! The curator Lambda function (EventBridge schedule, hourly): the lake's Iceberg tables
//! brought up to date. Configuration and clients are built once per container; the work is
//! `realty_lake::curate`.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use realty_lake::curate::Curator;
use realty_model::config::StackResources;

#[tokio::main]
async fn main() -> Result<(), Error> {
    realty_aws::telemetry::init_lambda_logging();
    // A cold start without the stack's configuration fails with the variable's name.
    let resources = StackResources::from_env()?;
    let emf = realty_aws::telemetry::init_emf("curator")?;
    let aws = realty_aws::sdk::lambda_sdk_config(|name| std::env::var(name).ok())?;
    let curator = Curator::new(&aws, &resources).await?;
    let curator = &curator;
    run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let outcome = Box::pin(curator.handle(chrono::Utc::now())).await;
            if let Err(e) = emf.flush(std::io::stdout()) {
                tracing::warn!(error = %e, "cannot write EMF metrics");
            }
            // A failed run fails the invocation (the errors alarm); the next run takes it up.
            outcome.map_err(Error::from)
        },
    ))
    .await
}
