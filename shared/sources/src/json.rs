//! Lenient reading of API JSON: numbers that arrive as strings (`"daysOnZillow": "138"`),
//! keys that are null or missing, and short descriptions of values for reject reasons.

use serde_json::Value;

use realty_model::listing::{Coordinates, SQFT_PER_ACRE, SQFT_PER_SQUARE_METRE};

/// The value at `key`, treating `null` like a missing key.
pub(crate) fn field<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

/// A number, or a string holding one (`"138"`, `"$1,250.50"`, `" 2.5 "`); finite only.
pub(crate) fn as_number(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => {
            let cleaned: String = text
                .trim()
                .trim_start_matches('$')
                .chars()
                .filter(|&c| c != ',')
                .collect();
            cleaned.parse::<f64>().ok()
        }
        _ => None,
    };
    number.filter(|n| n.is_finite())
}

/// The number at `key`: `Ok(None)` when missing, null or an empty string; `Err` with a
/// reason when something else is there.
pub(crate) fn number(object: &Value, key: &str) -> Result<Option<f64>, String> {
    match field(object, key) {
        None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(value) => as_number(value)
            .map(Some)
            .ok_or_else(|| format!("{key}: expected a number, found {}", describe(value))),
    }
}

/// The number at `key`, or `None` if it is missing or malformed (for optional details).
pub(crate) fn lenient_number(object: &Value, key: &str) -> Option<f64> {
    number(object, key).ok().flatten()
}

/// A whole, non-negative count at `key` (beds, days), or `None`.
pub(crate) fn lenient_count(object: &Value, key: &str) -> Option<u64> {
    let n = lenient_number(object, key)?;
    (n >= 0.0 && n.fract() == 0.0 && n <= 1e15).then_some(n as u64)
}

/// The text at `key`, trimmed; numbers are written out (ids sometimes arrive as numbers).
/// `Ok(None)` when missing, null or blank; `Err` for other kinds of value.
pub(crate) fn text(object: &Value, key: &str) -> Result<Option<String>, String> {
    match field(object, key) {
        None => Ok(None),
        Some(Value::String(s)) => {
            let trimmed = s.trim();
            Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
        }
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!("{key}: expected text, found {}", describe(other))),
    }
}

/// The text at `key`, or `None` if missing or not text.
pub(crate) fn lenient_text(object: &Value, key: &str) -> Option<String> {
    text(object, key).ok().flatten()
}

/// `true`/`false` (or the strings `"true"`/`"false"`) at `key`.
pub(crate) fn flag(object: &Value, key: &str) -> bool {
    match field(object, key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Major currency units to minor units (hundredths). `None` when out of `i64` range.
pub(crate) fn to_minor(major: f64) -> Option<i64> {
    let minor = (major * 100.0).round();
    // Bounds well inside i64 (and inside f64's exact integers).
    (minor.is_finite() && minor.abs() < 9.0e15).then_some(minor as i64)
}

/// Rounds a non-negative area in square feet to a whole number, or `None` when out of
/// range for `u64`.
pub(crate) fn whole_sqft(sqft: f64) -> Option<u64> {
    (0.0..1.0e18).contains(&sqft).then(|| sqft.round() as u64)
}

/// Bathrooms rounded to tenths (`2.5`), as `f32`.
pub(crate) fn tenths(count: f64) -> f32 {
    ((count * 10.0).round() / 10.0) as f32
}

/// An area unit, as the sources spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AreaUnit {
    SquareFeet,
    SquareMetres,
    Acres,
}

impl AreaUnit {
    /// Reads `sqft`, `Square Feet`, `SquareMeters`, `acres`... in any case and spacing.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match folded(name).as_str() {
            "sqft" | "squarefeet" | "squarefoot" | "sf" | "ft2" => Some(Self::SquareFeet),
            "sqm" | "squaremeters" | "squaremeter" | "squaremetres" | "squaremetre" | "m2" => {
                Some(Self::SquareMetres)
            }
            "acres" | "acre" | "ac" => Some(Self::Acres),
            _ => None,
        }
    }

    pub(crate) fn to_sqft(self, value: f64) -> f64 {
        match self {
            Self::SquareFeet => value,
            Self::SquareMetres => value * SQFT_PER_SQUARE_METRE,
            Self::Acres => value * SQFT_PER_ACRE,
        }
    }
}

