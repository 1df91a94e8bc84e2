//! Change detection: this poll against the last complete one.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};

use realty_model::listing::{EventKind, Listing, ListingEvent, Offer};

pub mod baseline;

pub use super::state::{MAX_STATE_JSON_BYTES, MAX_STATE_LISTINGS, PollState, StateDecodeError};

/// What one poll of a market saw.
#[derive(Debug, Clone, Default)]
pub struct MarketRead {
    pub listings: Vec<Listing>,
    /// Every page was read and what they held adds up to what the source said it had: only
    /// then can a missing listing be taken as delisted.
    pub complete: bool,
    pub cursor: Option<DateTime<Utc>>,
    /// RESO: this read asked for the whole market (not only changes since the cursor).
    pub full: bool,
    /// Listings the source still lists but whose records were rejected (a price turned into
    /// "call for price"): they are on the market, so they keep their last good entry.
    pub rejected_ids: BTreeSet<String>,
    /// Portals: listings this read did not reach whose own page is gone (404, 410): the
    /// evidence a read that cannot reach the whole market has of a delisting.
    pub gone_ids: BTreeSet<String>,
    /// Portals: listings this read did not reach whose own page was asked for and not
    /// found gone: asked again only later.
    pub asked_not_gone_ids: BTreeSet<String>,
    /// Portals: the read stopped where the crawl is bounded: as far as a poll reads, so it
    /// ends a baseline as a complete read does ([`baseline`]).
    pub crawl_limited: bool,
    /// An import or a replay of history, not a poll: a listing it finds new whose on-market
    /// date is before the day it was seen, or unknown, is inventory ([`baseline`]).
    pub history: bool,
    /// Listings known to have moved to another market's state (an import whose newest row
    /// of them is in another market), with when they were seen there: they leave this state
    /// without an event, unless it holds them observed later. A listing is in one market's
    /// state at a time; kept in both, the next complete read of this market delisted it.
    pub moved_away: BTreeMap<String, DateTime<Utc>>,
}

/// `before`, held under `id`, has moved to another market's state since it was seen here
/// ([`MarketRead::moved_away`]).
fn moved(moved_away: &BTreeMap<String, DateTime<Utc>>, id: &str, before: &Listing) -> bool {
    moved_away
        .get(id)
        .is_some_and(|seen_there| before.observed_at <= *seen_there)
}

/// The default of [`DelistingGuard::max_share`]: a read that misses more than 30 % of a
/// market at once says more about the read than about the market.
pub const DEFAULT_MAX_DELISTED_SHARE: f64 = 0.3;

/// How long the complete reads must keep missing the listings a mass loss held before they
/// are delisted: an upstream outage answering part of a market lasts minutes to hours, and
/// markets are polled as often as every 5 minutes, so a second read alone proves little.
pub const MASS_LOSS_CONFIRMATION: TimeDelta = TimeDelta::hours(6);
/// How long a delisting is remembered ([`PollState::delisted_at`]): as long as the raw pages
/// `realty replay-raw` re-reads are kept.
pub const DELISTINGS_REMEMBERED: TimeDelta = TimeDelta::days(90);
/// Most delistings a market's state remembers (about 50 bytes each in its JSON).
pub const MAX_DELISTINGS_REMEMBERED: usize = 20_000;

/// A read that found nothing at all (no listing, no rejected record) where the last state
/// had listings: a source answering "none" for a market that had listings is far likelier
/// broken than the market emptied, so such a read is never taken as complete. A market
/// that truly empties keeps its last listings until a read sees one again.
pub fn implausibly_empty(previous: &PollState, read: &MarketRead) -> bool {
    read.listings.is_empty() && read.rejected_ids.is_empty() && !previous.listings.is_empty()
}

/// How many delistings one complete read may infer before later reads must confirm them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelistingGuard {
    /// Largest share (0..=1) of a market's known listings delisted by one read; above it,
    /// the missing listings are held until the complete reads have missed them for
    /// [`MASS_LOSS_CONFIRMATION`].
    pub max_share: f64,
}

impl DelistingGuard {
    /// Whether delisting `missing` of `known` listings at once is more than the share.
    fn exceeded(&self, missing: usize, known: usize) -> bool {
        missing as f64 > self.max_share * known as f64
    }
}

impl Default for DelistingGuard {
    fn default() -> Self {
        Self {
            max_share: DEFAULT_MAX_DELISTED_SHARE,
        }
    }
}

/// The events of a poll and the state to keep if all of them are published.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub events: Vec<ListingEvent>,
    pub next: PollState,
    /// Delistings held back for a second read to confirm ([`DelistingGuard`]).
    pub held_delistings: usize,
}

