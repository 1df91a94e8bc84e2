//! The markets the stack watches and the sources' request budgets, as data the poller reads
//! at every run (`realty markets` writes them), and the poll plan: which (source, market)
//! pairs are due, spread so that each source's monthly budget lasts the month.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::listing::{Address, CountryCode, MAX_MARKET_KEY_BYTES, MarketKey};

mod search;
mod source;
mod store;

pub use search::{
    MAX_RAW_FILTER_BYTES, OPEN_BAND_FIRST_SPLIT_USD, PriceBand, SearchFilter, ZillowHomeType,
    check_raw_filter, city_and_state, reads_rentals,
};
pub use source::{SourceKind, UnknownSource};
pub use store::{ConfigStore, MemoryConfigStore};

/// Most sources one market names (every polled source once).
pub const MAX_MARKET_SOURCES: usize = 3;
/// Shortest poll interval: the schedule's own period.
pub const MIN_POLL_MINUTES: u32 = 5;
/// Longest poll interval: a week.
pub const MAX_POLL_MINUTES: u32 = 7 * 24 * 60;
/// Poll interval of a market added without one.
pub const DEFAULT_POLL_MINUTES: u32 = 60;
/// Requests a market is expected to cost before its first poll says (one page at least).
pub const UNPOLLED_MARKET_REQUESTS: u64 = 1;
/// A run happens a little late or early; a market this close to due is polled now rather
/// than a whole schedule period later.
const DUE_SLACK: TimeDelta = TimeDelta::seconds(30);

/// One watched market: where and what to search, with which sources, how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedMarket {
    /// City-state key (`nashville-tn`), as the metrics name the market.
    pub market: String,
    /// Source names (`zillow`, `realtor`, `reso`).
    pub sources: Vec<String>,
    /// Whole dollars; `None` for no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_price: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price: Option<u64>,
    /// Zillow's home types (`houses`, `condos`, `townhomes`, `multi-family`, `apartments`,
    /// `manufactured`, `lots-land`); empty for every type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub home_types: Vec<String>,
    pub poll_every_minutes: u32,
    /// RESO: an OData condition ANDed to the market's city and state, for MLS-specific
    /// fields (`OriginatingSystemName eq 'actris'`, which MLS Grid requires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reso_filter: Option<String>,
    /// Whether the market's rentals are read too, in a second read per source that offers
    /// them (Zillow, Realtor.com); on unless `realty markets add --no-rentals`.
    #[serde(default = "rentals_by_default")]
    pub rentals: bool,
    /// When each source began to read the market as it reads it now
    /// ([`WatchedMarket::watch_from`]: the market added or re-added, the source added, the
    /// search or the rentals changed): a poll state not read since is read as a baseline,
    /// its listings inventory, not news (`realty_poller::detect::baseline`). Empty for markets added before
    /// it was kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub watched_since: BTreeMap<String, DateTime<Utc>>,
}

fn rentals_by_default() -> bool {
    true
}

/// Home-type names as `realty markets add --home-types` takes them.
const HOME_TYPES: [(&str, ZillowHomeType); 7] = [
    ("houses", ZillowHomeType::Houses),
    ("condos", ZillowHomeType::Condos),
    ("townhomes", ZillowHomeType::Townhomes),
    ("multi-family", ZillowHomeType::MultiFamily),
    ("apartments", ZillowHomeType::Apartments),
    ("manufactured", ZillowHomeType::Manufactured),
    ("lots-land", ZillowHomeType::LotsLand),
];

impl WatchedMarket {
    /// A market of `sources`, polled every `minutes`, without price bounds, home types, a
    /// RESO filter or rentals.
    pub fn new(key: &str, sources: &[&str], minutes: u32) -> Self {
        Self {
            market: key.into(),
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
            min_price: None,
            max_price: None,
            home_types: Vec::new(),
            poll_every_minutes: minutes,
            reso_filter: None,
            rentals: false,
            watched_since: BTreeMap::new(),
        }
    }

    /// `market` polled from `sources` with every other setting at its default: every price
    /// and home type, every [`DEFAULT_POLL_MINUTES`], no RESO filter, rentals read.
    pub fn with_defaults(market: impl Into<String>, sources: Vec<String>) -> Self {
        Self {
            market: market.into(),
            sources,
            min_price: None,
            max_price: None,
            home_types: Vec::new(),
            poll_every_minutes: DEFAULT_POLL_MINUTES,
            reso_filter: None,
            rentals: true,
            watched_since: BTreeMap::new(),
        }
    }

