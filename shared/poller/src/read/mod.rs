//! Reading one market from one source, page by page, into a [`MarketRead`].
//!
//! What to read (`search`) and where (`endpoint`), the requests sent (`request`), one reader
//! per source (`zillow`, `realtor`, `reso`, `portal`), and what a read saw (`tally`);
//! [`read_market`] here makes the passes and decides when a read is complete.

mod endpoint;
pub mod portal;
mod realtor;
mod request;
mod reso;
mod search;
mod tally;
mod zillow;

pub use endpoint::SourceEndpoint;
pub use realtor::MAX_REALTOR_PAGES;
pub use reso::{MAX_RESO_PAGES, same_origin_link};
pub use search::MarketSearch;

use chrono::{DateTime, Utc};
use realty_model::markets::reads_rentals;

use super::detect::{MarketRead, PollState};
use super::fetch::{FetchError, HttpPolicy, RateLimiter};
use super::raw::{KeepPages, Kept};
use portal::{lost_fields, read_portal};
use realtor::read_realtor;
use realty_model::listing::Offer;
use realty_model::markets::SourceKind;
use realty_sources::Reject;
use reso::read_reso;
use tally::Tally;
use zillow::read_zillow;

/// What reading a market produced, besides its listings.
#[derive(Debug, Clone, Default)]
pub struct ReadStats {
    pub pages: u32,
    pub retries: u32,
    pub rejects: Vec<Reject>,
    /// Extra full reads made because the pages did not add up (a listing moved between pages).
    pub rereads: u32,
    /// Extra full reads made to confirm that listings missing from a complete read are gone
    /// (a listing can move out of sight while the counts still add up).
    pub reconciliations: u32,
    /// Pages kept in the raw layer, pages over its size bound, and pages it failed to keep.
    pub raw_archived: u32,
    pub raw_oversized: u32,
    pub raw_failed: u32,
    /// A portal read stopped where the crawl is bounded (pages robots.txt disallows, or
    /// past [`portal::MAX_PORTAL_PAGES`]): incomplete by design, not by fault.
    pub crawl_limited: bool,
    /// A pass after the first (or RESO's full read) stopped at the run's deadline or request
    /// budget: what the passes before it read stands, as an incomplete read.
    pub cut_short: bool,
}

impl ReadStats {
    fn count_kept(&mut self, kept: Kept) {
        match kept {
            Kept::Archived => self.raw_archived += 1,
            Kept::Oversized => self.raw_oversized += 1,
            Kept::Failed => self.raw_failed += 1,
            Kept::Off => {}
        }
    }
}

/// Most full reads of a market in one poll: the first, rereads when the pages do not add
/// up, and one reconciliation read.
pub const MAX_READ_PASSES: u32 = 4;

/// Reads one market: every page, re-reading when the pages do not add up to the total the
/// source reports (a listing moved between pages), and once more when a complete read misses
/// listings of `previous` (a listing can move out of sight while the counts add up: a
/// price cut across a band edge between band reads, a delete plus an insert while paging).
/// A listing missing from two complete reads is gone; one seen by either read is not.
/// Every page fetched is handed to `pages` (the raw layer) before it is counted.
#[allow(clippy::too_many_arguments)]
pub async fn read_market(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    endpoint: &SourceEndpoint,
    search: MarketSearch<'_>,
    previous: &PollState,
    observed_at: DateTime<Utc>,
    pages: &impl KeepPages,
) -> Result<(MarketRead, ReadStats), FetchError> {
    if search.offer == Offer::Rent && !reads_rentals(endpoint.kind) {
        return Err(FetchError::NotThatApi {
            url: endpoint.base_url.clone(),
            error: format!(
                "{} has no rental search: its rentals come with its sale listings",
                endpoint.kind.as_str()
            ),
        });
    }
    let paged = match endpoint.kind {
        SourceKind::Zillow => Paged::Zillow,
        SourceKind::Realtor => Paged::Realtor,
        SourceKind::Avito | SourceKind::Mubawab => Paged::Portal,
        // RESO's read is its own: the changes since its cursor, or the market whole.
        SourceKind::Reso => {
            return read_reso(
                client,
                limiter,
                policy,
                endpoint,
                search,
                previous,
                observed_at,
                pages,
                ReadStats::default(),
            )
            .await;
        }
        SourceKind::File => {
            return Err(FetchError::NotThatApi {
                url: endpoint.base_url.clone(),
                error: endpoint.kind.why_not_polled().into(),
            });
        }
    };
    let reading = MarketReading {
        client,
        limiter,
        policy,
        endpoint,
        search,
        previous,
        observed_at,
        pages,
    };
    reading.in_passes(paged).await
}

