//! Reading a market from a RESO feed: incrementally from the cursor, and whole now and then
//! (the only read that may infer delistings), following next links on the same server only.

use chrono::{DateTime, TimeDelta, Utc};

use super::request::Get;
use super::search::market_place;
use super::tally::{Tally, take_page};
use super::{MarketSearch, ReadStats, SourceEndpoint};
use crate::detect::{MAX_STATE_LISTINGS, MarketRead, PollState};
use crate::fetch::{FetchError, HttpPolicy, RateLimiter, fetch_page};
use crate::raw::KeepPages;
use realty_model::listing::MAX_CLOCK_SKEW_SECONDS;
use realty_sources::reso::ResoSync;
use realty_sources::{Paging, reso};

/// Most pages one RESO read follows (`$top` 1000 each): a feed that keeps linking on is
/// cut off rather than read forever; the cursor then stays where it was.
pub const MAX_RESO_PAGES: u32 = 500;

/// RESO feeds are read incrementally (changes since the cursor), so a listing's absence says
/// nothing: its end comes as a status (Closed, Withdrawn, Delete...). Such a read is never
/// `complete`. Every `reso_full_read_every` (and at the first poll) the market is read whole
/// with `$count=true`; that read is complete when its records add up to the count, and is
/// the only one from which a missing record is a delisting. A full read that fails (a page
/// refused after its retries, past [`MAX_RESO_PAGES`]) gives way, in the same poll, to the
/// read of the changes since the cursor, and is tried again only an interval later: it
/// failed at every poll before, and the changes it held back were never read. The request
/// names the market (`City`, `StateOrProvince` and the market's raw filter), selects the
/// fields read, and follows `@odata.nextLink` on the same server only.
#[allow(clippy::too_many_arguments)]
pub(super) async fn read_reso(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    endpoint: &SourceEndpoint,
    search: MarketSearch<'_>,
    previous: &PollState,
    observed_at: DateTime<Utc>,
    raw_pages: &impl KeepPages,
    mut stats: ReadStats,
) -> Result<(MarketRead, ReadStats), FetchError> {
    let cursor = previous.cursor;
    let full = reads_whole(previous, observed_at, endpoint.reso_full_read_every);
    let base = format!("{}/Property", endpoint.base_url.trim_end_matches('/'));
    let refused = |error: String| FetchError::NotThatApi {
        url: base.clone(),
        error,
    };
    let (city, state) = market_place(endpoint, search.market)?;
    if let Some(raw) = &search.filter.reso_filter {
        realty_model::markets::check_raw_filter(raw).map_err(refused)?;
    }
    let sync = |whole: bool| ResoSync {
        modified_since: if whole { None } else { cursor },
        count: whole,
        top: 1000,
        extra_filter: Some(reso::market_filter(
            &city,
            &state,
            search.filter.reso_filter.as_deref(),
        )),
    };
    let pages = ResoPages {
        client,
        limiter,
        policy,
        base: &base,
        auth: endpoint
            .reso_auth
            .as_ref()
            .ok_or_else(|| refused("no RESO token or client credentials".into()))?,
        raw_pages,
        observed_at,
    };
    let (tally, newest, complete) = if full {
        pages
            .read_whole(&sync, search.market, previous, &mut stats)
            .await?
    } else {
        let (tally, newest, _) = pages.read(&sync(false), &mut stats).await?;
        (tally, newest, false)
    };
    let mut read = tally.into_read(complete);
    read.cursor = cursor_at_most(newest.max(cursor), observed_at);
    read.full = full;
    Ok((read, stats))
}

/// Whether a record of the state is neither read nor refused by `tally`.
fn misses_a_known_record(previous: &PollState, tally: &Tally) -> bool {
    previous
        .listings
        .keys()
        .any(|id| !tally.listings.contains_key(id) && !tally.rejected_ids.contains(id))
}

/// What one RESO read needs to follow its pages.
struct ResoPages<'a, K> {
    client: &'a reqwest::Client,
    limiter: &'a RateLimiter,
    policy: &'a HttpPolicy,
    base: &'a str,
    auth: &'a crate::reso_auth::ResoAuth,
    raw_pages: &'a K,
    observed_at: DateTime<Utc>,
}

