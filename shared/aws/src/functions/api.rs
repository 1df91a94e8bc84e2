//! The market API as Lambda runs it behind the stack's HTTP API: an API Gateway (payload
//! 2.0) request into `realty_api::respond` over DynamoDB, and the bearer-token
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
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::adapters::config::DynamoConfigStore;
use crate::adapters::dynamodb::DynamoMarketStore;
use crate::adapters::retry::RetryPolicy;
use crate::adapters::secrets::SecretsManagerSource;
use realty_api::auth::{MIN_TOKEN_LEN, bearer_matches};
use realty_api::config_cache::{CONFIG_FRESH_FOR, CachedConfig};
use realty_api::routes::{ApiRequest, MAX_QUERY_PARAMS};
use realty_api::{ApiResponse, respond};
use realty_model::config::StackResources;
use realty_model::ports::PortError;
use realty_model::ports::SecretSource;

/// The API function: the market table and the configuration store, read only (the
/// configuration read at most once per [`CONFIG_FRESH_FOR`]).
pub struct ApiFunction {
    pub markets: DynamoMarketStore,
    pub config: CachedConfig<DynamoConfigStore>,
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
            config: CachedConfig::new(
                DynamoConfigStore {
                    client: dynamodb,
                    table: resources.config_table.clone(),
                },
                CONFIG_FRESH_FOR,
            ),
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

/// The request as the API reads it; of a repeated query parameter the first value counts
/// (as `realty serve` reads it: API Gateway's own `queryStringParameters` joins repeats with
/// commas, so they are read from the raw query string), and parameters past the API's limit
/// are left for it to refuse.
pub fn request_of(event: &ApiGatewayV2httpRequest) -> ApiRequest {
    let mut query = BTreeMap::new();
    match event.raw_query_string.as_deref() {
        Some(raw) => {
            for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
                if query.len() > MAX_QUERY_PARAMS {
                    break;
                }
                query
                    .entry(k.into_owned())
                    .or_insert_with(|| v.into_owned());
            }
        }
        None => {
            for (k, v) in event.query_string_parameters.iter() {
                if query.len() > MAX_QUERY_PARAMS {
                    break;
                }
                query.entry(k.to_owned()).or_insert_with(|| v.to_owned());
            }
        }
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

/// The answer as API Gateway sends it, with [`ApiResponse::headers`].
pub fn response_of(answer: &ApiResponse) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(answer.status);
    for (name, value) in answer.headers() {
        response
            .headers
            .insert(name, HeaderValue::from_static(value));
    }
    response.body = Some(Body::Text(answer.body.clone()));
    response
}

/// How long a token read from the secret is used before it is read again, whatever the
/// checks in between found: a rotated token stops matching within this (plus API Gateway's
/// cache of the authorizer's answers), and a flood of bad tokens costs one read per interval.
const TOKEN_REFRESH: Duration = Duration::from_secs(60);
/// After a failed read the token held is kept (a passing Secrets Manager fault must not lock
/// everyone out) and the read tried again this much later.
const TOKEN_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// Longest wait for the secret: the authorizer has 5 s. A read hanging past them (the SDK
/// allows 3 attempts of 20 s) timed the function out, which lost the token held with the
/// execution environment, and every request after read again and timed out again.
const TOKEN_READ_TIMEOUT: Duration = Duration::from_millis(1_500);

/// The authorizer: the token from the stack's secret, compared in constant time.
pub struct ApiAuthorizer {
    secrets: SecretsManagerSource,
    secret_id: String,
    refresh: Duration,
    retry_after_failure: Duration,
    read_timeout: Duration,
    /// What the secret last gave and when it is to be read again (`None`: never read).
    token: Mutex<HeldToken>,
}

/// The token held between reads of the secret.
struct HeldToken {
    /// The last successful read, or why there is none yet (the last failed read).
    value: Result<String, PortError>,
    next_read: Option<Instant>,
}

impl ApiAuthorizer {
    pub fn new(sdk: &SdkConfig, resources: &StackResources) -> Self {
        Self::of_client(
            aws_sdk_secretsmanager::Client::new(sdk),
            &resources.api_token_secret,
            TOKEN_REFRESH,
        )
    }

