//! The portals' pages, with the faults a web server gives.

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::Response;

use super::SimHandle;
use super::http::{accepts_gzip, respond};
use super::traffic::InFlight;
use crate::api::Reply;
use crate::config::FaultKind;
use crate::portal::{Portal, pages};
use crate::random::{hash_bytes, hash_words};

pub(super) async fn avito_page(State(sim): State<SimHandle>, request: Request) -> Response {
    portal_page(sim, Portal::Avito, request).await
}

pub(super) async fn mubawab_page(State(sim): State<SimHandle>, request: Request) -> Response {
    portal_page(sim, Portal::Mubawab, request).await
}

/// One request to a portal: the fault decided as for the APIs (only those a web server
/// gives: 429 with Retry-After, 503, slow), then the page from the ads up now.
async fn portal_page(sim: SimHandle, portal: Portal, request: Request) -> Response {
    let agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let _counted = InFlight::enter(sim.traffic(portal), agent);
    let gzip = accepts_gzip(request.headers());
    let uri = request.uri();
    let prefix = format!("/{}", portal.as_str());
    let raw_path = uri.path().strip_prefix(&prefix).unwrap_or("/");
    let path = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let request_hash = hash_words(&[0x0090_47A1, hash_bytes(target.as_bytes())]);
    let now = sim.now();
    let retry_after = sim.shared.faults.retry_after_secs.to_string();
    match sim.fault_for(now.timestamp_millis(), request_hash).0 {
        Some(kind @ (FaultKind::RateLimit | FaultKind::ServerError)) => {
            sim.count(kind);
            let (status, text) = if kind == FaultKind::RateLimit {
                (429, "Too Many Requests")
            } else {
                (503, "Service Unavailable")
            };
            let mut reply = pages::html(
                status,
                format!("<html><body>{text}</body></html>").into_bytes(),
            );
            reply.headers.push(("retry-after", retry_after));
            return respond(reply, gzip);
        }
        Some(FaultKind::Slow) if !sim.be_slow().await => {
            return respond(Reply::message(503, "shutting down"), gzip);
        }
        // Mangled bodies and moving listings are the APIs' faults.
        _ => {}
    }
    let reply = pages::answer(
        &sim.shared.portals,
        portal,
        &path,
        uri.query(),
        now,
        &sim.portal_faults(),
    );
    respond(reply, gzip)
}
