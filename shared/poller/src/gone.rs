//! Whether listings a portal's reads no longer reach are gone: their own ad pages asked.
//!
//! A portal read is often crawl-limited (Mubawab's robots.txt allows a search's first page
//! only; Avito's are read to [`super::read::portal::MAX_PORTAL_PAGES`]): an ad that slipped past
//! the pages read may be up on a later page or taken down, and its absence says neither. Its
//! own page does: a 404 or 410, or a redirect to another page of the site, is evidence of a
//! delisting; a page that answers is evidence it is up. So every listing of a market's state
//! that has been neither seen by a read nor asked about for [`GONE_CHECK_AFTER`] is due, and
//! each run asks for the pages of the due ones, those waiting longest first, as many as the
//! site's share of the run allows ([`super::run::verify`]): every ad is verified within
//! [`VERIFIED_WITHIN`] as long as the site's ads fit its capacity (docs/sources.md).
//!
//! The answer trusted is only as good as the ad addresses: before any 404 is believed, the
//! page of an ad the reads saw last must answer. If it does not (the site moved its ad
//! pages), nothing is taken as gone.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::detect::PollState;
use super::fetch::{FetchError, HttpPolicy, RateLimiter, read_text};
use super::hops;
use super::read::portal::{PortalCrawler, allowed};
use realty_model::listing::Listing;
use realty_model::markets::SourceKind;
use realty_sources::portal::crawl::RobotsRules;
use realty_sources::portal::{avito, mubawab};

/// A listing is due once it has been neither seen by a read nor asked about for this long:
/// a day, so that an ad the reads no longer reach costs its site a request a day, not one
/// every poll.
pub const GONE_CHECK_AFTER: TimeDelta = TimeDelta::hours(24);

/// What is promised: every ad of a portal market's state with a page on the site is seen by
/// a read or has its page asked for within this long, while the site's ads fit its capacity
/// (docs/sources.md, "Ads the pages no longer reach"); the metric
/// `portal_oldest_unverified_ad_hours` and its alarm say when they do not.
pub const VERIFIED_WITHIN: TimeDelta = TimeDelta::days(3);

/// What the checks of one market's state found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoneChecks {
    /// Listings whose page is gone (404, 410, a redirect elsewhere on the site).
    pub gone: BTreeSet<String>,
    /// Listings asked about and not found gone (the page answered, or nothing to go by for
    /// that page alone: robots.txt disallows it, a 403): asked again after
    /// [`GONE_CHECK_AFTER`], so one such page never holds the others up.
    pub asked_not_gone: BTreeSet<String>,
    /// Ad pages requested from the site, controls included (not those robots.txt disallows
    /// or no turn was left for).
    pub asked: u32,
    /// A control page (of an ad the reads saw last) was gone: ad pages have moved, no check
    /// was believed.
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

/// When `listing` (`id` in `state`) was last verified: seen by a read, or its page asked
/// for and not found gone.
pub fn last_verified(state: &PollState, id: &str, listing: &Listing) -> DateTime<Utc> {
    state
        .page_checked_at
        .get(id)
        .map_or(listing.observed_at, |asked| {
            (*asked).max(listing.observed_at)
        })
}

/// The listings of `state` due at `now`: with an ad page on the site, neither seen nor asked
/// about for [`GONE_CHECK_AFTER`], those waiting longest first, at most `most`; each with its
/// page.
pub fn candidates<'a>(
    kind: SourceKind,
    base: &str,
    state: &'a PollState,
    now: DateTime<Utc>,
    most: usize,
) -> Vec<(&'a Listing, String)> {
    let mut waiting: Vec<(DateTime<Utc>, &Listing, String)> = state
        .listings
        .iter()
        .filter_map(|(id, listing)| {
            let last = last_verified(state, id, listing);
            if now - last < GONE_CHECK_AFTER {
                return None;
            }
            Some((
                last,
                listing,
                ad_page(kind, base, listing.source_url.as_deref())?,
            ))
        })
        .collect();
    waiting.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    waiting.truncate(most);
    waiting
        .into_iter()
        .map(|(_, listing, page)| (listing, page))
        .collect()
}

