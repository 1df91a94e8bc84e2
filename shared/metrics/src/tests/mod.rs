//! Properties of the whole metrics workflow over in-memory stores: incremental aggregates
//! equal a brute-force recomputation, whatever the batching, replays and crashes.
//!
//! Here: a simulated market (its listings, steps, events and stream records), shared with
//! the other metrics tests. The tests, by topic: `recomputation` (the properties above),
//! `poison`, `contention`, `journal`, `market_counts` and `snapshots`, over the stores of
//! `crashing_stores` where writes must fail.

mod contention;
mod crashing_stores;
mod journal;
mod market_counts;
mod poison;
mod recomputation;
mod snapshots;

use std::collections::BTreeMap;

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;

pub(crate) use crate::testing::{SHARD, block_on, listing, records_of};
use realty_model::listing::*;

/// One step of a simulated market.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Change {
        listing: u32,
        price_pct: i64,
        status: u8,
    },
    Delist {
        listing: u32,
    },
}

/// `listings` listings appear, then each changes its price by `price_pct`, in that order.
fn appear_then_change_price(listings: u32, price_pct: i64) -> Vec<Step> {
    let appear = (0..listings).map(|listing| Step::Change {
        listing,
        price_pct: 0,
        status: 0,
    });
    let change = (0..listings).map(|listing| Step::Change {
        listing,
        price_pct,
        status: 0,
    });
    appear.chain(change).collect()
}

pub(crate) fn step_strategy(listings: u32) -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..listings, -30i64..20, 0u8..6).prop_map(|(listing, price_pct, status)| Step::Change { listing, price_pct, status }),
        1 => (0..listings).prop_map(|listing| Step::Delist { listing }),
    ]
}

/// Turns steps into the events a poller would emit, in stream order.
pub(crate) fn events_of(steps: &[Step]) -> Vec<ListingEvent> {
    let start = Utc
        .with_ymd_and_hms(2024, 10, 1, 8, 0, 0)
        .single()
        .expect("valid time");
    let mut live: BTreeMap<u32, Listing> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let at = start + Duration::minutes(37 * i as i64);
        match *step {
            Step::Change {
                listing: n,
                price_pct,
                status,
            } => {
                let status = [
                    ListingStatus::Active,
                    ListingStatus::Active,
                    ListingStatus::Active,
                    ListingStatus::Pending,
                    ListingStatus::UnderContract,
                    ListingStatus::Sold,
                ][status as usize % 6];
                match live.get(&n) {
                    None => {
                        let l = listing(
                            n,
                            n as usize,
                            25_000_000 + i64::from(n) * 1_000_000,
                            status,
                            at,
                        );
                        live.insert(n, l.clone());
                        out.push(ListingEvent::new_listing(l, format!("poll-{i}")));
                    }
                    Some(previous) => {
                        let mut next = previous.clone();
                        next.price_minor =
                            (previous.price_minor * (100 + price_pct) / 100).max(1_000_000);
                        next.status = status;
                        next.observed_at = at;
                        if let Some(e) =
                            ListingEvent::changed(previous, next.clone(), format!("poll-{i}"))
                        {
                            live.insert(n, next);
                            out.push(e);
                        }
                    }
                }
            }
            Step::Delist { listing: n } => {
                if let Some(last) = live.remove(&n) {
                    out.push(ListingEvent::delisted(last, at, format!("poll-{i}")));
                }
            }
        }
    }
    out
}
