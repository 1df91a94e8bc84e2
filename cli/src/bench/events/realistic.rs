//! A real feed's stream: the shares of a market's month of events (docs/capacity.md, "The
//! three sizes": new listings about 30 %, listings leaving the market about 30 %, closing
//! about 28 %, price cuts about 12 %), after a first read of the market's inventory, and no
//! listing changed twice within one metrics batch (one listing write per event), where the
//! bench's own stream folds several events of a listing into one write and is half cuts.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use realty_model::listing::{Listing, ListingEvent, ListingStatus, Offer};

use super::{Market, Spread, markets, new_listing, poll_id, round_dollars, start_time};

/// How a feed is delivered: its rate, which sets its batches (a second of events) and how far
/// apart its events are observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedRate {
    /// Events a second: one metrics batch per shard per second holds them.
    pub per_second: usize,
}

impl FeedRate {
    /// Events of one second: no listing has two events within one (one listing write per
    /// event, whatever the shards).
    pub fn batch_events(self) -> usize {
        self.per_second.max(1)
    }

    /// The first read's listings: four seconds of events (three on the market, one pending),
    /// so that a second's moves find listings not yet changed in it.
    pub fn inventory(self) -> usize {
        4 * self.batch_events()
    }

    /// Time between two events.
    fn interval(self) -> Duration {
        Duration::microseconds(1_000_000 / self.batch_events() as i64)
    }
}

/// Shares of the feed's events after the first read, cumulative: new, leaving, closing; the
/// rest are price cuts.
const NEW: f64 = 0.30;
const LEAVING: f64 = NEW + 0.30;
const CLOSING: f64 = LEAVING + 0.28;

/// Of the price cuts, the deep ones (past the template's 15 % price-drop threshold).
const DEEP_CUTS: f64 = 0.15;

/// Tries at finding a listing not yet changed in the current batch before listing someone
/// new instead.
const PICK_TRIES: usize = 16;

/// A real feed's mix from `seed` over the markets of `spread` at `rate`: the markets' first
/// read ([`FeedRate::inventory`] listings, baseline events), then `count` events of the feed.
pub fn generate(count: usize, seed: u64, spread: Spread, rate: FeedRate) -> Vec<ListingEvent> {
    let inventory = rate.inventory();
    let mut feed = Feed {
        markets: markets(spread),
        rng: ChaCha8Rng::seed_from_u64(seed),
        active: Vec::new(),
        leaving: Vec::new(),
        last_changed: HashMap::new(),
        next_id: 1,
        batch_events: rate.batch_events(),
        events: Vec::with_capacity(inventory + count),
    };
    for i in 0..inventory + count {
        let at = start_time() + rate.interval() * i as i32;
        let event = if i < inventory {
            feed.first_read(at, i >= inventory * 3 / 4)
        } else {
            feed.next_event(i, at)
        };
        feed.last_changed
            .insert(event.listing.id.as_str().to_owned(), i);
        feed.events.push(event);
    }
    feed.events
}

struct Feed {
    markets: Vec<Market>,
    rng: ChaCha8Rng,
    /// On the market: what cuts and leaving moves pick from.
    active: Vec<Listing>,
    /// Pending or off the market: what closing moves pick from.
    leaving: Vec<Listing>,
    /// The event index of each listing's last event.
    last_changed: HashMap<String, usize>,
    /// Events of a batch ([`FeedRate::batch_events`]).
    batch_events: usize,
    next_id: u64,
    events: Vec<ListingEvent>,
}

impl Feed {
    /// A listing of the first read: on the market, or already `pending` (a sale) or off the
    /// market (a rental leased).
    fn first_read(&mut self, at: DateTime<Utc>, pending: bool) -> ListingEvent {
        let mut listing = self.listing(at);
        if pending {
            listing.status = match listing.offer {
                Offer::Sale => ListingStatus::Pending,
                Offer::Rent => ListingStatus::OffMarket,
            };
            self.leaving.push(listing.clone());
        } else {
            self.active.push(listing.clone());
        }
        ListingEvent::baseline_listing(listing, poll_id(at))
    }

