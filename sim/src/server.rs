//! The HTTP server: the three listing APIs with fault injection, and the control API.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{ApiKind, QueryPairs, Reply, realtor, reso, reso_auth, zillow};
use crate::config::{FaultConfig, FaultKind, SimConfig};
use crate::error::SimError;
use crate::faults::{self, AttemptBook, PageShifts};
use crate::market::{AdvanceReport, MAX_ADVANCE_DAYS, Market, MarketSummary};
use crate::portal::{Portal, PortalTruthEvent, Portals, pages};
use crate::random::{hash_bytes, hash_words};
use crate::time_format;
use crate::truth::GroundTruthEvent;

/// Largest request body read (a Realtor.com search body is a few hundred bytes).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long [`SimServer::shutdown`] waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const FAULT_SALT: u64 = 0x5EED;

struct Shared {
    seed: u64,
    faults: FaultConfig,
    market: RwLock<Market>,
    portals: Portals,
    /// The portals' pages are served in a changed layout (a redesign): see [`SimHandle::change_portal_layout`].
    portal_layout_changed: AtomicBool,
    portal_traffic: [PortalTraffic; 2],
    attempts: Mutex<AttemptBook>,
    shifts: Mutex<PageShifts>,
    served: [AtomicU64; FaultKind::ALL.len()],
    shutdown: watch::Receiver<bool>,
}

/// What one portal was asked: requests, the most in flight at once, the user agents.
#[derive(Debug, Default)]
struct PortalTraffic {
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    user_agents: Mutex<std::collections::BTreeSet<String>>,
}

/// A request to a portal in flight (counted out when dropped).
struct InFlight<'a>(&'a PortalTraffic);

