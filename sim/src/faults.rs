//! Fault injection: which request fails how, decided by hashing so runs repeat.
//!
//! A request is identified by (API, method, path, query, body). Its n-th attempt at one
//! simulated time draws from `hash(seed, simulated now, request, n)`; attempts from
//! [`FaultConfig::max_faulty_attempts`] on never fault, so a client that retries always
//! gets through, and advancing simulated time starts a fresh round of decisions.

use std::collections::HashMap;

use crate::api::{ApiKind, JSON, Reply};
use crate::config::{FaultConfig, FaultKind};
use crate::market::ListingRef;
use crate::random::{hash_words, unit_interval};

const DECISION_SALT: u64 = 0xFA17;

/// The fault (if any) for attempt `attempt` (0-based) of a request.
pub(crate) fn decide(
    config: &FaultConfig,
    seed: u64,
    now_ms: i64,
    request: u64,
    attempt: u32,
) -> Option<FaultKind> {
    if attempt >= config.max_faulty_attempts || !config.any() {
        return None;
    }
    let draw = unit_interval(hash_words(&[
        seed,
        now_ms as u64,
        request,
        u64::from(attempt),
        DECISION_SALT,
    ]));
    let mut threshold = 0.0;
    for kind in FaultKind::ALL {
        threshold += config.probability(kind);
        if draw < threshold {
            return Some(kind);
        }
    }
    None
}

/// How many times each request was seen at the current simulated time.
#[derive(Debug, Default)]
pub(crate) struct AttemptBook {
    now_ms: i64,
    seen: HashMap<u64, u32>,
}

impl AttemptBook {
    /// Records an attempt and returns its number (0 for the first).
    pub fn next(&mut self, now_ms: i64, request: u64) -> u32 {
        if now_ms != self.now_ms {
            // Decisions are per simulated time: older counts can never matter again.
            self.seen.clear();
            self.now_ms = now_ms;
        }
        let count = self.seen.entry(request).or_insert(0);
        let attempt = *count;
        *count = count.saturating_add(1);
        attempt
    }
}

/// One listing moved to an earlier position of a paging session's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Move {
    listing: ListingRef,
    to: usize,
}

/// The page shifts of the paging sessions at the current simulated time. A session is a
/// query without its page number; once one of its listings moved, every later page
/// request of the session (until time advances) sees the moved order, as it would if the
/// listing had really changed.
#[derive(Debug, Default)]
pub(crate) struct PageShifts {
    now_ms: i64,
    sessions: HashMap<u64, Vec<Move>>,
    /// The listing each session's current read does not see ([`FaultKind::Hidden`]).
    hidden: HashMap<u64, ListingRef>,
}

impl PageShifts {
    /// Applies the session's moves to `order`; with `new_move`, first records one more:
    /// a listing from the page starting at `page_start` or later moves before it, onto a
    /// page already read. Returns whether a new move was made.
    pub fn apply(
        &mut self,
        now_ms: i64,
        session: u64,
        order: &mut Vec<ListingRef>,
        page_start: usize,
        new_move: Option<u64>,
    ) -> bool {
        self.at(now_ms);
        let moves = self.sessions.entry(session).or_default();
        for step in moves.iter() {
            move_listing(order, step.listing, step.to);
        }
        let Some(hash) = new_move else {
            return false;
        };
        if page_start == 0 || page_start >= order.len() {
            return false;
        }
        let from = page_start + (hash % (order.len() - page_start) as u64) as usize;
        let to = ((hash >> 32) % page_start as u64) as usize;
        let listing = order[from];
        move_listing(order, listing, to);
        moves.push(Move { listing, to });
        true
    }

    fn at(&mut self, now_ms: i64) {
        if now_ms != self.now_ms {
            self.sessions.clear();
            self.hidden.clear();
            self.now_ms = now_ms;
        }
    }

    /// Leaves out of `order` the listing the session's current read does not see. A read
    /// starts at the first page: with `new_hide` it picks a listing to hide for the whole
    /// read (pages and totals), without it the read sees everything. Returns whether a new
    /// listing was hidden.
    pub fn hide(
        &mut self,
        now_ms: i64,
        session: u64,
        order: &mut Vec<ListingRef>,
        first_page: bool,
        new_hide: Option<u64>,
    ) -> bool {
        self.at(now_ms);
        let mut picked = false;
        if first_page {
            match new_hide.filter(|_| !order.is_empty()) {
                Some(hash) => {
                    let listing = order[(hash % order.len() as u64) as usize];
                    self.hidden.insert(session, listing);
                    picked = true;
                }
                None => {
                    self.hidden.remove(&session);
                }
            }
        }
        if let Some(listing) = self.hidden.get(&session) {
            order.retain(|l| l != listing);
        }
        picked
    }

    /// Whether any session has shifted at the current time.
    #[cfg(test)]
    pub fn sessions_shifted(&self) -> usize {
        self.sessions.values().filter(|m| !m.is_empty()).count()
    }
}

