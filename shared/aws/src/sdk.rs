//! SDK configuration shared by the functions and the operator tools.
//!
//! One rule decides where AWS is: an explicit endpoint (the CLI's local AWS), else
//! `AWS_ENDPOINT_URL` (LocalStack or any emulator), else real AWS. The operator tools load
//! aws-config's whole provider chain ([`sdk_config`]: profiles, SSO, IMDS...); a function
//! reads what Lambda puts in its environment ([`lambda_sdk_config`]).

use std::time::Duration;

use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_config::identity::IdentityCache;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use realty_model::config::ConfigError;

/// An SDK error on one line: `Code: message` when AWS answered with a code, else the error
/// and its sources as each displays itself, bounded. Not `DisplayErrorContext`, which appends
/// the error's Debug form: for an answer from the service, the raw response whole (headers and
/// body) in a log line or a message.
pub fn error_line<E: ProvideErrorMetadata + std::error::Error>(e: &E) -> String {
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => realty_model::listing::bound_reason(format!("{c}: {m}")),
        (Some(c), None) => c.to_owned(),
        // No code: a timeout, a dropped connection, an answer that did not parse.
        _ => error_chain(e),
    }
}

/// `e` and its sources, each as it displays itself, joined by `: `, bounded (for errors
/// that are not all an SDK call's, such as a body stream's).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    realty_model::listing::bound_reason(text)
}

/// Region used against an emulator when none is configured.
pub const LOCAL_REGION: &str = "us-east-1";

/// Limit on opening a connection (the SDK's own default).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3_100);

/// Limit on one attempt of an SDK call, up to the response's headers. The SDK sets none, so a
/// connection that never answers holds a call forever (awslabs/aws-sdk-rust#611): in Lambda
/// that spends the whole function timeout and stalls the shard, locally it hangs a run. A
/// timed-out attempt is retried by the SDK like any transient error; a retry of an attempt
/// that did land is harmless for every write we make but one: the poller's request counter
/// (`ADD`) then counts that run's requests twice, an over-count that ends a source's polls for
/// the month early rather than letting them overspend its budget. Far above what any of our
/// calls takes (a 5 MiB PutRecords, a 4 MiB PutRecordBatch), well inside a function timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// The timeouts every client of ours runs with.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// The HTTPS client of every SDK client of ours: the SDK's default client (hyper 1, rustls,
/// the platform's root certificates, proxies from the environment) with rustls on ring
/// instead of aws-lc-rs. ring is in the functions already (the poller's listing-API client);
/// aws-lc-rs and the SDK's default features were about 3 MB of each function's 8-14 MB
/// (docs/capacity.md, "Where the cold start and the bytes go"). Certificates are verified
/// as before, against the same roots.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = aws_smithy_http_client::ConnectorBuilder::default().tls_provider(
            tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring),
        );
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// `AWS_ENDPOINT_URL` when set to something: an empty or blank value is no override (one
/// rule for every command: some took `AWS_ENDPOINT_URL=` for one, others not).
pub fn endpoint_from_env() -> Option<String> {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Loads the SDK configuration. With an endpoint override in play (explicit or from
/// `AWS_ENDPOINT_URL`), credentials default to static test ones, so a local run never
/// signs with, or needs, real credentials.
pub async fn sdk_config(endpoint: Option<&str>) -> SdkConfig {
    let overridden = endpoint.is_some() || endpoint_from_env().is_some();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeout_config())
        .http_client(https_client());
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    if overridden {
        // Environment or us-east-1: never IMDS, which an emulator on a laptop does not have.
        loader = loader.region(
            RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
                .or_else(Region::new(LOCAL_REGION)),
        );
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(local_credentials());
        }
    }
    loader.load().await
}

/// The SDK configuration of a function on Lambda, from what Lambda sets in its environment:
/// the region (`AWS_REGION`) and the execution role's credentials (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, read again whenever the SDK asks, as
/// aws-config's environment provider does), and `AWS_ENDPOINT_URL` when set (an emulator, as
/// `realty bench --parts lambda` runs the bootstraps). Not aws-config's default chain: its
/// profile files, IMDS, ECS, SSO and web-identity providers (an STS client with its XML
/// protocol) have nothing to find in a Lambda sandbox, and were about half a MB of each
/// bootstrap (docs/capacity.md, "Where the cold start and the bytes go").
pub fn lambda_sdk_config(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<SdkConfig, ConfigError> {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let region = set("AWS_REGION").ok_or(ConfigError::Missing {
        name: "AWS_REGION".into(),
        what: "the function's region, which Lambda sets",
    })?;
    let endpoint = set("AWS_ENDPOINT_URL");
    let credentials = if set("AWS_ACCESS_KEY_ID").is_some() {
        SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new())
    } else if endpoint.is_some() {
        // An emulator does not check signatures: the same test keys as `sdk_config`'s.
        SharedCredentialsProvider::new(local_credentials())
    } else {
        return Err(ConfigError::Missing {
            name: "AWS_ACCESS_KEY_ID".into(),
            what: "the execution role's credentials, which Lambda sets",
        });
    };
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(credentials)
        .identity_cache(IdentityCache::lazy().build())
        .retry_config(RetryConfig::standard())
        .timeout_config(timeout_config())
        .http_client(https_client());
    if let Some(url) = endpoint {
        config = config.endpoint_url(url);
    }
    Ok(config.build())
}