impl<K: KeepPages> ResoPages<'_, K> {
    /// The market read whole (`sync(true)`), confirmed by a second full read if it misses a
    /// record of the state; what it held, the newest modification time and whether it is
    /// complete. A full read that fails gives way to the changes since the cursor
    /// (`sync(false)`) when the cursor can be trusted.
    async fn read_whole(
        &self,
        sync: &impl Fn(bool) -> ResoSync,
        market: &str,
        previous: &PollState,
        stats: &mut ReadStats,
    ) -> Result<(Tally, Option<DateTime<Utc>>, bool), FetchError> {
        let cursor = previous.cursor;
        match self.read(&sync(true), stats).await {
            Ok(whole) => {
                let (mut tally, newest, total) = whole;
                tally.expect(total);
                Ok(self
                    .confirm_whole(tally, newest, sync, market, previous, stats)
                    .await)
            }
            // Cut by the run's deadline or request budget: no other read can be made this
            // poll either, and the try is saved (`full`), so the next poll reads the changes
            // rather than trying the whole market again (which was cut again at every poll,
            // and the changes never read).
            Err(error @ (FetchError::OutOfTime { .. } | FetchError::BudgetSpent { .. }))
                if cursor.is_some_and(|at| at <= latest_trusted(self.observed_at)) =>
            {
                tracing::warn!(
                    market,
                    %error,
                    "RESO full read cut short; the changes since the cursor are read next poll, the next full read an interval later"
                );
                stats.cut_short = true;
                Ok((Tally::default(), None, false))
            }
            // With a cursor to read from, the changes still come; without one (the first
            // poll) there is nothing else to read.
            Err(error) if cursor.is_some_and(|at| at <= latest_trusted(self.observed_at)) => {
                tracing::warn!(
                    market,
                    %error,
                    "RESO full read failed; reading the changes since the cursor, the next full read an interval later"
                );
                let (tally, newest, _) = self.read(&sync(false), stats).await?;
                Ok((tally, newest, false))
            }
            Err(error) => Err(error),
        }
    }

    /// A full read's `tally`, with a second full read merged in when it was complete but
    /// missed a record of the state; whether the read stands complete.
    ///
    /// Pages of `$skip` over records ordered by modification: a record modified mid-read
    /// moves to the end and the next page starts one record later, so one record is never
    /// read, and a record added meanwhile makes the count add up. A record missing from a
    /// complete read is delisted only if a second full read misses it too, as the other
    /// sources' reads are confirmed.
    async fn confirm_whole(
        &self,
        mut tally: Tally,
        mut newest: Option<DateTime<Utc>>,
        sync: &impl Fn(bool) -> ResoSync,
        market: &str,
        previous: &PollState,
        stats: &mut ReadStats,
    ) -> (Tally, Option<DateTime<Utc>>, bool) {
        let mut complete = tally.complete();
        if complete && misses_a_known_record(previous, &tally) {
            stats.reconciliations += 1;
            match self.read(&sync(true), stats).await {
                Ok((mut again, again_newest, again_total)) => {
                    again.expect(again_total);
                    complete = again.complete();
                    newest = newest.max(again_newest);
                    tally.merge(again);
                }
                Err(error) => {
                    tracing::warn!(
                        market,
                        %error,
                        "RESO confirming full read failed; nothing is delisted from the first"
                    );
                    complete = false;
                }
            }
        }
        (tally, newest, complete)
    }

    /// The pages of one query, from the first to the last next link: what they held, the
    /// newest modification time among them and the first page's `@odata.count`.
    async fn read(
        &self,
        sync: &ResoSync,
        stats: &mut ReadStats,
    ) -> Result<(Tally, Option<DateTime<Utc>>, Option<u64>), FetchError> {
        let refused = |error: String| FetchError::NotThatApi {
            url: self.base.to_owned(),
            error,
        };
        let query = sync.query_params().map_err(|e| refused(e.to_string()))?;
        let token = self
            .auth
            .bearer(self.client, self.policy.timeout)
            .await
            .map_err(|e| refused(e.to_string()))?;
        let headers = vec![("Authorization", format!("Bearer {token}"))];
        let observed_at = self.observed_at;
        let parse = |b: &[u8]| reso::parse_page(b, observed_at);
        let mut tally = Tally::new();
        let mut next = Some(Get {
            url: self.base.to_owned(),
            query,
            headers: headers.clone(),
        });
        let mut newest = None;
        let mut pages = 0u32;
        let mut total = None;
        while let Some(request) = next.take() {
            pages += 1;
            if pages > MAX_RESO_PAGES {
                return Err(refused(format!(
                    "more than {MAX_RESO_PAGES} pages: narrow the market's filter"
                )));
            }
            let fetched =
                match fetch_page(self.client, self.limiter, self.policy, &request, parse).await {
                    Ok(fetched) => fetched,
                    Err(error) => {
                        // A token the server no longer takes is not sent again.
                        if matches!(error, FetchError::Refused { status: 401, .. }) {
                            self.auth.invalidate().await;
                        }
                        return Err(error);
                    }
                };
            let paging = take_page(&mut tally, fetched, self.raw_pages, stats).await;
            // A read holds every record it has read: bounded as a market's state is.
            if tally.listings.len() > MAX_STATE_LISTINGS {
                return Err(refused(format!(
                    "more than {MAX_STATE_LISTINGS} records, the most a market's state holds: narrow the market's filter"
                )));
            }
            if let Paging::Reso(paging) = &paging {
                newest = newest.max(paging.max_modification_timestamp);
                if pages == 1 {
                    total = paging.count;
                }
                next = match &paging.next_link {
                    Some(link) => Some(Get {
                        url: same_origin_link(self.base, link).map_err(refused)?,
                        query: Vec::new(),
                        headers: headers.clone(),
                    }),
                    None => None,
                };
            }
        }
        Ok((tally, newest, total))
    }
}

