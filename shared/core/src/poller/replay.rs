//! Replay: an export (CSV or JSON lines, [`crate::sources::file`]) sent through the poller's
//! own change detection and publishing ([`deliver`]), against the poller's stored state, so
//! that a listing the poller (or an earlier replay) already sent is not sent again.
//!
//! The rows are grouped by (source, market) — the key the poller keeps its state under — and
//! each group is delivered as an *incomplete* read: a file is not a complete read of a
//! market, so a listing absent from it is never taken as delisted. A row that says a listing
//! is sold or off the market is a change like any other and is published as such. A row
//! older than what the state already knows of its listing is skipped (stale): replaying an
//! old export never moves a listing back in time.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;

use super::deliver::deliver;
use super::detect::{DelistingGuard, MAX_STATE_LISTINGS, MarketRead, PollState};
use super::fetch::RateLimiter;
use super::ports::{EventPublisher, PollStateStore, PublishFailure};
use crate::listing::{Listing, ListingEvent, time_window_violation};
use crate::ports::PortError;
use crate::sources::file::parse_export_rows;
use crate::sources::{RecordPosition, Reject, SourceError};

/// Largest export replayed at once (the whole file is held in memory to be parsed).
pub const MAX_REPLAY_BYTES: u64 = 256 * 1024 * 1024;

/// Rejects kept (with their row and reason) for the report; the others are only counted.
pub const MAX_REPORTED_REJECTS: usize = 100;

/// How the poll ids of replays begin (`realty replay`, S3 imports, `realty replay-raw`):
/// their events re-derive instants the poller may already have published, so the lake
/// names them apart (`crate::lake::event_id`).
pub const REPLAY_POLL_ID_PREFIX: &str = "replay-";

/// How a poll id names its instant (`poll-2026-11-27T10:00:00.000Z`,
/// `replay-2026-11-27T10:00:00.000Z`): 24 characters, read back by the lake's checks.
pub const POLL_ID_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// Events handed to the publisher at once (PutRecords' limit), and the progress step.
const PUBLISH_CHUNK: usize = 500;

/// Markets replayed at once. Each waits mostly on its state's read and write (two S3 calls)
/// and its publish: one at a time, a national export of a few thousand markets outlasted the
/// importer's timeout. A listing is in one market, so its events keep their order.
pub const MARKETS_IN_FLIGHT: usize = 16;

/// How a replay runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayOptions {
    /// Most events published a second; `None` for as fast as the stream takes them.
    pub rate_per_second: Option<f64>,
    /// When the replay runs: names its events' poll id and bounds the rows' `observed_at`.
    pub started_at: DateTime<Utc>,
    /// No market starts once the replay has run this long (`None`: no limit). The markets
    /// not started are counted ([`ReplayReport::markets_not_started`]); a replay again sends them.
    pub run_budget: Option<std::time::Duration>,
}

/// Told how far a replay got.
pub trait ReplayProgress: Sync {
    /// The file holds `rows` rows (good and bad).
    fn start(&self, _rows: usize) {}
    /// `rows` more rows are done (published, unchanged, stale or failed).
    fn advance(&self, rows: usize);
}

/// No progress shown.
impl ReplayProgress for () {
    fn advance(&self, _rows: usize) {}
}

/// One (source, market) of the file that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketFailure {
    pub key: String,
    pub error: String,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Data rows (or lines) read, good and bad.
    pub rows: usize,
    pub rejected: usize,
    /// The first [`MAX_REPORTED_REJECTS`] rejects, by row.
    pub rejects: Vec<Reject>,
    /// Rows older than what the state already knew of their listing: not replayed.
    pub stale: usize,
    /// (source, market) groups in the file.
    pub markets: usize,
    pub new: usize,
    pub changed: usize,
    /// Events that reached the stream.
    pub published: usize,
    /// Events that could not be published; replaying the file again sends them.
    pub unpublished: usize,
    /// Good rows that changed nothing (already sent by the poller or an earlier replay).
    pub unchanged: usize,
    /// Groups whose state another writer (a poll) saved first: replay the file again.
    pub state_conflicts: usize,
    pub failed_markets: Vec<MarketFailure>,
    /// Groups not started before the run's budget was spent ([`ReplayOptions::run_budget`]).
    pub markets_not_started: usize,
    /// The encoding the file was read in ([`crate::sources::file::export_text`]).
    pub encoding: Option<&'static str>,
}

impl ReplayReport {
    /// Every part of the file that could be sent was sent.
    pub fn finished(&self) -> bool {
        self.failed_markets.is_empty()
            && self.unpublished == 0
            && self.state_conflicts == 0
            && self.markets_not_started == 0
    }
}

