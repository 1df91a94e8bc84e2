//! Typed configuration read from the environment and validated at start-up.
//!
//! Names of the stack's resources reach the functions as `REALTY_*` environment variables
//! (set by template.yaml) and reach the CLI as a stack's Outputs; both map onto
//! [`StackResources`], so the functions and the operator tools agree on one set of names.

use std::collections::BTreeMap;

/// A configuration value that is missing or malformed, named so the operator can fix it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("missing configuration: {name} is not set ({what})")]
    Missing { name: String, what: &'static str },
    #[error("invalid configuration: {name}={value:?}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

/// One named resource of the stack: its environment variable, its template Output, and what
/// it is (for error messages).
#[derive(Debug, Clone, Copy)]
pub struct ResourceSetting {
    pub env: &'static str,
    pub output: &'static str,
    pub what: &'static str,
}

macro_rules! stack_resources {
    ($( $field:ident: $env:literal, $output:literal, $what:literal; )*) => {
        /// Names (or ARNs and URLs, where AWS addresses a resource that way) of the stack's
        /// data-plane resources.
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct StackResources {
            $( pub $field: String, )*
        }

        impl StackResources {
            /// Every resource setting, in declaration order.
            pub const SETTINGS: &'static [ResourceSetting] = &[
                $( ResourceSetting { env: $env, output: $output, what: $what }, )*
            ];

            /// Reads every name from `REALTY_*` variables through `lookup` (the process
            /// environment in Lambda).
            pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
                Ok(Self {
                    $( $field: required(&lookup, $env, $what)?, )*
                })
            }

            /// Reads every name from a stack's Outputs (deployed or provisioned locally).
            pub fn from_outputs(outputs: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
                Ok(Self {
                    $( $field: outputs.get($output).filter(|v| !v.is_empty()).cloned()
                        .ok_or_else(|| ConfigError::Missing { name: format!("stack output {}", $output), what: $what })?, )*
                })
            }

            /// The `REALTY_*` variables a function needs to find these resources.
            pub fn to_env(&self) -> Vec<(&'static str, String)> {
                vec![ $( ($env, self.$field.clone()), )* ]
            }
        }
    };
}

stack_resources! {
    listing_events_stream: "REALTY_LISTING_EVENTS_STREAM", "ListingEventsStreamName", "the Kinesis stream of listing events";
    listing_table: "REALTY_LISTING_TABLE", "ListingTableName", "the DynamoDB table of listing state";
    market_table: "REALTY_MARKET_TABLE", "MarketTableName", "the DynamoDB table of market metrics";
    data_lake_bucket: "REALTY_DATA_LAKE_BUCKET", "DataLakeBucketName", "the S3 data-lake bucket";
    delivery_stream: "REALTY_DELIVERY_STREAM", "DeliveryStreamName", "the Firehose delivery stream";
    lake_database: "REALTY_LAKE_DATABASE", "DataLakeDatabaseName", "the Glue database of the curated lake";
    alert_topic_arn: "REALTY_ALERT_TOPIC_ARN", "AlertTopicArn", "the SNS alert topic";
    poison_record_queue_url: "REALTY_POISON_RECORD_QUEUE_URL", "PoisonRecordQueueUrl", "the SQS queue of poison records";
    config_table: "REALTY_CONFIG_TABLE", "ConfigTableName", "the DynamoDB table of watched markets and request budgets";
    api_key_secret: "REALTY_LISTING_API_SECRET_ARN", "ListingApiKeySecretArn", "the Secrets Manager secret of the listing-API keys";
    api_token_secret: "REALTY_API_TOKEN_SECRET_ARN", "ApiTokenSecretArn", "the Secrets Manager secret of the market API's bearer token";
}

impl StackResources {
    /// Reads every name from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    what: &'static str,
) -> Result<String, ConfigError> {
    // Trimmed as it is checked: a name pasted with a trailing space passed, then failed
    // every call made with it.
    match lookup(name).map(|value| value.trim().to_owned()) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(ConfigError::Missing {
            name: name.to_owned(),
            what,
        }),
    }
}

