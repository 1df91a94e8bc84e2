//! Property portals without an API (Avito.ma, Mubawab.ma): one search page (HTML, saved or
//! fetched) in, canonical listings out, beside the API sources and with the same [`Page`].
//!
//! Structured data is preferred where a page embeds it (Avito's Next.js `__NEXT_DATA__`
//! state); otherwise the listing cards are read with CSS selectors on classes and icons, not
//! on the interface's wording, so a page in French or English reads the same. What each
//! adapter reads, what is fragile and how to mend a selector: `docs/sources.md`, "Property
//! portals".
//!
//! A page that yields no listing at all is an error ([`SourceError::NoListings`]), never an
//! empty market: a changed layout parses to nothing, and nothing may be inferred from that.

use std::borrow::Cow;
use std::sync::LazyLock;

use scraper::Selector;

use super::{
    Page, Paging, RecordPosition, Reject, SourceError, SourceKind, absolute_url, describe_document,
    json,
};
use realty_model::listing::{
    Address, CountryCode, Listing, ListingId, ListingSource, MarketKey, PropertyType,
    SQFT_PER_SQUARE_METRE, sqft_from_sqm,
};

pub mod avito;
pub mod crawl;
pub mod mubawab;
mod text;

pub use text::{parse_area_sqm, parse_floor, parse_price, parse_whole_number};

/// Largest page read. Real search pages are under 1 MB (Avito about 0.8 MB, Mubawab 0.5 MB);
/// the bound keeps a hostile or runaway page from costing a function its memory.
pub const MAX_PORTAL_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// What a portal's search page says about the search and the page after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortalPaging {
    /// The number of listings the search matches, where the page states it.
    pub total_results: Option<u64>,
    /// The next page of the search as the page links it (absolute URL). Whether a crawler
    /// may fetch it is for robots.txt to say (Mubawab forbids its paginated URLs).
    pub next_page: Option<String>,
    /// Entries of the page that are not listings and were skipped (Avito's new-build
    /// promotions): neither listings nor rejects.
    pub skipped: usize,
}

/// Deepest element nesting read (as `nesting_depth` counts it). Real pages nest a few
/// dozen deep; the HTML tree builder's work per tag grows with the depth (each start tag
/// looks through the open elements), so a page of a hundred thousand nested `<div>`s would
/// take minutes to parse.
pub const MAX_PORTAL_NESTING: usize = 512;

/// The page as text: refused over [`MAX_PORTAL_PAGE_BYTES`] or [`MAX_PORTAL_NESTING`];
/// bytes that are not UTF-8 (a binary file, a page in another encoding) are replaced, and
/// then simply match nothing.
fn page_text(source: SourceKind, bytes: &[u8]) -> Result<Cow<'_, str>, SourceError> {
    if bytes.len() > MAX_PORTAL_PAGE_BYTES {
        return Err(SourceError::TooLarge {
            api: source,
            bytes: bytes.len(),
            limit: MAX_PORTAL_PAGE_BYTES,
        });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    if let Some(error) = other_document(source, &text) {
        return Err(error);
    }
    let depth = nesting_depth(&text);
    if depth > MAX_PORTAL_NESTING {
        return Err(SourceError::TooNested {
            api: source,
            depth,
            limit: MAX_PORTAL_NESTING,
        });
    }
    Ok(text)
}

/// Which portal an HTML page comes from, by the markers the adapters read: Avito's embedded
/// Next.js state, Mubawab's listing cards.
pub(super) fn looks_like(bytes: &[u8]) -> Option<SourceKind> {
    let has = |needle: &[u8]| memchr::memmem::find(bytes, needle).is_some();
    if has(b"__NEXT_DATA__") && has(b"avito") {
        Some(SourceKind::Avito)
    } else if has(b"listingBox") && has(b"mubawab") {
        Some(SourceKind::Mubawab)
    } else {
        None
    }
}

