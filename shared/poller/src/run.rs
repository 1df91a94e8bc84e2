//! One scheduled poll: the (source, market) pairs due (the watched markets in the
//! [`ConfigStore`], or the markets a request names), concurrently within a bound; sources
//! without a key or out of budget reported and left alone, requests charged to the budgets.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::no_key_message;
use super::detect::DelistingGuard;
use super::fetch::{HttpPolicy, RateLimiter};
use super::ports::{EventPublisher, PollStateStore};
use super::raw::RawPageStore;
use super::read::{MarketSearch, SourceEndpoint};
use realty_model::listing::{MarketKey, Offer};
use realty_model::markets::ConfigStore;
use realty_model::markets::SourceKind;
use realty_model::markets::{ConfigSnapshot, WatchedMarket, month_of};
use realty_model::markets::{SearchFilter, reads_rentals};

#[path = "run_records.rs"]
mod records;
pub mod verify;
use records::{poll_record, record_freshness, record_metrics};
use verify::{Target, Verification};

/// One read a run is asked for: source, market, search, sale listings or rentals.
pub(super) type Wanted<'a> = (SourceKind, &'a str, SearchFilter, Offer);

/// One read a run makes: [`Wanted`] of a source it reaches.
/// One read of a run: its source, market, filter, offer, and the watch it is read under
/// ([`ConfigSnapshot::watched_since`]: a new one makes the read a baseline).
pub(super) type Pair<'a> = (
    &'a SourceEndpoint,
    &'a str,
    SearchFilter,
    Offer,
    Option<DateTime<Utc>>,
);

/// The poller's input. The schedule sends `{}`: poll the watched markets that are due.
/// `realty invoke poller` may name markets to poll now, with every keyed source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRequest {
    /// Market keys (`nashville-tn`); empty for the watched markets.
    #[serde(default)]
    pub markets: Vec<String>,
    /// With `markets`: read their rentals too, from the sources that offer them (watched
    /// markets follow their own `rentals` setting).
    #[serde(default)]
    pub rentals: bool,
    /// Run the anti-entropy pass instead of a poll ([`super::anti_entropy`]; its own
    /// schedule sends `{"anti_entropy": true}`).
    #[serde(default)]
    pub anti_entropy: bool,
}

/// What became of a source in a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatus {
    Polled,
    /// No key (or a placeholder) in the secret: not polled.
    NoKey,
    /// This month's request budget is spent (before or during the poll).
    OutOfBudget,
    /// A market names a source this deployment does not reach (RESO without a URL).
    NotConfigured,
}

/// One source in a poll.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceReport {
    pub source: String,
    pub status: SourceStatus,
    /// Markets due from this source.
    pub markets: usize,
    /// HTTP requests made (charged to the month's budget).
    pub requests: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What happened to one (source, market).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MarketSummary {
    pub source: String,
    pub market: String,
    /// A read of the market's rentals (its own poll state, apart from the sale listings).
    pub rentals: bool,
    pub pages: u32,
    pub listings: usize,
    pub rejects: usize,
    pub new: usize,
    pub changed: usize,
    pub delisted: usize,
    /// Every page read and they added up: delistings could be inferred.
    pub complete: bool,
    pub retries: u32,
    pub rereads: u32,
    /// Extra reads made to confirm that listings missing from a complete read are gone.
    pub reconciliations: u32,
    /// Delistings held for later complete reads to confirm (too many at once).
    pub held_delistings: usize,
    /// Events that could not be published; their listings are found again next poll.
    pub unpublished: usize,
    /// Another poll of this market saved its state first.
    pub state_conflict: bool,
    /// A read that did not add up (no total, a shortfall): nothing delisted from it.
    pub incomplete: bool,
    /// A portal read that stopped where the crawl is bounded (pages robots.txt disallows,
    /// or past the pages one poll reads): incomplete by design, so not counted in
    /// `incomplete` (which alarms); nothing delisted from it (but listings whose own page is
    /// gone: [`verify`]).
    pub crawl_limited: bool,
    /// A whole read found nothing where the last one had listings: not taken as complete,
    /// nothing delisted from it.
    pub empty: bool,
    /// Pages kept in the raw layer; pages over its size bound (not kept); pages it failed to
    /// keep (the read and its events went on).
    pub raw_pages_archived: u32,
    pub raw_pages_oversized: u32,
    pub raw_pages_failed: u32,
    /// The source's request budget ran out during the read (nothing inferred from it).
    pub budget_spent: bool,
    /// Not read, or not to the end: the run's time ([`Poller::run_budget`]) was spent
    /// before its turn, or its requests reached the run's deadline ([`READS_END_GRACE`]).
    /// Not recorded as polled, so the next run reads it.
    pub out_of_time: bool,
    /// A pass after a read's first (a re-read or a confirmation; RESO: its full read) was
    /// stopped by the run's deadline or request budget: the read before it was delivered,
    /// as an incomplete one, and the market is recorded as polled.
    pub cut_short: bool,
    /// A portal's pages no longer read as they did (no listing, or fields the last read
    /// found gone): the read failed; nothing published or delisted from it.
    pub layout_drift: bool,
    pub error: Option<String>,
}

