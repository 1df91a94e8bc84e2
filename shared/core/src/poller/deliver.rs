//! One read of a market, delivered: compared with the stored state ([`detect`]), the events
//! published, and the state settled and saved. The poller ([`super::run`]) and the replay of
//! an export ([`super::replay`]) both go through here, so a listing already sent by either is
//! not sent again by the other.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::detect::{DelistingGuard, MarketRead, detect, settle};
use super::ports::{EventPublisher, PollStateStore, StoredPollState};
use crate::listing::EventKind;
use crate::ports::PortError;

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
) -> Result<Delivery, PortError> {
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
        && detection.next.page_checked_at == stored.state.page_checked_at;
    let next = settle(&stored.state, detection, &failed);
    if unchanged && stored.version.is_some() {
        return Ok(delivery);
    }
    let saved = states.save(key, &next, stored.version.as_deref()).await?;
    delivery.state_conflict = !saved;
    if !saved {
        tracing::warn!(
            key,
            "another writer saved this market's state first; its state stands"
        );
    }
    Ok(delivery)
}

/// The poll id of one market's read: `<poll id>-<read name>` (`/` as `-`), the name cut and
/// told apart by a hash of it where the whole would pass an event's
/// [`MAX_POLL_ID_LEN`](crate::listing::MAX_POLL_ID_LEN) bytes: a market key may be 512 bytes,
/// and an event whose poll id is longer is never encoded (every one of the market's, on every
/// retry).
pub fn market_poll_id(poll_id: &str, read_name: &str) -> String {
    use std::hash::Hasher as _;
    let name = read_name.replace('/', "-");
    let whole = format!("{poll_id}-{name}");
    if whole.len() <= crate::listing::MAX_POLL_ID_LEN {
        return whole;
    }
    let mut hash = fnv::FnvHasher::default();
    hash.write(name.as_bytes());
    let room = crate::listing::MAX_POLL_ID_LEN.saturating_sub(poll_id.len() + 2 + 16);
    let mut cut = room.min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{poll_id}-{}-{:016x}", &name[..cut], hash.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poller::detect::PollState;
    use crate::poller::memory::{MemoryPollStates, MemoryStream};

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
        )
        .await
        .expect("delivered")
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
            crate::poller::detect::tests::listing(1, 40_000_000),
            crate::poller::detect::tests::listing(2, 50_000_000),
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
            assert!(id.len() <= crate::listing::MAX_POLL_ID_LEN, "{}", id.len());
            assert!(id.starts_with(&format!("{poll}-ville-é")), "{id}");
        }
        assert_ne!(a, b);
    }
}
