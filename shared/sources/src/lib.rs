//! Listing sources: one page of a listing API in, canonical [`Listing`]s out.
//!
//! Each source is a pure function from the bytes (or parsed JSON) of one page to a [`Page`]:
//! the listings it could normalise, a [`Reject`] with a reason for each record it could not,
//! and what the API said about paging. A record that cannot be normalised never stops the
//! rest of the page; a document that is not that API's shape at all is a [`SourceError`].
//! The request-building pieces (query parameters, next page) are plain functions beside
//! each source; no HTTP happens here. Field mappings and decisions: `docs/sources.md`.

// Test code is exempt from the 80-line bar (clippy.toml); the library is not.
#![cfg_attr(test, allow(clippy::too_many_lines))]

use std::fmt;
use std::io::Read as _;

use chrono::{DateTime, Utc};

use realty_model::listing::Listing;

use realty_model::markets::SourceKind;

pub mod file;
pub(crate) mod json;
pub mod portal;
pub mod realtor;
pub mod reso;
pub mod zillow;

/// Where a rejected record is in its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordPosition {
    /// 0-based index in the page's array of records (API pages).
    Index(usize),
    /// 1-based line number (exports).
    Line(usize),
}

impl fmt::Display for RecordPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Index(index) => write!(f, "record {index}"),
            Self::Line(line) => write!(f, "line {line}"),
        }
    }
}

/// A record of a page that could not be normalised, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The namespaced id (`zillow:31682583`) when the record has a usable one.
    pub source_id: Option<String>,
    pub position: RecordPosition,
    pub reason: String,
}

/// Bytes of a reject's id printed; its reason is cut as every reason is
/// ([`realty_model::listing::bound_reason`]).
const MAX_PRINTED_ID_BYTES: usize = 200;

/// `zillow:31682583 (record 0): price_minor: ...`, or without an id `line 7: city: empty`.
impl fmt::Display for Reject {
    /// Bounded and free of control characters (escaped), whatever the record held: a reject
    /// is printed to a terminal and logged, and its id and reason come from a third party's
    /// file (a reason may quote a whole value).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bounded = realty_model::listing::bound_reason(self.reason.clone());
        let reason = printable(&bounded);
        match &self.source_id {
            Some(id) => {
                let id = &id[..id.floor_char_boundary(MAX_PRINTED_ID_BYTES)];
                write!(f, "{} ({}): {reason}", printable(id), self.position)
            }
            None => write!(f, "{}: {reason}", self.position),
        }
    }
}

/// `text` with its control characters escaped (`\u{1b}`), so that printing it cannot move a
/// terminal's cursor or forge log lines.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// What a page said about the pages after it.
#[derive(Debug, Clone, PartialEq)]
pub enum Paging {
    Zillow(zillow::ZillowPaging),
    Reso(reso::ResoPaging),
    Realtor(realtor::RealtorPaging),
    /// An export holds all its records; there is no next page.
    WholeFile,
    /// A property portal's search page.
    Portal(portal::PortalPaging),
}

/// One page, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub source: SourceKind,
    pub listings: Vec<Listing>,
    pub rejects: Vec<Reject>,
    pub paging: Paging,
}

impl Page {
    /// Records read: listings plus rejects.
    pub fn record_count(&self) -> usize {
        self.listings.len() + self.rejects.len()
    }
}

/// A document the chosen source cannot read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("not a {}: not JSON ({detail})", api.document_name())]
    NotJson { api: SourceKind, detail: String },
    #[error("not a {}: expected {expected}; found {found}", api.document_name())]
    WrongShape {
        api: SourceKind,
        expected: &'static str,
        found: String,
    },
    #[error("not a {}: {detail}", SourceKind::File.document_name())]
    NotAnExport { detail: String },
    #[error("not a {}: gzip data that does not decompress ({detail})", api.document_name())]
    Gzip { api: SourceKind, detail: String },
    #[error("{} of {bytes} bytes, over the {limit}-byte limit", api.document_name())]
    TooLarge {
        api: SourceKind,
        bytes: usize,
        limit: usize,
    },
    #[error(
        "{} nested {depth} elements deep, over the {limit} this reader parses",
        api.document_name()
    )]
    TooNested {
        api: SourceKind,
        depth: usize,
        limit: usize,
    },
    /// A portal page that yields no listing: an empty search, or (more often) a layout this
    /// reader no longer knows. Never read as an empty market.
    #[error(
        "no listings in this {}: {detail}. If the page shows listings, the site's layout \
         changed: see docs/sources.md, \"When a portal changes\"",
        api.document_name()
    )]
    NoListings { api: SourceKind, detail: String },
}

/// A request the builders refuse to make (a parameter outside what the API accepts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {api} request: {reason}")]
pub struct RequestError {
    pub api: SourceKind,
    pub reason: String,
}

/// Largest document accepted after gzip decompression: a page is a few MB at most, and the
/// cap keeps a gzip bomb from exhausting a Lambda's memory.
pub const MAX_DOCUMENT_BYTES: u64 = 512 * 1024 * 1024;

