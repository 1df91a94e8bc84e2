//! The market API's authorizer (a Lambda REQUEST authorizer, simple responses): the data
//! routes need `Authorization: Bearer <the token in the stack's ApiTokenSecret>`.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

use aws_lambda_events::event::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use realty_aws::functions::api::ApiAuthorizer;
use realty_model::config::StackResources;

#[tokio::main]
async fn main() -> Result<(), Error> {
    realty_aws::telemetry::init_lambda_logging();
    let resources = StackResources::from_env()?;
    let aws = realty_aws::sdk::lambda_sdk_config(|name| std::env::var(name).ok())?;
    let authorizer = ApiAuthorizer::new(&aws, &resources);
    let authorizer = &authorizer;
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
            // An error while the token cannot be read: API Gateway answers 500 and the
            // authorizer's errors alarm fires.
            authorizer
                .handle(&event.payload)
                .await
                .map_err(|e| Error::from(e.to_string()))
        },
    ))
    .await
}
