//! HTTP plumbing: encoding an answer (gzip when asked), and reading what a request says
//! (accepted encodings, host, query string, bearer token).

use std::io::Write as _;

use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;

use crate::api::{QueryPairs, Reply};

pub(super) fn respond(reply: Reply, gzip: bool) -> Response {
    let mut body = reply.body;
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, reply.content_type);
    for (name, value) in reply.headers {
        builder = builder.header(name, value);
    }
    if gzip && !body.is_empty() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if encoder.write_all(&body).is_ok()
            && let Ok(compressed) = encoder.finish()
        {
            body = compressed;
            builder = builder
                .header(header::CONTENT_ENCODING, "gzip")
                .header(header::VARY, "accept-encoding");
        }
    }
    builder.body(Body::from(body)).unwrap_or_else(|_| {
        let mut fallback = Response::new(Body::from("internal error"));
        *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("gzip"))
}

/// `http://HOST` from the request's `Host`, for absolute OData links.
pub(super) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

pub(super) fn query_pairs(uri: &Uri) -> Result<QueryPairs, Reply> {
    Query::<QueryPairs>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|e| Reply::message(400, &format!("unreadable query string: {e}")))
}

pub(super) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            let token = token.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
        })
}

pub(super) async fn not_found(method: Method, uri: Uri) -> Response {
    respond(
        Reply::message(
            404,
            &format!("Endpoint '{method} {}' does not exist", uri.path()),
        ),
        false,
    )
}