/// The latest modification time a cursor may trust at `observed_at`: past it, a record was
/// dated by a clock ahead of ours.
fn latest_trusted(observed_at: DateTime<Utc>) -> DateTime<Utc> {
    observed_at + TimeDelta::seconds(MAX_CLOCK_SKEW_SECONDS)
}

/// Whether this poll reads the market whole: at its first poll, once `every` has passed
/// since the last complete read, and when the cursor is past the clock (moved by a
/// future-dated record before the cursor was bounded, it says nothing of what was read).
/// A market never read complete (a feed without a count, or a first full read cut short),
/// and one whose last full read failed, is read whole again once `every` has passed since
/// the last try, not at every poll.
fn reads_whole(previous: &PollState, observed_at: DateTime<Utc>, every: TimeDelta) -> bool {
    // The last try, complete or not (a state kept before the tries were remembered has only
    // its last complete read).
    let last_try = previous.last_full_read.max(previous.last_complete_read);
    previous
        .cursor
        .is_none_or(|at| at > latest_trusted(observed_at))
        || last_try.is_none_or(|at| observed_at - at >= every)
}

/// The cursor to keep: never past the poll's clock, so a cursor a future-dated record once
/// moved (or one within the clock skew) is brought back, and the records after it are read.
fn cursor_at_most(
    newest: Option<DateTime<Utc>>,
    observed_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    newest.map(|t| t.min(observed_at))
}