/// Normalises one document (a saved API page or an export) with the parser of `source`.
/// gzip input is decompressed first (RESO feeds and the data lake send gzip).
/// `observed_at` stamps the listings of API pages (exports carry their own).
///
/// `Ok` means the document has `source`'s shape; its bad records are in
/// [`Page::rejects`]. This is what `realty normalize` runs.
pub fn normalize_file(
    source: SourceKind,
    bytes: &[u8],
    observed_at: DateTime<Utc>,
) -> Result<Page, SourceError> {
    let decompressed;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        decompressed = gunzip(source, bytes)?;
        decompressed.as_slice()
    } else {
        bytes
    };
    match source {
        SourceKind::Zillow => zillow::parse_page(bytes, observed_at),
        SourceKind::Reso => reso::parse_page(bytes, observed_at),
        SourceKind::Realtor => realtor::parse_page(bytes, observed_at),
        SourceKind::File => file::parse_export(bytes),
        SourceKind::Avito => portal::avito::parse_page(bytes, observed_at),
        SourceKind::Mubawab => portal::mubawab::parse_page(bytes, observed_at),
    }
}

fn gunzip(source: SourceKind, bytes: &[u8]) -> Result<Vec<u8>, SourceError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| SourceError::Gzip {
            api: source,
            detail: e.to_string(),
        })?;
    if out.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(SourceError::Gzip {
            api: source,
            detail: format!("more than {MAX_DOCUMENT_BYTES} bytes once decompressed"),
        });
    }
    Ok(out)
}

/// Parses a JSON document for `api`, skipping a UTF-8 byte-order mark.
fn parse_json(api: SourceKind, bytes: &[u8]) -> Result<serde_json::Value, SourceError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice(bytes).map_err(|e| {
        let detail = format!("{e}{}", portal::source_hint(bytes));
        SourceError::NotJson { api, detail }
    })
}

/// Guesses which API a JSON document came from, to make shape errors say what the
/// document looks like instead.
fn looks_like(value: &serde_json::Value) -> Option<SourceKind> {
    let object = match value {
        serde_json::Value::Object(object) => object,
        serde_json::Value::Array(items) => {
            return items
                .iter()
                .any(|item| item.get("zpid").is_some())
                .then_some(SourceKind::Zillow);
        }
        _ => return None,
    };
    if object.contains_key("props") || object.contains_key("zpid") {
        Some(SourceKind::Zillow)
    } else if object.contains_key("@odata.context") || object.contains_key("value") {
        Some(SourceKind::Reso)
    } else if value.pointer("/data/home_search").is_some() {
        Some(SourceKind::Realtor)
    } else {
        None
    }
}

/// Describes a document that is not `api`'s shape: its outline, any message the API put
/// in it (error responses), and which API it looks like.
fn describe_document(api: SourceKind, value: &serde_json::Value) -> String {
    let mut found = json::describe(value);
    for pointer in ["/message", "/error/message", "/errors/0/message"] {
        if let Some(message) = value.pointer(pointer).and_then(|m| m.as_str()) {
            found.push_str(&format!(
                " (the API says: {})",
                json::truncate(message, 200)
            ));
            break;
        }
    }
    if let Some(other) = looks_like(value).filter(|&other| other != api) {
        found.push_str(&format!(
            "; it looks like a {}: try --source {other}",
            other.document_name()
        ));
    }
    found
}