/// The handler's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PollSummary {
    pub poll_id: String,
    pub observed_at: Option<DateTime<Utc>>,
    pub markets: usize,
    pub failed_markets: usize,
    pub pages: u32,
    pub listings: usize,
    pub rejects: usize,
    pub new: usize,
    pub changed: usize,
    pub delisted: usize,
    pub held_delistings: usize,
    pub retries: u32,
    pub unpublished: usize,
    /// Events that reached the stream.
    pub published: usize,
    pub incomplete_reads: usize,
    /// Reads not started, or stopped at the run's deadline (metric `poll_reads_out_of_time`).
    pub reads_out_of_time: usize,
    pub empty_markets: usize,
    /// Portal reads that failed on layout drift (metric `poll_layout_drift`, alarmed).
    pub layout_drift_reads: usize,
    /// Ad pages asked for to tell whether listings past the pages read are gone
    /// ([`verify`]).
    pub ad_pages_checked: u32,
    /// Portal states whose ad pages could not be trusted (metric `poll_ad_pages_untrusted`).
    pub ad_pages_untrusted_reads: usize,
    /// Hours since the least recently verified ad of the portal states verified this run was
    /// seen or asked about (metric `portal_oldest_unverified_ad_hours`, per site, alarmed past
    /// [`super::gone::VERIFIED_WITHIN`]); `None` without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_unverified_ad_hours: Option<f64>,
    pub raw_pages_archived: u32,
    pub raw_pages_oversized: u32,
    pub raw_pages_failed: u32,
    pub sources_without_key: usize,
    pub sources_out_of_budget: usize,
    pub sources: Vec<SourceReport>,
    pub per_market: Vec<MarketSummary>,
    /// The portal states verified after the reads ([`verify`]).
    pub verifications: Vec<Verification>,
    /// The poll could not start (the configuration could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The poller: HTTP client, sources and ports, built once per container.
pub struct Poller<P, S, C, R> {
    pub client: reqwest::Client,
    /// The sources with a key.
    pub endpoints: Vec<SourceEndpoint>,
    /// The sources this deployment reaches but has no key for.
    pub unkeyed: Vec<SourceKind>,
    /// The API-key secret's id, for the message that says where a key goes.
    pub secret: String,
    pub policy: HttpPolicy,
    pub limiters: BTreeMap<String, RateLimiter>,
    pub publisher: P,
    pub states: S,
    pub config: C,
    /// The raw layer: every page read, kept as it came.
    pub raw: R,
    /// Markets polled at once.
    pub concurrency: usize,
    /// How many delistings one read may infer unconfirmed.
    pub delisting_guard: DelistingGuard,
    /// No read starts once the run has lasted this long ([`POLL_RUN_BUDGET`] in the
    /// function): the reads under way then have the rest of the function's timeout to end,
    /// and the run to charge the requests and record the polls.
    pub run_budget: std::time::Duration,
}

