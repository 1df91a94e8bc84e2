//! Replay: an export (CSV or JSON lines, [`realty_sources::file`]) sent through the poller's
//! own change detection and publishing ([`deliver`]), against the poller's stored state, so
//! that a listing the poller (or an earlier replay) already sent is not sent again.
//!
//! The rows are grouped by (source, market) — the key the poller keeps its state under — and
//! each group is delivered as an *incomplete* read: a file is not a complete read of a
//! market, so a listing absent from it is never taken as delisted. A row that says a listing
//! is sold or off the market is a change like any other and is published as such. A row
//! older than what the state already knows of its listing is skipped (stale): replaying an
//! old export never moves a listing back in time.

use realty_model::listing::{POLL_ID_TIME_FORMAT, REPLAY_POLL_ID_PREFIX};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;

use super::deliver::deliver;
use super::detect::{DelistingGuard, MAX_STATE_LISTINGS, MarketRead, PollState};
use super::fetch::RateLimiter;
use super::ports::{EventPublisher, PollStateStore, PublishFailure};
use realty_model::listing::{Listing, ListingEvent, time_window_violation};
use realty_model::ports::PortError;
use realty_sources::file::parse_export_rows;
use realty_sources::{RecordPosition, Reject, SourceError};

/// Largest export replayed at once (the whole file is held in memory to be parsed).
pub const MAX_REPLAY_BYTES: u64 = 256 * 1024 * 1024;

/// Rejects kept (with their row and reason) for the report; the others are only counted.
pub const MAX_REPORTED_REJECTS: usize = 100;

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
    /// The encoding the file was read in ([`realty_sources::file::export_text`]).
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
        history: true,
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
#[path = "replay_tests.rs"]
pub(crate) mod tests;
