//! Whether listings a portal read no longer reaches are gone: their own ad pages asked.
//!
//! A portal read is often crawl-limited (Mubawab's robots.txt allows a search's first page
//! only; Avito's are read to [`super::portal::MAX_PORTAL_PAGES`]): an ad that slipped past
//! the pages read may be up on a later page or taken down, and its absence says neither. Its
//! own page does: a 404 or 410 is evidence of a delisting; a page that answers is evidence it
//! is up. So after such a read, a few of the listings not seen the longest are checked on their
//! pages, within the site's rate, gate and time budget; the rest wait for later polls.
//!
//! The answer trusted is only as good as the ad addresses: before any 404 is believed, the
//! page of a listing this very read saw must answer. If it does not (the site moved its ad
//! pages), nothing is taken as gone.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::detect::{MarketRead, PollState};
use super::fetch::{FetchError, HttpPolicy, RateLimiter, read_text};
use super::portal::{PortalCrawler, allowed};
use crate::listing::Listing;
use crate::sources::SourceKind;
use crate::sources::portal::crawl::RobotsRules;
use crate::sources::portal::{avito, mubawab};

/// Most ad pages checked after one read (a poll reads a market's sales and lets apart):
/// at the default rate, half a minute of the site's time budget.
pub const MAX_GONE_CHECKS: usize = 6;

/// A listing is checked once it has been neither seen nor checked for this long: an ad
/// pushed past the pages read is not asked about every poll.
pub const GONE_CHECK_AFTER: TimeDelta = TimeDelta::hours(6);

/// What the checks after one read found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoneChecks {
    /// Listings whose page is gone (404, 410).
    pub gone: BTreeSet<String>,
    /// Listings whose page answered.
    pub still_up: BTreeSet<String>,
    /// Ad pages asked for, the control included.
    pub asked: u32,
    /// The control page (a listing just seen) did not answer: no check was believed.
    pub untrusted: bool,
}

/// The ad page of `listing` on the site at `base`: the listing's own address with the
/// portal's origin replaced by `base` (a simulator's prefix, or the origin itself); `None`
/// for an address elsewhere (never followed: it came from a page).
pub fn ad_page(kind: SourceKind, base: &str, listing: &Listing) -> Option<String> {
    let origin = match kind {
        SourceKind::Avito => avito::ORIGIN,
        SourceKind::Mubawab => mubawab::ORIGIN,
        _ => return None,
    };
    let path = listing.source_url.as_deref()?.strip_prefix(origin)?;
    (path.starts_with('/') && !path.starts_with("//"))
        .then(|| format!("{}{path}", base.trim_end_matches('/')))
}

/// The listings of `previous` to check after `read`: not seen (nor rejected) by it, unseen and
/// unchecked for [`GONE_CHECK_AFTER`], those waiting longest first, at most
/// [`MAX_GONE_CHECKS`].
pub fn candidates<'a>(
    previous: &'a PollState,
    read: &MarketRead,
    observed_at: DateTime<Utc>,
) -> Vec<&'a Listing> {
    let seen: BTreeSet<&str> = read.listings.iter().map(|l| l.id.as_str()).collect();
    let mut waiting: Vec<(DateTime<Utc>, &Listing)> = previous
        .listings
        .iter()
        .filter(|(id, _)| !seen.contains(id.as_str()) && !read.rejected_ids.contains(*id))
        .map(|(id, listing)| {
            let checked = previous.page_checked_at.get(id).copied();
            (
                checked.map_or(listing.observed_at, |c| c.max(listing.observed_at)),
                listing,
            )
        })
        .filter(|(last, _)| observed_at - *last >= GONE_CHECK_AFTER)
        .collect();
    waiting.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    waiting
        .into_iter()
        .take(MAX_GONE_CHECKS)
        .map(|(_, listing)| listing)
        .collect()
}

/// How one ad page answered.
enum Answer {
    Up,
    Gone,
    /// Not asked (robots.txt, the time budget) or no answer to go by (5xx, 429 past its
    /// retries, a timeout): nothing more is asked this read.
    Unknown,
}

async fn ask(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    crawler: &PortalCrawler,
    rules: &RobotsRules,
    base: &str,
    url: String,
) -> Answer {
    if !allowed(rules, base, &url) {
        return Answer::Unknown;
    }
    let Some(_one_at_a_time) = crawler.turn().await else {
        return Answer::Unknown;
    };
    match read_text(client, limiter, policy, &crawler.get(url.clone())).await {
        Ok(_) => Answer::Up,
        Err(FetchError::Refused {
            status: 404 | 410, ..
        }) => Answer::Gone,
        Err(error) => {
            tracing::info!(%url, %error, "ad page check: no answer to go by");
            Answer::Unknown
        }
    }
}

