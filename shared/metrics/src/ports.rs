//! What the metrics function needs from the outside world, as small traits. The AWS
//! adapters live in `realty_aws::adapters`; [`super::memory`] holds in-memory ones for tests
//! and benchmarks.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::hash::Hasher;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::aggregate::history::Trends;
use super::aggregate::{MarketAggregate, MarketFigures};
use super::interest::InterestWrite;
use realty_model::ports::PortError;
use realty_model::state::{MAX_SEQUENCE_DIGITS, SequenceNumber};

/// Largest compressed journal body: the item's limit less room for its key attributes.
use realty_model::ports::MAX_ITEM_BYTES;
pub const MAX_JOURNAL_BODY_BYTES: usize = MAX_ITEM_BYTES - 4 * 1024;
/// Largest journal read back, uncompressed: a batch is at most Lambda's 6 MB payload of
/// base64 records, and its journal adds sequence numbers and per-market counts. A body that
/// inflates past this is not one this function wrote (DEFLATE and Zstandard can expand a
/// thousandfold).
pub const MAX_JOURNAL_JSON_BYTES: usize = 32 * 1024 * 1024;
/// A journal body that starts with these bytes is a Zstandard frame; one written before
/// journals were is raw DEFLATE, which cannot start so (a stored block's length check fails).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Zstandard level of the journal: level 1 compresses a batch's events smaller than DEFLATE's
/// level 6, and faster than its level 2 (the journal's size is its write units).
const JOURNAL_ZSTD_LEVEL: i32 = 1;
/// The largest window a journal's frame may ask of the reader (2^25 = 32 MiB, the journal's
/// own bound): a frame asking more is not one this function wrote.
const JOURNAL_ZSTD_WINDOW_LOG_MAX: u32 = 25;

thread_local! {
    /// One compression context a thread, made on first use: a context is a few hundred KB
    /// of tables, too much to build for every batch.
    static JOURNAL_COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// The largest record the data lake takes (Firehose's 1,000 KiB): an event's line must fit.
pub const MAX_ARCHIVE_RECORD_BYTES: usize = 1_000 * 1024;

/// A market's live aggregate as stored, with its concurrency and exactly-once bookkeeping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredAggregate {
    pub aggregate: MarketAggregate,
    /// Per shard, the highest sequence number whose contributions this item holds.
    pub watermarks: BTreeMap<String, SequenceNumber>,
    /// Per shard, how many contributions from it the item holds. Every write from a shard
    /// raises its count, so a batch tells whether its write of this item landed by comparing
    /// the count with the one it read before writing (see [`Journal`]); the count depends on
    /// the history only, not on how it was batched. `realty reconcile` counts its repairs
    /// under [`RECONCILE_ENTRY`].
    pub applied: BTreeMap<String, u64>,
    /// Digest of `watermarks` and `applied`, empty for an item not yet stored. Writes are
    /// conditional on it (optimistic locking: listings of one market arrive through every
    /// shard). Every write raises a count, so the digest names the item's version, and the
    /// same history gives the same digest however it was batched.
    pub revision: String,
}

/// One conditional write of a market's live item ([`MarketStore::put_aggregates`]).
#[derive(Debug, Clone, Copy)]
pub struct AggregatePut<'a> {
    pub key: &'a str,
    pub item: &'a StoredAggregate,
    /// The revision the item was computed from (empty: no item yet).
    pub expected_revision: &'a str,
}

/// The `applied` entry that counts `realty reconcile`'s repairs of an item.
pub const RECONCILE_ENTRY: &str = "reconcile";

