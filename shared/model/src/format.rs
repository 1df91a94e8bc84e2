//! How figures are written for people, the same in alerts, `realty report` and the
//! dashboard: money in whole units with thousands separators (`$340,000`, `1,764,000 MAD`);
//! and the precision figures carry where they are stored and served (the API, snapshots,
//! the lake): money to the cent, percentages to 0.01, shares and yields to 0.01 % (four
//! decimals of a fraction), never more digits than a figure knows.

use num_format::{Locale, ToFormattedString};

use crate::listing::CENTS_PER_DOLLAR;

/// Decimals of money in major units (the cent).
pub const MONEY_DECIMALS: i32 = 2;
/// Decimals of a percentage, and of a ratio such as price-to-rent years.
pub const PERCENT_DECIMALS: i32 = 2;
/// Decimals of a share or yield given as a fraction (0.0642: 6.42 %).
pub const FRACTION_DECIMALS: i32 = 4;

/// `minor` units in major units (cents in dollars): exact to the cent.
pub fn major(minor: i64) -> f64 {
    minor as f64 / CENTS_PER_DOLLAR as f64
}

/// `value` rounded to `decimals` (halves away from zero), as the nearest `f64`, which JSON
/// then writes with no more digits than that. Not finite: unchanged.
pub fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    let r = (value * scale).round() / scale;
    if r.is_finite() { r } else { value }
}

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

/// `text` cut to at most `max_chars` characters, with `…` when cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
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
    fn figures_carry_the_digits_they_know() {
        assert_eq!(major(54_990_012), 549_900.12);
        assert_eq!(
            serde_json::to_string(&major(54_990_012)).unwrap(),
            "549900.12"
        );
        assert_eq!(rounded(555_206.665_797_322_6, MONEY_DECIMALS), 555_206.67);
        assert_eq!(rounded(-3.884_893_4, PERCENT_DECIMALS), -3.88);
        assert_eq!(rounded(0.064_249_9, FRACTION_DECIMALS), 0.0642);
        assert_eq!(
            serde_json::to_string(&rounded(0.1 + 0.2, 2)).unwrap(),
            "0.3"
        );
        assert!(rounded(f64::NAN, 2).is_nan());
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