    /// Dates the watch of each source at `at` where `before` (the market as it was watched,
    /// if it was) did not read it so: a new market, a source added, a search or rentals
    /// changed (a wider search finds listings that were on the market before). Sources that
    /// read as before keep their time (none for a market watched before times were kept);
    /// sources no longer read lose theirs.
    pub fn watch_from(&mut self, before: Option<&WatchedMarket>, at: DateTime<Utc>) {
        let as_before =
            before.filter(|b| b.filter() == self.filter() && (b.rentals || !self.rentals));
        self.watched_since = self
            .sources
            .iter()
            .filter_map(|source| match as_before {
                Some(b) if b.sources.contains(source) => b
                    .watched_since
                    .get(source)
                    .map(|since| (source.clone(), *since)),
                _ => Some((source.clone(), at)),
            })
            .collect();
    }

    /// When `kind` began to read the market as it does now, where known.
    pub fn watch_of(&self, kind: SourceKind) -> Option<DateTime<Utc>> {
        self.watched_since.get(kind.as_str()).copied()
    }

    /// Every rule a stored market must meet; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        check_market_key(&self.market)?;
        if self.sources.is_empty() || self.sources.len() > MAX_MARKET_SOURCES {
            return Err(format!(
                "{} sources: a market names 1 to {MAX_MARKET_SOURCES}",
                self.sources.len()
            ));
        }
        for (i, name) in self.sources.iter().enumerate() {
            match name.parse::<SourceKind>() {
                Ok(kind) if !kind.is_polled() => return Err(kind.why_not_polled().into()),
                Ok(kind)
                    if MarketKey::country_of(&self.market)
                        .is_some_and(|c| kind.is_portal() == c.is_us()) =>
                {
                    return Err(format!(
                        "{kind} lists {}: the portals (avito, mubawab) read markets outside the \
                         US (ma/casablanca), the APIs US ones (nashville-tn)",
                        if kind.is_portal() {
                            "no US market"
                        } else {
                            "US markets only"
                        }
                    ));
                }
                Ok(_) if self.sources[..i].contains(name) => {
                    return Err(format!("source {name} is named twice"));
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let portal = self.source_kinds().iter().any(|kind| kind.is_portal());
        if portal
            && (self.min_price.is_some() || self.max_price.is_some() || !self.home_types.is_empty())
        {
            return Err(
                "the portals read a city's flats and houses whole: no price range or home types"
                    .into(),
            );
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price)
            && min > max
        {
            return Err(format!("min price {min} is above max price {max}"));
        }
        for t in &self.home_types {
            if !HOME_TYPES.iter().any(|(name, _)| name == t) {
                let known: Vec<&str> = HOME_TYPES.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown home type {t:?}: one of {}",
                    known.join(", ")
                ));
            }
        }
        if let Some(raw) = &self.reso_filter {
            check_raw_filter(raw)?;
            if !self.sources.iter().any(|s| s == SourceKind::Reso.as_str()) {
                return Err("a RESO filter is for a market polled from reso".into());
            }
        }
        if let Some(other) = self
            .watched_since
            .keys()
            .find(|source| !self.sources.contains(source))
        {
            return Err(format!(
                "a watch time for source {other:?}, which the market does not name"
            ));
        }
        if !(MIN_POLL_MINUTES..=MAX_POLL_MINUTES).contains(&self.poll_every_minutes) {
            return Err(format!(
                "poll interval of {} minutes: from {MIN_POLL_MINUTES} minutes to a week",
                self.poll_every_minutes
            ));
        }
        Ok(())
    }

    /// The sources, parsed (names [`WatchedMarket::validate`] refuses are left out).
    pub fn source_kinds(&self) -> Vec<SourceKind> {
        self.sources.iter().filter_map(|s| s.parse().ok()).collect()
    }

    /// Whether a poll of the market from `kind` reads its rentals too.
    pub fn polls_rentals(&self, kind: SourceKind) -> bool {
        self.rentals && reads_rentals(kind)
    }