    /// The `index`th event, observed `at`: a move by the feed's shares, or a new listing when
    /// no listing is free to make it.
    fn next_event(&mut self, index: usize, at: DateTime<Utc>) -> ListingEvent {
        let roll: f64 = self.rng.random();
        let event = if roll < NEW {
            None
        } else if roll < LEAVING {
            self.leave(index, at)
        } else if roll < CLOSING {
            self.close(index, at)
        } else {
            self.cut(index, at)
        };
        event.unwrap_or_else(|| {
            let listing = self.listing(at);
            self.active.push(listing.clone());
            ListingEvent::new_listing(listing, poll_id(at))
        })
    }

    fn listing(&mut self, at: DateTime<Utc>) -> Listing {
        let listing = new_listing(&mut self.rng, &self.markets, self.next_id, at);
        self.next_id += 1;
        listing
    }

    /// A listing on the market (or coming soon) goes pending (a rental, or one sale in five,
    /// off the market).
    fn leave(&mut self, index: usize, at: DateTime<Utc>) -> Option<ListingEvent> {
        let slot = self.free(Pool::Active, index, |_| true)?;
        let previous = self.active.swap_remove(slot);
        let mut current = previous.clone();
        current.observed_at = at;
        current.status = if previous.offer == Offer::Rent || self.rng.random_bool(0.2) {
            ListingStatus::OffMarket
        } else {
            ListingStatus::Pending
        };
        self.leaving.push(current.clone());
        ListingEvent::changed(&previous, current, poll_id(at))
    }

    /// A pending listing is sold; one off the market is removed from the source.
    fn close(&mut self, index: usize, at: DateTime<Utc>) -> Option<ListingEvent> {
        let slot = self.free(Pool::Leaving, index, |_| true)?;
        let previous = self.leaving.swap_remove(slot);
        if previous.status == ListingStatus::OffMarket {
            return Some(ListingEvent::delisted(previous, at, poll_id(at)));
        }
        let mut current = previous.clone();
        current.observed_at = at;
        current.status = ListingStatus::Sold;
        ListingEvent::changed(&previous, current, poll_id(at))
    }

    /// An active listing for sale cuts its price: mostly by 1-10 %, some past the price-drop
    /// threshold.
    fn cut(&mut self, index: usize, at: DateTime<Utc>) -> Option<ListingEvent> {
        let slot = self.free(Pool::Active, index, |l| {
            l.status == ListingStatus::Active && l.offer == Offer::Sale
        })?;
        let previous = self.active[slot].clone();
        let factor = if self.rng.random_bool(DEEP_CUTS) {
            self.rng.random_range(0.70..0.84)
        } else {
            self.rng.random_range(0.90..0.99)
        };
        let mut current = previous.clone();
        current.observed_at = at;
        current.previous_price_minor = Some(previous.price_minor);
        current.price_minor = round_dollars(previous.price_minor as f64 * factor);
        self.active[slot] = current.clone();
        ListingEvent::changed(&previous, current, poll_id(at))
    }

    /// A listing of `pool` that `fits` and has no event yet in the batch of event `index`.
    fn free(&mut self, pool: Pool, index: usize, fits: impl Fn(&Listing) -> bool) -> Option<usize> {
        let batch_start = index - index % self.batch_events;
        let listings = match pool {
            Pool::Active => &self.active,
            Pool::Leaving => &self.leaving,
        };
        if listings.is_empty() {
            return None;
        }
        (0..PICK_TRIES)
            .map(|_| self.rng.random_range(0..listings.len()))
            .find(|slot| {
                let listing = &listings[*slot];
                fits(listing)
                    && self
                        .last_changed
                        .get(listing.id.as_str())
                        .is_none_or(|last| *last < batch_start)
            })
    }
}

