//! The poller's settings: typed config from the environment (`REALTY_*`, template.yaml sets
//! them) and the listing-API keys, read once per container through a [`SecretSource`].

use std::time::Duration;

use serde::Deserialize;

use super::detect::{DEFAULT_MAX_DELISTED_SHARE, DelistingGuard};
use super::fetch::HttpPolicy;
use super::ports::SecretSource;
use super::read::SourceEndpoint;
use crate::config::{ConfigError, parse_or};
use crate::sources::SourceKind;

/// Default public endpoints of the keyed APIs.
pub const ZILLOW_RAPIDAPI_URL: &str = "https://zillow-com1.p.rapidapi.com";
pub const REALTOR_RAPIDAPI_URL: &str = "https://realty-in-us.p.rapidapi.com";

/// The listing-API secret: a JSON object in Secrets Manager. Its `Debug` says which keys are
/// set, never what they are (a logged config must not leak them).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ApiKeys {
    pub rapidapi_key: Option<String>,
    pub reso_token: Option<String>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |key: &Option<String>| key.as_ref().map(|_| REDACTED);
        f.debug_struct("ApiKeys")
            .field("rapidapi_key", &shown(&self.rapidapi_key))
            .field("reso_token", &shown(&self.reso_token))
            .finish()
    }
}

/// What `Debug` prints in place of a secret.
pub const REDACTED: &str = "<redacted>";

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
}

impl PollerConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let sources_text = lookup("REALTY_SOURCES")
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "zillow".into());
        let mut sources = Vec::new();
        for name in sources_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let kind: SourceKind =
                name.parse()
                    .map_err(|e: crate::sources::UnknownSource| ConfigError::Invalid {
                        name: "REALTY_SOURCES".into(),
                        value: sources_text.clone(),
                        reason: e.to_string(),
                    })?;
            if kind == SourceKind::File {
                return Err(ConfigError::Invalid {
                    name: "REALTY_SOURCES".into(),
                    value: sources_text.clone(),
                    reason: "file exports are replayed with the realty CLI, not polled".into(),
                });
            }
            sources.push(kind);
        }
        let reso_url = lookup("REALTY_RESO_URL").filter(|s| !s.trim().is_empty());
        if sources.contains(&SourceKind::Reso) && reso_url.is_none() {
            return Err(ConfigError::Missing {
                name: "REALTY_RESO_URL".into(),
                what: "the RESO Web API base URL (REALTY_SOURCES names reso)",
            });
        }
        let timeout_ms: u64 = parse_or(&lookup, "REALTY_HTTP_TIMEOUT_MS", 10_000)?;
        let max_delisted_share: f64 = parse_or(
            &lookup,
            "REALTY_MAX_DELISTED_SHARE",
            DEFAULT_MAX_DELISTED_SHARE,
        )?;
        if !(max_delisted_share > 0.0 && max_delisted_share <= 1.0) {
            return Err(ConfigError::Invalid {
                name: "REALTY_MAX_DELISTED_SHARE".into(),
                value: max_delisted_share.to_string(),
                reason: "a share of a market's listings, above 0 and at most 1 (0.3 is 30 %)"
                    .into(),
            });
        }
        Ok(Self {
            sources,
            zillow_url: lookup("REALTY_ZILLOW_URL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| ZILLOW_RAPIDAPI_URL.into()),
            realtor_url: lookup("REALTY_REALTOR_URL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| REALTOR_RAPIDAPI_URL.into()),
            reso_url,
            concurrency: parse_or(&lookup, "REALTY_POLL_CONCURRENCY", 4)?,
            http: HttpPolicy {
                timeout: Duration::from_millis(timeout_ms),
                ..HttpPolicy::default()
            },
            requests_per_second: parse_or(&lookup, "REALTY_REQUESTS_PER_SECOND", 5.0)?,
            delisting_guard: DelistingGuard {
                max_share: max_delisted_share,
            },
        })
    }

    /// The endpoints of the configured sources, with their keys.
    pub fn endpoints(&self, keys: &ApiKeys) -> Result<Vec<SourceEndpoint>, ConfigError> {
        let rapidapi = || {
            keys.rapidapi_key.clone().filter(|k| !k.is_empty()).ok_or(ConfigError::Missing {
                name: "rapidapi_key".into(),
                what: "the RapidAPI key in the listing-API secret (Zillow and Realtor.com sources)",
            })
        };
        self.sources
            .iter()
            .map(|&kind| {
                let (base_url, key) = match kind {
                    SourceKind::Zillow => (self.zillow_url.clone(), rapidapi()?),
                    SourceKind::Realtor => (self.realtor_url.clone(), rapidapi()?),
                    SourceKind::Reso => (
                        self.reso_url.clone().unwrap_or_default(),
                        keys.reso_token.clone().filter(|k| !k.is_empty()).ok_or(
                            ConfigError::Missing {
                                name: "reso_token".into(),
                                what: "the RESO bearer token in the listing-API secret",
                            },
                        )?,
                    ),
                    SourceKind::File => unreachable_file(),
                };
                Ok(SourceEndpoint {
                    kind,
                    base_url,
                    key,
                })
            })
            .collect()
    }
}

fn unreachable_file() -> (String, String) {
    // PollerConfig::from_lookup refuses the file source.
    (String::new(), String::new())
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
            reason: format!("expected {{\"rapidapi_key\": \"...\", \"reso_token\": \"...\"}}: {e}"),
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
            rapidapi_key: Some("rapid-s3cr3t".into()),
            reso_token: Some("reso-s3cr3t".into()),
        };
        let shown = format!("{keys:?} {keys:#?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("rapidapi_key"), "{shown}");
        let config = PollerConfig::from_lookup(|name| {
            (name == "REALTY_SOURCES").then(|| "zillow,realtor".to_owned())
        })
        .expect("config");
        let endpoints = config.endpoints(&keys).expect("endpoints");
        let shown = format!("{endpoints:?} {endpoints:#?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains(ZILLOW_RAPIDAPI_URL), "{shown}");
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
}
