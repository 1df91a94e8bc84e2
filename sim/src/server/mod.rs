//! The HTTP server: the three listing APIs with fault injection, and the control API.
//!
//! Here the state every request shares and the [`SimHandle`] over it, with the routes; in
//! their own files the running server (`running`), encoding answers and reading requests
//! (`http`), the listing APIs' requests with their faults (`apis`), the portals' pages
//! (`portal_pages`), the control API (`control`), and what the portals were asked
//! (`traffic`).

mod apis;
mod control;
mod http;
mod portal_pages;
mod running;
mod traffic;

pub use running::{SimServer, serve};
pub use traffic::PortalRequests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use crate::config::{FaultConfig, FaultKind};
use crate::error::SimError;
use crate::faults::{self, AttemptBook, PageShifts};
use crate::market::{AdvanceReport, Market};
use crate::portal::{AdKind, Portal, PortalTruthEvent, Portals};
use crate::random::hash_words;
use crate::truth::GroundTruthEvent;

use apis::{realtor_search, reso_property, reso_token, zillow_search};
use control::{
    control_advance, control_ground_truth, control_markets, control_portal_layout, control_state,
};
use http::not_found;
use portal_pages::{avito_page, mubawab_page};
use traffic::PortalTraffic;

const FAULT_SALT: u64 = 0x5EED;

struct Shared {
    seed: u64,
    faults: FaultConfig,
    market: RwLock<Market>,
    portals: Portals,
    /// The portals' pages are served in a changed layout (a redesign): see [`SimHandle::change_portal_layout`].
    portal_layout_changed: AtomicBool,
    /// The portals' searches of this kind answer "no result": see [`SimHandle::empty_portal_search`].
    portal_search_emptied: Mutex<Option<AdKind>>,
    /// One city's searches redirect to another's: see [`SimHandle::redirect_portal_city`].
    portal_city_redirect: Mutex<Option<(usize, usize)>>,
    /// Taken-down ads' pages redirect to their search: see [`SimHandle::redirect_taken_down_ads`].
    portal_taken_down_redirect: AtomicBool,
    portal_traffic: [PortalTraffic; 2],
    attempts: Mutex<AttemptBook>,
    shifts: Mutex<PageShifts>,
    served: [AtomicU64; FaultKind::ALL.len()],
    shutdown: watch::Receiver<bool>,
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
                portal_search_emptied: Mutex::new(None),
                portal_city_redirect: Mutex::new(None),
                portal_taken_down_redirect: AtomicBool::new(false),
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

    /// The emptied-search fault: from now on the portals' searches of `kind` (every city,
    /// both offers) answer a page of no result with a total of 0, as a search renamed or
    /// redirected would, while the ads stay up at their own pages; `None` restores them.
    pub fn empty_portal_search(&self, kind: Option<AdKind>) {
        *self
            .shared
            .portal_search_emptied
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = kind;
    }

    /// The redirected-city fault: from now on the portals' searches of city `from` (an index
    /// into [`crate::moroccan_cities`]) answer a 301 to the same search of city `to`, as a
    /// portal merging two cities' pages, or widening a search, would; `None` restores them.
    pub fn redirect_portal_city(&self, from_to: Option<(usize, usize)>) {
        *self
            .shared
            .portal_city_redirect
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = from_to;
    }

    /// From now on (`true`) a taken-down ad's page answers a 301 to the search of its city,
    /// offer and kind, as the real portals send a removed ad's address elsewhere
    /// (docs/sources.md, "Ads the pages no longer reach"), instead of a 404; `false` restores it.
    pub fn redirect_taken_down_ads(&self, redirect: bool) {
        self.shared
            .portal_taken_down_redirect
            .store(redirect, Ordering::SeqCst);
    }

    /// How the portals misbehave now.
    fn portal_faults(&self) -> crate::portal::pages::PortalFaults {
        fn copy<T: Copy>(m: &Mutex<T>) -> T {
            *m.lock().unwrap_or_else(PoisonError::into_inner)
        }
        crate::portal::pages::PortalFaults {
            changed_layout: self.shared.portal_layout_changed.load(Ordering::SeqCst),
            emptied: copy(&self.shared.portal_search_emptied),
            city_redirect: copy(&self.shared.portal_city_redirect),
            taken_down_redirect: self
                .shared
                .portal_taken_down_redirect
                .load(Ordering::SeqCst),
        }
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

#[cfg(test)]
mod tests;
