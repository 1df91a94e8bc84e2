//! The poller's settings: typed config from the environment (`REALTY_*`, template.yaml sets
//! them) and the listing-API keys, read once per container through a [`SecretSource`].

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::detect::{DEFAULT_MAX_DELISTED_SHARE, DelistingGuard};
use super::fetch::HttpPolicy;
use super::read::SourceEndpoint;
use super::read::portal::PortalCrawler;
use super::reso_auth::{ClientCredentials, ResoAuth, ResoKey};
use realty_model::config::{ConfigError, REDACTED, parse_or};
use realty_model::markets::SourceKind;
use realty_model::ports::SecretSource;

/// Markets a poll reads at once unless `REALTY_POLL_CONCURRENCY` says: the poller's memory
/// holds that many markets at the state's bound (docs/capacity.md, "The poller's memory").
pub const DEFAULT_POLL_CONCURRENCY: usize = 4;
/// Default public endpoints of the keyed APIs.
pub const ZILLOW_RAPIDAPI_URL: &str = "https://zillow-com1.p.rapidapi.com";
pub const REALTOR_RAPIDAPI_URL: &str = "https://realty-in-us.p.rapidapi.com";

/// Default requests per second to one portal: one every five seconds, slower than a person
/// browsing (public crawlers of these sites wait 1 to 3 s).
pub const DEFAULT_PORTAL_REQUESTS_PER_SECOND: f64 = 0.2;
/// The slowest request rate a source may be set to: one request every 1,000 s.
pub const MIN_REQUESTS_PER_SECOND: f64 = 0.001;

/// The listing-API secret: a JSON object in Secrets Manager with one key per source,
/// `{"zillow": "<RapidAPI key>", "realtor": "<RapidAPI key>", "reso": "<bearer token>"}`
/// (`realty secrets set --source NAME` writes one); `reso` may instead hold OAuth2 client
/// credentials, `{"token_url", "client_id", "client_secret", "scope"?}` ([`ResoKey`]). Its `Debug` says which keys are set, never
/// what they are (a logged config must not leak them).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ApiKeys {
    #[serde(default)]
    pub zillow: Option<String>,
    #[serde(default)]
    pub realtor: Option<String>,
    #[serde(default)]
    pub reso: Option<ResoKey>,
}

impl ApiKeys {
    /// The key of `source`, unless it is missing or a placeholder (`""`, `<your key>`,
    /// `changeme`...): such a source is reported, not polled.
    pub fn key(&self, source: SourceKind) -> Option<&str> {
        let key = match source {
            SourceKind::Zillow => self.zillow.as_deref(),
            SourceKind::Realtor => self.realtor.as_deref(),
            SourceKind::Reso => match &self.reso {
                Some(ResoKey::Token(token)) => Some(token.as_str()),
                _ => None,
            },
            SourceKind::File | SourceKind::Avito | SourceKind::Mubawab => None,
        };
        key.map(str::trim).filter(|k| !is_placeholder(k))
    }
}

/// Words people leave in a secret in place of a key.
const PLACEHOLDERS: [&str; 8] = [
    "placeholder",
    "changeme",
    "change-me",
    "replace-me",
    "replaceme",
    "your-key",
    "todo",
    "none",
];

fn is_placeholder(key: &str) -> bool {
    let folded = key.to_ascii_lowercase().replace('_', "-");
    key.is_empty()
        || (key.starts_with('<') && key.ends_with('>'))
        || !key.chars().any(|c| c.is_ascii_alphanumeric())
        || PLACEHOLDERS.contains(&folded.as_str())
        || folded.chars().all(|c| c == 'x')
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |key: &Option<String>| key.as_ref().map(|_| REDACTED);
        f.debug_struct("ApiKeys")
            .field("zillow", &shown(&self.zillow))
            .field("realtor", &shown(&self.realtor))
            .field("reso", &self.reso)
            .finish()
    }
}

