//! The S3 import source: an export (CSV or JSON lines, [`realty_sources::file`]) dropped
//! under `imports/` in the lake bucket is sent through the same change detection and
//! publishing as `realty replay` ([`crate::replay`]), and its result is written
//! beside it under `import-results/` ([`ImportResult`], docs/sources.md).
//!
//! A result says `done` only once every accepted row was published and its market's state
//! saved. An import that stopped part-way (a publish or state write failed) is written
//! `failed` and reported to the caller for a retry ([`ImportOutcome::retry`]); the retry
//! publishes only what is missing, since the rows already sent are in the poller's state
//! (change detection makes an import idempotent). An object that can never be imported
//! (outside `imports/`, of an unknown format, too large, not an export, one S3 will never
//! serve) gets a `rejected` result saying why and is not retried. One delivery of a version
//! publishes it: the one whose claim lands ([`claim`]); every write of the result is
//! conditional on the result read before it, so a `done` one is never written over.

pub mod claim;
pub mod ports;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ports::{EventPublisher, PollStateStore};
use crate::replay::{ReplayError, ReplayOptions, ReplayReport, replay};
use ports::{ImportObject, ImportObjects, ResultCondition, ResultWrite};
use realty_model::format::truncate;
use realty_model::ports::PortError;
use realty_sources::RecordPosition;

/// Where files to import are dropped in the lake bucket.
pub const IMPORT_PREFIX: &str = "imports/";
/// Where each import's result is written: `import-results/<key>.json`.
pub const RESULT_PREFIX: &str = "import-results/";
/// Largest file imported: it is held in memory whole (with its parsed rows) by a function
/// of 1 GB, and its events must be published within the function's timeout.
pub const MAX_IMPORT_BYTES: u64 = 32 * 1024 * 1024;
/// Most rows (lines, a CSV's header included) of a file imported. Each row is held several
/// times while its market's state is built (the rows, the events, the state and its JSON):
/// 100,000 rows of the fewest columns peak at about 330 MB, 300,000 (what 32 MiB of them
/// holds) at about 890 MB, near the function's 1 GB.
pub const MAX_IMPORT_ROWS: usize = 100_001;
/// Longest key whose result is named after it (S3 keys stop at 1,024 bytes); a longer one's
/// result is `import-results/long-keys/<hash>.json`.
pub const MAX_NAMED_KEY_BYTES: usize = 900;
/// The file name endings imported (any case); the content is then told by its first
/// character, as `realty replay` does.
pub const IMPORT_EXTENSIONS: [&str; 4] = [".csv", ".jsonl", ".ndjson", ".json"];
/// No market of a file starts once its import has run this long: 200 s of the function's
/// 300 s timeout, the rest for the markets under way and the result. Stopped by Lambda
/// instead, an import wrote no result, and published again, at each of its three tries, the
/// events of the markets it was in when stopped.
pub const IMPORT_RUN_BUDGET: std::time::Duration = std::time::Duration::from_secs(200);
/// Characters kept of a rejected row's reason (and of an id) in the result.
const MAX_REASON_CHARS: usize = 200;
/// Events a second an import publishes for each shard of the stream: half a shard's 1,000
/// records a second, the other half left to the polls writing beside it. Unpaced, an import
/// sent its markets 500 events a call, 16 markets at once, and the polls' events throttled
/// past their retries waited for the next poll.
pub const IMPORT_EVENTS_PER_SHARD_SECOND: f64 = 500.0;
/// The variable naming the stream's shards (the template's, or 4 for an on-demand stream,
/// which starts with 4).
pub const STREAM_SHARDS_VAR: &str = "REALTY_STREAM_SHARDS";
/// Most shards [`STREAM_SHARDS_VAR`] may name (Kinesis's default quota in the largest
/// regions).
pub const MAX_STREAM_SHARDS: u32 = 20_000;

/// How fast imports publish: [`IMPORT_EVENTS_PER_SHARD_SECOND`] for each of the stream's
/// shards, from [`STREAM_SHARDS_VAR`]; unset (a local run) leaves imports unpaced.
pub fn import_rate(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<f64>, realty_model::config::ConfigError> {
    let Some(value) = lookup(STREAM_SHARDS_VAR) else {
        return Ok(None);
    };
    match value.trim().parse::<u32>() {
        Ok(shards) if (1..=MAX_STREAM_SHARDS).contains(&shards) => {
            Ok(Some(f64::from(shards) * IMPORT_EVENTS_PER_SHARD_SECOND))
        }
        _ => Err(realty_model::config::ConfigError::Invalid {
            name: STREAM_SHARDS_VAR.to_owned(),
            value,
            reason: format!("the stream's shards: a whole number from 1 to {MAX_STREAM_SHARDS}"),
        }),
    }
}

/// One object a notification names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRequest {
    pub bucket: String,
    /// The object key, already URL-decoded.
    pub key: String,
    /// The version created (the lake bucket is versioned), when the notification says.
    pub version_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// A delivery is importing this version ([`claim`]): another delivery of it waits.
    Importing,
    /// Every accepted row was published (or was already).
    Done,
    /// Not importable; `reason` says why. Not retried.
    Rejected,
    /// Stopped part-way; retried, and a retry sends only what is missing.
    Failed,
}

