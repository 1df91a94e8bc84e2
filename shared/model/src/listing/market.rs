//! The market a listing is counted in, and how its key is normalised and bounded.
//!
//! One city must give one key however a source spells it, or its listings are split across
//! markets (and a spoofed name could start a market of its own). The rule, per character of
//! the city and of the state:
//! 1. Unicode NFKC: composed accents, and compatibility forms (full-width `Ｎ`, ligatures)
//!    as their plain letters;
//! 2. lower case;
//! 3. ASCII letters and digits are kept;
//! 4. any other letter or digit is replaced by its UTS #39 confusable prototype
//!    (`unicode-security`'s skeleton) less combining marks, when that is ASCII letters or
//!    digits: Cyrillic `а`, Greek `ο`, `é`, `ø` become `a`, `o`, `e`, `o`; a letter with
//!    no ASCII look-alike (`ß`, `東`) is kept as it is, with the combining marks after it;
//! 5. every other run of characters (spaces, punctuation, marks after an ASCII letter) is
//!    one `-`, none at either end.
//!
//! A US market is `{city}-{state}` (`nashville-tn`); a market elsewhere is
//! `{country}/{city}` with the ISO country code in lower case (`ma/casablanca`): portals
//! name no region, and the `/` (never in a normalised part) keeps the two kinds of key from
//! ever meeting.
//!
//! ASCII names keep the keys they always had (`nashville-tn`, `st-louis-mo`). The skeleton
//! is taken one character at a time, never over a whole name, so plain letters are never
//! rewritten (UTS #39 maps `m` to `rn`).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization as _;
use unicode_normalization::char::is_combining_mark;
use unicode_security::confusable_detection::skeleton;

use super::bounds::{
    MAX_CITY_BYTES, MAX_MARKET_KEY_BYTES, MAX_POSTAL_CODE_BYTES, MAX_STATE_BYTES, check_text, quote,
};
use super::{Address, InvalidListing};

/// The market a listing is counted in: a normalised city-state key plus the ZIP.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MarketKey {
    /// In the US, city and state normalised (module docs) and joined by `-`: `nashville-tn`,
    /// `st-louis-mo`; elsewhere country and city joined by `/`: `ma/casablanca`. At most
    /// [`MAX_MARKET_KEY_BYTES`].
    pub city_state: String,
    /// Five-digit ZIP for US postal codes (ZIP+4 cut), else the postal code upper-cased.
    pub zip: Option<String>,
}

impl MarketKey {
    /// The country a market key names: `ma/casablanca` Morocco, a city-state key
    /// (`nashville-tn`) the US; `None` when the part before `/` is not a country code.
    pub fn country_of(key: &str) -> Option<super::CountryCode> {
        match key.split_once('/') {
            Some((country, _)) => super::CountryCode::parse(country).ok(),
            None => Some(super::CountryCode::US),
        }
    }

    /// The market of an address. Fails when the city or state has no letters or digits,
    /// when a part is over its size limit, or when the postal code is not one.
    pub fn for_address(address: &Address) -> Result<Self, InvalidListing> {
        check_text("address.city", &address.city, MAX_CITY_BYTES)?;
        check_text("address.state", &address.state, MAX_STATE_BYTES)?;
        let city = key_part(&address.city);
        if city.is_empty() {
            return Err(InvalidListing::new(
                "address.city",
                "no city: the listing cannot be placed in a market",
            ));
        }
        let city_state = if address.country.is_us() {
            let state = key_part(&address.state);
            if state.is_empty() {
                return Err(InvalidListing::new(
                    "address.state",
                    "no state: the listing cannot be placed in a market",
                ));
            }
            // The city's own string, extended: every decoded event makes one.
            let mut city_state = city;
            city_state.reserve_exact(state.len() + 1);
            city_state.push('-');
            city_state.push_str(&state);
            city_state
        } else {
            format!("{}/{city}", address.country.as_str().to_ascii_lowercase())
        };
        if city_state.len() > MAX_MARKET_KEY_BYTES {
            return Err(InvalidListing::new(
                "market.city_state",
                format!(
                    "{} bytes once normalised, over the {MAX_MARKET_KEY_BYTES}-byte limit: {}",
                    city_state.len(),
                    quote(&city_state)
                ),
            ));
        }
        let zip = match &address.postal_code {
            Some(code) => market_zip(code)?,
            None => None,
        };
        Ok(Self { city_state, zip })
    }
}

