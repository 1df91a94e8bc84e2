//! `realty replay-raw`: the raw layer's pages ([`super::raw`]) parsed again with today's
//! parsers, gathered into the reads they came from (one poll of one market, sale or rent),
//! and each read sent through the replay's detection and publishing
//! ([`super::replay::replay_market`]).
//!
//! The comparison is the one `--apply` makes: against the poller's stored state of the read
//! (`poller-state/`, the last observation of every listing it published). A listing that
//! now parses to something else than the state holds is a change; one the state does not
//! know (the old parser rejected it) is new; one the state has seen since (a newer poll) is
//! superseded and not compared, so replaying old pages never moves a listing back in time.
//! A dry run makes the same comparison over an overlay of the states and publishes nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::ports::{EventPublisher, PollStateStore, PublishFailure, StoredPollState};
use super::raw::RawPage;
use super::replay::{MarketReplay, replay_market};
use super::run::state_key;
use realty_model::listing::REPLAY_POLL_ID_PREFIX;
use realty_model::listing::{Listing, ListingEvent, time_window_violation};
use realty_model::ports::PortError;
use realty_sources::Page;

/// One read of a market as the raw layer kept it: its pages parsed again.
#[derive(Debug, Clone)]
pub struct RawRead {
    /// The read's first page (source, market, offer, poll id, observed at).
    pub first: RawPage,
    pub pages: u32,
    /// By listing id; a later page's copy wins, as in the poll's own read.
    pub listings: BTreeMap<String, Listing>,
    /// Records today's parser rejects.
    pub rejects: usize,
}

impl RawRead {
    /// Where the poller keeps this read's state.
    pub fn state_key(&self) -> String {
        state_key(
            self.first.source.as_str(),
            &self.first.market,
            self.first.offer,
        )
    }
}

/// Gathers parsed pages into their reads.
#[derive(Debug, Default)]
pub struct RawReads {
    reads: BTreeMap<(DateTime<Utc>, String, String), RawRead>,
}

impl RawReads {
    pub fn add(&mut self, page: RawPage, parsed: Page) {
        let read = self
            .reads
            .entry((
                page.observed_at,
                page.poll_id.clone(),
                state_key(page.source.as_str(), &page.market, page.offer),
            ))
            .or_insert_with(|| RawRead {
                first: page.clone(),
                pages: 0,
                listings: BTreeMap::new(),
                rejects: 0,
            });
        if page.page < read.first.page {
            read.first = page;
        }
        read.pages += 1;
        read.rejects += parsed.rejects.len();
        for listing in parsed.listings {
            read.listings
                .insert(listing.id.as_str().to_owned(), listing);
        }
    }

    /// The reads, oldest poll first (the order they happened in).
    pub fn into_reads(self) -> Vec<RawRead> {
        self.reads.into_values().collect()
    }
}

/// What replaying one read did (or, in a dry run, would do).
#[derive(Debug, Clone)]
pub struct ReadReplay {
    pub read: RawRead,
    pub outcome: Result<MarketReplay, String>,
    /// Listings outside the window the metrics function trusts (too old): not replayed.
    pub outside_window: usize,
    /// The events published (or, in a dry run, that would be).
    pub events: Vec<ListingEvent>,
}

/// The listing-events stream, or nothing (a dry run), keeping every event that went
/// through.
pub struct Recorded<'a, P> {
    inner: Option<&'a P>,
    events: Mutex<Vec<ListingEvent>>,
}

