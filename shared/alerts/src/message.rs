//! An alert as SNS carries it: a JSON body for programs, a short Subject for people (email
//! subscribers see it as the mail subject), and message attributes for subscription filter
//! policies. The format is documented in docs/alerts.md.

use realty_model::listing::address_line;
use std::ops::Range;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rules::{Alert, AlertKind};
use realty_model::listing::CENTS_PER_DOLLAR;
use realty_model::scope::property_type_name;

/// SNS subjects: at most 100 characters, ASCII, no line breaks or control characters.
pub const MAX_SUBJECT_CHARS: usize = 100;
/// PublishBatch: at most 10 entries...
pub const MAX_BATCH_ENTRIES: usize = 10;
/// ...and 256 KiB across them.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// One SNS message: body, subject and attributes (names, types and values) together, as
/// [`AlertMessage::size_bytes`] counts them. A larger alert goes to the error sink.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The alert id goes into every message and the error sink, and is hashed into the alert
/// feed's sort key: bounded like every field, so a listing id of any length makes no alert
/// unbounded.
pub const MAX_ALERT_ID_BYTES: usize = 1_024;
/// Each free-text field of an error-sink entry (ids, reason) is cut to this many bytes.
pub const MAX_SINK_FIELD_BYTES: usize = 512;

/// The alert's JSON body (the SNS `Message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertBody {
    /// `price_drop`, `price_cut`, `undervalued`, `back_on_market`, `new_listing` or
    /// `anomaly`.
    pub alert_type: AlertKind,
    /// The alert is about the listing's first sighting (a new listing: its old price is its
    /// price).
    #[serde(default)]
    pub new_listing: bool,
    /// Stable per alert (the idempotency key): subscribers can drop the rare duplicate.
    pub alert_id: String,
    pub listing_id: String,
    /// One line: `740 1st Ave N, Nashville, TN 37201`.
    pub address: String,
    /// The city-state market key (`nashville-tn`).
    pub market: String,
    pub zip: Option<String>,
    pub property_type: String,
    pub currency: String,
    /// Prices in major units of `currency`.
    pub old_price: f64,
    pub new_price: f64,
    /// How much the price fell (0 when it did not), and in percent of the old price, rounded
    /// down to two decimals.
    pub drop_amount: f64,
    pub drop_pct: f64,
    /// The new price per sqft and the market median it was compared with (in `currency`).
    pub price_per_sqft: Option<f64>,
    pub market_median_price_per_sqft: Option<f64>,
    /// `price_per_sqft / market_median_price_per_sqft`.
    pub price_per_sqft_to_median: Option<f64>,
    /// The market-table scope of the median: `city#nashville-tn#condo`, or
    /// `city#nashville-tn#all` where the property type has no median yet.
    pub median_scope: Option<String>,
    pub living_area_sqft: Option<u32>,
    pub beds: Option<u16>,
    pub baths: Option<f32>,
    /// The listing's page at its source, where the source gives one.
    pub url: Option<String>,
    /// When the pipeline saw the new price.
    pub observed_at: DateTime<Utc>,
}

/// The message attributes subscribers filter on.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertAttributes {
    /// The listing's id (`zillow:123`): what a watchlist's filter policy names. Ids are
    /// bounded ([`realty_model::listing::ListingId`]), far under SNS's attribute limits.
    pub listing_id: String,
    pub market: String,
    pub property_type: String,
    pub alert_type: AlertKind,
    /// Percent, two decimals, rounded down (a Number attribute).
    pub drop_pct: f64,
    /// The new price in whole major units (a Number attribute, for price ranges).
    pub price: i64,
    /// Bedrooms, where the source states them (a Number attribute; absent otherwise, so a
    /// filter on it never matches a listing of unknown size).
    pub bedrooms: Option<u16>,
}

