//! The market API Lambda function (behind the stack's HTTP API): clients built once per
//! container; the work is `realty_api`, wired by `realty_aws::functions::api`.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use realty_aws::functions::api::ApiFunction;
use realty_model::config::StackResources;

#[tokio::main]
async fn main() -> Result<(), Error> {
    realty_aws::telemetry::init_lambda_logging();
    let resources = StackResources::from_env()?;
    let aws = realty_aws::sdk::lambda_sdk_config(|name| std::env::var(name).ok())?;
    let function = ApiFunction::new(&aws, &resources);
    let function = &function;
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Error>(function.handle(&event.payload, chrono::Utc::now()).await)
        },
    ))
    .await
}