/// The sources whose reads are passes over their search's pages.
#[derive(Debug, Clone, Copy)]
enum Paged {
    Zillow,
    Realtor,
    Portal,
}

/// One market's read: where and what it reads, the state it is weighed against, and where
/// its pages are kept.
struct MarketReading<'a, K> {
    client: &'a reqwest::Client,
    limiter: &'a RateLimiter,
    policy: &'a HttpPolicy,
    endpoint: &'a SourceEndpoint,
    search: MarketSearch<'a>,
    previous: &'a PollState,
    observed_at: DateTime<Utc>,
    pages: &'a K,
}

impl<K: KeepPages> MarketReading<'_, K> {
    /// The passes of a read ([`read_market`]): until one is complete and explains every
    /// listing of the state, two are complete, one cannot reach further, or
    /// [`MAX_READ_PASSES`].
    async fn in_passes(&self, paged: Paged) -> Result<(MarketRead, ReadStats), FetchError> {
        let (endpoint, previous) = (self.endpoint, self.previous);
        let mut stats = ReadStats::default();
        let mut union = Tally::default();
        let mut complete_passes = 0;
        for pass_number in 0..MAX_READ_PASSES {
            if pass_number > 0 {
                // Why this pass is made: to confirm missing listings, or because the last one
                // did not add up.
                if complete_passes > 0 {
                    stats.reconciliations += 1;
                } else {
                    stats.rereads += 1;
                }
            }
            let pass = match self.pass(paged, &mut stats).await {
                Ok(pass) => pass,
                // A later pass cut by the run's deadline or budget: the passes before it stand,
                // as an incomplete read (their changes, no delisting), where the whole read was
                // dropped, read again next run and cut again.
                Err(error @ (FetchError::OutOfTime { .. } | FetchError::BudgetSpent { .. }))
                    if pass_number > 0 =>
                {
                    tracing::warn!(market = self.search.market, %error, "a read's later pass was cut short; the passes before it stand, incomplete");
                    stats.cut_short = true;
                    break;
                }
                Err(error) => return Err(error),
            };
            let pass_complete = pass.complete();
            // Pages robots.txt disallows stay so, and a read stopped at a bound on its requests
            // would stop there again: another pass would not reach them. Nor would one make a
            // read without a total, or with a record without an id, complete (it was made four
            // times a poll, a quadrupled API budget).
            let out_of_reach = (endpoint.kind.is_portal() && pass.unreachable)
                || pass.bounded
                || pass.never_complete();
            union.merge(pass);
            if endpoint.kind.is_portal()
                && let Some(error) = lost_fields(previous, &union.listings, &union.rejected_ids)
            {
                return Err(FetchError::LayoutDrift {
                    url: endpoint.base_url.clone(),
                    error,
                });
            }
            if out_of_reach {
                break;
            }
            if !pass_complete {
                continue;
            }
            complete_passes += 1;
            let unexplained = previous
                .listings
                .keys()
                .any(|id| !union.listings.contains_key(id) && !union.rejected_ids.contains(id));
            if !unexplained || complete_passes == 2 {
                return Ok((union.into_read(true), stats));
            }
        }
        // Listings past the pages a poll may read: their own pages say whether they are gone,
        // asked after the run's reads ([`crate::run::verify`]).
        let mut read = union.into_read(false);
        read.crawl_limited = stats.crawl_limited;
        Ok((read, stats))
    }

    /// One full read of the search's pages.
    async fn pass(&self, paged: Paged, stats: &mut ReadStats) -> Result<Tally, FetchError> {
        let (client, limiter, policy) = (self.client, self.limiter, self.policy);
        let (endpoint, search, observed_at) = (self.endpoint, self.search, self.observed_at);
        match paged {
            Paged::Zillow => {
                read_zillow(
                    client,
                    limiter,
                    policy,
                    endpoint,
                    search,
                    observed_at,
                    self.pages,
                    stats,
                )
                .await
            }
            Paged::Realtor => {
                read_realtor(
                    client,
                    limiter,
                    policy,
                    endpoint,
                    search,
                    observed_at,
                    self.pages,
                    stats,
                )
                .await
            }
            Paged::Portal => {
                read_portal(
                    client,
                    limiter,
                    policy,
                    endpoint,
                    search,
                    observed_at,
                    self.previous,
                    self.pages,
                    stats,
                )
                .await
            }
        }
    }
}

#[cfg(test)]
#[path = "loopback_tests.rs"]
mod loopback_tests;

#[cfg(test)]
#[path = "redirect_tests.rs"]
mod redirect_tests;