impl<'a> InFlight<'a> {
    fn enter(traffic: &'a PortalTraffic, user_agent: Option<&str>) -> Self {
        traffic.requests.fetch_add(1, Ordering::SeqCst);
        let now = traffic.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        traffic.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(agent) = user_agent {
            traffic
                .user_agents
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(agent.chars().take(300).collect());
        }
        Self(traffic)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a portal of the simulator was asked so far (see [`SimHandle::portal_requests`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalRequests {
    pub requests: u64,
    /// The most requests it was serving at once.
    pub max_in_flight: u64,
    /// Every `User-Agent` it was sent (each cut at 300 characters).
    pub user_agents: std::collections::BTreeSet<String>,
}

/// In-process access to a running simulator: its market, time and ground truth. Cheap to
/// clone; every clone sees the same market.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("seed", &self.shared.seed)
            .field("now", &self.now())
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    fn new(market: Market, faults: FaultConfig, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            shared: Arc::new(Shared {
                seed: market.seed(),
                faults,
                portals: Portals::new(
                    market.seed(),
                    market.start(),
                    market.config().portal_ads_per_search,
                ),
                portal_layout_changed: AtomicBool::new(false),
                portal_traffic: Default::default(),
                market: RwLock::new(market),
                attempts: Mutex::new(AttemptBook::default()),
                shifts: Mutex::new(PageShifts::default()),
                served: Default::default(),
                shutdown,
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Market> {
        // A panic elsewhere cannot leave the market half-updated in a way readers care
        // about more than about being answered at all.
        self.shared
            .market
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Market> {
        self.shared
            .market
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    pub fn faults(&self) -> &FaultConfig {
        &self.shared.faults
    }

    /// Current simulated time.
    pub fn now(&self) -> DateTime<Utc> {
        self.read().now()
    }

    /// Advances simulated time by `by` (blocks while the market updates).
    pub fn advance(&self, by: TimeDelta) -> Result<AdvanceReport, SimError> {
        self.write().advance(by)
    }

    /// Advances simulated time to `target`.
    pub fn advance_to(&self, target: DateTime<Utc>) -> Result<AdvanceReport, SimError> {
        self.write().advance_to(target)
    }

    /// Events with `from < at <= to`.
    pub fn ground_truth(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<GroundTruthEvent> {
        self.read().ground_truth(from, to).to_vec()
    }

    /// Rental events between two simulated times (see [`Market::rental_ground_truth`]).
    pub fn rental_ground_truth(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<GroundTruthEvent> {
        self.read().rental_ground_truth(from, to).to_vec()
    }

    /// The portals' ad events with `from < at <= to`.
    pub fn portal_ground_truth(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<PortalTruthEvent> {
        self.shared.portals.ground_truth(from, to)
    }

    /// What `portal` was asked so far: how many requests, the most at once, by whom.
    pub fn portal_requests(&self, portal: Portal) -> PortalRequests {
        let traffic = self.traffic(portal);
        PortalRequests {
            requests: traffic.requests.load(Ordering::SeqCst),
            max_in_flight: traffic.max_in_flight.load(Ordering::SeqCst),
            user_agents: traffic
                .user_agents
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    fn traffic(&self, portal: Portal) -> &PortalTraffic {
        match portal {
            Portal::Avito => &self.shared.portal_traffic[0],
            Portal::Mubawab => &self.shared.portal_traffic[1],
        }
    }

    /// The simulated portals (their ads at any time).
    pub fn portals(&self) -> &Portals {
        &self.shared.portals
    }

    /// The layout-change fault: from now on (`true`) the portals serve their pages in a
    /// changed layout, Avito with its ads where no reader looks, Mubawab with the feature
    /// row of its cards renamed; `false` restores them.
    pub fn change_portal_layout(&self, changed: bool) {
        self.shared
            .portal_layout_changed
            .store(changed, Ordering::SeqCst);
    }

    /// Runs `f` on the market (read-only; requests wait for an advance, not for readers).
    pub fn with_market<R>(&self, f: impl FnOnce(&Market) -> R) -> R {
        f(&self.read())
    }

    /// How many times each fault was served so far.
    pub fn faults_served(&self) -> BTreeMap<FaultKind, u64> {
        FaultKind::ALL
            .iter()
            .zip(&self.shared.served)
            .map(|(&kind, count)| (kind, count.load(Ordering::Relaxed)))
            .collect()
    }

    /// The fault (if any) of this attempt of a request at simulated time `now_ms`, and the
    /// hash its mangling draws from.
    fn fault_for(&self, now_ms: i64, request_hash: u64) -> (Option<FaultKind>, u64) {
        let config = &self.shared.faults;
        // Without faults there is nothing to count attempts for.
        let attempt = if config.any() {
            self.shared
                .attempts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .next(now_ms, request_hash)
        } else {
            0
        };
        let fault = faults::decide(config, self.shared.seed, now_ms, request_hash, attempt);
        let fault_hash = hash_words(&[
            self.shared.seed,
            now_ms as u64,
            request_hash,
            u64::from(attempt),
            FAULT_SALT,
        ]);
        (fault, fault_hash)
    }

    /// A slow answer's delay; `false` when the server began shutting down meanwhile.
    async fn be_slow(&self) -> bool {
        self.count(FaultKind::Slow);
        let mut stop = self.shared.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(self.shared.faults.slow_delay) => true,
            _ = stop.wait_for(|&stopping| stopping) => false,
        }
    }

    fn count(&self, kind: FaultKind) {
        if let Some(position) = FaultKind::ALL.iter().position(|&k| k == kind) {
            self.shared.served[position].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The routes of the simulator, for serving on a listener of one's own.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/propertyExtendedSearch", get(zillow_search))
            .route("/properties/v3/list", post(realtor_search))
            .route("/reso/odata/Property", get(reso_property))
            .route("/reso/token", post(reso_token))
            .route("/avito/{*path}", get(avito_page))
            .route("/mubawab/{*path}", get(mubawab_page))
            .route("/control/advance", post(control_advance))
            .route("/control/portal-layout", post(control_portal_layout))
            .route("/control/state", get(control_state))
            .route("/control/ground-truth", get(control_ground_truth))
            .route("/control/markets", get(control_markets))
            .fallback(not_found)
            .with_state(self.clone())
    }
}

/// A running simulator server.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    handle: SimHandle,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl SimServer {
    /// Binds `addr` (port 0 picks a free port) and serves a market built from `config`.
    pub async fn start(addr: SocketAddr, config: SimConfig) -> Result<Self, SimError> {
        let listener = TcpListener::bind(addr).await?;
        Self::serve(listener, config).await
    }

    /// Serves a market built from `config` on an already bound listener.
    pub async fn serve(listener: TcpListener, config: SimConfig) -> Result<Self, SimError> {
        config.faults.validate()?;
        let SimConfig {
            seed,
            market,
            faults,
        } = config;
        // Building thousands of listings per market is CPU work: keep it off the reactor.
        let market = tokio::task::spawn_blocking(move || Market::new(seed, market))
            .await
            .map_err(|e| SimError::ServerTask(e.to_string()))??;
        let (shutdown, signal) = watch::channel(false);
        let handle = SimHandle::new(market, faults, signal.clone());
        let addr = listener.local_addr()?;
        let router = handle.router();
        let mut stop = signal;
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // Also stops when the SimServer is dropped (the sender closes).
                    let _ = stop.wait_for(|&stopping| stopping).await;
                })
                .await
        });
        tracing::info!(%addr, seed, "simulated market serving");
        Ok(Self {
            addr,
            handle,
            shutdown,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// In-process access to the market.
    pub fn handle(&self) -> &SimHandle {
        &self.handle
    }

    /// Stops accepting, cuts slow responses short, waits briefly for requests in flight.
    pub async fn shutdown(self) -> Result<(), SimError> {
        let _ = self.shutdown.send(true);
        let mut task = self.task;
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(result)) => result.map_err(SimError::Io),
            Ok(Err(join)) => Err(SimError::ServerTask(join.to_string())),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

/// Serves a market built from `config` on `listener`: the same as [`SimServer::serve`].
pub async fn serve(listener: TcpListener, config: SimConfig) -> Result<SimServer, SimError> {
    SimServer::serve(listener, config).await
}

fn respond(reply: Reply, gzip: bool) -> Response {
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

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("gzip"))
}

/// `http://HOST` from the request's `Host`, for absolute OData links.
fn base_url(headers: &HeaderMap) -> String {
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

fn query_pairs(uri: &Uri) -> Result<QueryPairs, Reply> {
    Query::<QueryPairs>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|e| Reply::message(400, &format!("unreadable query string: {e}")))
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            let token = token.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
        })
}

/// Wall-clock unix seconds: token lifetimes run on the client's clock, not simulated time.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn reso_token(body: Bytes) -> Response {
    respond(reso_auth::token_reply(&body, unix_now()), false)
}

async fn zillow_search(State(sim): State<SimHandle>, request: Request) -> Response {
    listing_api(sim, ApiKind::Zillow, request).await
}

async fn realtor_search(State(sim): State<SimHandle>, request: Request) -> Response {
    listing_api(sim, ApiKind::Realtor, request).await
}

async fn reso_property(State(sim): State<SimHandle>, request: Request) -> Response {
    listing_api(sim, ApiKind::Reso, request).await
}

async fn avito_page(State(sim): State<SimHandle>, request: Request) -> Response {
    portal_page(sim, Portal::Avito, request).await
}

async fn mubawab_page(State(sim): State<SimHandle>, request: Request) -> Response {
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
    let changed = sim.shared.portal_layout_changed.load(Ordering::SeqCst);
    let reply = pages::answer(
        &sim.shared.portals,
        portal,
        &path,
        uri.query(),
        now,
        changed,
    );
    respond(reply, gzip)
}

/// `POST /control/portal-layout` body: `{"changed": true}` (see
/// [`SimHandle::change_portal_layout`]).
async fn control_portal_layout(State(sim): State<SimHandle>, body: Bytes) -> Response {
    let changed = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("changed").and_then(serde_json::Value::as_bool));
    let reply = match changed {
        Some(changed) => {
            sim.change_portal_layout(changed);
            Reply::json(200, &serde_json::json!({ "changed": changed }))
        }
        None => Reply::message(400, "expected a JSON body like {\"changed\": true}"),
    };
    respond(reply, false)
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

async fn not_found(method: Method, uri: Uri) -> Response {
    respond(
        Reply::message(
            404,
            &format!("Endpoint '{method} {}' does not exist", uri.path()),
        ),
        false,
    )
}

/// `POST /control/advance` body: `{"hours": 6}`, `{"minutes": 5}`, `{"seconds": 30}` or
/// `{"to": "2025-03-04T00:00:00Z"}`.
async fn control_advance(State(sim): State<SimHandle>, body: Bytes) -> Response {
    let target = match advance_target(&sim, &body) {
        Ok(target) => target,
        Err(message) => return respond(Reply::message(400, &message), false),
    };
    let worker = sim.clone();
    // Simulating days of events is CPU work: keep it off the reactor.
    let outcome = tokio::task::spawn_blocking(move || worker.advance_to(target)).await;
    let reply = match outcome {
        Ok(Ok(report)) => Reply::json(
            200,
            &serde_json::json!({
                "previous": time_format::millis(report.from),
                "now": time_format::millis(report.to),
                "events": report.events,
            }),
        ),
        Ok(Err(error)) => Reply::message(400, &error.to_string()),
        Err(join) => Reply::message(500, &format!("advance failed: {join}")),
    };
    respond(reply, false)
}

fn advance_target(sim: &SimHandle, body: &[u8]) -> Result<DateTime<Utc>, String> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("expected a JSON body like {{\"hours\": 1}}: {e}"))?;
    if let Some(to) = value.get("to") {
        return to
            .as_str()
            .and_then(time_format::parse)
            .ok_or_else(|| format!("\"to\" must be an RFC 3339 time, got {to}"));
    }
    let units = [
        ("hours", 3_600_000.0),
        ("minutes", 60_000.0),
        ("seconds", 1_000.0),
    ];
    let (amount, millis_per_unit) = units
        .iter()
        .find_map(|(name, millis)| value.get(*name).map(|v| (v, *millis)))
        .ok_or("expected one of \"hours\", \"minutes\", \"seconds\" or \"to\"")?;
    let amount = amount
        .as_f64()
        .filter(|a| a.is_finite() && *a >= 0.0)
        .ok_or_else(|| format!("the duration must be a non-negative number, got {amount}"))?;
    let millis = amount * millis_per_unit;
    if millis > (MAX_ADVANCE_DAYS * 86_400_000) as f64 {
        return Err(format!(
            "one advance may cover at most {MAX_ADVANCE_DAYS} days"
        ));
    }
    sim.now()
        .checked_add_signed(TimeDelta::milliseconds(millis.round() as i64))
        .ok_or_else(|| "the target time is out of range".to_owned())
}

#[derive(Serialize)]
struct StateView<'a> {
    seed: u64,
    start: String,
    now: String,
    events: usize,
    markets: Vec<MarketSummary>,
    faults: &'a FaultConfig,
    faults_served: BTreeMap<&'static str, u64>,
}

async fn control_state(State(sim): State<SimHandle>) -> Response {
    let served = sim
        .faults_served()
        .into_iter()
        .map(|(kind, count)| (kind.name(), count))
        .collect();
    let reply = sim.with_market(|market| {
        Reply::json(
            200,
            &StateView {
                seed: sim.seed(),
                start: time_format::millis(market.start()),
                now: time_format::millis(market.now()),
                events: market.events().len(),
                markets: market.summary(),
                faults: sim.faults(),
                faults_served: served,
            },
        )
    });
    respond(reply, false)
}

#[derive(Serialize)]
struct GroundTruthView<'a> {
    from: String,
    to: String,
    count: usize,
    events: Vec<&'a GroundTruthEvent>,
}

/// `GET /control/ground-truth?from=T1&to=T2[&market=KEY][&offer=rent]`: events with
/// `T1 < at <= T2` (of the rentals with `offer=rent`); `from` defaults to the start, `to`
/// to now.
async fn control_ground_truth(State(sim): State<SimHandle>, uri: Uri) -> Response {
    let pairs = match query_pairs(&uri) {
        Ok(pairs) => pairs,
        Err(reply) => return respond(reply, false),
    };
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, String> {
        match crate::api::query_value(&pairs, name) {
            None | Some("") => Ok(None),
            Some(text) => time_format::parse(text)
                .map(Some)
                .ok_or_else(|| format!("{name} must be an RFC 3339 time, got {text:?}")),
        }
    };
    let (from, to) = match (time("from"), time("to")) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(message), _) | (_, Err(message)) => {
            return respond(Reply::message(400, &message), false);
        }
    };
    let market_filter = crate::api::query_value(&pairs, "market").map(str::to_owned);
    let rentals = match crate::api::query_value(&pairs, "offer") {
        None | Some("" | "sale") => false,
        Some("rent") => true,
        Some(other) => {
            let message = format!("offer must be sale or rent, got {other:?}");
            return respond(Reply::message(400, &message), false);
        }
    };
    let reply = sim.with_market(|market| {
        let from = from.unwrap_or(market.start());
        let to = to.unwrap_or(market.now());
        if from > to {
            return Reply::message(400, "from is after to");
        }
        let events = if rentals {
            market.rental_ground_truth(from, to)
        } else {
            market.ground_truth(from, to)
        };
        let events: Vec<&GroundTruthEvent> = events
            .iter()
            .filter(|e| market_filter.as_deref().is_none_or(|m| e.market == m))
            .collect();
        Reply::json(
            200,
            &GroundTruthView {
                from: time_format::millis(from),
                to: time_format::millis(to),
                count: events.len(),
                events,
            },
        )
    });
    respond(reply, false)
}

#[derive(Serialize)]
struct MarketView {
    key: String,
    city: &'static str,
    state: &'static str,
    zillow_location: String,
    latitude: f64,
    longitude: f64,
    median_list_price: u64,
    zips: &'static [&'static str],
    active: usize,
    pending: usize,
}

async fn control_markets(State(sim): State<SimHandle>) -> Response {
    let reply = sim.with_market(|market| {
        let views: Vec<MarketView> = market
            .summary()
            .into_iter()
            .filter_map(|summary| {
                let profile = market.profile(&summary.key)?;
                Some(MarketView {
                    zillow_location: profile.zillow_location(),
                    key: summary.key,
                    city: profile.city,
                    state: profile.state,
                    latitude: profile.latitude,
                    longitude: profile.longitude,
                    median_list_price: profile.median_list_price,
                    zips: profile.zips,
                    active: summary.active,
                    pending: summary.pending,
                })
            })
            .collect();
        Reply::json(200, &views)
    });
    respond(reply, false)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn bearer_tokens_and_gzip_are_recognised() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer t0k3n"),
        );
        assert_eq!(bearer_token(&headers), Some("t0k3n"));

        assert!(!accepts_gzip(&headers));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, GZIP"),
        );
        assert!(accepts_gzip(&headers));
    }

    #[test]
    fn links_use_a_sane_host_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(base_url(&headers), "http://localhost");
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(base_url(&headers), "http://127.0.0.1:8080");
        headers.insert(header::HOST, HeaderValue::from_static("evil.com/<script>"));
        assert_eq!(base_url(&headers), "http://localhost");
    }
}
