//! The raw layer: every API page the poller normalised, kept as the API sent it (gzipped) in
//! the lake bucket, so that a parser fix can be replayed over history (`realty replay-raw`,
//! [`super::raw_replay`]). Layout and contents: `docs/lake.md`.
//!
//! Keeping a page never holds up the live events: a page over [`MAX_RAW_PAGE_BYTES`] is not
//! kept (counted as oversized), a write that fails or takes longer than [`ARCHIVE_TIMEOUT`] is
//! counted and logged, and after one failure the rest of that market read is not tried.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use realty_model::listing::Offer;
use realty_model::markets::SourceKind;
use realty_model::ports::PortError;
use realty_sources::{Page, SourceError, normalize_file};

/// Prefix of the raw layer in the lake bucket (the poller's IAM policy names it, and the
/// bucket's lifecycle rule expires it after `RawRetentionDays`).
pub const RAW_PREFIX: &str = "raw/";

/// Largest page body kept (uncompressed). Real pages are a few MB (a RESO page of 1,000
/// records); a larger one is not kept whole, nor cut: it is counted as oversized and logged.
pub const MAX_RAW_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Longest wait for one page to be written before it is counted as failed.
pub const ARCHIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest reason kept in a log line about a page not kept.
const MAX_REASON_CHARS: usize = 200;

