//! Reading listing APIs as real APIs behave: timeouts, 429 with Retry-After, 5xx, truncated
//! or malformed bodies, and a request rate each source allows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::sync::Mutex;
use tokio::time::Instant;

use realty_sources::{Page, SourceError};

/// How patient to be with an API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HttpPolicy {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest Retry-After honoured; a longer one fails the request.
    pub max_retry_after: Duration,
    /// Largest response body read, after decompression: a larger one (a gzip bomb, a page
    /// gone wrong) fails its read at once instead of filling the Lambda's memory.
    pub max_body_bytes: usize,
    /// No attempt starts, and no wait before one runs, past this instant (the poll run's:
    /// its reads under way end before the function's timeout); `None`: no bound.
    pub deadline: Option<Instant>,
}

/// Default [`HttpPolicy::max_body_bytes`]: the largest real page (a RESO page of 1,000
/// records, Realtor.com's 200 results) is a few MB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_attempts: 6,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            deadline: None,
        }
    }
}

/// The poller's HTTP client: rustls over ring (installed as the process's default crypto
/// provider unless one is), the project's user agent, `connect_timeout`, and no redirect
/// followed. reqwest's default follows 10 hops to any host, stripping only `Authorization`
/// and cookies: a RapidAPI key header went wherever a redirect pointed (https to http
/// too), and a 307 re-sent the RESO client secret. A redirect is an answer
/// ([`FetchError::Redirected`]): the APIs' reads fail on it, and the portals' crawler
/// decides each hop itself ([`super::hops`]).
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    // Err only when a provider is already installed, which then serves as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("realty-stream/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Longest `Location` kept from a redirect: a longer one is not a page to go to.
pub const MAX_LOCATION_BYTES: usize = 2_048;

/// A redirect's `Location` as sent (empty when absent, not text, or over
/// [`MAX_LOCATION_BYTES`]).
pub(super) fn location(headers: &HeaderMap) -> String {
    headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= MAX_LOCATION_BYTES)
        .unwrap_or_default()
        .to_owned()
}

/// A request that could not be completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        url: String,
        attempts: u32,
        last: String,
    },
    /// A 3xx: never followed by the client. An API's credentials go to its own host only;
    /// a portal page's hop is checked before it is asked for ([`super::hops`]).
    #[error("{url}: redirected (HTTP {status}) to {location:?}: not followed")]
    Redirected {
        url: String,
        status: u16,
        /// The `Location` as sent (empty when absent, not text, or over
        /// [`MAX_LOCATION_BYTES`]).
        location: String,
    },
    #[error("{url}: HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: {error}")]
    NotThatApi { url: String, error: String },
    #[error("{url}: Retry-After of {secs} s is longer than the poll can wait")]
    RetryAfterTooLong { url: String, secs: u64 },
    #[error("{url}: response body larger than {limit} bytes (decompressed); not read")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: not requested: this month's request budget of the source is spent")]
    BudgetSpent { url: String },
    /// A portal's page that no longer reads as it did (no listing at all, or listings that
    /// lost what the last read found): a failed read, never an empty market.
    #[error("{url}: layout drift: {error}")]
    LayoutDrift { url: String, error: String },
    /// The site's robots.txt does not allow this crawler the page, or could not be read.
    #[error("{url}: not fetched: {reason}")]
    Disallowed { url: String, reason: String },
    /// The run's time is spent ([`HttpPolicy::deadline`]): a failed read, read again by the
    /// next run.
    #[error("{url}: stopped at the poll run's deadline after {attempts} attempts: {last}")]
    OutOfTime {
        url: String,
        attempts: u32,
        last: String,
    },
}

/// Why a body could not be read whole.
pub(super) enum BodyError {
    TooLarge,
    Transport(String),
}

