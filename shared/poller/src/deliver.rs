//! One read of a market, delivered: compared with the stored state ([`detect`]), the events
//! published, and the state settled and saved. The poller ([`super::run`]) and the replay of
//! an export ([`super::replay`]) both go through here, so a listing already sent by either is
//! not sent again by the other.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::detect::{DelistingGuard, MarketRead, detect, settle};
use super::ports::{EventPublisher, PollStateStore, StoredPollState};
use realty_model::listing::EventKind;
use realty_model::ports::PortError;

/// What delivering one read did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub new: usize,
    pub changed: usize,
    pub delisted: usize,
    /// Delistings held for later complete reads to confirm (too many at once).
    pub held_delistings: usize,
    /// Events that could not be published; their listings are found again next time.
    pub unpublished: usize,
    /// Another writer saved this market's state first; its state stands.
    pub state_conflict: bool,
}

impl Delivery {
    pub fn events(&self) -> usize {
        self.new + self.changed + self.delisted
    }

    /// Events that reached the stream.
    pub fn published(&self) -> usize {
        self.events().saturating_sub(self.unpublished)
    }
}

/// What a delivery does when another writer saved the market's state after it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// The other writer's state stands (a poll: an overlapping poll read the same market).
    Yield,
    /// The listings this delivery settled are written into the other writer's state, each
    /// unless that one holds it observed later or delisted since (an import: the poller
    /// saves every few minutes, and an import that yielded to it published its events again
    /// at every retry).
    Merge,
}

/// How old a portal listing's last sighting in the saved state may grow before a read that
/// changed nothing saves it anyway: the ad pages asked for are those of the listings neither
/// seen nor asked about for [`super::gone::GONE_CHECK_AFTER`] (a day), so a listing every
/// read sees must not look unseen in the state (before, a quiet read saved nothing, and the
/// state kept each listing's sighting of its last change).
pub const SIGHTING_REFRESH: chrono::TimeDelta = chrono::TimeDelta::hours(6);

/// Whether `next` holds a portal listing seen [`SIGHTING_REFRESH`] or more after its
/// sighting in `saved`.
fn sightings_stale(saved: &super::detect::PollState, next: &super::detect::PollState) -> bool {
    next.listings.iter().any(|(id, listing)| {
        listing.source.is_portal()
            && saved
                .listings
                .get(id)
                .is_some_and(|before| listing.observed_at - before.observed_at >= SIGHTING_REFRESH)
    })
}

/// Times a merging delivery reads the latest state and tries to save into it.
const MERGE_ATTEMPTS: usize = 3;

/// Detects what `read` changed against `stored` (the state kept under `key`), publishes the
/// events and saves the settled state: listings whose events failed keep their previous
/// entry, so the next read finds the same change again.
#[allow(clippy::too_many_arguments)]
pub async fn deliver<P: EventPublisher, S: PollStateStore>(
    publisher: &P,
    states: &S,
    key: &str,
    stored: &StoredPollState,
    read: MarketRead,
    poll_id: &str,
    observed_at: DateTime<Utc>,
    guard: DelistingGuard,
    on_conflict: OnConflict,
) -> Result<Delivery, PortError> {
    // Kept for a merge: the listings that leave this state go from the latest one too.
    let moved_away = read.moved_away.clone();
    let detection = detect(&stored.state, read, poll_id, observed_at, guard);
    let mut delivery = Delivery {
        held_delistings: detection.held_delistings,
        ..Delivery::default()
    };
    if detection.held_delistings > 0 {
        tracing::warn!(
            key,
            held = detection.held_delistings,
            "a read missed too many listings at once; their delisting waits for later reads to confirm it"
        );
    }
    for e in &detection.events {
        match e.kind {
            EventKind::New => delivery.new += 1,
            EventKind::Changed { .. } => delivery.changed += 1,
            EventKind::Delisted => delivery.delisted += 1,
        }
    }
    let failures = publisher.publish(&detection.events).await?;
    for f in &failures {
        tracing::error!(key, index = f.index, error = %f.error, "event not published; found again next time");
    }
    delivery.unpublished = failures.len();
    let failed: BTreeSet<usize> = failures.iter().map(|f| f.index).collect();
    let unchanged = detection.events.is_empty()
        && detection.next.cursor == stored.state.cursor
        && detection.next.unconfirmed_delistings == stored.state.unconfirmed_delistings
        && detection.next.unconfirmed_since == stored.state.unconfirmed_since
        && detection.next.last_complete_read == stored.state.last_complete_read
        && detection.next.last_full_read == stored.state.last_full_read
        // A portal's ad pages asked about: unsaved, every quiet poll asked the same ones.
        && detection.next.page_checked_at == stored.state.page_checked_at
        && detection.next.watched_since == stored.state.watched_since
        && detection.next.baseline_since == stored.state.baseline_since
        // Without an event only a listing moved to another market's state leaves.
        && detection.next.listings.len() == stored.state.listings.len()
        && !sightings_stale(&stored.state, &detection.next);
    let next = settle(&stored.state, detection, &failed);
    if unchanged && stored.version.is_some() {
        return Ok(delivery);
    }
    let mut saved = states.save(key, &next, stored.version.as_deref()).await?;
    if !saved && on_conflict == OnConflict::Merge {
        saved = merge_into_latest(states, key, &stored.state, &next, &moved_away).await?;
    }
    delivery.state_conflict = !saved;
    if !saved {
        tracing::warn!(
            key,
            "another writer saved this market's state first; its state stands"
        );
    }
    Ok(delivery)
}

