//! A portal's redirects, one hop at a time. The poller's client follows none
//! ([`super::fetch::http_client`]): the crawler asks for a hop only when it lands on the site,
//! robots.txt allows it, and the page's own rule says it is still the page asked for (a
//! search's own address, an ad's own page). Otherwise the redirect is the answer: a failed
//! read for a search, evidence (or nothing) for an ad page ([`super::gone`]).

use reqwest::Url;

use super::fetch::FetchError;

/// Most hops one page may take: RFC 9309 asks a crawler to follow robots.txt through five.
pub const MAX_HOPS: usize = 5;

/// Where a redirect from `from` with `location` points (a relative `Location` resolved
/// against `from`); `None` when it names no URL.
pub fn target(from: &str, location: &str) -> Option<Url> {
    if location.is_empty() {
        return None;
    }
    Url::parse(from).ok()?.join(location).ok()
}

/// `url`'s path from the root of the site at `base`, when `url` is on that site: its scheme,
/// host and port, no credentials, and under `base`'s path (a simulator serves a portal under
/// a prefix that stands for its host).
pub fn site_path(base: &str, url: &Url) -> Option<String> {
    let base = Url::parse(base.trim_end_matches('/')).ok()?;
    let same_origin = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none();
    if !same_origin {
        return None;
    }
    let prefix = base.path().trim_end_matches('/');
    let path = url.path().strip_prefix(prefix)?;
    (path.starts_with('/') || path.is_empty()).then(|| path.to_owned())
}

/// Fetches `url` with `fetch`, following each redirect whose target `follow` accepts, at most
/// [`MAX_HOPS`]; a redirect it refuses is returned as the [`FetchError::Redirected`] it is,
/// and one hop too many as that hop's.
pub async fn fetch_following<T, F, Fut>(
    url: String,
    mut fetch: F,
    follow: impl Fn(&Url) -> bool,
) -> Result<T, FetchError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<T, FetchError>>,
{
    let mut url = url;
    for hop in 0..=MAX_HOPS {
        let redirect = match fetch(url).await {
            Err(redirect @ FetchError::Redirected { .. }) => redirect,
            answer => return answer,
        };
        let FetchError::Redirected {
            url: from,
            location,
            ..
        } = &redirect
        else {
            return Err(redirect);
        };
        match target(from, location) {
            Some(next) if hop < MAX_HOPS && follow(&next) => url = next.to_string(),
            _ => return Err(redirect),
        }
    }
    unreachable!("the last hop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hop_is_on_the_site_only_at_its_origin_and_under_its_prefix() {
        let on = |base: &str, url: &str| site_path(base, &Url::parse(url).expect("url"));
        let sim = "http://127.0.0.1:9/mubawab";
        assert_eq!(
            on(sim, "http://127.0.0.1:9/mubawab/fr/a/1/x").as_deref(),
            Some("/fr/a/1/x")
        );
        assert_eq!(on(sim, "http://127.0.0.1:9/mubawab").as_deref(), Some(""));
        for elsewhere in [
            "http://127.0.0.1:9/avito/fr/a/1/x",
            "http://127.0.0.1:9/mubawabx/fr/a/1",
            "http://127.0.0.1:10/mubawab/fr/a/1",
            "https://127.0.0.1:9/mubawab/fr/a/1",
            "http://user@127.0.0.1:9/mubawab/fr/a/1",
        ] {
            assert_eq!(on(sim, elsewhere), None, "{elsewhere}");
        }
        let real = "https://www.mubawab.ma";
        assert_eq!(
            on(real, "https://www.mubawab.ma:443/fr/st/rabat/x").as_deref(),
            Some("/fr/st/rabat/x")
        );
        for elsewhere in [
            "http://www.mubawab.ma/fr/st/rabat/x",
            "https://mubawab.ma/fr/st/rabat/x",
            "https://www.mubawab.ma.evil.example/fr",
        ] {
            assert_eq!(on(real, elsewhere), None, "{elsewhere}");
        }
        // A relative Location resolves against the page that sent it.
        let next = target("https://www.mubawab.ma/fr/a/1/x", "../2/y").expect("target");
        assert_eq!(next.as_str(), "https://www.mubawab.ma/fr/a/2/y");
        assert_eq!(target("https://www.mubawab.ma/fr/a/1/x", ""), None);
    }
}
