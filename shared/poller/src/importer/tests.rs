//! The import over in-memory ports, from the real Nashville page of Zillow.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::ports::{ImportObject, ImportObjects, ResultCondition, ResultWrite, StoredResult};
use super::*;
use crate::memory::{MemoryPollStates, MemoryStream};
use crate::replay::MAX_REPORTED_REJECTS;
use crate::replay::tests::{at, csv, nashville};
use realty_model::listing::{EventKind, Listing};

const LAKE: &str = "realty-lake";

/// The lake bucket, versioned: each key's current object (its version, `v1`, `v2`, ... as
/// it was dropped again, and its body), and the results written (each with its ETag, a
/// count of the writes, for the conditional writes).
#[derive(Default)]
struct MemoryLake {
    objects: Mutex<BTreeMap<String, (String, Vec<u8>)>>,
    results: Mutex<BTreeMap<String, (String, Vec<u8>)>>,
    writes: Mutex<usize>,
    reads: Mutex<usize>,
    /// Every read of a file fails (S3 refusing it: a KMS grant gone, an outage).
    reads_fail: Mutex<bool>,
    /// Every read of a result fails (S3 out of reach).
    result_reads_fail: Mutex<bool>,
    /// S3 will never serve the files: why.
    unservable: Mutex<Option<String>>,
}

impl MemoryLake {
    /// Drops `body` at `key`, a new version of it; its version id.
    fn drop_file(&self, key: &str, body: Vec<u8>) -> String {
        let mut objects = self.objects.lock().expect("lock");
        let versions = objects
            .get(key)
            .and_then(|(v, _)| v.strip_prefix('v')?.parse::<u32>().ok())
            .unwrap_or(0);
        let version = format!("v{}", versions + 1);
        objects.insert(key.into(), (version.clone(), body));
        version
    }

    fn result(&self, key: &str) -> ImportResult {
        let results = self.results.lock().expect("lock");
        let (_, body) = results.get(&result_key(key)).expect("a result object");
        serde_json::from_slice(body).expect("a result")
    }

    /// Writes a result object as another delivery would.
    fn put_result(&self, key: &str, result: &ImportResult) {
        let body = serde_json::to_vec(result).expect("json");
        self.results
            .lock()
            .expect("lock")
            .insert(result_key(key), ("elsewhere".into(), body));
    }
}

impl ImportObjects for MemoryLake {
    async fn read(
        &self,
        key: &str,
        version_id: Option<&str>,
        max_bytes: u64,
    ) -> Result<ImportObject, PortError> {
        // As S3 answers: another delivery's calls go on meanwhile.
        tokio::task::yield_now().await;
        *self.reads.lock().expect("lock") += 1;
        if *self.reads_fail.lock().expect("lock") {
            return Err(PortError::new("S3 GetObject", "AccessDenied"));
        }
        if let Some(reason) = self.unservable.lock().expect("lock").clone() {
            return Ok(ImportObject::Unservable { reason });
        }
        Ok(match self.objects.lock().expect("lock").get(key) {
            None => ImportObject::Missing,
            Some((current, _)) if version_id.is_some_and(|v| v != current) => {
                ImportObject::Superseded
            }
            Some((_, body)) if body.len() as u64 > max_bytes => ImportObject::TooLarge {
                bytes: body.len() as u64,
            },
            Some((_, body)) => ImportObject::Body(body.clone()),
        })
    }

    async fn read_result(&self, key: &str) -> Result<Option<StoredResult>, PortError> {
        tokio::task::yield_now().await;
        if *self.result_reads_fail.lock().expect("lock") {
            return Err(PortError::new("S3 GetObject", "SlowDown"));
        }
        Ok(self
            .results
            .lock()
            .expect("lock")
            .get(key)
            .map(|(etag, body)| StoredResult {
                body: body.clone(),
                etag: Some(etag.clone()),
            }))
    }

    async fn write_result(
        &self,
        key: &str,
        body: &[u8],
        condition: ResultCondition<'_>,
    ) -> Result<ResultWrite, PortError> {
        tokio::task::yield_now().await;
        let mut results = self.results.lock().expect("lock");
        let held = results.get(key).map(|(etag, _)| etag.as_str());
        let holds = match condition {
            ResultCondition::Absent => held.is_none(),
            ResultCondition::Matches(etag) => held == Some(etag),
            ResultCondition::Any => true,
        };
        if !holds {
            return Ok(ResultWrite::Conflict);
        }
        let mut writes = self.writes.lock().expect("lock");
        *writes += 1;
        let etag = format!("e{writes}");
        results.insert(key.into(), (etag.clone(), body.to_vec()));
        Ok(ResultWrite::Written { etag: Some(etag) })
    }
}

