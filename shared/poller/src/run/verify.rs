//! After a run's reads, every watched portal market's state is verified, whether or not the
//! market was due: the pages of its due ads ([`crate::gone`]) are asked for, as many as its
//! share of what is left of the site's time allows, and what they say is delivered as a read
//! of nothing but them (an incomplete read: a page gone delists its ad, nothing else is
//! inferred). Markets whose read failed this run are left alone.
//!
//! The site's time after its searches (its 150 s a run at its request rate) is split
//! evenly over its markets, two controls each kept aside, what one does not need going to
//! the next, and what is left after them to those that used their whole share (up to
//! 3 rounds); the market that goes first turns with each run. So a site checks up to
//! `rate × 150 s × runs a day − search pages a day` ads a day, and every ad of its states is
//! verified within [`crate::gone::VERIFIED_WITHIN`] while its ads number at most that many
//! times the days (docs/sources.md, "Ads the pages no longer reach").

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::{MarketSummary, Pair, PollRequest, Poller, Wanted, state_key};
use crate::deliver::{OnConflict, deliver, market_poll_id};
use crate::detect::MarketRead;
use crate::fetch::{HttpPolicy, RateLimiter};
use crate::gone::{GoneChecks, Site, oldest_verification};
use crate::ports::{EventPublisher, PollStateStore};
use crate::raw::RawPageStore;
use crate::read::SourceEndpoint;
use realty_model::listing::Offer;
use realty_model::markets::ConfigSnapshot;
use realty_model::markets::ConfigStore;
use realty_model::markets::SourceKind;

/// Most rounds over a site's markets a run makes ([`share`]).
const MAX_ROUNDS: usize = 3;

/// Controls a market's checks may take besides its share: one before (the first market's of
/// a run), one after (when a page was gone).
const CONTROLS_PER_MARKET: u64 = 2;

/// One portal state to verify: the portal, the market, sale listings or rentals.
pub type Target<'a> = (&'a SourceEndpoint, &'a str, Offer);

/// What verifying one market's state did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verification {
    pub source: String,
    pub market: String,
    pub rentals: bool,
    /// Ad pages requested, controls included.
    pub ad_pages_checked: u32,
    /// Listings delisted: their page gone.
    pub delisted: usize,
    /// The page of an ad the reads saw last was gone: ad pages have moved, no check believed.
    pub ad_pages_untrusted: bool,
    /// Delistings that could not be published; found again by a later check.
    pub unpublished: usize,
    pub state_conflict: bool,
    /// Hours since the least recently verified ad of the state was seen by a read or had
    /// its page asked for, after this pass ([`oldest_verification`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_unverified_hours: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Verification {
    /// This pass and a `later` one of the same state in the run, together.
    fn add(&mut self, later: Verification) {
        self.ad_pages_checked += later.ad_pages_checked;
        self.delisted += later.delisted;
        self.unpublished += later.unpublished;
        self.ad_pages_untrusted |= later.ad_pages_untrusted;
        self.state_conflict |= later.state_conflict;
        self.oldest_unverified_hours = later.oldest_unverified_hours;
        self.error = later.error.or(self.error.take());
    }

    /// Whether the pass has something to look into: it failed, could not trust the site's
    /// pages, lost its state's race or left delistings unpublished.
    pub fn has_news(&self) -> bool {
        self.error.is_some()
            || self.ad_pages_untrusted
            || self.state_conflict
            || self.unpublished > 0
    }
}

/// How many ads each of `markets` states still to verify may have asked for, of
/// `requests_left` of the site's: an even split, less each one's controls.
pub fn share(requests_left: u64, markets: usize) -> usize {
    let each = requests_left / (markets.max(1) as u64);
    usize::try_from(each.saturating_sub(CONTROLS_PER_MARKET)).unwrap_or(usize::MAX)
}

/// `targets` rotated by `turn`: each run another of a site's markets goes first, so that a
/// site whose time runs out before its last market does not leave the same one unchecked
/// every run.
pub fn rotated<T>(mut targets: Vec<T>, turn: u64) -> Vec<T> {
    if !targets.is_empty() {
        let by = (turn % targets.len() as u64) as usize;
        targets.rotate_left(by);
    }
    targets
}

/// The run's turn, for [`rotated`]: one a minute.
fn turn_of(observed_at: DateTime<Utc>) -> u64 {
    u64::try_from(observed_at.timestamp() / 60).unwrap_or(0)
}

/// `targets` less those whose read failed or was stopped this run (a site answering oddly
/// is not asked about its ads): the reads' summaries.
pub fn unfailed<'a>(targets: Vec<Target<'a>>, reads: &[MarketSummary]) -> Vec<Target<'a>> {
    targets
        .into_iter()
        .filter(|(endpoint, market, offer)| {
            !reads.iter().any(|m| {
                m.source == endpoint.kind.as_str()
                    && m.market == *market
                    && m.rentals == (*offer == Offer::Rent)
                    && (m.error.is_some() || m.out_of_time || m.budget_spent)
            })
        })
        .collect()
}

