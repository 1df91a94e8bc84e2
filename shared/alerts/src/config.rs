//! The alert thresholds, read from the function's environment (set by template.yaml from its
//! parameters) and checked at cold start, so a bad value stops the function with the
//! variable's name instead of alerting on nonsense.

use super::rules::AlertThresholds;
use realty_model::config::{ConfigError, check, parse_or, undervalued_ratio};
use realty_model::listing::CENTS_PER_DOLLAR;

/// Percent drop that fires a price-drop alert (template `PriceDropThresholdPct`).
pub const PRICE_DROP_THRESHOLD_PCT_ENV: &str = "REALTY_PRICE_DROP_THRESHOLD_PCT";
/// Smallest drop, in major units, that fires one; 0 disables it (`PriceDropMinAmount`).
pub const PRICE_DROP_MIN_AMOUNT_ENV: &str = "REALTY_PRICE_DROP_MIN_AMOUNT";
/// `true` to publish a `new_listing` alert for every new listing (`NewListingAlerts`).
pub const NEW_LISTING_ALERTS_ENV: &str = "REALTY_NEW_LISTING_ALERTS";

/// Defaults, as in template.yaml.
pub const DEFAULT_PRICE_DROP_THRESHOLD_PCT: f64 = 15.0;
pub const DEFAULT_PRICE_DROP_MIN_AMOUNT: f64 = 0.0;

/// The alerts function's settings besides the stack's resource names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertsConfig {
    pub thresholds: AlertThresholds,
}

impl AlertsConfig {
    /// Reads the thresholds from the process environment (unset or empty: the defaults).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the thresholds through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let pct = parse_or(
            &lookup,
            PRICE_DROP_THRESHOLD_PCT_ENV,
            DEFAULT_PRICE_DROP_THRESHOLD_PCT,
        )?;
        check(
            &lookup,
            PRICE_DROP_THRESHOLD_PCT_ENV,
            pct,
            "a percentage from 0 to 100",
            |v| (0.0..=100.0).contains(&v),
        )?;
        let min_amount = parse_or(
            &lookup,
            PRICE_DROP_MIN_AMOUNT_ENV,
            DEFAULT_PRICE_DROP_MIN_AMOUNT,
        )?;
        check(
            &lookup,
            PRICE_DROP_MIN_AMOUNT_ENV,
            min_amount,
            "an amount of at least 0 (0 disables the floor)",
            // Bounded so it converts to minor units without overflow.
            |v| (0.0..=1e15).contains(&v),
        )?;
        let ratio = undervalued_ratio(&lookup)?;
        let new_listing_alerts = parse_or(&lookup, NEW_LISTING_ALERTS_ENV, false)?;
        Ok(Self {
            thresholds: AlertThresholds {
                new_listing_alerts,
                // Hundredths of a percent: finer thresholds are rounded to them.
                price_drop_centi_pct: (pct * 100.0).round() as u32,
                price_drop_min_minor: (min_amount * CENTS_PER_DOLLAR as f64).round() as i64,
                undervalued_ratio: ratio,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use realty_model::config::UNDERVALUED_RATIO_ENV;
    use std::collections::BTreeMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<AlertsConfig, ConfigError> {
        let env: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        AlertsConfig::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn unset_or_empty_means_the_template_defaults() {
        let config = read(&[(UNDERVALUED_RATIO_ENV, " ")]).expect("defaults");
        assert_eq!(config.thresholds, AlertThresholds::default());
    }

    #[test]
    fn reads_the_template_parameters() {
        let config = read(&[
            (PRICE_DROP_THRESHOLD_PCT_ENV, "12.5"),
            (PRICE_DROP_MIN_AMOUNT_ENV, "10000"),
            (UNDERVALUED_RATIO_ENV, "0.75"),
            (NEW_LISTING_ALERTS_ENV, "true"),
        ])
        .expect("valid");
        assert_eq!(
            config.thresholds,
            AlertThresholds {
                price_drop_centi_pct: 1_250,
                price_drop_min_minor: 1_000_000,
                undervalued_ratio: 0.75,
                new_listing_alerts: true,
            }
        );
    }

    #[test]
    fn names_the_variable_of_a_bad_value() {
        let err = read(&[(PRICE_DROP_THRESHOLD_PCT_ENV, "fifteen")]).expect_err("not a number");
        assert!(
            err.to_string()
                .starts_with("invalid configuration: REALTY_PRICE_DROP_THRESHOLD_PCT=\"fifteen\""),
            "{err}"
        );
        for (name, value) in [
            (PRICE_DROP_THRESHOLD_PCT_ENV, "150"),
            (PRICE_DROP_THRESHOLD_PCT_ENV, "NaN"),
            (PRICE_DROP_MIN_AMOUNT_ENV, "-1"),
            (UNDERVALUED_RATIO_ENV, "1.2"),
            (UNDERVALUED_RATIO_ENV, "inf"),
            (NEW_LISTING_ALERTS_ENV, "yes"),
        ] {
            let err = read(&[(name, value)]).expect_err(value);
            assert_eq!(
                err,
                ConfigError::Invalid {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    reason: match name {
                        PRICE_DROP_THRESHOLD_PCT_ENV => "expected a percentage from 0 to 100",
                        PRICE_DROP_MIN_AMOUNT_ENV => {
                            "expected an amount of at least 0 (0 disables the floor)"
                        }
                        UNDERVALUED_RATIO_ENV => "expected a fraction from 0 to 1",
                        _ => "provided string was not `true` or `false`",
                    }
                    .to_owned(),
                }
            );
        }
    }
}
