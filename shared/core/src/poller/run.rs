//! One scheduled poll: every (source, market) pair, concurrently within a bound.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::detect::{DelistingGuard, detect, settle};
use super::fetch::{HttpPolicy, RateLimiter};
use super::ports::{EventPublisher, PollStateStore};
use super::read::{SourceEndpoint, read_market};
use crate::listing::EventKind;
use crate::sources::SourceKind;

/// The poller's input: the schedule's `Input` (template.yaml), or `realty invoke poller`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRequest {
    /// Market keys (`nashville-tn`).
    pub markets: Vec<String>,
}

/// What happened to one (source, market).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MarketSummary {
    pub source: String,
    pub market: String,
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
    /// Delistings held for the next complete read to confirm (too many at once).
    pub held_delistings: usize,
    /// Events that could not be published; their listings are found again next poll.
    pub unpublished: usize,
    /// Another poll of this market saved its state first.
    pub state_conflict: bool,
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
    pub per_market: Vec<MarketSummary>,
}

/// The poller: HTTP client, sources and ports, built once per container.
pub struct Poller<P, S> {
    pub client: reqwest::Client,
    pub endpoints: Vec<SourceEndpoint>,
    pub policy: HttpPolicy,
    pub limiters: BTreeMap<String, RateLimiter>,
    pub publisher: P,
    pub states: S,
    /// Markets polled at once.
    pub concurrency: usize,
    /// How many delistings one read may infer unconfirmed.
    pub delisting_guard: DelistingGuard,
}

impl<P: EventPublisher, S: PollStateStore> Poller<P, S> {
    pub async fn poll(&self, request: &PollRequest, observed_at: DateTime<Utc>) -> PollSummary {
        let poll_id = format!("poll-{}", observed_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
        let pairs: Vec<(&SourceEndpoint, &str)> = self
            .endpoints
            .iter()
            .flat_map(|e| request.markets.iter().map(move |m| (e, m.as_str())))
            .collect();
        let mut per_market: Vec<MarketSummary> = futures::stream::iter(pairs)
            .map(|(endpoint, market)| self.poll_market(endpoint, market, &poll_id, observed_at))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        per_market.sort_by(|a, b| (&a.source, &a.market).cmp(&(&b.source, &b.market)));
        let mut summary = PollSummary {
            poll_id,
            observed_at: Some(observed_at),
            markets: per_market.len(),
            ..PollSummary::default()
        };
        for m in &per_market {
            summary.failed_markets += usize::from(m.error.is_some());
            summary.pages += m.pages;
            summary.listings += m.listings;
            summary.rejects += m.rejects;
            summary.new += m.new;
            summary.changed += m.changed;
            summary.delisted += m.delisted;
            summary.held_delistings += m.held_delistings;
            summary.retries += m.retries;
            summary.unpublished += m.unpublished;
        }
        summary.per_market = per_market;
        record_metrics(&summary);
        summary
    }

    async fn poll_market(
        &self,
        endpoint: &SourceEndpoint,
        market: &str,
        poll_id: &str,
        observed_at: DateTime<Utc>,
    ) -> MarketSummary {
        let mut summary = MarketSummary {
            source: endpoint.kind.as_str().to_owned(),
            market: market.to_owned(),
            ..MarketSummary::default()
        };
        if let Err(error) = self
            .poll_market_inner(endpoint, market, poll_id, observed_at, &mut summary)
            .await
        {
            tracing::warn!(source = %summary.source, market, %error, "market poll failed; other markets go on");
            summary.error = Some(error);
        }
        summary
    }

    async fn poll_market_inner(
        &self,
        endpoint: &SourceEndpoint,
        market: &str,
        poll_id: &str,
        observed_at: DateTime<Utc>,
        summary: &mut MarketSummary,
    ) -> Result<(), String> {
        let key = format!("{}/{market}", endpoint.kind.as_str());
        let stored = self.states.load(&key).await.map_err(|e| e.to_string())?;
        let fallback = RateLimiter::per_second(0.0);
        let limiter = self
            .limiters
            .get(endpoint.kind.as_str())
            .unwrap_or(&fallback);
        let (read, stats) = read_market(
            &self.client,
            limiter,
            &self.policy,
            endpoint,
            market,
            &stored.state,
            observed_at,
        )
        .await
        .map_err(|e| e.to_string())?;
        summary.pages = stats.pages;
        summary.retries = stats.retries;
        summary.rereads = stats.rereads;
        summary.reconciliations = stats.reconciliations;
        summary.rejects = stats.rejects.len();
        summary.listings = read.listings.len();
        summary.complete = read.complete && endpoint.kind != SourceKind::Reso;
        if !summary.complete && endpoint.kind != SourceKind::Reso {
            // No total, a shortfall, or a reject without an id, on every pass: nothing of
            // this market can be delisted this poll.
            tracing::info!(source = %summary.source, market, listings = summary.listings, rejects = summary.rejects, "incomplete read: no delisting inferred");
            metrics::counter!("poll_incomplete_reads").increment(1);
        }
        for reject in &stats.rejects {
            tracing::info!(source = %summary.source, market, %reject, "listing rejected");
        }
        let market_poll_id = format!("{poll_id}-{}-{market}", endpoint.kind.as_str());
        let detection = detect(
            &stored.state,
            read,
            &market_poll_id,
            observed_at,
            self.delisting_guard,
        );
        summary.held_delistings = detection.held_delistings;
        if detection.held_delistings > 0 {
            tracing::warn!(source = %summary.source, market, held = detection.held_delistings, "a read missed too many listings at once; their delisting waits for the next read");
        }
        for e in &detection.events {
            match e.kind {
                EventKind::New => summary.new += 1,
                EventKind::Changed { .. } => summary.changed += 1,
                EventKind::Delisted => summary.delisted += 1,
            }
        }
        let failures = self
            .publisher
            .publish(&detection.events)
            .await
            .map_err(|e| e.to_string())?;
        for f in &failures {
            tracing::error!(source = %summary.source, market, index = f.index, error = %f.error, "event not published; found again next poll");
        }
        summary.unpublished = failures.len();
        let failed: BTreeSet<usize> = failures.iter().map(|f| f.index).collect();
        let unchanged = detection.events.is_empty()
            && detection.next.cursor == stored.state.cursor
            && detection.next.unconfirmed_delistings == stored.state.unconfirmed_delistings;
        let next = settle(&stored.state, detection, &failed);
        if unchanged && stored.version.is_some() {
            return Ok(());
        }
        let saved = self
            .states
            .save(&key, &next, stored.version.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        summary.state_conflict = !saved;
        if !saved {
            tracing::warn!(source = %summary.source, market, "another poll saved this market's state first; its state stands");
        }
        Ok(())
    }
}

fn record_metrics(s: &PollSummary) {
    metrics::counter!("poll_markets").increment(s.markets as u64);
    metrics::counter!("poll_failed_markets").increment(s.failed_markets as u64);
    metrics::counter!("poll_pages").increment(u64::from(s.pages));
    metrics::counter!("poll_listings").increment(s.listings as u64);
    metrics::counter!("poll_rejects").increment(s.rejects as u64);
    metrics::counter!("events_new").increment(s.new as u64);
    metrics::counter!("events_changed").increment(s.changed as u64);
    metrics::counter!("events_delisted").increment(s.delisted as u64);
    metrics::counter!("delistings_held").increment(s.held_delistings as u64);
    metrics::counter!("poll_http_retries").increment(u64::from(s.retries));
    metrics::counter!("events_unpublished").increment(s.unpublished as u64);
}
