//! One (source, market) read of a poll ([`super::run`]): its state loaded (a first read
//! begins a baseline, [`super::detect::baseline`]), the market read, the read delivered, and what
//! happened summed up.

use chrono::{DateTime, Utc};

use super::deliver::deliver;
use super::detect::{MarketRead, implausibly_empty};
use super::fetch::{FetchError, HttpPolicy, RateLimiter};
use super::ports::{EventPublisher, PollStateStore};
use super::raw::{MarketPages, RawPageStore};
use super::read::{MarketSearch, ReadStats, SourceEndpoint, read_market};
use super::run::{MarketSummary, Poller, state_key};
use super::state::PollState;
use realty_model::listing::Offer;
use realty_model::markets::ConfigStore;
use realty_model::markets::SourceKind;

impl<P: EventPublisher, S: PollStateStore, C: ConfigStore, R: RawPageStore> Poller<P, S, C, R> {
    /// Reads one market from one source, against its state of the watch begun at
    /// `watched_since` ([`super::detect::baseline`]).
    pub(super) async fn poll_market(
        &self,
        endpoint: &SourceEndpoint,
        policy: &HttpPolicy,
        search: MarketSearch<'_>,
        watched_since: Option<DateTime<Utc>>,
        poll_id: &str,
        observed_at: DateTime<Utc>,
    ) -> MarketSummary {
        let market = search.market;
        let mut summary = MarketSummary {
            source: endpoint.kind.as_str().to_owned(),
            market: market.to_owned(),
            rentals: search.offer == Offer::Rent,
            ..MarketSummary::default()
        };
        if let Err(error) = self
            .poll_market_inner(
                endpoint,
                policy,
                search,
                watched_since,
                poll_id,
                observed_at,
                &mut summary,
            )
            .await
        {
            if summary.out_of_time {
                // As a read not started: not recorded as polled, the next run reads it.
                tracing::warn!(source = %summary.source, market, %error, "market read stopped at the run's deadline");
            } else {
                tracing::warn!(source = %summary.source, market, %error, "market poll failed; other markets go on");
                summary.error = Some(error);
            }
        }
        summary
    }

    #[allow(clippy::too_many_arguments)]
    async fn poll_market_inner(
        &self,
        endpoint: &SourceEndpoint,
        policy: &HttpPolicy,
        search: MarketSearch<'_>,
        watched_since: Option<DateTime<Utc>>,
        poll_id: &str,
        observed_at: DateTime<Utc>,
        summary: &mut MarketSummary,
    ) -> Result<(), String> {
        let market = search.market;
        // Rentals keep a state of their own: a sale read never delists a rental, nor the
        // reverse, and an incomplete rental read delists nothing.
        let read_name = state_key(endpoint.kind.as_str(), market, search.offer);
        let key = read_name.clone();
        let market_poll_id = super::deliver::market_poll_id(poll_id, &read_name);
        let mut stored = self.states.load(&key).await.map_err(|e| e.to_string())?;
        super::detect::baseline::begin(&mut stored, watched_since, observed_at);
        let pages = MarketPages::new(
            &self.raw,
            endpoint.kind,
            market,
            search.offer,
            &market_poll_id,
            observed_at,
        );
        let fallback = RateLimiter::per_second(0.0);
        let limiter = self
            .limiters
            .get(endpoint.kind.as_str())
            .unwrap_or(&fallback);
        let (read, stats) = read_market(
            &self.client,
            limiter,
            policy,
            endpoint,
            search,
            &stored.state,
            observed_at,
            &pages,
        )
        .await
        .map_err(|e| {
            summary.budget_spent = matches!(e, FetchError::BudgetSpent { .. });
            summary.layout_drift = matches!(e, FetchError::LayoutDrift { .. });
            summary.out_of_time = matches!(e, FetchError::OutOfTime { .. });
            e.to_string()
        })?;
        sum_up_read(summary, market, endpoint.kind, &read, &stats, &stored.state);
        let delivery = deliver(
            &self.publisher,
            &self.states,
            &key,
            &stored,
            read,
            &market_poll_id,
            observed_at,
            self.delisting_guard,
            super::deliver::OnConflict::Yield,
        )
        .await
        .map_err(|e| e.to_string())?;
        summary.new = delivery.new;
        summary.changed = delivery.changed;
        summary.delisted = delivery.delisted;
        summary.held_delistings = delivery.held_delistings;
        summary.unpublished = delivery.unpublished;
        summary.state_conflict = delivery.state_conflict;
        Ok(())
    }
}

/// What a read of `market` from `kind` saw, in its `summary`, and what it says of the read
/// logged: incomplete, implausibly empty (against `previous`), its rejects.
fn sum_up_read(
    summary: &mut MarketSummary,
    market: &str,
    kind: SourceKind,
    read: &MarketRead,
    stats: &ReadStats,
    previous: &PollState,
) {
    summary.pages = stats.pages;
    summary.retries = stats.retries;
    summary.rereads = stats.rereads;
    summary.reconciliations = stats.reconciliations;
    summary.cut_short = stats.cut_short;
    summary.raw_pages_archived = stats.raw_archived;
    summary.raw_pages_oversized = stats.raw_oversized;
    summary.raw_pages_failed = stats.raw_failed;
    summary.rejects = stats.rejects.len();
    summary.listings = read.listings.len();
    // An empty read where the state had listings is not taken as complete (detect).
    summary.empty = read.complete && implausibly_empty(previous, read);
    // RESO: complete only on a full reconciliation read that matched its count.
    summary.complete = read.complete && !summary.empty;
    if !summary.complete && stats.crawl_limited {
        summary.crawl_limited = true;
    } else if !read.complete && kind != SourceKind::Reso {
        // No total, a shortfall, or a reject without an id, on every pass: nothing of
        // this market can be delisted this poll.
        tracing::info!(source = %summary.source, market, listings = summary.listings, rejects = summary.rejects, "incomplete read: no delisting inferred");
        summary.incomplete = true;
    }
    if summary.empty {
        // A source that answers "nothing here" for a market full of listings has most
        // likely changed or broken; nothing is delisted from it.
        tracing::warn!(source = %summary.source, market, had = previous.listings.len(), "a whole read found no listing where the last one had some");
    }
    for reject in &stats.rejects {
        tracing::info!(source = %summary.source, market, %reject, "listing rejected");
    }
}