/// Lower-case letters and digits only, so `Active Under Contract`, `ActiveUnderContract`
/// and `ACTIVE_UNDER_CONTRACT` compare equal.
pub(crate) fn folded(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Coordinates from two numeric fields, rounded ([`Coordinates::rounded`]); `None` unless
/// both are there.
pub(crate) fn coordinates(object: &Value, lat_key: &str, lon_key: &str) -> Option<Coordinates> {
    Some(Coordinates::rounded(
        lenient_number(object, lat_key)?,
        lenient_number(object, lon_key)?,
    ))
}

/// A calendar date at the start of `text` (`2024-02-15`, `2024-02-15T04:07:56Z`).
pub(crate) fn leading_date(text: &str) -> Option<chrono::NaiveDate> {
    let head = text.trim().get(..10)?;
    chrono::NaiveDate::parse_from_str(head, "%Y-%m-%d").ok()
}

pub(crate) use realty_model::format::truncate;

/// A short description of a value for messages: `an object with keys [data, meta]`,
/// `the string "abc"`, `an array of 3 items`.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {:?}", truncate(s, 40)),
        Value::Array(items) => format!("an array of {} items", items.len()),
        Value::Object(object) => {
            let mut keys: Vec<&str> = object.keys().map(String::as_str).take(8).collect();
            if object.len() > keys.len() {
                keys.push("…");
            }
            format!("an object with keys [{}]", keys.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_may_be_strings() {
        let record = json!({"a": "138", "b": 2.5, "c": "$1,250.50", "d": "", "e": null, "f": "n/a", "g": [1]});
        assert_eq!(number(&record, "a"), Ok(Some(138.0)));
        assert_eq!(number(&record, "b"), Ok(Some(2.5)));
        assert_eq!(number(&record, "c"), Ok(Some(1250.5)));
        assert_eq!(number(&record, "d"), Ok(None));
        assert_eq!(number(&record, "e"), Ok(None));
        assert_eq!(number(&record, "missing"), Ok(None));
        assert!(number(&record, "f").is_err());
        assert!(number(&record, "g").is_err());
        assert_eq!(lenient_count(&record, "a"), Some(138));
        assert_eq!(lenient_count(&record, "b"), None);
    }

    #[test]
    fn minor_units_round_to_cents() {
        assert_eq!(to_minor(410_000.0), Some(41_000_000));
        assert_eq!(to_minor(0.1 + 0.2), Some(30));
        assert_eq!(to_minor(1e300), None);
    }

    #[test]
    fn area_units_in_any_spelling() {
        assert_eq!(
            AreaUnit::parse("Square Meters"),
            Some(AreaUnit::SquareMetres)
        );
        assert_eq!(AreaUnit::parse("SquareFeet"), Some(AreaUnit::SquareFeet));
        assert_eq!(AreaUnit::parse("acres"), Some(AreaUnit::Acres));
        assert_eq!(AreaUnit::parse("hectares"), None);
        assert_eq!(AreaUnit::Acres.to_sqft(1.0), 43_560.0);
    }

    #[test]
    fn dates_at_the_start_of_timestamps() {
        let date = chrono::NaiveDate::from_ymd_opt(2024, 2, 15);
        assert_eq!(leading_date("2024-02-15T04:07:56.000000Z"), date);
        assert_eq!(leading_date("2024-02-15"), date);
        assert_eq!(leading_date("15/02/2024"), None);
        assert_eq!(leading_date("2024-02-1é"), None);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("ééé", 2), "éé…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