impl<'a, P> Recorded<'a, P> {
    /// Publishes to `inner`; with `None` publishes nothing and records what would go.
    pub fn new(inner: Option<&'a P>) -> Self {
        Self {
            inner,
            events: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Vec<ListingEvent> {
        self.events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}

impl<P: EventPublisher> EventPublisher for Recorded<'_, P> {
    async fn publish(&self, events: &[ListingEvent]) -> Result<Vec<PublishFailure>, PortError> {
        let failures = match self.inner {
            Some(inner) => inner.publish(events).await?,
            None => Vec::new(),
        };
        let mut kept = self
            .events
            .lock()
            .map_err(|_| PortError::new("replay-raw", "the event record's lock is poisoned"))?;
        kept.extend(
            events
                .iter()
                .enumerate()
                .filter(|(i, _)| !failures.iter().any(|f| f.index == *i))
                .map(|(_, e)| e.clone()),
        );
        Ok(failures)
    }
}

/// The poll states as a dry run sees them: read from `inner`, written only to memory, so
/// that each read is compared as `--apply` would compare it after the reads before it.
pub struct DryRunStates<'a, S> {
    inner: &'a S,
    saved: Mutex<BTreeMap<String, StoredPollState>>,
}

impl<'a, S> DryRunStates<'a, S> {
    pub fn new(inner: &'a S) -> Self {
        Self {
            inner,
            saved: Mutex::new(BTreeMap::new()),
        }
    }
}

fn poisoned<T>(_: T) -> PortError {
    PortError::new("replay-raw", "the dry run's state lock is poisoned")
}

impl<S: PollStateStore> PollStateStore for DryRunStates<'_, S> {
    async fn load(&self, key: &str) -> Result<StoredPollState, PortError> {
        let saved = self.saved.lock().map_err(poisoned)?.get(key).cloned();
        match saved {
            Some(state) => Ok(state),
            None => self.inner.load(key).await,
        }
    }

    async fn save(
        &self,
        key: &str,
        state: &super::detect::PollState,
        _expected_version: Option<&str>,
    ) -> Result<bool, PortError> {
        self.saved.lock().map_err(poisoned)?.insert(
            key.to_owned(),
            StoredPollState {
                state: state.clone(),
                version: Some("dry-run".into()),
            },
        );
        Ok(true)
    }
}