impl AlertAttributes {
    /// Name, SNS data type and value of each attribute.
    pub fn entries(&self) -> Vec<(&'static str, &'static str, String)> {
        let mut entries = vec![
            ("listing_id", "String", self.listing_id.clone()),
            ("market", "String", self.market.clone()),
            ("property_type", "String", self.property_type.clone()),
            ("alert_type", "String", self.alert_type.as_str().to_owned()),
            ("drop_pct", "Number", format!("{:.2}", self.drop_pct)),
            ("price", "Number", self.price.to_string()),
        ];
        if let Some(beds) = self.bedrooms {
            entries.push(("bedrooms", "Number", beds.to_string()));
        }
        entries
    }
}

/// One message ready for SNS.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertMessage {
    /// The idempotency key of the alert.
    pub alert_id: String,
    pub subject: String,
    pub body: String,
    pub attributes: AlertAttributes,
    /// When the pipeline saw the change (the body's `observed_at`; not sent as an attribute):
    /// the alert's place and lifetime in the feed ([`super::feed::AlertFeedItem::of`]).
    pub observed_at: DateTime<Utc>,
}

impl AlertMessage {
    /// What the message counts against PublishBatch's 256 KiB: body, subject and
    /// attributes (names, types and values), as SNS counts a message's size.
    pub fn size_bytes(&self) -> usize {
        let attributes: usize = self
            .attributes
            .entries()
            .iter()
            .map(|(name, data_type, value)| name.len() + data_type.len() + value.len())
            .sum();
        self.body.len() + self.subject.len() + attributes
    }
}

fn major(minor: i64) -> f64 {
    minor as f64 / CENTS_PER_DOLLAR as f64
}

fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// A percentage without trailing zeros: `20`, `18.42`, `12.5`.
fn format_pct(centi_pct: i64) -> String {
    let text = format!("{}.{:02}", centi_pct / 100, (centi_pct % 100).abs());
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Folds `text` into what SNS accepts as a subject: printable ASCII on one line (common
/// accented letters lose their accent, anything else becomes `?`), at most
/// [`MAX_SUBJECT_CHARS`] characters (cut with `...`).
pub fn sanitize_subject(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let folded = match c {
            ' '..='~' => c,
            c if c.is_whitespace() || c.is_control() => ' ',
            c => fold_accent(c).unwrap_or('?'),
        };
        // One space between words: line breaks and tabs become spaces, runs collapse.
        if folded == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(folded);
    }
    let trimmed = out.trim_end();
    if trimmed.len() <= MAX_SUBJECT_CHARS {
        return trimmed.to_owned();
    }
    // ASCII only by now: bytes are characters.
    format!("{}...", trimmed[..MAX_SUBJECT_CHARS - 3].trim_end())
}

fn fold_accent(c: char) -> Option<char> {
    const FOLDS: [(&str, char); 14] = [
        ("àáâãäåā", 'a'),
        ("ÀÁÂÃÄÅĀ", 'A'),
        ("çć", 'c'),
        ("ÇĆ", 'C'),
        ("èéêëē", 'e'),
        ("ÈÉÊËĒ", 'E'),
        ("ìíîïī", 'i'),
        ("ÌÍÎÏĪ", 'I'),
        ("ñ", 'n'),
        ("Ñ", 'N'),
        ("òóôõöøō", 'o'),
        ("ÒÓÔÕÖØŌ", 'O'),
        ("ùúûüū", 'u'),
        ("ÙÚÛÜŪ", 'U'),
    ];
    FOLDS
        .iter()
        .find(|(from, _)| from.contains(c))
        .map(|(_, to)| *to)
}

/// `part` trimmed, unless it is empty.
fn nonempty(part: Option<&str>) -> Option<&str> {
    part.map(str::trim).filter(|p| !p.is_empty())
}

/// Where the listing is, for the subject: its street line and city (and state), or its
/// type, neighbourhood and city when the street is undisclosed or not given (portals).
fn place(alert: &Alert) -> String {
    let address = &alert.listing.listing.address;
    let city = if address.state.trim().is_empty() {
        address.city.clone()
    } else {
        format!("{}, {}", address.city, address.state.trim())
    };
    match nonempty(address.line.as_deref()) {
        Some(line) => format!("{line}, {city}"),
        None => {
            let kind = property_type_name(alert.listing.listing.property_type).replace('_', " ");
            match nonempty(address.neighbourhood.as_deref()) {
                Some(quarter) => format!("{kind} in {quarter}, {city}"),
                None => format!("{kind} in {city}"),
            }
        }
    }
}

/// The human subject: `Price drop 20%: 740 1st Ave N, Nashville, TN now $340,000`,
/// `Price cut 5%: ...`, `Undervalued new listing at 70% of median $/sqft: ... for $340,000`
/// or `Back on market: ... for $340,000`.
pub fn subject(alert: &Alert) -> String {
    let currency = &alert.listing.listing.currency;
    let price = realty_model::format::money(alert.price.new_minor, currency);
    // The ratio is the same in any unit; its name follows the market's (subjects are ASCII).
    let per_area = if alert.listing.listing.address.country.is_us() {
        "$/sqft"
    } else {
        "price/sqm"
    };
    let cut = |what: &str| {
        // A fall under 0.01 % rounds down to 0: said so, not "0%".
        let pct = match alert.price.drop_centi_pct {
            0 if alert.price.drop_minor > 0 => "under 0.01".to_owned(),
            centi => format_pct(centi),
        };
        format!("{what} {pct}%: {} now {price}", place(alert))
    };
    let text = match alert.kind {
        AlertKind::PriceDrop => cut("Price drop"),
        AlertKind::PriceCut => cut("Price cut"),
        AlertKind::Undervalued => {
            let ratio = alert
                .price_per_sqft
                .zip(alert.median.as_ref())
                .map(|(p, m)| {
                    format!(
                        " at {:.0}% of median {per_area}",
                        100.0 * p / m.price_per_sqft
                    )
                })
                .unwrap_or_default();
            let new = if alert.new_listing {
                " new listing"
            } else {
                ""
            };
            format!("Undervalued{new}{ratio}: {} for {price}", place(alert))
        }
        AlertKind::BackOnMarket => format!("Back on market: {} for {price}", place(alert)),
        AlertKind::NewListing => {
            let beds = alert
                .listing
                .listing
                .beds
                .map(|b| format!(", {b} bd"))
                .unwrap_or_default();
            format!("New listing: {} for {price}{beds}", place(alert))
        }
        AlertKind::Anomaly => {
            let against = alert
                .price_per_sqft
                .zip(alert.median.as_ref())
                .map(|(p, m)| {
                    format!(
                        " at {:.0}% of median {per_area}",
                        100.0 * p / m.price_per_sqft
                    )
                })
                .unwrap_or_default();
            format!("Unusual price{against}: {} for {price}", place(alert))
        }
    };
    sanitize_subject(&text)
}

/// The body of an alert.
pub fn body(alert: &Alert) -> AlertBody {
    let item = &alert.listing;
    let listing = &item.listing;
    let median = alert.median.as_ref();
    AlertBody {
        alert_type: alert.kind,
        new_listing: alert.new_listing,
        alert_id: alert.idempotency_key(),
        listing_id: item.listing_id.clone(),
        address: address_line(&listing.address),
        market: listing.market.city_state.clone(),
        zip: listing.market.zip.clone(),
        property_type: property_type_name(listing.property_type).to_owned(),
        currency: listing.currency.clone(),
        old_price: major(alert.price.old_minor),
        new_price: major(alert.price.new_minor),
        drop_amount: major(alert.price.drop_minor),
        drop_pct: alert.price.drop_pct(),
        price_per_sqft: alert.price_per_sqft.map(|p| round_to(p, 2)),
        market_median_price_per_sqft: median.map(|m| round_to(m.price_per_sqft, 2)),
        price_per_sqft_to_median: alert
            .price_per_sqft
            .zip(median)
            .map(|(p, m)| round_to(p / m.price_per_sqft, 3)),
        median_scope: median.map(|m| m.scope_key.clone()),
        living_area_sqft: listing.living_area_sqft,
        beds: listing.beds,
        baths: listing.baths,
        url: listing.source_url.clone(),
        observed_at: item.observed_at,
    }
}

/// Why an alert has no SNS message: it can never be published as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {reason}")]
pub struct Unpublishable {
    /// `message_too_large`, `alert_id_too_long` or `unencodable`.
    pub kind: &'static str,
    /// Short: sizes and limits, never the offending text.
    pub reason: String,
    /// The message's size (0 when it was not built).
    pub bytes: usize,
}

/// The SNS message of an alert, or why it cannot have one: an alert id over
/// [`MAX_ALERT_ID_BYTES`], or a message over [`MAX_MESSAGE_BYTES`] (a listing with huge
/// fields). Never a message cut to fit: a cut alert would be a different alert.
pub fn message(alert: &Alert) -> Result<AlertMessage, Unpublishable> {
    let body = body(alert);
    if body.alert_id.len() > MAX_ALERT_ID_BYTES {
        return Err(Unpublishable {
            kind: "alert_id_too_long",
            reason: format!(
                "alert id of {} bytes, over the {MAX_ALERT_ID_BYTES}-byte limit",
                body.alert_id.len()
            ),
            bytes: 0,
        });
    }
    let encoded = serde_json::to_string(&body).map_err(|e| Unpublishable {
        kind: "unencodable",
        reason: cut_to(&e.to_string(), MAX_SINK_FIELD_BYTES),
        bytes: 0,
    })?;
    let message = AlertMessage {
        alert_id: body.alert_id.clone(),
        subject: subject(alert),
        attributes: AlertAttributes {
            listing_id: body.listing_id.clone(),
            market: body.market.clone(),
            property_type: body.property_type.clone(),
            alert_type: alert.kind,
            drop_pct: body.drop_pct,
            // Whole units: SNS compares numbers to 5 decimals, and a price range needs none.
            price: body.new_price.round() as i64,
            bedrooms: body.beds,
        },
        observed_at: body.observed_at,
        body: encoded,
    };
    let bytes = message.size_bytes();
    if bytes > MAX_MESSAGE_BYTES {
        return Err(Unpublishable {
            kind: "message_too_large",
            reason: format!(
                "SNS message of {bytes} bytes (body, subject and attributes), over SNS's \
                 {MAX_MESSAGE_BYTES}-byte limit"
            ),
            bytes,
        });
    }
    Ok(message)
}

/// `text` cut to at most `max_bytes` bytes on a character boundary, `...` marking a cut.
pub fn cut_to(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Splits messages into PublishBatch calls (10 entries, 256 KiB), keeping their order.
pub fn publish_batches(messages: &[AlertMessage]) -> Vec<Range<usize>> {
    let sizes: Vec<usize> = messages.iter().map(AlertMessage::size_bytes).collect();
    realty_model::ports::chunk_by_limits(&sizes, MAX_BATCH_ENTRIES, MAX_BATCH_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use realty_model::listing::Address;
    use realty_model::listing::CountryCode;

    fn address(line: Option<&str>, neighbourhood: Option<&str>, state: &str) -> Address {
        Address {
            line: line.map(str::to_owned),
            city: if state.is_empty() {
                "Marrakech"
            } else {
                "Nashville"
            }
            .to_owned(),
            state: state.to_owned(),
            postal_code: (!state.is_empty()).then(|| "37201".to_owned()),
            country: if state.is_empty() {
                CountryCode::MA
            } else {
                CountryCode::US
            },
            neighbourhood: neighbourhood.map(str::to_owned),
        }
    }

    #[test]
    fn addresses_read_on_one_line_in_and_outside_the_us() {
        assert_eq!(
            address_line(&address(Some("309 Church St"), None, "TN")),
            "309 Church St, Nashville, TN 37201"
        );
        assert_eq!(
            address_line(&address(None, Some("Guéliz"), "")),
            "Guéliz, Marrakech"
        );
        assert_eq!(address_line(&address(None, None, "")), "Marrakech");
    }
}
