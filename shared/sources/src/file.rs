//! Exports of canonical listings, for replays and backfills: JSON lines (one [`Listing`]
//! object a line, exactly the JSON that `realty normalize` prints) or CSV (one row a
//! listing, columns [`CSV_COLUMNS`]).
//!
//! The format is told by the first non-blank character: `{` is JSON lines, anything else
//! CSV (a whole JSON document, such as a saved API page, is refused with a hint). A bad row is a [`Reject`] with its 1-based line number; a file whose first record or
//! header is not a listing export at all is [`SourceError::NotAnExport`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;

use chardetng::EncodingDetector;
use encoding_rs::{Encoding, UTF_8};

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    Page, Paging, RecordPosition, Reject, SourceError, SourceKind, describe_document, json,
};
use realty_model::listing::{
    Address, Coordinates, CountryCode, Listing, ListingDetails, ListingId, MarketKey,
};

/// The CSV columns, in the order [`write_csv`] writes them. `market` is not a column: it is
/// derived from `city`, `state`, `postal_code` and `country`. The portal details that are
/// lists (`equipment`, `images`) have no column: JSON lines carry them.
pub const CSV_COLUMNS: [&str; 27] = [
    "id",
    "source",
    "status",
    "offer",
    "price_minor",
    "currency",
    "previous_price_minor",
    "property_type",
    "beds",
    "baths",
    "living_area_sqft",
    "lot_size_sqft",
    "address_line",
    "city",
    "state",
    "postal_code",
    "latitude",
    "longitude",
    "on_market_date",
    "rent_estimate_minor",
    "source_url",
    "observed_at",
    "country",
    "neighbourhood",
    "living_area_sqm",
    "floor",
    "seller_type",
];

/// Columns a CSV export must have; the others may be left out (and cells left empty).
/// `source` defaults to the id's prefix, `property_type` to `other`.
pub const REQUIRED_CSV_COLUMNS: [&str; 8] = [
    "id",
    "status",
    "offer",
    "price_minor",
    "currency",
    "city",
    "state",
    "observed_at",
];

/// Reads an export (CSV or JSON lines).
pub fn parse_export(bytes: &[u8]) -> Result<Page, SourceError> {
    let rows = parse_export_rows(bytes)?;
    Ok(Page {
        source: SourceKind::File,
        listings: rows
            .listings
            .into_iter()
            .map(|(_, listing)| listing)
            .collect(),
        rejects: rows.rejects,
        paging: Paging::WholeFile,
    })
}

/// An export's listings, each with its 1-based line number, and its rejects.
#[derive(Debug, Clone, Default)]
pub struct ExportRows {
    pub listings: Vec<(usize, Listing)>,
    pub rejects: Vec<Reject>,
    /// The encoding the file was read in (`UTF-8`, `windows-1252`...: [`export_text`]).
    pub encoding: &'static str,
}

/// Longest JSON line read: an encoded listing at every field's limit is under 16 KiB. A line
/// past it is refused unparsed: a 32 MiB line of tiny objects parses into gigabytes.
pub const MAX_JSON_LINE_BYTES: usize = 64 * 1024;
/// Largest file read whole as one JSON document (a saved API page, to say what it is): an API
/// page is a few MB at most; past it the file is read as JSON lines, each bounded.
pub const MAX_JSON_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// An export as UTF-8 text, and the encoding it was read in. Spreadsheets write exports in
/// UTF-8 (with a byte order mark or without), in UTF-16 with a byte order mark ("Unicode
/// text"), or in the system's legacy code page: Windows-1252 in Western Europe and the
/// Americas (a superset of Latin-1's letters). So: a byte order mark names the encoding; a
/// file that is UTF-8, or holds any UTF-8 sequence beyond ASCII (evidence it was written in
/// UTF-8: its bytes that are not are damage, rejected row by row), is read as UTF-8; only a
/// file whose every byte beyond ASCII is not UTF-8 is read in the legacy encoding its bytes
/// tell (chardetng, the detector of Firefox; Windows-1252 for Latin-1 and Windows-1252
/// exports). Before, every row with an accent of such a file was rejected as unreadable.
pub fn export_text(bytes: &[u8]) -> (Cow<'_, [u8]>, &'static Encoding) {
    if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        let body = &bytes[bom..];
        if encoding == UTF_8 {
            return (Cow::Borrowed(body), UTF_8);
        }
        let (text, _) = encoding.decode_without_bom_handling(body);
        return (Cow::Owned(text.into_owned().into_bytes()), encoding);
    }
    let all_utf8 = bytes.utf8_chunks().all(|chunk| chunk.invalid().is_empty());
    let some_utf8_beyond_ascii = || bytes.utf8_chunks().any(|chunk| !chunk.valid().is_ascii());
    if all_utf8 || some_utf8_beyond_ascii() {
        return (Cow::Borrowed(bytes), UTF_8);
    }
    let mut detector = EncodingDetector::new();
    detector.feed(bytes, true);
    let encoding = detector.guess(None, false);
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    (Cow::Owned(text.into_owned().into_bytes()), encoding)
}

