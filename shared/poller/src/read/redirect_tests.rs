//! The APIs' credentials never follow a redirect: an API on a loopback port that redirects
//! every request to a second server, which records what reaches it.

use realty_model::markets::SearchFilter;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::*;
use crate::fetch::http_client;
use crate::reso_auth::{ClientCredentials, ResoAuth, ResoKey};

/// One request as it reached a server: method, path, headers and body.
type Recorded = (String, String, Vec<(String, String)>, String);

/// What reached a server, in order.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Recorded>>>);

impl Recorder {
    fn requests(&self) -> Vec<Recorded> {
        self.0.lock().expect("recorder").clone()
    }

    /// Records `request` (its body whole: the tests send small ones).
    async fn record(&self, request: Request) {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 64 * 1024)
            .await
            .unwrap_or_default();
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), value)
            })
            .collect();
        self.0.lock().expect("recorder").push((
            parts.method.to_string(),
            parts.uri.to_string(),
            headers,
            String::from_utf8_lossy(&body).into_owned(),
        ));
    }
}

/// A server answering every request 200 `{}`, recording it; its base URL.
async fn elsewhere(recorder: &Recorder) -> String {
    async fn any(State(recorder): State<Recorder>, request: Request) -> impl IntoResponse {
        recorder.record(request).await;
        axum::Json(serde_json::json!({}))
    }
    let router = axum::Router::new()
        .fallback(any)
        .with_state(recorder.clone());
    crate::serve_on_loopback(router).await
}

/// A server answering every request `status` to the same path and query at `target`,
/// recording it; its base URL.
async fn redirecting(status: StatusCode, target: String, recorder: &Recorder) -> String {
    async fn any(
        State((status, target, recorder)): State<(StatusCode, String, Recorder)>,
        request: Request,
    ) -> impl IntoResponse {
        let to = format!("{target}{}", request.uri());
        recorder.record(request).await;
        (status, [("location", to)])
    }
    let router = axum::Router::new()
        .fallback(any)
        .with_state((status, target, recorder.clone()));
    crate::serve_on_loopback(router).await
}

async fn read(
    endpoint: &SourceEndpoint,
    market: &str,
) -> Result<(MarketRead, ReadStats), FetchError> {
    let policy = HttpPolicy {
        max_attempts: 3,
        ..HttpPolicy::default()
    };
    let filter = SearchFilter::default();
    read_market(
        &http_client(std::time::Duration::from_secs(2)).expect("client"),
        &RateLimiter::per_second(0.0),
        &policy,
        endpoint,
        MarketSearch {
            market,
            filter: &filter,
            offer: realty_model::listing::Offer::Sale,
        },
        &PollState::default(),
        Utc::now(),
        &(),
    )
    .await
}

fn endpoint(kind: SourceKind, base_url: String, reso_auth: Option<ResoAuth>) -> SourceEndpoint {
    SourceEndpoint {
        kind,
        base_url,
        key: "rapidapi-secret-key".into(),
        reso_auth: reso_auth.map(Arc::new),
        reso_full_read_every: chrono::TimeDelta::hours(24),
        crawler: None,
    }
}

/// Before, reqwest followed up to 10 redirects to any host, keeping every header but
/// `Authorization` and cookies: the RapidAPI key went to whichever host a redirect named.
#[tokio::test]
async fn an_api_redirect_to_another_host_delivers_no_credential_and_fails_the_read() {
    let token = ResoKey::Token("reso-bearer-token".into());
    let cases = [
        (SourceKind::Zillow, StatusCode::FOUND, None),
        (SourceKind::Realtor, StatusCode::TEMPORARY_REDIRECT, None),
        (
            SourceKind::Reso,
            StatusCode::PERMANENT_REDIRECT,
            Some(ResoAuth::new(token)),
        ),
    ];
    for (kind, status, auth) in cases {
        let (asked, other) = (Recorder::default(), Recorder::default());
        let target = elsewhere(&other).await;
        let base = redirecting(status, target, &asked).await;
        let outcome = read(&endpoint(kind, base, auth), "nashville-tn").await;
        assert!(
            matches!(&outcome, Err(FetchError::Redirected { status: s, .. }) if *s == status.as_u16()),
            "{kind:?}: {:?}",
            outcome.map(|(read, _)| read.listings.len())
        );
        assert!(
            other.requests().is_empty(),
            "{kind:?}: the other host was sent {:?}",
            other.requests()
        );
        // Asked once: a redirect is an answer, not retried.
        let first = asked.requests();
        assert_eq!(first.len(), 1, "{kind:?}: {first:?}");
    }
}

/// A token endpoint answering 307 (or 308) is sent the client secret once: before, reqwest
/// POSTed the form again to wherever the redirect pointed.
#[tokio::test]
async fn a_reso_token_endpoint_that_redirects_gets_the_secret_once() {
    for status in [
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ] {
        let (token_server, other) = (Recorder::default(), Recorder::default());
        let target = elsewhere(&other).await;
        let token_base = redirecting(status, target, &token_server).await;
        let auth = ResoAuth::new(ResoKey::ClientCredentials(ClientCredentials {
            token_url: format!("{token_base}/token"),
            client_id: "realty".into(),
            client_secret: "s3cr3t-value".into(),
            scope: None,
        }));
        let api = Recorder::default();
        let api_base = elsewhere(&api).await;
        let outcome = read(
            &endpoint(SourceKind::Reso, api_base, Some(auth)),
            "nashville-tn",
        )
        .await;
        let error = outcome.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            error.contains("redirected") && !error.contains("s3cr3t"),
            "{error}"
        );
        let sent: Vec<_> = token_server
            .requests()
            .into_iter()
            .filter(|(_, _, _, body)| body.contains("s3cr3t-value"))
            .collect();
        assert_eq!(sent.len(), 1, "{status}: {:?}", token_server.requests());
        assert!(other.requests().is_empty(), "{:?}", other.requests());
        assert!(api.requests().is_empty());
    }
}
