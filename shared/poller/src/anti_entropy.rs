//! The anti-entropy pass: what the poller believes is on the market (its poll states) against
//! what the metrics function holds (the listing table), the differences published as ordinary
//! listing events. A lost event (a metrics batch that failed before its journal, one
//! discarded, a record past the stream's retention) has no later event to correct it while
//! its listing does not change again; the pass is that event (docs/metrics.md, "Anti-entropy").
//!
//! It infers nothing without evidence: a state still reading its baseline is skipped whole, a
//! listing held as an unconfirmed delisting is skipped, a delisting is republished only for a
//! listing the state records as delisted by the poller ([`PollState::delisted_at`]) and the
//! table still holds on the market in that same state's market, and nothing is republished
//! over a table entry observed later than the state's. Events go through the stream, so the
//! metrics function applies them exactly once like any other; one that repeats an event
//! still in the stream changes no figure (an equal state contributes and counts nothing).

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::detect::PollState;
use super::ports::{EventPublisher, PollStateStore};
use super::run::state_key;
use realty_model::listing::ListingEvent;
use realty_model::ports::PortError;
use realty_model::state::ListingState;
use realty_model::state::{ListingStore, StoredStates};

/// Most listings one scheduled pass compares (and so publishes at most): hourly, a day's
/// passes cover 480,000 listings, every market of a deployment of that size within the day.
pub const LISTINGS_PER_PASS: usize = 20_000;
/// Most poll states one pass reads (states still reading their baseline or empty cost no
/// listing of the budget, but each is an object read).
pub const STATES_PER_PASS: usize = 500;
/// Listing ids asked of the table at once: one BatchGetItem's 100 keys (the adapter splits
/// and retries by the same bound).
const TABLE_READ_CHUNK: usize = 100;
/// Events handed to the publisher at once: one PutRecords call's 500 entries (the adapter
/// bounds the call's bytes).
const PUBLISH_CHUNK: usize = 500;
/// Divergences a report keeps whole as examples (the rest are counted).
pub const MAX_EXAMPLES: usize = 20;

/// How a listing's entry in the table differs from its poll state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DivergenceKind {
    /// The state holds the listing; the table lacks it or holds it delisted (its `new` event,
    /// or its return, was lost). Published as a baseline `new` event: inventory, not news.
    Missing,
    /// Both hold it, the table at other tracked values (a lost `changed` event). Published as
    /// the change from the table's values to the state's.
    Behind,
    /// The poller delisted it; the table holds it on the market (a lost `delisted` event).
    /// Published as its delisting at the time the poller delisted it.
    NotDelisted,
}

impl DivergenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Behind => "behind",
            Self::NotDelisted => "not_delisted",
        }
    }
}

/// One listing whose table entry differs from its poll state, and the event that corrects it.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    pub kind: DivergenceKind,
    /// The poll state it was found in (`zillow/nashville-tn`).
    pub state_key: String,
    pub event: ListingEvent,
}

/// Whether a state is evidence of what is on the market: not while its reads record a
/// baseline (its listings are being found, not yet known to be the market).
pub fn settled(state: &PollState) -> bool {
    state.baseline_since.is_none()
}

/// The ids a state speaks of (those it holds and those it delisted), in order, after `after`
/// (exclusive), at most `limit`.
pub fn page_ids<'a>(state: &'a PollState, after: Option<&str>, limit: usize) -> Vec<&'a str> {
    let held = state.listings.keys().map(String::as_str);
    let delisted = state
        .delisted_at
        .keys()
        .map(String::as_str)
        .filter(|id| !state.listings.contains_key(*id));
    let mut ids: Vec<&str> = held
        .chain(delisted)
        .filter(|id| after.is_none_or(|a| *id > a))
        .collect();
    ids.sort_unstable();
    ids.truncate(limit);
    ids
}

