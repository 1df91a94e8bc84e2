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

use super::{SourceError, SourceKind, describe_document};

pub mod avito;
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

/// Deepest element nesting read (as [`nesting_depth`] counts it). Real pages nest a few
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
    let depth = nesting_depth(text.as_bytes());
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
            found: format!(
                "an HTML page; it looks like an {}: try --source {other}",
                other.document_name()
            ),
        }),
        _ => None,
    }
}

/// Elements that never hold others (void) or whose end tag may be left out and is implied
/// by the next sibling (`<p>`, `<li>`, table cells...): they do not deepen the tree, so they
/// are not counted.
const UNCOUNTED: [&[u8]; 33] = [
    b"area",
    b"base",
    b"br",
    b"col",
    b"embed",
    b"hr",
    b"img",
    b"input",
    b"link",
    b"meta",
    b"source",
    b"track",
    b"wbr",
    b"p",
    b"li",
    b"dt",
    b"dd",
    b"option",
    b"optgroup",
    b"tr",
    b"td",
    b"th",
    b"thead",
    b"tbody",
    b"tfoot",
    b"colgroup",
    b"caption",
    b"rb",
    b"rt",
    b"rp",
    b"html",
    b"head",
    b"body",
];

/// The deepest nesting of start tags without their end tags, in one linear pass: an upper
/// bound of the tree's depth for the pages a parser is worth running on (comments and the
/// text of `<script>` and `<style>` are skipped; elements in [`UNCOUNTED`] are not counted).
fn nesting_depth(html: &[u8]) -> usize {
    let mut depth: usize = 0;
    let mut deepest = 0;
    let mut at = 0;
    while let Some(offset) = memchr::memchr(b'<', &html[at..]) {
        let tag = &html[at + offset + 1..];
        if tag.starts_with(b"!--") {
            // Past the comment's end, or to the end of an unclosed comment.
            at = memchr::memmem::find(&tag[3..], b"-->")
                .map_or(html.len(), |end| at + offset + 1 + 3 + end + 3);
            continue;
        }
        let closing = tag.first() == Some(&b'/');
        let name_start = usize::from(closing);
        let name_len = tag[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        let name = tag[name_start..name_start + name_len].to_ascii_lowercase();
        let end = memchr::memchr(b'>', tag).map_or(tag.len(), |end| end + 1);
        at += offset + 1 + end;
        if name.is_empty() || UNCOUNTED.contains(&name.as_slice()) {
            continue;
        }
        let self_closing = tag[..end].ends_with(b"/>");
        if closing {
            depth = depth.saturating_sub(1);
        } else if !self_closing {
            depth += 1;
            deepest = deepest.max(depth);
            if name == b"script" || name == b"style" {
                // Raw text up to the end tag: a `<` in it is not a tag.
                let rest = &html[at..];
                at += memchr::memmem::find_iter(rest, b"</")
                    .find(|&i| {
                        rest[i + 2..]
                            .get(..name.len())
                            .is_some_and(|n| n.eq_ignore_ascii_case(&name))
                    })
                    .unwrap_or(rest.len());
            }
        }
    }
    deepest
}

/// A selector written in this file: parsing it cannot fail at run time (a unit test parses
/// every one).
fn selector(css: &'static str) -> Selector {
    Selector::parse(css).unwrap_or_else(|e| panic!("invalid selector {css:?}: {e}"))
}

/// `<link rel="next" href=...>` of a page, made absolute against `origin`.
fn next_link(document: &scraper::Html, origin: &str) -> Option<String> {
    static NEXT: LazyLock<Selector> = LazyLock::new(|| selector(r#"link[rel="next"]"#));
    let href = document.select(&NEXT).next()?.value().attr("href")?.trim();
    absolute_url(href, origin)
}

/// `href` as an absolute `https` URL on `origin` (`https://www.avito.ma`), or `None` for
/// anything else (another scheme, a protocol-relative link to another host).
fn absolute_url(href: &str, origin: &str) -> Option<String> {
    if href.starts_with("https://") || href.starts_with("http://") {
        Some(href.to_owned())
    } else if href.starts_with('/') && !href.starts_with("//") {
        Some(format!("{origin}{href}"))
    } else {
        None
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
        assert_eq!(absolute_url("javascript:alert(1)", origin), None);
    }

    #[test]
    fn nesting_is_counted_as_the_tree_would_nest() {
        assert_eq!(nesting_depth(b"<div><span>a</span><span>b</span></div>"), 2);
        // Void elements, implied end tags, comments and script text do not deepen.
        assert_eq!(
            nesting_depth(b"<ul><li>a<li>b</ul><p>x<p>y<img src=x><br/><!-- <div><div> -->"),
            1
        );
        assert_eq!(
            nesting_depth(b"<script>if (a<b) { x = '<div><div><div>'; }</script><div></div>"),
            1
        );
        assert_eq!(
            nesting_depth(b"<DIV><Div><svg><path/></svg></div></DIV>"),
            3
        );
        let at = "<div>".repeat(MAX_PORTAL_NESTING);
        assert!(page_text(SourceKind::Mubawab, at.as_bytes()).is_ok());
        let past = "<div>".repeat(MAX_PORTAL_NESTING + 1);
        let err = page_text(SourceKind::Mubawab, past.as_bytes()).expect_err("too deep");
        assert!(matches!(err, SourceError::TooNested { .. }), "{err}");
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
