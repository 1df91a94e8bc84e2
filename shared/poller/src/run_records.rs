//! What a poll run records besides its summary: its EMF metrics, each market's freshness,
//! and the record of each (source, market) polled.

use chrono::{DateTime, Utc};

use super::{MarketSummary, PollSummary};
use realty_model::markets::{ConfigSnapshot, PollRecord};

pub(super) fn record_metrics(s: &PollSummary) {
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
    metrics::counter!("events_published").increment(s.published as u64);
    metrics::counter!("poll_empty_markets").increment(s.empty_markets as u64);
    metrics::counter!("poll_incomplete_reads").increment(s.incomplete_reads as u64);
    metrics::counter!("poll_reads_out_of_time").increment(s.reads_out_of_time as u64);
    metrics::counter!("poll_layout_drift").increment(s.layout_drift_reads as u64);
    metrics::counter!("poll_ad_pages_checked").increment(u64::from(s.ad_pages_checked));
    metrics::counter!("poll_ad_pages_untrusted").increment(s.ad_pages_untrusted_reads as u64);
    record_oldest_unverified(s);
    metrics::counter!("raw_pages_archived").increment(u64::from(s.raw_pages_archived));
    metrics::counter!("raw_pages_oversized").increment(u64::from(s.raw_pages_oversized));
    metrics::counter!("raw_pages_unarchived").increment(u64::from(s.raw_pages_failed));
    metrics::counter!("sources_without_key").increment(s.sources_without_key as u64);
    metrics::counter!("sources_out_of_budget").increment(s.sources_out_of_budget as u64);
}

/// Hours since the least recently verified ad of each portal's states verified this run
/// (the largest of its states'), a gauge per site (dimension `source`; alarmed past
/// [`crate::gone::VERIFIED_WITHIN`]).
fn record_oldest_unverified(s: &PollSummary) {
    let mut per_site: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
    for v in &s.verifications {
        if let Some(hours) = v.oldest_unverified_hours {
            let oldest = per_site.entry(v.source.as_str()).or_insert(hours);
            *oldest = oldest.max(hours);
        }
    }
    for (source, hours) in per_site {
        metrics::gauge!("portal_oldest_unverified_ad_hours", "source" => source.to_owned())
            .set(hours);
    }
}

/// Minutes since the last event of each watched market, whichever source saw it.
pub(super) fn record_freshness(
    snapshot: &ConfigSnapshot,
    summary: &PollSummary,
    now: DateTime<Utc>,
) {
    for m in &snapshot.markets {
        let published_now = summary.per_market.iter().any(|p| {
            p.market == m.market
                && p.error.is_none()
                && p.new + p.changed + p.delisted > p.unpublished
        });
        let last = if published_now {
            Some(now)
        } else {
            snapshot
                .polls
                .iter()
                .filter(|((_, market), _)| market == &m.market)
                .filter_map(|(_, p)| p.last_event_at)
                .max()
        };
        if let Some(last) = last {
            let minutes = (now - last).num_seconds().max(0) as f64 / 60.0;
            metrics::gauge!("market_minutes_since_event", "market" => m.market.clone())
                .set(minutes);
        }
    }
}

/// The record of one (source, market)'s poll: its reads (sale and rentals) together, after
/// `previous`.
pub(super) fn poll_record(
    source: &str,
    market: &str,
    reads: &[&MarketSummary],
    previous: Option<&PollRecord>,
    observed_at: DateTime<Utc>,
) -> PollRecord {
    let published = reads
        .iter()
        .any(|m| m.error.is_none() && m.new + m.changed + m.delisted > m.unpublished);
    let requests: u64 = reads
        .iter()
        .map(|m| u64::from(m.pages + m.retries).max(1))
        .sum();
    let failed = reads.iter().any(|m| m.error.is_some());
    PollRecord {
        source: source.to_owned(),
        market: market.to_owned(),
        polled_at: observed_at,
        requests,
        last_event_at: if published {
            Some(observed_at)
        } else {
            previous.and_then(|p| p.last_event_at)
        },
        failed_since: if failed {
            previous.and_then(|p| p.failed_since).or(Some(observed_at))
        } else {
            None
        },
    }
}