    /// The authorizer of secret `secret_id`, read again every `refresh`.
    pub fn of_client(
        client: aws_sdk_secretsmanager::Client,
        secret_id: &str,
        refresh: Duration,
    ) -> Self {
        Self {
            secrets: SecretsManagerSource { client },
            secret_id: secret_id.to_owned(),
            refresh,
            retry_after_failure: TOKEN_RETRY_AFTER_FAILURE.min(refresh),
            read_timeout: TOKEN_READ_TIMEOUT,
            token: Mutex::new(HeldToken {
                value: Err(PortError::new("GetSecretValue", "not read yet")),
                next_read: None,
            }),
        }
    }

    /// The authorizer's answer; an error (API Gateway answers 500, and the authorizer's
    /// errors alarm counts it) while no usable token is held: the secret never read (its
    /// first read failed, and until it is tried again), or shorter than [`MIN_TOKEN_LEN`].
    /// Refusing every request then would look like wrong tokens, raise no alarm, and be
    /// cached by API Gateway for each token presented, the right one too.
    pub async fn handle(
        &self,
        event: &ApiGatewayV2CustomAuthorizerV2Request,
    ) -> Result<ApiGatewayV2CustomAuthorizerSimpleResponse, PortError> {
        let header = event
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let allowed = self.admits(header).await?;
        if !allowed {
            tracing::info!(
                route = event.route_key.as_deref().unwrap_or_default(),
                "request refused: no valid bearer token"
            );
        }
        let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
        response.is_authorized = allowed;
        Ok(response)
    }

