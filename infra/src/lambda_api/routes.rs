//! The HTTP side of the Runtime API (2018-06-01), as much of it as the `lambda_runtime`
//! crate uses.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::runtime_api::{Handout, Shared};
use super::{FunctionError, MAX_INVOKE_PAYLOAD_BYTES};

pub(super) const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";
const RESPONSE_PATH: &str = "/2018-06-01/runtime/invocation/{id}/response";
const ERROR_PATH: &str = "/2018-06-01/runtime/invocation/{id}/error";
pub(super) const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";
pub(super) const ERROR_TYPE_HEADER: &str = "lambda-runtime-function-error-type";

/// The routes, serving `shared`.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(NEXT_PATH, get(next))
        .route(RESPONSE_PATH, post(response))
        .route(ERROR_PATH, post(error))
        .route(INIT_ERROR_PATH, post(init_error))
        // Oversized responses get Lambda's error from the handler rather than a 413 the
        // runtime only logs, which would leave the invocation waiting for its timeout.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let now = Instant::now();
    shared.lifecycle.send_if_modified(|lifecycle| {
        let first = lifecycle.first_next.is_none();
        if first {
            lifecycle.first_next = Some(now);
        }
        first
    });
    loop {
        // Registered before looking, so a notification between the look and the wait
        // is not lost.
        let mut woken = pin!(shared.wake.notified());
        woken.as_mut().enable();
        if shared.closed.load(Ordering::SeqCst) {
            return (StatusCode::GONE, "the local Runtime API is shutting down").into_response();
        }
        if let Some(handout) = shared.take_next() {
            return event_response(&shared, handout);
        }
        woken.await;
    }
}

fn event_response(shared: &Shared, queued: Handout) -> Response {
    let Handout {
        request_id,
        trace_id,
        body,
        deadline_ms,
    } = queued;
    let mut headers = HeaderMap::new();
    let values = [
        ("lambda-runtime-aws-request-id", request_id),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            shared.function_arn.clone(),
        ),
        ("lambda-runtime-trace-id", trace_id),
    ];
    for (name, value) in values {
        // Only an ARN built from an odd file name can fail here; the runtime does without it.
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, headers, body).into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(request_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let result = if body.len() > MAX_INVOKE_PAYLOAD_BYTES {
        // What Lambda answers the caller in this case.
        Ok(Err(FunctionError {
            error_type: "Function.ResponseSizeTooLarge".into(),
            message: format!(
                "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_INVOKE_PAYLOAD_BYTES} bytes).",
                body.len()
            ),
        }))
    } else if body.is_empty() {
        Ok(Ok(Value::Null))
    } else {
        serde_json::from_slice(&body)
            .map(Ok)
            .map_err(|e| e.to_string())
    };
    shared.complete(&request_id, result)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    UrlPath(request_id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.complete(&request_id, Ok(Err(function_error(&headers, &body))))
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let error = function_error(&headers, &body);
    shared
        .lifecycle
        .send_modify(|lifecycle| lifecycle.init_error = Some(error));
    StatusCode::ACCEPTED
}

/// Reads `{"errorType", "errorMessage"}`; falls back on the error-type header and the raw
/// body, so a runtime that posts something else still shows what it said.
fn function_error(headers: &HeaderMap, body: &[u8]) -> FunctionError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let header_type = headers
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    FunctionError {
        error_type: field("errorType")
            .or(header_type)
            .unwrap_or_else(|| "Unhandled".into()),
        message: field("errorMessage")
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    }
}
