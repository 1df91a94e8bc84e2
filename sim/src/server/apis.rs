//! The listing APIs' requests: authorised, the fault decided, the answer rendered from the
//! current state and mangled if the fault says so; and RESO's token endpoint.

use std::sync::PoisonError;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::Response;

use super::SimHandle;
use super::http::{accepts_gzip, base_url, bearer_token, query_pairs, respond};
use crate::api::{ApiKind, QueryPairs, Reply, realtor, reso, reso_auth, zillow};
use crate::config::FaultKind;
use crate::faults;
use crate::random::{hash_bytes, hash_words};

/// Largest request body read (a Realtor.com search body is a few hundred bytes).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Wall-clock unix seconds: token lifetimes run on the client's clock, not simulated time.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) async fn reso_token(body: Bytes) -> Response {
    respond(reso_auth::token_reply(&body, unix_now()), false)
}

pub(super) async fn zillow_search(State(sim): State<SimHandle>, request: Request) -> Response {
    listing_api(sim, ApiKind::Zillow, request).await
}

pub(super) async fn realtor_search(State(sim): State<SimHandle>, request: Request) -> Response {
    listing_api(sim, ApiKind::Realtor, request).await
}

pub(super) async fn reso_property(State(sim): State<SimHandle>, request: Request) -> Response {
    listing_api(sim, ApiKind::Reso, request).await
}

/// One listing-API request: authorise, decide the fault, render from the current state,
/// mangle if the fault says so, encode.
async fn listing_api(sim: SimHandle, api: ApiKind, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let gzip = accepts_gzip(&parts.headers);
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => return respond(Reply::message(413, "request body too large"), gzip),
    };
    if api == ApiKind::Reso
        && !bearer_token(&parts.headers).is_some_and(|t| reso_auth::token_valid(t, unix_now()))
    {
        let mut reply = reso::odata_error(
            401,
            "Authorization: Bearer <token> from POST /reso/token (client credentials) is required",
        );
        reply
            .headers
            .push(("www-authenticate", "Bearer".to_owned()));
        return respond(reply, gzip);
    }

    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let request_hash = hash_words(&[
        api.tag(),
        hash_bytes(parts.method.as_str().as_bytes()),
        hash_bytes(target.as_bytes()),
        hash_bytes(&body),
    ]);
    let config = &sim.shared.faults;
    let (fault, fault_hash) = sim.fault_for(sim.now().timestamp_millis(), request_hash);
    match fault {
        Some(FaultKind::RateLimit) => {
            sim.count(FaultKind::RateLimit);
            return respond(faults::rate_limited(api, config.retry_after_secs), gzip);
        }
        Some(FaultKind::ServerError) => {
            sim.count(FaultKind::ServerError);
            return respond(
                faults::server_error(api, fault_hash, config.retry_after_secs),
                gzip,
            );
        }
        Some(FaultKind::Slow) if !sim.be_slow().await => {
            return respond(Reply::message(503, "shutting down"), gzip);
        }
        _ => {}
    }

    let shift = (fault == Some(FaultKind::PageShift)).then_some(fault_hash);
    let hide = (fault == Some(FaultKind::Hidden)).then_some(fault_hash);
    let base = base_url(&parts.headers);
    let (reply, made) = match query_pairs(&parts.uri) {
        Ok(pairs) => render(&sim, api, &pairs, &body, &base, shift, hide),
        Err(reply) => (reply, Made::default()),
    };
    if made.shifted {
        sim.count(FaultKind::PageShift);
    }
    if made.hidden {
        sim.count(FaultKind::Hidden);
    }
    let reply = match fault {
        Some(FaultKind::Truncated) if reply.is_success() => {
            sim.count(FaultKind::Truncated);
            Reply {
                body: faults::truncate(&reply.body, fault_hash),
                ..reply
            }
        }
        Some(FaultKind::Malformed) if reply.is_success() => {
            sim.count(FaultKind::Malformed);
            let (body, content_type) = faults::malform(&reply.body, fault_hash);
            Reply {
                body,
                content_type,
                ..reply
            }
        }
        _ => reply,
    };
    respond(reply, gzip)
}

/// The read faults a request made.
#[derive(Debug, Clone, Copy, Default)]
struct Made {
    shifted: bool,
    hidden: bool,
}

/// Renders a listing-API answer from the current state, and says which read faults
/// (a page shift, a hidden listing) this request made.
fn render(
    sim: &SimHandle,
    api: ApiKind,
    pairs: &QueryPairs,
    body: &Bytes,
    base: &str,
    shift: Option<u64>,
    hide: Option<u64>,
) -> (Reply, Made) {
    let market = sim.read();
    let now_ms = market.now().timestamp_millis();
    let shifts = || {
        sim.shared
            .shifts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    };
    match api {
        ApiKind::Zillow => {
            let query = match zillow::parse(&market, pairs) {
                Ok(query) => query,
                Err(reply) => return (reply, Made::default()),
            };
            let mut order = zillow::matches(&market, &query);
            let session = hash_words(&[
                api.tag(),
                hash_bytes(
                    format!(
                        "{:?}",
                        zillow::Query {
                            page: 1,
                            ..query.clone()
                        }
                    )
                    .as_bytes(),
                ),
            ]);
            let mut shifts = shifts();
            let hidden = shifts.hide(now_ms, session, &mut order, query.page_start() == 0, hide);
            let shifted = shifts.apply(now_ms, session, &mut order, query.page_start(), shift);
            (
                zillow::render(&market, &query, &order),
                Made { shifted, hidden },
            )
        }
        ApiKind::Realtor => {
            let query = match realtor::parse(&market, body) {
                Ok(query) => query,
                Err(reply) => return (reply, Made::default()),
            };
            let mut order = realtor::matches(&market, &query);
            let session = hash_words(&[
                api.tag(),
                hash_bytes(format!("{:?}", query.session()).as_bytes()),
            ]);
            let mut shifts = shifts();
            let hidden = shifts.hide(now_ms, session, &mut order, query.offset == 0, hide);
            let shifted = shifts.apply(now_ms, session, &mut order, query.offset, shift);
            (
                realtor::render(&market, &query, &order),
                Made { shifted, hidden },
            )
        }
        ApiKind::Reso => match reso::parse(pairs) {
            Ok(query) => (reso::render(&market, &query, base), Made::default()),
            Err(reply) => (reply, Made::default()),
        },
    }
}
