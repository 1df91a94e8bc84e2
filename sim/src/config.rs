//! Configuration of a simulated market and of its HTTP faults.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike as _, TimeZone as _, Utc};
use serde::Serialize;

use crate::error::SimError;

/// Live ads per search (city, offer, kind of property) when not configured; each city's
/// are this times its [`crate::portal::MoroccanCity::size`].
pub const DEFAULT_ADS_PER_SEARCH: u32 = 60;
/// Most live ads per search.
pub const MAX_ADS_PER_SEARCH: u32 = 5_000;

/// Listings per market when not configured: "a few thousand", like a mid-size US city.
pub const DEFAULT_LISTINGS_PER_MARKET: u32 = 3_000;
/// Most listings one market may start with.
pub const MAX_LISTINGS_PER_MARKET: u32 = 100_000;

/// What market to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketConfig {
    /// Market keys (`nashville-tn`) to simulate; empty means every built-in market.
    pub markets: Vec<String>,
    /// Live (active + pending) listings each market starts with and hovers around.
    pub listings_per_market: u32,
    /// Simulated time at the start. Events happen in whole simulated hours counted from it.
    pub start: DateTime<Utc>,
    /// Multiplies every event rate (2.0 = twice as many events per simulated hour); demos
    /// use it to see more happen in less simulated time.
    pub activity: f64,
    /// Live ads of each search of the simulated portals (Avito, Mubawab: one city's ads of
    /// one offer and kind of property), which hover around it.
    pub portal_ads_per_search: u32,
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            markets: Vec::new(),
            listings_per_market: DEFAULT_LISTINGS_PER_MARKET,
            start: default_start(),
            activity: 1.0,
            portal_ads_per_search: DEFAULT_ADS_PER_SEARCH,
        }
    }
}

/// Monday 3 March 2025, 12:00 UTC (7 am on the US east coast).
pub fn default_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 12, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

impl MarketConfig {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        if !(1..=MAX_LISTINGS_PER_MARKET).contains(&self.listings_per_market) {
            return Err(SimError::InvalidConfig(format!(
                "listings_per_market {} is outside 1..={MAX_LISTINGS_PER_MARKET}",
                self.listings_per_market
            )));
        }
        // Listing histories reach years back and advances years ahead of the start.
        let year = self.start.year();
        if !(1950..=9000).contains(&year) {
            return Err(SimError::InvalidConfig(format!(
                "start year {year} is outside 1950..=9000"
            )));
        }
        if !(1..=MAX_ADS_PER_SEARCH).contains(&self.portal_ads_per_search) {
            return Err(SimError::InvalidConfig(format!(
                "portal_ads_per_search {} is outside 1..={}",
                self.portal_ads_per_search, MAX_ADS_PER_SEARCH
            )));
        }
        if !(self.activity.is_finite() && self.activity > 0.0 && self.activity <= 1_000.0) {
            return Err(SimError::InvalidConfig(format!(
                "activity {} is outside (0, 1000]",
                self.activity
            )));
        }
        Ok(())
    }
}

/// Everything a simulator server needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimConfig {
    /// Seeds every random draw: the same seed and the same advances give the same market.
    pub seed: u64,
    pub market: MarketConfig,
    pub faults: FaultConfig,
}

impl SimConfig {
    /// A config with the given seed and defaults otherwise (all markets, no faults).
    pub fn with_seed(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

/// A fault the listing APIs can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `429 Too Many Requests` with `Retry-After`.
    RateLimit,
    /// `500`, `502`, `503` or `504`.
    ServerError,
    /// The right answer, after [`FaultConfig::slow_delay`] (meant to exceed the client's
    /// timeout).
    Slow,
    /// `200` with the JSON body cut short.
    Truncated,
    /// `200` with a body that is not JSON (an HTML page, a `NaN`, a lost comma).
    Malformed,
    /// A paged read sees one listing move from a later page to an earlier, already read
    /// one (Zillow and Realtor.com pages after the first).
    PageShift,
    /// A paged read (from its page 1 on) misses one listing while its counts still add up:
    /// what a price cut across a Zillow price-band edge between band reads, or a delete
    /// plus an insert while paging, look like to a reader (Zillow and Realtor.com). The
    /// next read of the same query starts afresh.
    Hidden,
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        Self::RateLimit,
        Self::ServerError,
        Self::Slow,
        Self::Truncated,
        Self::Malformed,
        Self::PageShift,
        Self::Hidden,
    ];