    /// The search narrowed to these home types and prices.
    pub fn filter(&self) -> SearchFilter {
        let home_types = self
            .home_types
            .iter()
            .filter_map(|t| HOME_TYPES.iter().find(|(n, _)| n == t).map(|(_, h)| *h))
            .collect();
        let prices = PriceBand {
            min_usd: self.min_price.unwrap_or(0),
            max_usd: self.max_price,
        };
        SearchFilter {
            home_types,
            prices,
            reso_filter: self.reso_filter.clone(),
        }
    }
}

/// A market key as the metrics write it: `<city>-<two-letter state>`, normalised (lower
/// case, words joined by `-`), so that the poll's listings land in the market watched.
pub fn check_market_key(key: &str) -> Result<(), String> {
    let hint = "a city-state key such as nashville-tn or st-louis-mo, or a country and city \
                such as ma/casablanca";
    if key.len() > MAX_MARKET_KEY_BYTES {
        return Err(format!("market key of {} bytes: {hint}", key.len()));
    }
    let address = match key.split_once('/') {
        Some((country, city)) => Address {
            line: None,
            city: city.to_owned(),
            state: String::new(),
            postal_code: None,
            country: CountryCode::parse(&country.to_ascii_uppercase())
                .map_err(|e| format!("market {key:?}: {e}"))?,
            neighbourhood: None,
        },
        None => {
            let Some((city, state)) = city_and_state(key) else {
                return Err(format!("market {key:?} is not {hint}"));
            };
            Address {
                line: None,
                city,
                state,
                postal_code: None,
                country: CountryCode::US,
                neighbourhood: None,
            }
        }
    };
    match MarketKey::for_address(&address) {
        Ok(normal) if normal.city_state == key => Ok(()),
        Ok(normal) => Err(format!(
            "market {key:?} is written {:?} once normalised: use that",
            normal.city_state
        )),
        Err(e) => Err(format!("market {key:?}: {e}")),
    }
}

/// A source's monthly request budget (RapidAPI plans are sold by requests per month).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceBudget {
    pub source: String,
    pub monthly_requests: u64,
}

/// The last poll of one (source, market).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRecord {
    pub source: String,
    pub market: String,
    pub polled_at: DateTime<Utc>,
    /// HTTP requests the poll made (pages, retries, re-reads).
    pub requests: u64,
    /// When a poll of it last published an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<DateTime<Utc>>,
    /// When its polls began failing (a read of it ended in an error: a revoked key, an API
    /// down), while they still do; absent after a poll whose reads all succeeded. The lake's
    /// freshness check counts from here, as `polled_at` moves on with every failed poll too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_since: Option<DateTime<Utc>>,
}

impl PollRecord {
    /// The latest time the market is known to have been read: the last poll, or when its
    /// polls began failing.
    pub fn last_good_read(&self) -> DateTime<Utc> {
        self.failed_since.unwrap_or(self.polled_at)
    }
}

/// What the configuration store holds, read once per run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSnapshot {
    pub markets: Vec<WatchedMarket>,
    /// Monthly request budget by source name.
    pub budgets: BTreeMap<String, u64>,
    /// Requests made this month by source name.
    pub used: BTreeMap<String, u64>,
    /// Last poll by (source, market).
    pub polls: BTreeMap<(String, String), PollRecord>,
}

/// The month requests are counted in (`2026-11`, UTC).
pub fn month_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m").to_string()
}

/// The first instant of the next month (UTC).
fn month_end(at: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(at, |d| d.and_utc())
}

/// One source's figures in the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourcePlan {
    pub source: String,
    pub markets: usize,
    /// Requests one poll of every market of the source costs: each market's last poll, or
    /// [`UNPOLLED_MARKET_REQUESTS`] before its first.
    pub requests_per_poll: u64,
    /// At the markets' own intervals, over a 30-day month.
    pub requests_per_month: f64,
    pub monthly_budget: Option<u64>,
    pub used_this_month: u64,
    /// The shortest interval, in minutes, at which the remaining budget polls every market
    /// of the source until the month ends; `None` without a budget.
    pub budget_interval_minutes: Option<f64>,
    /// The budget is spent: the source is not polled until the month turns.
    pub out_of_budget: bool,
}