/// The poller function's [`Poller::run_budget`]: 200 s of its 300 s timeout. Slow sources
/// (a page's 6 attempts of 10 s, `Retry-After`s) made a run of many markets pass the timeout,
/// and Lambda stopped it before it charged its requests or recorded its polls: every next run
/// polled every market again, its request budget never charged.
pub const POLL_RUN_BUDGET: std::time::Duration = std::time::Duration::from_secs(200);

/// Most markets the poll's log line names ([`PollSummary::for_log`]).
pub const MAX_LOGGED_MARKETS: usize = 100;

impl MarketSummary {
    /// Whether the read has something to look into: it failed, was stopped or cut short, was
    /// incomplete or empty, held delistings, left events unpublished or lost its state's race.
    pub fn has_news(&self) -> bool {
        self.error.is_some()
            || self.incomplete
            || self.empty
            || self.out_of_time
            || self.budget_spent
            || self.cut_short
            || self.layout_drift
            || self.state_conflict
            || self.unpublished > 0
            || self.held_delistings > 0
    }
}

impl PollSummary {
    /// Adds what the reads did to the totals.
    fn count_reads(&mut self) {
        self.markets = self.per_market.len();
        for m in &self.per_market {
            self.failed_markets += usize::from(m.error.is_some());
            self.empty_markets += usize::from(m.empty);
            self.incomplete_reads += usize::from(m.incomplete);
            self.reads_out_of_time += usize::from(m.out_of_time);
            self.layout_drift_reads += usize::from(m.layout_drift);
            self.pages += m.pages;
            self.listings += m.listings;
            self.rejects += m.rejects;
            self.new += m.new;
            self.changed += m.changed;
            self.delisted += m.delisted;
            self.held_delistings += m.held_delistings;
            self.retries += m.retries;
            self.unpublished += m.unpublished;
            self.raw_pages_archived += m.raw_pages_archived;
            self.raw_pages_oversized += m.raw_pages_oversized;
            self.raw_pages_failed += m.raw_pages_failed;
            if m.error.is_none() {
                self.published += (m.new + m.changed + m.delisted).saturating_sub(m.unpublished);
            }
        }
    }

    /// Adds what the verifications did to the totals.
    fn count_verifications(&mut self) {
        for v in &self.verifications {
            self.ad_pages_checked += v.ad_pages_checked;
            self.ad_pages_untrusted_reads += usize::from(v.ad_pages_untrusted);
            self.delisted += v.delisted;
            self.unpublished += v.unpublished;
            if v.error.is_none() {
                self.published += v.delisted.saturating_sub(v.unpublished);
            }
            self.oldest_unverified_ad_hours =
                match (self.oldest_unverified_ad_hours, v.oldest_unverified_hours) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
        }
    }

    /// The summary as logged: its totals, and the markets with news
    /// ([`MarketSummary::has_news`]), at most [`MAX_LOGGED_MARKETS`]. Each market was about
    /// half a KB of the line: a poll of some 450 markets passed CloudWatch's 256 KB event,
    /// which cut the line, and Logs Insights read none of it.
    pub fn for_log(&self) -> Self {
        Self {
            per_market: self
                .per_market
                .iter()
                .filter(|m| m.has_news())
                .take(MAX_LOGGED_MARKETS)
                .cloned()
                .collect(),
            verifications: self
                .verifications
                .iter()
                .filter(|v| v.has_news())
                .take(MAX_LOGGED_MARKETS)
                .cloned()
                .collect(),
            ..self.clone()
        }
    }
}

