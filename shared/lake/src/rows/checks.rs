//! The lake's data-quality checks (docs/lake.md, "Data quality"), as dbt tests would state
//! them: unique and not-null keys, accepted values, the daily counts against a recomputation
//! from the events, the market table against `market_daily`, and freshness. Each check is
//! a pure function over the rows; `realty-lake` reads the tables and runs them after every
//! curator run and for `realty check`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use super::tables::{EventRow, ListingRow, MarketDayRow, event_order};
use realty_metrics::aggregate::MarketFigures;
use realty_model::listing::ListingStatus;

/// Accepted `status` values (docs/events.md).
pub const STATUSES: &[&str] = &{
    let mut names = [""; ListingStatus::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = ListingStatus::ALL[i].as_str();
        i += 1;
    }
    names
};
pub const OFFERS: &[&str] = &["sale", "rent"];
pub const PROPERTY_TYPES: &[&str] = &[
    "single_family",
    "condo",
    "townhouse",
    "multi_family",
    "land",
    "apartment",
    "manufactured",
    "other",
];
pub const KINDS: &[&str] = &["new", "changed", "delisted"];
/// The currencies a source of this project prices in.
pub const CURRENCIES: &[&str] = &["USD", "CAD", "EUR", "GBP", "MAD"];
/// Failing rows named in a check's result at most.
const EXAMPLES: usize = 5;
/// A median in the market table may differ from `market_daily`'s by this share (the
/// histogram's bound, docs/metrics.md).
pub const MEDIAN_TOLERANCE: f64 = 0.01;

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// `listing_events.unique_event_id`, ...
    pub name: String,
    pub passed: bool,
    /// Rows (or markets) that fail it.
    pub failures: usize,
    /// A few of them, to start looking.
    pub examples: Vec<String>,
}

impl CheckResult {
    fn of(name: &str, failing: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            passed: failing.is_empty(),
            failures: failing.len(),
            examples: failing.into_iter().take(EXAMPLES).collect(),
        }
    }
}

/// The tables' rows a run of the checks reads.
#[derive(Debug, Clone, Default)]
pub struct LakeRows {
    pub events: Vec<EventRow>,
    pub listings: Vec<ListingRow>,
    pub days: Vec<MarketDayRow>,
}

/// What the checks compare the lake with, outside it.
#[derive(Debug, Clone, Default)]
pub struct Outside {
    /// The live figures of each watched market in the market table, by market.
    pub live: BTreeMap<String, MarketFigures>,
    /// The last successful poll of each watched market (any source), and the longest the
    /// market may go without one.
    pub last_polls: BTreeMap<String, (Option<DateTime<Utc>>, Duration)>,
    /// How far `listing_events` has read Firehose's deliveries (the curator's position):
    /// the days it has not read to their end are not compared. `None`: every day before
    /// today.
    pub events_through: Option<DateTime<Utc>>,
}

/// Events delivered this long after a day's end may still be the day's (Firehose's buffer,
/// a slow write): the day is compared once `events_through` is past its end by this much.
pub const LATE_DELIVERY: Duration = Duration::minutes(15);

/// Every check, in a stable order, over rows read whole (the curator feeds the events one
/// day at a time instead: [`EventChecks`], [`run_checks_with`]).
pub fn run_checks(rows: &LakeRows, outside: &Outside, now: DateTime<Utc>) -> Vec<CheckResult> {
    let mut events = EventChecks::default();
    for day in by_day(&rows.events) {
        events.add_day(&day);
    }
    run_checks_with(events, &rows.listings, &rows.days, outside, now)
}

/// Every check, in a stable order, with the events' part already fed to `events`.
pub fn run_checks_with(
    events: EventChecks,
    listings: &[ListingRow],
    days: &[MarketDayRow],
    outside: &Outside,
    now: DateTime<Utc>,
) -> Vec<CheckResult> {
    // Days the events are read to the end of: before today, and before the curator's
    // position (a backlog, or a midnight run with the day's last events in Firehose's
    // buffer, failed on correct rows before).
    let read_to = outside
        .events_through
        .map_or(now, |through| (through - LATE_DELIVERY).min(now));
    let counts_match = daily_counts_match_events(&events.counts, &events.backfilled, days, read_to);
    vec![
        CheckResult::of("listing_events.unique_event_id", events.repeated_ids),
        CheckResult::of("listing_events.not_null_keys", events.null_keys),
        CheckResult::of("listing_events.accepted_values", events.bad_values),
        unique(
            "listings.unique_listing_id",
            listings.iter().map(|l| l.listing_id.as_str()),
        ),
        unique(
            "market_daily.unique_market_day",
            days.iter()
                .map(|d| format!("{}@{}", d.scope, d.day))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        ),
        counts_match,
        market_table_matches_market_daily(days, &outside.live),
        freshness(&outside.last_polls, now),
    ]
}

