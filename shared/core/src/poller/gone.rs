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
use super::hops;
use super::portal::{PortalCrawler, allowed};
use crate::listing::Listing;
use crate::sources::SourceKind;
use crate::sources::portal::crawl::RobotsRules;
use crate::sources::portal::{avito, mubawab};

/// Most ad pages checked after one read, besides the control.
pub const MAX_GONE_CHECKS: usize = 6;

/// Most ad pages one poll asks a site for, first controls included, and only in the first
/// half of the site's time budget: the search pages of every market come first. The control
/// that confirms a read's 404s is outside it (at most one a read that found a page gone).
pub const MAX_AD_PAGES_PER_POLL: u32 = 16;

/// A listing is checked once it has been neither seen nor asked about for this long: an ad
/// pushed past the pages read is not asked about every poll.
pub const GONE_CHECK_AFTER: TimeDelta = TimeDelta::hours(6);

/// What the checks after one read found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoneChecks {
    /// Listings whose page is gone (404, 410).
    pub gone: BTreeSet<String>,
    /// Listings asked about and not found gone (the page answered, or nothing to go by for
    /// that page alone: robots.txt disallows it, a 403): asked again after
    /// [`GONE_CHECK_AFTER`], so one such page never holds the others up.
    pub asked_not_gone: BTreeSet<String>,
    /// Ad pages requested from the site, controls included (not those robots.txt disallows
    /// or no turn was left for).
    pub asked: u32,
    /// A control page (of an ad this read saw, at the address it was last stored with) was
    /// gone: ad pages have moved, no check was believed.
    pub untrusted: bool,
}

/// The ad page of a listing whose address is `source_url`, on the site at `base`: the
/// address's path on the portal's origin (normalised: no `..` leaves it), with `base` in
/// place of the origin (a simulator's prefix, or the origin itself). `None` for an address
/// on another host, scheme or port: it came from a page, and is never followed there.
pub fn ad_page(kind: SourceKind, base: &str, source_url: Option<&str>) -> Option<String> {
    let origin = match kind {
        SourceKind::Avito => avito::ORIGIN,
        SourceKind::Mubawab => mubawab::ORIGIN,
        _ => return None,
    };
    let origin = reqwest::Url::parse(origin).ok()?;
    let url = reqwest::Url::parse(source_url?).ok()?;
    let same_site = url.scheme() == origin.scheme()
        && url.host_str() == origin.host_str()
        && url.port() == origin.port()
        && url.username().is_empty()
        && url.password().is_none();
    let path = url.path();
    (same_site && path.len() > 1).then(|| {
        let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
        format!("{}{path}{query}", base.trim_end_matches('/'))
    })
}

/// The listings of `previous` to check after `read`: not seen (nor rejected) by it, with an
/// ad page, unseen and not asked about for [`GONE_CHECK_AFTER`], those waiting longest
/// first, at most [`MAX_GONE_CHECKS`]; each with its page.
pub fn candidates<'a>(
    kind: SourceKind,
    base: &str,
    previous: &'a PollState,
    read: &MarketRead,
    observed_at: DateTime<Utc>,
) -> Vec<(&'a Listing, String)> {
    let seen: BTreeSet<&str> = read.listings.iter().map(|l| l.id.as_str()).collect();
    let mut waiting: Vec<(DateTime<Utc>, &Listing, String)> = previous
        .listings
        .iter()
        .filter(|(id, _)| !seen.contains(id.as_str()) && !read.rejected_ids.contains(*id))
        .filter_map(|(id, listing)| {
            let page = ad_page(kind, base, listing.source_url.as_deref())?;
            let asked = previous.page_checked_at.get(id).copied();
            let last = asked.map_or(listing.observed_at, |a| a.max(listing.observed_at));
            Some((last, listing, page))
        })
        .filter(|(last, _, _)| observed_at - *last >= GONE_CHECK_AFTER)
        .collect();
    waiting.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    waiting
        .into_iter()
        .take(MAX_GONE_CHECKS)
        .map(|(_, listing, page)| (listing, page))
        .collect()
}

/// The ad an ad page at `path` (from the site's root) names: two addresses of one ad name the
/// same ([`avito::ad_identity`], [`mubawab::ad_identity`]).
fn ad_identity(kind: SourceKind, path: &str) -> Option<String> {
    match kind {
        SourceKind::Avito => avito::ad_identity(path),
        SourceKind::Mubawab => mubawab::ad_identity(path),
        _ => None,
    }
}

/// How one ad page answered.
enum Answer {
    Up,
    /// 404 or 410; or a redirect to another page of the site (a search, the home page,
    /// another ad): the portals send a taken-down ad's address elsewhere (docs/sources.md,
    /// "Ads the pages no longer reach").
    Gone,
    /// Nothing to go by for this page alone (robots.txt disallows it, a 4xx other than 404
    /// and 410): the next is asked.
    Undecided,
    /// Nothing to go by from the site (its time or request share for the poll spent, 5xx or
    /// 429 past their retries, a timeout): nothing more is asked this read.
    SiteUnavailable,
}