/// The error for a document that is not `source`'s page at all: a JSON document (an API's
/// page, an export line) or another portal's page. `None` when it may be `source`'s page.
fn other_document(source: SourceKind, text: &str) -> Option<SourceError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with(['{', '[']) {
        let value = serde_json::from_str::<serde_json::Value>(trimmed).ok()?;
        return Some(SourceError::WrongShape {
            api: source,
            expected: "an HTML page",
            found: describe_document(source, &value),
        });
    }
    match looks_like(text.as_bytes()) {
        Some(other) if other != source => Some(SourceError::WrongShape {
            api: source,
            expected: "an HTML page",
            found: format!("an HTML page{}", source_hint(text.as_bytes())),
        }),
        _ => None,
    }
}

/// Elements that never hold others (void) or whose start closes an open one of their kind
/// (`<p>`, `<li>`, `<option>`, table cells...), so that they cannot nest without an element
/// that is counted: they do not deepen the count. (`optgroup`, `rb`, `rt`, `rp` can nest in
/// themselves and are counted.)
const UNCOUNTED: [&str; 29] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "p", "li", "dt", "dd", "option", "tr", "td", "th", "thead", "tbody", "tfoot",
    "colgroup", "caption", "html", "head", "body",
];

/// The deepest nesting of start tags without their end tags, counted on html5ever's own
/// tokens (quoted attributes, every form of comment, raw text of `<script>`, `<style>`,
/// `<title>`... as the parser sees them): an upper bound of the tree's depth, up to the
/// elements in [`UNCOUNTED`]. Inside `<svg>` and `<math>` no raw text is assumed, so a
/// doubt only ever counts more.
fn nesting_depth(html: &str) -> usize {
    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::states::RawKind;
    use html5ever::tokenizer::{
        BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer,
    };
    use std::cell::Cell;

    #[derive(Default)]
    struct Depth {
        depth: Cell<usize>,
        deepest: Cell<usize>,
        foreign: Cell<usize>,
    }

    impl TokenSink for Depth {
        type Handle = ();

        fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
            let Token::TagToken(Tag {
                kind,
                name,
                self_closing,
                ..
            }) = token
            else {
                return TokenSinkResult::Continue;
            };
            let name: &str = &name;
            if UNCOUNTED.contains(&name) {
                return TokenSinkResult::Continue;
            }
            let foreign = name == "svg" || name == "math";
            match kind {
                TagKind::EndTag => {
                    self.depth.set(self.depth.get().saturating_sub(1));
                    if foreign {
                        self.foreign.set(self.foreign.get().saturating_sub(1));
                    }
                    TokenSinkResult::Continue
                }
                TagKind::StartTag if self_closing => TokenSinkResult::Continue,
                TagKind::StartTag => {
                    self.depth.set(self.depth.get() + 1);
                    self.deepest.set(self.deepest.get().max(self.depth.get()));
                    if foreign {
                        self.foreign.set(self.foreign.get() + 1);
                    }
                    if self.foreign.get() > 0 {
                        return TokenSinkResult::Continue;
                    }
                    // As the tree builder switches the tokenizer (scripting enabled, as
                    // scraper parses).
                    match name {
                        "script" => TokenSinkResult::RawData(RawKind::ScriptData),
                        "style" | "xmp" | "iframe" | "noembed" | "noframes" | "noscript" => {
                            TokenSinkResult::RawData(RawKind::Rawtext)
                        }
                        "title" | "textarea" => TokenSinkResult::RawData(RawKind::Rcdata),
                        "plaintext" => TokenSinkResult::Plaintext,
                        _ => TokenSinkResult::Continue,
                    }
                }
            }
        }
    }

    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let tokenizer = Tokenizer::new(Depth::default(), Default::default());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.deepest.get()
}

/// A selector written in the adapters: a constant, so parsing it cannot fail at run time
/// (the fixture tests parse every one).
fn selector(css: &'static str) -> Selector {
    Selector::parse(css).unwrap_or_else(|e| panic!("invalid selector {css:?}: {e}"))
}