impl ConfigSnapshot {
    /// When `kind` began to read `market` as it does now ([`WatchedMarket::watched_since`]);
    /// `None` for a market not watched, or watched from before it was kept.
    pub fn watched_since(&self, kind: SourceKind, market: &str) -> Option<DateTime<Utc>> {
        self.markets
            .iter()
            .find(|m| m.market == market)
            .and_then(|m| m.watch_of(kind))
    }

    fn markets_of(&self, source: &str) -> impl Iterator<Item = &WatchedMarket> {
        self.markets
            .iter()
            .filter(move |m| m.sources.iter().any(|s| s == source))
    }

    /// A market's last poll from `source` counts its sale and rental reads together;
    /// before its first, each read it will make costs [`UNPOLLED_MARKET_REQUESTS`].
    fn expected_requests(&self, source: &str, market: &WatchedMarket) -> u64 {
        let reads = match source.parse::<SourceKind>() {
            Ok(kind) if market.polls_rentals(kind) => 2,
            _ => 1,
        };
        self.polls
            .get(&(source.to_owned(), market.market.clone()))
            .map_or(UNPOLLED_MARKET_REQUESTS * reads, |p| p.requests.max(reads))
    }

    /// Each source's expected requests and the interval its budget allows, at `now`.
    pub fn plan(&self, now: DateTime<Utc>) -> Vec<SourcePlan> {
        let mut sources: Vec<&str> = self
            .markets
            .iter()
            .flat_map(|m| m.sources.iter().map(String::as_str))
            .chain(self.budgets.keys().map(String::as_str))
            .collect();
        sources.sort_unstable();
        sources.dedup();
        sources
            .into_iter()
            .map(|source| {
                let mut per_poll = 0;
                let mut per_month = 0.0;
                let mut markets = 0;
                for m in self.markets_of(source) {
                    let requests = self.expected_requests(source, m);
                    markets += 1;
                    per_poll += requests;
                    per_month +=
                        requests as f64 * 30.0 * 24.0 * 60.0 / f64::from(m.poll_every_minutes);
                }
                let budget = self.budgets.get(source).copied();
                let used = self.used.get(source).copied().unwrap_or(0);
                let remaining = budget.map(|b| b.saturating_sub(used));
                let minutes_left = (month_end(now) - now).num_seconds().max(60) as f64 / 60.0;
                // Less than one whole poll left: one more at most, at the month's end.
                let budget_interval_minutes = remaining.filter(|_| per_poll > 0).map(|r| {
                    let polls = r as f64 / per_poll as f64;
                    minutes_left / polls.max(1.0)
                });
                SourcePlan {
                    source: source.to_owned(),
                    markets,
                    requests_per_poll: per_poll,
                    requests_per_month: per_month,
                    monthly_budget: budget,
                    used_this_month: used,
                    budget_interval_minutes,
                    out_of_budget: remaining == Some(0),
                }
            })
            .collect()
    }

    /// Each (source, market) with the minutes between its polls at `now`: the market's
    /// interval, or the interval the source's budget allows if longer. A source whose budget
    /// is spent keeps the markets' own intervals, so that every run that would have polled it
    /// reports it (and its alarm stays raised) until the month turns.
    pub fn poll_intervals(&self, now: DateTime<Utc>) -> Vec<(SourceKind, &WatchedMarket, f64)> {
        let plans: BTreeMap<String, SourcePlan> = self
            .plan(now)
            .into_iter()
            .map(|p| (p.source.clone(), p))
            .collect();
        let mut intervals = Vec::new();
        for m in &self.markets {
            for kind in m.source_kinds() {
                let budget_minutes = plans
                    .get(kind.as_str())
                    .filter(|p| !p.out_of_budget)
                    .and_then(|p| p.budget_interval_minutes)
                    .unwrap_or(0.0);
                intervals.push((kind, m, f64::from(m.poll_every_minutes).max(budget_minutes)));
            }
        }
        intervals
    }

    /// The (source, market) pairs due at `now`: never polled, or last polled at least their
    /// [`Self::poll_intervals`] ago; one whose polls are failing sooner ([`retry_wait`]).
    pub fn due(&self, now: DateTime<Utc>) -> Vec<(SourceKind, &WatchedMarket)> {
        self.poll_intervals(now)
            .into_iter()
            .filter(|(kind, m, minutes)| {
                let last = self
                    .polls
                    .get(&(kind.as_str().to_owned(), m.market.clone()));
                match last {
                    None => true,
                    Some(p) => {
                        let interval = TimeDelta::seconds((minutes * 60.0) as i64);
                        now - p.polled_at + DUE_SLACK >= retry_wait(p, interval)
                    }
                }
            })
            .map(|(kind, m, _)| (kind, m))
            .collect()
    }
}