/// Compares a read with the previous state. Unchanged listings emit nothing; a listing seen
/// twice in one read (it moved between pages) counts once; delistings only from a complete
/// read (never an [`implausibly_empty`] one), never of a listing whose record was rejected,
/// and, past the guard's share, only once the complete reads have kept missing them for
/// [`MASS_LOSS_CONFIRMATION`].
pub fn detect(
    previous: &PollState,
    read: MarketRead,
    poll_id: &str,
    observed_at: DateTime<Utc>,
    guard: DelistingGuard,
) -> Detection {
    // Rentals kept under the id they had before rentals had ids of their own (the home's,
    // which its sale listing has too) and read now under their own: delisted under the old id
    // once, whatever the read's completeness and outside the mass-loss guard (the read sees
    // them), and new under the new one.
    let superseded: Vec<&Listing> = read
        .listings
        .iter()
        .filter_map(|l| {
            let before = previous
                .listings
                .get(l.id.before_rentals_had_their_own()?.as_str())?;
            (before.offer == Offer::Rent).then_some(before)
        })
        .collect();
    if superseded.is_empty() {
        return detect_read(previous, read, poll_id, observed_at, guard);
    }
    let mut migrated = previous.clone();
    let mut events = Vec::with_capacity(superseded.len());
    for before in superseded {
        let old = before.id.as_str();
        migrated.listings.remove(old);
        migrated.unconfirmed_delistings.remove(old);
        migrated.page_checked_at.remove(old);
        events.push(ListingEvent::delisted(before.clone(), observed_at, poll_id));
    }
    let seen: BTreeSet<String> = read
        .listings
        .iter()
        .map(|l| l.id.as_str().to_owned())
        .collect();
    let mut detection = detect_read(&migrated, read, poll_id, observed_at, guard);
    events.append(&mut detection.events);
    detection.next.delisted_at = remember_delistings(previous, &events, &seen, observed_at);
    detection.events = events;
    detection
}

fn detect_read(
    previous: &PollState,
    mut read: MarketRead,
    poll_id: &str,
    observed_at: DateTime<Utc>,
    guard: DelistingGuard,
) -> Detection {
    let complete = read.complete && !implausibly_empty(previous, &read);
    let seen = listings_seen(previous, &mut read);
    let compared = Comparison {
        previous,
        read: &read,
        poll_id,
        observed_at,
    };
    let mut events = compared.seen_events(&seen);
    let seen_ids: BTreeSet<String> = seen.keys().cloned().collect();
    // Held listings missed again count from when they were first held (a state from before
    // this was kept starts the count now).
    let held_since = previous.unconfirmed_since.unwrap_or(observed_at);
    let kept = if complete {
        compared.after_complete_read(seen, guard, held_since, &mut events)
    } else {
        compared.after_incomplete_read(seen, &mut events)
    };
    let page_checked_at = compared.page_checks(&kept.listings, &seen_ids);
    let delisted_at = remember_delistings(previous, &events, &seen_ids, observed_at);
    let unconfirmed_delistings = kept.unconfirmed;
    Detection {
        events,
        next: PollState {
            listings: kept.listings,
            cursor: read.cursor.or(previous.cursor),
            // A listing newly held restarts the count for the whole set.
            unconfirmed_since: if unconfirmed_delistings.is_empty() {
                None
            } else if unconfirmed_delistings.is_subset(&previous.unconfirmed_delistings) {
                Some(held_since)
            } else {
                Some(observed_at)
            },
            unconfirmed_delistings,
            // Only incremental sources (a cursor) schedule their complete reads.
            last_complete_read: if complete && read.cursor.is_some() {
                Some(observed_at)
            } else {
                previous.last_complete_read
            },
            page_checked_at,
            delisted_at,
            last_full_read: if read.full {
                Some(observed_at)
            } else {
                previous.last_full_read
            },
            watched_since: previous.watched_since,
            baseline_since: baseline::after_read(previous, &read, complete, observed_at),
        },
        held_delistings: kept.held,
    }
}

/// The listings `read` saw, by id, taken out of it: a listing read twice once (the later
/// copy), each keeping the dates derived before ([`keep_derived_date`]).
fn listings_seen(previous: &PollState, read: &mut MarketRead) -> BTreeMap<String, Listing> {
    let mut seen: BTreeMap<String, Listing> = BTreeMap::new();
    for listing in std::mem::take(&mut read.listings) {
        // The later copy of a listing read twice is the more recent observation.
        seen.insert(listing.id.as_str().to_owned(), listing);
    }
    for (id, listing) in seen.iter_mut() {
        if let Some(before) = previous.listings.get(id) {
            keep_derived_date(before, listing);
        }
    }
    seen
}