/// `@odata.nextLink` resolved against the first request, refused unless it stays on the
/// same scheme, host and port: the bearer token goes with it.
pub fn same_origin_link(base: &str, link: &str) -> Result<String, String> {
    let base = reqwest::Url::parse(base).map_err(|e| format!("base URL: {e}"))?;
    let next = base
        .join(link)
        .map_err(|e| format!("@odata.nextLink is not a URL: {e}"))?;
    if next.origin() != base.origin() {
        return Err(format!(
            "@odata.nextLink leads to another server ({}): not followed",
            next.origin().ascii_serialization()
        ));
    }
    Ok(next.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_kept_cursor_is_never_past_the_poll() {
        let observed_at = at("2024-03-01T12:00:00Z");
        let second = chrono::TimeDelta::seconds(1);
        assert_eq!(cursor_at_most(None, observed_at), None);
        assert_eq!(
            cursor_at_most(Some(observed_at - second), observed_at),
            Some(observed_at - second)
        );
        assert_eq!(
            cursor_at_most(Some(observed_at), observed_at),
            Some(observed_at)
        );
        assert_eq!(
            cursor_at_most(Some(observed_at + second), observed_at),
            Some(observed_at)
        );
        // A cursor a record dated 2099 moved before this fix.
        let poisoned = at("2099-01-01T00:00:00Z");
        assert_eq!(
            cursor_at_most(Some(poisoned), observed_at),
            Some(observed_at)
        );
    }

    #[test]
    fn a_cursor_past_the_clock_skew_makes_a_full_read() {
        let observed_at = at("2024-03-01T12:00:00Z");
        let every = TimeDelta::hours(24);
        let with_cursor = |cursor| PollState {
            cursor,
            last_complete_read: Some(observed_at - TimeDelta::hours(1)),
            ..PollState::default()
        };
        let skew = TimeDelta::seconds(MAX_CLOCK_SKEW_SECONDS);
        assert!(reads_whole(&with_cursor(None), observed_at, every));
        assert!(!reads_whole(
            &with_cursor(Some(observed_at - TimeDelta::minutes(5))),
            observed_at,
            every
        ));
        assert!(!reads_whole(
            &with_cursor(Some(observed_at + skew)),
            observed_at,
            every
        ));
        assert!(reads_whole(
            &with_cursor(Some(observed_at + skew + TimeDelta::seconds(1))),
            observed_at,
            every
        ));
    }

    /// A full read that failed after an old complete one is tried again an interval after
    /// the try, not at the next poll.
    #[test]
    fn a_failed_full_read_is_tried_again_an_interval_after_the_try() {
        let observed_at = at("2024-03-01T12:00:00Z");
        let every = TimeDelta::hours(24);
        let tried_at = |at| PollState {
            cursor: Some(observed_at - TimeDelta::minutes(5)),
            last_complete_read: Some(observed_at - TimeDelta::hours(30)),
            last_full_read: Some(at),
            ..PollState::default()
        };
        let second = TimeDelta::seconds(1);
        assert!(!reads_whole(
            &tried_at(observed_at - TimeDelta::minutes(5)),
            observed_at,
            every
        ));
        assert!(!reads_whole(
            &tried_at(observed_at - every + second),
            observed_at,
            every
        ));
        assert!(reads_whole(
            &tried_at(observed_at - every),
            observed_at,
            every
        ));
    }

    #[test]
    fn a_market_never_read_complete_is_read_whole_again_once_a_day_not_never() {
        let observed_at = at("2024-03-01T12:00:00Z");
        let every = TimeDelta::hours(24);
        // The first full read was cut short: a cursor, no complete read.
        let tried_at = |at| PollState {
            cursor: Some(observed_at - TimeDelta::hours(30)),
            last_full_read: at,
            ..PollState::default()
        };
        let second = TimeDelta::seconds(1);
        assert!(!reads_whole(
            &tried_at(Some(observed_at - every + second)),
            observed_at,
            every
        ));
        assert!(reads_whole(
            &tried_at(Some(observed_at - every)),
            observed_at,
            every
        ));
        // A state kept before the tries were remembered: read whole now.
        assert!(reads_whole(&tried_at(None), observed_at, every));
        // Once complete, the last complete read decides, as before.
        let complete_at = |at| PollState {
            last_complete_read: Some(at),
            ..tried_at(Some(observed_at - TimeDelta::hours(48)))
        };
        assert!(!reads_whole(
            &complete_at(observed_at - every + second),
            observed_at,
            every
        ));
        assert!(reads_whole(
            &complete_at(observed_at - every),
            observed_at,
            every
        ));
    }

    #[test]
    fn next_links_stay_on_the_server() {
        let base = "https://api.example-mls.test/odata/Property";
        assert_eq!(
            same_origin_link(
                base,
                "https://api.example-mls.test/odata/Property?$skip=1000"
            ),
            Ok("https://api.example-mls.test/odata/Property?$skip=1000".into())
        );
        assert_eq!(
            same_origin_link(base, "/odata/Property?$skip=1000"),
            Ok("https://api.example-mls.test/odata/Property?$skip=1000".into())
        );
        for elsewhere in [
            "https://evil.example.test/odata/Property?$skip=1000",
            "http://api.example-mls.test/odata/Property?$skip=1000",
            "https://api.example-mls.test:8443/odata/Property",
            "//evil.example.test/x",
        ] {
            assert!(same_origin_link(base, elsewhere).is_err(), "{elsewhere}");
        }
    }
}