#[derive(Debug, Clone, Copy)]
enum Pool {
    Active,
    Leaving,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a feed event does, by the shares above.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    enum Move {
        New,
        /// Pending, or off the market (a rental leased).
        Leaving,
        /// Sold after pending, or removed from the source after going off the market.
        Closing,
        PriceCut,
    }

    /// The move an event of the feed is: from its kind and status change.
    fn move_of(event: &ListingEvent, before: Option<&Listing>) -> Option<Move> {
        use realty_model::listing::EventKind;
        match (&event.kind, before) {
            (EventKind::New, _) if !event.baseline => Some(Move::New),
            (EventKind::Delisted, _) => Some(Move::Closing),
            (EventKind::Changed { .. }, Some(before)) => {
                let listing = &event.listing;
                if listing.status == ListingStatus::Sold {
                    Some(Move::Closing)
                } else if listing.status != before.status {
                    Some(Move::Leaving)
                } else if listing.price_minor < before.price_minor {
                    Some(Move::PriceCut)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// The feed's shares after the first read, as the issue and docs/capacity.md put a real
    /// market's month: within two points of each.
    #[test]
    fn the_feed_has_a_real_markets_shares() {
        let rate = FeedRate { per_second: 1_000 };
        let events = generate(60_000, 42, Spread::Regional, rate);
        let inventory = rate.inventory();
        let mut last: HashMap<&str, &Listing> = HashMap::new();
        let mut counts: HashMap<Option<Move>, usize> = HashMap::new();
        for (i, event) in events.iter().enumerate() {
            let before = last.insert(event.listing.id.as_str(), &event.listing);
            if i >= inventory {
                *counts.entry(move_of(event, before)).or_default() += 1;
            }
        }
        let feed = (events.len() - inventory) as f64;
        let share = |m| counts.get(&Some(m)).copied().unwrap_or(0) as f64 / feed;
        for (m, expected) in [
            (Move::New, 0.30),
            (Move::Leaving, 0.30),
            (Move::Closing, 0.28),
            (Move::PriceCut, 0.12),
        ] {
            assert!(
                (share(m) - expected).abs() <= 0.02,
                "{m:?}: {:.3} (counts {counts:?})",
                share(m)
            );
        }
        assert_eq!(counts.get(&None), None, "every event is one of the four");
    }

    /// One listing write per event: no listing has two events within one batch, and every
    /// listing's events move forward in time.
    #[test]
    fn no_listing_changes_twice_in_a_batch() {
        let rate = FeedRate { per_second: 2_000 };
        let events = generate(20_000, 7, Spread::Regional, rate);
        assert_eq!(events.len(), rate.inventory() + 20_000);
        for (batch, next) in events
            .chunks(rate.batch_events())
            .zip(events.chunks(rate.batch_events()).skip(1))
        {
            // A second's events are observed within it.
            let span = next[0].observed_at - batch[0].observed_at;
            assert_eq!(span, Duration::seconds(1));
        }
        for batch in events.chunks(rate.batch_events()) {
            let mut seen = std::collections::HashSet::new();
            for event in batch {
                assert!(
                    seen.insert(event.listing.id.as_str()),
                    "{} twice in a batch",
                    event.listing.id.as_str()
                );
            }
        }
        assert_eq!(
            events[..rate.inventory()]
                .iter()
                .filter(|e| e.baseline)
                .count(),
            rate.inventory()
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_feed_and_every_event_decodes() {
        let rate = FeedRate { per_second: 500 };
        let a = generate(3_000, 5, Spread::National, rate);
        assert_eq!(a, generate(3_000, 5, Spread::National, rate));
        for event in &a {
            let bytes = event.encode().expect("every generated event is valid");
            assert_eq!(&ListingEvent::decode(&bytes).expect("decodes"), event);
        }
    }
}