/// `href` (absolute, or a path) as an absolute URL on `origin` (`https://www.avito.ma`,
/// `https://www.zillow.com`);
/// `None` for a link anywhere else (another host, another scheme, `//host/...`), so nothing
/// the page links to sends a crawler off the portal, nor a subscriber of an alert off the
/// source's site.
pub(crate) fn absolute_url(href: &str, origin: &str) -> Option<String> {
    if href.starts_with('/') && !href.starts_with("//") {
        Some(format!("{origin}{href}"))
    } else if href
        .strip_prefix(origin)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
    {
        Some(href.to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reject printed from a hostile file: an id with a terminal escape and a reason
    /// quoting a huge value come out bounded and escaped.
    #[test]
    fn a_printed_reject_is_bounded_and_escaped() {
        let reject = Reject {
            source_id: Some(format!("file:\u{1b}[2J{}", "x".repeat(10_000))),
            position: RecordPosition::Line(7),
            reason: format!("invalid type: string \"{}\u{7}\"", "9".repeat(1_000_000)),
        };
        let printed = reject.to_string();
        assert!(printed.len() < 1_000, "{} bytes", printed.len());
        assert!(!printed.chars().any(char::is_control), "{printed}");
        assert!(printed.starts_with("file:\\u{1b}[2J"), "{printed}");
        assert!(printed.contains("(line 7): invalid type"), "{printed}");
        // An id at the bound is printed whole, one byte past it cut.
        let at_bound = "a".repeat(MAX_PRINTED_ID_BYTES);
        for (id, printed_id) in [
            (at_bound.clone(), at_bound.clone()),
            (format!("{at_bound}b"), at_bound.clone()),
        ] {
            let reject = Reject {
                source_id: Some(id),
                position: RecordPosition::Line(1),
                reason: "r".into(),
            };
            assert_eq!(reject.to_string(), format!("{printed_id} (line 1): r"));
        }
        let plain = Reject {
            source_id: None,
            position: RecordPosition::Line(3),
            reason: "city: empty".into(),
        };
        assert_eq!(plain.to_string(), "line 3: city: empty");
    }

    #[test]
    fn source_kind_names_round_trip() {
        for kind in SourceKind::ALL {
            assert_eq!(kind.as_str().parse::<SourceKind>(), Ok(kind));
        }
        assert_eq!("ZILLOW".parse::<SourceKind>(), Ok(SourceKind::Zillow));
        assert!("redfin".parse::<SourceKind>().is_err());
    }

    #[test]
    fn gzip_input_is_decompressed() {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder
            .write_all(br#"{"props": [], "totalResultCount": 0}"#)
            .expect("write to memory");
        let gz = encoder.finish().expect("finish gzip in memory");
        let page = normalize_file(SourceKind::Zillow, &gz, Utc::now()).expect("a zillow page");
        assert_eq!(page.record_count(), 0);
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let err = normalize_file(SourceKind::Reso, &[0x1f, 0x8b, 0x08, 0x00], Utc::now())
            .expect_err("truncated gzip");
        assert!(matches!(err, SourceError::Gzip { .. }), "{err}");
    }

    /// The first record of a real page of `source`, with `edit` applied, normalised: its
    /// listing, or its reject's reason.
    fn first_record(
        source: SourceKind,
        page: &[u8],
        records: &str,
        edit: impl Fn(&mut serde_json::Value),
    ) -> Result<realty_model::listing::Listing, String> {
        let mut document: serde_json::Value = serde_json::from_slice(page).expect("fixture");
        let list = document
            .pointer_mut(records)
            .and_then(serde_json::Value::as_array_mut)
            .expect("records");
        list.truncate(1);
        edit(&mut list[0]);
        let bytes = serde_json::to_vec(&document).expect("json");
        let mut page = normalize_file(source, &bytes, Utc::now()).expect("page");
        match (page.listings.pop(), page.rejects.pop()) {
            (Some(listing), None) => Ok(listing),
            (None, Some(reject)) => Err(reject.reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_status_no_source_sends_is_quoted_within_a_bound_in_its_reject() {
        let sources: [(SourceKind, &[u8], &str, &str); 3] = [
            (
                SourceKind::Zillow,
                include_bytes!(
                    "../tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
                ),
                "/props",
                "listingStatus",
            ),
            (
                SourceKind::Realtor,
                include_bytes!("../tests/fixtures/realtor_realty-in-us_properties_v3_list.json"),
                "/data/home_search/results",
                "status",
            ),
            (
                SourceKind::Reso,
                include_bytes!("../tests/fixtures/reso_property_page1.json"),
                "/value",
                "StandardStatus",
            ),
        ];
        for (source, page, records, field) in sources {
            let reason_for = |status: String| {
                first_record(source, page, records, |r| r[field] = status.clone().into())
                    .expect_err("an unknown status is rejected")
            };
            let at_bound = "x".repeat(realty_model::listing::QUOTED_VALUE_BYTES);
            assert!(reason_for(at_bound.clone()).contains(&format!("{at_bound:?}")));
            let past = "x".repeat(realty_model::listing::QUOTED_VALUE_BYTES + 1);
            let reason = reason_for(past.clone());
            assert!(!reason.contains(&past), "{source:?}: {reason}");
            let reason = reason_for("x".repeat(100_000));
            assert!(reason.len() < 200, "{source:?}: {} bytes", reason.len());
        }
    }

    #[test]
    fn a_zillow_listing_priced_in_another_currency_is_rejected() {
        let page = include_bytes!(
            "../tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
        );
        let with_currency = |currency: Option<&str>| {
            first_record(SourceKind::Zillow, page, "/props", |r| match currency {
                Some(c) => r["currency"] = c.into(),
                None => drop(r.as_object_mut().map(|o| o.remove("currency"))),
            })
        };
        assert_eq!(
            with_currency(Some("EUR")).expect_err("EUR"),
            "currency \"EUR\" is not USD"
        );
        assert_eq!(with_currency(Some("usd")).expect("usd").currency, "USD");
        assert_eq!(with_currency(None).expect("none").currency, "USD");
    }

    #[test]
    fn wrong_api_is_named_in_the_error() {
        let realtor = br#"{"data": {"home_search": {"count": 0, "total": 0, "results": []}}}"#;
        let err = normalize_file(SourceKind::Zillow, realtor, Utc::now()).expect_err("shape");
        let message = err.to_string();
        assert!(message.contains("--source realtor"), "{message}");
    }
}