impl StoredAggregate {
    /// The revision of an item holding `watermarks` and `applied` (FNV-1a, 64 bits, hex).
    pub fn revision_of(
        watermarks: &BTreeMap<String, SequenceNumber>,
        applied: &BTreeMap<String, u64>,
    ) -> String {
        let mut hash = fnv::FnvHasher::default();
        let mut feed = |bytes: &[u8]| hash.write(bytes);
        // Sequence numbers zero-padded to 128 digits, as the builds that stored them so wrote
        // them: the same history keeps the same revision across builds.
        const ZEROS: [u8; MAX_SEQUENCE_DIGITS] = [b'0'; MAX_SEQUENCE_DIGITS];
        for (shard, seq) in watermarks {
            let digits = seq.as_kinesis().as_bytes();
            feed(shard.as_bytes());
            feed(b"=");
            feed(&ZEROS[..MAX_SEQUENCE_DIGITS.saturating_sub(digits.len())]);
            feed(digits);
            feed(b";");
        }
        for (shard, count) in applied {
            feed(shard.as_bytes());
            feed(b"#");
            feed(count.to_string().as_bytes());
            feed(b";");
        }
        format!("{:016x}", hash.finish())
    }

    /// How many contributions from `shard` the item holds.
    pub fn applied_from(&self, shard: &str) -> u64 {
        self.applied.get(shard).copied().unwrap_or(0)
    }
}

/// A shard's write-ahead record of the batch it is applying (the *journal*), written before
/// any market or listing write of the batch and deleted after the last. A batch that Lambda
/// retries or discards part-way leaves it behind, and the next batch of the shard (or a
/// re-delivery) applies it before anything else: see `docs/metrics.md`, "Nothing partial
/// survives a discard". Written by [`encode_journal`], read by its `Deserialize`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Journal {
    pub shard: String,
    /// The batch's accepted events, in stream order, each with its sequence number.
    pub events: Vec<JournalEvent>,
    /// Per market the batch writes, how many contributions from this shard the market item
    /// held before the batch ([`StoredAggregate::applied_from`]): the item holds the batch's
    /// contributions exactly when its count differs, since only this shard's batches (one at
    /// a time) move it.
    pub applied_before: BTreeMap<String, u64>,
}

/// One event of a [`Journal`]: its sequence number and the event's JSON as the stream
/// carried it, embedded as is (neither re-encoded nor escaped into a string). Journals
/// written before held it as a JSON string; [`JournalEvent::json`] reads both.
#[derive(Debug, Clone, Deserialize)]
pub struct JournalEvent {
    pub sequence: SequenceNumber,
    pub event: Box<RawValue>,
}

impl JournalEvent {
    /// The event's JSON.
    pub fn json(&self) -> Result<Cow<'_, str>, PortError> {
        let raw = self.event.get();
        if raw.starts_with('"') {
            serde_json::from_str::<String>(raw)
                .map(Cow::Owned)
                .map_err(|e| PortError::new("decode journal event", e.to_string()))
        } else {
            Ok(Cow::Borrowed(raw))
        }
    }
}

impl PartialEq for JournalEvent {
    fn eq(&self, other: &Self) -> bool {
        self.sequence == other.sequence && self.event.get() == other.event.get()
    }
}

/// One event of a journal being written: its sequence number and its record's JSON as the
/// stream carried it, borrowed from the record and embedded as is. The record decoded as an
/// event (serde_json's strict parse, which reads every value through, those of fields it does
/// not know too) and is UTF-8, so the text is one JSON value with at most whitespace around
/// it: the journal is JSON without parsing or copying each event again.
#[derive(Debug, Clone)]
pub struct JournalEntry<'a> {
    pub sequence: SequenceNumber,
    pub json: &'a str,
}

impl Journal {
    /// The journal as stored (the batch writes its entries with [`encode_journal`]; the
    /// tests and the bench encode one read back).
    pub fn encode(&self) -> Result<EncodedJournal, PortError> {
        let events: Vec<JournalEntry<'_>> = self
            .events
            .iter()
            .map(|e| JournalEntry {
                sequence: e.sequence.clone(),
                json: e.event.get(),
            })
            .collect();
        encode_journal(&self.shard, &events, &self.applied_before)
    }
}