/// Writes the listings `next` settled (those that differ from `before`) into the latest state
/// of `key`, each unless the latest holds it observed later or delisted after it was, and
/// takes out of it those `moved_away` (unless it holds them observed later than that).
async fn merge_into_latest<S: PollStateStore>(
    states: &S,
    key: &str,
    before: &super::detect::PollState,
    next: &super::detect::PollState,
    moved_away: &BTreeMap<String, DateTime<Utc>>,
) -> Result<bool, PortError> {
    let ours: Vec<(&String, &realty_model::listing::Listing)> = next
        .listings
        .iter()
        .filter(|(id, l)| before.listings.get(*id) != Some(*l))
        .collect();
    for _ in 0..MERGE_ATTEMPTS {
        let latest = states.load(key).await?;
        let mut merged = latest.state;
        for (id, listing) in &ours {
            let newer_there = merged
                .listings
                .get(*id)
                .is_some_and(|theirs| theirs.observed_at >= listing.observed_at);
            let delisted_since = merged
                .delisted_at
                .get(*id)
                .is_some_and(|at| *at >= listing.observed_at);
            if !newer_there && !delisted_since {
                merged.listings.insert((*id).clone(), (*listing).clone());
                // Seen after its delisting, or after the reads began missing it: on the
                // market, as a poll that saw it would have it.
                merged.delisted_at.remove(*id);
                merged.unconfirmed_delistings.remove(*id);
            }
        }
        for (id, seen_there) in moved_away {
            if merged
                .listings
                .get(id)
                .is_some_and(|l| l.observed_at <= *seen_there)
            {
                merged.listings.remove(id);
                merged.unconfirmed_delistings.remove(id);
                merged.page_checked_at.remove(id);
            }
        }
        if merged.unconfirmed_delistings.is_empty() {
            merged.unconfirmed_since = None;
        }
        if states.save(key, &merged, latest.version.as_deref()).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The poll id of one market's read: `<poll id>-<read name>` (`/` as `-`), the name cut and
/// told apart by a hash of it where the whole would pass an event's
/// [`MAX_POLL_ID_LEN`](realty_model::listing::MAX_POLL_ID_LEN) bytes: a market key may be 512 bytes,
/// and an event whose poll id is longer is never encoded (every one of the market's, on every
/// retry).
pub fn market_poll_id(poll_id: &str, read_name: &str) -> String {
    use std::hash::Hasher as _;
    let name = read_name.replace('/', "-");
    let whole = format!("{poll_id}-{name}");
    if whole.len() <= realty_model::listing::MAX_POLL_ID_LEN {
        return whole;
    }
    let mut hash = fnv::FnvHasher::default();
    hash.write(name.as_bytes());
    let room = realty_model::listing::MAX_POLL_ID_LEN.saturating_sub(poll_id.len() + 2 + 16);
    let mut cut = room.min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{poll_id}-{}-{:016x}", &name[..cut], hash.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::PollState;
    use crate::memory::{MemoryPollStates, MemoryStream};

    fn at(hour: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2024-03-01T{hour:02}:00:00Z"))
            .expect("time")
            .with_timezone(&Utc)
    }

    /// Delivers `read` against the stored state of `key` at `at(2)`.
    async fn deliver_at_two(states: &MemoryPollStates, key: &str, read: MarketRead) -> Delivery {
        let stored = states.load(key).await.expect("load");
        deliver(
            &MemoryStream::default(),
            states,
            key,
            &stored,
            read,
            "p",
            at(2),
            DelistingGuard::default(),
            OnConflict::Yield,
        )
        .await
        .expect("delivered")
    }

    /// An import whose save met a poll's: its listings go into the poll's state (unless the
    /// poll holds one observed later, or delisted it since), so its retry publishes nothing
    /// again; a poll meeting another poll yields.
    #[tokio::test]
    async fn an_import_merges_into_a_state_saved_meanwhile_and_a_poll_yields() {
        use crate::detect::tests::listing;
        let key = "file/nashville-tn";
        for (on_conflict, merged) in [(OnConflict::Merge, true), (OnConflict::Yield, false)] {
            let states = MemoryPollStates::default();
            let stored = states.load(key).await.expect("load");
            // The poll saves first: listing 1, seen after the import's rows were; listing 3,
            // delisted after them.
            let (mut polled, imported, mut gone) = (
                listing(1, 30_000_000),
                listing(2, 40_000_000),
                listing(3, 50_000_000),
            );
            polled.observed_at = at(5);
            gone.observed_at = at(1);
            let mut theirs = PollState::default();
            theirs
                .listings
                .insert(polled.id.to_string(), polled.clone());
            theirs.delisted_at.insert(gone.id.to_string(), at(4));
            // The poll's reads began missing the imported listing, which the import saw.
            theirs
                .unconfirmed_delistings
                .insert(imported.id.to_string());
            theirs.unconfirmed_since = Some(at(0));
            assert!(states.save(key, &theirs, None).await.expect("saved"));
            let mut stale = listing(1, 31_000_000);
            stale.observed_at = at(1);
            let read = MarketRead {
                listings: vec![stale, imported.clone(), gone.clone()],
                ..MarketRead::default()
            };
            let delivery = deliver(
                &MemoryStream::default(),
                &states,
                key,
                &stored,
                read,
                "import",
                at(6),
                DelistingGuard::default(),
                on_conflict,
            )
            .await
            .expect("delivered");
            assert_eq!(delivery.state_conflict, !merged, "{on_conflict:?}");
            let now = states.load(key).await.expect("load").state;
            assert_eq!(now.listings.get(polled.id.as_str()), Some(&polled));
            assert_eq!(now.listings.contains_key(imported.id.as_str()), merged);
            assert_eq!(
                now.unconfirmed_delistings.contains(imported.id.as_str()),
                !merged
            );
            assert_eq!(now.unconfirmed_since.is_none(), merged);
            assert!(!now.listings.contains_key(gone.id.as_str()));
        }
    }

    #[tokio::test]
    async fn a_whole_read_that_changes_no_listing_is_still_remembered() {
        let states = MemoryPollStates::default();
        let key = "reso/austin-tx";
        let state = PollState {
            cursor: Some(at(1)),
            ..PollState::default()
        };
        assert!(states.save(key, &state, None).await.expect("saved"));
        // A whole read, cut short, that finds no change and leaves the cursor where it was.
        let read = MarketRead {
            cursor: Some(at(1)),
            full: true,
            ..MarketRead::default()
        };
        deliver_at_two(&states, key, read).await;
        assert_eq!(states.state(key).expect("kept").last_full_read, Some(at(2)));
    }

    /// A poll with no change that asked a portal about ads it no longer reaches keeps those
    /// checks: unsaved, every quiet poll asked the same oldest pages again, and the ads
    /// further down were never checked.
    #[tokio::test]
    async fn a_quiet_poll_keeps_the_ad_pages_it_asked_about() {
        let (reached, unreached) = (
            crate::detect::tests::listing(1, 40_000_000),
            crate::detect::tests::listing(2, 50_000_000),
        );
        let states = MemoryPollStates::default();
        let key = "mubawab/casablanca-ma";
        let state = PollState {
            listings: [&reached, &unreached]
                .into_iter()
                .map(|l| (l.id.as_str().to_owned(), l.clone()))
                .collect(),
            ..PollState::default()
        };
        assert!(states.save(key, &state, None).await.expect("saved"));
        // The first page alone: the reached ad unchanged, the other's page found, not gone.
        let read = MarketRead {
            listings: vec![reached],
            asked_not_gone_ids: [unreached.id.as_str().to_owned()].into(),
            ..MarketRead::default()
        };
        let delivery = deliver_at_two(&states, key, read).await;
        assert_eq!(
            (delivery.new, delivery.changed, delivery.delisted),
            (0, 0, 0)
        );
        let kept = states.state(key).expect("kept");
        assert_eq!(
            kept.page_checked_at.get(unreached.id.as_str()),
            Some(&at(2)),
            "{kept:?}"
        );
    }

    /// A portal read that changes nothing still saves the state once a listing's saved
    /// sighting is [`SIGHTING_REFRESH`] old: before, the state kept each listing's sighting
    /// of its last change, and an ad every read saw looked unseen for days to the checks.
    #[tokio::test]
    async fn a_quiet_portal_read_saves_sightings_grown_old() {
        let mut ad = crate::detect::tests::listing(1, 40_000_000);
        ad.source = realty_model::listing::ListingSource::Mubawab;
        ad.observed_at = at(0);
        let states = MemoryPollStates::default();
        let key = "mubawab/ma/casablanca";
        let state = PollState {
            listings: [(ad.id.as_str().to_owned(), ad.clone())].into(),
            ..PollState::default()
        };
        assert!(states.save(key, &state, None).await.expect("saved"));
        let id = ad.id.as_str().to_owned();
        let read_at = async |hour: u32| {
            let mut seen = ad.clone();
            seen.observed_at = at(hour);
            let stored = states.load(key).await.expect("load");
            let read = MarketRead {
                listings: vec![seen],
                ..MarketRead::default()
            };
            let delivery = deliver(
                &MemoryStream::default(),
                &states,
                key,
                &stored,
                read,
                "p",
                at(hour),
                DelistingGuard::default(),
                OnConflict::Yield,
            )
            .await
            .expect("delivered");
            assert_eq!(delivery.events(), 0);
            states.state(key).expect("kept").listings[&id].observed_at
        };
        // Just under the refresh: nothing saved; at it: the sighting saved.
        assert_eq!(read_at(5).await, at(0));
        assert_eq!(read_at(6).await, at(6));
        // An API's listing keeps the old way: a quiet read saves nothing.
        let mut api = ad.clone();
        api.source = realty_model::listing::ListingSource::Zillow;
        let saved = PollState {
            listings: [(api.id.as_str().to_owned(), api.clone())].into(),
            ..PollState::default()
        };
        let mut later = saved.clone();
        if let Some(l) = later.listings.values_mut().next() {
            l.observed_at = at(20);
        }
        assert!(!sightings_stale(&saved, &later));
    }

    /// A market key of any allowed length gives a poll id an event carries: cut, and told
    /// apart from another long key with the same start.
    #[test]
    fn a_long_market_s_poll_id_fits_an_event() {
        let poll = "replay-2026-11-28T07:10:00.000Z-file";
        assert_eq!(
            market_poll_id(poll, "ma/casablanca"),
            format!("{poll}-ma-casablanca")
        );
        let long = |tail: &str| format!("{}-{tail}", "ville-é".repeat(80));
        let (a, b) = (
            market_poll_id(poll, &long("tx")),
            market_poll_id(poll, &long("ok")),
        );
        for id in [&a, &b] {
            assert!(
                id.len() <= realty_model::listing::MAX_POLL_ID_LEN,
                "{}",
                id.len()
            );
            assert!(id.starts_with(&format!("{poll}-ville-é")), "{id}");
        }
        assert_ne!(a, b);
    }
}
