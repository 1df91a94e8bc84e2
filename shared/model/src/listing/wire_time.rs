//! How the wire format's times and dates are read: the shape the pipeline writes
//! (`2026-11-27T15:04:05.123Z`, `2026-11-27`) by a direct parse, anything else by chrono's
//! relaxed parser, which serde's own `Deserialize` uses for every string. So what is
//! accepted, and what it means, is what it was; only the common case is faster: the relaxed
//! parser walks a format description (about 1,900 instructions a timestamp, two timestamps
//! and a date an event), chrono's RFC 3339 parser is hand-written.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, ParseResult, Utc};
use serde::Deserializer;
use serde::de::{self, Visitor};

/// `s` as chrono's `Deserialize` for `DateTime<Utc>` reads it.
pub fn parse_utc(s: &str) -> ParseResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| s.parse::<DateTime<FixedOffset>>())
        .map(|t| t.with_timezone(&Utc))
}

/// `s` as chrono's `Deserialize` for `NaiveDate` reads it.
pub fn parse_date(s: &str) -> ParseResult<NaiveDate> {
    match plain_date(s.as_bytes()) {
        Some(date) => Ok(date),
        None => s.parse(),
    }
}

/// `YYYY-MM-DD` with a valid day; `None` for any other text (the relaxed parser's to judge).
fn plain_date(s: &[u8]) -> Option<NaiveDate> {
    let &[y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2] = s else {
        return None;
    };
    let digits = [y1, y2, y3, y4, m1, m2, d1, d2];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |ds: &[u8]| ds.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'));
    let year = i32::try_from(number(&digits[..4])).ok()?;
    NaiveDate::from_ymd_opt(year, number(&digits[4..6]), number(&digits[6..]))
}

/// For `#[serde(deserialize_with)]` on a `DateTime<Utc>`.
pub fn utc<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    deserializer.deserialize_str(UtcVisitor)
}

/// For `#[serde(default, deserialize_with)]` on an `Option<NaiveDate>`.
pub fn option_date<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<NaiveDate>, D::Error> {
    deserializer.deserialize_option(OptionDateVisitor)
}

struct UtcVisitor;

impl Visitor<'_> for UtcVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        // chrono's words, so a refused record's reason reads as it did.
        formatter.write_str("an RFC 3339 formatted date and time string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        parse_utc(value).map_err(E::custom)
    }
}

struct DateVisitor;

impl Visitor<'_> for DateVisitor {
    type Value = NaiveDate;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a formatted date string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        parse_date(value).map_err(E::custom)
    }
}

struct OptionDateVisitor;

impl<'de> Visitor<'de> for OptionDateVisitor {
    type Value = Option<NaiveDate>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a formatted date string or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(DateVisitor).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    fn chrono_utc(s: &str) -> Option<DateTime<Utc>> {
        s.parse::<DateTime<FixedOffset>>()
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Timestamps near the shape the pipeline writes, and off it in every part.
    fn timestamp_text() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just(String::new()), Just("+".to_owned()), Just("-".to_owned())],
            0u32..=10_999,
            0u32..=13,
            0u32..=32,
            prop_oneof![Just('T'), Just('t'), Just(' '), Just('x')],
            (0u32..=25, 0u32..=61, 0u32..=61),
            prop_oneof![Just(None), (0usize..=12).prop_map(Some)],
            any::<u64>(),
            prop_oneof![
                Just("Z".to_owned()),
                Just("z".to_owned()),
                Just(String::new()),
                (any::<bool>(), 0u32..=25, 0u32..=61).prop_map(|(plus, h, m)| format!(
                    "{}{h:02}:{m:02}",
                    if plus { '+' } else { '-' }
                )),
                Just("+0530".to_owned()),
            ],
        )
            .prop_map(
                |(sign, year, month, day, sep, (h, mi, s), frac, digits, offset)| {
                    let frac = frac.map_or(String::new(), |n| {
                        let d = format!("{digits:020}");
                        format!(".{}", &d[..n])
                    });
                    format!(
                        "{sign}{year:04}-{month:02}-{day:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{offset}"
                    )
                },
            )
    }

    proptest! {
        #[test]
        fn reads_every_timestamp_as_chrono_does(s in timestamp_text()) {
            prop_assert_eq!(parse_utc(&s).ok(), chrono_utc(&s), "{}", s);
        }

        #[test]
        fn reads_any_text_as_chrono_does(s in "\\PC{0,40}") {
            prop_assert_eq!(parse_utc(&s).ok(), chrono_utc(&s));
            prop_assert_eq!(parse_date(&s).ok(), s.parse::<NaiveDate>().ok());
        }

        #[test]
        fn reads_every_date_as_chrono_does(
            sign in prop_oneof![Just(""), Just("+"), Just("-"), Just(" ")],
            year in 0u32..=10_999,
            month in 0u32..=13,
            day in 0u32..=32,
            tail in prop_oneof![Just(""), Just(" "), Just("T"), Just("x")],
        ) {
            let s = format!("{sign}{year:04}-{month:02}-{day:02}{tail}");
            prop_assert_eq!(parse_date(&s).ok(), s.parse::<NaiveDate>().ok(), "{}", s);
        }
    }

    #[test]
    fn a_refused_value_reads_as_chrono_words_it() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Ours {
            #[serde(deserialize_with = "utc")]
            at: DateTime<Utc>,
            #[serde(default, deserialize_with = "option_date")]
            on: Option<NaiveDate>,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Chronos {
            at: DateTime<Utc>,
            on: Option<NaiveDate>,
        }
        for json in [
            r#"{"at":"2026-02-30T00:00:00Z","on":null}"#,
            r#"{"at":7,"on":null}"#,
            r#"{"at":"2026-11-27T15:04:05Z","on":"2026-13-01"}"#,
            r#"{"at":"2026-11-27T15:04:05Z","on":7}"#,
        ] {
            let ours = serde_json::from_str::<Ours>(json)
                .map(|_| ())
                .map_err(|e| e.to_string());
            let chronos = serde_json::from_str::<Chronos>(json)
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert_eq!(ours, chronos, "{json}");
        }
    }

    #[test]
    fn reads_what_the_pipeline_writes() {
        let at = DateTime::parse_from_rfc3339("2026-11-27T15:04:05.123456789Z")
            .expect("valid")
            .with_timezone(&Utc);
        let json = serde_json::to_string(&at).expect("serialises");
        assert_eq!(
            utc(&mut serde_json::Deserializer::from_str(&json)).ok(),
            Some(at)
        );
        let on = NaiveDate::from_ymd_opt(2026, 2, 28).expect("valid");
        let json = serde_json::to_string(&Some(on)).expect("serialises");
        assert_eq!(
            option_date(&mut serde_json::Deserializer::from_str(&json)).ok(),
            Some(Some(on))
        );
        assert_eq!(
            option_date(&mut serde_json::Deserializer::from_str("null")).ok(),
            Some(None)
        );
    }
}
