//! Bounds on every input: the plausibility rules of the canonical listing, the size of each
//! of its strings and arrays, the encoded event, error reasons, and the time window an
//! observation must fall in. The table with the reasons is in `docs/events.md`, "Limits".
//!
//! Sizes are in bytes of UTF-8, because what they protect is counted in bytes: DynamoDB's
//! 400 KB item and 2,048-byte partition key, Kinesis's 1 MiB record, SQS's and SNS's
//! message limits. A value over its limit is refused with a reason, never cut and accepted.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};

use super::{Coordinates, InvalidListing, Offer};

/// Minor units in one major unit. Every currency the sources send (USD) has two decimals.
pub const CENTS_PER_DOLLAR: i64 = 100;

/// Lowest sale price (USD, minor units) taken as real. Below it a price is a placeholder
/// ("call for price" listings entered at $1, $100, $1,000...): such a listing is rejected,
/// because a fake price would skew medians and fire false "undervalued" alerts.
/// See `docs/sources.md`, "Placeholder prices".
pub const MIN_PLAUSIBLE_SALE_PRICE_USD_MINOR: i64 = 5_000 * CENTS_PER_DOLLAR;
/// Highest sale price (USD, minor units) taken as real: the dearest homes ever listed are a
/// few hundred million dollars.
pub const MAX_PLAUSIBLE_SALE_PRICE_USD_MINOR: i64 = 1_000_000_000 * CENTS_PER_DOLLAR;
/// Lowest monthly rent (USD, minor units) taken as real.
pub const MIN_PLAUSIBLE_MONTHLY_RENT_USD_MINOR: i64 = 100 * CENTS_PER_DOLLAR;
/// Highest monthly rent (USD, minor units) taken as real.
pub const MAX_PLAUSIBLE_MONTHLY_RENT_USD_MINOR: i64 = 1_000_000 * CENTS_PER_DOLLAR;
/// Lowest sale price (MAD, minor units) taken as real: a plot in a small town sells for a
/// few tens of thousands of dirhams; below 50,000 a price is a placeholder ("1 DH").
pub const MIN_PLAUSIBLE_SALE_PRICE_MAD_MINOR: i64 = 50_000 * 100;
/// Highest sale price (MAD, minor units) taken as real (about 100 million US dollars).
pub const MAX_PLAUSIBLE_SALE_PRICE_MAD_MINOR: i64 = 1_000_000_000 * 100;
/// Lowest monthly rent (MAD, minor units) taken as real (a room in a shared flat).
pub const MIN_PLAUSIBLE_MONTHLY_RENT_MAD_MINOR: i64 = 500 * 100;
/// Highest monthly rent (MAD, minor units) taken as real.
pub const MAX_PLAUSIBLE_MONTHLY_RENT_MAD_MINOR: i64 = 2_000_000 * 100;
/// Ceiling for amounts in currencies without their own bounds: ten trillion units (a $10
/// million home is 160 billion Indonesian rupiah), so a market's sum of prices (an `i64`)
/// holds over 9,000 listings each at the ceiling, and millions at real prices.
pub const MAX_AMOUNT_MINOR_ANY_CURRENCY: i64 = 1_000_000_000_000_000;

/// Most bedrooms (and bathrooms) a listing may state; larger numbers are data-entry errors.
pub const MAX_ROOMS: u16 = 1_000;
/// Largest living area, in square feet, taken as real (a large apartment complex).
pub const MAX_LIVING_AREA_SQFT: u32 = 10_000_000;
/// Smallest living area, in square feet, the sources keep (about 9.3 m², a bedsit): below
/// it a stated area is a typo or another measure, and would make the home's price per sqft
/// many times its market's. Events carrying less still decode (they were valid when sent).
pub const MIN_PLAUSIBLE_LIVING_AREA_SQFT: u32 = 100;
/// Smallest living area per bedroom the sources keep (about 6.5 m²): two bedrooms in 5 m²
/// are a typo.
pub const MIN_PLAUSIBLE_SQFT_PER_BEDROOM: u32 = 70;
/// Most days on the market the sources keep an on-market date for (ten years): the longest
/// real listings (land, ranches) run a few years; an older date is a placeholder
/// (`1900-01-01`, the Unix epoch) or a typo, and would make its market's median days on
/// market. Events carrying one still decode (they were valid when sent).
pub const MAX_PLAUSIBLE_DAYS_ON_MARKET: i64 = 3_653;
/// Largest lot, in square feet, taken as real (about 230,000 acres, a very large ranch).
pub const MAX_LOT_SIZE_SQFT: u64 = 10_000_000_000;
/// Longest native id accepted.
pub const MAX_NATIVE_ID_LEN: usize = 128;