fn move_listing(order: &mut Vec<ListingRef>, listing: ListingRef, to: usize) {
    if let Some(from) = order.iter().position(|&l| l == listing) {
        let item = order.remove(from);
        order.insert(to.min(order.len()), item);
    }
}

/// A `429` as the API's gateway sends it.
pub(crate) fn rate_limited(api: ApiKind, retry_after_secs: u32) -> Reply {
    let mut reply = match api {
        ApiKind::Reso => Reply::json(
            429,
            &serde_json::json!({"error": {"code": "TooManyRequests", "message": "Rate limit exceeded: at most 2 requests per second"}}),
        ),
        ApiKind::Zillow | ApiKind::Realtor => Reply::message(
            429,
            "You have exceeded the rate limit per second for your plan, BASIC, by the API provider",
        ),
    };
    reply
        .headers
        .push(("retry-after", retry_after_secs.to_string()));
    reply
}

/// A 5xx: which one, and its body, depends on the hash.
pub(crate) fn server_error(api: ApiKind, hash: u64, retry_after_secs: u32) -> Reply {
    match hash % 4 {
        0 => match api {
            ApiKind::Reso => Reply::json(
                500,
                &serde_json::json!({"error": {"code": "InternalServerError", "message": "An unexpected error occurred"}}),
            ),
            _ => Reply::message(500, "Internal Server Error"),
        },
        1 => html(502, "502 Bad Gateway"),
        2 => {
            let mut reply = Reply::message(503, "Service Unavailable");
            reply
                .headers
                .push(("retry-after", retry_after_secs.to_string()));
            reply
        }
        _ => html(504, "504 Gateway Time-out"),
    }
}

fn html(status: u16, title: &str) -> Reply {
    Reply {
        status,
        content_type: "text/html",
        headers: Vec::new(),
        body: format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
        )
        .into_bytes(),
    }
}

/// The body cut somewhere between a tenth and nine tenths of its length.
pub(crate) fn truncate(body: &[u8], hash: u64) -> Vec<u8> {
    let len = body.len();
    if len < 2 {
        return Vec::new();
    }
    let low = (len / 10).max(1);
    let high = (len * 9 / 10).max(low + 1).min(len - 1);
    let cut = low + (hash % (high - low + 1) as u64) as usize;
    body[..cut.min(len - 1)].to_vec()
}

/// The body made unparseable in one of the ways broken gateways and encoders do it,
/// with the content type it is sent with.
pub(crate) fn malform(body: &[u8], hash: u64) -> (Vec<u8>, &'static str) {
    match hash % 3 {
        0 => (
            b"<!DOCTYPE html><html><head><title>Service Temporarily Unavailable</title></head><body><h1>Service Temporarily Unavailable</h1><p>The server is temporarily unable to service your request. Please try again later.</p></body></html>".to_vec(),
            JSON,
        ),
        1 => (nan_for_first_number(body).unwrap_or_else(|| lose_a_comma(body)), JSON),
        _ => (lose_a_comma(body), JSON),
    }
}