/// The events grouped by the day they were observed, oldest day first.
fn by_day(events: &[EventRow]) -> Vec<Vec<EventRow>> {
    let mut days: BTreeMap<NaiveDate, Vec<EventRow>> = BTreeMap::new();
    for e in events {
        days.entry(e.observed_at.date_naive())
            .or_default()
            .push(e.clone());
    }
    days.into_values().collect()
}

/// How a listing's newest event counts at the end of a day: in its market, active or
/// pending (sale listings not delisted), or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Standing {
    market: String,
    active: bool,
    pending: bool,
}

/// The checks of `listing_events`, fed one observed day at a time, oldest first, so that a
/// run holds one day of events and one standing per listing, never the whole table: ids
/// unique (an event's id names its `observed_at`, so a duplicate is in its original's day),
/// keys not null, values accepted, and the daily counts replayed (each listing's newest
/// event of the day or before wins, as in `listings`).
#[derive(Debug, Default)]
pub struct EventChecks {
    repeated_ids: Vec<String>,
    null_keys: Vec<String>,
    bad_values: Vec<String>,
    standing: HashMap<String, Standing>,
    counts: BTreeMap<(String, NaiveDate), (i64, i64)>,
    /// Per market, the days a replay or an import added events to after they had closed
    /// (first day -> last): the metrics counted those events in the day they applied them
    /// (a closed day's figures are never rewritten), the replay of the events in the day
    /// they were observed, so those days' counts cannot be compared.
    backfilled: HashMap<String, BTreeMap<NaiveDate, NaiveDate>>,
    /// Events fed so far.
    pub events: usize,
}

impl EventChecks {
    /// Feeds the events observed on one day (in any order), after every earlier day's.
    pub fn add_day(&mut self, events: &[EventRow]) {
        let Some(day) = events.first().map(|e| e.observed_at.date_naive()) else {
            return;
        };
        self.events += events.len();
        let mut ids = HashSet::with_capacity(events.len());
        for e in events {
            if !ids.insert(e.event_id.as_str()) {
                self.repeated_ids.push(e.event_id.clone());
            }
            if let Some(failing) = null_key(e) {
                self.null_keys.push(failing);
            }
            if let Some(failing) = unaccepted(e) {
                self.bad_values.push(failing);
            }
            if let Some(started) = replay_started(&e.poll_id) {
                let applied = started.date_naive();
                if applied > day {
                    let last = self
                        .backfilled
                        .entry(e.market.clone())
                        .or_default()
                        .entry(day)
                        .or_insert(applied);
                    *last = (*last).max(applied);
                }
            }
        }
        let mut ordered: Vec<&EventRow> = events.iter().collect();
        ordered.sort_by(|a, b| {
            event_order(a.observed_at, &a.event_id).cmp(&event_order(b.observed_at, &b.event_id))
        });
        for e in ordered {
            let counted = e.offer == "sale" && e.kind != "delisted";
            self.standing.insert(
                e.listing_id.clone(),
                Standing {
                    market: e.market.clone(),
                    active: counted && e.status == "active",
                    pending: counted && matches!(e.status.as_str(), "under_contract" | "pending"),
                },
            );
        }
        let mut per_market: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for s in self.standing.values() {
            let counts = per_market.entry(s.market.as_str()).or_default();
            counts.0 += i64::from(s.active);
            counts.1 += i64::from(s.pending);
        }
        for (market, counts) in per_market {
            self.counts.insert((market.to_owned(), day), counts);
        }
    }
}

fn unique<'a>(name: &str, keys: impl Iterator<Item = &'a str>) -> CheckResult {
    let mut seen = HashSet::new();
    let mut repeated = Vec::new();
    for key in keys {
        if !seen.insert(key) {
            repeated.push(key.to_owned());
        }
    }
    CheckResult::of(name, repeated)
}

/// Why an event's keys fail: none may be empty (Iceberg's required columns already refuse
/// nulls).
fn null_key(e: &EventRow) -> Option<String> {
    (e.event_id.trim().is_empty()
        || e.listing_id.trim().is_empty()
        || e.market.trim().is_empty()
        || e.poll_id.trim().is_empty())
    .then(|| {
        format!(
            "{} (listing {:?}, market {:?})",
            e.event_id, e.listing_id, e.market
        )
    })
}

/// Why an event's values fail: each is one its column accepts.
fn unaccepted(e: &EventRow) -> Option<String> {
    let bad: Vec<String> = [
        ("kind", e.kind.as_str(), KINDS),
        ("status", e.status.as_str(), STATUSES),
        ("offer", e.offer.as_str(), OFFERS),
        ("property_type", e.property_type.as_str(), PROPERTY_TYPES),
        ("currency", e.currency.as_str(), CURRENCIES),
    ]
    .into_iter()
    .filter(|(_, value, accepted)| !accepted.contains(value))
    .map(|(column, value, _)| format!("{column}={value:?}"))
    .collect();
    (!bad.is_empty()).then(|| format!("{}: {}", e.event_id, bad.join(", ")))
}