/// How long after `last` a (source, market) polled every `interval` is due again. After a
/// failed poll (a provider's outage, a timeout, Kinesis refusing the events) a market's
/// news would otherwise wait a whole interval, an hour by default: it is tried again after
/// the schedule's period, then after as long as it has been failing, up to the interval
/// (5, 5, 10, 20, 40, then 60 minutes), so that a lasting failure (a revoked key, a
/// changed layout) costs a few requests more per interval, not one read per run.
pub fn retry_wait(last: &PollRecord, interval: TimeDelta) -> TimeDelta {
    let Some(failed_since) = last.failed_since else {
        return interval;
    };
    let failing_for = last.polled_at - failed_since;
    failing_for
        .max(TimeDelta::minutes(i64::from(MIN_POLL_MINUTES)))
        .min(interval)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    /// A watched market of `sources`, polled every `minutes`, without bounds or rentals.
    pub(crate) fn market(key: &str, sources: &[&str], minutes: u32) -> WatchedMarket {
        WatchedMarket::new(key, sources, minutes)
    }

    #[test]
    fn portals_read_markets_outside_the_us_and_the_apis_us_ones() {
        assert_eq!(
            market("ma/casablanca", &["avito", "mubawab"], 60).validate(),
            Ok(())
        );
        for (key, sources) in [
            ("ma/casablanca", &["zillow"][..]),
            ("ma/casablanca", &["avito", "reso"][..]),
            ("nashville-tn", &["mubawab"][..]),
            ("zz9/casablanca", &["avito"][..]),
        ] {
            assert!(
                market(key, sources, 60).validate().is_err(),
                "{key} {sources:?}"
            );
        }
        let mut priced = market("ma/rabat", &["avito"], 60);
        priced.max_price = Some(2_000_000);
        assert!(
            priced.validate().is_err(),
            "a portal market has no price range"
        );
        assert!(
            market("ma/Casablanca", &["avito"], 60).validate().is_err(),
            "written normalised"
        );
    }

    fn polled(source: &str, market: &str, at_: &str, requests: u64) -> PollRecord {
        PollRecord {
            source: source.into(),
            market: market.into(),
            polled_at: at(at_),
            requests,
            last_event_at: None,
            failed_since: None,
        }
    }

    #[test]
    fn market_keys_are_normalised_city_state_keys() {
        for good in ["nashville-tn", "st-louis-mo", "winston-salem-nc"] {
            assert_eq!(check_market_key(good), Ok(()), "{good}");
        }
        for bad in [
            "nashville",
            "Nashville-TN",
            "nashville-tenn",
            "-tn",
            "",
            "nash ville-tn",
        ] {
            assert!(check_market_key(bad).is_err(), "{bad}");
        }
        let long = format!("{}-tn", "a".repeat(MAX_MARKET_KEY_BYTES));
        assert!(check_market_key(&long).is_err());
    }

    #[test]
    fn a_market_is_validated_whole() {
        assert_eq!(market("nashville-tn", &["zillow"], 60).validate(), Ok(()));
        let mls_grid = WatchedMarket {
            reso_filter: Some("OriginatingSystemName eq 'actris'".into()),
            ..market("austin-tx", &["reso"], 60)
        };
        assert_eq!(mls_grid.validate(), Ok(()));
        assert_eq!(
            mls_grid.filter().reso_filter.as_deref(),
            Some("OriginatingSystemName eq 'actris'")
        );
        let bad = [
            market("nashville-tn", &[], 60),
            market("nashville-tn", &["zillow", "zillow"], 60),
            market("nashville-tn", &["file"], 60),
            market("nashville-tn", &["craigslist"], 60),
            market("nashville-tn", &["zillow"], MIN_POLL_MINUTES - 1),
            market("nashville-tn", &["zillow"], MAX_POLL_MINUTES + 1),
            WatchedMarket {
                min_price: Some(2),
                max_price: Some(1),
                ..market("nashville-tn", &["zillow"], 60)
            },
            WatchedMarket {
                home_types: vec!["castles".into()],
                ..market("nashville-tn", &["zillow"], 60)
            },
            WatchedMarket {
                reso_filter: Some("OriginatingSystemName eq 'actris'".into()),
                ..market("austin-tx", &["zillow"], 60)
            },
            WatchedMarket {
                reso_filter: Some("OriginatingSystemName eq 'actris".into()),
                ..market("austin-tx", &["reso"], 60)
            },
        ];
        for m in bad {
            assert!(m.validate().is_err(), "{m:?}");
        }
        assert!(
            market("nashville-tn", &["zillow"], MIN_POLL_MINUTES)
                .validate()
                .is_ok()
        );
        assert!(
            market("nashville-tn", &["zillow"], MAX_POLL_MINUTES)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn due_markets_follow_their_interval() {
        let snapshot = ConfigSnapshot {
            markets: vec![
                market("nashville-tn", &["zillow"], 60),
                market("syracuse-ny", &["zillow", "realtor"], 15),
            ],
            polls: [
                polled("zillow", "nashville-tn", "2026-11-10T11:30:00Z", 3),
                polled("zillow", "syracuse-ny", "2026-11-10T11:50:00Z", 1),
            ]
            .into_iter()
            .map(|p| ((p.source.clone(), p.market.clone()), p))
            .collect(),
            ..ConfigSnapshot::default()
        };
        let due: Vec<(SourceKind, &str)> = snapshot
            .due(at("2026-11-10T12:00:00Z"))
            .into_iter()
            .map(|(k, m)| (k, m.market.as_str()))
            .collect();
        // nashville was polled 30 minutes ago (every 60): not due; syracuse 10 minutes ago
        // (every 15): not due from zillow, never from realtor.
        assert_eq!(due, [(SourceKind::Realtor, "syracuse-ny")]);
        let later = snapshot.due(at("2026-11-10T12:29:45Z"));
        assert_eq!(later.len(), 3, "30 s early counts as due");
    }

    #[test]
    fn a_failing_market_is_tried_again_sooner_backing_off_to_its_interval() {
        let snapshot_at = |polled_at: &str, failed_since: Option<&str>| ConfigSnapshot {
            markets: vec![market("nashville-tn", &["zillow"], 60)],
            polls: [PollRecord {
                failed_since: failed_since.map(at),
                ..polled("zillow", "nashville-tn", polled_at, 1)
            }]
            .into_iter()
            .map(|p| ((p.source.clone(), p.market.clone()), p))
            .collect(),
            ..ConfigSnapshot::default()
        };
        let due_at = |snapshot: &ConfigSnapshot, now: &str| !snapshot.due(at(now)).is_empty();
        // A good poll waits its hour.
        let good = snapshot_at("2026-11-10T12:00:00Z", None);
        assert!(!due_at(&good, "2026-11-10T12:05:00Z"));
        assert!(due_at(&good, "2026-11-10T13:00:00Z"));
        // The first failure: again at the next run.
        let first = snapshot_at("2026-11-10T12:00:00Z", Some("2026-11-10T12:00:00Z"));
        assert!(!due_at(&first, "2026-11-10T12:04:00Z"));
        assert!(due_at(&first, "2026-11-10T12:05:00Z"));
        // Failing for 20 minutes: 20 more.
        let later = snapshot_at("2026-11-10T12:20:00Z", Some("2026-11-10T12:00:00Z"));
        assert!(!due_at(&later, "2026-11-10T12:35:00Z"));
        assert!(due_at(&later, "2026-11-10T12:40:00Z"));
        // Failing for hours: its interval, no longer.
        let lasting = snapshot_at("2026-11-10T18:00:00Z", Some("2026-11-10T12:00:00Z"));
        assert!(!due_at(&lasting, "2026-11-10T18:55:00Z"));
        assert!(due_at(&lasting, "2026-11-10T19:00:00Z"));
    }

    #[test]
    fn a_budget_spreads_the_polls_over_what_is_left_of_the_month() {
        let mut snapshot = ConfigSnapshot {
            markets: vec![
                market("nashville-tn", &["zillow"], 5),
                market("syracuse-ny", &["zillow"], 5),
            ],
            budgets: [("zillow".to_owned(), 1_000)].into(),
            used: [("zillow".to_owned(), 400)].into(),
            polls: [
                polled("zillow", "nashville-tn", "2026-11-21T00:00:00Z", 3),
                polled("zillow", "syracuse-ny", "2026-11-21T00:00:00Z", 1),
            ]
            .into_iter()
            .map(|p| ((p.source.clone(), p.market.clone()), p))
            .collect(),
        };
        let now = at("2026-11-21T00:00:00Z");
        let plan = &snapshot.plan(now)[0];
        assert_eq!(plan.requests_per_poll, 4);
        // 600 requests left, 4 a poll: 150 polls over the 10 days (14,400 minutes) left.
        assert_eq!(plan.budget_interval_minutes, Some(96.0));
        assert_eq!(plan.requests_per_month, 4.0 * 30.0 * 24.0 * 12.0);
        // The interval the polls keep, which the lake's freshness check allows for.
        let intervals: Vec<f64> = snapshot
            .poll_intervals(now)
            .into_iter()
            .map(|(_, _, minutes)| minutes)
            .collect();
        assert_eq!(intervals, [96.0, 96.0]);
        // The interval is worked out afresh at each run, from what is left of the month then.
        assert!(snapshot.due(now + TimeDelta::minutes(90)).is_empty());
        assert_eq!(snapshot.due(now + TimeDelta::minutes(96)).len(), 2);
        snapshot.used.insert("zillow".into(), 998);
        let plan = &snapshot.plan(now)[0];
        assert_eq!(
            plan.budget_interval_minutes,
            Some(14_400.0),
            "under one poll left"
        );
        assert!(snapshot.due(now + TimeDelta::days(4)).is_empty());
        snapshot.used.insert("zillow".into(), 1_000);
        let plan = &snapshot.plan(now)[0];
        assert!(plan.out_of_budget);
        assert_eq!(
            snapshot.due(now + TimeDelta::minutes(5)).len(),
            2,
            "spent: due at their own interval, to be reported, not polled"
        );
    }

    #[test]
    fn rentals_are_read_by_default_where_offered_and_counted_in_the_plan() {
        let stored: WatchedMarket = serde_json::from_value(serde_json::json!({
            "market": "nashville-tn", "sources": ["zillow", "reso"], "poll_every_minutes": 60
        }))
        .expect("a market stored before rentals");
        assert!(stored.rentals);
        assert!(stored.polls_rentals(SourceKind::Zillow));
        assert!(stored.polls_rentals(SourceKind::Realtor));
        assert!(!stored.polls_rentals(SourceKind::Reso));
        let no_rentals = WatchedMarket {
            rentals: false,
            ..stored.clone()
        };
        assert!(!no_rentals.polls_rentals(SourceKind::Zillow));
        let plan = |m: WatchedMarket, polls: Vec<PollRecord>| {
            let snapshot = ConfigSnapshot {
                markets: vec![m],
                polls: polls
                    .into_iter()
                    .map(|p| ((p.source.clone(), p.market.clone()), p))
                    .collect(),
                ..ConfigSnapshot::default()
            };
            snapshot
                .plan(at("2026-11-21T00:00:00Z"))
                .into_iter()
                .map(|p| (p.source, p.requests_per_poll))
                .collect::<Vec<_>>()
        };
        // Before the first poll: a sale read and a rental read from zillow, one from reso.
        assert_eq!(
            plan(stored.clone(), Vec::new()),
            [("reso".to_owned(), 1), ("zillow".to_owned(), 2)]
        );
        assert_eq!(
            plan(no_rentals, Vec::new()),
            [("reso".to_owned(), 1), ("zillow".to_owned(), 1)]
        );
        // After it: what both reads cost.
        let polled_once = polled("zillow", "nashville-tn", "2026-11-20T00:00:00Z", 7);
        assert_eq!(plan(stored, vec![polled_once])[1], ("zillow".to_owned(), 7));
    }

    #[test]
    fn months_turn_at_utc_midnight() {
        assert_eq!(month_of(at("2026-12-31T23:59:59Z")), "2026-12");
        assert_eq!(
            month_end(at("2026-12-31T23:59:59Z")),
            at("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            month_end(at("2026-02-10T00:00:00Z")),
            at("2026-03-01T00:00:00Z")
        );
    }
}