/// A row of the file that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRow {
    /// The file's 1-based line (a CSV's header is line 1), as an editor numbers it.
    pub line: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub reason: String,
}

/// The result object, `import-results/<key>.json`. Bounded: at most
/// [`crate::replay::MAX_REPORTED_REJECTS`] rejected rows, each reason cut to 200
/// characters; `rejected` counts them all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportResult {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub status: ImportStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The encoding the file was read in (`UTF-8`, `windows-1252`, `UTF-16LE`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Data rows (or lines) read, good and bad.
    pub rows: usize,
    pub rejected: usize,
    /// Events that reached the stream in this attempt (a retry after a `failed` attempt
    /// counts what that one published as `unchanged`).
    pub published: usize,
    pub new: usize,
    pub changed: usize,
    /// Good rows that changed nothing (already sent by a poll or an earlier import).
    pub unchanged: usize,
    /// Rows older than what the stream already knew of their listing: skipped.
    pub stale: usize,
    /// Events not published (a `failed` import): its retry sends them.
    pub unpublished: usize,
    pub rejected_rows: Vec<RejectedRow>,
    /// When the attempt that wrote this began (an `importing` claim is held from then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
}

impl ImportResult {
    /// The result of `request` as an attempt begins at `now`: rejected, with nothing read.
    fn begun(request: &ImportRequest, now: DateTime<Utc>) -> Self {
        Self {
            key: request.key.clone(),
            version_id: request.version_id.clone(),
            status: ImportStatus::Rejected,
            reason: None,
            encoding: None,
            rows: 0,
            rejected: 0,
            published: 0,
            new: 0,
            changed: 0,
            unchanged: 0,
            stale: 0,
            unpublished: 0,
            rejected_rows: Vec::new(),
            started_at: Some(now),
            finished_at: now,
        }
    }

    /// This is the `done` result of the very version `request` names.
    fn is_done_for(&self, request: &ImportRequest) -> bool {
        self.status == ImportStatus::Done
            && request.version_id.is_some()
            && self.version_id == request.version_id
            && self.key == request.key
    }
}

/// What [`import`] did: its result and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    pub result: ImportResult,
    pub result_key: String,
    /// The result was written at `result_key`: not for a version superseded before it was
    /// imported, whose key's result is the later version's.
    pub result_written: bool,
    /// A result for this very version was already `done`: nothing was done again (a
    /// notification delivered twice).
    pub already_done: bool,
    /// Another delivery of this version holds its claim: nothing was done, and this one is
    /// delivered again later (to find that one's result, or its claim abandoned).
    pub claimed_elsewhere: bool,
}

impl ImportOutcome {
    /// An outcome whose result was not written.
    fn unwritten(result: ImportResult, result_key: String) -> Self {
        Self {
            result,
            result_key,
            result_written: false,
            already_done: false,
            claimed_elsewhere: false,
        }
    }

    fn claimed_elsewhere(result: ImportResult, result_key: String) -> Self {
        Self {
            claimed_elsewhere: true,
            ..Self::unwritten(result, result_key)
        }
    }

    /// The import stopped part-way, or another delivery holds it: the caller has it
    /// delivered again.
    pub fn retry(&self) -> bool {
        self.result.status == ImportStatus::Failed || self.claimed_elsewhere
    }
}

/// Where the result of the import of `key` is written.
pub fn result_key(key: &str) -> String {
    if key.len() <= MAX_NAMED_KEY_BYTES {
        format!("{RESULT_PREFIX}{key}.json")
    } else {
        let mut hasher = fnv::FnvHasher::default();
        std::hash::Hasher::write(&mut hasher, key.as_bytes());
        format!(
            "{RESULT_PREFIX}long-keys/{:016x}.json",
            std::hash::Hasher::finish(&hasher)
        )
    }
}