/// Reads an export (CSV or JSON lines) in its encoding ([`export_text`]), keeping where each
/// listing is in the file.
pub fn parse_export_rows(bytes: &[u8]) -> Result<ExportRows, SourceError> {
    let (text, encoding) = export_text(bytes);
    let bytes: &[u8] = &text;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let (listings, rejects) = match first {
        None => {
            return Err(SourceError::NotAnExport {
                detail: "the file is empty".to_owned(),
            });
        }
        Some(b'{' | b'[') => {
            // A saved API page is one JSON document (often pretty-printed), not JSON lines;
            // a one-line export also parses whole, as a listing.
            if bytes.len() <= MAX_JSON_DOCUMENT_BYTES
                && let Ok(document) = serde_json::from_slice::<Value>(bytes)
                && !is_listing_object(&document)
            {
                return Err(SourceError::NotAnExport {
                    detail: format!(
                        "a single JSON document, not JSON lines (one listing object a line): {}",
                        describe_document(SourceKind::File, &document)
                    ),
                });
            }
            parse_json_lines(bytes)?
        }
        Some(_) => parse_csv(bytes)?,
    };
    Ok(ExportRows {
        listings,
        rejects,
        encoding: encoding.name(),
    })
}

type Records = (Vec<(usize, Listing)>, Vec<Reject>);

fn parse_json_lines(bytes: &[u8]) -> Result<Records, SourceError> {
    let mut listings = Vec::new();
    let mut rejects = Vec::new();
    let mut seen_first = false;
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_number = index + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if line.len() > MAX_JSON_LINE_BYTES {
            let why = format!(
                "a line of {} bytes, longer than any listing ({MAX_JSON_LINE_BYTES})",
                line.len()
            );
            if !seen_first {
                return Err(SourceError::NotAnExport {
                    detail: format!("{why}: an export has one listing object a line"),
                });
            }
            rejects.push(Reject {
                source_id: None,
                position: RecordPosition::Line(line_number),
                reason: why,
            });
            continue;
        }
        let parsed: Result<Value, _> = serde_json::from_slice(line);
        if !seen_first {
            seen_first = true;
            // The first record decides whether this is an export at all: a saved API page
            // also starts with `{`.
            check_first_json_record(&parsed)?;
        }
        let value = match parsed {
            Ok(value) => value,
            Err(e) => {
                rejects.push(Reject {
                    source_id: None,
                    position: RecordPosition::Line(line_number),
                    reason: format!("not JSON: {e}"),
                });
                continue;
            }
        };
        let source_id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        let listing = serde_path_to_error::deserialize::<_, Listing>(&value)
            .map_err(|e| format!("not a listing: {e}"))
            .and_then(|mut listing| {
                // As every source: an implausible detail costs the detail (the living
                // area's floor included), not the row.
                listing.clear_implausible_optionals();
                listing.validate().map_err(|e| e.to_string())?;
                in_its_market_s_currency(&listing)?;
                Ok(listing)
            });
        match listing {
            Ok(listing) => listings.push((line_number, listing)),
            Err(reason) => rejects.push(Reject {
                source_id,
                position: RecordPosition::Line(line_number),
                reason,
            }),
        }
    }
    Ok((listings, rejects))
}

/// An object with the two keys every listing has.
fn is_listing_object(value: &Value) -> bool {
    value.get("id").is_some() && value.get("price_minor").is_some()
}

fn check_first_json_record(parsed: &Result<Value, serde_json::Error>) -> Result<(), SourceError> {
    match parsed {
        Ok(value) if !is_listing_object(value) => Err(SourceError::NotAnExport {
            detail: format!(
                "the first line is not a listing (no \"id\" and \"price_minor\"); found {}",
                describe_document(SourceKind::File, value)
            ),
        }),
        Ok(_) => Ok(()),
        Err(e) => Err(SourceError::NotAnExport {
            detail: format!(
                "the first line is not a JSON object ({e}); an export has one listing object a line"
            ),
        }),
    }
}