/// Square feet in one acre.
pub const SQFT_PER_ACRE: f64 = 43_560.0;
/// Square feet in one square metre.
pub const SQFT_PER_SQUARE_METRE: f64 = 10.763_910_416_709_722;

/// Lowest floor taken as real (a basement several levels down).
pub const MIN_FLOOR: i16 = -5;
/// Highest floor taken as real (the tallest towers have about 160).
pub const MAX_FLOOR: i16 = 200;
/// Most equipment labels kept for a listing (portals show a dozen or two).
pub const MAX_EQUIPMENT_ITEMS: usize = 24;
/// Longest equipment label (`Cuisine équipée`, `Chauffage central`).
pub const MAX_EQUIPMENT_BYTES: usize = 48;
/// Most photo URLs kept for a listing: enough for an alert or a report, bounded so an event
/// with every field at its limit stays under [`MAX_ENCODED_EVENT_BYTES`].
pub const MAX_IMAGES: usize = 10;
/// Longest photo URL (the portals' are 60 to 100 bytes).
pub const MAX_IMAGE_URL_BYTES: usize = 200;

/// A living area in square metres as whole square feet (rounded), for the fields counted in
/// feet. Saturates far above [`MAX_LIVING_AREA_SQFT`], which then refuses it.
pub fn sqft_from_sqm(sqm: u32) -> u32 {
    // At most 4.3e10: an f64 holds it exactly, and the cast saturates at u32::MAX.
    (f64::from(sqm) * SQFT_PER_SQUARE_METRE).round() as u32
}

/// Longest street line. US lines are at most 64 characters (USPS); 256 bytes hold any real
/// line with its unit, in any script.
pub const MAX_ADDRESS_LINE_BYTES: usize = 256;
/// Longest city name. The longest real ones are under 60 characters in Latin script;
/// 256 bytes leave room for other scripts (three bytes a character).
pub const MAX_CITY_BYTES: usize = 256;
/// Longest state or province, as the source writes it (a code or a full name).
pub const MAX_STATE_BYTES: usize = 64;
/// Longest postal code. ZIP+4 is 10 characters, the longest national formats about as long.
pub const MAX_POSTAL_CODE_BYTES: usize = 16;
/// Longest normalised `market.city_state`. Normalising can lengthen a name (compatibility
/// forms, case mappings), so the key is bounded after it: with its prefix and property type
/// a market's partition key stays under 600 bytes, far below DynamoDB's 2,048.
pub const MAX_MARKET_KEY_BYTES: usize = 512;
/// Longest `source_url`: the length browsers and CDNs reliably accept.
pub const MAX_SOURCE_URL_BYTES: usize = 2_048;
/// Most names in `changes.fields`: every tracked field once, plus room for names a newer
/// producer of the same schema version adds.
pub const MAX_CHANGED_FIELDS: usize = 32;
/// Largest event [`super::ListingEvent::encode`] writes. Every string and array of an event
/// is bounded, so a valid event is under 15 KiB even with every field at its limit;
/// the listing item stored for it is then far below DynamoDB's 400 KB item limit.
pub const MAX_ENCODED_EVENT_BYTES: usize = 16 * 1024;
/// Largest record [`super::ListingEvent::decode`] reads: Kinesis's record limit (1 MiB).
/// Readers still accept records a newer producer pads with fields they do not know.
pub const MAX_EVENT_RECORD_BYTES: usize = 1024 * 1024;
/// Longest error reason: long enough for a path, a rule and the start of the bad value.
pub const MAX_REASON_BYTES: usize = 512;
/// Bytes of a bad value quoted in a reason.
pub const QUOTED_VALUE_BYTES: usize = 48;
/// How far after its reference time (the Kinesis arrival of its record, or the poll's clock)
/// an observation may be stamped: clocks drift by seconds, not by minutes.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 5 * 60;
/// How far before its reference time an observation may be stamped: five years, above
/// Kinesis's longest retention (365 days) so any record a stream still holds, or a backfill
/// re-puts, is read; below it an epoch-zero or two-digit-year clock is refused.
pub const MAX_OBSERVATION_AGE_DAYS: i64 = 5 * 365 + 1;

