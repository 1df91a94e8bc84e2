//! How money is written for people, the same in alerts, `realty report` and the dashboard:
//! whole units with thousands separators (`$340,000`, `1,764,000 MAD`).

use num_format::{Locale, ToFormattedString};

use crate::listing::CENTS_PER_DOLLAR;

/// A whole amount of `minor` units (cents) in `currency`, rounded half up: `$340,000`, or
/// `1,764,000 MAD`.
pub fn money(minor: i64, currency: &str) -> String {
    let cents = i128::from(minor);
    let whole = (cents + i128::from(CENTS_PER_DOLLAR) / 2).div_euclid(i128::from(CENTS_PER_DOLLAR));
    let grouped = whole.unsigned_abs().to_formatted_string(&Locale::en);
    let sign = if whole < 0 { "-" } else { "" };
    if currency == "USD" {
        format!("{sign}${grouped}")
    } else {
        format!("{sign}{grouped} {currency}")
    }
}

/// A figure in dollars (a median, a mean) as [`money`] writes it; `-` when there is none.
pub fn dollars(value: Option<f64>) -> String {
    amount(value, Some("USD"))
}

/// A figure in whole units of `currency` (a median, a mean) as [`money`] writes it; a bare
/// number for a currency not known; `-` when there is none.
pub fn amount(value: Option<f64>, currency: Option<&str>) -> String {
    match value.filter(|v| v.is_finite()) {
        // Saturating: no market figure comes near i64's range of cents.
        Some(v) => {
            let minor = (v * CENTS_PER_DOLLAR as f64).round() as i64;
            match currency {
                Some(currency) => money(minor, currency),
                None => money(minor, "").trim_end().to_owned(),
            }
        }
        None => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_whole_with_separators() {
        assert_eq!(money(34_000_000, "USD"), "$340,000");
        assert_eq!(money(123_456_789, "USD"), "$1,234,568");
        assert_eq!(money(99, "USD"), "$1");
        assert_eq!(money(176_400_000, "MAD"), "1,764,000 MAD");
        assert_eq!(money(-150_050, "USD"), "-$1,500");
        assert_eq!(money(i64::MIN, "USD"), "-$92,233,720,368,547,758");
    }

    #[test]
    fn dollar_figures_read_as_money() {
        assert_eq!(dollars(Some(412_345.6)), "$412,346");
        assert_eq!(dollars(Some(-12.4)), "-$12");
        assert_eq!(dollars(None), "-");
        assert_eq!(dollars(Some(f64::NAN)), "-");
        assert_eq!(amount(Some(1_250_000.0), Some("MAD")), "1,250,000 MAD");
        assert_eq!(amount(Some(1_250_000.0), None), "1,250,000");
    }
}