/// The file could not be replayed at all.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    NotAnExport(#[from] SourceError),
    #[error(
        "the export is {bytes} bytes, over the {MAX_REPLAY_BYTES}-byte limit of a replay; split it"
    )]
    TooLarge { bytes: usize },
}

/// Each (source, market) of a file: its rows (the newest of each listing) and the listings
/// leaving its state, by state key.
type Markets = BTreeMap<String, (Vec<Listing>, BTreeMap<String, DateTime<Utc>>)>;

/// What each market of a replay did (`None`: not started), in market order.
type Outcomes = Vec<(String, Option<Result<MarketReplay, PortError>>)>;

/// Replays `bytes` (an export) through `publisher` against the poll states in `states`.
pub async fn replay<P: EventPublisher, S: PollStateStore>(
    bytes: &[u8],
    publisher: &P,
    states: &S,
    options: ReplayOptions,
    progress: &dyn ReplayProgress,
) -> Result<ReplayReport, ReplayError> {
    if bytes.len() as u64 > MAX_REPLAY_BYTES {
        return Err(ReplayError::TooLarge { bytes: bytes.len() });
    }
    let rows = parse_export_rows(bytes)?;
    let mut report = ReplayReport {
        rows: rows.listings.len() + rows.rejects.len(),
        encoding: Some(rows.encoding),
        ..ReplayReport::default()
    };
    progress.start(report.rows);
    let mut rejects = rows.rejects;
    let mut in_window = Vec::with_capacity(rows.listings.len());
    for (line, listing) in rows.listings {
        // The window the metrics function trusts, against the replay's clock (as the
        // poller's events are against the poll's): no future-dated or ancient observation.
        let refusal = time_window_violation("observed_at", listing.observed_at, options.started_at);
        if let Some(reason) = refusal {
            rejects.push(Reject {
                source_id: Some(listing.id.as_str().to_owned()),
                position: RecordPosition::Line(line),
                reason,
            });
            continue;
        }
        in_window.push((line, listing));
    }
    let groups = group_by_state(in_window);
    report.stale = groups.older;
    progress.advance(groups.older + rejects.len());
    let lines = groups.lines.clone();
    let markets = groups.into_markets();
    report.markets = markets.len();
    let outcomes = deliver_markets(markets, publisher, states, options, progress).await;
    for (key, outcome) in outcomes {
        match outcome {
            None => report.markets_not_started += 1,
            Some(Ok(m)) => {
                report.stale += m.stale;
                report.new += m.delivery.new;
                report.changed += m.delivery.changed;
                report.published += m.delivery.published();
                report.unpublished += m.delivery.unpublished;
                report.unchanged += m.unchanged;
                report.state_conflicts += usize::from(m.delivery.state_conflict);
                rejects.extend(m.over_state_bound.into_iter().map(|id| Reject {
                    position: RecordPosition::Line(lines.get(&id).copied().unwrap_or_default()),
                    reason: format!(
                        "the poll state of {key} holds {MAX_STATE_LISTINGS} listings, the most an import brings into one market's state: split the history, or leave out listings long gone"
                    ),
                    source_id: Some(id),
                }));
            }
            Some(Err(e)) => report.failed_markets.push(MarketFailure {
                key,
                error: e.to_string(),
            }),
        }
    }
    // By row, whichever check refused them.
    rejects.sort_by_key(|r| match r.position {
        RecordPosition::Line(n) | RecordPosition::Index(n) => n,
    });
    report.rejected = rejects.len();
    rejects.truncate(MAX_REPORTED_REJECTS);
    report.rejects = rejects;
    Ok(report)
}

/// Delivers each market of a replay ([`replay_market`]), [`MARKETS_IN_FLIGHT`] at once, its
/// events paced at the replay's rate; no market starts once the run's budget is spent.
async fn deliver_markets<P: EventPublisher, S: PollStateStore>(
    markets: Markets,
    publisher: &P,
    states: &S,
    options: ReplayOptions,
    progress: &dyn ReplayProgress,
) -> Outcomes {
    let limiter = options
        .rate_per_second
        .filter(|rate| *rate > 0.0)
        .map(RateLimiter::per_second);
    // At a slow rate, a second's worth a chunk, so the stream sees a steady flow.
    let chunk_size = options
        .rate_per_second
        .filter(|rate| *rate > 0.0)
        .map_or(PUBLISH_CHUNK, |rate| {
            (rate.ceil() as usize).clamp(1, PUBLISH_CHUNK)
        });
    let poll_id = format!(
        "{REPLAY_POLL_ID_PREFIX}{}",
        options.started_at.format(POLL_ID_TIME_FORMAT)
    );
    let started = tokio::time::Instant::now();
    // In file order (by market key), whatever order they end in: the report is the same at
    // every run.
    futures::stream::iter(markets)
        .map(|(key, (listings, moved_away))| {
            let (limiter, poll_id) = (limiter.as_ref(), &poll_id);
            async move {
                if options
                    .run_budget
                    .is_some_and(|budget| started.elapsed() >= budget)
                {
                    return (key, None);
                }
                let rows = listings.len();
                let sender = PacedPublisher {
                    inner: publisher,
                    limiter,
                    chunk_size,
                    progress,
                    sent: AtomicUsize::new(0),
                };
                let outcome = replay_market(
                    &sender,
                    states,
                    &key,
                    listings,
                    moved_away,
                    poll_id,
                    options.started_at,
                )
                .await;
                // Rows not accounted for by published chunks (unchanged, stale, failed)
                // are done too.
                progress.advance(rows.saturating_sub(sender.sent.load(Ordering::Relaxed)));
                (key, Some(outcome))
            }
        })
        .buffered(MARKETS_IN_FLIGHT)
        .collect()
        .await
}