/// The poller's settings (`REALTY_*` variables; template.yaml sets them).
#[derive(Debug, Clone, PartialEq)]
pub struct PollerConfig {
    pub sources: Vec<SourceKind>,
    pub zillow_url: String,
    pub realtor_url: String,
    pub reso_url: Option<String>,
    pub concurrency: usize,
    pub http: HttpPolicy,
    pub requests_per_second: f64,
    /// `REALTY_MAX_DELISTED_SHARE`: see [`DelistingGuard`].
    pub delisting_guard: DelistingGuard,
    /// RESO: hours between full reconciliation reads (`REALTY_RESO_FULL_READ_HOURS`).
    pub reso_full_read_hours: u32,
    /// The portals' sites (`REALTY_AVITO_URL`, `REALTY_MUBAWAB_URL`): their robots.txt is
    /// read at `{url}/robots.txt`.
    pub avito_url: String,
    pub mubawab_url: String,
    /// Requests per second to each portal (`REALTY_PORTAL_REQUESTS_PER_SECOND`).
    pub portal_requests_per_second: f64,
    /// How a site's operator reaches whoever runs this crawler (`REALTY_CRAWLER_CONTACT`:
    /// a URL or an address), sent in the user agent.
    pub crawler_contact: Option<String>,
}

/// The sources polled (`REALTY_SOURCES`): by default every source this deployment can reach;
/// RESO only with its base URL (`reso_url`).
fn polled_sources(
    lookup: &impl Fn(&str) -> Option<String>,
    reso_url: Option<&str>,
) -> Result<Vec<SourceKind>, ConfigError> {
    // Markets name their sources; by default every source this deployment can reach.
    let sources_text = lookup("REALTY_SOURCES")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| {
            // The portals need no key: always reachable.
            if reso_url.is_some() {
                "zillow,realtor,reso,avito,mubawab".into()
            } else {
                "zillow,realtor,avito,mubawab".into()
            }
        });
    let mut sources = Vec::new();
    for name in sources_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let kind: SourceKind =
            name.parse()
                .map_err(
                    |e: realty_model::markets::UnknownSource| ConfigError::Invalid {
                        name: "REALTY_SOURCES".into(),
                        value: sources_text.clone(),
                        reason: e.to_string(),
                    },
                )?;
        if !kind.is_polled() {
            return Err(ConfigError::Invalid {
                name: "REALTY_SOURCES".into(),
                value: sources_text.clone(),
                reason: kind.why_not_polled().into(),
            });
        }
        sources.push(kind);
    }
    if sources.contains(&SourceKind::Reso) && reso_url.is_none() {
        return Err(ConfigError::Missing {
            name: "REALTY_RESO_URL".into(),
            what: "the RESO Web API base URL (REALTY_SOURCES names reso)",
        });
    }
    Ok(sources)
}

/// Milliseconds a request may take (`REALTY_HTTP_TIMEOUT_MS`).
fn http_timeout_ms(lookup: &impl Fn(&str) -> Option<String>) -> Result<u64, ConfigError> {
    let timeout_ms: u64 = parse_or(lookup, "REALTY_HTTP_TIMEOUT_MS", 10_000)?;
    if !(100..=300_000).contains(&timeout_ms) {
        return Err(ConfigError::Invalid {
            name: "REALTY_HTTP_TIMEOUT_MS".into(),
            value: timeout_ms.to_string(),
            reason:
                "milliseconds a request may take, from 100 to 300000 (the function's own timeout)"
                    .into(),
        });
    }
    Ok(timeout_ms)
}

/// Requests per second to one source (the setting `name`), from
/// [`MIN_REQUESTS_PER_SECOND`] to 1000; `reason` says so when it is not.
fn request_rate(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: f64,
    reason: impl FnOnce() -> String,
) -> Result<f64, ConfigError> {
    let rate: f64 = parse_or(lookup, name, default)?;
    // NaN, infinities and negatives meant no limit at all; a tiny rate a wait that
    // overflowed at start-up.
    if !(MIN_REQUESTS_PER_SECOND..=1_000.0).contains(&rate) {
        return Err(ConfigError::Invalid {
            name: name.into(),
            value: rate.to_string(),
            reason: reason(),
        });
    }
    Ok(rate)
}

