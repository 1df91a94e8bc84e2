//! What the portals were asked: requests, the most in flight at once, the user agents.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

/// What one portal was asked: requests, the most in flight at once, the user agents.
#[derive(Debug, Default)]
pub(super) struct PortalTraffic {
    pub(super) requests: AtomicU64,
    in_flight: AtomicU64,
    pub(super) max_in_flight: AtomicU64,
    pub(super) user_agents: Mutex<std::collections::BTreeSet<String>>,
}

/// A request to a portal in flight (counted out when dropped).
pub(super) struct InFlight<'a>(&'a PortalTraffic);

impl<'a> InFlight<'a> {
    pub(super) fn enter(traffic: &'a PortalTraffic, user_agent: Option<&str>) -> Self {
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

/// What a portal of the simulator was asked so far (see
/// [`SimHandle::portal_requests`](super::SimHandle::portal_requests)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalRequests {
    pub requests: u64,
    /// The most requests it was serving at once.
    pub max_in_flight: u64,
    /// Every `User-Agent` it was sent (each cut at 300 characters).
    pub user_agents: std::collections::BTreeSet<String>,
}