/// `<link rel="next" href=...>` of a page, made absolute against `origin`.
fn next_link(document: &scraper::Html, origin: &str) -> Option<String> {
    static NEXT: LazyLock<Selector> = LazyLock::new(|| selector(r#"link[rel="next"]"#));
    let href = document.select(&NEXT).next()?.value().attr("href")?.trim();
    absolute_url(href, origin)
}

/// The surface a portal states, in square metres, as the canonical fields: a plot's is its
/// lot (`lot_size_sqft`), any other property's its living area, kept in whole square metres
/// (`details.living_area_sqm`, rounded) beside its conversion (`living_area_sqft`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Surface {
    living_area_sqm: Option<u32>,
    living_area_sqft: Option<u32>,
    lot_size_sqft: Option<u64>,
}

impl Surface {
    fn of(sqm: Option<f64>, property_type: PropertyType) -> Self {
        let Some(sqm) = sqm.filter(|sqm| sqm.is_finite() && *sqm > 0.0) else {
            return Self::default();
        };
        if property_type == PropertyType::Land {
            return Self {
                lot_size_sqft: json::whole_sqft(sqm * SQFT_PER_SQUARE_METRE),
                ..Self::default()
            };
        }
        // Saturating: an area past u32 is far past the living-area ceiling, which drops it.
        let whole = sqm.round().min(f64::from(u32::MAX)) as u32;
        Self {
            living_area_sqm: Some(whole),
            living_area_sqft: Some(sqft_from_sqm(whole)),
            lot_size_sqft: None,
        }
    }
}

/// A Moroccan listing's address and market: the portals name a city and a neighbourhood,
/// never a street, region or postal code.
fn moroccan_address(
    city: String,
    neighbourhood: Option<String>,
) -> Result<(Address, MarketKey), String> {
    let address = Address {
        line: None,
        city,
        state: String::new(),
        postal_code: None,
        country: CountryCode::MA,
        neighbourhood,
    };
    let market = MarketKey::for_address(&address).map_err(|e| e.to_string())?;
    Ok((address, market))
}

/// A neighbourhood as a portal names it, or none for the names that mean none ("Autre
/// secteur": another sector; "Toute la ville": the whole city).
fn neighbourhood(name: &str) -> Option<String> {
    let name = text::clean(name);
    let none = name.is_empty()
        || name.eq_ignore_ascii_case("autre secteur")
        || name.eq_ignore_ascii_case("toute la ville");
    (!none).then_some(name)
}

/// `; it looks like a search page of Avito.ma: try --source avito` when `bytes` is a portal's
/// page, for the errors of the other sources; empty otherwise.
pub(super) fn source_hint(bytes: &[u8]) -> String {
    looks_like(bytes).map_or(String::new(), |portal| {
        format!(
            "; it looks like a {}: try --source {portal}",
            portal.document_name()
        )
    })
}

/// A page's records as they are read: its listings, and a reject for each card or ad that
/// is not one, with its place on the page and its id when it has a usable one.
struct Records {
    source: SourceKind,
    listing_source: ListingSource,
    listings: Vec<Listing>,
    rejects: Vec<Reject>,
}

impl Records {
    fn new(source: SourceKind, listing_source: ListingSource) -> Self {
        Self {
            source,
            listing_source,
            listings: Vec::new(),
            rejects: Vec::new(),
        }
    }

    fn push(
        &mut self,
        position: usize,
        outcome: Result<Listing, String>,
        native_id: impl FnOnce() -> Option<String>,
    ) {
        match outcome {
            Ok(listing) => self.listings.push(listing),
            Err(reason) => self.rejects.push(Reject {
                source_id: native_id()
                    .and_then(|id| ListingId::new(self.listing_source, &id).ok())
                    .map(|id| id.to_string()),
                position: RecordPosition::Index(position),
                reason,
            }),
        }
    }

    /// The page; an error saying what was looked for (`nothing`) when it held no record,
    /// unless the page itself says its search has no result (an empty search, not a page
    /// that no longer reads).
    fn into_page(
        self,
        paging: PortalPaging,
        nothing: impl FnOnce() -> String,
    ) -> Result<Page, SourceError> {
        if self.listings.is_empty() && self.rejects.is_empty() && paging.total_results != Some(0) {
            return Err(no_listings(self.source, nothing()));
        }
        Ok(Page {
            source: self.source,
            listings: self.listings,
            rejects: self.rejects,
            paging: Paging::Portal(paging),
        })
    }
}

/// The no-listings error with the page's hint.
fn no_listings(source: SourceKind, detail: impl Into<String>) -> SourceError {
    SourceError::NoListings {
        api: source,
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_urls_only_on_the_portal() {
        let origin = "https://www.avito.ma";
        assert_eq!(
            absolute_url("/fr/maroc/x?o=2", origin).as_deref(),
            Some("https://www.avito.ma/fr/maroc/x?o=2")
        );
        assert_eq!(absolute_url("//evil.example/x", origin), None);
        assert_eq!(absolute_url("https://evil.example/x", origin), None);
        assert_eq!(
            absolute_url("https://www.avito.ma.evil.example/x", origin),
            None
        );
        assert_eq!(absolute_url("http://www.avito.ma/x", origin), None);
        assert_eq!(
            absolute_url("https://www.avito.ma/fr/x.htm", origin).as_deref(),
            Some("https://www.avito.ma/fr/x.htm")
        );
        assert_eq!(absolute_url("javascript:alert(1)", origin), None);
    }

    #[test]
    fn nesting_is_counted_as_the_tree_would_nest() {
        assert_eq!(nesting_depth("<div><span>a</span><span>b</span></div>"), 2);
        // Void elements, implied end tags, comments and script text do not deepen.
        assert_eq!(
            nesting_depth("<ul><li>a<li>b</ul><p>x<p>y<img src=x><br/><!-- <div><div> -->"),
            1
        );
        assert_eq!(
            nesting_depth("<script>if (a<b) { x = '<div><div><div>'; }</script><div></div>"),
            1
        );
        assert_eq!(nesting_depth("<DIV><Div><svg><path/></svg></div></DIV>"), 3);
        let at = "<div>".repeat(MAX_PORTAL_NESTING);
        assert!(page_text(SourceKind::Mubawab, at.as_bytes()).is_ok());
        let past = "<div>".repeat(MAX_PORTAL_NESTING + 1);
        let err = page_text(SourceKind::Mubawab, past.as_bytes()).expect_err("too deep");
        assert!(matches!(err, SourceError::TooNested { .. }), "{err}");
    }

    /// Ways a scanner of its own could be told less than the parser sees (found in review):
    /// a `>` inside a quoted attribute, comments that end early, elements that nest in
    /// themselves, raw text in foreign content. Each page nests far past the bound.
    #[test]
    fn nesting_cannot_be_hidden_from_the_count() {
        let deep = MAX_PORTAL_NESTING * 4;
        for unit in [
            r#"<div a="></div>">"#,
            "<!--><div>",
            "<!-- x --!><div>",
            "<optgroup>",
            "<rt>",
            "<svg><style><div>",
        ] {
            let page = unit.repeat(deep);
            assert!(
                nesting_depth(&page) > MAX_PORTAL_NESTING,
                "{unit}: counted {}",
                nesting_depth(&page)
            );
        }
    }

    #[test]
    fn a_page_stating_no_result_is_an_empty_search_not_drift() {
        let page = |ads: &str| {
            format!(
                r#"<html><script id="__NEXT_DATA__" type="application/json">{{"props":{{"pageProps":{{"componentProps":{{"ads":{{{ads}}}}}}}}}}}</script></html>"#
            )
        };
        let empty = avito::parse_page(
            page(r#""ads":[],"totalListingAds":0"#).as_bytes(),
            chrono::Utc::now(),
        )
        .expect("an empty search");
        assert!(empty.listings.is_empty() && empty.rejects.is_empty());
        for silent in [r#""ads":[]"#, r#""ads":[],"totalListingAds":3"#] {
            let err = avito::parse_page(page(silent).as_bytes(), chrono::Utc::now())
                .expect_err("nothing, and no word of an empty search");
            assert!(matches!(err, SourceError::NoListings { .. }), "{err}");
        }
    }

    #[test]
    fn pages_at_and_just_past_the_size_bound() {
        let at = vec![b' '; MAX_PORTAL_PAGE_BYTES];
        assert!(page_text(SourceKind::Avito, &at).is_ok());
        let past = vec![b' '; MAX_PORTAL_PAGE_BYTES + 1];
        let err = page_text(SourceKind::Avito, &past).expect_err("too large");
        assert!(matches!(err, SourceError::TooLarge { .. }), "{err}");
    }
}