/// A file's rows by the poll state they go to.
#[derive(Debug, Default)]
struct StateGroups {
    /// The newest row of each listing, by the state of its (source, market).
    rows: BTreeMap<String, Vec<Listing>>,
    /// By state: listings of the file whose newest row is in another market's state, with
    /// that row's time (they leave this one: [`MarketRead::moved_away`]).
    moved_away: BTreeMap<String, BTreeMap<String, DateTime<Utc>>>,
    /// Rows older than another row of their listing in the file: not replayed.
    older: usize,
    /// The line of each listing's newest row.
    lines: HashMap<String, usize>,
}

impl StateGroups {
    /// Each state's rows and the listings leaving it, by state key.
    fn into_markets(mut self) -> Markets {
        let mut markets: BTreeMap<_, _> = std::mem::take(&mut self.rows)
            .into_iter()
            .map(|(key, rows)| (key, (rows, BTreeMap::new())))
            .collect();
        for (key, moved) in self.moved_away {
            markets.entry(key).or_default().1 = moved;
        }
        markets
    }
}

/// The rows grouped by the state of their (source, market), each listing's newest row only,
/// across markets: a history that shows a listing moving city (a source re-filing it) puts
/// it in its last city's state alone, and takes it out of the others'. Of two rows at the
/// same instant the later in the file wins (a read's later copy).
fn group_by_state(rows: Vec<(usize, Listing)>) -> StateGroups {
    let (lines, listings): (Vec<usize>, Vec<Listing>) = rows.into_iter().unzip();
    let keys: Vec<String> = listings.iter().map(state_key).collect();
    let mut newest: HashMap<&str, usize> = HashMap::with_capacity(listings.len());
    for (i, l) in listings.iter().enumerate() {
        let entry = newest.entry(l.id.as_str()).or_insert(i);
        if l.observed_at >= listings[*entry].observed_at {
            *entry = i;
        }
    }
    let newest: Vec<usize> = listings
        .iter()
        .map(|l| newest.get(l.id.as_str()).copied().unwrap_or_default())
        .collect();
    let mut groups = StateGroups::default();
    let newest_at: Vec<DateTime<Utc>> = newest.iter().map(|&n| listings[n].observed_at).collect();
    for (i, (listing, key)) in listings.into_iter().zip(keys.iter()).enumerate() {
        let (n, id) = (newest[i], listing.id.as_str().to_owned());
        if n == i {
            groups.lines.insert(id, lines[i]);
            groups.rows.entry(key.clone()).or_default().push(listing);
            continue;
        }
        groups.older += 1;
        if keys[n] != *key {
            groups
                .moved_away
                .entry(key.clone())
                .or_default()
                .insert(id, newest_at[i]);
        }
    }
    groups
}

/// Where the poller keeps the state of a listing's read: `zillow/nashville-tn`, or
/// `zillow/nashville-tn/rent` for a rental.
fn state_key(listing: &Listing) -> String {
    super::run::state_key(
        listing.source.as_str(),
        &listing.market.city_state,
        listing.offer,
    )
}

/// What replaying one market's listings did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketReplay {
    pub delivery: super::deliver::Delivery,
    /// Rows older than what the state already knew of their listing (its last observation,
    /// or its delisting), or than another row of it in the same read: not replayed.
    pub stale: usize,
    /// Listings that changed nothing.
    pub unchanged: usize,
    /// New listings not taken: the state holds [`MAX_STATE_LISTINGS`] already.
    pub over_state_bound: Vec<String>,
}