fn parse_csv(bytes: &[u8]) -> Result<Records, SourceError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| SourceError::NotAnExport {
            detail: format!("no readable CSV header: {e}"),
        })?
        .clone();
    let columns = column_indexes(&header)?;
    let missing: Vec<&str> = REQUIRED_CSV_COLUMNS
        .iter()
        .copied()
        .filter(|name| !columns.contains_key(name))
        .collect();
    if !missing.is_empty() {
        let hint = super::portal::source_hint(bytes);
        return Err(SourceError::NotAnExport {
            detail: format!(
                "the CSV header lacks the column(s) {}; found [{}]{hint}",
                missing.join(", "),
                json::truncate(&header.iter().collect::<Vec<_>>().join(", "), 200)
            ),
        });
    }

    let mut listings = Vec::new();
    let mut rejects = Vec::new();
    for (index, record) in reader.records().enumerate() {
        // Header is line 1; without position information count records.
        let fallback_line = index + 2;
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e
                    .position()
                    .and_then(|p| usize::try_from(p.line()).ok())
                    .unwrap_or(fallback_line);
                rejects.push(Reject {
                    source_id: None,
                    position: RecordPosition::Line(line),
                    reason: format!("unreadable CSV row: {e}"),
                });
                continue;
            }
        };
        let line = record
            .position()
            .and_then(|p| usize::try_from(p.line()).ok())
            .unwrap_or(fallback_line);
        let row = CsvRow {
            columns: &columns,
            record: &record,
        };
        match row.to_listing() {
            Ok(listing) => listings.push((line, listing)),
            Err(reason) => rejects.push(Reject {
                source_id: row.cell("id").map(str::to_owned),
                position: RecordPosition::Line(line),
                reason,
            }),
        }
    }
    Ok((listings, rejects))
}

/// Each column's index by its name. A column read twice in the header is refused: which of
/// the two holds the data cannot be told (before, the last one was read, silently).
fn column_indexes(header: &csv::StringRecord) -> Result<HashMap<&str, usize>, SourceError> {
    let mut columns: HashMap<&str, usize> = HashMap::with_capacity(header.len());
    for (index, name) in header.iter().enumerate() {
        if let Some(first) = columns.insert(name, index)
            && CSV_COLUMNS.contains(&name)
        {
            return Err(SourceError::NotAnExport {
                detail: format!(
                    "the CSV header names the column {name} twice (columns {} and {}): keep one",
                    first + 1,
                    index + 1
                ),
            });
        }
    }
    Ok(columns)
}

struct CsvRow<'a> {
    columns: &'a HashMap<&'a str, usize>,
    record: &'a csv::StringRecord,
}

impl CsvRow<'_> {
    /// The non-empty cell of `column`, if the column exists.
    fn cell(&self, column: &str) -> Option<&str> {
        let index = *self.columns.get(column)?;
        self.record.get(index).filter(|cell| !cell.is_empty())
    }

    fn required(&self, column: &str) -> Result<&str, String> {
        self.cell(column).ok_or_else(|| format!("{column}: empty"))
    }

    /// A cell parsed with `FromStr`.
    fn parsed<T: std::str::FromStr>(&self, column: &str) -> Result<Option<T>, String> {
        self.cell(column)
            .map(|cell| {
                cell.parse::<T>()
                    .map_err(|_| format!("{column}: cannot read {:?}", json::truncate(cell, 40)))
            })
            .transpose()
    }

    /// A cell holding one of the JSON format's enum names (`active`, `single_family`).
    fn named<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, String> {
        self.cell(column)
            .map(|cell| {
                serde_json::from_value(Value::String(cell.to_owned()))
                    .map_err(|e| format!("{column}: {e}"))
            })
            .transpose()
    }

    fn to_listing(&self) -> Result<Listing, String> {
        let id = ListingId::parse(self.required("id")?).map_err(|e| e.to_string())?;
        let source = match self.named("source")? {
            Some(source) => source,
            None => id
                .source()
                .ok_or_else(|| format!("id {id} has no known source prefix"))?,
        };
        let country = match self.cell("country") {
            Some(code) => CountryCode::parse(code).map_err(|e| e.to_string())?,
            None => CountryCode::US,
        };
        // A US market needs its state; elsewhere (the portals name no region) it may be empty.
        let state = if country.is_us() {
            self.required("state")?
        } else {
            self.cell("state").unwrap_or_default()
        };
        let address = Address {
            line: self.cell("address_line").map(str::to_owned),
            city: self.required("city")?.to_owned(),
            state: state.to_owned(),
            postal_code: self.cell("postal_code").map(str::to_owned),
            country,
            neighbourhood: self.cell("neighbourhood").map(str::to_owned),
        };
        let market = MarketKey::for_address(&address).map_err(|e| e.to_string())?;
        let coordinates = match (self.parsed("latitude")?, self.parsed("longitude")?) {
            (Some(lat), Some(lon)) => Some(Coordinates::rounded(lat, lon)),
            (None, None) => None,
            _ => return Err("latitude and longitude: one without the other".to_owned()),
        };
        let observed_at: DateTime<Utc> = self
            .required("observed_at")?
            .parse::<DateTime<chrono::FixedOffset>>()
            .map_err(|e| format!("observed_at: {e}"))?
            .with_timezone(&Utc);
        let mut listing = Listing {
            id,
            source,
            status: self.named("status")?.ok_or("status: empty")?,
            offer: self.named("offer")?.ok_or("offer: empty")?,
            price_minor: self.parsed("price_minor")?.ok_or("price_minor: empty")?,
            currency: self.required("currency")?.to_owned(),
            previous_price_minor: self.parsed("previous_price_minor")?,
            property_type: self
                .named("property_type")?
                .unwrap_or(realty_model::listing::PropertyType::Other),
            beds: self.parsed("beds")?,
            baths: self.parsed("baths")?,
            living_area_sqft: self.parsed("living_area_sqft")?,
            lot_size_sqft: self.parsed("lot_size_sqft")?,
            address,
            market,
            coordinates,
            on_market_date: self.parsed::<NaiveDate>("on_market_date")?,
            rent_estimate_minor: self.parsed("rent_estimate_minor")?,
            source_url: self.cell("source_url").map(str::to_owned),
            observed_at,
            details: ListingDetails {
                living_area_sqm: self.parsed("living_area_sqm")?,
                floor: self.parsed("floor")?,
                seller_type: self.named("seller_type")?,
                ..ListingDetails::default()
            },
        };
        listing.clear_implausible_optionals();
        listing.validate().map_err(|e| e.to_string())?;
        in_its_market_s_currency(&listing)?;
        Ok(listing)
    }
}