/// Asks for the pages of [`candidates`] after `read`, once a page `read` saw answers.
#[allow(clippy::too_many_arguments)]
pub async fn check_gone(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    kind: SourceKind,
    base: &str,
    crawler: &PortalCrawler,
    rules: &RobotsRules,
    previous: &PollState,
    read: &MarketRead,
    observed_at: DateTime<Utc>,
) -> GoneChecks {
    let mut out = GoneChecks::default();
    let waiting = candidates(previous, read, observed_at);
    if waiting.is_empty() {
        return out;
    }
    let Some(control) = read.listings.iter().find_map(|l| ad_page(kind, base, l)) else {
        return out;
    };
    out.asked += 1;
    match ask(
        client,
        limiter,
        policy,
        crawler,
        rules,
        base,
        control.clone(),
    )
    .await
    {
        Answer::Up => {}
        Answer::Gone => {
            tracing::warn!(url = %control, "the page of an ad just seen is gone: ad pages have moved, no delisting inferred from them");
            out.untrusted = true;
            return out;
        }
        Answer::Unknown => return out,
    }
    for listing in waiting {
        let Some(url) = ad_page(kind, base, listing) else {
            continue;
        };
        out.asked += 1;
        match ask(client, limiter, policy, crawler, rules, base, url).await {
            Answer::Up => out.still_up.insert(listing.id.as_str().to_owned()),
            Answer::Gone => out.gone.insert(listing.id.as_str().to_owned()),
            Answer::Unknown => break,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::listing::{ListingId, ListingSource};

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
            + TimeDelta::hours(hours)
    }

    fn ad(id: u32, seen_at: DateTime<Utc>) -> Listing {
        let page =
            include_bytes!("../../tests/fixtures/mubawab_search_real_estate_for_rent_en.html");
        let mut listing = mubawab::parse_page(page, seen_at)
            .expect("fixture")
            .listings
            .swap_remove(0);
        listing.id = ListingId::new(ListingSource::Mubawab, &id.to_string()).expect("id");
        listing.observed_at = seen_at;
        listing.source_url = Some(format!("https://www.mubawab.ma/fr/a/{id}/appartement"));
        listing
    }

    fn state(listings: &[Listing]) -> PollState {
        PollState {
            listings: listings
                .iter()
                .map(|l| (l.id.as_str().to_owned(), l.clone()))
                .collect::<BTreeMap<_, _>>(),
            ..PollState::default()
        }
    }

    #[test]
    fn the_ad_page_is_the_listing_address_on_the_configured_site() {
        let listing = ad(8215422, at(0));
        assert_eq!(
            ad_page(SourceKind::Mubawab, "http://127.0.0.1:9/mubawab/", &listing).as_deref(),
            Some("http://127.0.0.1:9/mubawab/fr/a/8215422/appartement")
        );
        assert_eq!(
            ad_page(SourceKind::Mubawab, mubawab::ORIGIN, &listing).as_deref(),
            Some("https://www.mubawab.ma/fr/a/8215422/appartement")
        );
        // An address on another site (or host-relative trickery) is never followed.
        for url in [
            "https://evil.example/fr/a/1/x",
            "https://www.mubawab.ma.evil.example/fr/a/1",
            "https://www.mubawab.ma//evil.example/x",
        ] {
            let mut other = listing.clone();
            other.source_url = Some(url.into());
            assert_eq!(
                ad_page(SourceKind::Mubawab, mubawab::ORIGIN, &other),
                None,
                "{url}"
            );
        }
        assert_eq!(ad_page(SourceKind::Avito, avito::ORIGIN, &listing), None);
    }

    #[test]
    fn the_listings_unseen_and_unchecked_longest_are_checked_first_and_few() {
        let now = at(100);
        let mut listings: Vec<Listing> = (0..20).map(|i| ad(i, at(i64::from(i)))).collect();
        // Seen a moment ago: not yet.
        listings.push(ad(99, now - TimeDelta::hours(1)));
        let mut previous = state(&listings);
        // Listing 0, unseen longest, was checked an hour ago: it waits.
        previous.page_checked_at.insert(
            listings[0].id.as_str().to_owned(),
            now - TimeDelta::hours(1),
        );
        let read = MarketRead {
            // Listing 1 was seen by this read, listing 2 rejected by it.
            listings: vec![ad(1, now)],
            rejected_ids: BTreeSet::from([listings[2].id.as_str().to_owned()]),
            ..MarketRead::default()
        };
        let ids: Vec<String> = candidates(&previous, &read, now)
            .iter()
            .map(|l| l.id.native_id().to_owned())
            .collect();
        assert_eq!(ids, ["3", "4", "5", "6", "7", "8"]);
        assert_eq!(ids.len(), MAX_GONE_CHECKS);
        // Exactly GONE_CHECK_AFTER unseen is due; just under is not.
        let due = state(&[
            ad(1, now - GONE_CHECK_AFTER),
            ad(2, now - GONE_CHECK_AFTER + TimeDelta::seconds(1)),
        ]);
        let ids: Vec<String> = candidates(&due, &MarketRead::default(), now)
            .iter()
            .map(|l| l.id.native_id().to_owned())
            .collect();
        assert_eq!(ids, ["1"]);
    }
}