/// The configuration of a stack `realty up` provisioned into the emulator at `endpoint`, in
/// the region it was provisioned in, with the emulator's test keys: the shell's region or
/// real keys (set for another purpose) otherwise sent the command to another region, or
/// account, of the emulator, where no such stack is.
pub async fn local_sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeout_config())
        .http_client(https_client())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(local_credentials())
        .load()
        .await
}

/// Keys for an emulator, which accepts any signature: a local run never signs with, or
/// needs, real credentials.
fn local_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("test", "test", None, None, "realty-local")
}

/// An S3 client; path-style addressing whenever an endpoint override is set, because
/// emulators on 127.0.0.1 cannot serve virtual-hosted bucket names.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// For tests: an endpoint (`http://127.0.0.1:<port>`) that accepts connections and never
/// answers, until the handle is aborted. (Only the SNS and API tests use it.)
#[cfg(all(test, any(feature = "alerts", feature = "api")))]
pub(crate) async fn silent_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    (format!("http://{address}"), held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_client_gets_connect_and_attempt_timeouts() {
        let config = sdk_config(Some("http://127.0.0.1:1")).await;
        let timeouts = config.timeout_config().expect("a timeout config");
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
    }

    fn lambda_env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn a_function_without_its_region_or_credentials_says_which() {
        let missing = |vars: &[(&str, &str)]| match lambda_sdk_config(lambda_env(vars)) {
            Err(ConfigError::Missing { name, .. }) => name,
            other => panic!("expected a missing setting, got {other:?}"),
        };
        assert_eq!(missing(&[("AWS_ACCESS_KEY_ID", "AKIA")]), "AWS_REGION");
        assert_eq!(missing(&[("AWS_REGION", " ")]), "AWS_REGION");
        assert_eq!(missing(&[("AWS_REGION", "eu-west-3")]), "AWS_ACCESS_KEY_ID");
    }

    #[test]
    fn a_function_config_has_the_same_timeouts_and_client_as_the_tools() {
        let config = lambda_sdk_config(lambda_env(&[
            ("AWS_REGION", "eu-west-3"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
        ]))
        .expect("a config");
        let timeouts = config.timeout_config().expect("a timeout config");
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert!(config.http_client().is_some());
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-3"));
        assert_eq!(
            config.endpoint_url(),
            None,
            "real AWS unless told otherwise"
        );
        assert!(config.retry_config().is_some_and(|r| r.max_attempts() == 3));
    }

    /// A call through a client of the function's config reaches `AWS_ENDPOINT_URL`, signed
    /// for `AWS_REGION` (the emulator's keys when Lambda's are not set).
    #[tokio::test]
    async fn a_function_config_signs_for_its_region_and_calls_its_endpoint() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("a connection");
            let mut request = Vec::new();
            let mut buf = [0_u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.expect("the request");
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let body = br#"{"TableNames":[]}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await.expect("a response");
            socket.write_all(body).await.expect("a response body");
            String::from_utf8_lossy(&request).into_owned()
        });
        let config = lambda_sdk_config(lambda_env(&[
            ("AWS_REGION", "eu-west-3"),
            ("AWS_ENDPOINT_URL", &url),
        ]))
        .expect("a config");
        aws_sdk_dynamodb::Client::new(&config)
            .list_tables()
            .send()
            .await
            .expect("the call");
        let request = server.await.expect("the server").to_ascii_lowercase();
        assert!(
            request.contains("credential=test/") && request.contains("/eu-west-3/dynamodb/"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn every_client_gets_the_rustls_ring_https_client() {
        // The SDK crates are built without a default HTTPS client: without this one, the
        // first call of any client would fail for want of one.
        let config = sdk_config(Some("http://127.0.0.1:1")).await;
        assert!(config.http_client().is_some());
    }
}
