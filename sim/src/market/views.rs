//! The orders a market's listings are read in, kept sorted as events apply.

use std::cmp::Reverse;

use chrono::{DateTime, TimeDelta, Utc};

use super::{Area, RECENT_DAYS};
use crate::listing::{ListingStatus, SimListing};

/// Orders of a market's listings, kept sorted as events apply (a binary-search insert
/// or removal per change), so requests only walk them. Keys end in the zpid, so every
/// order is total and deterministic.
#[derive(Debug, Clone, Default)]
pub(crate) struct AreaView {
    /// Active and pending, by (on-market time, zpid descending); read reversed for newest
    /// first.
    pub(super) by_listed: Vec<u32>,
    /// Active and pending by (price, zpid).
    pub by_price: Vec<u32>,
    /// Sold in the last [`RECENT_DAYS`], by (close time, zpid descending).
    pub(super) sold: Vec<u32>,
    /// Withdrawn in the last [`RECENT_DAYS`], by (off-market time, zpid descending).
    pub(super) withdrawn: Vec<u32>,
    /// Every listing by (modification time, zpid).
    pub by_modification: Vec<u32>,
}

impl AreaView {
    /// Active and pending, newest first (on-market time descending, zpid ascending).
    pub fn newest_first(&self) -> std::iter::Rev<std::slice::Iter<'_, u32>> {
        self.by_listed.iter().rev()
    }

    /// Recent sales, latest first.
    pub fn sold_latest_first(&self) -> std::iter::Rev<std::slice::Iter<'_, u32>> {
        self.sold.iter().rev()
    }

    /// Recent withdrawals, latest first.
    pub fn withdrawn_latest_first(&self) -> std::iter::Rev<std::slice::Iter<'_, u32>> {
        self.withdrawn.iter().rev()
    }
}

pub(super) fn listed_key(l: &SimListing) -> (DateTime<Utc>, Reverse<u64>) {
    (l.on_market_at, Reverse(l.zpid))
}

pub(super) fn price_key(l: &SimListing) -> (u64, u64) {
    (l.list_price, l.zpid)
}

pub(super) fn closed_key(l: &SimListing) -> (Option<DateTime<Utc>>, Reverse<u64>) {
    (l.closed_at, Reverse(l.zpid))
}

pub(super) fn modified_key(l: &SimListing) -> (DateTime<Utc>, u64) {
    (l.modified_at, l.zpid)
}

/// Where a listing's key falls in an order: the first place whose key is not below it.
fn place_in<K: Ord>(
    order: &[u32],
    listings: &[SimListing],
    position: u32,
    key: fn(&SimListing) -> K,
) -> usize {
    let wanted = key(&listings[position as usize]);
    order.partition_point(|&i| key(&listings[i as usize]) < wanted)
}

pub(super) fn insert_by<K: Ord>(
    order: &mut Vec<u32>,
    listings: &[SimListing],
    position: u32,
    key: fn(&SimListing) -> K,
) {
    let at = place_in(order, listings, position, key);
    order.insert(at, position);
}

/// Removes a listing from an order; call it before the listing's key changes.
pub(super) fn remove_by<K: Ord>(
    order: &mut Vec<u32>,
    listings: &[SimListing],
    position: u32,
    key: fn(&SimListing) -> K,
) {
    let at = place_in(order, listings, position, key);
    if order.get(at) == Some(&position) {
        order.remove(at);
    } else if let Some(found) = order.iter().position(|&i| i == position) {
        order.remove(found);
    }
}

pub(super) fn sorted_by<K: Ord>(
    mut order: Vec<u32>,
    listings: &[SimListing],
    key: fn(&SimListing) -> K,
) -> Vec<u32> {
    order.sort_unstable_by_key(|&i| key(&listings[i as usize]));
    order
}

/// Sorts every order of a market from scratch (once, at the start).
pub(super) fn build_views(area: &mut Area, now: DateTime<Utc>) {
    let listings = &area.listings;
    let live: Vec<u32> = area.active.iter().chain(&area.pending).copied().collect();
    let recent = now - TimeDelta::days(RECENT_DAYS);
    let closed_with = |status: ListingStatus| {
        (0..listings.len() as u32)
            .filter(|&i| {
                let l = &listings[i as usize];
                l.status == status && l.closed_at.is_some_and(|t| t > recent)
            })
            .collect::<Vec<u32>>()
    };
    area.view = AreaView {
        by_listed: sorted_by(live.clone(), listings, listed_key),
        by_price: sorted_by(live, listings, price_key),
        sold: sorted_by(closed_with(ListingStatus::Sold), listings, closed_key),
        withdrawn: sorted_by(closed_with(ListingStatus::Withdrawn), listings, closed_key),
        by_modification: sorted_by((0..listings.len() as u32).collect(), listings, modified_key),
    };
}

/// Drops sales and withdrawals older than `recent` from the recent orders.
pub(super) fn expire_recent(area: &mut Area, recent: DateTime<Utc>) {
    let listings = &area.listings;
    for order in [&mut area.view.sold, &mut area.view.withdrawn] {
        let old =
            order.partition_point(|&i| listings[i as usize].closed_at.is_none_or(|t| t <= recent));
        order.drain(..old);
    }
}

/// Removes a listing leaving the market from the for-sale orders.
pub(super) fn take_off_market(area: &mut Area, position: u32) {
    remove_by(
        &mut area.view.by_listed,
        &area.listings,
        position,
        listed_key,
    );
    remove_by(&mut area.view.by_price, &area.listings, position, price_key);
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::market::Market;
    use crate::market::tests::small_config;

    /// The orders kept up to date event by event equal the orders sorted from scratch.
    #[test]
    fn incrementally_kept_orders_match_a_fresh_sort() {
        let mut market =
            Market::new(21, small_config(&["phoenix-az", "chicago-il"], 700)).expect("market");
        for hours in [3, 20, 200, 1_500, 1] {
            market.advance(TimeDelta::hours(hours)).expect("advance");
            let now = market.now();
            for area in &market.areas {
                let mut fresh = area.clone();
                build_views(&mut fresh, now);
                assert_eq!(area.view.by_listed, fresh.view.by_listed);
                assert_eq!(area.view.by_price, fresh.view.by_price);
                assert_eq!(area.view.sold, fresh.view.sold);
                assert_eq!(area.view.withdrawn, fresh.view.withdrawn);
                assert_eq!(area.view.by_modification, fresh.view.by_modification);
            }
        }
    }
}