/// The lake, the stream and the poll states an import works on.
#[derive(Default)]
struct Stack {
    lake: MemoryLake,
    stream: MemoryStream,
    states: MemoryPollStates,
}

impl Stack {
    /// Imports what `request` names at `minute`.
    async fn import(&self, request: &ImportRequest, minute: i64) -> ImportOutcome {
        import(
            request,
            LAKE,
            &self.lake,
            &self.stream,
            &self.states,
            None,
            at(minute),
        )
        .await
        .expect("import")
    }
}

fn request(key: &str) -> ImportRequest {
    ImportRequest {
        bucket: LAKE.into(),
        key: key.into(),
        version_id: None,
    }
}

/// Ten listings as CSV, with line 3 priced in words and line 6 without a city.
fn file_with_bad_rows(listings: &[Listing]) -> Vec<u8> {
    let text = String::from_utf8(csv(&listings[..10])).expect("utf-8");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let price = listings[1].price_minor.to_string();
    lines[2] = lines[2].replacen(&format!(",{price},"), ",call for price,", 1);
    let mut cityless = listings[4].clone();
    cityless.address.city.clear();
    let cityless = String::from_utf8(csv(&[cityless])).expect("utf-8");
    lines[5] = cityless.lines().nth(1).expect("row").to_owned();
    lines.join("\n").into_bytes()
}

/// A try S3 fails is retried (the error stands), and its result says so for this version,
/// where the earlier version's `done` stood before: what the dead-letter runbook reads.
#[tokio::test]
async fn a_file_s3_will_not_read_has_a_failed_result_of_its_version() {
    let listings = nashville();
    let stack = Stack::default();
    let key = "imports/nashville.csv";
    let first = stack.lake.drop_file(key, csv(&listings[..3]));
    let done = |version: &str| ImportRequest {
        version_id: Some(version.to_owned()),
        ..request(key)
    };
    assert_eq!(
        stack.import(&done(&first), 10).await.result.status,
        ImportStatus::Done
    );
    let second = stack.lake.drop_file(key, csv(&listings[..5]));
    *stack.lake.reads_fail.lock().expect("lock") = true;
    let error = import(
        &done(&second),
        LAKE,
        &stack.lake,
        &stack.stream,
        &stack.states,
        None,
        at(11),
    )
    .await
    .expect_err("the try fails, to be retried");
    assert!(error.to_string().contains("AccessDenied"), "{error}");
    let result = stack.lake.result(key);
    assert_eq!(result.status, ImportStatus::Failed);
    assert_eq!(result.version_id.as_deref(), Some(second.as_str()));
    assert!(
        result
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("AccessDenied")),
        "{result:?}"
    );
    // Once S3 reads it again, the retry imports it.
    *stack.lake.reads_fail.lock().expect("lock") = false;
    let retried = stack.import(&done(&second), 12).await;
    assert_eq!(retried.result.status, ImportStatus::Done);
    assert_eq!(
        stack.lake.result(key).version_id.as_deref(),
        Some(second.as_str())
    );
}

#[tokio::test]
async fn good_rows_are_published_and_bad_rows_reported_by_line() {
    let listings = nashville();
    let stack = Stack::default();
    let (lake, stream) = (&stack.lake, &stack.stream);
    lake.drop_file("imports/nashville.csv", file_with_bad_rows(&listings));
    let outcome = stack.import(&request("imports/nashville.csv"), 10).await;
    assert!(!outcome.retry());
    assert_eq!(
        outcome.result_key,
        "import-results/imports/nashville.csv.json"
    );
    let result = lake.result("imports/nashville.csv");
    assert_eq!(result, outcome.result);
    assert_eq!(result.status, ImportStatus::Done);
    assert_eq!((result.rows, result.rejected, result.published), (10, 2, 8));
    let lines: Vec<usize> = result.rejected_rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, [3, 6]);
    assert!(result.rejected_rows[0].reason.contains("price_minor"));
    assert_eq!(result.rejected_rows[1].reason, "city: empty");
    let events = stream.taken();
    assert_eq!(events.len(), 8);
    assert!(events.iter().all(|e| e.kind == EventKind::New));

    // The same file dropped again: nothing new.
    let again = stack.import(&request("imports/nashville.csv"), 20).await;
    assert_eq!(again.result.status, ImportStatus::Done);
    assert_eq!((again.result.published, again.result.unchanged), (0, 8));
    assert!(stream.taken().is_empty());
}