/// How the table's entry of `id` (`stored`) differs from the state kept under `key`, as the
/// event that corrects it; `None` when it does not, or when the state is no evidence.
pub fn diverges(
    key: &str,
    state: &PollState,
    id: &str,
    stored: Option<&ListingState>,
    poll_id: &str,
) -> Option<Divergence> {
    let found = |kind, event| {
        Some(Divergence {
            kind,
            state_key: key.to_owned(),
            event,
        })
    };
    if let Some(held) = state.listings.get(id) {
        // Held while the reads miss it: gone or not, the poller does not know yet.
        if state.unconfirmed_delistings.contains(id) {
            return None;
        }
        return match stored {
            None => found(
                DivergenceKind::Missing,
                ListingEvent::baseline_listing(held.clone(), poll_id),
            ),
            // Observed later than the state's: another writer (an import) is ahead of it.
            Some(s) if s.version.observed_at > held.observed_at => None,
            Some(s) if s.delisted => found(
                DivergenceKind::Missing,
                ListingEvent::baseline_listing(held.clone(), poll_id),
            ),
            Some(s) => ListingEvent::changed(&s.listing, held.clone(), poll_id)
                .and_then(|event| found(DivergenceKind::Behind, event)),
        };
    }
    let delisted_at = *state.delisted_at.get(id)?;
    let s = stored?;
    let listing = &s.listing;
    // In another state now (it moved market, source or offer), or seen since the delisting.
    if s.delisted
        || state_key(
            listing.source.as_str(),
            &listing.market.city_state,
            listing.offer,
        ) != key
        || s.version.observed_at >= delisted_at
    {
        return None;
    }
    found(
        DivergenceKind::NotDelisted,
        ListingEvent::delisted(listing.clone(), delisted_at, poll_id),
    )
}

/// Where the pass goes on from: the state and the last listing id compared in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AntiEntropyCursor {
    /// The state to go on in (`None`: from the first).
    #[serde(default)]
    pub state_key: Option<String>,
    /// The last listing compared in it (`None`: from its first).
    #[serde(default)]
    pub after_listing: Option<String>,
    /// When the round under way began (its first pass).
    #[serde(default)]
    pub round_started: Option<DateTime<Utc>>,
    /// When the last whole round (every state compared) ended.
    #[serde(default)]
    pub last_round_ended: Option<DateTime<Utc>>,
}

/// The poll states as a whole, and where the pass keeps its cursor (S3 in AWS, beside them).
pub trait AntiEntropyStore {
    /// The key of every poll state, sorted.
    fn state_keys(&self) -> impl Future<Output = Result<Vec<String>, PortError>>;
    fn load_cursor(&self) -> impl Future<Output = Result<AntiEntropyCursor, PortError>>;
    fn save_cursor(
        &self,
        cursor: &AntiEntropyCursor,
    ) -> impl Future<Output = Result<(), PortError>>;
}

/// What a pass (or a check) found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AntiEntropyReport {
    /// Poll states read.
    pub states: usize,
    /// States skipped as no evidence (reading their baseline).
    pub unsettled_states: usize,
    /// Listings compared with the table.
    pub compared: usize,
    /// Divergences found, by kind.
    pub divergences: BTreeMap<DivergenceKind, usize>,
    /// Events published (a check publishes none).
    pub published: usize,
    /// Events the stream refused (found again by the next round).
    pub unpublished: usize,
    /// Whether the pass reached the last state (the round ended).
    pub round_ended: bool,
    /// With `round_ended`, how long the round took (from its first pass to its last): every
    /// listing is compared once a round, so a lost event is corrected within it.
    pub round_seconds: Option<i64>,
    /// The first [`MAX_EXAMPLES`] divergences: (kind, state, listing id).
    pub examples: Vec<(DivergenceKind, String, String)>,
}

impl AntiEntropyReport {
    /// Every divergence found.
    pub fn total(&self) -> usize {
        self.divergences.values().sum()
    }