/// `text` quoted for a reason: whole if short, else its first [`QUOTED_VALUE_BYTES`] (cut at
/// a character boundary) and its length.
pub fn quote(text: &str) -> String {
    if text.len() <= QUOTED_VALUE_BYTES {
        format!("{text:?}")
    } else {
        let head = &text[..text.floor_char_boundary(QUOTED_VALUE_BYTES)];
        format!("{head:?}... ({} bytes)", text.len())
    }
}

/// `reason` kept under [`MAX_REASON_BYTES`]: its start and its end (where serde says the
/// line and column), cut at character boundaries, with how much was left out.
pub fn bound_reason(reason: String) -> String {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let head_end = reason.floor_char_boundary(MAX_REASON_BYTES * 3 / 4);
    let tail_start = reason.ceil_char_boundary(reason.len() - MAX_REASON_BYTES / 5);
    format!(
        "{} [... {} bytes ...] {}",
        &reason[..head_end],
        tail_start - head_end,
        &reason[tail_start..]
    )
}

/// A free-text field: at most `max_bytes`, no control characters (no source writes them in
/// a name or an address; they would break logs, CSV exports and SQS messages).
pub(super) fn check_text(
    field: &'static str,
    text: &str,
    max_bytes: usize,
) -> Result<(), InvalidListing> {
    if text.len() > max_bytes {
        return Err(InvalidListing::new(
            field,
            format!(
                "{} bytes, over the {max_bytes}-byte limit: {}",
                text.len(),
                quote(text)
            ),
        ));
    }
    if text.chars().any(unsendable) {
        return Err(InvalidListing::new(
            field,
            format!("contains control characters: {}", quote(text)),
        ));
    }
    Ok(())
}

/// A control character, or one of the two noncharacters U+FFFE and U+FFFF, which SQS (and
/// XML) refuse: a listing's text goes into alerts, which SNS delivers to SQS subscriptions
/// as it is, and one of them lost the alert for those subscribers.
fn unsendable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// Why `observed_at` is not a time to trust, against `reference` (when the record reached
/// Kinesis, or the poll's clock): more than [`MAX_CLOCK_SKEW_SECONDS`] after it, or more
/// than [`MAX_OBSERVATION_AGE_DAYS`] before it. `None` when it is within the window.
pub fn time_window_violation(
    field: &str,
    observed_at: DateTime<Utc>,
    reference: DateTime<Utc>,
) -> Option<String> {
    let skew = TimeDelta::seconds(MAX_CLOCK_SKEW_SECONDS);
    let age = TimeDelta::days(MAX_OBSERVATION_AGE_DAYS);
    if observed_at > reference + skew {
        Some(format!(
            "{field} {} is after its reference time {} by more than the {} s clock skew allowed",
            observed_at.to_rfc3339(),
            reference.to_rfc3339(),
            MAX_CLOCK_SKEW_SECONDS
        ))
    } else if observed_at < reference - age {
        Some(format!(
            "{field} {} is more than {MAX_OBSERVATION_AGE_DAYS} days before its reference time {}",
            observed_at.to_rfc3339(),
            reference.to_rfc3339()
        ))
    } else {
        None
    }
}