/// Markets read at once (`REALTY_POLL_CONCURRENCY`).
fn poll_concurrency(lookup: &impl Fn(&str) -> Option<String>) -> Result<usize, ConfigError> {
    let concurrency: usize = parse_or(lookup, "REALTY_POLL_CONCURRENCY", DEFAULT_POLL_CONCURRENCY)?;
    if !(1..=64).contains(&concurrency) {
        return Err(ConfigError::Invalid {
            name: "REALTY_POLL_CONCURRENCY".into(),
            value: concurrency.to_string(),
            reason: "markets read at once, from 1 to 64".into(),
        });
    }
    Ok(concurrency)
}

/// The share of a market's listings one read may delist (`REALTY_MAX_DELISTED_SHARE`).
fn max_delisted_share(lookup: &impl Fn(&str) -> Option<String>) -> Result<f64, ConfigError> {
    let max_delisted_share: f64 = parse_or(
        lookup,
        "REALTY_MAX_DELISTED_SHARE",
        DEFAULT_MAX_DELISTED_SHARE,
    )?;
    if !(max_delisted_share > 0.0 && max_delisted_share <= 1.0) {
        return Err(ConfigError::Invalid {
            name: "REALTY_MAX_DELISTED_SHARE".into(),
            value: max_delisted_share.to_string(),
            reason: "a share of a market's listings, above 0 and at most 1 (0.3 is 30 %)".into(),
        });
    }
    Ok(max_delisted_share)
}

/// Hours between full RESO reads (`REALTY_RESO_FULL_READ_HOURS`).
fn reso_full_read_hours(lookup: &impl Fn(&str) -> Option<String>) -> Result<u32, ConfigError> {
    // A day by default; at most a month (a longer gap leaves purged records in the
    // state for too long).
    let hours: u32 = parse_or(lookup, "REALTY_RESO_FULL_READ_HOURS", 24)?;
    if !(1..=31 * 24).contains(&hours) {
        return Err(ConfigError::Invalid {
            name: "REALTY_RESO_FULL_READ_HOURS".into(),
            value: hours.to_string(),
            reason: "hours between full RESO reads, from 1 to 744 (a month)".into(),
        });
    }
    Ok(hours)
}

/// How a site's operator reaches whoever runs this crawler (`REALTY_CRAWLER_CONTACT`), if
/// set: one line of at most 200 bytes.
fn crawler_contact(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    let crawler_contact = lookup("REALTY_CRAWLER_CONTACT").filter(|c| !c.trim().is_empty());
    if let Some(contact) = &crawler_contact
        && (contact.len() > 200 || contact.chars().any(|c| c.is_control()))
    {
        return Err(ConfigError::Invalid {
            name: "REALTY_CRAWLER_CONTACT".into(),
            value: contact.clone(),
            reason: "a URL or an e-mail address, one line of at most 200 bytes".into(),
        });
    }
    Ok(crawler_contact)
}