impl Journal {
    /// Reads a stored journal back (a Zstandard frame, or the raw DEFLATE of journals written
    /// before).
    pub fn decode(encoded: &EncodedJournal) -> Result<Self, PortError> {
        use std::io::Read as _;
        let body = encoded.body.as_slice();
        let mut json = Vec::with_capacity(body.len() * 8);
        let read = if body.starts_with(&ZSTD_MAGIC) {
            zstd::stream::read::Decoder::with_buffer(body).and_then(|mut decoder| {
                decoder.window_log_max(JOURNAL_ZSTD_WINDOW_LOG_MAX)?;
                decoder
                    .take(MAX_JOURNAL_JSON_BYTES as u64 + 1)
                    .read_to_end(&mut json)
            })
        } else {
            flate2::read::DeflateDecoder::new(body)
                .take(MAX_JOURNAL_JSON_BYTES as u64 + 1)
                .read_to_end(&mut json)
        };
        read.map_err(|e| PortError::new("decode journal", e.to_string()))?;
        if json.len() > MAX_JOURNAL_JSON_BYTES {
            return Err(PortError::new(
                "decode journal",
                format!("inflates past {MAX_JOURNAL_JSON_BYTES} bytes"),
            ));
        }
        serde_json::from_slice(&json).map_err(|e| PortError::new("decode journal", e.to_string()))
    }
}