pub(super) fn check_native_id(native_id: &str) -> Result<(), InvalidListing> {
    if native_id.is_empty() {
        return Err(InvalidListing::new("id", "empty native id"));
    }
    if native_id.len() > MAX_NATIVE_ID_LEN {
        return Err(InvalidListing::new(
            "id",
            format!(
                "native id of {} bytes, over the {MAX_NATIVE_ID_LEN}-byte limit",
                native_id.len()
            ),
        ));
    }
    if native_id
        .chars()
        .any(|c| c.is_whitespace() || unsendable(c))
    {
        return Err(InvalidListing::new(
            "id",
            format!(
                "native id {} contains whitespace or control characters",
                quote(native_id)
            ),
        ));
    }
    Ok(())
}

/// Inclusive range of amounts taken as real for one currency and offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceBounds {
    pub min_minor: i64,
    pub max_minor: i64,
}

/// Plausible amounts for `currency` and `offer`. USD and MAD (the currencies the sources
/// send) have floors and ceilings; other currencies need only be positive and below a huge
/// ceiling.
pub fn price_bounds(currency: &str, offer: Offer) -> PriceBounds {
    match (currency, offer) {
        ("MAD", Offer::Sale) => PriceBounds {
            min_minor: MIN_PLAUSIBLE_SALE_PRICE_MAD_MINOR,
            max_minor: MAX_PLAUSIBLE_SALE_PRICE_MAD_MINOR,
        },
        ("MAD", Offer::Rent) => PriceBounds {
            min_minor: MIN_PLAUSIBLE_MONTHLY_RENT_MAD_MINOR,
            max_minor: MAX_PLAUSIBLE_MONTHLY_RENT_MAD_MINOR,
        },
        ("USD", Offer::Sale) => PriceBounds {
            min_minor: MIN_PLAUSIBLE_SALE_PRICE_USD_MINOR,
            max_minor: MAX_PLAUSIBLE_SALE_PRICE_USD_MINOR,
        },
        ("USD", Offer::Rent) => PriceBounds {
            min_minor: MIN_PLAUSIBLE_MONTHLY_RENT_USD_MINOR,
            max_minor: MAX_PLAUSIBLE_MONTHLY_RENT_USD_MINOR,
        },
        _ => PriceBounds {
            min_minor: 1,
            max_minor: MAX_AMOUNT_MINOR_ANY_CURRENCY,
        },
    }
}

