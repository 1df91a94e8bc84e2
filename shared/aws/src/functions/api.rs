//! The market API as Lambda runs it behind the stack's HTTP API: an API Gateway (payload
//! 2.0) request into `realty_core::api::respond` over DynamoDB, and the bearer-token
//! authorizer in front of the data routes (docs/api.md).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
    ApiGatewayV2httpRequest, ApiGatewayV2httpResponse,
};
use aws_lambda_events::http::HeaderValue;
use aws_lambda_events::http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::adapters::config::DynamoConfigStore;
use crate::adapters::dynamodb::DynamoMarketStore;
use crate::adapters::retry::RetryPolicy;
use crate::adapters::secrets::SecretsManagerSource;
use realty_core::api::auth::bearer_matches;
use realty_core::api::routes::{ApiRequest, MAX_QUERY_PARAMS};
use realty_core::api::{ApiResponse, respond};
use realty_core::config::StackResources;
use realty_core::poller::ports::SecretSource;

/// The API function: the market table and the configuration store, read only.
pub struct ApiFunction {
    pub markets: DynamoMarketStore,
    pub config: DynamoConfigStore,
}

impl ApiFunction {
    pub fn new(sdk: &SdkConfig, resources: &StackResources) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        Self {
            markets: DynamoMarketStore {
                client: dynamodb.clone(),
                table: resources.market_table.clone(),
                retry: RetryPolicy::default(),
            },
            config: DynamoConfigStore {
                client: dynamodb,
                table: resources.config_table.clone(),
            },
        }
    }

    pub async fn handle(
        &self,
        event: &ApiGatewayV2httpRequest,
        now: DateTime<Utc>,
    ) -> ApiGatewayV2httpResponse {
        let answer = respond(&self.markets, &self.config, &request_of(event), now).await;
        response_of(&answer)
    }
}

/// The request as the API reads it; of a repeated query parameter the first value counts,
/// and parameters past the API's limit are left for it to refuse.
pub fn request_of(event: &ApiGatewayV2httpRequest) -> ApiRequest {
    let mut query = BTreeMap::new();
    for (k, v) in event.query_string_parameters.iter() {
        if query.len() > MAX_QUERY_PARAMS {
            break;
        }
        query.entry(k.to_owned()).or_insert_with(|| v.to_owned());
    }
    ApiRequest {
        method: event.request_context.http.method.as_str().to_owned(),
        path: event
            .raw_path
            .clone()
            .or_else(|| event.request_context.http.path.clone())
            .unwrap_or_else(|| "/".into()),
        query,
    }
}

/// The answer as API Gateway sends it; no cache keeps it (the figures change by the minute,
/// and the page must not outlive a new deployment).
pub fn response_of(answer: &ApiResponse) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(answer.status);
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    response
        .headers
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(allow) = answer.allow() {
        response
            .headers
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    response.body = Some(Body::Text(answer.body.clone()));
    response
}

/// How long a token read from the secret is trusted before a failed check reads it again
/// (so that `realty api token --rotate` takes effect without a cold start, and a flood of
/// bad tokens cannot turn into a flood of Secrets Manager calls).
const TOKEN_REFRESH: Duration = Duration::from_secs(60);

/// The authorizer: the token from the stack's secret, compared in constant time.
pub struct ApiAuthorizer {
    secrets: SecretsManagerSource,
    secret_id: String,
    token: Mutex<(String, Option<Instant>)>,
}

impl ApiAuthorizer {
    pub fn new(sdk: &SdkConfig, resources: &StackResources) -> Self {
        Self {
            secrets: SecretsManagerSource {
                client: aws_sdk_secretsmanager::Client::new(sdk),
            },
            secret_id: resources.api_token_secret.clone(),
            token: Mutex::new((String::new(), None)),
        }
    }

    pub async fn handle(
        &self,
        event: &ApiGatewayV2CustomAuthorizerV2Request,
    ) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
        let header = event
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let mut token = self.token.lock().await;
        let mut allowed = bearer_matches(header, &token.0);
        let stale = token.1.is_none_or(|read| read.elapsed() >= TOKEN_REFRESH);
        if !allowed && stale {
            match self.secrets.secret_string(&self.secret_id).await {
                Ok(text) => *token = (text, Some(Instant::now())),
                Err(e) => tracing::error!(error = %e, "cannot read the API token secret"),
            }
            allowed = bearer_matches(header, &token.0);
        }
        if !allowed {
            tracing::info!(
                route = event.route_key.as_deref().unwrap_or_default(),
                "request refused: no valid bearer token"
            );
        }
        let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
        response.is_authorized = allowed;
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_gateway_request_becomes_the_api_s_request() {
        let event: ApiGatewayV2httpRequest = serde_json::from_value(serde_json::json!({
            "version": "2.0",
            "routeKey": "GET /{proxy+}",
            "rawPath": "/markets/nashville-tn/history",
            "rawQueryString": "period=hour&from=2026-11-01&period=day",
            "queryStringParameters": {"period": "hour,day", "from": "2026-11-01"},
            "headers": {"authorization": "Bearer x"},
            "requestContext": {
                "http": {"method": "GET", "path": "/markets/nashville-tn/history", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "curl"},
                "requestId": "r", "routeKey": "GET /{proxy+}", "stage": "$default", "time": "23/Nov/2026:17:00:00 +0000", "timeEpoch": 0
            },
            "isBase64Encoded": false
        }))
        .expect("an HTTP API event");
        let request = request_of(&event);
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/markets/nashville-tn/history");
        assert_eq!(request.query["from"], "2026-11-01");
        let response = response_of(&ApiResponse {
            status: 404,
            content_type: realty_core::api::JSON,
            body: r#"{"error":"no"}"#.into(),
        });
        let json = serde_json::to_value(&response).expect("json");
        assert_eq!(json["statusCode"], 404);
        assert_eq!(
            json["headers"]["content-type"],
            "application/json; charset=utf-8"
        );
        assert_eq!(json["body"], r#"{"error":"no"}"#);
    }
}
