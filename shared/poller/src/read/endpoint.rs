//! Where and how to reach one source: its base URL, key, credentials and crawler.

use super::portal::PortalCrawler;
use realty_model::markets::SourceKind;

/// Where and how to reach one source. `Debug` leaves the key out.
#[derive(Clone)]
pub struct SourceEndpoint {
    pub kind: SourceKind,
    /// Base URL: `https://zillow-com1.p.rapidapi.com`, or a simulator's.
    pub base_url: String,
    /// RapidAPI key (Zillow, Realtor.com); empty for RESO.
    pub key: String,
    /// RESO's bearer token or client credentials, with the cached access token.
    pub reso_auth: Option<std::sync::Arc<crate::reso_auth::ResoAuth>>,
    /// RESO: how often a market is read whole (the only read that may infer delistings).
    pub reso_full_read_every: chrono::TimeDelta,
    /// Portals: the crawler's user agent, its one-request-at-a-time gate and the site's
    /// robots.txt.
    pub crawler: Option<std::sync::Arc<PortalCrawler>>,
}

impl std::fmt::Debug for SourceEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceEndpoint")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("key", &realty_model::config::REDACTED)
            .field("reso_auth", &self.reso_auth)
            .field("crawler", &self.crawler)
            .finish()
    }
}