    /// Whether an `Authorization` header carries the token the secret holds (read again
    /// every refresh interval, so a rotated one stops matching); an error while no usable
    /// token is held (see [`Self::handle`]). `realty serve` asks it as the authorizer does.
    pub async fn admits(&self, header: Option<&str>) -> Result<bool, PortError> {
        let mut token = self.token.lock().await;
        if token.next_read.is_none_or(|next| Instant::now() >= next) {
            let read = tokio::time::timeout(
                self.read_timeout,
                self.secrets.secret_string(&self.secret_id),
            )
            .await
            .unwrap_or_else(|_| {
                Err(PortError::new(
                    "GetSecretValue",
                    format!("no answer within {} ms", self.read_timeout.as_millis()),
                ))
            });
            match read {
                Ok(text) => {
                    token.value = Ok(text);
                    token.next_read = Some(Instant::now() + self.refresh);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the API token secret");
                    token.next_read = Some(Instant::now() + self.retry_after_failure);
                    // A token read before is kept: a passing fault locks no one out.
                    if token.value.is_err() {
                        token.value = Err(e);
                    }
                }
            }
        }
        let held = token.value.as_ref().map_err(Clone::clone)?;
        if held.trim().len() < MIN_TOKEN_LEN {
            tracing::error!(
                min_len = MIN_TOKEN_LEN,
                "the API token secret is shorter than the shortest token admitted"
            );
            return Err(PortError::new(
                "GetSecretValue",
                format!("the API token secret is shorter than {MIN_TOKEN_LEN} characters"),
            ));
        }
        Ok(bearer_matches(header, held))
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
        // Repeated: the first counts, as `realty serve` reads it (API Gateway's map holds
        // "hour,day").
        assert_eq!(request.query["period"], "hour");
        let mut encoded = event.clone();
        encoded.raw_query_string = Some("market=ma%2Fcasablanca&type=price_cut".into());
        let query = request_of(&encoded).query;
        assert_eq!(
            (query["market"].as_str(), query["type"].as_str()),
            ("ma/casablanca", "price_cut")
        );
        let response = response_of(&ApiResponse {
            status: 404,
            content_type: realty_api::JSON,
            body: r#"{"error":"no"}"#.into(),
        });
        let json = serde_json::to_value(&response).expect("json");
        assert_eq!(json["statusCode"], 404);
        assert_eq!(
            json["headers"]["content-type"],
            "application/json; charset=utf-8"
        );
        assert_eq!(json["headers"]["x-content-type-options"], "nosniff");
        assert_eq!(
            json["headers"]["content-security-policy"],
            realty_api::CONTENT_SECURITY_POLICY
        );
        assert_eq!(json["body"], r#"{"error":"no"}"#);
    }

    fn authorizer_event(authorization: &str) -> ApiGatewayV2CustomAuthorizerV2Request {
        serde_json::from_value(serde_json::json!({
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": "arn:aws:execute-api:us-east-1:123456789012:api/$default/GET/markets",
            "identitySource": [authorization],
            "routeKey": "GET /{proxy+}",
            "rawPath": "/markets",
            "rawQueryString": "",
            "headers": {"authorization": authorization},
            "requestContext": {
                "http": {"method": "GET", "path": "/markets", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "t", "routeKey": "GET /{proxy+}", "stage": "$default",
                "time": "23/Nov/2026:17:00:00 +0000", "timeEpoch": 0
            }
        }))
        .expect("an authorizer event")
    }

    /// Whether `authorizer` admits a request bearing `token` (it must answer).
    async fn admits(authorizer: &ApiAuthorizer, token: &str) -> bool {
        let event = authorizer_event(&format!("Bearer {token}"));
        authorizer
            .handle(&event)
            .await
            .expect("answered")
            .is_authorized
    }

    const OLD: &str = "old-token-0123456789abcdefghijklmnopqrstuv";
    const NEW: &str = "new-token-0123456789abcdefghijklmnopqrstuv";

    /// The secret as Secrets Manager holds it: `OLD` for the first `reads_of_old` reads, then
    /// `NEW` (a rotation).
    fn rotating_secret(
        reads_of_old: usize,
    ) -> (aws_sdk_secretsmanager::Client, aws_smithy_mocks::Rule) {
        use aws_sdk_secretsmanager::Client;
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let secret = mock!(Client::get_secret_value).then_compute_output(move |_| {
            let n = reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            GetSecretValueOutput::builder()
                .secret_string(if n < reads_of_old { OLD } else { NEW })
                .build()
        });
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&secret]);
        (client, secret)
    }

    /// Secrets Manager failing every read.
    fn secrets_down() -> aws_smithy_mocks::Rule {
        use aws_sdk_secretsmanager::Client;
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        use aws_sdk_secretsmanager::types::error::InternalServiceError;
        aws_smithy_mocks::mock!(Client::get_secret_value).then_error(|| {
            GetSecretValueError::InternalServiceError(
                InternalServiceError::builder().message("down").build(),
            )
        })
    }

    /// A rotated token stops being admitted at the next read of the secret, even while
    /// requests keep coming with it (the token read is not kept for as long as it matches).
    #[tokio::test(flavor = "current_thread")]
    async fn a_rotated_token_is_refused_once_the_secret_is_read_again() {
        let (client, secret) = rotating_secret(2);
        let authorizer = ApiAuthorizer::of_client(client, "api-token", Duration::ZERO);
        assert!(admits(&authorizer, OLD).await);
        assert!(admits(&authorizer, OLD).await);
        // Rotated: the old token, still matching the copy held, is refused all the same.
        assert!(!admits(&authorizer, OLD).await);
        assert!(admits(&authorizer, NEW).await);
        assert_eq!(secret.num_calls(), 4);
    }