#[tokio::test]
async fn a_publish_failure_part_way_is_failed_and_its_retry_sends_only_the_rest() {
    let listings = nashville();
    let stack = Stack::default();
    let (lake, stream) = (&stack.lake, &stack.stream);
    lake.drop_file("imports/all.csv", csv(&listings));
    // The stream refuses three listings' events (throttled past every retry).
    let refused: Vec<String> = listings[5..8]
        .iter()
        .map(|l| l.id.as_str().to_owned())
        .collect();
    stream
        .refuse
        .lock()
        .expect("lock")
        .extend(refused.iter().cloned());
    let first = stack.import(&request("imports/all.csv"), 10).await;
    assert!(first.retry());
    let result = lake.result("imports/all.csv");
    assert_eq!(result.status, ImportStatus::Failed, "never done part-way");
    assert_eq!(result.unpublished, 3);
    assert_eq!(result.published, listings.len() - 3);
    assert!(
        result
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("3 events unpublished")),
        "{:?}",
        result.reason
    );
    assert_eq!(stream.taken().len(), listings.len() - 3);

    // The stream recovers; the retry sends the three and nothing twice.
    stream.refuse.lock().expect("lock").clear();
    let retry = stack.import(&request("imports/all.csv"), 11).await;
    assert!(!retry.retry());
    assert_eq!(lake.result("imports/all.csv").status, ImportStatus::Done);
    let sent: Vec<String> = stream
        .taken()
        .iter()
        .map(|e| e.listing.id.as_str().to_owned())
        .collect();
    assert_eq!(sent, refused);
    // The counts are the attempt's: what the first published is unchanged for the retry.
    assert_eq!(
        (retry.result.published, retry.result.unchanged),
        (3, listings.len() - 3)
    );
}

#[tokio::test]
async fn objects_that_cannot_be_imports_get_a_rejected_result_saying_why() {
    let listings = nashville();
    let stack = Stack::default();
    let (lake, stream) = (&stack.lake, &stack.stream);
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("listings/x.csv", csv(&listings), "not under imports/"),
        ("imports/x.csv.gz", csv(&listings), "unknown format"),
        (
            "imports/page.json",
            include_bytes!(
                "../../../sources/tests/fixtures/zillow_propertyExtendedSearch_37201_nashville_tn.json"
            )
            .to_vec(),
            "not an export",
        ),
        (
            "imports/huge.csv",
            vec![b'a'; MAX_IMPORT_BYTES as usize + 1],
            "over the 33554432-byte limit",
        ),
        ("imports/gone.csv", Vec::new(), "the object is gone"),
    ];
    for (key, body, why) in cases {
        if key != "imports/gone.csv" {
            lake.drop_file(key, body);
        }
        let outcome = stack.import(&request(key), 10).await;
        assert!(!outcome.retry(), "{key}");
        let result = lake.result(key);
        assert_eq!(result.status, ImportStatus::Rejected, "{key}");
        assert!(
            result.reason.as_deref().is_some_and(|r| r.contains(why)),
            "{key}: {:?}",
            result.reason
        );
    }
    // Refused by name before any read.
    assert_eq!(*lake.reads.lock().expect("lock"), 3);
    // At the limit exactly, a file is read (and here refused as not an export).
    lake.drop_file("imports/edge.csv", vec![b'a'; MAX_IMPORT_BYTES as usize]);
    stack.import(&request("imports/edge.csv"), 10).await;
    let edge = lake.result("imports/edge.csv");
    assert!(
        edge.reason
            .as_deref()
            .is_some_and(|r| r.contains("not an export")),
        "{:?}",
        edge.reason
    );
    assert!(stream.taken().is_empty());

    // Lines: one past the limit is refused before any row is parsed; at the limit, with or
    // without a last newline, the rows are read (and rejected here, as they are no export).
    let rows = |lines: usize, last_newline: bool| {
        let mut body = csv(&listings[..1]).repeat(lines / 2);
        if lines % 2 == 1 {
            body.extend_from_slice(b"x\n");
        }
        if !last_newline {
            body.pop();
        }
        body
    };
    for (lines, last_newline, refused) in [
        (MAX_IMPORT_ROWS, true, false),
        (MAX_IMPORT_ROWS, false, false),
        (MAX_IMPORT_ROWS + 1, true, true),
        (MAX_IMPORT_ROWS + 1, false, true),
    ] {
        let body = rows(lines, last_newline);
        assert_eq!(
            body.iter().filter(|b| **b == b'\n').count() + usize::from(!last_newline),
            lines
        );
        lake.drop_file("imports/rows.csv", body);
        stack.import(&request("imports/rows.csv"), 10).await;
        let result = lake.result("imports/rows.csv");
        let said = result.reason.as_deref().unwrap_or_default();
        assert_eq!(
            said.contains("line limit"),
            refused,
            "{lines} lines: {said}"
        );
        assert_eq!(result.rows == 0, refused, "{lines} lines: {result:?}");
    }
    stream.taken();
    // Old Mac line ends (a bare `\r`) end CSV records too: counted as lines.
    let mac = rows(MAX_IMPORT_ROWS + 1, true)
        .iter()
        .map(|b| if *b == b'\n' { b'\r' } else { *b })
        .collect();
    lake.drop_file("imports/mac.csv", mac);
    stack.import(&request("imports/mac.csv"), 10).await;
    let said = lake.result("imports/mac.csv").reason.unwrap_or_default();
    assert!(said.contains("line limit"), "{said}");

    // A JSON line longer than any listing is refused unparsed: first, the file is no export;
    // later, that line is a rejected row and the others are read.
    let mut jsonl = Vec::new();
    realty_sources::file::write_json_lines(&listings[..1], &mut jsonl).expect("write");
    let long = format!(
        "[{}]\n",
        vec!["{\"a\":0}"; realty_sources::file::MAX_JSON_LINE_BYTES / 7].join(",")
    );
    // (Two lines: no one JSON document, which a small file is first read as.)
    lake.drop_file("imports/long-first.jsonl", long.repeat(2).into_bytes());
    stack.import(&request("imports/long-first.jsonl"), 10).await;
    let said = lake
        .result("imports/long-first.jsonl")
        .reason
        .unwrap_or_default();
    assert!(said.contains("longer than any listing"), "{said}");
    lake.drop_file(
        "imports/long-later.jsonl",
        [jsonl, long.into_bytes()].concat(),
    );
    stack.import(&request("imports/long-later.jsonl"), 10).await;
    let later = lake.result("imports/long-later.jsonl");
    assert_eq!((later.rows, later.rejected), (2, 1), "{later:?}");
    stream.taken();

    // Another bucket: no result written there or here.
    let foreign = ImportRequest {
        bucket: "someone-else".into(),
        ..request("imports/x.csv")
    };
    let outcome = stack.import(&foreign, 10).await;
    assert_eq!(outcome.result.status, ImportStatus::Rejected);
    assert!(
        lake.results
            .lock()
            .expect("lock")
            .get(&result_key("imports/x.csv"))
            .is_none()
    );
}