/// Where the raw pages are kept (an S3 prefix in AWS).
pub trait RawPageStore {
    /// Writes one gzipped page under `key` with its `metadata` (name, value).
    fn put(
        &self,
        key: &str,
        gzipped: Vec<u8>,
        metadata: &[(&'static str, String)],
    ) -> impl Future<Output = Result<(), PortError>>;
}

/// No raw layer (tests and tools that read no API).
impl RawPageStore for () {
    async fn put(
        &self,
        _: &str,
        _: Vec<u8>,
        _: &[(&'static str, String)],
    ) -> Result<(), PortError> {
        Ok(())
    }
}

/// One kept page: which read it belongs to and when it was fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPage {
    pub source: SourceKind,
    /// City-state key (`nashville-tn`).
    pub market: String,
    pub offer: Offer,
    /// The poll run (`poll-2026-11-24T02:55:00.000Z`).
    pub poll_id: String,
    /// The time the parser stamped the page's listings with (the poll's): a replay parses
    /// the page again with it, so an unchanged parser gives the very same listings.
    pub observed_at: DateTime<Utc>,
    /// When the page arrived; its UTC day is the `dt` partition.
    pub fetched_at: DateTime<Utc>,
    /// 1-based, in fetch order within the market's read (bands, pages and re-reads).
    pub page: u32,
}

/// A kept page whose key or metadata cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawPageError {
    #[error("raw page metadata: {field} is missing")]
    Missing { field: &'static str },
    #[error("raw page metadata: {field} is {value:?}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Metadata names (S3 user metadata: `x-amz-meta-<name>`).
const SOURCE: &str = "source";
const MARKET: &str = "market";
const OFFER: &str = "offer";
const POLL_ID: &str = "poll-id";
const OBSERVED_AT: &str = "observed-at";
const FETCHED_AT: &str = "fetched-at";
const PAGE: &str = "page";
const RAW_BYTES: &str = "raw-bytes";

fn offer_name(offer: Offer) -> &'static str {
    match offer {
        Offer::Sale => "sale",
        Offer::Rent => "rent",
    }
}

/// A market key as a key segment: anything but lowercase letters, digits and `-` becomes
/// `_` (market keys are checked elsewhere; this only keeps the key's shape whatever comes).
fn key_segment(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `raw/source=<source>/dt=<day>/` (with `source`), or the whole raw layer's prefix of
/// nothing narrower; what `realty replay-raw` lists for one day.
pub fn day_prefix(source: SourceKind, day: NaiveDate) -> String {
    format!(
        "{RAW_PREFIX}source={}/dt={}/",
        source.as_str(),
        day.format("%Y-%m-%d")
    )
}

impl RawPage {
    /// `raw/source=zillow/dt=2026-11-24/nashville-tn/sale/20261124T025500.000Z-0001.json.gz`:
    /// partitioned by source and fetch day (Hive style), then by market and offer, named by
    /// the poll (its time without `:`, which Hadoop paths refuse) and the page.
    pub fn key(&self) -> String {
        format!(
            "{}{}/{}/{}-{:04}.json.gz",
            day_prefix(self.source, self.fetched_at.date_naive()),
            key_segment(&self.market),
            offer_name(self.offer),
            self.observed_at.format("%Y%m%dT%H%M%S%.3fZ"),
            self.page
        )
    }

    /// The object's metadata: everything needed to parse it again, and its size unzipped.
    pub fn metadata(&self, raw_bytes: usize) -> Vec<(&'static str, String)> {
        vec![
            (SOURCE, self.source.as_str().to_owned()),
            (MARKET, self.market.clone()),
            (OFFER, offer_name(self.offer).to_owned()),
            (POLL_ID, self.poll_id.clone()),
            // To the nanosecond: the state keeps the poll's time as it was, and a replayed
            // listing a nanosecond older than it would read as superseded.
            (
                OBSERVED_AT,
                self.observed_at
                    .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            ),
            (
                FETCHED_AT,
                self.fetched_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
            (PAGE, self.page.to_string()),
            (RAW_BYTES, raw_bytes.to_string()),
        ]
    }

    /// Reads [`RawPage::metadata`] back (S3 gives metadata names in lowercase).
    pub fn from_metadata(metadata: &HashMap<String, String>) -> Result<Self, RawPageError> {
        let get = |field: &'static str| {
            metadata
                .get(field)
                .map(String::as_str)
                .ok_or(RawPageError::Missing { field })
        };
        let invalid = |field: &'static str, value: &str, reason: String| RawPageError::Invalid {
            field,
            value: value.chars().take(MAX_REASON_CHARS).collect(),
            reason,
        };
        let time = |field: &'static str| -> Result<DateTime<Utc>, RawPageError> {
            let value = get(field)?;
            DateTime::parse_from_rfc3339(value)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| invalid(field, value, e.to_string()))
        };
        let source = get(SOURCE)?;
        let offer = get(OFFER)?;
        let page = get(PAGE)?;
        Ok(Self {
            source: source
                .parse()
                .map_err(|e: realty_model::markets::UnknownSource| {
                    invalid(SOURCE, source, e.to_string())
                })?,
            market: get(MARKET)?.to_owned(),
            offer: match offer {
                "sale" => Offer::Sale,
                "rent" => Offer::Rent,
                _ => return Err(invalid(OFFER, offer, "expected sale or rent".into())),
            },
            poll_id: get(POLL_ID)?.to_owned(),
            observed_at: time(OBSERVED_AT)?,
            fetched_at: time(FETCHED_AT)?,
            page: page
                .parse()
                .map_err(|e: std::num::ParseIntError| invalid(PAGE, page, e.to_string()))?,
        })
    }

    /// Parses the kept page again with today's parser, as the poll parsed it then (same
    /// source, same `observed_at`). The gzip is decompressed within the sources' bound.
    pub fn normalise(&self, gzipped: &[u8]) -> Result<Page, RawPageError> {
        Ok(normalize_file(self.source, gzipped, self.observed_at)?)
    }
}

/// gzip of `body` (default level: JSON pages shrink about tenfold).
pub fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::default(),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

/// What became of one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    Archived,
    /// Over [`MAX_RAW_PAGE_BYTES`]: not kept.
    Oversized,
    /// The write failed, timed out, or an earlier one of the same read did.
    Failed,
    /// No raw layer.
    Off,
}

/// Keeps the pages of one market read.
pub trait KeepPages {
    fn keep(&self, body: &[u8]) -> impl Future<Output = Kept>;
}

/// No raw layer.
impl KeepPages for () {
    async fn keep(&self, _: &[u8]) -> Kept {
        Kept::Off
    }
}

/// The raw layer of one market read: numbers its pages and writes each to `store`.
pub struct MarketPages<'a, R> {
    store: &'a R,
    source: SourceKind,
    market: &'a str,
    offer: Offer,
    poll_id: &'a str,
    observed_at: DateTime<Utc>,
    next_page: AtomicU32,
    /// A write failed: the read's other pages are not tried (one timeout per read at most).
    broken: AtomicBool,
}