/// One part (city or state) of a market key, normalised as the module docs say.
pub(super) fn key_part(text: &str) -> String {
    if text.is_ascii() {
        // Nearly every name: NFKC leaves ASCII as it is and lower-cases it to ASCII, so the
        // rule is letters and digits kept, every run of anything else one `-`.
        let mut out = String::with_capacity(text.len());
        let mut separate = false;
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() {
                if separate && !out.is_empty() {
                    out.push('-');
                }
                separate = false;
                out.push(char::from(b.to_ascii_lowercase()));
            } else {
                separate = true;
            }
        }
        return out;
    }
    key_part_unicode(text)
}

fn key_part_unicode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // A separator is written only between two kept characters.
    let mut separate = false;
    let mut last_kept_ascii = true;
    fn keep(out: &mut String, piece: &str, separate: &mut bool) {
        if *separate && !out.is_empty() {
            out.push('-');
        }
        *separate = false;
        out.push_str(piece);
    }
    for composed in text.nfkc() {
        for c in composed.to_lowercase() {
            if c.is_ascii_alphanumeric() {
                keep(&mut out, c.encode_utf8(&mut [0; 4]), &mut separate);
                last_kept_ascii = true;
            } else if c.is_alphanumeric() {
                let folded = ascii_prototype(c);
                if folded.is_empty() {
                    keep(&mut out, c.encode_utf8(&mut [0; 4]), &mut separate);
                    last_kept_ascii = false;
                } else {
                    keep(&mut out, &folded, &mut separate);
                    last_kept_ascii = true;
                }
            } else if is_combining_mark(c) && !last_kept_ascii && !separate && !out.is_empty() {
                // A vowel sign or accent of a script without ASCII look-alikes: part of
                // the letter before it.
                out.push(c);
            } else {
                separate = true;
            }
        }
    }
    out
}

/// The ASCII letters and digits `c` is confusable with (its UTS #39 prototype, lower-cased,
/// combining marks dropped), or an empty string when it has no such look-alike.
fn ascii_prototype(c: char) -> String {
    let mut buffer = [0; 4];
    let mut folded = String::new();
    for p in skeleton(c.encode_utf8(&mut buffer)) {
        if is_combining_mark(p) {
            continue;
        }
        for lower in p.to_lowercase() {
            if !lower.is_ascii_alphanumeric() {
                return String::new();
            }
            folded.push(lower);
        }
    }
    folded
}

/// The ZIP of a market from a postal code: at most [`MAX_POSTAL_CODE_BYTES`] of letters,
/// digits, spaces and hyphens (after NFKC, so full-width digits count as digits); US ZIP+4
/// cut to five digits, others upper-cased. `None` for a blank code.
pub(super) fn market_zip(postal_code: &str) -> Result<Option<String>, InvalidListing> {
    check_text("address.postal_code", postal_code, MAX_POSTAL_CODE_BYTES)?;
    let code = postal_code.trim();
    // NFKC leaves ASCII as it is: nearly every code (every decoded event has one) skips the
    // normaliser.
    let code: Cow<str> = if code.is_ascii() {
        Cow::Borrowed(code)
    } else {
        Cow::Owned(code.nfkc().collect())
    };
    if code.is_empty() {
        return Ok(None);
    }
    if !code
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
        || code.len() > MAX_POSTAL_CODE_BYTES
    {
        return Err(InvalidListing::new(
            "address.postal_code",
            format!(
                "{} is not a postal code (letters, digits, spaces and hyphens)",
                quote(postal_code)
            ),
        ));
    }
    let bytes = code.as_bytes();
    let is_us_zip = bytes.len() >= 5
        && bytes[..5].iter().all(u8::is_ascii_digit)
        && (bytes.len() == 5
            || (bytes.len() == 10
                && bytes[5] == b'-'
                && bytes[6..].iter().all(u8::is_ascii_digit)));
    Ok(Some(if is_us_zip {
        code[..5].to_owned()
    } else {
        code.to_ascii_uppercase()
    }))
}

/// Square feet (US markets) or square metres (the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AreaUnit {
    Sqft,
    Sqm,
}

/// The currency and unit of area of a market's figures: a Moroccan listing priced in
/// another currency than MAD is refused before it is counted; US listings are taken to be in
/// dollars (schema version 1 tied no currency to a market).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MarketUnits {
    pub currency: Option<&'static str>,
    pub area: AreaUnit,
}