    fn record(&mut self, found: &[Divergence]) {
        for d in found {
            *self.divergences.entry(d.kind).or_insert(0) += 1;
            if self.examples.len() < MAX_EXAMPLES {
                self.examples.push((
                    d.kind,
                    d.state_key.clone(),
                    d.event.listing.id.as_str().to_owned(),
                ));
            }
        }
    }
}

/// The listings of `ids` in the table, read [`TABLE_READ_CHUNK`] at a time.
async fn table_entries<L: ListingStore>(
    listings: &L,
    ids: &[&str],
) -> Result<StoredStates, PortError> {
    let mut out = StoredStates::default();
    for chunk in ids.chunks(TABLE_READ_CHUNK) {
        out.extend(listings.get_states(chunk).await?);
    }
    Ok(out)
}

/// Compares up to `limit` listings of the state under `key` after `after`; the divergences
/// and the last id compared (`None`: none left in the state).
async fn compare_page<L: ListingStore>(
    listings: &L,
    key: &str,
    state: &PollState,
    after: Option<&str>,
    limit: usize,
    poll_id: &str,
) -> Result<(Vec<Divergence>, Vec<String>), PortError> {
    let ids = page_ids(state, after, limit);
    let stored = table_entries(listings, &ids).await?;
    let found = ids
        .iter()
        .filter_map(|id| diverges(key, state, id, stored.get(*id).map(|s| &**s), poll_id))
        .collect();
    Ok((found, ids.into_iter().map(str::to_owned).collect()))
}