/// One read (its listings taken out) compared with the state before it.
struct Comparison<'a> {
    previous: &'a PollState,
    read: &'a MarketRead,
    poll_id: &'a str,
    observed_at: DateTime<Utc>,
}

/// The listings a read leaves in the next state, and the delistings it held back.
struct Kept {
    listings: BTreeMap<String, Listing>,
    unconfirmed: BTreeSet<String>,
    /// How many delistings this read held back ([`DelistingGuard`]).
    held: usize,
}

impl Comparison<'_> {
    /// The events of the listings seen: new ones (or a baseline's), and changes.
    fn seen_events(&self, seen: &BTreeMap<String, Listing>) -> Vec<ListingEvent> {
        let mut events = Vec::new();
        for (id, listing) in seen {
            match self.previous.listings.get(id) {
                None => events.push(baseline::new_event(
                    self.previous,
                    self.read,
                    listing.clone(),
                    self.poll_id,
                )),
                Some(before) => {
                    events.extend(ListingEvent::changed(before, listing.clone(), self.poll_id));
                }
            }
        }
        events
    }

    /// After a complete read: the listings it missed delisted (into `events`), unless the
    /// read missed past the guard's share, which holds them until confirmed.
    fn after_complete_read(
        &self,
        seen: BTreeMap<String, Listing>,
        guard: DelistingGuard,
        held_since: DateTime<Utc>,
        events: &mut Vec<ListingEvent>,
    ) -> Kept {
        let (previous, observed_at) = (self.previous, self.observed_at);
        let mut next = seen;
        let missing = self.missing(&mut next);
        // Over the listings still on the market too: a feed that keeps ended records (a RESO
        // full read returns years of closed sales) would otherwise hide a read that lost its
        // active listings behind the sales it still returns.
        let listed = |listing: &Listing| !listing.status.has_ended();
        let missing_listed = missing.iter().filter(|(_, l)| listed(l)).count();
        let known_listed = previous.listings.values().filter(|l| listed(l)).count();
        let mass_loss = guard.exceeded(missing.len(), previous.listings.len())
            || guard.exceeded(missing_listed, known_listed);
        let confirmed = |id: &String| {
            previous.unconfirmed_delistings.contains(id)
                && observed_at - held_since >= MASS_LOSS_CONFIRMATION
        };
        let mut held = 0;
        let mut unconfirmed = BTreeSet::new();
        for (id, before) in missing {
            // A held listing goes only on confirmation: a read missing fewer of them, as an
            // outage recovers, is no evidence that those it still misses are gone.
            let delist = if previous.unconfirmed_delistings.contains(id) {
                confirmed(id)
            } else {
                !mass_loss
            };
            if delist {
                events.push(ListingEvent::delisted(
                    before.clone(),
                    observed_at,
                    self.poll_id,
                ));
            } else {
                held += 1;
                unconfirmed.insert(id.clone());
                next.insert(id.clone(), before.clone());
            }
        }
        Kept {
            listings: next,
            unconfirmed,
            held,
        }
    }

    /// The listings of the state before a complete read that it missed (not moved away);
    /// those whose record it rejected stay in `next` as last seen.
    fn missing(&self, next: &mut BTreeMap<String, Listing>) -> Vec<(&String, &Listing)> {
        let mut missing = Vec::new();
        for (id, before) in &self.previous.listings {
            if next.contains_key(id) || moved(&self.read.moved_away, id, before) {
                continue;
            }
            // A rejected rental whose status could not be read has the home's id.
            let rejected = |id: &str| self.read.rejected_ids.contains(id);
            if rejected(id)
                || before
                    .id
                    .before_rentals_had_their_own()
                    .is_some_and(|home| rejected(home.as_str()))
            {
                // Still listed, just unreadable this time: it stays as last seen.
                next.insert(id.clone(), before.clone());
            } else {
                missing.push((id, before));
            }
        }
        missing
    }

    /// After an incomplete read: nothing is confirmed or refuted by it, except by seeing a
    /// listing, or by the listing's own page being gone (delisted into `events`).
    fn after_incomplete_read(
        &self,
        seen: BTreeMap<String, Listing>,
        events: &mut Vec<ListingEvent>,
    ) -> Kept {
        let (previous, read) = (self.previous, self.read);
        let mut kept = previous.listings.clone();
        kept.retain(|id, before| !moved(&read.moved_away, id, before));
        let unconfirmed = previous
            .unconfirmed_delistings
            .iter()
            .filter(|id| {
                !seen.contains_key(*id) && !read.gone_ids.contains(*id) && kept.contains_key(*id)
            })
            .cloned()
            .collect();
        for id in &read.gone_ids {
            if seen.contains_key(id) {
                continue;
            }
            if let Some(before) = kept.remove(id) {
                events.push(ListingEvent::delisted(
                    before,
                    self.observed_at,
                    self.poll_id,
                ));
            }
        }
        kept.extend(seen);
        Kept {
            listings: kept,
            unconfirmed,
            held: 0,
        }
    }

    /// The listings' page checks to remember: a check is remembered until the listing is
    /// seen again or gone.
    fn page_checks(
        &self,
        next_listings: &BTreeMap<String, Listing>,
        seen_ids: &BTreeSet<String>,
    ) -> BTreeMap<String, DateTime<Utc>> {
        self.previous
            .page_checked_at
            .iter()
            .map(|(id, at)| (id.clone(), *at))
            .chain(
                self.read
                    .asked_not_gone_ids
                    .iter()
                    .map(|id| (id.clone(), self.observed_at)),
            )
            .filter(|(id, _)| next_listings.contains_key(id) && !seen_ids.contains(id))
            .collect()
    }
}