impl<'a, R: RawPageStore> MarketPages<'a, R> {
    pub fn new(
        store: &'a R,
        source: SourceKind,
        market: &'a str,
        offer: Offer,
        poll_id: &'a str,
        observed_at: DateTime<Utc>,
    ) -> Self {
        Self {
            store,
            source,
            market,
            offer,
            poll_id,
            observed_at,
            next_page: AtomicU32::new(1),
            broken: AtomicBool::new(false),
        }
    }

    fn page(&self, fetched_at: DateTime<Utc>) -> RawPage {
        RawPage {
            source: self.source,
            market: self.market.to_owned(),
            offer: self.offer,
            poll_id: self.poll_id.to_owned(),
            observed_at: self.observed_at,
            fetched_at,
            page: self.next_page.fetch_add(1, Ordering::Relaxed),
        }
    }
}

fn short(reason: &str) -> String {
    reason.chars().take(MAX_REASON_CHARS).collect()
}

impl<R: RawPageStore> KeepPages for MarketPages<'_, R> {
    async fn keep(&self, body: &[u8]) -> Kept {
        let page = self.page(Utc::now());
        let key = page.key();
        if body.len() > MAX_RAW_PAGE_BYTES {
            tracing::warn!(
                key,
                bytes = body.len(),
                limit = MAX_RAW_PAGE_BYTES,
                "raw page over the size bound: not kept"
            );
            return Kept::Oversized;
        }
        if self.broken.load(Ordering::Relaxed) {
            return Kept::Failed;
        }
        let outcome = match gzip(body) {
            Ok(gzipped) => {
                let metadata = page.metadata(body.len());
                match tokio::time::timeout(
                    ARCHIVE_TIMEOUT,
                    self.store.put(&key, gzipped, &metadata),
                )
                .await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("timed out after {} s", ARCHIVE_TIMEOUT.as_secs())),
                }
            }
            Err(e) => Err(format!("gzip: {e}")),
        };
        match outcome {
            Ok(()) => Kept::Archived,
            Err(reason) => {
                self.broken.store(true, Ordering::Relaxed);
                tracing::warn!(
                    key,
                    reason = short(&reason),
                    "raw page not kept; the live events go on (the read's later pages are not tried)"
                );
                Kept::Failed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::sync::Mutex;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn page() -> RawPage {
        RawPage {
            source: SourceKind::Zillow,
            market: "nashville-tn".into(),
            offer: Offer::Rent,
            poll_id: "poll-2026-11-23T23:59:59.900Z".into(),
            observed_at: at("2026-11-23T23:59:59.900123456Z"),
            fetched_at: at("2026-11-24T00:00:01.250Z"),
            page: 3,
        }
    }

    #[test]
    fn the_key_is_partitioned_by_source_and_fetch_day() {
        // Fetched just after midnight for a poll that began before it: the fetch's day.
        assert_eq!(
            page().key(),
            "raw/source=zillow/dt=2026-11-24/nashville-tn/rent/20261123T235959.900Z-0003.json.gz"
        );
        let odd = RawPage {
            market: "../Evil Market".into(),
            ..page()
        };
        // Nothing of it climbs out of its segment.
        assert!(
            odd.key()
                .starts_with("raw/source=zillow/dt=2026-11-24/____vil__arket/rent/"),
            "{}",
            odd.key()
        );
        assert_eq!(
            day_prefix(SourceKind::Reso, at("2026-01-02T03:04:05Z").date_naive()),
            "raw/source=reso/dt=2026-01-02/"
        );
    }

    #[test]
    fn metadata_reads_back_into_the_same_page() {
        let page = page();
        let metadata: HashMap<String, String> = page
            .metadata(1234)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(metadata["raw-bytes"], "1234");
        assert_eq!(metadata["poll-id"], "poll-2026-11-23T23:59:59.900Z");
        assert_eq!(RawPage::from_metadata(&metadata), Ok(page));
        let mut broken = metadata.clone();
        broken.remove("observed-at");
        assert_eq!(
            RawPage::from_metadata(&broken),
            Err(RawPageError::Missing {
                field: "observed-at"
            })
        );
        broken = metadata;
        broken.insert("offer".into(), "lease".into());
        assert!(RawPage::from_metadata(&broken).is_err());
    }

    /// One write: key, gzipped body, metadata.
    type Written = (String, Vec<u8>, Vec<(&'static str, String)>);

    /// Keeps what it is given, or fails every write.
    #[derive(Default)]
    struct Store {
        kept: Mutex<Vec<Written>>,
        failing: bool,
    }

    impl RawPageStore for Store {
        async fn put(
            &self,
            key: &str,
            gzipped: Vec<u8>,
            metadata: &[(&'static str, String)],
        ) -> Result<(), PortError> {
            if self.failing {
                return Err(PortError::new("PutObject", "AccessDenied"));
            }
            self.kept
                .lock()
                .expect("lock")
                .push((key.to_owned(), gzipped, metadata.to_vec()));
            Ok(())
        }
    }

    fn pages(store: &Store) -> MarketPages<'_, Store> {
        MarketPages::new(
            store,
            SourceKind::Zillow,
            "nashville-tn",
            Offer::Sale,
            "poll-2026-11-24T02:55:00.000Z",
            at("2026-11-24T02:55:00Z"),
        )
    }

    #[tokio::test]
    async fn pages_are_kept_gzipped_and_numbered_in_fetch_order() {
        let store = Store::default();
        let pages = pages(&store);
        assert_eq!(pages.keep(br#"{"props": []}"#).await, Kept::Archived);
        assert_eq!(pages.keep(b"second").await, Kept::Archived);
        let kept = store.kept.lock().expect("lock");
        assert!(
            kept[0]
                .0
                .ends_with("/nashville-tn/sale/20261124T025500.000Z-0001.json.gz")
        );
        assert!(kept[1].0.ends_with("-0002.json.gz"));
        let mut body = Vec::new();
        flate2::read::GzDecoder::new(kept[1].1.as_slice())
            .read_to_end(&mut body)
            .expect("gzip");
        assert_eq!(body, b"second");
        assert!(kept[1].2.contains(&("page", "2".into())));
    }

    #[tokio::test]
    async fn a_page_at_the_bound_is_kept_and_one_past_it_is_not() {
        let store = Store::default();
        let pages = pages(&store);
        let at_bound = vec![b' '; MAX_RAW_PAGE_BYTES];
        assert_eq!(pages.keep(&at_bound).await, Kept::Archived);
        let past = vec![b' '; MAX_RAW_PAGE_BYTES + 1];
        assert_eq!(pages.keep(&past).await, Kept::Oversized);
        assert_eq!(store.kept.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn after_a_failed_write_the_read_goes_on_without_trying_again() {
        let store = Store {
            failing: true,
            ..Store::default()
        };
        let pages = pages(&store);
        assert_eq!(pages.keep(b"one").await, Kept::Failed);
        assert_eq!(pages.keep(b"two").await, Kept::Failed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_hangs_is_counted_failed_after_the_timeout() {
        struct Hanging;
        impl RawPageStore for Hanging {
            async fn put(
                &self,
                _: &str,
                _: Vec<u8>,
                _: &[(&'static str, String)],
            ) -> Result<(), PortError> {
                futures::future::pending().await
            }
        }
        let pages = MarketPages::new(
            &Hanging,
            SourceKind::Zillow,
            "nashville-tn",
            Offer::Sale,
            "p",
            Utc::now(),
        );
        let started = tokio::time::Instant::now();
        assert_eq!(pages.keep(b"page").await, Kept::Failed);
        assert_eq!(started.elapsed(), ARCHIVE_TIMEOUT);
    }

    #[test]
    fn a_kept_page_parses_again_as_it_did() {
        let fixture = include_bytes!(
            "../../sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
        );
        let page = RawPage {
            offer: Offer::Sale,
            ..page()
        };
        let then = normalize_file(SourceKind::Zillow, fixture, page.observed_at).expect("page");
        let again = page.normalise(&gzip(fixture).expect("gzip")).expect("page");
        assert_eq!(again, then);
    }
}