#[tokio::test]
async fn the_result_is_bounded_and_every_reject_counted() {
    let listings = nashville();
    let stack = Stack::default();
    let lake = &stack.lake;
    let header = String::from_utf8(csv(&listings[..1])).expect("utf-8");
    let mut lines: Vec<String> = header.lines().map(str::to_owned).collect();
    let long_reason_row = lines[1].replacen("zillow:", &"x".repeat(5_000), 1);
    lines.extend(std::iter::repeat_n(
        long_reason_row,
        MAX_REPORTED_REJECTS + 50,
    ));
    lake.drop_file("imports/bad.csv", lines.join("\n").into_bytes());
    stack.import(&request("imports/bad.csv"), 10).await;
    let result = lake.result("imports/bad.csv");
    assert_eq!(result.status, ImportStatus::Done);
    assert_eq!(
        (result.rows, result.published),
        (MAX_REPORTED_REJECTS + 51, 1)
    );
    assert_eq!(result.rejected, MAX_REPORTED_REJECTS + 50);
    assert_eq!(result.rejected_rows.len(), MAX_REPORTED_REJECTS);
    assert!(
        result
            .rejected_rows
            .iter()
            .all(|r| r.reason.chars().count() <= 201
                && r.id.as_ref().is_none_or(|id| id.chars().count() <= 201))
    );
    let body = lake.results.lock().expect("lock")[&result_key("imports/bad.csv")]
        .1
        .len();
    assert!(body < 100_000, "{body} bytes");
}

#[tokio::test]
async fn a_notification_delivered_twice_does_not_import_twice() {
    let listings = nashville();
    let stack = Stack::default();
    let lake = &stack.lake;
    let v1 = lake.drop_file("imports/v.csv", csv(&listings[..4]));
    let versioned = ImportRequest {
        version_id: Some(v1),
        ..request("imports/v.csv")
    };
    let first = stack.import(&versioned, 10).await;
    assert_eq!(first.result.published, 4);
    let second = stack.import(&versioned, 11).await;
    assert!(second.already_done);
    // The first result stands (not replaced by "0 published").
    assert_eq!(lake.result("imports/v.csv").published, 4);
    assert_eq!(*lake.reads.lock().expect("lock"), 1);
    // A new version of the same key is imported.
    let v2 = lake.drop_file("imports/v.csv", csv(&listings[..4]));
    let next = ImportRequest {
        version_id: Some(v2),
        ..request("imports/v.csv")
    };
    let third = stack.import(&next, 12).await;
    assert!(!third.already_done);
    assert_eq!((third.result.published, third.result.unchanged), (0, 4));
}