/// Reads a body chunk by chunk (decompressed as it streams when the client decompresses),
/// stopping as soon as it passes `limit` bytes: memory stays bounded whatever the server
/// sends or claims.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let declared = response.content_length().unwrap_or(0);
    if declared > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::with_capacity((declared as usize).min(limit));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Transport(e.to_string()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Admits requests to one API: spaced at least `interval` apart, and (when a request budget
/// is set) no more of them than the budget has left. It counts every request it admits, so
/// the poll can charge them to the month's budget.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
    /// Requests admitted since the last [`RateLimiter::start_run`].
    admitted: AtomicU64,
    /// Most requests this run may make; `u64::MAX` without a budget.
    allowance: AtomicU64,
}

impl RateLimiter {
    pub fn per_second(requests: f64) -> Self {
        let interval = if requests > 0.0 {
            Duration::from_secs_f64(1.0 / requests)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            next: Mutex::new(Instant::now()),
            admitted: AtomicU64::new(0),
            allowance: AtomicU64::new(u64::MAX),
        }
    }

    /// Starts counting a poll run's requests afresh, allowing at most `allowance` (`None`:
    /// no budget).
    pub fn start_run(&self, allowance: Option<u64>) {
        self.admitted.store(0, Ordering::SeqCst);
        self.allowance
            .store(allowance.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// How many requests its spacing lets through in `time` (`u64::MAX` without spacing).
    pub fn requests_within(&self, time: Duration) -> u64 {
        if self.interval.is_zero() {
            return u64::MAX;
        }
        (time.as_secs_f64() / self.interval.as_secs_f64()) as u64
    }

    /// Requests admitted since the run started.
    pub fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::SeqCst)
    }

    /// Counts one request against the allowance; `false` when none is left (nothing counted).
    pub fn admit(&self) -> bool {
        let allowance = self.allowance.load(Ordering::SeqCst);
        self.admitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < allowance).then_some(n + 1)
            })
            .is_ok()
    }

    /// Holds the source's next request back until `wait` from now: a 429 or 503 says the
    /// source is overloaded for every market read from it, not only for the request told.
    pub async fn hold_off(&self, wait: Duration) {
        let mut next = self.next.lock().await;
        *next = (*next).max(Instant::now() + wait);
    }

    /// Waits for this request's turn.
    pub async fn acquire(&self) {
        self.acquire_many(1).await;
    }

    /// Waits for the turn of `n` requests sent at once (a batch); the next turn is `n`
    /// intervals later.
    pub async fn acquire_many(&self, n: u32) {
        let turn = {
            let mut next = self.next.lock().await;
            let turn = (*next).max(Instant::now());
            *next = turn + self.interval * n;
            turn
        };
        tokio::time::sleep_until(turn).await;
    }
}

/// One page request, built afresh for every attempt.
pub trait PageRequest {
    fn build(&self, client: &reqwest::Client) -> reqwest::RequestBuilder;
    fn url(&self) -> String;
}

/// A page fetched and parsed, how many retries it took, and the body as the API sent it
/// (decompressed from any transfer encoding), for the raw layer.
#[derive(Debug)]
pub struct Fetched {
    pub page: Page,
    pub retries: u32,
    pub body: Vec<u8>,
}

/// When to try again after a response with these headers, per RFC 9110: delay-seconds or an
/// HTTP date.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

fn backoff(policy: &HttpPolicy, attempt: u32) -> Duration {
    realty_model::backoff::full_jitter(policy.first_backoff, policy.max_backoff, attempt)
}

/// Waits `wait` before attempt `attempt + 1`, unless there is none (the last attempt was
/// made) or the wait would end past the deadline: then the error to give up with.
async fn wait_to_retry(
    policy: &HttpPolicy,
    attempt: u32,
    wait: Duration,
    url: &str,
    last: &str,
) -> Result<(), FetchError> {
    if attempt + 1 >= policy.max_attempts {
        return Err(FetchError::Exhausted {
            url: url.to_owned(),
            attempts: policy.max_attempts,
            last: last.to_owned(),
        });
    }
    if policy
        .deadline
        .is_some_and(|deadline| Instant::now() + wait >= deadline)
    {
        return Err(FetchError::OutOfTime {
            url: url.to_owned(),
            attempts: attempt + 1,
            last: last.to_owned(),
        });
    }
    tokio::time::sleep(wait).await;
    Ok(())
}

