//! RESO Web API credentials: a static bearer token, or OAuth2 client credentials (RFC 6749
//! §4.4) exchanged at the server's token endpoint for an access token that is cached and
//! fetched again shortly before it expires (`expires_in`).
//!
//! The exchange is one form POST, so it is a plain reqwest call on the poller's own client
//! (same TLS setup, timeouts and body cap) rather than the `oauth2` crate, whose generic
//! flows and extra HTTP client glue this one grant does not need. Neither the secret nor
//! a token is ever logged: their `Debug` is redacted and errors quote no body.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::fetch::{BodyError, read_capped};
use realty_model::config::REDACTED;

/// Longest client id, secret, scope, token URL or access token accepted.
pub const MAX_CREDENTIAL_BYTES: usize = 4_096;
/// Largest token-endpoint answer read.
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// Lifetime assumed when the server gives no `expires_in` (RFC 6749 makes it optional).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Longest lifetime believed: a token is asked for again at least daily, and a huge
/// `expires_in` cannot push the refresh time past what an `Instant` holds.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// A token is replaced this long before it expires (at most half its lifetime), so a
/// poll never sends one that runs out mid-read.
const REFRESH_MARGIN: Duration = Duration::from_secs(120);

/// The `reso` entry of the listing-API secret: a bearer token string, or
/// `{"token_url", "client_id", "client_secret", "scope"?}`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ResoKey {
    Token(String),
    ClientCredentials(ClientCredentials),
}

impl From<&str> for ResoKey {
    fn from(token: &str) -> Self {
        Self::Token(token.to_owned())
    }
}

impl std::fmt::Debug for ResoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(_) => f.write_str(REDACTED),
            Self::ClientCredentials(c) => c.fmt(f),
        }
    }
}

/// OAuth2 client credentials of a RESO server.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// Space-separated scopes (`api`, `ODataApi`); servers that need none leave it out.
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &REDACTED)
            .field("scope", &self.scope)
            .finish()
    }
}

impl ClientCredentials {
    /// What makes the credentials unusable, said without quoting the secret.
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(self.token_url.trim())
            .map_err(|e| format!("reso.token_url is not a URL: {e}"))?;
        let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if url.scheme() != "https" && !(url.scheme() == "http" && local) {
            return Err("reso.token_url must be https (http only on localhost)".into());
        }
        for (name, value) in [
            ("token_url", Some(&self.token_url)),
            ("client_id", Some(&self.client_id)),
            ("client_secret", Some(&self.client_secret)),
            ("scope", self.scope.as_ref()),
        ] {
            let Some(value) = value else { continue };
            if value.trim().is_empty() && name != "scope" {
                return Err(format!("reso.{name} is empty"));
            }
            if value.len() > MAX_CREDENTIAL_BYTES || value.chars().any(char::is_control) {
                return Err(format!(
                    "reso.{name} is over {MAX_CREDENTIAL_BYTES} bytes or has control characters"
                ));
            }
        }
        Ok(())
    }
}

/// Why no access token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RESO token endpoint {url}: {reason}")]
pub struct TokenError {
    pub url: String,
    pub reason: String,
}

/// An access token and how long the server said it lasts.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub access_token: String,
    pub expires_in: Option<Duration>,
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Reads a token-endpoint body: a bearer token of bounded size that can go in a header.
pub fn parse_token_response(body: &[u8]) -> Result<TokenGrant, String> {
    let answer: TokenResponse =
        serde_json::from_slice(body).map_err(|e| format!("not an OAuth2 token response: {e}"))?;
    if let Some(kind) = &answer.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(format!("token_type {kind:?}, expected Bearer"));
    }
    let token = answer.access_token.trim();
    if token.is_empty()
        || token.len() > MAX_CREDENTIAL_BYTES
        || !token.chars().all(|c| c.is_ascii_graphic())
    {
        return Err("access_token is empty, too long or not header-safe".into());
    }
    Ok(TokenGrant {
        access_token: token.to_owned(),
        expires_in: answer.expires_in.map(Duration::from_secs),
    })
}

/// When a token granted now for `lifetime` (at most [`MAX_LIFETIME`]) should be replaced.
fn refresh_at(granted: Instant, lifetime: Option<Duration>) -> Instant {
    let lifetime = lifetime.unwrap_or(DEFAULT_LIFETIME).min(MAX_LIFETIME);
    // Past what an `Instant` holds (a clock near its end): refresh at once.
    granted
        .checked_add(lifetime - REFRESH_MARGIN.min(lifetime / 2))
        .unwrap_or(granted)
}

struct Cached {
    access_token: String,
    refresh_at: Instant,
}

/// A RESO server's credentials with the current access token. Shared by every read of a
/// poller (one container), so a token serves poll after poll until it nears expiry.
pub struct ResoAuth {
    key: ResoKey,
    cache: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for ResoAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResoAuth").field("key", &self.key).finish()
    }
}