/// Why `bytes` are too many rows for one import, counted as lines before any is parsed (a
/// quoted CSV field across lines counts each: a file that close to the limit is split).
fn too_many_rows(bytes: &[u8]) -> Option<String> {
    // A bare `\r` ends a CSV record too (old Mac files): counted as a line.
    let ends = bytes
        .iter()
        .enumerate()
        .filter(|(i, b)| **b == b'\n' || (**b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count();
    let lines = ends + usize::from(bytes.last().is_some_and(|b| *b != b'\n' && *b != b'\r'));
    (lines > MAX_IMPORT_ROWS).then(|| {
        format!(
            "{lines} lines, over the {MAX_IMPORT_ROWS}-line limit of an import (the importer holds every row several times while it builds a market's state): split it, or use realty replay"
        )
    })
}

/// Why `key` cannot be an import, judged from its name alone.
fn refusal_by_name(key: &str) -> Option<String> {
    if !key.starts_with(IMPORT_PREFIX) {
        return Some(format!(
            "not under {IMPORT_PREFIX}: only objects dropped there are imported"
        ));
    }
    let lower = key.to_ascii_lowercase();
    if !IMPORT_EXTENSIONS.iter().any(|ext| lower.ends_with(ext)) {
        return Some(format!(
            "unknown format: the name ends in none of {} (CSV or JSON lines, uncompressed)",
            IMPORT_EXTENSIONS.join(", ")
        ));
    }
    None
}

/// Imports the object `request` names from the lake bucket `lake_bucket`: reads it through
/// `objects`, publishes its rows through `publisher` at `rate_per_second` at most (events,
/// over all its markets: [`import_rate`]) against the poll states in `states`, and writes
/// its result. An `Err` is a store that could not be reached before anything was decided
/// (the object or its result unreadable, the result unwritable): the caller retries the
/// whole, and a result this could not read is never written over (a `done` one stands).
///
/// Only one delivery of a version publishes it: the one whose claim ([`claim`]) lands; a
/// delivery that finds the claim of another under way is retried later, and then finds its
/// result `done`.
#[allow(clippy::too_many_arguments)]
pub async fn import<O, P, S>(
    request: &ImportRequest,
    lake_bucket: &str,
    objects: &O,
    publisher: &P,
    states: &S,
    rate_per_second: Option<f64>,
    now: DateTime<Utc>,
) -> Result<ImportOutcome, PortError>
where
    O: ImportObjects,
    P: EventPublisher,
    S: PollStateStore,
{
    let result_key = result_key(&request.key);
    let mut result = ImportResult::begun(request, now);
    if request.bucket != lake_bucket {
        // Only the lake bucket notifies this function; the result goes nowhere else.
        result.reason = Some(format!(
            "bucket {} is not the lake bucket {lake_bucket}",
            truncate(&request.bucket, 100)
        ));
        return Ok(ImportOutcome::unwritten(result, result_key));
    }
    let previous = objects.read_result(&result_key).await?;
    let previous_result = previous
        .as_ref()
        .and_then(|p| serde_json::from_slice::<ImportResult>(&p.body).ok());
    if let Some(previous) = previous_result {
        if previous.is_done_for(request) {
            return Ok(ImportOutcome {
                already_done: true,
                ..ImportOutcome::unwritten(previous, result_key)
            });
        }
        if claim::held_for(&previous, request, now) {
            return Ok(ImportOutcome::claimed_elsewhere(previous, result_key));
        }
    }
    let condition = previous.as_ref().map_or(ResultCondition::Absent, |p| {
        p.etag
            .as_deref()
            .map_or(ResultCondition::Any, ResultCondition::Matches)
    });
    let bytes = match read_object(request, objects).await {
        Err(e) => return Err(record_failure(objects, &result_key, result, e, condition).await),
        Ok(Read::Superseded(reason)) => {
            result.reason = Some(reason);
            return Ok(ImportOutcome::unwritten(result, result_key));
        }
        Ok(Read::Refused(reason)) => {
            result.reason = Some(reason);
            return write(objects, result, result_key, condition).await;
        }
        Ok(Read::Body(bytes)) => bytes,
    };
    let Some(claim) = claim::claim(objects, &result_key, &result, condition).await? else {
        result.status = ImportStatus::Importing;
        result.reason = Some(claim::HELD_ELSEWHERE.to_owned());
        return Ok(ImportOutcome::claimed_elsewhere(result, result_key));
    };
    let options = ReplayOptions {
        rate_per_second,
        started_at: now,
        run_budget: Some(IMPORT_RUN_BUDGET),
    };
    match replay(&bytes, publisher, states, options, &()).await {
        Ok(report) => fill(&mut result, &report),
        Err(ReplayError::NotAnExport(e)) => result.reason = Some(format!("not an export: {e}")),
        Err(e @ ReplayError::TooLarge { .. }) => result.reason = Some(e.to_string()),
    }
    write(objects, result, result_key, claim.condition()).await
}

/// What reading the object gave.
enum Read {
    Body(Vec<u8>),
    /// Never importable: why.
    Refused(String),
    /// A later version is imported instead: why.
    Superseded(String),
}

/// The object `request` names, or why it is no import; an `Err` is S3 out of reach.
async fn read_object<O: ImportObjects>(
    request: &ImportRequest,
    objects: &O,
) -> Result<Read, PortError> {
    if let Some(reason) = refusal_by_name(&request.key) {
        return Ok(Read::Refused(reason));
    }
    let object = objects
        .read(
            &request.key,
            request.version_id.as_deref(),
            MAX_IMPORT_BYTES,
        )
        .await?;
    Ok(match object {
        ImportObject::Missing => {
            Read::Refused("the object is gone: deleted before it was imported".to_owned())
        }
        ImportObject::Superseded => Read::Superseded(
            "superseded: a later version of the file was uploaded before this one was imported, and is imported instead"
                .to_owned(),
        ),
        ImportObject::TooLarge { bytes } => Read::Refused(format!(
            "{bytes} bytes, over the {MAX_IMPORT_BYTES}-byte limit of an import: split it, or use realty replay"
        )),
        ImportObject::Unservable { reason } => Read::Refused(reason),
        ImportObject::Body(bytes) => match too_many_rows(&bytes) {
            Some(reason) => Read::Refused(reason),
            None => Read::Body(bytes),
        },
    })
}

/// Writes `result` (a rejected one when it has a reason and no status of its own) under
/// `condition`: not written when another delivery changed the result since.
async fn write<O: ImportObjects>(
    objects: &O,
    result: ImportResult,
    result_key: String,
    condition: ResultCondition<'_>,
) -> Result<ImportOutcome, PortError> {
    let body = serde_json::to_vec_pretty(&result)
        .map_err(|e| PortError::new("import result", e.to_string()))?;
    let written = objects.write_result(&result_key, &body, condition).await?;
    if written == ResultWrite::Conflict {
        tracing::warn!(key = %result.key, "another delivery wrote this import's result meanwhile; its result stands");
    }
    Ok(ImportOutcome {
        result_written: written != ResultWrite::Conflict,
        ..ImportOutcome::unwritten(result, result_key)
    })
}

/// Records a try that S3 failed (the message is delivered again, and dead-lettered after its
/// last try): a `failed` result of this version naming the error, where an earlier version's
/// result, or none, would stand otherwise; written only over the result this try read (a
/// `done` one another delivery wrote since stands). Best effort: the try's own error is
/// returned whatever the write does.
async fn record_failure<O: ImportObjects>(
    objects: &O,
    result_key: &str,
    mut result: ImportResult,
    error: PortError,
    condition: ResultCondition<'_>,
) -> PortError {
    result.status = ImportStatus::Failed;
    result.reason = Some(format!("the file could not be read (tried again): {error}"));
    let written = match serde_json::to_vec_pretty(&result) {
        Ok(body) => objects.write_result(result_key, &body, condition).await,
        Err(e) => Err(PortError::new("import result", e.to_string())),
    };
    match written {
        Ok(ResultWrite::Written { .. }) => {}
        Ok(ResultWrite::Conflict) => {
            tracing::warn!(key = %result.key, "the failed try's result was not written: another delivery wrote one since")
        }
        Err(e) => {
            tracing::warn!(key = %result.key, error = %e, "the failed try's result was not written")
        }
    }
    error
}

/// The result of a replay that ran: `done`, `failed` (retried) or, when no row was good,
/// `rejected`.
fn fill(result: &mut ImportResult, report: &ReplayReport) {
    result.encoding = report.encoding.map(str::to_owned);
    result.rows = report.rows;
    result.rejected = report.rejected;
    result.published = report.published;
    result.new = report.new;
    result.changed = report.changed;
    result.unchanged = report.unchanged;
    result.stale = report.stale;
    result.unpublished = report.unpublished;
    result.rejected_rows = report
        .rejects
        .iter()
        .map(|r| RejectedRow {
            line: match r.position {
                RecordPosition::Line(n) | RecordPosition::Index(n) => n,
            },
            id: r
                .source_id
                .as_deref()
                .map(|id| truncate(id, MAX_REASON_CHARS)),
            reason: truncate(&r.reason, MAX_REASON_CHARS),
        })
        .collect();
    if report.rows > 0 && report.rejected == report.rows {
        result.status = ImportStatus::Rejected;
        result.reason = Some("every row was rejected".to_owned());
    } else if report.finished() {
        result.status = ImportStatus::Done;
    } else {
        result.status = ImportStatus::Failed;
        let failures: Vec<String> = report
            .failed_markets
            .iter()
            .map(|f| format!("{}: {}", f.key, truncate(&f.error, MAX_REASON_CHARS)))
            .take(10)
            .collect();
        result.reason = Some(format!(
            "stopped part-way ({} events unpublished, {} markets failed, {} state writes lost to a poll, {} markets not started in the function's time{}{}); it is retried, and a retry sends only what is missing",
            report.unpublished,
            report.failed_markets.len(),
            report.state_conflicts,
            report.markets_not_started,
            if failures.is_empty() { "" } else { ": " },
            failures.join("; ")
        ));
    }
}
