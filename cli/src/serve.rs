//! `realty serve`: the market API over the local stack (or `--stack`), as the deployed one
//! answers it: the same `realty_api::respond`, the data routes behind the same bearer
//! token (the stack's ApiTokenSecret), on a loopback port.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use realty_api::respond;
use realty_api::routes::ApiRequest;
use realty_aws::adapters::secrets::SecretsManagerSource;
use realty_aws::functions::api::{ApiAuthorizer, ApiFunction};
use realty_model::ports::SecretSource;

use crate::target;

struct Served {
    api: ApiFunction,
    /// The deployed authorizer's check, the token read again every minute: a token rotated
    /// with `realty api token --rotate` stops working here as it does there.
    authorizer: ApiAuthorizer,
}

/// The routes anyone may read (the deployed HTTP API leaves them without the authorizer):
/// the page, its assets and the spec hold no data.
fn public(path: &str) -> bool {
    path == "/" || path == "/openapi.json" || path.starts_with("/assets/")
}

async fn answer(
    State(served): State<std::sync::Arc<Served>>,
    Query(pairs): Query<Vec<(String, String)>>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let admitted = if public(&path) {
        Ok(true)
    } else {
        served.authorizer.admits(authorization).await
    };
    if !matches!(admitted, Ok(true)) {
        // API Gateway's answers: 401 without the identity source, 403 when the authorizer
        // refuses it, 500 when it fails (no token readable).
        let (status, body) = match (authorization, admitted) {
            (_, Err(_)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"message":"Internal Server Error"}"#,
            ),
            (None, _) => (StatusCode::UNAUTHORIZED, r#"{"message":"Unauthorized"}"#),
            (Some(_), _) => (StatusCode::FORBIDDEN, r#"{"message":"Forbidden"}"#),
        };
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(realty_api::JSON),
        );
        return response;
    }
    // Of a repeated parameter the first counts, as in the Lambda.
    let query = pairs
        .into_iter()
        .fold(std::collections::BTreeMap::new(), |mut m, (k, v)| {
            m.entry(k).or_insert(v);
            m
        });
    let api_request = ApiRequest {
        method: request.method().as_str().to_owned(),
        path,
        query,
    };
    let served_api = &served.api;
    let out = respond(
        &served_api.markets,
        &served_api.config,
        &api_request,
        chrono::Utc::now(),
    )
    .await;
    let headers = out.headers();
    let mut response = (
        StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        out.body,
    )
        .into_response();
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

pub async fn run(port: u16, stack: Option<&str>) -> Result<()> {
    let target = target::resolve(stack).await?;
    let secrets = SecretsManagerSource {
        client: aws_sdk_secretsmanager::Client::new(&target.sdk),
    };
    let token = secrets
        .secret_string(&target.resources.api_token_secret)
        .await
        .context("reading the API token")?;
    let served = std::sync::Arc::new(Served {
        api: ApiFunction::new(&target.sdk, &target.resources),
        authorizer: ApiAuthorizer::new(&target.sdk, &target.resources),
    });
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(served.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    let address = listener.local_addr()?;
    println!("market API of {} at http://{address}/", target.description);
    // A deployed stack's token is not printed (a terminal's scroll-back, a shared screen):
    // the example reads it where it is kept.
    let shown = match stack {
        Some(name) => format!("$(realty api token --stack {name})"),
        None => token.trim().to_owned(),
    };
    println!("  curl -H \"Authorization: Bearer {shown}\" http://{address}/markets");
    println!("stop: Ctrl-C");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving the API")
}