/// The delistings to remember after a read: those before it, less the listings it saw
/// (back on the market) and those older than [`DELISTINGS_REMEMBERED`], with its own, and at
/// most the newest [`MAX_DELISTINGS_REMEMBERED`].
fn remember_delistings(
    previous: &PollState,
    events: &[ListingEvent],
    seen: &BTreeSet<String>,
    observed_at: DateTime<Utc>,
) -> BTreeMap<String, DateTime<Utc>> {
    let since = observed_at - DELISTINGS_REMEMBERED;
    let mut remembered: BTreeMap<String, DateTime<Utc>> = previous
        .delisted_at
        .iter()
        .filter(|(id, at)| **at >= since && !seen.contains(*id))
        .map(|(id, at)| (id.clone(), *at))
        .collect();
    for event in events {
        if matches!(event.kind, EventKind::Delisted) {
            remembered.insert(event.listing.id.as_str().to_owned(), observed_at);
        }
    }
    if remembered.len() > MAX_DELISTINGS_REMEMBERED {
        let mut by_age: Vec<(DateTime<Utc>, String)> =
            remembered.into_iter().map(|(id, at)| (at, id)).collect();
        by_age.sort_unstable_by(|a, b| b.cmp(a));
        by_age.truncate(MAX_DELISTINGS_REMEMBERED);
        remembered = by_age.into_iter().map(|(at, id)| (id, at)).collect();
    }
    remembered
}

/// A source that gives days on market instead of a date (Zillow's `daysOnZillow`) makes the
/// derived on-market date move by a day with the time of day of the poll; a one-day move is
/// that jitter, not a change, so the earlier observation's date stands.
///
/// The portals write the date relatively (`il y a 3 jours`, `il y a 2 semaines`, `il y a 2
/// mois`), coarser as the ad ages, and an ad's publication never moves (a new ad is a new
/// number): the first date read stands.
fn keep_derived_date(before: &Listing, current: &mut Listing) {
    if current.source.is_portal() && before.on_market_date.is_some() {
        current.on_market_date = before.on_market_date;
        return;
    }
    // RESO's `OnMarketDate` and Realtor.com's `list_date` are dates as given: a one-day
    // move of theirs is a correction, and is reported.
    if current.source == realty_model::listing::ListingSource::Zillow
        && let (Some(old), Some(new)) = (before.on_market_date, current.on_market_date)
        && (new - old).num_days().abs() <= 1
    {
        current.on_market_date = Some(old);
    }
}

/// The state to keep when the events at `failed` (indexes into `detection.events`) could not
/// be published: those listings keep their previous entry, so the next poll finds the same
/// change again.
pub fn settle(previous: &PollState, detection: Detection, failed: &BTreeSet<usize>) -> PollState {
    let mut next = detection.next;
    for &i in failed {
        let Some(event) = detection.events.get(i) else {
            continue;
        };
        let id = event.listing.id.as_str();
        match previous.listings.get(id) {
            Some(before) => next.listings.insert(id.to_owned(), before.clone()),
            None => next.listings.remove(id),
        };
        // A delisting not delivered is not remembered either.
        match previous.delisted_at.get(id) {
            Some(at) => next.delisted_at.insert(id.to_owned(), *at),
            None => next.delisted_at.remove(id),
        };
    }
    if !failed.is_empty() {
        // Do not move an incremental cursor past changes that were not delivered, nor count
        // a read whose delistings were not delivered as a reconciliation, nor end a baseline
        // whose listings are found again.
        next.cursor = previous.cursor;
        next.last_complete_read = previous.last_complete_read;
        next.baseline_since = previous.baseline_since;
    }
    next
}

#[cfg(test)]
#[path = "detect_tests.rs"]
pub(super) mod tests;