impl ResoAuth {
    pub fn new(key: ResoKey) -> Self {
        Self {
            key,
            cache: Mutex::new(None),
        }
    }

    /// The bearer token to send: the static one, or a cached or newly granted one.
    pub async fn bearer(
        &self,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<String, TokenError> {
        match &self.key {
            ResoKey::Token(token) => Ok(token.trim().to_owned()),
            ResoKey::ClientCredentials(credentials) => {
                self.cached_or(|| request_token(client, credentials, timeout))
                    .await
            }
        }
    }

    /// Forgets the cached token (the server refused it: revoked or expired early).
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    async fn cached_or<F, Fut>(&self, grant: F) -> Result<String, TokenError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<TokenGrant, TokenError>>,
    {
        // Held across the request: concurrent reads wait for one grant instead of each
        // asking for its own.
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.access_token.clone());
        }
        let granted_at = Instant::now();
        let grant = grant().await?;
        let token = grant.access_token.clone();
        *cache = Some(Cached {
            access_token: grant.access_token,
            refresh_at: refresh_at(granted_at, grant.expires_in),
        });
        Ok(token)
    }
}

/// One client-credentials grant: the credentials in the form body (RFC 6749 §2.3.1), as
/// RESO servers (Trestle, Spark, the simulator) take them.
async fn request_token(
    client: &reqwest::Client,
    credentials: &ClientCredentials,
    timeout: Duration,
) -> Result<TokenGrant, TokenError> {
    let url = credentials.token_url.trim().to_owned();
    let failed = |reason: String| TokenError {
        url: url.clone(),
        reason,
    };
    credentials.validate().map_err(failed)?;
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", credentials.client_id.trim()),
        ("client_secret", credentials.client_secret.trim()),
    ];
    if let Some(scope) = credentials.scope.as_deref().map(str::trim)
        && !scope.is_empty()
    {
        form.push(("scope", scope));
    }
    let response = client
        .post(&url)
        .timeout(timeout)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|e| failed(format!("request failed: {}", e.without_url())))?;
    let status = response.status();
    if status.is_redirection() {
        // The poller's client follows no redirect: a 307 or 308 would POST the secret again
        // to wherever it points.
        return Err(failed(format!(
            "redirected (HTTP {status}) to {:?}: not followed; the credentials go to \
             reso.token_url only (set it to the server's own token address)",
            super::fetch::location(response.headers())
        )));
    }
    if !status.is_success() {
        // The body may echo what was sent: only the status is reported.
        return Err(failed(format!(
            "HTTP {status}: check the client id, secret and scope"
        )));
    }
    // Read chunk by chunk and stopped past the bound: a body without a length is not read
    // whole first.
    let body = read_capped(response, MAX_TOKEN_RESPONSE_BYTES)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => failed("token response too large".into()),
            BodyError::Transport(e) => failed(format!("reading the answer: {e}")),
        })?;
    parse_token_response(&body).map_err(failed)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn credentials() -> ClientCredentials {
        ClientCredentials {
            token_url: "https://auth.example-mls.test/connect/token".into(),
            client_id: "realty".into(),
            client_secret: "s3cr3t-value".into(),
            scope: Some("api".into()),
        }
    }

    #[test]
    fn the_secret_takes_a_token_or_client_credentials_and_never_shows_them() {
        let token: ResoKey = serde_json::from_str(r#""abc""#).expect("token");
        assert_eq!(token, ResoKey::Token("abc".into()));
        let oauth: ResoKey = serde_json::from_str(
            r#"{"token_url": "https://auth.example-mls.test/connect/token",
                "client_id": "realty", "client_secret": "s3cr3t-value", "scope": "api"}"#,
        )
        .expect("client credentials");
        assert_eq!(oauth, ResoKey::ClientCredentials(credentials()));
        for shown in [format!("{token:?}"), format!("{oauth:?}")] {
            assert!(
                !shown.contains("abc") && !shown.contains("s3cr3t"),
                "{shown}"
            );
        }
        // A misspelt field is an error, not a silently missing scope.
        assert!(
            serde_json::from_str::<ResoKey>(
                r#"{"token_url": "https://a.test/t", "client_id": "a", "client_secret": "b", "scopes": "api"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn credentials_are_validated() {
        assert_eq!(credentials().validate(), Ok(()));
        let local = ClientCredentials {
            token_url: "http://127.0.0.1:8080/reso/token".into(),
            ..credentials()
        };
        assert_eq!(local.validate(), Ok(()));
        for bad in [
            ClientCredentials {
                token_url: "http://auth.example-mls.test/token".into(),
                ..credentials()
            },
            ClientCredentials {
                token_url: "not a url".into(),
                ..credentials()
            },
            ClientCredentials {
                client_secret: " ".into(),
                ..credentials()
            },
            ClientCredentials {
                client_id: "x".repeat(MAX_CREDENTIAL_BYTES + 1),
                ..credentials()
            },
        ] {
            let why = bad.validate().expect_err("invalid");
            assert!(!why.contains("s3cr3t"), "{why}");
        }
    }

    #[test]
    fn token_responses_are_checked() {
        let grant = parse_token_response(
            br#"{"access_token": "eyJ.abc", "token_type": "bearer", "expires_in": 3600}"#,
        )
        .expect("valid");
        assert_eq!(grant.access_token, "eyJ.abc");
        assert_eq!(grant.expires_in, Some(Duration::from_secs(3600)));
        for bad in [
            &br#"{"access_token": "a b"}"#[..],
            br#"{"access_token": ""}"#,
            br#"{"access_token": "abc", "token_type": "mac"}"#,
            br#"{"error": "invalid_client"}"#,
            b"<html>",
        ] {
            assert!(parse_token_response(bad).is_err());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_reused_until_shortly_before_it_expires() {
        let auth = ResoAuth::new(ResoKey::ClientCredentials(credentials()));
        let grants = &AtomicU32::new(0);
        let grant = move || async move {
            let n = grants.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(TokenGrant {
                access_token: format!("token-{n}"),
                expires_in: Some(Duration::from_secs(600)),
            })
        };
        assert_eq!(auth.cached_or(grant).await, Ok("token-1".into()));
        tokio::time::advance(Duration::from_secs(470)).await;
        assert_eq!(auth.cached_or(grant).await, Ok("token-1".into()));
        // 600 s less the 120 s margin: replaced before it runs out.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(auth.cached_or(grant).await, Ok("token-2".into()));
        auth.invalidate().await;
        assert_eq!(auth.cached_or(grant).await, Ok("token-3".into()));
        // A failed grant leaves nothing cached.
        auth.invalidate().await;
        let refused = || async {
            Err(TokenError {
                url: "https://auth.example-mls.test/connect/token".into(),
                reason: "HTTP 401".into(),
            })
        };
        assert!(auth.cached_or(refused).await.is_err());
        assert_eq!(auth.cached_or(grant).await, Ok("token-4".into()));
        // Short lifetimes keep half of it.
        let now = Instant::now();
        assert_eq!(
            refresh_at(now, Some(Duration::from_secs(60))),
            now + Duration::from_secs(30)
        );
    }

    #[test]
    fn a_lifetime_is_believed_up_to_a_day() {
        let now = Instant::now();
        let day = MAX_LIFETIME;
        assert_eq!(refresh_at(now, Some(day)), now + day - REFRESH_MARGIN);
        let second = Duration::from_secs(1);
        assert_eq!(
            refresh_at(now, Some(day + second)),
            now + day - REFRESH_MARGIN
        );
        // `expires_in` 18446744073709551615 no longer overflows the clock.
        let huge = parse_token_response(
            br#"{"access_token": "eyJ.abc", "expires_in": 18446744073709551615}"#,
        )
        .expect("valid");
        assert_eq!(refresh_at(now, huge.expires_in), now + day - REFRESH_MARGIN);
    }

    /// A token endpoint on a loopback port answering 200 with `body`; its token URL.
    async fn token_endpoint(body: axum::body::Body) -> String {
        let body = std::sync::Arc::new(std::sync::Mutex::new(Some(body)));
        let router = axum::Router::new().route(
            "/token",
            axum::routing::post(move || {
                let body = body.lock().expect("body").take().unwrap_or_default();
                async move { body }
            }),
        );
        format!("{}/token", crate::serve_on_loopback(router).await)
    }

    #[tokio::test]
    async fn a_token_answer_without_a_length_is_read_no_further_than_its_bound() {
        // An endless body without a Content-Length: it used to be read whole before the
        // size check, that is, until memory ran out.
        let chunk = axum::body::Bytes::from(vec![b' '; 8 * 1024]);
        let endless = futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        let token_url = token_endpoint(axum::body::Body::from_stream(endless)).await;
        let client = crate::fetch::http_client(Duration::from_secs(2)).expect("client");
        let endless_endpoint = ClientCredentials {
            token_url,
            ..credentials()
        };
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            request_token(&client, &endless_endpoint, Duration::from_secs(10)),
        )
        .await
        .expect("the read stops at the bound");
        let error = answer.err().expect("too large");
        assert!(error.reason.contains("too large"), "{error}");
        // A token answer of exactly the bound, streamed, is read.
        let mut at_bound = br#"{"access_token": "eyJ.abc"}"#.to_vec();
        at_bound.resize(MAX_TOKEN_RESPONSE_BYTES, b' ');
        let stream = futures::stream::iter(
            at_bound
                .chunks(1_000)
                .map(|c| Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let bounded_endpoint = ClientCredentials {
            token_url: token_endpoint(axum::body::Body::from_stream(stream)).await,
            ..credentials()
        };
        let grant = request_token(&client, &bounded_endpoint, Duration::from_secs(10))
            .await
            .expect("a body at the bound is read");
        assert_eq!(grant.access_token, "eyJ.abc");
    }
}