    /// The faults a careful client can see within one read (it retries, or its counts do
    /// not add up): what `all=P` and [`FaultConfig::uniform`] set. [`FaultKind::Hidden`] is
    /// left out, as no single read can notice it.
    pub const DETECTABLE: [FaultKind; 6] = [
        Self::RateLimit,
        Self::ServerError,
        Self::Slow,
        Self::Truncated,
        Self::Malformed,
        Self::PageShift,
    ];

    /// The name used in specs and JSON (`rate_limit`).
    pub fn name(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::ServerError => "server_error",
            Self::Slow => "slow",
            Self::Truncated => "truncated",
            Self::Malformed => "malformed",
            Self::PageShift => "page_shift",
            Self::Hidden => "hidden",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        let folded = name.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL.into_iter().find(|kind| kind.name() == folded)
    }
}

/// How often each fault happens. Each listing-API request draws at most one fault, from
/// a hash of (seed, simulated now, request, attempt number), so runs repeat exactly; the
/// probabilities must sum to at most 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultConfig {
    pub rate_limit: f64,
    pub server_error: f64,
    pub slow: f64,
    pub truncated: f64,
    pub malformed: f64,
    pub page_shift: f64,
    pub hidden: f64,
    /// How long a slow response takes.
    #[serde(rename = "slow_delay_ms", serialize_with = "serialize_millis")]
    pub slow_delay: Duration,
    /// The `Retry-After` of a 429, seconds.
    pub retry_after_secs: u32,
    /// Attempts of one request (same simulated time, method, target and body) that may
    /// fault; later attempts are always answered, so a retrying client always finishes.
    pub max_faulty_attempts: u32,
}

fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self::none()
    }
}

impl FaultConfig {
    /// No faults.
    pub fn none() -> Self {
        Self {
            rate_limit: 0.0,
            server_error: 0.0,
            slow: 0.0,
            truncated: 0.0,
            malformed: 0.0,
            page_shift: 0.0,
            hidden: 0.0,
            slow_delay: Duration::from_secs(5),
            retry_after_secs: 1,
            max_faulty_attempts: 3,
        }
    }

    /// Every detectable fault kind ([`FaultKind::DETECTABLE`]) with probability `p` each.
    pub fn uniform(p: f64) -> Self {
        let mut config = Self::none();
        for kind in FaultKind::DETECTABLE {
            config.set(kind, p);
        }
        config
    }

    /// The probability of one kind.
    pub fn probability(&self, kind: FaultKind) -> f64 {
        match kind {
            FaultKind::RateLimit => self.rate_limit,
            FaultKind::ServerError => self.server_error,
            FaultKind::Slow => self.slow,
            FaultKind::Truncated => self.truncated,
            FaultKind::Malformed => self.malformed,
            FaultKind::PageShift => self.page_shift,
            FaultKind::Hidden => self.hidden,
        }
    }

    /// Sets the probability of one kind.
    pub fn set(&mut self, kind: FaultKind, p: f64) {
        let slot = match kind {
            FaultKind::RateLimit => &mut self.rate_limit,
            FaultKind::ServerError => &mut self.server_error,
            FaultKind::Slow => &mut self.slow,
            FaultKind::Truncated => &mut self.truncated,
            FaultKind::Malformed => &mut self.malformed,
            FaultKind::PageShift => &mut self.page_shift,
            FaultKind::Hidden => &mut self.hidden,
        };
        *slot = p;
    }

    /// Whether any fault can happen.
    pub fn any(&self) -> bool {
        FaultKind::ALL
            .iter()
            .any(|&kind| self.probability(kind) > 0.0)
    }

    pub fn validate(&self) -> Result<(), SimError> {
        let mut total = 0.0;
        for kind in FaultKind::ALL {
            let p = self.probability(kind);
            if !(0.0..=1.0).contains(&p) {
                return Err(SimError::InvalidConfig(format!(
                    "fault {} probability {p} is outside 0..=1",
                    kind.name()
                )));
            }
            total += p;
        }
        if total > 1.0 + 1e-9 {
            return Err(SimError::InvalidConfig(format!(
                "fault probabilities sum to {total}, more than 1"
            )));
        }
        if self.slow_delay > Duration::from_secs(600) {
            return Err(SimError::InvalidConfig(
                "slow_delay is longer than 10 minutes".into(),
            ));
        }
        Ok(())
    }
}