impl PollerConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let reso_url = lookup("REALTY_RESO_URL").filter(|s| !s.trim().is_empty());
        let sources = polled_sources(&lookup, reso_url.as_deref())?;
        let timeout_ms = http_timeout_ms(&lookup)?;
        let requests_per_second = request_rate(&lookup, "REALTY_REQUESTS_PER_SECOND", 5.0, || {
            format!(
                "requests per second to one API, from {MIN_REQUESTS_PER_SECOND} (one every 1,000 s) to 1000"
            )
        })?;
        let concurrency = poll_concurrency(&lookup)?;
        let max_delisted_share = max_delisted_share(&lookup)?;
        let reso_full_read_hours = reso_full_read_hours(&lookup)?;
        let portal_requests_per_second = request_rate(
            &lookup,
            "REALTY_PORTAL_REQUESTS_PER_SECOND",
            DEFAULT_PORTAL_REQUESTS_PER_SECOND,
            || {
                format!(
                    "requests per second to one portal, from {MIN_REQUESTS_PER_SECOND} to 1000 (0.2 is one every 5 s)"
                )
            },
        )?;
        let crawler_contact = crawler_contact(&lookup)?;
        let url_or = |name: &str, default: &str| {
            lookup(name)
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| default.into())
        };
        Ok(Self {
            avito_url: url_or("REALTY_AVITO_URL", realty_sources::portal::avito::ORIGIN),
            mubawab_url: url_or(
                "REALTY_MUBAWAB_URL",
                realty_sources::portal::mubawab::ORIGIN,
            ),
            portal_requests_per_second,
            crawler_contact,
            sources,
            zillow_url: lookup("REALTY_ZILLOW_URL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| ZILLOW_RAPIDAPI_URL.into()),
            realtor_url: lookup("REALTY_REALTOR_URL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| REALTOR_RAPIDAPI_URL.into()),
            reso_url,
            concurrency,
            http: HttpPolicy {
                timeout: Duration::from_millis(timeout_ms),
                ..HttpPolicy::default()
            },
            requests_per_second,
            delisting_guard: DelistingGuard {
                max_share: max_delisted_share,
            },
            reso_full_read_hours,
        })
    }

    /// Requests per second to `kind`: the portals' own, gentler rate.
    pub fn requests_per_second_of(&self, kind: SourceKind) -> f64 {
        if kind.is_portal() {
            self.portal_requests_per_second
        } else {
            self.requests_per_second
        }
    }

    /// The endpoints of the configured sources that have a key (the portals need none), and
    /// the sources without one.
    pub fn endpoints(&self, keys: &ApiKeys) -> (Vec<SourceEndpoint>, Vec<SourceKind>) {
        let mut endpoints = Vec::new();
        let mut unkeyed = Vec::new();
        let user_agent = realty_sources::portal::crawl::user_agent(self.crawler_contact.as_deref());
        for &kind in &self.sources {
            let base_url = match kind {
                SourceKind::Zillow => self.zillow_url.clone(),
                SourceKind::Realtor => self.realtor_url.clone(),
                SourceKind::Reso => self.reso_url.clone().unwrap_or_default(),
                SourceKind::Avito | SourceKind::Mubawab => {
                    // The portals need no key.
                    endpoints.push(SourceEndpoint {
                        kind,
                        base_url: if kind == SourceKind::Avito {
                            self.avito_url.clone()
                        } else {
                            self.mubawab_url.clone()
                        },
                        key: String::new(),
                        reso_auth: None,
                        reso_full_read_every: chrono::TimeDelta::zero(),
                        crawler: Some(Arc::new(PortalCrawler::new(user_agent.clone()))),
                    });
                    continue;
                }
                // PollerConfig::from_lookup refuses the sources it does not poll.
                SourceKind::File => continue,
            };
            // RESO: a static token or client credentials that pass their checks.
            let reso_auth = match (&keys.reso, kind) {
                (Some(ResoKey::ClientCredentials(c)), SourceKind::Reso) => match c.validate() {
                    Ok(()) => Some(ResoKey::ClientCredentials(c.clone())),
                    Err(why) => {
                        tracing::error!(reason = %why, "unusable RESO client credentials");
                        None
                    }
                },
                (_, SourceKind::Reso) => keys.key(kind).map(ResoKey::from),
                _ => None,
            };
            match (keys.key(kind), reso_auth) {
                (_, Some(auth)) => endpoints.push(SourceEndpoint {
                    kind,
                    base_url,
                    key: String::new(),
                    reso_auth: Some(Arc::new(ResoAuth::new(auth))),
                    reso_full_read_every: chrono::TimeDelta::hours(i64::from(
                        self.reso_full_read_hours,
                    )),
                    crawler: None,
                }),
                (Some(key), None) if kind != SourceKind::Reso => endpoints.push(SourceEndpoint {
                    kind,
                    base_url,
                    key: key.to_owned(),
                    reso_auth: None,
                    reso_full_read_every: chrono::TimeDelta::zero(),
                    crawler: None,
                }),
                _ => unkeyed.push(kind),
            }
        }
        (endpoints, unkeyed)
    }
}

/// Longest key accepted into the secret (real ones are 50 to a few hundred bytes).
pub const MAX_API_KEY_BYTES: usize = 4_096;