/// Replays each read in turn (oldest first) through `publisher` against `states`.
pub async fn replay_reads<P: EventPublisher, S: PollStateStore>(
    reads: Vec<RawRead>,
    publisher: &Recorded<'_, P>,
    states: &S,
    started_at: DateTime<Utc>,
) -> Vec<ReadReplay> {
    let poll_id = format!(
        "{REPLAY_POLL_ID_PREFIX}raw-{}",
        started_at.format(realty_model::listing::POLL_ID_TIME_FORMAT)
    );
    let mut out = Vec::with_capacity(reads.len());
    for read in reads {
        let (listings, outside): (Vec<Listing>, Vec<Listing>) =
            read.listings.values().cloned().partition(|l| {
                time_window_violation("observed_at", l.observed_at, started_at).is_none()
            });
        let outcome = replay_market(
            publisher,
            states,
            &read.state_key(),
            listings,
            std::collections::BTreeMap::new(),
            &poll_id,
            started_at,
        )
        .await
        .map_err(|e| e.to_string());
        out.push(ReadReplay {
            read,
            outcome,
            outside_window: outside.len(),
            events: publisher.take(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryPollStates, MemoryStream};
    use crate::raw::gzip;
    use crate::replay::tests::{at, nashville};
    use realty_model::listing::{EventKind, Offer};
    use realty_model::markets::SourceKind;

    const FIXTURE: &[u8] = include_bytes!(
        "../../sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
    );

    fn page(n: u32) -> RawPage {
        RawPage {
            source: SourceKind::Zillow,
            market: "nashville-tn".into(),
            offer: Offer::Sale,
            poll_id: "poll-2026-11-20T12:00:00.000Z-zillow-nashville-tn".into(),
            observed_at: at(0),
            fetched_at: at(0),
            page: n,
        }
    }

    fn reads(body: &[u8]) -> Vec<RawRead> {
        let mut reads = RawReads::default();
        let p = page(1);
        let parsed = p.normalise(&gzip(body).expect("gzip")).expect("page");
        reads.add(p, parsed);
        reads.into_reads()
    }

    /// The states after a poll that read the fixture and published it.
    async fn polled() -> MemoryPollStates {
        let states = MemoryPollStates::default();
        let stream = MemoryStream::default();
        replay_market(
            &stream,
            &states,
            "zillow/nashville-tn",
            nashville(),
            std::collections::BTreeMap::new(),
            "poll",
            at(1),
        )
        .await
        .expect("replay");
        states
    }

    #[tokio::test]
    async fn an_unchanged_parser_finds_nothing_and_a_different_page_finds_the_change() {
        let states = polled().await;
        let stream = MemoryStream::default();
        let dry = Recorded::new(None::<&MemoryStream>);
        let overlay = DryRunStates::new(&states);
        let same = replay_reads(reads(FIXTURE), &dry, &overlay, at(10)).await;
        assert_eq!(same.len(), 1);
        assert!(same[0].events.is_empty(), "{:?}", same[0].events);
        let outcome = same[0].outcome.as_ref().expect("replayed");
        assert_eq!(outcome.unchanged, nashville().len());

        // The page as a fixed parser would read it: one price differs.
        let first = &nashville()[0];
        let native = first.id.as_str().trim_start_matches("zillow:");
        let mut json: serde_json::Value = serde_json::from_slice(FIXTURE).expect("json");
        let props = json["props"].as_array_mut().expect("props");
        let prop = props
            .iter_mut()
            .find(|p| p["zpid"].to_string().trim_matches('"') == native)
            .expect("the listing");
        prop["price"] = serde_json::json!(first.price_minor / 100 - 5_000);
        let altered = serde_json::to_vec(&json).expect("json");
        let changed = replay_reads(reads(&altered), &dry, &overlay, at(10)).await;
        assert_eq!(changed[0].events.len(), 1);
        assert!(matches!(
            changed[0].events[0].kind,
            EventKind::Changed { .. }
        ));
        assert_eq!(changed[0].events[0].listing.id, first.id);
        // A dry run publishes nothing and leaves the stored state as it was.
        assert_eq!(stream.calls.load(std::sync::atomic::Ordering::Relaxed), 0);
        let kept = states.state("zillow/nashville-tn").expect("state");
        assert_eq!(
            kept.listings[first.id.as_str()].price_minor,
            first.price_minor
        );

        // Applied: only the changed listing goes.
        let apply = Recorded::new(Some(&stream));
        let applied = replay_reads(reads(&altered), &apply, &states, at(10)).await;
        assert_eq!(applied[0].events.len(), 1);
        assert_eq!(stream.taken().len(), 1);
        let kept = states.state("zillow/nashville-tn").expect("state");
        assert_ne!(
            kept.listings[first.id.as_str()].price_minor,
            first.price_minor
        );
    }

    #[test]
    fn pages_gather_into_reads_in_poll_order() {
        let mut reads = RawReads::default();
        let parsed = |p: &RawPage| p.normalise(FIXTURE).expect("page");
        let later = RawPage {
            poll_id: "later".into(),
            observed_at: at(30),
            fetched_at: at(30),
            ..page(1)
        };
        let rent = RawPage {
            offer: Offer::Rent,
            ..page(1)
        };
        for p in [later.clone(), page(2), page(1), rent] {
            let parsed = parsed(&p);
            reads.add(p, parsed);
        }
        let reads = reads.into_reads();
        assert_eq!(reads.len(), 3);
        assert_eq!(reads[0].pages + reads[1].pages, 3);
        let sale = reads
            .iter()
            .find(|r| r.state_key() == "zillow/nashville-tn" && r.first.poll_id != "later")
            .expect("the sale read");
        assert_eq!((sale.pages, sale.first.page), (2, 1));
        assert!(
            reads
                .iter()
                .any(|r| r.state_key() == "zillow/nashville-tn/rent")
        );
        assert_eq!(reads[2].first.poll_id, "later");
    }
}