/// Fetches one page and parses it with `parse`, retrying what may pass: timeouts, connection
/// errors, 429 (after Retry-After), 5xx, and bodies that are not whole JSON (truncated or
/// garbled in transit). A body that is JSON but not this API's shape, or a 4xx, is not retried.
pub async fn fetch_page<R, P>(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    request: &R,
    parse: P,
) -> Result<Fetched, FetchError>
where
    R: PageRequest,
    P: Fn(&[u8]) -> Result<Page, SourceError>,
{
    let (page, retries, body) = fetch_parsed(client, limiter, policy, request, parse).await?;
    Ok(Fetched {
        page,
        retries,
        body,
    })
}

/// Fetches a document that is not a listing page (a site's robots.txt): its body, with the
/// same retries, rate and budget as a page.
pub async fn read_text<R: PageRequest>(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    request: &R,
) -> Result<Vec<u8>, FetchError> {
    let ((), _, body) = fetch_parsed(client, limiter, policy, request, |_| Ok(())).await?;
    Ok(body)
}

/// [`fetch_page`] for any parse: the parsed value, the retries it took and the body.
async fn fetch_parsed<R, T, P>(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    request: &R,
    parse: P,
) -> Result<(T, u32, Vec<u8>), FetchError>
where
    R: PageRequest,
    P: Fn(&[u8]) -> Result<T, SourceError>,
{
    let url = request.url();
    let mut last = String::new();
    for attempt in 0..policy.max_attempts {
        if attempt > 0 {
            metrics::counter!("http_retries").increment(1);
        }
        await_turn(limiter, policy, &url, attempt, &last).await?;
        match attempt_once(client, limiter, policy, request, &parse, &url, attempt).await? {
            Attempt::Parsed(value, body) => return Ok((value, attempt, body)),
            Attempt::Retry { why, wait } => {
                last = why;
                wait_to_retry(policy, attempt, wait, &url, &last).await?;
            }
        }
    }
    Err(FetchError::Exhausted {
        url,
        attempts: policy.max_attempts,
        last,
    })
}

/// What one attempt at a request came to, short of an error that ends the fetch.
enum Attempt<T> {
    /// The body, parsed, and the body.
    Parsed(T, Vec<u8>),
    /// Worth asking again after `wait`; `why` it failed.
    Retry { why: String, wait: Duration },
}

/// Waits for the source's turn for attempt `attempt` (`last`: why the one before failed):
/// an error past the run's deadline, before the turn or after it, or with the request
/// budget spent.
async fn await_turn(
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    url: &str,
    attempt: u32,
    last: &str,
) -> Result<(), FetchError> {
    let out_of_time = || {
        policy
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
            .then(|| FetchError::OutOfTime {
                url: url.to_owned(),
                attempts: attempt,
                last: last.to_owned(),
            })
    };
    if let Some(error) = out_of_time() {
        return Err(error);
    }
    if !limiter.admit() {
        return Err(FetchError::BudgetSpent {
            url: url.to_owned(),
        });
    }
    limiter.acquire().await;
    // The turn may come late (the source held off, a slow rate): not past the deadline.
    out_of_time().map_or(Ok(()), Err)
}

/// Sends the request once and reads and parses its answer.
async fn attempt_once<R, T, P>(
    client: &reqwest::Client,
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    request: &R,
    parse: &P,
    url: &str,
    attempt: u32,
) -> Result<Attempt<T>, FetchError>
where
    R: PageRequest,
    P: Fn(&[u8]) -> Result<T, SourceError>,
{
    let retry = |why: String| Attempt::Retry {
        why,
        wait: backoff(policy, attempt),
    };
    let response = match request.build(client).timeout(policy.timeout).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Ok(retry("timed out".to_owned())),
        Err(e) => return Ok(retry(e.to_string())),
    };
    let status = response.status();
    if status.as_u16() == 429 || status.is_server_error() {
        return refused_for_now(limiter, policy, &response, url, attempt).await;
    }
    if status.is_redirection() {
        // The same request would be sent the same way: not retried.
        return Err(FetchError::Redirected {
            url: url.to_owned(),
            status: status.as_u16(),
            location: location(response.headers()),
        });
    }
    let body = match read_body(policy, response, url).await? {
        Ok(body) => body,
        Err(why) => return Ok(retry(why)),
    };
    if !status.is_success() {
        return Err(FetchError::Refused {
            url: url.to_owned(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
        });
    }
    match parse(&body) {
        Ok(value) => Ok(Attempt::Parsed(value, body)),
        Err(e @ SourceError::NotJson { .. }) => Ok(retry(e.to_string())),
        // A page that parses to no listing: the same request brings the same page.
        Err(SourceError::NoListings { detail, .. }) => Err(FetchError::LayoutDrift {
            url: url.to_owned(),
            error: detail,
        }),
        Err(e) => Err(FetchError::NotThatApi {
            url: url.to_owned(),
            error: e.to_string(),
        }),
    }
}

