//! How often things happen in a market, from its profile.

use crate::profiles::MarketProfile;

/// Per-day event rates of one market, per listing in the relevant state.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rates {
    /// Active to pending.
    pub(super) pending: f64,
    /// Active to withdrawn.
    pub(super) withdraw: f64,
    /// Pending to sold.
    pub(super) close: f64,
    /// Pending back to active (the deal fell through).
    pub(super) fall_through: f64,
    pub(super) cut: f64,
    pub(super) rise: f64,
    /// New listings per live listing, which keeps the market near its size.
    pub(super) new_per_live: f64,
    /// Expected pending share of live listings.
    pub(super) pending_share: f64,
}

impl Rates {
    pub(super) fn for_profile(profile: &MarketProfile) -> Self {
        let exit = std::f64::consts::LN_2 / f64::from(profile.median_days_on_market);
        let pending = exit * 0.8;
        let withdraw = exit * 0.2;
        let close = 1.0 / 32.0;
        let fall_through = 0.0025;
        let pace = f64::from(profile.median_days_on_market) / 45.0;
        // Stationary pending/active ratio: inflow to pending = outflow from it.
        let ratio = pending / (close + fall_through);
        Self {
            pending,
            withdraw,
            close,
            fall_through,
            cut: 0.0055 * pace.sqrt(),
            rise: 0.0006 / pace.sqrt(),
            new_per_live: (withdraw + ratio * close) / (1.0 + ratio),
            pending_share: ratio / (1.0 + ratio),
        }
    }
}