/// Every divergence between the poll states (those of market `only`, a city-state, or all)
/// and the table, counted, nothing published: `realty reconcile --check`. Reads every state
/// and every listing they name.
pub async fn check<S, L>(
    states: &S,
    listings: &L,
    only: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AntiEntropyReport, PortError>
where
    S: PollStateStore + AntiEntropyStore,
    L: ListingStore,
{
    let poll_id = pass_id(now);
    let mut report = AntiEntropyReport {
        round_ended: true,
        ..AntiEntropyReport::default()
    };
    for key in states.state_keys().await? {
        // `zillow/nashville-tn`, `zillow/nashville-tn/rent`: the market is the second part.
        if only.is_some_and(|m| key.split('/').nth(1) != Some(m)) {
            continue;
        }
        let state = states.load(&key).await?.state;
        report.states += 1;
        if !settled(&state) {
            report.unsettled_states += 1;
            continue;
        }
        let mut after: Option<String> = None;
        loop {
            let (found, ids) = compare_page(
                listings,
                &key,
                &state,
                after.as_deref(),
                LISTINGS_PER_PASS,
                &poll_id,
            )
            .await?;
            report.compared += ids.len();
            report.record(&found);
            match ids.last() {
                Some(last) if ids.len() == LISTINGS_PER_PASS => after = Some(last.clone()),
                _ => break,
            }
        }
    }
    Ok(report)
}

/// The pass's EMF metrics: what it compared, found by kind, and published, and how long the
/// round took when it ended (the time within which a lost event is corrected).
pub fn record_metrics(report: &AntiEntropyReport) {
    metrics::counter!("anti_entropy_states").increment(report.states as u64);
    metrics::counter!("anti_entropy_compared").increment(report.compared as u64);
    metrics::counter!("anti_entropy_differences").increment(report.total() as u64);
    for kind in [
        DivergenceKind::Missing,
        DivergenceKind::Behind,
        DivergenceKind::NotDelisted,
    ] {
        let found = report.divergences.get(&kind).copied().unwrap_or(0);
        metrics::counter!("anti_entropy_differences_by_kind", "kind" => kind.as_str())
            .increment(found as u64);
    }
    metrics::counter!("anti_entropy_published").increment(report.published as u64);
    metrics::counter!("anti_entropy_unpublished").increment(report.unpublished as u64);
    if let Some(seconds) = report.round_seconds {
        metrics::gauge!("anti_entropy_round_hours").set(seconds as f64 / 3600.0);
    }
}

/// The poll id of a pass's events: `anti-entropy-<time>` (the lake tells them apart by it).
pub fn pass_id(now: DateTime<Utc>) -> String {
    format!("anti-entropy-{}", now.format("%Y%m%dT%H%M%SZ"))
}

/// One scheduled pass: from the saved cursor, compares at most `limit` listings (and reads
/// at most [`STATES_PER_PASS`] states), publishes the corrections, then saves the cursor.
/// A publish call that fails leaves the cursor where it was: the next pass does the same
/// listings again.
pub async fn run_pass<S, L, P>(
    states: &S,
    listings: &L,
    publisher: &P,
    limit: usize,
    now: DateTime<Utc>,
) -> Result<AntiEntropyReport, PortError>
where
    S: PollStateStore + AntiEntropyStore,
    L: ListingStore,
    P: EventPublisher,
{
    let poll_id = pass_id(now);
    let mut cursor = states.load_cursor().await?;
    let keys = states.state_keys().await?;
    let start = cursor
        .state_key
        .as_deref()
        .map_or(0, |k| keys.partition_point(|key| key.as_str() < k));
    // A cursor in a state that is gone since goes on from the next one.
    if keys.get(start).map(String::as_str) != cursor.state_key.as_deref() {
        cursor.after_listing = None;
    }
    cursor.round_started.get_or_insert(now);
    let mut report = AntiEntropyReport::default();
    let mut found = Vec::new();
    let mut next = (None, None);
    let mut left = limit.max(1);
    for key in keys.iter().skip(start).take(STATES_PER_PASS) {
        let after = cursor
            .after_listing
            .take()
            .filter(|_| cursor.state_key.as_deref() == Some(key.as_str()));
        let state = states.load(key).await?.state;
        report.states += 1;
        if !settled(&state) {
            report.unsettled_states += 1;
            continue;
        }
        let (divergences, ids) =
            compare_page(listings, key, &state, after.as_deref(), left, &poll_id).await?;
        report.compared += ids.len();
        left -= ids.len();
        report.record(&divergences);
        found.extend(divergences.into_iter().map(|d| d.event));
        if left == 0 {
            // Maybe more in this state: the next pass goes on after the last compared.
            next = (Some(key.clone()), ids.last().cloned());
            break;
        }
    }
    if next.0.is_none() && start + report.states < keys.len() {
        next = (keys.get(start + report.states).cloned(), None);
    }
    publish(publisher, found, &mut report).await?;
    report.round_ended = next.0.is_none();
    if report.round_ended {
        report.round_seconds = cursor.round_started.map(|at| (now - at).num_seconds());
    }
    cursor = if report.round_ended {
        AntiEntropyCursor {
            last_round_ended: Some(now),
            ..AntiEntropyCursor::default()
        }
    } else {
        AntiEntropyCursor {
            state_key: next.0,
            after_listing: next.1,
            ..cursor
        }
    };
    states.save_cursor(&cursor).await?;
    Ok(report)
}

/// Publishes the corrections [`PUBLISH_CHUNK`] at a time, counting what the stream took and
/// what it refused (the refused are found again next round).
async fn publish<P: EventPublisher>(
    publisher: &P,
    found: Vec<ListingEvent>,
    report: &mut AntiEntropyReport,
) -> Result<(), PortError> {
    for events in found.chunks(PUBLISH_CHUNK) {
        let failures = publisher.publish(events).await?;
        for failure in &failures {
            if let Some(event) = events.get(failure.index) {
                tracing::warn!(listing = %event.listing.id, error = %failure.error, "anti-entropy event not published");
            }
        }
        report.unpublished += failures.len();
        report.published += events.len().saturating_sub(failures.len());
    }
    Ok(())
}

#[cfg(test)]
#[path = "anti_entropy_tests.rs"]
mod tests;