/// How long after [`Poller::run_budget`] the reads under way may still start a request or
/// wait to retry one: a request started then ends within two of its timeouts (10 s each by
/// default: the answer, then its body), inside the function's 300 s, leaving the run time to
/// charge its requests and record its polls. Before, a read could go on retrying (6 attempts,
/// Retry-After up to 30 s) past the timeout, and Lambda stopped the run before either.
pub const READS_END_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

impl<P: EventPublisher, S: PollStateStore, C: ConfigStore, R: RawPageStore> Poller<P, S, C, R> {
    pub async fn poll(&self, request: &PollRequest, observed_at: DateTime<Utc>) -> PollSummary {
        let poll_id = format!(
            "poll-{}",
            observed_at.format(realty_model::listing::POLL_ID_TIME_FORMAT)
        );
        let mut summary = PollSummary {
            poll_id: poll_id.clone(),
            observed_at: Some(observed_at),
            ..PollSummary::default()
        };
        let month = month_of(observed_at);
        let snapshot = match self.config.load(&month).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the watched markets; nothing polled");
                summary.error = Some(format!("reading the configuration: {e}"));
                record_metrics(&summary);
                return summary;
            }
        };
        for crawler in self.endpoints.iter().filter_map(|e| e.crawler.as_ref()) {
            crawler.start_run();
        }
        let wanted = self.wanted(request, &snapshot, observed_at);
        let checked = self.verification_wanted(request, &snapshot, &wanted);
        let (pairs, targets, sources) = self.admit(&wanted, &checked, &snapshot);
        let started = tokio::time::Instant::now();
        // The reads under way when the budget is spent end by then too: no request starts,
        // and no retry waits, past it.
        let policy = HttpPolicy {
            deadline: Some(started + self.run_budget + READS_END_GRACE),
            ..self.policy
        };
        let (mut per_market, verifications) = self
            .read_and_verify(pairs, targets, &policy, &poll_id, observed_at, started)
            .await;
        per_market.sort_by(|a, b| {
            (&a.source, &a.market, a.rentals).cmp(&(&b.source, &b.market, b.rentals))
        });
        summary.verifications = verifications;
        summary.sources = self.charge(sources, &per_market, &snapshot, &month).await;
        self.record_polls(&per_market, &snapshot, observed_at).await;
        summary.per_market = per_market;
        summary.count_reads();
        summary.count_verifications();
        for s in &summary.sources {
            // A source the stack does not reach (RESO without ResoApiUrl) is as unpolled as
            // one without a key: the same alarm, which it never raised before.
            summary.sources_without_key += usize::from(matches!(
                s.status,
                SourceStatus::NoKey | SourceStatus::NotConfigured
            ));
            summary.sources_out_of_budget += usize::from(s.status == SourceStatus::OutOfBudget);
        }
        record_metrics(&summary);
        record_freshness(&snapshot, &summary, observed_at);
        summary
    }

    /// The reads this run is asked for: (source, market, search, sale or rentals). A
    /// market's rentals are a second read, after its sale listings.
    fn wanted<'a>(
        &self,
        request: &'a PollRequest,
        snapshot: &'a ConfigSnapshot,
        now: DateTime<Utc>,
    ) -> Vec<Wanted<'a>> {
        if request.markets.is_empty() {
            return snapshot
                .due(now)
                .into_iter()
                .flat_map(|(kind, m)| {
                    let sale = (kind, m.market.as_str(), m.filter(), Offer::Sale);
                    let rent = m
                        .polls_rentals(kind)
                        .then(|| (kind, m.market.as_str(), m.filter(), Offer::Rent));
                    std::iter::once(sale).chain(rent)
                })
                .collect();
        }
        let kinds = self
            .endpoints
            .iter()
            .map(|e| e.kind)
            .chain(self.unkeyed.iter().copied());
        let offers = |kind: SourceKind| {
            let rent = (request.rentals && reads_rentals(kind)).then_some(Offer::Rent);
            std::iter::once(Offer::Sale).chain(rent)
        };
        kinds
            .flat_map(|kind| {
                request
                    .markets
                    .iter()
                    // Portals list markets outside the US (`ma/casablanca`), the APIs US ones.
                    .filter(move |m| {
                        MarketKey::country_of(m).is_some_and(|c| kind.is_portal() != c.is_us())
                    })
                    .flat_map(move |m| {
                        // A watched market is read under its own filter: its state is of
                        // that filter's listings, and an unfiltered read would publish the
                        // others as new, for the next scheduled read to delist.
                        let filter = snapshot
                            .markets
                            .iter()
                            .find(|w| w.market == *m)
                            .map(WatchedMarket::filter)
                            .unwrap_or_default();
                        offers(kind).map(move |offer| (kind, m.as_str(), filter.clone(), offer))
                    })
            })
            .collect()
    }

    /// Sets each source's request allowance for the run; the reads it may make, the portal
    /// states it may verify ([`verify`]), and a report for every source asked for
    /// (those it may not poll say why).
    #[allow(clippy::type_complexity)]
    fn admit<'a>(
        &'a self,
        wanted: &[Wanted<'a>],
        checked: &[(SourceKind, &'a str, Offer)],
        snapshot: &ConfigSnapshot,
    ) -> (
        Vec<Pair<'a>>,
        Vec<Target<'a>>,
        BTreeMap<SourceKind, SourceReport>,
    ) {
        let mut reports: BTreeMap<SourceKind, SourceReport> = BTreeMap::new();
        let mut admitted = |kind: SourceKind, reads: usize| {
            let report = reports
                .entry(kind)
                .or_insert_with(|| self.report(kind, snapshot));
            report.markets += reads;
            let endpoint = self.endpoints.iter().find(|e| e.kind == kind);
            endpoint.filter(|_| report.status == SourceStatus::Polled)
        };
        let mut pairs = Vec::new();
        for (kind, market, filter, offer) in wanted {
            if let Some(endpoint) = admitted(*kind, usize::from(*offer == Offer::Sale)) {
                let watched_since = snapshot.watched_since(*kind, market);
                pairs.push((endpoint, *market, filter.clone(), *offer, watched_since));
            }
        }
        let mut targets = Vec::new();
        for (kind, market, offer) in checked {
            if let Some(endpoint) = admitted(*kind, 0) {
                targets.push((endpoint, *market, *offer));
            }
        }
        (pairs, targets, reports)
    }

    /// A source's report before the run, whose request allowance it sets when it is polled.
    fn report(&self, kind: SourceKind, snapshot: &ConfigSnapshot) -> SourceReport {
        let source = kind.as_str();
        let endpoint = self.endpoints.iter().find(|e| e.kind == kind);
        let remaining = snapshot
            .budgets
            .get(source)
            .map(|b| b.saturating_sub(snapshot.used.get(source).copied().unwrap_or(0)));
        let (status, message) = if self.unkeyed.contains(&kind) {
            (
                SourceStatus::NoKey,
                Some(no_key_message(kind, &self.secret)),
            )
        } else if endpoint.is_none() {
            (
                SourceStatus::NotConfigured,
                Some(format!(
                    "{source} is not configured in this deployment (RESO needs the stack's ResoApiUrl)"
                )),
            )
        } else if remaining == Some(0) {
            (
                SourceStatus::OutOfBudget,
                Some(format!(
                    "the month's request budget of {source} is spent; polls resume next month or with a larger budget (`realty markets budget`)"
                )),
            )
        } else {
            if let Some(limiter) = self.limiters.get(source) {
                limiter.start_run(remaining);
            }
            (SourceStatus::Polled, None)
        };
        if let Some(m) = &message {
            tracing::error!(source, "{m}");
        }
        SourceReport {
            source: source.to_owned(),
            status,
            markets: 0,
            requests: 0,
            message,
        }
    }

    /// Charges each polled source's requests to the month's count; a source whose budget ran
    /// out during the run is reported out of budget.
    async fn charge(
        &self,
        mut reports: BTreeMap<SourceKind, SourceReport>,
        per_market: &[MarketSummary],
        snapshot: &ConfigSnapshot,
        month: &str,
    ) -> Vec<SourceReport> {
        for (kind, report) in &mut reports {
            if report.status != SourceStatus::Polled {
                continue;
            }
            let source = kind.as_str();
            report.requests = self.limiters.get(source).map_or(0, RateLimiter::admitted);
            metrics::counter!("source_requests", "source" => source).increment(report.requests);
            let mut used = snapshot.used.get(source).copied().unwrap_or(0) + report.requests;
            if report.requests > 0 {
                match self.config.add_usage(source, month, report.requests).await {
                    Ok(n) => used = n,
                    Err(e) => {
                        tracing::error!(source, requests = report.requests, error = %e, "cannot count this poll's requests against the budget")
                    }
                }
            }
            if let Some(&budget) = snapshot.budgets.get(source) {
                let percent = if budget == 0 {
                    100.0
                } else {
                    used as f64 * 100.0 / budget as f64
                };
                metrics::gauge!("source_budget_used_percent", "source" => source).set(percent);
            }
            if per_market
                .iter()
                .any(|m| m.source == source && m.budget_spent)
            {
                report.status = SourceStatus::OutOfBudget;
                let message = format!(
                    "the month's request budget of {source} ran out during this poll; the markets it could not read are not delisted"
                );
                tracing::error!(source, "{message}");
                report.message = Some(message);
            }
        }
        reports.into_values().collect()
    }

    /// Remembers when each market was polled, at what cost (its sale and rental reads
    /// together), and when it last had news.
    async fn record_polls(
        &self,
        per_market: &[MarketSummary],
        snapshot: &ConfigSnapshot,
        observed_at: DateTime<Utc>,
    ) {
        let mut reads: BTreeMap<(&str, &str), Vec<&MarketSummary>> = BTreeMap::new();
        for m in per_market {
            reads
                .entry((m.source.as_str(), m.market.as_str()))
                .or_default()
                .push(m);
        }
        for ((source, market), reads) in reads {
            if reads.iter().any(|m| m.budget_spent || m.out_of_time) {
                continue;
            }
            let previous = snapshot.polls.get(&(source.to_owned(), market.to_owned()));
            let record = poll_record(source, market, &reads, previous, observed_at);
            if let Err(e) = self.config.record_poll(&record).await {
                tracing::warn!(source, market, error = %e, "cannot record the poll; the market may be polled again early");
            }
        }
    }

    /// One read of the run, unless the run's time is spent ([`Poller::run_budget`]).
    pub(super) async fn read_one(
        &self,
        (endpoint, market, filter, offer, watched_since): Pair<'_>,
        policy: &HttpPolicy,
        poll_id: &str,
        observed_at: DateTime<Utc>,
        started: tokio::time::Instant,
    ) -> MarketSummary {
        if started.elapsed() >= self.run_budget {
            return MarketSummary {
                source: endpoint.kind.as_str().to_owned(),
                market: market.to_owned(),
                rentals: offer == Offer::Rent,
                out_of_time: true,
                ..MarketSummary::default()
            };
        }
        let search = MarketSearch {
            market,
            filter: &filter,
            offer,
        };
        self.poll_market(
            endpoint,
            policy,
            search,
            watched_since,
            poll_id,
            observed_at,
        )
        .await
    }
}

/// Where the poller keeps the state of one read: `zillow/nashville-tn` for the sale listings,
/// `zillow/nashville-tn/rent` for the rentals (their own state: a sale read never delists a
/// rental, nor the reverse). Replays deliver against the same keys.
pub fn state_key(source: &str, market: &str, offer: Offer) -> String {
    match offer {
        Offer::Sale => format!("{source}/{market}"),
        Offer::Rent => format!("{source}/{market}/rent"),
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod poll_record_tests;