/// A corrected file uploaded over the first before the first was imported (or whose first
/// notification is retried, or delivered late) is the one imported: the first version's
/// notification publishes nothing and leaves the corrected version's result in place.
#[tokio::test]
async fn an_older_version_never_imports_over_a_newer_one() {
    let listings = nashville();
    let stack = Stack::default();
    let lake = &stack.lake;
    let wrong = lake.drop_file("imports/fix.csv", csv(&listings[..4]));
    // The correction: the same rows at the same instants, the first listing's price fixed.
    let mut fixed = listings[..4].to_vec();
    fixed[0].price_minor -= 1_000_000;
    let right = lake.drop_file("imports/fix.csv", csv(&fixed));
    let at_version = |version: &str| ImportRequest {
        version_id: Some(version.to_owned()),
        ..request("imports/fix.csv")
    };
    let corrected = stack.import(&at_version(&right), 10).await;
    assert_eq!(corrected.result.status, ImportStatus::Done);
    assert_eq!(corrected.result.published, 4);
    assert_eq!(stack.stream.taken().len(), 4);
    let late = stack.import(&at_version(&wrong), 11).await;
    assert!(!late.result_written && !late.retry());
    assert!(
        late.result
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("superseded")),
        "{:?}",
        late.result.reason
    );
    assert!(stack.stream.taken().is_empty(), "nothing published for it");
    let kept = lake.result("imports/fix.csv");
    assert_eq!(
        (kept.version_id.as_deref(), kept.published),
        (Some(right.as_str()), 4)
    );
    // The same order of uploads, notifications in order: the first version, read after
    // the second replaced it, is superseded too, and the second is imported.
    let stack = Stack::default();
    let wrong = stack.lake.drop_file("imports/fix.csv", csv(&listings[..4]));
    let right = stack.lake.drop_file("imports/fix.csv", csv(&fixed));
    assert!(!stack.import(&at_version(&wrong), 10).await.result_written);
    let corrected = stack.import(&at_version(&right), 11).await;
    assert_eq!(corrected.result.published, 4);
    let published = stack.stream.taken();
    assert!(
        published
            .iter()
            .any(|e| e.listing.price_minor == fixed[0].price_minor),
        "the corrected price is what was published"
    );
}

#[test]
fn a_long_key_gets_a_hashed_result_name() {
    let short = "imports/a.csv";
    assert_eq!(result_key(short), "import-results/imports/a.csv.json");
    let at_limit = format!("imports/{}.csv", "a".repeat(MAX_NAMED_KEY_BYTES - 12));
    assert_eq!(at_limit.len(), MAX_NAMED_KEY_BYTES);
    assert_eq!(
        result_key(&at_limit),
        format!("import-results/{at_limit}.json")
    );
    let past = format!("imports/{}.csv", "a".repeat(MAX_NAMED_KEY_BYTES - 11));
    let hashed = result_key(&past);
    assert!(
        hashed.starts_with("import-results/long-keys/") && hashed.len() < 60,
        "{hashed}"
    );
    assert_ne!(hashed, result_key(&format!("{past}x")));
}

/// Poll states whose every read and write takes `latency` (S3 far away, in paused time),
/// counting the reads under way at once.
struct SlowStates {
    inner: MemoryPollStates,
    latency: std::time::Duration,
    reading: std::sync::atomic::AtomicUsize,
    most_reading: std::sync::atomic::AtomicUsize,
}

impl crate::ports::PollStateStore for SlowStates {
    async fn load(&self, key: &str) -> Result<crate::ports::StoredPollState, PortError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.reading.fetch_add(1, SeqCst) + 1;
        self.most_reading.fetch_max(now, SeqCst);
        tokio::time::sleep(self.latency).await;
        self.reading.fetch_sub(1, SeqCst);
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &str,
        state: &crate::detect::PollState,
        expected_version: Option<&str>,
    ) -> Result<bool, PortError> {
        tokio::time::sleep(self.latency).await;
        self.inner.save(key, state, expected_version).await
    }
}