/// Which share of the site's time an ad page may take.
#[derive(Clone, Copy, PartialEq)]
enum Share {
    /// [`PortalCrawler::ad_page_turn`]: the first half of the budget, a few pages a poll.
    AdPages,
    /// The control that confirms the 404s found: the site's whole budget, so that checks
    /// already made are not thrown away for want of it.
    Closing,
}

/// The site the ad pages are asked of, with what every request to it goes through.
struct Site<'a> {
    kind: SourceKind,
    client: &'a reqwest::Client,
    limiter: &'a RateLimiter,
    policy: &'a HttpPolicy,
    crawler: &'a PortalCrawler,
    rules: &'a RobotsRules,
    base: &'a str,
}

impl Site<'_> {
    /// How the ad page at `url` answers, within `share` of the site's time; `asked` counts
    /// the pages requested.
    async fn ask(&self, url: &str, share: Share, asked: &mut u32) -> Answer {
        if !allowed(self.rules, self.base, url) {
            return Answer::Undecided;
        }
        let turn = match share {
            Share::AdPages => self.crawler.ad_page_turn(MAX_AD_PAGES_PER_POLL).await,
            Share::Closing => self.crawler.turn().await,
        };
        let Some(turn) = turn else {
            return Answer::SiteUnavailable;
        };
        *asked += 1;
        let answer = self.fetch_following_the_ad(url).await;
        drop(turn);
        match answer {
            Ok(_) => Answer::Up,
            Err(FetchError::Refused {
                status: 404 | 410, ..
            }) => Answer::Gone,
            Err(FetchError::Redirected {
                url: from,
                location,
                ..
            }) => self.redirected(url, &from, &location),
            Err(FetchError::Refused { status, .. }) if (400..500).contains(&status) => {
                tracing::info!(%url, status, "ad page check: no answer to go by");
                Answer::Undecided
            }
            Err(error) => {
                tracing::info!(%url, %error, "ad page checks end for this read");
                Answer::SiteUnavailable
            }
        }
    }
}

impl Site<'_> {
    /// The ad page at `url`, its redirects followed only to the same ad's page on the site
    /// (a slug rewritten), where robots.txt allows, within the turn the caller holds.
    async fn fetch_following_the_ad(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let ad = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| hops::site_path(self.base, &u))
            .and_then(|path| ad_identity(self.kind, &path));
        let same_ad = |to: &reqwest::Url| {
            ad.is_some()
                && hops::site_path(self.base, to).and_then(|p| ad_identity(self.kind, &p)) == ad
                && allowed(self.rules, self.base, to.as_str())
        };
        let fetch = |url: String| {
            let request = self.crawler.get(url);
            async move { read_text(self.client, self.limiter, self.policy, &request).await }
        };
        hops::fetch_following(url.to_owned(), fetch, same_ad).await
    }

    /// What a redirect of the ad page at `url` not followed (from `from` to `location`) says:
    /// another page of the site, the ad gone; off the site, nowhere, the same ad's page
    /// robots.txt disallows, or past the hops, nothing to go by.
    fn redirected(&self, url: &str, from: &str, location: &str) -> Answer {
        let ad = self.identity(url);
        let on_site = hops::target(from, location)
            .and_then(|to| hops::site_path(self.base, &to).map(|path| (to, path)));
        match on_site {
            Some((to, path)) if ad.is_some() && ad_identity(self.kind, &path) != ad => {
                tracing::info!(%url, to = %to, "ad page redirected to another page of the site: taken down");
                Answer::Gone
            }
            _ => {
                tracing::info!(%url, %location, "ad page check: a redirect with nothing to go by");
                Answer::Undecided
            }
        }
    }

    /// The ad the page at `url` names.
    fn identity(&self, url: &str) -> Option<String> {
        let path = hops::site_path(self.base, &reqwest::Url::parse(url).ok()?)?;
        ad_identity(self.kind, &path)
    }
}