/// Delivers `listings` (all of the read kept under `key`) as an incomplete read through the
/// poller's detection and publishing, skipping those older than the state's, and taking out
/// of the state the listings `moved_away` to another market's: what [`replay`] does with each
/// (source, market) of a file, and `realty replay-raw` with each raw read. The events' poll
/// id is `<poll_id>-<key>`.
#[allow(clippy::too_many_arguments)]
pub async fn replay_market<P: EventPublisher, S: PollStateStore>(
    publisher: &P,
    states: &S,
    key: &str,
    listings: Vec<Listing>,
    moved_away: BTreeMap<String, DateTime<Utc>>,
    poll_id: &str,
    started_at: DateTime<Utc>,
) -> Result<MarketReplay, PortError> {
    let stored = states.load(key).await?;
    let rows = listings.len();
    // A listing in several rows (a history, in any order) is its newest row, the last of
    // those at the same instant (a read's later copy): detection keeps one row a listing,
    // and an older one must not win for coming later in the file.
    let mut newest: HashMap<&str, (DateTime<Utc>, usize)> = HashMap::new();
    for (i, l) in listings.iter().enumerate() {
        let entry = newest.entry(l.id.as_str()).or_insert((l.observed_at, i));
        if l.observed_at >= entry.0 {
            *entry = (l.observed_at, i);
        }
    }
    let keep: Vec<bool> = listings
        .iter()
        .enumerate()
        .map(|(i, l)| newest.get(l.id.as_str()).is_some_and(|&(_, at)| at == i))
        .collect();
    let fresh: Vec<Listing> = listings
        .into_iter()
        .zip(keep)
        .filter(|(l, newest)| {
            let id = l.id.as_str();
            // A rental kept under its home's id (a state from before rentals had ids of
            // their own) is the same listing.
            let known = stored.state.listings.get(id).or_else(|| {
                let home = l.id.before_rentals_had_their_own()?;
                stored.state.listings.get(home.as_str())
            });
            *newest
                && known.is_none_or(|known| known.observed_at <= l.observed_at)
                // A row from before the listing's delisting is history, not a relisting.
                && stored
                    .state
                    .delisted_at
                    .get(id)
                    .is_none_or(|delisted| l.observed_at > *delisted)
        })
        .map(|(l, _)| l)
        .collect();
    let stale = rows - fresh.len();
    let (fresh, over_state_bound) = within_state_bound(&stored.state, fresh);
    let read = MarketRead {
        listings: fresh,
        // A file is not a complete read of a market: nothing is delisted for being absent.
        complete: false,
        cursor: None,
        moved_away,
        ..MarketRead::default()
    };
    let market_poll_id = super::deliver::market_poll_id(poll_id, key);
    let delivery = deliver(
        publisher,
        states,
        key,
        &stored,
        read,
        &market_poll_id,
        started_at,
        DelistingGuard::default(),
        super::deliver::OnConflict::Merge,
    )
    .await?;
    let unchanged = rows.saturating_sub(stale + over_state_bound.len() + delivery.events());
    Ok(MarketReplay {
        delivery,
        stale,
        unchanged,
        over_state_bound,
    })
}

/// `listings`, less the new ones past the room `state` has left under [`MAX_STATE_LISTINGS`]
/// (in their order), and the ids of those: a state is held whole by the poller, whose memory
/// is sized for that many (before, a 100,000-row import made a state the poller could not
/// load, and stopped its every poll). Listings the state holds already always go through.
fn within_state_bound(state: &PollState, listings: Vec<Listing>) -> (Vec<Listing>, Vec<String>) {
    let mut room = MAX_STATE_LISTINGS.saturating_sub(state.listings.len());
    let mut over = Vec::new();
    let within = listings
        .into_iter()
        .filter(|l| {
            let known = state.listings.contains_key(l.id.as_str())
                || l.id
                    .before_rentals_had_their_own()
                    .is_some_and(|home| state.listings.contains_key(home.as_str()));
            if known || room > 0 {
                room -= usize::from(!known);
                return true;
            }
            over.push(l.id.as_str().to_owned());
            false
        })
        .collect();
    (within, over)
}

/// The publisher, fed in chunks at the replay's rate, telling the progress of each chunk.
struct PacedPublisher<'a, P> {
    inner: &'a P,
    limiter: Option<&'a RateLimiter>,
    chunk_size: usize,
    progress: &'a dyn ReplayProgress,
    /// Events handed over so far (published or failed).
    sent: AtomicUsize,
}

