//! A deterministic simulated US real-estate market, served through Zillow-, RESO- and
//! Realtor.com-shaped HTTP APIs, for the demo, the integration tests and the benchmarks.
//!
//! - [`Market`]: the listings of many markets (`nashville-tn`, `syracuse-ny`, ...), each
//!   house with an id in every API, an address, size, type, price and rent estimate.
//!   Simulated time advances with [`Market::advance`]; new listings, price cuts and rises,
//!   pendings, closings, fall-throughs and withdrawals happen at realistic daily rates.
//! - Ground truth: [`Market::ground_truth`] returns every [`GroundTruthEvent`] between two
//!   simulated times, so a test can check the pipeline saw exactly what happened.
//! - [`SimServer`]: serves the market over HTTP (`GET /propertyExtendedSearch`,
//!   `POST /properties/v3/list`, `GET /reso/odata/Property`, and `/control/...` to advance
//!   time and read state and ground truth), optionally with faults ([`FaultConfig`]):
//!   429s, 5xx, slow, truncated and malformed responses, and listings moving between
//!   pages while they are read.
//!
//! Determinism: every random draw comes from ChaCha generators seeded by the seed and a
//! stable hash of what is being drawn (market, hour, request), and nothing iterates a hash
//! map, so the same seed and the same advances give the same listings, events and API
//! bytes (on one platform and build: floating-point functions are not promised identical
//! everywhere). Where an advance stops does not matter either: advancing 24 hours at once
//! or in 288 five-minute steps gives the same market.
//!
//! ```no_run
//! # async fn demo() -> Result<(), realty_sim::SimError> {
//! use realty_sim::{FaultConfig, SimConfig, SimServer};
//!
//! let config = SimConfig {
//!     seed: 7,
//!     faults: "rate_limit=0.05,page_shift=0.1".parse()?,
//!     ..SimConfig::default()
//! };
//! let server = SimServer::start("127.0.0.1:0".parse().map_err(|_| {
//!     realty_sim::SimError::InvalidConfig("address".into())
//! })?, config).await?;
//! println!("listening on {}", server.base_url());
//! let report = server.handle().advance(chrono::TimeDelta::hours(1))?;
//! let happened = server.handle().ground_truth(report.from, report.to);
//! # let _ = (happened, FaultConfig::none());
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! See `docs/simulator.md` for the endpoints and fault modes in detail.

// Test code is exempt from the 80-line bar (clippy.toml); the rest is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

mod api;
mod config;
mod error;
mod faults;
mod generate;
mod listing;
mod market;
mod portal;
mod profiles;
mod random;
mod server;
mod slug;
mod time_format;
mod truth;

pub use config::{
    DEFAULT_LISTINGS_PER_MARKET, FaultConfig, FaultKind, MAX_LISTINGS_PER_MARKET, MarketConfig,
    SimConfig, default_start,
};
pub use error::SimError;
pub use listing::{Address, ListingStatus, PriceChange, PropertyType, SimListing, SourceIds};
pub use market::{AdvanceReport, MAX_ADVANCE_DAYS, Market, MarketSummary, RECENT_DAYS};
pub use portal::{
    AdKind, AdOffer, MoroccanCity, Portal, PortalAd, PortalTruthEvent, Portals,
    Search as PortalSearch, moroccan_cities,
};
pub use profiles::{MarketProfile, TypeMix, builtin_markets, market_key};
pub use server::{PortalRequests, SimHandle, SimServer, serve};
pub use slug::slug;
pub use truth::{EventKind, GroundTruthEvent};

/// Zillow results per page.
pub const ZILLOW_RESULTS_PER_PAGE: usize = api::zillow::RESULTS_PER_PAGE;
/// The last Zillow page a query can reach.
pub const ZILLOW_MAX_PAGES: u32 = api::zillow::MAX_PAGES;
/// Largest Realtor.com `limit`.
pub const REALTOR_MAX_LIMIT: u64 = api::realtor::MAX_LIMIT;
pub use api::reso_auth::{
    RESO_CLIENT_ID, RESO_CLIENT_SECRET, RESO_SCOPE,
    TOKEN_LIFETIME_SECS as RESO_TOKEN_LIFETIME_SECS, issue_token as issue_reso_token,
};
/// Largest RESO `$top`.
pub const RESO_MAX_TOP: usize = api::reso::MAX_TOP;