/// The secret's text with `source`'s key set to `key`, the other keys kept: what
/// `realty secrets set` writes. Refuses a placeholder, a key with spaces or control
/// characters, or one over [`MAX_API_KEY_BYTES`]. For RESO, `key` may instead be OAuth2
/// client credentials as a JSON object ([`ResoKey::ClientCredentials`]), checked as the
/// poller checks them and stored as an object.
pub fn with_key(secret: &str, source: SourceKind, key: &str) -> Result<String, String> {
    let key = key.trim();
    if !source.is_polled() || source.is_portal() {
        return Err(format!("{source} needs no key"));
    }
    if key.len() > MAX_API_KEY_BYTES {
        return Err(format!(
            "a key of {} bytes: at most {MAX_API_KEY_BYTES}",
            key.len()
        ));
    }
    if source == SourceKind::Reso && key.starts_with('{') {
        return with_value(secret, source, reso_client_credentials(key)?);
    }
    if is_placeholder(key) {
        return Err(format!(
            "that is not a key for {source} (empty or a placeholder)"
        ));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(
            "a key has no spaces or control characters: was more than the key pasted?".into(),
        );
    }
    with_value(secret, source, serde_json::Value::String(key.to_owned()))
}

/// RESO client credentials from their JSON text, validated; errors name the fault, never
/// a value (the text holds the client secret).
fn reso_client_credentials(text: &str) -> Result<serde_json::Value, String> {
    let credentials: ClientCredentials = serde_json::from_str(text).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "not valid JSON"
            }
            _ => "not an object of token_url, client_id, client_secret and scope (optional), all strings",
        };
        format!(
            "the RESO client credentials are {what} (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    credentials.validate()?;
    for (name, value) in [
        ("client_id", &credentials.client_id),
        ("client_secret", &credentials.client_secret),
    ] {
        if is_placeholder(value.trim()) {
            return Err(format!("reso.{name} is a placeholder"));
        }
    }
    serde_json::from_str(text).map_err(|_| "the RESO client credentials are not JSON".into())
}

/// The secret's text with `source`'s entry set to `value`, the other entries kept.
fn with_value(
    secret: &str,
    source: SourceKind,
    value: serde_json::Value,
) -> Result<String, String> {
    let mut object = if secret.trim().is_empty() {
        serde_json::Map::new()
    } else {
        match serde_json::from_str::<serde_json::Value>(secret) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err("the secret holds something other than a JSON object of keys; fix or empty it first".into()),
        }
    };
    object.insert(source.as_str().to_owned(), value);
    Ok(serde_json::Value::Object(object).to_string())
}

/// What a poll reports for a source that has no key.
pub fn no_key_message(source: SourceKind, secret: &str) -> String {
    let name = secret.rsplit(':').next().unwrap_or(secret);
    format!(
        "no key for {source}: put it in secret {name} with `realty secrets set --source {source}`"
    )
}