/// Per market and day, the sale listings active and pending at the end of the day, replayed
/// from the events (each listing's newest event of the day or before wins, as in
/// `listings`).
pub fn daily_counts(events: &[EventRow]) -> BTreeMap<(String, NaiveDate), (i64, i64)> {
    let mut checks = EventChecks::default();
    for day in by_day(events) {
        checks.add_day(&day);
    }
    checks.counts
}

/// When the replay (`realty replay`, an S3 import, `realty replay-raw`) whose poll id this
/// is started: `replay-<instant>...`, `replay-raw-<instant>...`; `None` for a poll's. A
/// replay's id that names no instant started at the latest when it was read, so it is
/// taken as now: the days since its events' are then not compared.
fn replay_started(poll_id: &str) -> Option<DateTime<Utc>> {
    let rest = poll_id.strip_prefix(realty_model::listing::REPLAY_POLL_ID_PREFIX)?;
    let rest = rest.strip_prefix("raw-").unwrap_or(rest);
    let started = rest
        .get(..24)
        .and_then(|text| {
            chrono::NaiveDateTime::parse_from_str(text, realty_model::listing::POLL_ID_TIME_FORMAT)
                .ok()
        })
        .map(|t| t.and_utc());
    Some(started.unwrap_or_else(Utc::now))
}

/// Every closed day's `market_daily` counts (active, pending) against the events' replay:
/// the days before `read_to`'s. The current day is left out: its row is as of the last
/// batch; so are the days the events are not read to the end of, and the days a replay or an
/// import added events to after they closed ([`EventChecks`]' `backfilled`).
fn daily_counts_match_events(
    replayed: &BTreeMap<(String, NaiveDate), (i64, i64)>,
    backfilled: &HashMap<String, BTreeMap<NaiveDate, NaiveDate>>,
    days: &[MarketDayRow],
    read_to: DateTime<Utc>,
) -> CheckResult {
    let today = read_to.date_naive();
    let was_backfilled = |d: &MarketDayRow| {
        backfilled
            .get(&d.market)
            .is_some_and(|ranges| ranges.range(..=d.day).any(|(_, last)| *last >= d.day))
    };
    let failing = days
        .iter()
        .filter(|d| d.day < today && d.scope.ends_with("#all") && d.scope.starts_with("city#"))
        .filter(|d| !was_backfilled(d))
        .filter_map(|d| {
            // A day with no event keeps the counts of the last day that had one.
            let replay = replayed
                .range((d.market.clone(), NaiveDate::MIN)..=(d.market.clone(), d.day))
                .next_back()
                .map_or((0, 0), |(_, counts)| *counts);
            (replay != (d.active_listings, d.pending_listings)).then(|| {
                format!(
                    "{} {}: active {} pending {} in market_daily, {} and {} from the events",
                    d.market, d.day, d.active_listings, d.pending_listings, replay.0, replay.1
                )
            })
        })
        .collect();
    CheckResult::of("market_daily.counts_match_events", failing)
}

/// The market table's live figures against the market's newest `market_daily` row: the
/// counts exactly, the medians within [`MEDIAN_TOLERANCE`].
fn market_table_matches_market_daily(
    days: &[MarketDayRow],
    live: &BTreeMap<String, MarketFigures>,
) -> CheckResult {
    let mut failing = Vec::new();
    for (market, figures) in live {
        let scope = format!("city#{market}#all");
        let Some(newest) = days
            .iter()
            .filter(|d| d.scope == scope)
            .max_by_key(|d| d.day)
        else {
            failing.push(format!("{market}: no market_daily row"));
            continue;
        };
        if newest.as_of != figures.as_of {
            // The market moved since the curator's last run: nothing to compare yet.
            continue;
        }
        let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() <= MEDIAN_TOLERANCE * b.abs(),
            (None, None) => true,
            _ => false,
        };
        let counts_equal = newest.active_listings == figures.active_listings
            && newest.pending_listings == figures.pending_listings
            && newest.active_rentals == figures.active_rentals;
        if !counts_equal
            || !close(newest.median_price, figures.median_price)
            || !close(newest.median_rent, figures.median_rent)
        {
            failing.push(format!(
                "{market}: market table active {} pending {} median {:?}; market_daily {} {} {:?}",
                figures.active_listings,
                figures.pending_listings,
                figures.median_price,
                newest.active_listings,
                newest.pending_listings,
                newest.median_price
            ));
        }
    }
    CheckResult::of("market_daily.matches_market_table", failing)
}

fn freshness(
    last_polls: &BTreeMap<String, (Option<DateTime<Utc>>, Duration)>,
    now: DateTime<Utc>,
) -> CheckResult {
    let failing = last_polls
        .iter()
        .filter_map(|(market, (last, allowed))| match last {
            Some(at) if now - *at <= *allowed => None,
            Some(at) => Some(format!(
                "{market}: last successful poll {at}, more than {} min ago",
                allowed.num_minutes()
            )),
            None => Some(format!("{market}: never polled successfully")),
        })
        .collect();
    CheckResult::of("freshness.watched_markets", failing)
}