/// `12345678` minor units as `123456.78`, for messages.
pub fn format_minor(amount_minor: i64) -> String {
    let sign = if amount_minor < 0 { "-" } else { "" };
    let abs = amount_minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

pub(super) fn check_amount(
    field: &'static str,
    amount_minor: i64,
    currency: &str,
    offer: Offer,
) -> Result<(), InvalidListing> {
    let what = match offer {
        Offer::Sale => "sale price",
        Offer::Rent => "monthly rent",
    };
    if amount_minor <= 0 {
        return Err(InvalidListing::new(
            field,
            format!("must be positive, got {}", format_minor(amount_minor)),
        ));
    }
    let bounds = price_bounds(currency, offer);
    if amount_minor < bounds.min_minor {
        return Err(InvalidListing::new(
            field,
            format!(
                "{} {currency} is below the {} {currency} floor for a {what}: \
                 taken as a placeholder price, not a real one",
                format_minor(amount_minor),
                format_minor(bounds.min_minor)
            ),
        ));
    }
    if amount_minor > bounds.max_minor {
        return Err(InvalidListing::new(
            field,
            format!(
                "{} {currency} is above the {} {currency} ceiling for a {what}",
                format_minor(amount_minor),
                format_minor(bounds.max_minor)
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_currency(currency: &str) -> Result<(), InvalidListing> {
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(InvalidListing::new(
            "currency",
            format!(
                "{} is not an ISO 4217 code (three upper-case letters)",
                quote(currency)
            ),
        ))
    }
}

pub(super) fn check_rooms(field: &'static str, count: f64) -> Result<(), InvalidListing> {
    if count.is_finite() && (0.0..=f64::from(MAX_ROOMS)).contains(&count) {
        Ok(())
    } else {
        Err(InvalidListing::new(
            field,
            format!("{count} is outside 0..={MAX_ROOMS}"),
        ))
    }
}

pub(super) fn check_area(field: &'static str, sqft: u64, max: u64) -> Result<(), InvalidListing> {
    if sqft == 0 {
        return Err(InvalidListing::new(field, "zero area"));
    }
    if sqft > max {
        return Err(InvalidListing::new(
            field,
            format!("{sqft} sqft is above the {max} sqft ceiling"),
        ));
    }
    Ok(())
}

pub(super) fn check_coordinates(point: Coordinates) -> Result<(), InvalidListing> {
    let in_range = point.lat.is_finite()
        && point.lon.is_finite()
        && (-90.0..=90.0).contains(&point.lat)
        && (-180.0..=180.0).contains(&point.lon);
    // (0, 0) is in the Gulf of Guinea: a geocoder's "unknown", not a home.
    let null_island = point.lat == 0.0 && point.lon == 0.0;
    if in_range && !null_island {
        Ok(())
    } else {
        Err(InvalidListing::new(
            "coordinates",
            format!("({}, {}) is not a position on land", point.lat, point.lon),
        ))
    }
}

pub(super) fn check_url(url: &str) -> Result<(), InvalidListing> {
    check_absolute_url("source_url", url, MAX_SOURCE_URL_BYTES)
}

/// An absolute http(s) URL of at most `max_bytes`, without whitespace.
pub(super) fn check_absolute_url(
    field: &'static str,
    url: &str,
    max_bytes: usize,
) -> Result<(), InvalidListing> {
    check_text(field, url, max_bytes)?;
    let absolute = url.starts_with("https://") || url.starts_with("http://");
    if absolute && !url.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(InvalidListing::new(
            field,
            format!("{} is not an absolute http(s) URL", quote(url)),
        ))
    }
}

pub(super) fn check_floor(floor: i16) -> Result<(), InvalidListing> {
    if (MIN_FLOOR..=MAX_FLOOR).contains(&floor) {
        Ok(())
    } else {
        Err(InvalidListing::new(
            "details.floor",
            format!("{floor} is outside {MIN_FLOOR}..={MAX_FLOOR}"),
        ))
    }
}

/// A list of at most `max_items`, each checked by `check`.
pub(super) fn check_list(
    field: &'static str,
    items: &[String],
    max_items: usize,
    check: impl Fn(&str) -> Result<(), InvalidListing>,
) -> Result<(), InvalidListing> {
    if items.len() > max_items {
        return Err(InvalidListing::new(
            field,
            format!("{} items, over the limit of {max_items}", items.len()),
        ));
    }
    items.iter().try_for_each(|item| check(item))
}

pub(super) fn check_on_market_date(
    date: NaiveDate,
    observed_at: DateTime<Utc>,
) -> Result<(), InvalidListing> {
    // Coming-soon listings carry a future date, but not years ahead.
    let latest_year = observed_at.year().saturating_add(1);
    if (1900..=latest_year).contains(&date.year()) {
        Ok(())
    } else {
        Err(InvalidListing::new(
            "on_market_date",
            format!("{date} is outside 1900..={latest_year}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What SQS refuses never reaches an alert: control characters and U+FFFE, U+FFFF;
    /// the rest of Unicode passes.
    #[test]
    fn text_and_ids_refuse_what_sqs_refuses() {
        for bad in ["a\u{7}b", "a\u{FFFE}b", "a\u{FFFF}b"] {
            assert!(check_text("address.line", bad, 100).is_err(), "{bad:?}");
            assert!(check_native_id(bad).is_err(), "{bad:?}");
        }
        for good in ["Café du Parc", "\u{FFFD}", "\u{1F3E0} 12"] {
            assert!(check_text("address.line", good, 100).is_ok(), "{good:?}");
        }
        assert!(check_native_id("108715663").is_ok());
    }

    #[test]
    fn format_minor_writes_two_decimals() {
        assert_eq!(format_minor(100_000), "1000.00");
        assert_eq!(format_minor(-5), "-0.05");
        assert_eq!(format_minor(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn quote_keeps_a_short_prefix_at_a_character_boundary() {
        assert_eq!(quote("abc"), "\"abc\"");
        let long = "é".repeat(1_000);
        let quoted = quote(&long);
        assert!(quoted.len() < 2 * QUOTED_VALUE_BYTES, "{quoted}");
        assert!(quoted.ends_with("(2000 bytes)"));
        let exact = "x".repeat(QUOTED_VALUE_BYTES);
        assert_eq!(quote(&exact), format!("{exact:?}"));
    }

    #[test]
    fn bound_reason_keeps_start_and_end_under_the_limit() {
        let short = "x".repeat(MAX_REASON_BYTES);
        assert_eq!(bound_reason(short.clone()), short);
        let long = format!(
            "unknown variant `{}`, expected one of ... at line 1 column 600000",
            "ü".repeat(300_000)
        );
        let bounded = bound_reason(long);
        assert!(bounded.len() <= MAX_REASON_BYTES + 40, "{}", bounded.len());
        assert!(bounded.starts_with("unknown variant `"));
        assert!(bounded.ends_with("at line 1 column 600000"));
    }

    #[test]
    fn text_at_and_just_past_its_limit() {
        assert!(check_text("address.line", &"a".repeat(10), 10).is_ok());
        let err = check_text("address.line", &"a".repeat(11), 10).expect_err("too long");
        assert!(err.reason.starts_with("11 bytes, over the 10-byte limit"));
        // A multi-byte character that crosses the limit counts in full.
        assert!(check_text("address.line", &format!("{}é", "a".repeat(9)), 10).is_err());
        assert!(check_text("address.city", "Nash\u{0}ville", 64).is_err());
    }

    #[test]
    fn dirham_prices_at_and_just_past_their_bounds() {
        for (offer, min, max) in [
            (
                Offer::Sale,
                MIN_PLAUSIBLE_SALE_PRICE_MAD_MINOR,
                MAX_PLAUSIBLE_SALE_PRICE_MAD_MINOR,
            ),
            (
                Offer::Rent,
                MIN_PLAUSIBLE_MONTHLY_RENT_MAD_MINOR,
                MAX_PLAUSIBLE_MONTHLY_RENT_MAD_MINOR,
            ),
        ] {
            assert!(check_amount("price_minor", min, "MAD", offer).is_ok());
            assert!(check_amount("price_minor", max, "MAD", offer).is_ok());
            let below = check_amount("price_minor", min - 1, "MAD", offer).expect_err("floor");
            assert!(below.reason.contains("placeholder"), "{below}");
            assert!(check_amount("price_minor", max + 1, "MAD", offer).is_err());
        }
    }

    #[test]
    fn square_metres_convert_to_the_living_area_ceiling() {
        // The largest living area in square metres whose conversion is within the ceiling.
        assert!(sqft_from_sqm(929_030) <= MAX_LIVING_AREA_SQFT);
        assert!(sqft_from_sqm(929_031) > MAX_LIVING_AREA_SQFT);
        assert_eq!(sqft_from_sqm(150), 1_615);
        assert_eq!(sqft_from_sqm(u32::MAX), u32::MAX, "saturates");
    }

    #[test]
    fn time_window_at_and_just_past_its_edges() {
        let reference = DateTime::parse_from_rfc3339("2025-09-12T15:40:00Z")
            .expect("time")
            .to_utc();
        let skew = TimeDelta::seconds(MAX_CLOCK_SKEW_SECONDS);
        let age = TimeDelta::days(MAX_OBSERVATION_AGE_DAYS);
        let second = TimeDelta::seconds(1);
        assert_eq!(
            time_window_violation("t", reference + skew, reference),
            None
        );
        assert!(time_window_violation("t", reference + skew + second, reference).is_some());
        assert_eq!(time_window_violation("t", reference - age, reference), None);
        assert!(time_window_violation("t", reference - age - second, reference).is_some());
    }
}