/// Parses a comma-separated spec, for command lines, such as
/// `rate_limit=0.1,server_error=0.05,slow=0.02,slow_ms=3000,truncated=0.02,malformed=0.02`
/// `,page_shift=0.1,hidden=0.1,retry_after=1,faulty_attempts=3`. `all=P` sets every detectable kind to `P`;
/// `-` and `_` are interchangeable; kinds not named are 0.
impl FromStr for FaultConfig {
    type Err = SimError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut config = Self::none();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let invalid =
                |why: &str| SimError::InvalidConfig(format!("fault spec {part:?}: {why}"));
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| invalid("expected name=value"))?;
            let name = name.trim().to_ascii_lowercase().replace('-', "_");
            let value = value.trim();
            let number = || value.parse::<f64>().map_err(|_| invalid("not a number"));
            let whole = || {
                value
                    .parse::<u32>()
                    .map_err(|_| invalid("not a whole number"))
            };
            match name.as_str() {
                "all" => {
                    let p = number()?;
                    for kind in FaultKind::DETECTABLE {
                        config.set(kind, p);
                    }
                }
                "slow_ms" | "slow_delay_ms" => {
                    config.slow_delay = Duration::from_millis(u64::from(whole()?));
                }
                "retry_after" | "retry_after_secs" => config.retry_after_secs = whole()?,
                "faulty_attempts" | "max_faulty_attempts" => {
                    config.max_faulty_attempts = whole()?;
                }
                other => {
                    let kind = FaultKind::parse(other).ok_or_else(|| invalid("unknown fault"))?;
                    config.set(kind, number()?);
                }
            }
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_sets_named_faults_and_options() {
        let spec = "rate-limit=0.1, server_error=0.05,page_shift=0.2,slow=0.01,slow_ms=250,\
                    retry_after=2,faulty_attempts=4";
        let config: FaultConfig = spec.parse().expect("valid spec");
        assert_eq!(config.rate_limit, 0.1);
        assert_eq!(config.server_error, 0.05);
        assert_eq!(config.page_shift, 0.2);
        assert_eq!(config.slow, 0.01);
        assert_eq!(config.truncated, 0.0);
        assert_eq!(config.slow_delay, Duration::from_millis(250));
        assert_eq!(config.retry_after_secs, 2);
        assert_eq!(config.max_faulty_attempts, 4);
        assert!(config.any());

        let all: FaultConfig = "all=0.1".parse().expect("valid spec");
        assert!(
            FaultKind::DETECTABLE
                .iter()
                .all(|&k| all.probability(k) == 0.1)
        );
        assert_eq!(all.hidden, 0.0);
        assert_eq!(
            "".parse::<FaultConfig>().expect("empty spec"),
            FaultConfig::none()
        );
        assert!(!FaultConfig::none().any());
    }

    #[test]
    fn spec_rejects_nonsense() {
        for bad in [
            "rate_limit",
            "teapot=0.1",
            "slow=abc",
            "all=0.5",
            "slow=1.5",
            "slow_ms=-1",
        ] {
            assert!(bad.parse::<FaultConfig>().is_err(), "{bad}");
        }
    }

    #[test]
    fn market_config_bounds() {
        assert!(MarketConfig::default().validate().is_ok());
        let zero = MarketConfig {
            listings_per_market: 0,
            ..MarketConfig::default()
        };
        assert!(zero.validate().is_err());
        let frozen = MarketConfig {
            activity: 0.0,
            ..MarketConfig::default()
        };
        assert!(frozen.validate().is_err());
        let ancient = MarketConfig {
            start: DateTime::<Utc>::MIN_UTC,
            ..MarketConfig::default()
        };
        assert!(ancient.validate().is_err());
        let portal_ads = |n| MarketConfig {
            portal_ads_per_search: n,
            ..MarketConfig::default()
        };
        assert!(portal_ads(MAX_ADS_PER_SEARCH).validate().is_ok());
        assert!(portal_ads(MAX_ADS_PER_SEARCH + 1).validate().is_err());
        assert!(portal_ads(0).validate().is_err());
    }
}