    /// Within the refresh interval the secret is read once, however many tokens are refused.
    #[tokio::test(flavor = "current_thread")]
    async fn bad_tokens_do_not_read_the_secret_again() {
        let (client, secret) = rotating_secret(1);
        let authorizer = ApiAuthorizer::of_client(client, "api-token", TOKEN_REFRESH);
        for _ in 0..5 {
            assert!(!admits(&authorizer, "wrong-token-0123456789abcdefghijklmnop").await);
        }
        assert!(admits(&authorizer, OLD).await);
        assert_eq!(secret.num_calls(), 1);
    }

    /// A failed read keeps the token held, and is tried again only after a pause.
    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_read_keeps_the_token_held() {
        use aws_sdk_secretsmanager::Client;
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let first = mock!(Client::get_secret_value)
            .then_output(|| GetSecretValueOutput::builder().secret_string(OLD).build());
        let down = secrets_down();
        let client = mock_client!(
            aws_sdk_secretsmanager,
            RuleMode::Sequential,
            [&first, &down]
        );
        let mut authorizer = ApiAuthorizer::of_client(client, "api-token", Duration::ZERO);
        authorizer.retry_after_failure = TOKEN_REFRESH;
        assert!(admits(&authorizer, OLD).await);
        assert!(admits(&authorizer, OLD).await, "kept through the fault");
        assert!(admits(&authorizer, OLD).await);
        assert_eq!((first.num_calls(), down.num_calls()), (1, 1));
    }

    /// A read of the secret that hangs gives up in time and keeps the token held: it timed
    /// the authorizer out, and every request after it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_read_that_hangs_keeps_the_token_held() {
        let (endpoint, held) = crate::sdk::silent_endpoint().await;
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .endpoint_url(endpoint)
            .http_client(crate::sdk::https_client())
            .build();
        let client = aws_sdk_secretsmanager::Client::from_conf(config);
        let mut authorizer = ApiAuthorizer::of_client(client, "api-token", TOKEN_REFRESH);
        authorizer.read_timeout = Duration::from_millis(200);
        authorizer.token = Mutex::new(HeldToken {
            value: Ok(OLD.to_owned()),
            next_read: Some(Instant::now()),
        });
        let started = Instant::now();
        assert!(admits(&authorizer, OLD).await, "kept through the hang");
        // It waited for the answer up to the timeout, not longer.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        held.abort();
    }

    /// A token never read is an error, not a refusal: API Gateway answers 500 and the
    /// authorizer's errors alarm fires, where refusals would look like wrong tokens.
    #[tokio::test(flavor = "current_thread")]
    async fn a_token_never_read_is_an_error() {
        use aws_smithy_mocks::{RuleMode, mock_client};
        let down = secrets_down();
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&down]);
        let authorizer = ApiAuthorizer::of_client(client, "api-token", TOKEN_REFRESH);
        let event = authorizer_event(&format!("Bearer {OLD}"));
        assert!(authorizer.handle(&event).await.is_err());
        // Still an error before the read is tried again: a refusal now would be cached by
        // API Gateway for the right token too.
        assert!(authorizer.handle(&event).await.is_err());
        assert_eq!(down.num_calls(), 1, "not read again before the pause");
    }

    /// A secret too short to be a token (emptied, or set by hand) is an error too, not a
    /// refusal of everyone: the errors alarm says the secret is wrong.
    #[tokio::test(flavor = "current_thread")]
    async fn a_secret_too_short_to_be_a_token_is_an_error() {
        use aws_sdk_secretsmanager::Client;
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let short = &OLD[..MIN_TOKEN_LEN - 1];
        let secret = mock!(Client::get_secret_value)
            .then_output(move || GetSecretValueOutput::builder().secret_string(short).build());
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&secret]);
        let authorizer = ApiAuthorizer::of_client(client, "api-token", TOKEN_REFRESH);
        let event = authorizer_event(&format!("Bearer {short}"));
        assert!(authorizer.handle(&event).await.is_err());
    }
}