/// The API keys: from the secret `REALTY_LISTING_API_SECRET_ARN` names; else, for local runs
/// only (`local`: an endpoint override is set), from `REALTY_LISTING_API_KEYS`.
pub async fn load_api_keys(
    secrets: &impl SecretSource,
    lookup: impl Fn(&str) -> Option<String>,
    local: bool,
) -> Result<ApiKeys, ConfigError> {
    let parse = |name: &str, text: &str| -> Result<ApiKeys, ConfigError> {
        serde_json::from_str(text).map_err(|e| ConfigError::Invalid {
            name: name.into(),
            value: "(secret)".into(),
            // Where and what kind of fault only: serde's own message quotes the value it
            // refused, which here is a key.
            reason: format!(
                "expected {{\"zillow\": \"...\", \"realtor\": \"...\", \"reso\": \"...\" or {{\"token_url\", \"client_id\", \"client_secret\", \"scope\"}}}}: {} at line {} column {}",
                match e.classify() {
                    serde_json::error::Category::Io => "unreadable",
                    serde_json::error::Category::Syntax => "not JSON",
                    serde_json::error::Category::Data => "JSON of another shape",
                    serde_json::error::Category::Eof => "JSON cut short",
                },
                e.line(),
                e.column()
            ),
        })
    };
    if let Some(arn) = lookup("REALTY_LISTING_API_SECRET_ARN").filter(|s| !s.trim().is_empty()) {
        let text = secrets
            .secret_string(&arn)
            .await
            .map_err(|e| ConfigError::Invalid {
                name: "REALTY_LISTING_API_SECRET_ARN".into(),
                value: arn.clone(),
                reason: e.message,
            })?;
        return parse("REALTY_LISTING_API_SECRET_ARN", &text);
    }
    match (lookup("REALTY_LISTING_API_KEYS"), local) {
        (Some(text), true) => parse("REALTY_LISTING_API_KEYS", &text),
        (Some(_), false) => Err(ConfigError::Invalid {
            name: "REALTY_LISTING_API_KEYS".into(),
            value: "(secret)".into(),
            reason: "plain-text keys are for local runs only; in AWS put them in Secrets Manager and set REALTY_LISTING_API_SECRET_ARN".into(),
        }),
        (None, _) => Err(ConfigError::Missing {
            name: "REALTY_LISTING_API_SECRET_ARN".into(),
            what: "the Secrets Manager secret with the listing-API keys",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_key() {
        let keys = ApiKeys {
            zillow: Some("rapid-s3cr3t".into()),
            realtor: Some("rapid-s3cr3t".into()),
            reso: Some("reso-s3cr3t".into()),
        };
        let shown = format!("{keys:?} {keys:#?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("zillow"), "{shown}");
        let config = PollerConfig::from_lookup(|name| {
            (name == "REALTY_SOURCES").then(|| "zillow,realtor".to_owned())
        })
        .expect("config");
        let (endpoints, unkeyed) = config.endpoints(&keys);
        assert!(unkeyed.is_empty());
        let shown = format!("{endpoints:?} {endpoints:#?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains(ZILLOW_RAPIDAPI_URL), "{shown}");
    }

    #[test]
    fn sources_without_a_real_key_are_set_apart() {
        let keys: ApiKeys = serde_json::from_str(
            r#"{"zillow": "k-123", "realtor": "<your RapidAPI key>", "reso": " "}"#,
        )
        .expect("json");
        let config = PollerConfig::from_lookup(|name| {
            (name == "REALTY_RESO_URL").then(|| "https://api.example-mls.test".to_owned())
        })
        .expect("config");
        let (endpoints, unkeyed) = config.endpoints(&keys);
        let kinds: Vec<SourceKind> = endpoints.iter().map(|e| e.kind).collect();
        // The portals need no key.
        assert_eq!(
            kinds,
            [SourceKind::Zillow, SourceKind::Avito, SourceKind::Mubawab]
        );
        assert_eq!(unkeyed, [SourceKind::Realtor, SourceKind::Reso]);

        // RESO client credentials key the source; unusable ones leave it unkeyed.
        let oauth: ApiKeys = serde_json::from_str(
            r#"{"reso": {"token_url": "https://auth.example-mls.test/token",
                         "client_id": "realty", "client_secret": "s3cr3t", "scope": "api"}}"#,
        )
        .expect("json");
        let (endpoints, unkeyed) = config.endpoints(&oauth);
        assert!(
            unkeyed.iter().all(|k| *k != SourceKind::Reso),
            "{unkeyed:?}"
        );
        let reso = endpoints
            .iter()
            .find(|e| e.kind == SourceKind::Reso)
            .expect("a RESO endpoint");
        assert!(reso.reso_auth.is_some());
        assert!(!format!("{endpoints:?} {oauth:?}").contains("s3cr3t"));
        let plain_http: ApiKeys = serde_json::from_str(
            r#"{"reso": {"token_url": "http://auth.example-mls.test/token",
                         "client_id": "realty", "client_secret": "s3cr3t"}}"#,
        )
        .expect("json");
        assert!(config.endpoints(&plain_http).1.contains(&SourceKind::Reso));
        for placeholder in [
            "", "changeme", "YOUR_KEY", "xxxxxxxx", "...", "<key>", "None",
        ] {
            assert!(is_placeholder(placeholder), "{placeholder}");
        }
        assert!(!is_placeholder("a1b2c3d4e5msh0f9e8d7c6b5a4"));
        assert_eq!(
            no_key_message(
                SourceKind::Zillow,
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:realty-api-keys-AbCdEf"
            ),
            "no key for zillow: put it in secret realty-api-keys-AbCdEf with `realty secrets set --source zillow`"
        );
    }

    /// A secret of the wrong shape is refused without its text in the error: serde's own
    /// message quotes the value it refused, and the error is logged at every start.
    #[test]
    fn a_misshapen_secret_is_refused_without_showing_it() {
        struct Stored(&'static str);
        impl SecretSource for Stored {
            async fn secret_string(
                &self,
                _id: &str,
            ) -> Result<String, realty_model::ports::PortError> {
                Ok(self.0.to_owned())
            }
        }
        let lookup = |name: &str| {
            (name == "REALTY_LISTING_API_SECRET_ARN").then(|| "arn:secret:keys".to_owned())
        };
        for stored in [
            r#""rapid-s3cr3t""#,
            "1234567890",
            r#"{"zillow": 1234567890}"#,
            r#"{"zillow": ["rapid-s3cr3t"]}"#,
            r#"{"zillow": "rapid-s3cr3t""#,
            "rapid-s3cr3t",
        ] {
            let error = futures::executor::block_on(load_api_keys(&Stored(stored), lookup, false))
                .expect_err(stored)
                .to_string();
            assert!(
                !error.contains("s3cr3t") && !error.contains("1234567890"),
                "{error}"
            );
            assert!(error.contains("at line 1 column"), "{error}");
        }
    }

    #[test]
    fn setting_a_key_keeps_the_others() {
        let text = with_key(r#"{"zillow": "z-1"}"#, SourceKind::Realtor, " r-2\n").expect("set");
        let keys: ApiKeys = serde_json::from_str(&text).expect("json");
        assert_eq!(keys.key(SourceKind::Zillow), Some("z-1"));
        assert_eq!(keys.key(SourceKind::Realtor), Some("r-2"));
        assert!(with_key("{}", SourceKind::Zillow, "changeme").is_err());
        assert!(with_key("{}", SourceKind::Zillow, "two words").is_err());
        assert!(with_key("[1]", SourceKind::Zillow, "k-1").is_err());
        assert!(with_key("", SourceKind::Zillow, "k-1").is_ok());
        let at_limit = "k".repeat(MAX_API_KEY_BYTES);
        assert!(with_key("{}", SourceKind::Zillow, &at_limit).is_ok());
        assert!(with_key("{}", SourceKind::Zillow, &format!("{at_limit}k")).is_err());
    }

    #[test]
    fn reso_client_credentials_are_stored_as_an_object_and_never_quoted() {
        let credentials = r#"{
            "token_url": "https://auth.example-mls.test/oauth/token",
            "client_id": "realty",
            "client_secret": "s3cr3t-value",
            "scope": "api"
        }"#;
        let text = with_key(r#"{"zillow": "z-1"}"#, SourceKind::Reso, credentials).expect("set");
        let keys: ApiKeys = serde_json::from_str(&text).expect("json");
        assert_eq!(keys.key(SourceKind::Zillow), Some("z-1"));
        match keys.reso {
            Some(ResoKey::ClientCredentials(c)) => {
                assert_eq!(c.client_secret, "s3cr3t-value");
                assert_eq!(c.scope.as_deref(), Some("api"));
            }
            other => panic!("not client credentials: {other:?}"),
        }
        // A bearer token still goes in as a string.
        let text = with_key("{}", SourceKind::Reso, "tok-1").expect("token");
        let keys: ApiKeys = serde_json::from_str(&text).expect("json");
        assert_eq!(keys.key(SourceKind::Reso), Some("tok-1"));
        for bad in [
            // Not JSON.
            r#"{"token_url": "https://a.test/t", "client_secret": "s3cr3t-value""#,
            // A number where a string goes.
            r#"{"token_url": "https://a.test/t", "client_id": "x", "client_secret": 12345}"#,
            // An unknown field.
            r#"{"token_url": "https://a.test/t", "client_id": "x", "client_secret": "s3cr3t-value", "pw": "s3cr3t-value"}"#,
            // No secret.
            r#"{"token_url": "https://a.test/t", "client_id": "x"}"#,
            // Plain http to another host.
            r#"{"token_url": "http://a.test/t", "client_id": "x", "client_secret": "s3cr3t-value"}"#,
            // A placeholder secret.
            r#"{"token_url": "https://a.test/t", "client_id": "x", "client_secret": "<secret>"}"#,
        ] {
            let error = with_key("{}", SourceKind::Reso, bad).expect_err(bad);
            assert!(
                !error.contains("s3cr3t") && !error.contains("12345"),
                "{error}"
            );
        }
        // Credentials are for RESO only.
        assert!(with_key("{}", SourceKind::Zillow, credentials).is_err());
    }

    #[test]
    fn the_delisting_share_is_a_share() {
        let with = |value: &'static str| {
            PollerConfig::from_lookup(move |name| {
                (name == "REALTY_MAX_DELISTED_SHARE").then(|| value.to_owned())
            })
        };
        assert_eq!(
            PollerConfig::from_lookup(|_| None)
                .expect("defaults")
                .delisting_guard
                .max_share,
            0.3
        );
        assert_eq!(with("0.5").expect("0.5").delisting_guard.max_share, 0.5);
        assert_eq!(with("1").expect("1").delisting_guard.max_share, 1.0);
        for bad in ["0", "-0.1", "1.01", "NaN", "thirty"] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn crawler_settings_at_and_past_their_bounds() {
        let with = |name: &'static str, value: String| {
            PollerConfig::from_lookup(move |n| (n == name).then(|| value.clone()))
        };
        let contact = |n: usize| with("REALTY_CRAWLER_CONTACT", "a".repeat(n));
        assert_eq!(
            contact(200)
                .expect("200 bytes")
                .crawler_contact
                .map(|c| c.len()),
            Some(200)
        );
        assert!(contact(201).is_err());
        assert!(with("REALTY_CRAWLER_CONTACT", "ops@example.org\r\nX: y".into()).is_err());
        let rate = |r: &str| with("REALTY_PORTAL_REQUESTS_PER_SECOND", r.into());
        assert_eq!(
            rate("1000")
                .expect("at the bound")
                .portal_requests_per_second,
            1000.0
        );
        for bad in ["1000.5", "0", "-1", "NaN"] {
            assert!(rate(bad).is_err(), "{bad}");
        }
        let config = PollerConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(
            config.portal_requests_per_second,
            DEFAULT_PORTAL_REQUESTS_PER_SECOND
        );
        assert_eq!(config.requests_per_second_of(SourceKind::Avito), 0.2);
    }

    /// The API rate, the request timeout and the concurrency at and past their bounds: NaN,
    /// infinities and negatives meant no rate limit, and a tiny rate a wait that overflowed.
    #[test]
    fn request_settings_at_and_past_their_bounds() {
        let with = |name: &'static str, value: &str| {
            let value = value.to_owned();
            PollerConfig::from_lookup(move |n| (n == name).then(|| value.clone()))
        };
        for good in ["0.001", "1000", "5"] {
            assert!(with("REALTY_REQUESTS_PER_SECOND", good).is_ok(), "{good}");
            assert!(
                with("REALTY_PORTAL_REQUESTS_PER_SECOND", good).is_ok(),
                "{good}"
            );
        }
        for bad in ["NaN", "inf", "-5", "0", "1e-20", "0.0009", "1000.5"] {
            assert!(with("REALTY_REQUESTS_PER_SECOND", bad).is_err(), "{bad}");
            assert!(
                with("REALTY_PORTAL_REQUESTS_PER_SECOND", bad).is_err(),
                "{bad}"
            );
        }
        for (ms, ok) in [("100", true), ("300000", true), ("99", false), ("0", false)] {
            assert_eq!(with("REALTY_HTTP_TIMEOUT_MS", ms).is_ok(), ok, "{ms}");
        }
        for (n, ok) in [("1", true), ("64", true), ("0", false), ("65", false)] {
            assert_eq!(with("REALTY_POLL_CONCURRENCY", n).is_ok(), ok, "{n}");
        }
    }
}