/// A file of many markets whose state reads and writes outlast the function's time: the
/// markets not started by [`IMPORT_RUN_BUDGET`] are left to the retry (the result says how
/// many), where Lambda would have stopped the import part-way, unwritten; the retry sends
/// them and nothing twice.
#[tokio::test(start_paused = true)]
async fn an_import_out_of_time_starts_no_more_markets_and_its_retry_sends_the_rest() {
    // 40 listings, each in a market of its own.
    let listings: Vec<Listing> = nashville()
        .into_iter()
        .take(40)
        .enumerate()
        .map(|(i, mut l)| {
            l.address.city = format!("Town {i:02}");
            l.market = realty_model::listing::MarketKey::for_address(&l.address).expect("a market");
            l
        })
        .collect();
    let stack = Stack::default();
    let states = SlowStates {
        inner: MemoryPollStates::default(),
        // A market's read and write: 100 s, half the budget.
        latency: IMPORT_RUN_BUDGET / 4,
        reading: Default::default(),
        most_reading: Default::default(),
    };
    let (lake, stream) = (&stack.lake, &stack.stream);
    lake.drop_file("imports/national.csv", csv(&listings));
    let request = request("imports/national.csv");
    let first = import(&request, LAKE, lake, stream, &states, None, at(10))
        .await
        .expect("import");
    assert_eq!(
        states
            .most_reading
            .load(std::sync::atomic::Ordering::SeqCst),
        crate::replay::MARKETS_IN_FLIGHT,
        "markets are read at once"
    );
    // Two rounds of 16 markets took the budget; the last 8 were not started.
    assert!(first.retry());
    let result = lake.result("imports/national.csv");
    assert_eq!(result.status, ImportStatus::Failed);
    assert_eq!((result.published, result.unpublished), (32, 0));
    assert!(
        result
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("8 markets not started")),
        "{:?}",
        result.reason
    );
    let mut sent: Vec<String> = stream
        .taken()
        .iter()
        .map(|e| e.listing.id.as_str().to_owned())
        .collect();

    // The retry reads the 32 done markets (unchanged: not written) and sends the rest.
    let retry = import(&request, LAKE, lake, stream, &states, None, at(40))
        .await
        .expect("import");
    assert!(!retry.retry(), "{:?}", retry.result.reason);
    assert_eq!(
        lake.result("imports/national.csv").status,
        ImportStatus::Done
    );
    assert_eq!((retry.result.published, retry.result.unchanged), (8, 32));
    sent.extend(
        stream
            .taken()
            .iter()
            .map(|e| e.listing.id.as_str().to_owned()),
    );
    sent.sort();
    let mut ids: Vec<String> = listings.iter().map(|l| l.id.as_str().to_owned()).collect();
    ids.sort();
    assert_eq!(sent, ids, "every listing once");
}

/// The rate bounds the whole import, its markets together.
#[tokio::test(start_paused = true)]
async fn an_import_publishes_at_its_rate() {
    let listings = nashville();
    let stack = Stack::default();
    stack.lake.drop_file("imports/paced.csv", csv(&listings));
    let started = tokio::time::Instant::now();
    let outcome = import(
        &request("imports/paced.csv"),
        LAKE,
        &stack.lake,
        &stack.stream,
        &stack.states,
        Some(10.0),
        at(10),
    )
    .await
    .expect("import");
    assert_eq!(outcome.result.published, listings.len());
    // A second's worth may go at once; the rest at 10 a second.
    let least = std::time::Duration::from_secs_f64((listings.len() as f64 - 10.0) / 10.0);
    assert!(
        started.elapsed() >= least,
        "{:?} for {} events",
        started.elapsed(),
        listings.len()
    );
}

#[test]
fn imports_publish_at_half_of_each_shard() {
    let rate = |value: Option<&str>| {
        import_rate(|name| {
            assert_eq!(name, STREAM_SHARDS_VAR);
            value.map(str::to_owned)
        })
    };
    assert_eq!(rate(None).expect("unset"), None);
    assert_eq!(rate(Some("2")).expect("2 shards"), Some(1_000.0));
    assert_eq!(
        rate(Some(&MAX_STREAM_SHARDS.to_string())).expect("the most"),
        Some(f64::from(MAX_STREAM_SHARDS) * IMPORT_EVENTS_PER_SHARD_SECOND)
    );
    for bad in [
        "0",
        "-1",
        "2.5",
        "",
        "many",
        &(MAX_STREAM_SHARDS + 1).to_string(),
    ] {
        let error = rate(Some(bad)).expect_err(bad);
        assert!(error.to_string().contains(STREAM_SHARDS_VAR), "{error}");
    }
}

/// Three listings whose addresses have letters of Western European exports, as CSV text.
fn accented_file(listings: &[Listing]) -> (Vec<Listing>, String) {
    let mut accented = listings[..3].to_vec();
    let lines = [
        "12 Rue Saint-André, Bâtiment Ç",
        "L’Atelier – 4 Allée des Érables",
        "Señora Núñez, 8 Calle Peñón",
    ];
    for (listing, line) in accented.iter_mut().zip(lines) {
        listing.address.line = Some(line.to_owned());
    }
    let text = String::from_utf8(csv(&accented)).expect("utf-8");
    (accented, text)
}