/// When the least recently verified listing of `state` with an ad page on the site was
/// verified ([`last_verified`]), after `checks` at `now`; `None` for a state without one.
/// Listings without such a page are verified by the reads alone (the real pages give every
/// ad its address).
pub fn oldest_verification(
    kind: SourceKind,
    base: &str,
    state: &PollState,
    checks: &GoneChecks,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    state
        .listings
        .iter()
        .filter(|(id, _)| !checks.gone.contains(*id))
        .filter(|(_, l)| ad_page(kind, base, l.source_url.as_deref()).is_some())
        .map(|(id, listing)| {
            if checks.asked_not_gone.contains(id) {
                now
            } else {
                last_verified(state, id, listing)
            }
        })
        .min()
}

/// Pages of ads the reads saw last (sightings of `state` less than [`GONE_CHECK_AFTER`]
/// before `now`, newest first), that robots.txt lets us ask for: the controls, before the
/// checks and after them ([`Site::check`]); two, or the same one twice; none when no read
/// saw an ad lately (nothing is then believed).
fn controls(
    kind: SourceKind,
    base: &str,
    state: &PollState,
    rules: &RobotsRules,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut newest: Vec<&Listing> = state
        .listings
        .values()
        .filter(|l| now - l.observed_at < GONE_CHECK_AFTER)
        .collect();
    newest.sort_by(|a, b| {
        b.observed_at
            .cmp(&a.observed_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    let pages: Vec<String> = newest
        .into_iter()
        .filter_map(|l| ad_page(kind, base, l.source_url.as_deref()))
        .filter(|url| allowed(rules, base, url))
        .take(2)
        .collect();
    match pages.as_slice() {
        [only] => vec![only.clone(), only.clone()],
        _ => pages,
    }
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

/// The site the ad pages are asked of, with what every request to it goes through.
pub struct Site<'a> {
    pub kind: SourceKind,
    pub client: &'a reqwest::Client,
    pub limiter: &'a RateLimiter,
    pub policy: &'a HttpPolicy,
    pub crawler: &'a PortalCrawler,
    pub rules: &'a RobotsRules,
    pub base: &'a str,
}

impl Site<'_> {
    /// How the ad page at `url` answers, within the site's time; `asked` counts the pages
    /// requested.
    async fn ask(&self, url: &str, asked: &mut u32) -> Answer {
        if !allowed(self.rules, self.base, url) {
            return Answer::Undecided;
        }
        let Some(turn) = self.crawler.turn().await else {
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

impl Site<'_> {
    /// Asks for the pages of the [`candidates`] of `state` at `now`, at most `most`. A gone
    /// page is believed only while the pages of ads the reads saw in the last day (the controls), at
    /// the addresses stored for them (the candidates' addresses are as old), answer: one asked
    /// before the checks (unless `site_answers`: one did this run, for another market of the
    /// site) and, if any page was gone, another after them. `site_answers` is left saying
    /// whether the last control asked answered.
    pub async fn check(
        &self,
        state: &PollState,
        most: usize,
        now: DateTime<Utc>,
        site_answers: &mut bool,
    ) -> GoneChecks {
        let mut out = GoneChecks::default();
        let waiting = candidates(self.kind, self.base, state, now, most);
        if waiting.is_empty() {
            return out;
        }
        let controls = controls(self.kind, self.base, state, self.rules, now);
        let control = async |out: &mut GoneChecks, url: Option<&String>| -> bool {
            let Some(url) = url else {
                return false;
            };
            match self.ask(url, &mut out.asked).await {
                Answer::Up => true,
                Answer::Gone => {
                    tracing::warn!(%url, "the page of an ad the reads saw last is gone: ad pages have moved, no delisting inferred from them");
                    out.untrusted = true;
                    false
                }
                Answer::Undecided | Answer::SiteUnavailable => false,
            }
        };
        if !*site_answers {
            *site_answers = control(&mut out, controls.first()).await;
            if !*site_answers {
                return out;
            }
        }
        for (listing, url) in waiting {
            let id = listing.id.as_str().to_owned();
            match self.ask(&url, &mut out.asked).await {
                Answer::Up | Answer::Undecided => out.asked_not_gone.insert(id),
                Answer::Gone => out.gone.insert(id),
                Answer::SiteUnavailable => break,
            };
        }
        if !out.gone.is_empty() {
            *site_answers = control(&mut out, controls.last()).await;
            if !*site_answers {
                // The site stopped answering pages that are up (blocking us, or moved
                // meanwhile): its 404s say nothing.
                out.gone.clear();
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "gone_site_tests.rs"]
mod site_tests;

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use realty_model::listing::{ListingId, ListingSource};

    pub(crate) fn at(hours: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
            + TimeDelta::hours(hours)
    }

    pub(crate) fn ad(id: u32, seen_at: DateTime<Utc>) -> Listing {
        // Read once: tests build states of a thousand ads.
        static FIRST_CARD: std::sync::LazyLock<Listing> = std::sync::LazyLock::new(|| {
            let page = include_bytes!(
                "../../sources/tests/fixtures/mubawab_search_real_estate_for_rent_en.html"
            );
            mubawab::parse_page(page, at(0))
                .expect("fixture")
                .listings
                .swap_remove(0)
        });
        let mut listing = FIRST_CARD.clone();
        listing.id = ListingId::new(ListingSource::Mubawab, &id.to_string()).expect("id");
        listing.observed_at = seen_at;
        listing.source_url = Some(format!("https://www.mubawab.ma/fr/a/{id}/appartement"));
        listing
    }

    pub(crate) fn state(listings: &[Listing]) -> PollState {
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
    fn the_listings_unverified_longest_are_due_first_as_many_as_the_share() {
        let now = at(100);
        let mut listings: Vec<Listing> = (0..20).map(|i| ad(i, at(i64::from(i)))).collect();
        // Seen a moment ago: not due.
        listings.push(ad(99, now - TimeDelta::hours(1)));
        let mut state = state(&listings);
        // Listing 0, unseen longest, was checked an hour ago: it waits.
        state.page_checked_at.insert(
            listings[0].id.as_str().to_owned(),
            now - TimeDelta::hours(1),
        );
        // Listing 3 has no address on the site: it is passed over, not given a turn.
        state
            .listings
            .get_mut(listings[3].id.as_str())
            .expect("listing 3")
            .source_url = None;
        let due = |state: &PollState, most| -> Vec<String> {
            candidates(SourceKind::Mubawab, mubawab::ORIGIN, state, now, most)
                .iter()
                .map(|(l, _)| l.id.native_id().to_owned())
                .collect()
        };
        assert_eq!(due(&state, 5), ["1", "2", "4", "5", "6"]);
        // No bound but the share: every due listing of a large state.
        assert_eq!(due(&state, usize::MAX).len(), 18);
        // Exactly GONE_CHECK_AFTER unverified is due; just under is not.
        let edge = self::state(&[
            ad(1, now - GONE_CHECK_AFTER),
            ad(2, now - GONE_CHECK_AFTER + TimeDelta::seconds(1)),
        ]);
        assert_eq!(due(&edge, usize::MAX), ["1"]);
    }

    #[test]
    fn the_oldest_verification_counts_sightings_checks_and_this_pass() {
        let now = at(100);
        let mut listings: Vec<Listing> = (0..4).map(|i| ad(i, at(i64::from(i)))).collect();
        // An ad without a page on the site is verified by the reads alone: not counted.
        listings[3].source_url = None;
        listings[3].observed_at = at(-50);
        let mut state = state(&listings);
        state
            .page_checked_at
            .insert(listings[1].id.as_str().to_owned(), at(90));
        let oldest = |checks: &GoneChecks| {
            oldest_verification(SourceKind::Mubawab, mubawab::ORIGIN, &state, checks, now)
        };
        assert_eq!(oldest(&GoneChecks::default()), Some(at(0)));
        // Ad 0 found gone, ad 2 asked now: ad 1, checked at hour 90, is the oldest.
        let id = |i: usize| listings[i].id.as_str().to_owned();
        let checks = GoneChecks {
            gone: BTreeSet::from([id(0)]),
            asked_not_gone: BTreeSet::from([id(2)]),
            ..GoneChecks::default()
        };
        assert_eq!(oldest(&checks), Some(at(90)));
        assert_eq!(
            oldest_verification(
                SourceKind::Mubawab,
                mubawab::ORIGIN,
                &PollState::default(),
                &GoneChecks::default(),
                now
            ),
            None
        );
    }
}
