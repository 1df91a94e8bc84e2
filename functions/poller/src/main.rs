//! The poller Lambda function: configuration and AWS clients are built once per container,
//! outside the handler; the logic lives in realty-shared.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use realty_shared::config::StackResources;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    realty_shared::telemetry::init_lambda_logging();
    // Fail the cold start with a clear message when the stack's configuration is missing.
    let resources = StackResources::from_env()?;
    let aws = realty_shared::aws::sdk_config(None).await;
    tracing::info!(?resources, region = ?aws.region(), "poller ready");
    run(service_fn(|event: LambdaEvent<Value>| async move {
        // The handler's logic arrives with issue #4; until then an invocation fails
        // loudly instead of pretending to have processed the EventBridge schedule's input (the markets to poll).
        let _ = event;
        Err::<Value, Error>("the poller handler is not implemented yet (issue #4)".into())
    }))
    .await
}