/// The address lines the stream got, by listing.
fn published_lines(stack: &Stack) -> BTreeMap<String, Option<String>> {
    stack
        .stream
        .taken()
        .into_iter()
        .map(|e| (e.listing.id.as_str().to_owned(), e.listing.address.line))
        .collect()
}

/// Exports as spreadsheets write them: Windows-1252 (Excel's "CSV" in Western Europe and
/// the Americas; Latin-1's letters are the same bytes), UTF-8 with a byte order mark, UTF-16
/// with one. Each is read in its encoding and every accented row is imported as written;
/// before, every row of a Windows-1252 file with an accent was "unreadable", and the import
/// still said `done`.
#[tokio::test]
async fn exports_in_the_encodings_spreadsheets_write_are_read_with_their_accents() {
    let listings = nashville();
    let (accented, text) = accented_file(&listings);
    let expected: BTreeMap<String, Option<String>> = accented
        .iter()
        .map(|l| (l.id.as_str().to_owned(), l.address.line.clone()))
        .collect();
    let (windows_1252, _, lossy) = encoding_rs::WINDOWS_1252.encode(&text);
    assert!(!lossy);
    let utf8_bom = [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat();
    let utf16_bom: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    for (file, encoding) in [
        (windows_1252.into_owned(), "windows-1252"),
        (utf8_bom, "UTF-8"),
        (utf16_bom, "UTF-16LE"),
        (text.clone().into_bytes(), "UTF-8"),
    ] {
        let stack = Stack::default();
        stack.lake.drop_file("imports/accents.csv", file);
        let result = stack
            .import(&request("imports/accents.csv"), 10)
            .await
            .result;
        assert_eq!(result.status, ImportStatus::Done, "{encoding}: {result:?}");
        assert_eq!((result.rejected, result.published), (0, 3), "{encoding}");
        assert_eq!(result.encoding.as_deref(), Some(encoding));
        assert_eq!(published_lines(&stack), expected, "{encoding}");
    }
}

/// A UTF-8 file with one row pasted in from a Windows-1252 one: the file is UTF-8 (it holds
/// UTF-8 accents), and the row that is not is rejected as such, not read as mojibake.
#[tokio::test]
async fn a_utf8_file_with_a_row_in_another_encoding_rejects_that_row() {
    let listings = nashville();
    let (_, text) = accented_file(&listings);
    let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    let (row, _, _) = encoding_rs::WINDOWS_1252.encode(text.lines().nth(2).expect("row"));
    lines[2] = row.into_owned();
    let stack = Stack::default();
    stack
        .lake
        .drop_file("imports/mixed.csv", lines.join(b"\n".as_slice()));
    let result = stack.import(&request("imports/mixed.csv"), 10).await.result;
    assert_eq!(result.encoding.as_deref(), Some("UTF-8"));
    assert_eq!((result.rejected, result.published), (1, 2), "{result:?}");
    assert_eq!(result.rejected_rows[0].line, 3);
    assert!(
        published_lines(&stack)
            .values()
            .flatten()
            .all(|l| !l.contains('Ã'))
    );
}

/// A header naming a column twice is refused with the column and both places: which of the
/// two holds the data cannot be told (before, the last one was read, silently). A repeated
/// column the import does not read is no matter.
#[tokio::test]
async fn a_header_naming_a_column_twice_is_refused_saying_which() {
    let listings = nashville();
    let text = String::from_utf8(csv(&listings[..2])).expect("utf-8");
    let doubled: String = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let extra = if i == 0 { "price_minor" } else { "1" };
            format!("{line},{extra}\n")
        })
        .collect();
    let stack = Stack::default();
    stack
        .lake
        .drop_file("imports/twice.csv", doubled.into_bytes());
    let outcome = stack.import(&request("imports/twice.csv"), 10).await;
    assert_eq!(outcome.result.status, ImportStatus::Rejected);
    assert!(!outcome.retry());
    let reason = outcome.result.reason.unwrap_or_default();
    assert!(
        reason.contains("price_minor twice") && reason.contains("columns 5 and 28"),
        "{reason}"
    );
    assert!(stack.stream.taken().is_empty());
    let unread: String = text.lines().map(|line| format!("{line},x,y\n")).collect();
    let unread = unread.replacen(",x,y", ",notes,notes", 1);
    stack
        .lake
        .drop_file("imports/notes.csv", unread.into_bytes());
    let result = stack.import(&request("imports/notes.csv"), 11).await.result;
    assert_eq!((result.status, result.published), (ImportStatus::Done, 2));
}