/// Asks for the pages of [`candidates`] after `read`. A 404 is believed only while the
/// pages of ads this read saw, at the addresses stored for them (the candidates' addresses
/// are as old), answer: one asked before the checks and, if any page was gone, another
/// after them.
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
    let waiting = candidates(kind, base, previous, read, observed_at);
    if waiting.is_empty() {
        return out;
    }
    // Ads this read saw, at their stored addresses, that robots.txt lets us ask for.
    let mut controls = read.listings.iter().filter_map(|l| {
        let stored = previous.listings.get(l.id.as_str())?;
        ad_page(kind, base, stored.source_url.as_deref()).filter(|url| allowed(rules, base, url))
    });
    let site = Site {
        kind,
        client,
        limiter,
        policy,
        crawler,
        rules,
        base,
    };
    let mut first_control = None;
    let mut control = async |out: &mut GoneChecks, share: Share| -> bool {
        // Another ad's page where the read saw more than one, else the same again.
        let Some(url) = controls.next().or_else(|| first_control.clone()) else {
            return false;
        };
        first_control.get_or_insert_with(|| url.clone());
        match site.ask(&url, share, &mut out.asked).await {
            Answer::Up => true,
            Answer::Gone => {
                tracing::warn!(%url, "the page of an ad just seen is gone: ad pages have moved, no delisting inferred from them");
                out.untrusted = true;
                false
            }
            Answer::Undecided | Answer::SiteUnavailable => false,
        }
    };
    if !control(&mut out, Share::AdPages).await {
        return out;
    }
    for (listing, url) in waiting {
        let id = listing.id.as_str().to_owned();
        match site.ask(&url, Share::AdPages, &mut out.asked).await {
            Answer::Up | Answer::Undecided => out.asked_not_gone.insert(id),
            Answer::Gone => out.gone.insert(id),
            Answer::SiteUnavailable => break,
        };
    }
    if !out.gone.is_empty() && !control(&mut out, Share::Closing).await {
        // The site stopped answering pages that are up (blocking us, or moved meanwhile):
        // its 404s say nothing.
        out.gone.clear();
    }
    out
}

#[cfg(test)]
#[path = "gone_site_tests.rs"]
mod site_tests;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::listing::{ListingId, ListingSource};

    pub(super) fn at(hours: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
            + TimeDelta::hours(hours)
    }

    pub(super) fn ad(id: u32, seen_at: DateTime<Utc>) -> Listing {
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

    pub(super) fn state(listings: &[Listing]) -> PollState {
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
        let url = listing.source_url.as_deref();
        assert_eq!(
            ad_page(SourceKind::Mubawab, "http://127.0.0.1:9/mubawab/", url).as_deref(),
            Some("http://127.0.0.1:9/mubawab/fr/a/8215422/appartement")
        );
        assert_eq!(
            ad_page(SourceKind::Mubawab, mubawab::ORIGIN, url).as_deref(),
            Some("https://www.mubawab.ma/fr/a/8215422/appartement")
        );
        // `..` is resolved on the site's own root: it never climbs out of the base's prefix.
        assert_eq!(
            ad_page(
                SourceKind::Mubawab,
                "http://127.0.0.1:9/mubawab",
                Some("https://www.mubawab.ma/fr/a/1/../../../avito/x")
            )
            .as_deref(),
            Some("http://127.0.0.1:9/mubawab/avito/x")
        );
        // Encoded dots too (`%2e%2e`): the path asked for is the one robots.txt is matched on.
        assert_eq!(
            ad_page(
                SourceKind::Mubawab,
                mubawab::ORIGIN,
                Some("https://www.mubawab.ma/fr/a/%2e%2e/x")
            )
            .as_deref(),
            Some("https://www.mubawab.ma/fr/x")
        );
        // An address on another site, port, scheme or with credentials is never followed.
        for other in [
            "https://evil.example/fr/a/1/x",
            "https://www.mubawab.ma.evil.example/fr/a/1",
            "https://www.mubawab.ma@evil.example/fr/a/1",
            "https://user@www.mubawab.ma/fr/a/1",
            "https://www.mubawab.ma:8443/fr/a/1",
            "http://www.mubawab.ma/fr/a/1",
            "https://www.mubawab.ma/",
            "/fr/a/1/x",
            "",
        ] {
            assert_eq!(
                ad_page(SourceKind::Mubawab, mubawab::ORIGIN, Some(other)),
                None,
                "{other}"
            );
        }
        assert_eq!(ad_page(SourceKind::Avito, avito::ORIGIN, url), None);
        assert_eq!(ad_page(SourceKind::Zillow, mubawab::ORIGIN, url), None);
        assert_eq!(ad_page(SourceKind::Mubawab, mubawab::ORIGIN, None), None);
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
        // Listing 3 has no address on the site: it is passed over, not given a turn.
        previous
            .listings
            .get_mut(listings[3].id.as_str())
            .expect("listing 3")
            .source_url = None;
        let ids: Vec<String> =
            candidates(SourceKind::Mubawab, mubawab::ORIGIN, &previous, &read, now)
                .iter()
                .map(|(l, _)| l.id.native_id().to_owned())
                .collect();
        assert_eq!(ids, ["4", "5", "6", "7", "8", "9"]);
        assert_eq!(ids.len(), MAX_GONE_CHECKS);
        // Exactly GONE_CHECK_AFTER unseen is due; just under is not.
        let due = state(&[
            ad(1, now - GONE_CHECK_AFTER),
            ad(2, now - GONE_CHECK_AFTER + TimeDelta::seconds(1)),
        ]);
        let ids: Vec<String> = candidates(
            SourceKind::Mubawab,
            mubawab::ORIGIN,
            &due,
            &MarketRead::default(),
            now,
        )
        .iter()
        .map(|(l, _)| l.id.native_id().to_owned())
        .collect();
        assert_eq!(ids, ["1"]);
    }
}