impl<P: EventPublisher, S: PollStateStore, C: ConfigStore, R: RawPageStore> Poller<P, S, C, R> {
    /// The portal states a run verifies: those of every watched market read from a portal
    /// (its rentals too when it reads them), due or not; or, when a request names markets,
    /// theirs.
    pub(super) fn verification_wanted<'a>(
        &self,
        request: &PollRequest,
        snapshot: &'a ConfigSnapshot,
        wanted: &[Wanted<'a>],
    ) -> Vec<(SourceKind, &'a str, Offer)> {
        if !request.markets.is_empty() {
            return wanted
                .iter()
                .filter(|w| w.0.is_portal())
                .map(|w| (w.0, w.1, w.3))
                .collect();
        }
        let mut states = Vec::new();
        for m in &snapshot.markets {
            for kind in m.source_kinds().into_iter().filter(|k| k.is_portal()) {
                states.push((kind, m.market.as_str(), Offer::Sale));
                if m.polls_rentals(kind) {
                    states.push((kind, m.market.as_str(), Offer::Rent));
                }
            }
        }
        states
    }

    /// The run's reads, each source's apart (at most [`Poller::concurrency`] of all of them
    /// at once), then each portal's `targets` verified as soon as its own reads are done: a
    /// site's time is not spent waiting for the APIs' reads.
    pub(super) async fn read_and_verify<'a>(
        &'a self,
        pairs: Vec<Pair<'a>>,
        targets: Vec<Target<'a>>,
        policy: &HttpPolicy,
        poll_id: &str,
        observed_at: DateTime<Utc>,
        started: tokio::time::Instant,
    ) -> (Vec<MarketSummary>, Vec<Verification>) {
        let concurrency = self.concurrency.max(1);
        let permits = tokio::sync::Semaphore::new(concurrency);
        let mut by_source: BTreeMap<SourceKind, (Vec<Pair<'a>>, Vec<Target<'a>>)> = BTreeMap::new();
        for pair in pairs {
            by_source.entry(pair.0.kind).or_default().0.push(pair);
        }
        for target in targets {
            by_source.entry(target.0.kind).or_default().1.push(target);
        }
        let sources = by_source.into_values().map(|(pairs, targets)| {
            let permits = &permits;
            async move {
                let reads: Vec<MarketSummary> = futures::stream::iter(pairs)
                    .map(|pair| async move {
                        let _permit = permits.acquire().await.ok();
                        self.read_one(pair, policy, poll_id, observed_at, started)
                            .await
                    })
                    .buffer_unordered(concurrency)
                    .collect()
                    .await;
                let checks = if targets.is_empty() || started.elapsed() >= self.run_budget {
                    Vec::new()
                } else {
                    let targets = rotated(unfailed(targets, &reads), turn_of(observed_at));
                    self.verify_site(targets, policy, poll_id, observed_at)
                        .await
                };
                (reads, checks)
            }
        });
        let (reads, checks): (Vec<_>, Vec<_>) =
            futures::future::join_all(sources).await.into_iter().unzip();
        (reads.concat(), checks.concat())
    }

    /// Verifies the states of one site's `targets`, in order, each within its share.
    async fn verify_site(
        &self,
        targets: Vec<Target<'_>>,
        policy: &HttpPolicy,
        poll_id: &str,
        observed_at: DateTime<Utc>,
    ) -> Vec<Verification> {
        let Some(endpoint) = targets.first().map(|t| t.0) else {
            return Vec::new();
        };
        let fallback = RateLimiter::per_second(0.0);
        let limiter = self
            .limiters
            .get(endpoint.kind.as_str())
            .unwrap_or(&fallback);
        // robots.txt as the reads left it (kept a day); if it cannot be read, no page is
        // asked for, and the states are still measured.
        let rules = match &endpoint.crawler {
            Some(crawler) => {
                let base = &endpoint.base_url;
                crate::read::portal::robots(&self.client, limiter, policy, crawler, base)
                    .await
                    .map_err(|e| tracing::warn!(source = endpoint.kind.as_str(), error = %e, "no ad page checked this run"))
                    .ok()
            }
            None => None,
        };
        let mut out: Vec<Verification> = Vec::with_capacity(targets.len());
        // One control a run opens the checks for every market of the site.
        let mut site_answers = false;
        // Each round's markets: all, then those that used their whole share while time is
        // left (what the others did not need goes to them).
        let mut round: Vec<usize> = (0..targets.len()).collect();
        for _ in 0..MAX_ROUNDS {
            let mut hungry = Vec::new();
            for (i, &t) in round.iter().enumerate() {
                let (endpoint, market, offer) = targets[t];
                let crawler = endpoint.crawler.as_deref();
                let site = crawler.zip(rules.as_ref()).map(|(crawler, rules)| {
                    let left = limiter.requests_within(crawler.time_left());
                    let site = Site {
                        kind: endpoint.kind,
                        client: &self.client,
                        limiter,
                        policy,
                        crawler,
                        rules,
                        base: &endpoint.base_url,
                    };
                    (site, share(left, round.len() - i), &mut site_answers)
                });
                let (verified, used_its_share) = self
                    .verify_state(endpoint, market, offer, site, poll_id, observed_at)
                    .await;
                match out.get_mut(t) {
                    Some(before) => before.add(verified),
                    None => out.push(verified),
                }
                if used_its_share {
                    hungry.push(t);
                }
            }
            let time_left = endpoint
                .crawler
                .as_ref()
                .is_some_and(|c| !c.time_left().is_zero());
            if hungry.is_empty() || !time_left {
                break;
            }
            round = hungry;
        }
        out
    }

    /// Verifies one state: its due ads asked of `site`, at most its share, and what they
    /// say delivered.
    async fn verify_state(
        &self,
        endpoint: &SourceEndpoint,
        market: &str,
        offer: Offer,
        site: Option<(Site<'_>, usize, &mut bool)>,
        poll_id: &str,
        observed_at: DateTime<Utc>,
    ) -> (Verification, bool) {
        let source = endpoint.kind.as_str();
        let mut out = Verification {
            source: source.to_owned(),
            market: market.to_owned(),
            rentals: offer == Offer::Rent,
            ..Verification::default()
        };
        let key = state_key(source, market, offer);
        let stored = match self.states.load(&key).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(source, market, error = %e, "cannot read the state to verify");
                out.error = Some(e.to_string());
                return (out, false);
            }
        };
        let (checks, used_its_share) = match site {
            Some((site, most, answers)) if most > 0 => {
                let checks = site.check(&stored.state, most, observed_at, answers).await;
                let used = checks.gone.len() + checks.asked_not_gone.len() >= most;
                (checks, used)
            }
            _ => (GoneChecks::default(), false),
        };
        out.ad_pages_checked = checks.asked;
        out.ad_pages_untrusted = checks.untrusted;
        out.oldest_unverified_hours = oldest_verification(
            endpoint.kind,
            &endpoint.base_url,
            &stored.state,
            &checks,
            observed_at,
        )
        .map(|at| (observed_at - at).num_seconds().max(0) as f64 / 3600.0);
        if checks.gone.is_empty() && checks.asked_not_gone.is_empty() {
            return (out, false);
        }
        let read = MarketRead {
            gone_ids: checks.gone,
            asked_not_gone_ids: checks.asked_not_gone,
            ..MarketRead::default()
        };
        let delivered = deliver(
            &self.publisher,
            &self.states,
            &key,
            &stored,
            read,
            &market_poll_id(poll_id, &key),
            observed_at,
            self.delisting_guard,
            OnConflict::Yield,
        )
        .await;
        match delivered {
            Ok(delivery) => {
                out.delisted = delivery.delisted;
                out.unpublished = delivery.unpublished;
                out.state_conflict = delivery.state_conflict;
            }
            Err(e) => {
                tracing::warn!(source, market, error = %e, "the ad pages' findings could not be delivered");
                out.error = Some(e.to_string());
            }
        }
        let hungry = used_its_share && out.error.is_none() && !out.state_conflict;
        (out, hungry)
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod run_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_market_gets_an_even_share_of_what_is_left_less_its_controls() {
        // 30 requests (150 s at one every 5 s) over three markets: 10 each, 8 of them ads.
        assert_eq!(share(30, 3), 8);
        // What the first did not use goes to the others: 26 left over two.
        assert_eq!(share(26, 2), 11);
        assert_eq!(share(3, 2), 0);
        assert_eq!(share(0, 1), 0);
        // An unspaced site: no bound but its time.
        assert!(share(u64::MAX, 4) > 1 << 40);
        assert_eq!(share(10, 0), 8);
    }

    #[test]
    fn the_market_that_goes_first_turns_with_each_run() {
        let markets = vec!["a", "b", "c"];
        assert_eq!(rotated(markets.clone(), 0), ["a", "b", "c"]);
        assert_eq!(rotated(markets.clone(), 1), ["b", "c", "a"]);
        assert_eq!(rotated(markets.clone(), 5), ["c", "a", "b"]);
        assert_eq!(rotated(Vec::<&str>::new(), 7), Vec::<&str>::new());
        // Five-minute runs: every market goes first in turn.
        let t0 = DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let firsts: Vec<&str> = (0..3)
            .map(|i| {
                rotated(
                    markets.clone(),
                    turn_of(t0 + chrono::TimeDelta::minutes(5 * i)),
                )[0]
            })
            .collect();
        let mut sorted = firsts.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, ["a", "b", "c"], "{firsts:?}");
    }
}