/// An object S3 will never serve (archived, encrypted with a key the importer cannot use)
/// is rejected saying why, and not retried: before, three tries and the dead-letter alarm.
#[tokio::test]
async fn an_object_s3_will_never_serve_is_rejected_not_retried() {
    let stack = Stack::default();
    stack
        .lake
        .drop_file("imports/cold.csv", csv(&nashville()[..2]));
    *stack.lake.unservable.lock().expect("lock") = Some("archived (storage class GLACIER)".into());
    let outcome = stack.import(&request("imports/cold.csv"), 10).await;
    assert!(!outcome.retry());
    let result = stack.lake.result("imports/cold.csv");
    assert_eq!(result.status, ImportStatus::Rejected);
    assert_eq!(
        result.reason.as_deref(),
        Some("archived (storage class GLACIER)")
    );
    assert!(stack.stream.taken().is_empty());
}

/// A try that cannot read the result already written writes nothing: a `done` result
/// stands (before, the try wrote `failed` over it).
#[tokio::test]
async fn a_try_that_cannot_read_the_result_never_writes_over_it() {
    let listings = nashville();
    let stack = Stack::default();
    let version = stack.lake.drop_file("imports/n.csv", csv(&listings[..3]));
    let versioned = ImportRequest {
        version_id: Some(version),
        ..request("imports/n.csv")
    };
    assert_eq!(
        stack.import(&versioned, 10).await.result.status,
        ImportStatus::Done
    );
    *stack.lake.result_reads_fail.lock().expect("lock") = true;
    let error = import(
        &versioned,
        LAKE,
        &stack.lake,
        &stack.stream,
        &stack.states,
        None,
        at(11),
    )
    .await
    .expect_err("retried");
    assert!(error.to_string().contains("SlowDown"), "{error}");
    *stack.lake.result_reads_fail.lock().expect("lock") = false;
    let result = stack.lake.result("imports/n.csv");
    assert_eq!((result.status, result.published), (ImportStatus::Done, 3));
}

/// Two deliveries of one version at once (the importer runs two; S3 and SQS deliver at
/// least once): one claims the import and publishes, the other does nothing and is
/// delivered again, and then finds the result `done`. Each event reaches the stream once.
#[tokio::test]
async fn two_deliveries_at_once_publish_once() {
    let listings = nashville();
    let stack = Stack::default();
    let version = stack
        .lake
        .drop_file("imports/twice.csv", csv(&listings[..6]));
    let versioned = ImportRequest {
        version_id: Some(version),
        ..request("imports/twice.csv")
    };
    let (a, b) = tokio::join!(stack.import(&versioned, 10), stack.import(&versioned, 10));
    let events = stack.stream.taken();
    assert_eq!(events.len(), 6, "each event once");
    let (held, waited) = if a.claimed_elsewhere { (b, a) } else { (a, b) };
    assert!(waited.claimed_elsewhere && waited.retry() && !waited.result_written);
    assert_eq!(waited.result.status, ImportStatus::Importing);
    assert_eq!(
        (held.result.status, held.result.published),
        (ImportStatus::Done, 6)
    );
    // Delivered again: done already.
    let again = stack.import(&versioned, 20).await;
    assert!(again.already_done && !again.retry());
    assert!(stack.stream.taken().is_empty());
}

/// A claim whose delivery was stopped (Lambda's timeout) holds the import for
/// [`claim::CLAIM_LIFETIME`]: a delivery within it waits, one after it imports.
#[tokio::test]
async fn an_abandoned_claim_is_taken_over_once_its_lifetime_has_passed() {
    let listings = nashville();
    let stack = Stack::default();
    let version = stack
        .lake
        .drop_file("imports/stopped.csv", csv(&listings[..2]));
    let versioned = ImportRequest {
        version_id: Some(version),
        ..request("imports/stopped.csv")
    };
    let stopped = ImportResult {
        status: ImportStatus::Importing,
        ..ImportResult::begun(&versioned, at(10))
    };
    stack.lake.put_result("imports/stopped.csv", &stopped);
    let lifetime_minutes = claim::CLAIM_LIFETIME.num_minutes();
    let within = stack.import(&versioned, 10 + lifetime_minutes - 1).await;
    assert!(within.claimed_elsewhere && within.retry());
    assert!(stack.stream.taken().is_empty());
    let after = stack.import(&versioned, 10 + lifetime_minutes + 1).await;
    assert!(!after.claimed_elsewhere);
    assert_eq!(
        (after.result.status, after.result.published),
        (ImportStatus::Done, 2)
    );
    // Another version's claim holds nothing of this one.
    let other = ImportRequest {
        version_id: Some("v0".into()),
        ..versioned.clone()
    };
    assert!(!claim::held_for(&stopped, &other, at(10)));
    assert!(claim::held_for(&stopped, &versioned, at(10)));
}