impl<P: EventPublisher> EventPublisher for PacedPublisher<'_, P> {
    async fn publish(&self, events: &[ListingEvent]) -> Result<Vec<PublishFailure>, PortError> {
        let mut failures = Vec::new();
        for (n, chunk) in events.chunks(self.chunk_size).enumerate() {
            if let Some(limiter) = self.limiter {
                limiter
                    .acquire_many(u32::try_from(chunk.len()).unwrap_or(u32::MAX))
                    .await;
            }
            let offset = n * self.chunk_size;
            failures.extend(
                self.inner
                    .publish(chunk)
                    .await?
                    .into_iter()
                    .map(|f| PublishFailure {
                        index: f.index + offset,
                        error: f.error,
                    }),
            );
            self.sent.fetch_add(chunk.len(), Ordering::Relaxed);
            self.progress.advance(chunk.len());
        }
        Ok(failures)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::listing::{EventKind, ListingStatus};
    use crate::poller::memory::{MemoryPollStates as MemoryStates, MemoryStream};
    use crate::sources::file::{write_csv, write_json_lines};
    use chrono::Duration;
    use std::collections::BTreeSet;

    /// The real Nashville page of Zillow, normalised (41 listings).
    pub(crate) fn nashville() -> Vec<Listing> {
        let page = include_bytes!(
            "../../tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
        );
        crate::sources::normalize_file(crate::sources::SourceKind::Zillow, page, at(0))
            .expect("fixture")
            .listings
    }

    pub(crate) fn at(minute: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
            + Duration::minutes(minute)
    }

    pub(crate) fn csv(listings: &[Listing]) -> Vec<u8> {
        let mut out = Vec::new();
        write_csv(listings, &mut out).expect("csv");
        out
    }

    fn options(minute: i64) -> ReplayOptions {
        ReplayOptions {
            rate_per_second: None,
            started_at: at(minute),
            run_budget: None,
        }
    }

    #[tokio::test]
    async fn a_second_replay_of_the_same_file_publishes_nothing() {
        let listings = nashville();
        assert!(listings.len() > 30, "{}", listings.len());
        let file = csv(&listings);
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        let first = replay(&file, &stream, &states, options(10), &())
            .await
            .expect("replay");
        assert_eq!(first.rows, listings.len());
        assert_eq!(first.rejected, 0);
        assert_eq!(first.published, listings.len());
        assert_eq!(first.new, listings.len());
        assert!(first.finished());
        let sent = stream.taken();
        assert_eq!(sent.len(), listings.len());
        assert!(sent.iter().all(|e| e.kind == EventKind::New));
        // Kept where the poller keeps Nashville's Zillow state.
        assert!(states.state("zillow/nashville-tn").is_some());

        let second = replay(&file, &stream, &states, options(20), &())
            .await
            .expect("replay");
        assert_eq!(second.published, 0);
        assert_eq!(second.unchanged, listings.len());
        assert!(stream.taken().is_empty());
    }

    /// A history export, newest row first: the newest row of each listing is what the
    /// state and the stream get, whatever the order, and the older rows count as stale.
    #[tokio::test]
    async fn a_listing_in_several_rows_is_its_newest_row() {
        let listings = nashville();
        let mut newer = listings[0].clone();
        newer.observed_at = listings[0].observed_at + Duration::hours(1);
        newer.price_minor -= 500_000;
        for rows in [
            vec![newer.clone(), listings[0].clone()],
            vec![listings[0].clone(), newer.clone()],
        ] {
            let (stream, states) = (MemoryStream::default(), MemoryStates::default());
            let report = replay(&csv(&rows), &stream, &states, options(120), &())
                .await
                .expect("replay");
            assert_eq!((report.published, report.stale), (1, 1), "{report:?}");
            let sent = stream.taken();
            assert_eq!(sent[0].listing.price_minor, newer.price_minor);
            let state = states.state("zillow/nashville-tn").expect("a state");
            assert_eq!(
                state.listings[newer.id.as_str()].price_minor,
                newer.price_minor
            );
        }
    }

    /// An older file holding a listing delisted since does not put it back on the market:
    /// its row is from before the delisting (stale), and the next poll has nothing to
    /// delist again.
    #[tokio::test]
    async fn a_row_from_before_a_listing_was_delisted_is_stale() {
        use crate::poller::deliver::deliver;
        let listings = nashville();
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        let key = "zillow/nashville-tn";
        replay(&csv(&listings[..3]), &stream, &states, options(10), &())
            .await
            .expect("replay");
        // A complete poll without the first listing delists it.
        let read = MarketRead {
            listings: listings[1..3].to_vec(),
            complete: true,
            ..MarketRead::default()
        };
        let stored = states.load(key).await.expect("load");
        let guard = DelistingGuard { max_share: 1.0 };
        deliver(
            &stream,
            &states,
            key,
            &stored,
            read,
            "poll",
            at(20),
            guard,
            crate::poller::deliver::OnConflict::Yield,
        )
        .await
        .expect("delivered");
        stream.taken();
        let report = replay(&csv(&listings[..3]), &stream, &states, options(30), &())
            .await
            .expect("replay");
        assert_eq!((report.published, report.stale), (0, 1), "{report:?}");
        assert!(stream.taken().is_empty());
        let state = states.state(key).expect("a state");
        assert!(!state.listings.contains_key(listings[0].id.as_str()));
        // Seen after its delisting, it is back on the market.
        let mut relisted = listings[0].clone();
        relisted.observed_at = at(25);
        let report = replay(&csv(&[relisted]), &stream, &states, options(30), &())
            .await
            .expect("replay");
        assert_eq!((report.published, report.new), (1, 1), "{report:?}");
    }

    /// `listing` re-filed in Antioch, TN, observed at `minute`.
    pub(crate) fn in_antioch(listing: &Listing, minute: i64) -> Listing {
        let mut moved = listing.clone();
        moved.address.city = "Antioch".into();
        moved.market = crate::listing::MarketKey::for_address(&moved.address).expect("a market");
        moved.observed_at = at(minute);
        moved
    }

    /// A history showing a listing moving from Nashville to Antioch, in any order, after a
    /// poll kept it in Nashville's state: its newest row puts it in Antioch's state alone,
    /// and the next complete read of Nashville, which no longer lists it, delists nothing
    /// (before, both states kept it and that read delisted it).
    #[tokio::test]
    async fn a_history_moving_a_listing_leaves_it_in_its_last_market_s_state_alone() {
        let listings = nashville();
        let moved = in_antioch(&listings[0], 30);
        for rows in [
            vec![listings[0].clone(), moved.clone()],
            vec![moved.clone(), listings[0].clone()],
        ] {
            let (stream, states) = (MemoryStream::default(), MemoryStates::default());
            replay(&csv(&listings[..3]), &stream, &states, options(10), &())
                .await
                .expect("replay");
            stream.taken();
            let report = replay(&csv(&rows), &stream, &states, options(40), &())
                .await
                .expect("replay");
            assert_eq!((report.new, report.stale, report.markets), (1, 1, 2));
            let sent = stream.taken();
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].listing.market.city_state, "antioch-tn");
            let (old, new) = ("zillow/nashville-tn", "zillow/antioch-tn");
            let id = moved.id.as_str();
            assert!(!states.state(old).expect("state").listings.contains_key(id));
            assert!(states.state(new).expect("state").listings.contains_key(id));
            // Nashville's next complete read, without it: nothing delisted.
            let stored = states.load(old).await.expect("load");
            let read = MarketRead {
                listings: listings[1..3].to_vec(),
                complete: true,
                ..MarketRead::default()
            };
            let guard = DelistingGuard { max_share: 1.0 };
            let delivery = deliver(
                &stream,
                &states,
                old,
                &stored,
                read,
                "poll",
                at(50),
                guard,
                crate::poller::deliver::OnConflict::Yield,
            )
            .await
            .expect("delivered");
            assert_eq!(delivery.events(), 0, "{:?}", stream.taken());
        }
    }

    /// A row older than what Nashville's state holds of the listing does not take it out.
    #[tokio::test]
    async fn a_move_older_than_the_state_s_listing_leaves_it() {
        let listings = nashville();
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        let mut seen_later = listings[0].clone();
        seen_later.observed_at = at(35);
        replay(&csv(&[seen_later]), &stream, &states, options(36), &())
            .await
            .expect("replay");
        let rows = [listings[0].clone(), in_antioch(&listings[0], 30)];
        replay(&csv(&rows), &stream, &states, options(40), &())
            .await
            .expect("replay");
        let kept = states.state("zillow/nashville-tn").expect("state");
        assert!(kept.listings.contains_key(listings[0].id.as_str()));
    }

    /// A state one listing short of [`MAX_STATE_LISTINGS`]: an import brings in one new
    /// listing more, and rejects the others by line, saying why; a listing the state holds
    /// already goes through (a change), and the state never passes the bound.
    #[tokio::test]
    async fn an_import_never_grows_a_state_past_its_bound() {
        let listings = nashville();
        let key = "zillow/nashville-tn";
        let filler = |i: usize| {
            let mut l = listings[0].clone();
            l.id = crate::listing::ListingId::new(
                crate::listing::ListingSource::Zillow,
                &(1_000_000 + i).to_string(),
            )
            .expect("id");
            l
        };
        let mut held: PollState = PollState::default();
        for i in 0..MAX_STATE_LISTINGS - 2 {
            let l = filler(i);
            held.listings.insert(l.id.as_str().to_owned(), l);
        }
        let known = &listings[1];
        held.listings
            .insert(known.id.as_str().to_owned(), known.clone());
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        assert!(states.save(key, &held, None).await.expect("saved"));
        let mut cut = known.clone();
        cut.price_minor -= 1_000_000;
        cut.observed_at = at(5);
        // Line 2: a listing the state holds; lines 3-5: three new ones.
        let rows = [
            cut,
            listings[2].clone(),
            listings[3].clone(),
            listings[4].clone(),
        ];
        let report = replay(&csv(&rows), &stream, &states, options(10), &())
            .await
            .expect("replay");
        assert_eq!((report.changed, report.new, report.rejected), (1, 1, 2));
        let lines: Vec<String> = report
            .rejects
            .iter()
            .map(|r| r.position.to_string())
            .collect();
        assert_eq!(lines, ["line 4", "line 5"]);
        assert!(
            report.rejects[0].reason.contains("holds 50000 listings"),
            "{}",
            report.rejects[0]
        );
        assert_eq!(
            states.state(key).expect("state").listings.len(),
            MAX_STATE_LISTINGS
        );
        assert_eq!(stream.taken().len(), 2);
    }

    #[tokio::test]
    async fn the_json_lines_of_realty_normalize_are_an_export() {
        let listings = nashville();
        let mut file = Vec::new();
        write_json_lines(&listings, &mut file).expect("json lines");
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        let report = replay(&file, &stream, &states, options(10), &())
            .await
            .expect("replay");
        assert_eq!(report.published, listings.len());
        // The same listings as CSV change nothing.
        let again = replay(&csv(&listings), &stream, &states, options(20), &())
            .await
            .expect("replay");
        assert_eq!((again.published, again.unchanged), (0, listings.len()));
    }

    #[tokio::test]
    async fn listings_outside_the_us_are_replayed_into_their_own_market() {
        let mut listings = nashville();
        let moroccan = &mut listings[1];
        moroccan.address.country = crate::listing::CountryCode::MA;
        moroccan.address.state = String::new();
        moroccan.currency = "MAD".to_owned();
        moroccan.market =
            crate::listing::MarketKey::for_address(&moroccan.address).expect("a market");
        let mut file = Vec::new();
        write_json_lines(&listings[..3], &mut file).expect("json lines");
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        let report = replay(&file, &stream, &states, options(10), &())
            .await
            .expect("replay");
        assert_eq!((report.published, report.rejected), (3, 0), "{report:?}");
        let markets: Vec<String> = stream
            .taken()
            .iter()
            .map(|e| e.listing.market.city_state.clone())
            .collect();
        assert!(markets.contains(&"ma/nashville".to_owned()), "{markets:?}");
    }

    #[tokio::test]
    async fn bad_rows_are_reported_by_row_and_the_good_ones_published() {
        let listings = nashville();
        let text = String::from_utf8(csv(&listings[..5])).expect("utf-8");
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        // Line 3 (the second listing): a price that is not a number.
        let price = listings[1].price_minor.to_string();
        lines[2] = lines[2].replacen(&format!(",{price},"), ",call for price,", 1);
        // Line 5: observed an hour after the replay runs.
        let observed = listings[3]
            .observed_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let future = (at(70)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        lines[4] = lines[4].replace(&observed, &future);
        // Line 7: not a CSV row of the export at all.
        lines.push("garbage".into());
        let file = lines.join("\n").into_bytes();
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        let report = replay(&file, &stream, &states, options(10), &())
            .await
            .expect("replay");
        assert_eq!(report.rows, 6);
        assert_eq!(report.published, 3);
        assert_eq!(report.rejected, 3);
        let rows: Vec<String> = report
            .rejects
            .iter()
            .map(|r| r.position.to_string())
            .collect();
        assert_eq!(rows, ["line 3", "line 5", "line 7"], "{:?}", report.rejects);
        assert!(
            report.rejects[0].reason.contains("price_minor"),
            "{}",
            report.rejects[0]
        );
        assert!(
            report.rejects[1].reason.contains("clock skew"),
            "{}",
            report.rejects[1]
        );
    }

    #[tokio::test]
    async fn a_file_without_a_listing_infers_no_delisting() {
        let listings = nashville();
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        replay(&csv(&listings), &stream, &states, options(10), &())
            .await
            .expect("replay");
        stream.taken();
        // A later export: one listing cut by 5 %, one marked sold.
        let mut cut = listings[0].clone();
        cut.price_minor = cut.price_minor / 100 * 95;
        cut.observed_at = at(30);
        let mut sold = listings[1].clone();
        sold.status = ListingStatus::Sold;
        sold.observed_at = at(30);
        // The rest but the last two as they were: few enough missing that a complete read
        // would delist them at once (under the delisting guard's share).
        let mut later = vec![cut.clone(), sold];
        later.extend_from_slice(&listings[2..listings.len() - 2]);
        let report = replay(&csv(&later), &stream, &states, options(40), &())
            .await
            .expect("replay");
        assert_eq!((report.changed, report.published), (2, 2));
        assert_eq!(report.unchanged, listings.len() - 4);
        let sent = stream.taken();
        assert!(
            sent.iter()
                .all(|e| matches!(e.kind, EventKind::Changed { .. })),
            "{sent:?}"
        );
        let kept = states.state("zillow/nashville-tn").expect("a state");
        assert_eq!(kept.listings.len(), listings.len());
        assert_eq!(kept.listings[cut.id.as_str()].price_minor, cut.price_minor);
    }

    #[tokio::test]
    async fn an_older_export_does_not_move_a_listing_back() {
        let listings = nashville();
        let mut newer = listings[0].clone();
        newer.price_minor += 1_000_000;
        newer.observed_at = at(30);
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        replay(&csv(&[newer]), &stream, &states, options(40), &())
            .await
            .expect("replay");
        stream.taken();
        let report = replay(&csv(&listings[..1]), &stream, &states, options(50), &())
            .await
            .expect("replay");
        assert_eq!((report.stale, report.published), (1, 0));
        assert!(stream.taken().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn events_the_stream_refused_are_sent_by_the_next_replay() {
        let listings = nashville();
        let file = csv(&listings);
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        // One early in the file and two in later chunks, to check the chunks' indexes.
        let refused: BTreeSet<String> = [0, 15, 33]
            .iter()
            .map(|&i| listings[i].id.as_str().to_owned())
            .collect();
        *stream.refuse.lock().expect("lock") = refused.clone();
        let paced = ReplayOptions {
            rate_per_second: Some(10.0),
            ..options(10)
        };
        let first = replay(&file, &stream, &states, paced, &())
            .await
            .expect("replay");
        assert_eq!(first.unpublished, 3);
        assert_eq!(first.published, listings.len() - 3);
        assert!(!first.finished());
        let sent: BTreeSet<String> = stream
            .taken()
            .iter()
            .map(|e| e.listing.id.as_str().to_owned())
            .collect();
        assert!(sent.is_disjoint(&refused));
        stream.refuse.lock().expect("lock").clear();
        let second = replay(&file, &stream, &states, options(20), &())
            .await
            .expect("replay");
        assert_eq!(second.published, 3);
        let resent: BTreeSet<String> = stream
            .taken()
            .iter()
            .map(|e| e.listing.id.as_str().to_owned())
            .collect();
        assert_eq!(resent, refused);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_paces_the_chunks_and_progress_counts_every_row() {
        struct Count(AtomicUsize);
        impl ReplayProgress for Count {
            fn advance(&self, rows: usize) {
                self.0.fetch_add(rows, Ordering::Relaxed);
            }
        }
        let listings = nashville();
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        let progress = Count(AtomicUsize::new(0));
        let paced = ReplayOptions {
            rate_per_second: Some(10.0),
            ..options(10)
        };
        let mut file = csv(&listings);
        file.extend_from_slice(b"not,a,row\n");
        let started = tokio::time::Instant::now();
        let report = replay(&file, &stream, &states, paced, &progress)
            .await
            .expect("replay");
        assert_eq!(report.published, listings.len());
        assert_eq!(progress.0.load(Ordering::Relaxed), listings.len() + 1);
        // Ten a call, one call a second.
        let calls = listings.len().div_ceil(10);
        assert_eq!(stream.calls.load(Ordering::Relaxed), calls);
        let elapsed = started.elapsed();
        assert!(
            elapsed >= std::time::Duration::from_secs(calls as u64 - 1),
            "{elapsed:?}"
        );
        // Unpaced: PutRecords-sized calls.
        stream.calls.store(0, Ordering::Relaxed);
        let mut cut = listings.clone();
        for l in &mut cut {
            l.price_minor -= 100_000;
            l.observed_at = at(15);
        }
        let report = replay(&csv(&cut), &stream, &states, options(20), &())
            .await
            .expect("replay");
        assert_eq!(report.changed, listings.len());
        assert_eq!(stream.calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn rentals_are_replayed_against_the_rental_state() {
        let mut rentals = nashville();
        rentals.truncate(3);
        for l in &mut rentals {
            l.offer = crate::listing::Offer::Rent;
            l.price_minor = 250_000;
        }
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        replay(&csv(&rentals), &stream, &states, options(10), &())
            .await
            .expect("replay");
        // Where the poller keeps the market's rentals, apart from its sale listings.
        assert_eq!(
            states
                .state("zillow/nashville-tn/rent")
                .map(|s| s.listings.len()),
            Some(3)
        );
        assert!(states.state("zillow/nashville-tn").is_none());
    }

    #[tokio::test]
    async fn a_file_that_is_not_an_export_is_refused_whole() {
        let (stream, states) = (MemoryStream::default(), MemoryStates::default());
        let page = include_bytes!(
            "../../tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
        );
        let error = replay(page, &stream, &states, options(10), &())
            .await
            .expect_err("an API page");
        assert!(error.to_string().contains("JSON"), "{error}");
        assert_eq!(stream.calls.load(Ordering::Relaxed), 0);
    }
}