/// A US listing of a file is priced in dollars: a market's figures are sums and medians of
/// one currency, and the polled US sources are all in dollars (`Listing::validate` leaves
/// the US unchecked only so that events of schema version 1 keep reading).
fn in_its_market_s_currency(listing: &Listing) -> Result<(), String> {
    if listing.address.country.is_us() && listing.currency != "USD" {
        return Err(format!(
            "currency {}: a US listing is priced in USD, and amounts of two currencies are \
             never added together",
            realty_model::listing::quote(&listing.currency)
        ));
    }
    Ok(())
}

/// Writes `listings` as JSON lines, the export format [`parse_export`] reads back.
pub fn write_json_lines<W: Write>(listings: &[Listing], mut out: W) -> std::io::Result<()> {
    for listing in listings {
        serde_json::to_writer(&mut out, listing)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes `listings` as CSV with the [`CSV_COLUMNS`] header.
pub fn write_csv<W: Write>(listings: &[Listing], out: W) -> Result<(), csv::Error> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(CSV_COLUMNS)?;
    for listing in listings {
        let optional = |value: Option<String>| value.unwrap_or_default();
        let row: [String; 27] = [
            listing.id.to_string(),
            serde_name(&listing.source),
            serde_name(&listing.status),
            serde_name(&listing.offer),
            listing.price_minor.to_string(),
            listing.currency.clone(),
            optional(listing.previous_price_minor.map(|p| p.to_string())),
            serde_name(&listing.property_type),
            optional(listing.beds.map(|b| b.to_string())),
            optional(listing.baths.map(|b| b.to_string())),
            optional(listing.living_area_sqft.map(|a| a.to_string())),
            optional(listing.lot_size_sqft.map(|a| a.to_string())),
            optional(listing.address.line.clone()),
            listing.address.city.clone(),
            listing.address.state.clone(),
            optional(listing.address.postal_code.clone()),
            optional(listing.coordinates.map(|c| c.lat.to_string())),
            optional(listing.coordinates.map(|c| c.lon.to_string())),
            optional(listing.on_market_date.map(|d| d.to_string())),
            optional(listing.rent_estimate_minor.map(|r| r.to_string())),
            optional(listing.source_url.clone()),
            listing
                .observed_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            listing.address.country.to_string(),
            optional(listing.address.neighbourhood.clone()),
            optional(listing.details.living_area_sqm.map(|a| a.to_string())),
            optional(listing.details.floor.map(|f| f.to_string())),
            optional(listing.details.seller_type.map(|t| serde_name(&t))),
        ];
        writer.write_record(&row)?;
    }
    writer.flush()?;
    Ok(())
}

/// The serde name of a unit enum value (`single_family`), as the JSON format writes it.
fn serde_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        _ => String::new(),
    }
}