/// The stored form of the [`Journal`] of `shard` holding `events` and `applied_before`: its
/// JSON (the events' text as the records carried it) as a Zstandard frame.
pub fn encode_journal(
    shard: &str,
    events: &[JournalEntry<'_>],
    applied_before: &BTreeMap<String, u64>,
) -> Result<EncodedJournal, PortError> {
    let failed = |e: serde_json::Error| PortError::new("encode journal", e.to_string());
    // Sized up front: the events' JSON is most of it, and a buffer grown by doubling copies
    // it again at every step.
    let capacity = events
        .iter()
        .map(|e| e.json.len() + e.sequence.as_kinesis().len() + 32)
        .sum::<usize>()
        + applied_before.keys().map(|k| k.len() + 32).sum::<usize>()
        + shard.len()
        + 64;
    // `Journal`'s fields, as its `Deserialize` reads them back.
    let mut json = Vec::with_capacity(capacity);
    json.extend_from_slice(br#"{"shard":"#);
    serde_json::to_writer(&mut json, shard).map_err(failed)?;
    json.extend_from_slice(br#","events":["#);
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(br#"{"sequence":"#);
        serde_json::to_writer(&mut json, &event.sequence).map_err(failed)?;
        json.extend_from_slice(br#","event":"#);
        json.extend_from_slice(event.json.as_bytes());
        json.push(b'}');
    }
    json.extend_from_slice(br#"],"applied_before":"#);
    serde_json::to_writer(&mut json, applied_before).map_err(failed)?;
    json.push(b'}');
    let body = JOURNAL_COMPRESSOR
        .with(|cell| {
            let mut cell = cell.borrow_mut();
            let compressor = match cell.as_mut() {
                Some(compressor) => compressor,
                None => cell.insert(zstd::bulk::Compressor::new(JOURNAL_ZSTD_LEVEL)?),
            };
            compressor.compress(&json)
        })
        .map_err(|e| PortError::new("encode journal", e.to_string()))?;
    Ok(EncodedJournal {
        shard: shard.to_owned(),
        body,
    })
}

/// A journal as stored: its JSON as a Zstandard frame (events of one batch compress about
/// fifteenfold, so a 1,000-record batch's journal is one item well under DynamoDB's 400 KB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedJournal {
    pub shard: String,
    pub body: Vec<u8>,
}

/// The period a snapshot stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// The hour starting at this instant.
    Hour(DateTime<Utc>),
    Day(NaiveDate),
}

/// Whole hours since the epoch (negative before it), the hour [`Period::hour_of`] truncates
/// to: UTC has no leap seconds in chrono's arithmetic, so a day is 24 of them. Cheap enough
/// to run for every contribution (building the hour's date and time costs far more).
pub fn hours_since_epoch(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(3600)
}

impl Period {
    pub fn hour_of(t: DateTime<Utc>) -> Self {
        let hour = DateTime::from_timestamp(hours_since_epoch(t) * 3600, 0).unwrap_or(t);
        Self::Hour(hour)
    }

    /// The sort key of the snapshot item: `H#2026-11-21T18`, `D#2026-11-21`. Hourly and daily
    /// snapshots of a market each come back, in time order, from one Query.
    pub fn sort_key(&self) -> String {
        let (prefix, date, hour) = match self {
            Self::Hour(t) => ("H#", t.date_naive(), Some(t.hour())),
            Self::Day(d) => ("D#", *d, None),
        };
        // The fields written directly: chrono's `format` parses its pattern at every call,
        // and this runs for every snapshot written. Years of other than four digits take
        // chrono's way (a sign and more digits), which only a corrupt item could hold.
        if !(0..=9999).contains(&date.year()) {
            return match self {
                Self::Hour(t) => format!("H#{}", t.format("%Y-%m-%dT%H")),
                Self::Day(d) => format!("D#{}", d.format("%Y-%m-%d")),
            };
        }
        // Digit by digit: `write!` goes through the formatting machinery for each number,
        // which was most of this function's cost.
        let mut key = String::with_capacity("H#2026-11-21T18".len());
        key.push_str(prefix);
        push_zero_padded(&mut key, date.year().unsigned_abs(), 4);
        key.push('-');
        push_zero_padded(&mut key, date.month(), 2);
        key.push('-');
        push_zero_padded(&mut key, date.day(), 2);
        if let Some(hour) = hour {
            key.push('T');
            push_zero_padded(&mut key, hour, 2);
        }
        key
    }
}

/// Pushes the last `width` decimal digits of `value`, zero-padded.
fn push_zero_padded(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u32.pow(place) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// A market's figures at the end of a period (the latest write within it wins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub scope_key: String,
    pub period: Period,
    pub figures: MarketFigures,
    /// A day's moving averages and trends as of its end (`None` for hours).
    pub trends: Option<Trends>,
}

/// A record that can never be processed, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoisonRecord {
    pub shard: String,
    pub sequence_number: String,
    /// Short machine-readable reason (`malformed`, `unsupported_schema_version`, ...).
    pub reason_kind: String,
    pub reason: String,
    pub data_bytes: usize,
    /// The record's first bytes, lossily as UTF-8 (records can be up to 1 MB; the sink is
    /// for diagnosis, the stream still has the record for its retention period).
    pub data_prefix: String,
}

/// The market table.
pub trait MarketStore {
    fn get_aggregates(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, StoredAggregate>, PortError>>;
    /// Writes each put's item if its stored revision is still the put's `expected_revision`
    /// (empty: no item yet); the answer says, per put in order, whether it landed (`false`:
    /// another writer got there first). The puts are independent: on an error, any of them
    /// may have landed (DynamoDB writes them in transactions of up to 100, see the adapter).
    fn put_aggregates(
        &self,
        puts: &[AggregatePut<'_>],
    ) -> impl Future<Output = Result<Vec<bool>, PortError>>;
    /// Taken whole: a store that keeps them (the in-memory one) keeps them, not copies.
    fn put_snapshots(
        &self,
        snapshots: Vec<Snapshot>,
    ) -> impl Future<Output = Result<(), PortError>>;
    /// Puts and deletes entries of the markets' listings of interest ([`super::interest`]).
    /// Taken whole: each entry moves into the item written, not copied.
    fn write_interest(
        &self,
        writes: Vec<InterestWrite>,
    ) -> impl Future<Output = Result<(), PortError>>;
    /// The shard's journal, if a batch left one.
    fn get_journal(
        &self,
        shard: &str,
    ) -> impl Future<Output = Result<Option<EncodedJournal>, PortError>>;
    /// Writes the shard's journal unless the shard has one already (a batch it left
    /// part-way), which is answered instead and left as it is: one call where a read and a
    /// write took two.
    fn put_journal(
        &self,
        journal: &EncodedJournal,
    ) -> impl Future<Output = Result<Option<EncodedJournal>, PortError>>;
    fn delete_journal(&self, shard: &str) -> impl Future<Output = Result<(), PortError>>;
}

/// The data lake (Firehose): one JSON line per accepted event (lines are newline-terminated;
/// the adapter may pack several into one record).
pub trait EventArchive {
    fn put_lines(&self, lines: &[Vec<u8>]) -> impl Future<Output = Result<(), PortError>>;
}

/// Where poison records go.
pub trait PoisonSink {
    fn send(&self, records: &[PoisonRecord]) -> impl Future<Output = Result<(), PortError>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Sort keys are stored: every period must be named as chrono's `format` named it.
    #[test]
    fn period_sort_keys_are_chrono_formats_of_the_period() {
        let days = [
            NaiveDate::MIN,
            NaiveDate::from_ymd_opt(-1, 12, 31).unwrap(),
            NaiveDate::from_ymd_opt(0, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(7, 3, 9).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
            NaiveDate::from_ymd_opt(9999, 12, 31).unwrap(),
            NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap(),
            NaiveDate::MAX,
        ];
        for day in days {
            assert_eq!(
                Period::Day(day).sort_key(),
                format!("D#{}", day.format("%Y-%m-%d"))
            );
            for hour in [0, 9, 10, 23] {
                let t = day.and_hms_opt(hour, 0, 0).unwrap().and_utc();
                assert_eq!(
                    Period::Hour(t).sort_key(),
                    format!("H#{}", t.format("%Y-%m-%dT%H"))
                );
            }
        }
        assert_eq!(
            Period::hour_of(Utc.with_ymd_and_hms(2026, 11, 21, 18, 42, 7).unwrap()).sort_key(),
            "H#2026-11-21T18"
        );
    }

    /// Revisions are stored: a build must name an item's version as the builds before it did.
    #[test]
    fn revisions_are_fnv_1a_of_the_bookkeeping_as_every_build_wrote_them() {
        assert_eq!(
            StoredAggregate::revision_of(&BTreeMap::new(), &BTreeMap::new()),
            "cbf29ce484222325"
        );
        let applied = BTreeMap::from([
            ("shardId-000000000000".to_owned(), 42),
            (RECONCILE_ENTRY.to_owned(), 3),
        ]);
        assert_eq!(
            StoredAggregate::revision_of(&BTreeMap::new(), &applied),
            "1e8be423b52a95fa"
        );
    }

    #[test]
    fn a_watermark_names_the_revision_as_when_sequence_numbers_were_stored_padded() {
        // FNV-1a of `shardId-000000000000=<the number zero-padded to 128 digits>;` then the
        // applied count, as the builds before 2026-11-24 fed it.
        let shard = "shardId-000000000000".to_owned();
        let watermarks = BTreeMap::from([(
            shard.clone(),
            SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898")
                .expect("digits"),
        )]);
        let applied = BTreeMap::from([(shard, 42)]);
        assert_eq!(
            StoredAggregate::revision_of(&watermarks, &applied),
            "2b829f3648d1b484"
        );
    }

    /// Valid journal JSON of exactly `json_bytes`: an empty journal, then spaces.
    fn padded_journal_json(json_bytes: usize) -> Vec<u8> {
        let mut json = br#"{"shard":"s","events":[],"applied_before":{}}"#.to_vec();
        json.resize(json_bytes, b' ');
        json
    }

    /// The raw DEFLATE body journals had before they were Zstandard frames.
    fn deflated(json: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
        encoder.write_all(json).expect("deflate");
        encoder.finish().expect("deflate")
    }

    fn stored(body: Vec<u8>) -> EncodedJournal {
        EncodedJournal {
            shard: "s".into(),
            body,
        }
    }

    fn a_journal() -> Journal {
        let sequence = |n: u64| SequenceNumber::parse(&n.to_string()).expect("digits");
        Journal {
            shard: "shardId-000000000001".into(),
            events: (1..=3)
                .map(|n| JournalEvent {
                    sequence: sequence(n),
                    event: RawValue::from_string(format!(r#"{{"event":{n},"kind":"new"}}"#))
                        .expect("JSON"),
                })
                .collect(),
            applied_before: BTreeMap::from([("city#nashville-tn#all".to_owned(), 7)]),
        }
    }

    #[test]
    fn a_journal_is_a_zstandard_frame_that_reads_back() {
        let journal = a_journal();
        let encoded = journal.encode().expect("encodes");
        assert!(encoded.body.starts_with(&ZSTD_MAGIC));
        assert_eq!(Journal::decode(&encoded).expect("decodes"), journal);
        // The thread's compressor is reused: the same journal gives the same bytes.
        assert_eq!(journal.encode().expect("encodes").body, encoded.body);
    }

    #[test]
    fn a_journal_written_before_as_deflate_still_reads() {
        let journal = a_journal();
        let frame = journal.encode().expect("encodes").body;
        let json = zstd::decode_all(frame.as_slice()).expect("a Zstandard frame");
        assert_eq!(
            Journal::decode(&stored(deflated(&json))).expect("decodes"),
            journal
        );
    }

    #[test]
    fn a_journal_inflating_past_its_bound_is_refused_and_one_at_it_reads() {
        let zstd = |json: &[u8]| zstd::bulk::compress(json, JOURNAL_ZSTD_LEVEL).expect("zstd");
        for (format, compress) in [
            ("zstd", &zstd as &dyn Fn(&[u8]) -> Vec<u8>),
            ("deflate", &deflated),
        ] {
            let at = Journal::decode(&stored(compress(&padded_journal_json(
                MAX_JOURNAL_JSON_BYTES,
            ))))
            .expect("at the bound");
            assert!(at.events.is_empty(), "{format}");
            let past = Journal::decode(&stored(compress(&padded_journal_json(
                MAX_JOURNAL_JSON_BYTES + 1,
            ))))
            .expect_err("past it");
            assert!(
                past.to_string().contains("inflates past"),
                "{format}: {past}"
            );
        }
    }

    #[test]
    fn a_corrupt_frame_or_one_asking_for_a_larger_window_is_an_error() {
        let mut body = a_journal().encode().expect("encodes").body;
        let middle = body.len() / 2;
        body[middle] ^= 0xff;
        body.truncate(body.len() - 2);
        assert!(Journal::decode(&stored(body)).is_err());
        // A frame whose window is 2^26 bytes, over what a journal reader allows (streamed
        // without its size, so the window stays as asked).
        let wide = |window_log: u32| {
            use std::io::Write as _;
            let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("context");
            encoder.window_log(window_log).expect("window");
            encoder.include_contentsize(false).expect("no content size");
            encoder
                .write_all(&padded_journal_json(1 << 20))
                .expect("zstd");
            stored(encoder.finish().expect("zstd"))
        };
        let error =
            Journal::decode(&wide(JOURNAL_ZSTD_WINDOW_LOG_MAX + 1)).expect_err("window too large");
        assert!(error.to_string().contains("decode journal"), "{error}");
        Journal::decode(&wide(JOURNAL_ZSTD_WINDOW_LOG_MAX)).expect("a window at the bound");
    }

    #[test]
    fn hour_of_truncates_to_the_hour() {
        let at = |y, mo, d, h, mi, s| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap();
        let t = at(2026, 11, 21, 18, 42, 15) + chrono::Duration::milliseconds(250);
        assert_eq!(Period::hour_of(t), Period::Hour(at(2026, 11, 21, 18, 0, 0)));
        assert_eq!(
            Period::hour_of(at(1969, 12, 31, 23, 59, 59)),
            Period::Hour(at(1969, 12, 31, 23, 0, 0))
        );
        assert_eq!(
            Period::hour_of(at(2026, 1, 1, 0, 0, 0)),
            Period::Hour(at(2026, 1, 1, 0, 0, 0))
        );
    }
}