/// Parses an optional variable, falling back to `default` when it is unset or empty.
pub fn parse_or<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        Some(value) if !value.trim().is_empty() => {
            value
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    name: name.to_owned(),
                    value,
                    reason: e.to_string(),
                })
        }
        _ => Ok(default),
    }
}

/// Fails with the variable's name and value when `value` (finite or not) breaks `valid`.
pub fn check(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    value: f64,
    expected: &str,
    valid: impl Fn(f64) -> bool,
) -> Result<(), ConfigError> {
    if value.is_finite() && valid(value) {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        name: name.to_owned(),
        value: lookup(name).unwrap_or_default(),
        reason: format!("expected {expected}"),
    })
}

/// Fraction of the market median price per sqft at or below which a listing is undervalued
/// (`UndervaluedRatio`): the alerts judge listings by it, the metrics keep the undervalued
/// list by it.
pub const UNDERVALUED_RATIO_ENV: &str = "REALTY_UNDERVALUED_RATIO";
pub const DEFAULT_UNDERVALUED_RATIO: f64 = 0.8;

/// The undervalued ratio ([`UNDERVALUED_RATIO_ENV`], a fraction from 0 to 1; unset: the default).
pub fn undervalued_ratio(lookup: &impl Fn(&str) -> Option<String>) -> Result<f64, ConfigError> {
    let ratio = parse_or(lookup, UNDERVALUED_RATIO_ENV, DEFAULT_UNDERVALUED_RATIO)?;
    check(
        lookup,
        UNDERVALUED_RATIO_ENV,
        ratio,
        "a fraction from 0 to 1",
        |v| (0.0..=1.0).contains(&v),
    )?;
    Ok(ratio)
}

/// What `Debug` prints in place of a secret (an API key, a token, a client secret).
pub const REDACTED: &str = "<redacted>";

#[cfg(test)]
mod tests {
    use super::*;

    fn full_env() -> BTreeMap<String, String> {
        StackResources::SETTINGS
            .iter()
            .map(|s| (s.env.to_owned(), format!("value-of-{}", s.output)))
            .collect()
    }

    #[test]
    fn reads_every_resource_from_the_environment() {
        let env = full_env();
        let resources = StackResources::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(resources.listing_table, "value-of-ListingTableName");
        assert_eq!(resources.to_env().len(), StackResources::SETTINGS.len());
        let back: BTreeMap<String, String> = resources
            .to_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(back, env);
    }

    #[test]
    fn names_the_missing_variable() {
        let mut env = full_env();
        env.remove("REALTY_MARKET_TABLE");
        let err = StackResources::from_lookup(|k| env.get(k).cloned()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing configuration: REALTY_MARKET_TABLE is not set (the DynamoDB table of market metrics)"
        );
    }

    /// A name pasted with spaces around it is the name: it passed the check, then failed
    /// every call made with it.
    #[test]
    fn values_are_taken_trimmed() {
        let mut env = full_env();
        env.insert("REALTY_LISTING_TABLE".into(), " listings\n".into());
        let resources = StackResources::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(resources.listing_table, "listings");
    }

    #[test]
    fn blank_counts_as_missing() {
        let mut env = full_env();
        env.insert("REALTY_LISTING_TABLE".into(), "  ".into());
        assert!(matches!(
            StackResources::from_lookup(|k| env.get(k).cloned()),
            Err(ConfigError::Missing { .. })
        ));
    }

    #[test]
    fn reads_outputs_by_template_output_name() {
        let outputs: BTreeMap<String, String> = StackResources::SETTINGS
            .iter()
            .map(|s| (s.output.to_owned(), s.env.to_lowercase()))
            .collect();
        let resources = StackResources::from_outputs(&outputs).unwrap();
        assert_eq!(resources.alert_topic_arn, "realty_alert_topic_arn");
    }

    #[test]
    fn parse_or_reports_bad_numbers() {
        let lookup = |k: &str| (k == "N").then(|| "fifteen".to_owned());
        let err = parse_or::<f64>(&lookup, "N", 15.0).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid configuration: N=\"fifteen\"")
        );
        assert_eq!(parse_or::<f64>(&lookup, "OTHER", 15.0).unwrap(), 15.0);
    }
}
