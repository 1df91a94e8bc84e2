//! The importer Lambda function: S3 notifications of files dropped under `imports/` in the
//! lake bucket, delivered through an SQS queue. Configuration and AWS clients are built once
//! per container; the work is `realty_poller::importer`, wired by
//! `realty_aws::functions::importer`.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use realty_aws::functions::importer::ImporterFunction;
use realty_model::config::StackResources;

#[tokio::main]
async fn main() -> Result<(), Error> {
    realty_aws::telemetry::init_lambda_logging();
    // A cold start without the stack's configuration fails with the variable's name.
    let resources = StackResources::from_env()?;
    let emf = realty_aws::telemetry::init_emf("importer")?;
    let aws = realty_aws::sdk::lambda_sdk_config(|name| std::env::var(name).ok())?;
    let function = ImporterFunction {
        rate_per_second: realty_poller::importer::import_rate(|name| std::env::var(name).ok())?,
        ..ImporterFunction::new(&aws, &resources)
    };
    let function = &function;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // Boxed: an import's future is deep, and lives on the heap once per invocation.
        let (response, _) = Box::pin(function.handle(event.payload, chrono::Utc::now())).await;
        if let Err(e) = emf.flush(std::io::stdout()) {
            tracing::warn!(error = %e, "cannot write EMF metrics");
        }
        // Never fails the invocation: the messages to deliver again are in the response.
        Ok::<_, Error>(response)
    }))
    .await
}