impl MarketUnits {
    /// The units of a market key: `nashville-tn` is in dollars and square feet,
    /// `ma/casablanca` in dirhams and square metres; of a scope key, those of the place it
    /// names (`city#ma/casablanca#condo`, `zip#ma/20000#all`: dirhams and square metres).
    pub fn of(market: &str) -> Self {
        let place = match market.split('#').nth(1) {
            Some(place) => place,
            None => market,
        };
        let country = MarketKey::country_of(place).unwrap_or(super::CountryCode::US);
        if country.is_us() {
            Self {
                currency: Some("USD"),
                area: AreaUnit::Sqft,
            }
        } else {
            Self {
                currency: country.market_currency(),
                area: AreaUnit::Sqm,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn the_ascii_path_is_the_unicode_rule(text in "[ -~]{0,40}") {
            proptest::prop_assert_eq!(key_part(&text), key_part_unicode(&text));
        }

        /// What `market_zip`'s ASCII path relies on.
        #[test]
        fn nfkc_leaves_ascii_as_it_is(text in "[\\x00-\\x7f]{0,40}") {
            proptest::prop_assert_eq!(text.nfkc().collect::<String>(), text);
        }
    }

    #[test]
    fn ascii_names_keep_their_keys() {
        assert_eq!(key_part("St. Louis"), "st-louis");
        assert_eq!(key_part("  Winston-Salem "), "winston-salem");
        assert_eq!(key_part("Coeur d'Alene"), "coeur-d-alene");
        assert_eq!(key_part("Miami"), "miami");
        assert_eq!(key_part("--"), "");
    }

    #[test]
    fn one_city_one_key_however_it_is_written() {
        // Composed and decomposed accents, upper case, full-width letters.
        for spelling in [
            "Montréal",
            "Montre\u{301}al",
            "MONTRÉAL",
            "Ｍｏｎｔｒéａｌ",
            "Montreal",
        ] {
            assert_eq!(key_part(spelling), "montreal", "{spelling}");
        }
        // Cyrillic а and е, Greek ο in a Latin name.
        assert_eq!(key_part("N\u{430}shvill\u{435}"), "nashville");
        assert_eq!(key_part("B\u{3bf}ston"), "boston");
        // Letters with no ASCII look-alike stay as they are.
        assert_eq!(key_part("Straße"), "straße");
        assert_eq!(key_part("東京"), "東京");
    }

    #[test]
    fn markets_outside_the_us_are_country_and_city() {
        let address = |country, city: &str, state: &str| Address {
            line: None,
            city: city.to_owned(),
            state: state.to_owned(),
            postal_code: None,
            country,
            neighbourhood: Some("Maarif".to_owned()),
        };
        let key = |a: &Address| MarketKey::for_address(a).map(|k| k.city_state);
        let ma = super::super::CountryCode::MA;
        assert_eq!(
            key(&address(ma, "Casablanca", "")).as_deref(),
            Ok("ma/casablanca")
        );
        assert_eq!(
            key(&address(ma, "Fès", "Fès-Meknès")).as_deref(),
            Ok("ma/fes")
        );
        let us = super::super::CountryCode::US;
        assert_eq!(
            key(&address(us, "Nashville", "TN")).as_deref(),
            Ok("nashville-tn")
        );
        // A US address still needs its state; elsewhere the city alone places it.
        assert!(key(&address(us, "Nashville", "")).is_err());
        assert!(key(&address(ma, " - ", "")).is_err());
    }

    #[test]
    fn market_zip_cuts_zip_plus_four_only() {
        let zip = |code: &str| market_zip(code).expect("a postal code");
        assert_eq!(zip("37201-1234").as_deref(), Some("37201"));
        assert_eq!(zip(" 37201 ").as_deref(), Some("37201"));
        assert_eq!(zip("K1A 0B1").as_deref(), Some("K1A 0B1"));
        assert_eq!(zip("k1a 0b1").as_deref(), Some("K1A 0B1"));
        assert_eq!(zip("372011234").as_deref(), Some("372011234"));
        assert_eq!(zip("３７２０１").as_deref(), Some("37201"));
        assert_eq!(zip(""), None);
    }

    #[test]
    fn postal_codes_at_and_just_past_their_limit() {
        assert!(market_zip(&"1".repeat(MAX_POSTAL_CODE_BYTES)).is_ok());
        let err = market_zip(&"1".repeat(MAX_POSTAL_CODE_BYTES + 1)).expect_err("too long");
        assert_eq!(err.field, "address.postal_code");
        assert!(market_zip(&"K".repeat(3_000)).is_err());
        assert!(market_zip("37201;DROP").is_err());
    }
}