/// Replaces the first number value (`:` then digits) with `NaN`, which JSON does not allow.
fn nan_for_first_number(body: &[u8]) -> Option<Vec<u8>> {
    let start = body
        .windows(2)
        .position(|w| w[0] == b':' && w[1].is_ascii_digit())?
        + 1;
    let end = start
        + body[start..]
            .iter()
            .position(|b| !(b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+')))
            .unwrap_or(body.len() - start);
    let mut out = body[..start].to_vec();
    out.extend_from_slice(b"NaN");
    out.extend_from_slice(&body[end..]);
    Some(out)
}

/// Drops the first separating comma after the middle (`,"` or `,{`), leaving two values
/// side by side; a body without one gets trailing garbage instead.
fn lose_a_comma(body: &[u8]) -> Vec<u8> {
    let is_separator = |w: &[u8]| w[0] == b',' && matches!(w[1], b'"' | b'{');
    let middle = body.len() / 2;
    let position = body[middle..]
        .windows(2)
        .position(is_separator)
        .map(|p| p + middle)
        .or_else(|| body.windows(2).position(is_separator));
    match position {
        Some(position) => {
            let mut out = body[..position].to_vec();
            out.extend_from_slice(&body[position + 1..]);
            out
        }
        None => {
            let mut out = body.to_vec();
            out.extend_from_slice(b"}{\"");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_body() -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "props": [{"zpid": "1", "price": 250000}, {"zpid": "2", "price": 310000}],
            "totalResultCount": 2
        }))
        .expect("serialises")
    }

    #[test]
    fn no_faults_when_disabled_or_past_the_faulty_attempts() {
        let none = FaultConfig::none();
        let always = FaultConfig {
            rate_limit: 1.0,
            ..FaultConfig::none()
        };
        for request in 0..1_000 {
            assert_eq!(decide(&none, 1, 0, request, 0), None);
            assert_eq!(
                decide(&always, 1, 0, request, 0),
                Some(FaultKind::RateLimit)
            );
            assert_eq!(
                decide(&always, 1, 0, request, always.max_faulty_attempts),
                None
            );
        }
    }

    #[test]
    fn decisions_follow_the_probabilities_and_repeat() {
        let config = FaultConfig {
            rate_limit: 0.1,
            server_error: 0.2,
            page_shift: 0.3,
            ..FaultConfig::none()
        };
        let mut counts: HashMap<Option<FaultKind>, u32> = HashMap::new();
        for request in 0..20_000 {
            let decision = decide(&config, 9, 1_000, request, 1);
            assert_eq!(decision, decide(&config, 9, 1_000, request, 1));
            *counts.entry(decision).or_default() += 1;
        }
        let share = |kind| f64::from(counts.get(&kind).copied().unwrap_or(0)) / 20_000.0;
        assert!((share(Some(FaultKind::RateLimit)) - 0.1).abs() < 0.015);
        assert!((share(Some(FaultKind::ServerError)) - 0.2).abs() < 0.015);
        assert!((share(Some(FaultKind::PageShift)) - 0.3).abs() < 0.015);
        assert_eq!(share(Some(FaultKind::Slow)), 0.0);
        assert!((share(None) - 0.4).abs() < 0.015);
    }

    #[test]
    fn attempts_count_per_request_and_reset_with_time() {
        let mut book = AttemptBook::default();
        assert_eq!(book.next(5, 1), 0);
        assert_eq!(book.next(5, 1), 1);
        assert_eq!(book.next(5, 2), 0);
        assert_eq!(book.next(6, 1), 0);
    }

    #[test]
    fn mangled_bodies_never_parse() {
        let body = sample_body();
        for hash in 0..200u64 {
            let cut = truncate(&body, hash);
            assert!(cut.len() < body.len() && body.starts_with(&cut));
            assert!(serde_json::from_slice::<serde_json::Value>(&cut).is_err());
            let (broken, _) = malform(&body, hash);
            assert!(
                serde_json::from_slice::<serde_json::Value>(&broken).is_err(),
                "{}",
                String::from_utf8_lossy(&broken)
            );
        }
        assert!(serde_json::from_slice::<serde_json::Value>(&lose_a_comma(b"[1]")).is_err());
    }

    #[test]
    fn a_hidden_listing_is_missing_from_a_whole_read_and_back_in_the_next() {
        let original: Vec<ListingRef> = (0..100).map(|i| (0, i)).collect();
        let mut shifts = PageShifts::default();
        let mut first = original.clone();
        assert!(shifts.hide(1, 7, &mut first, true, Some(42)));
        assert_eq!(first.len(), 99);
        let gone = original[42];
        assert!(!first.contains(&gone));
        // Later pages of that read miss it too (their totals agree).
        let mut second = original.clone();
        assert!(!shifts.hide(1, 7, &mut second, false, Some(3)));
        assert_eq!(second, first);
        // Another query sees it.
        let mut other = original.clone();
        shifts.hide(1, 8, &mut other, false, None);
        assert_eq!(other, original);
        // The next read of the same query, without the fault, sees everything.
        let mut again = original.clone();
        assert!(!shifts.hide(1, 7, &mut again, true, None));
        assert_eq!(again, original);
        let mut later = original.clone();
        shifts.hide(1, 7, &mut later, false, None);
        assert_eq!(later, original);
    }

    #[test]
    fn a_page_shift_moves_one_listing_onto_a_read_page_and_persists() {
        let original: Vec<ListingRef> = (0..100).map(|i| (0, i)).collect();
        let mut shifts = PageShifts::default();
        let mut second_page = original.clone();
        assert!(shifts.apply(1, 77, &mut second_page, 41, Some(0xDEAD_BEEF_1234_5678)));
        // Page 2 now starts with page 1's last listing (a duplicate for a naive reader)...
        assert_eq!(second_page[41], original[40]);
        // ...and one listing from page 2 or later now sits on page 1 (missed by it).
        let moved: Vec<&ListingRef> = second_page[..41].iter().filter(|l| l.1 >= 41).collect();
        assert_eq!(moved.len(), 1);
        // Later pages of the session see the same order; other sessions do not.
        let mut third_page = original.clone();
        assert!(!shifts.apply(1, 77, &mut third_page, 82, None));
        assert_eq!(third_page, second_page);
        let mut other = original.clone();
        shifts.apply(1, 78, &mut other, 41, None);
        assert_eq!(other, original);
        assert_eq!(shifts.sessions_shifted(), 1);
        // A new simulated time forgets the shifts.
        let mut later = original.clone();
        shifts.apply(2, 77, &mut later, 41, None);
        assert_eq!(later, original);
        // Nothing can move onto page 1 from page 1, or past the end.
        assert!(!shifts.apply(2, 77, &mut later, 0, Some(1)));
        assert!(!shifts.apply(2, 77, &mut later, 100, Some(1)));
    }
}