/// A 429 or a 5xx: asked again after its Retry-After (an error past
/// [`HttpPolicy::max_retry_after`]) or a backoff; a 429 or a 503 holds off the whole source.
async fn refused_for_now<T>(
    limiter: &RateLimiter,
    policy: &HttpPolicy,
    response: &reqwest::Response,
    url: &str,
    attempt: u32,
) -> Result<Attempt<T>, FetchError> {
    let status = response.status();
    let wait = match retry_after(response.headers(), Utc::now()) {
        Some(w) if w > policy.max_retry_after => {
            return Err(FetchError::RetryAfterTooLong {
                url: url.to_owned(),
                secs: w.as_secs(),
            });
        }
        Some(w) => w,
        None => backoff(policy, attempt),
    };
    // Too many requests, or unavailable: every market of the source waits, not only
    // this one (the others' requests would be refused too, each charged and retried).
    if status.as_u16() == 429 || status.as_u16() == 503 {
        limiter.hold_off(wait).await;
    }
    Ok(Attempt::Retry {
        why: format!("HTTP {status}"),
        wait,
    })
}

/// The answer's body, within the policy's size and time: `Err(why)` when reading it failed
/// in a way worth a retry; an error when it is too large.
async fn read_body(
    policy: &HttpPolicy,
    response: reqwest::Response,
    url: &str,
) -> Result<Result<Vec<u8>, String>, FetchError> {
    match tokio::time::timeout(policy.timeout, read_capped(response, policy.max_body_bytes)).await {
        Ok(Ok(body)) => Ok(Ok(body)),
        // The same request would bring the same body: not retried.
        Ok(Err(BodyError::TooLarge)) => Err(FetchError::TooLarge {
            url: url.to_owned(),
            limit: policy.max_body_bytes,
        }),
        Ok(Err(BodyError::Transport(e))) => Ok(Err(format!("reading the body: {e}"))),
        Err(_) => Ok(Err("timed out reading the body".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn reads_retry_after_as_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:10 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(10)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn the_limiter_says_how_many_requests_fit_a_time() {
        let limiter = RateLimiter::per_second(0.2);
        assert_eq!(limiter.requests_within(Duration::from_secs(150)), 30);
        assert_eq!(limiter.requests_within(Duration::from_secs(4)), 0);
        let unspaced = RateLimiter::per_second(0.0);
        assert_eq!(unspaced.requests_within(Duration::from_secs(1)), u64::MAX);
    }

    #[test]
    fn the_limiter_admits_no_more_than_its_allowance() {
        let limiter = RateLimiter::per_second(0.0);
        assert!((0..1_000).all(|_| limiter.admit()), "no budget: no limit");
        limiter.start_run(Some(2));
        assert!(limiter.admit() && limiter.admit());
        assert!(!limiter.admit(), "the third request is over the allowance");
        assert_eq!(limiter.admitted(), 2);
        limiter.start_run(Some(0));
        assert!(!limiter.admit());
        assert_eq!(limiter.admitted(), 0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_limiter_spaces_requests() {
        let limiter = RateLimiter::per_second(10.0);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(400),
            "{:?}",
            start.elapsed()
        );
    }

    /// A GET of a URL, nothing more.
    struct Plain(String);

    impl PageRequest for Plain {
        fn build(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
            client.get(&self.0)
        }
        fn url(&self) -> String {
            self.0.clone()
        }
    }

    /// An API answering every request 503 with `Retry-After: 1`; its URL and request count.
    async fn unavailable() -> (String, std::sync::Arc<AtomicU64>) {
        let requests = std::sync::Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        let router = axum::Router::new().route(
            "/page",
            axum::routing::get(move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "1")],
                        "busy",
                    )
                }
            }),
        );
        (
            format!("{}/page", crate::serve_on_loopback(router).await),
            requests,
        )
    }

    /// A poll run's reads end by its deadline: no wait runs past it (before, a page kept
    /// retrying, Retry-After after Retry-After, past the function's timeout), and no wait
    /// follows the last attempt.
    #[tokio::test]
    async fn no_retry_waits_past_the_deadline_or_after_the_last_attempt() {
        let (url, requests) = unavailable().await;
        let client = http_client(Duration::from_secs(2)).expect("client");
        let limiter = RateLimiter::per_second(0.0);
        let parse = |_: &[u8]| -> Result<(), SourceError> { Ok(()) };
        let started = Instant::now();
        let policy = HttpPolicy {
            deadline: Some(started + Duration::from_millis(1_500)),
            ..HttpPolicy::default()
        };
        let stopped = fetch_parsed(&client, &limiter, &policy, &Plain(url.clone()), parse).await;
        // Attempts at 0 s and 1 s; the next would wait past 1.5 s.
        assert!(
            matches!(stopped, Err(FetchError::OutOfTime { attempts: 2, .. })),
            "{stopped:?}"
        );
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        assert!(started.elapsed() < Duration::from_millis(1_500));
        // The last attempt: given up at once, not after its Retry-After (a limiter of its
        // own: the one above holds the source back a second).
        let started = Instant::now();
        let once = HttpPolicy {
            max_attempts: 1,
            ..HttpPolicy::default()
        };
        let limiter = RateLimiter::per_second(0.0);
        let exhausted = fetch_parsed(&client, &limiter, &once, &Plain(url), parse).await;
        assert!(
            matches!(exhausted, Err(FetchError::Exhausted { attempts: 1, .. })),
            "{exhausted:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(900));
    }

    /// A 503 with Retry-After holds back the source's next request, whichever market's:
    /// before, only the request told waited, and the other markets' requests met the same
    /// answer, each charged to the budget and retried.
    #[tokio::test]
    async fn a_source_that_asks_to_wait_holds_every_market_back() {
        let (url, requests) = unavailable().await;
        let client = http_client(Duration::from_secs(2)).expect("client");
        let limiter = RateLimiter::per_second(0.0);
        let parse = |_: &[u8]| -> Result<(), SourceError> { Ok(()) };
        let once = HttpPolicy {
            max_attempts: 1,
            ..HttpPolicy::default()
        };
        let first = fetch_parsed(&client, &limiter, &once, &Plain(url.clone()), parse).await;
        assert!(
            matches!(first, Err(FetchError::Exhausted { .. })),
            "{first:?}"
        );
        // Another market's request, right after: it waits out the Retry-After.
        let started = Instant::now();
        let second = fetch_parsed(&client, &limiter, &once, &Plain(url), parse).await;
        assert!(
            matches!(second, Err(FetchError::Exhausted { .. })),
            "{second:?}"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(requests.load(Ordering::SeqCst), 2);
    }

    /// A turn that comes past the deadline sends nothing.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn no_request_goes_out_past_the_deadline_after_waiting_its_turn() {
        let limiter = RateLimiter::per_second(0.0);
        limiter.hold_off(Duration::from_secs(10)).await;
        let client = http_client(Duration::from_secs(2)).expect("client");
        let policy = HttpPolicy {
            deadline: Some(Instant::now() + Duration::from_secs(5)),
            ..HttpPolicy::default()
        };
        let parse = |_: &[u8]| -> Result<(), SourceError> { Ok(()) };
        // Nothing listens there: a request sent would fail otherwise than out of time.
        let stopped = fetch_parsed(
            &client,
            &limiter,
            &policy,
            &Plain("http://127.0.0.1:9/x".into()),
            parse,
        )
        .await;
        assert!(
            matches!(stopped, Err(FetchError::OutOfTime { attempts: 0, .. })),
            "{stopped:?}"
        );
    }
}
