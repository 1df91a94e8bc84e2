//! The events Firehose delivered under `listings/`: which objects a run reads, and each
//! object's JSON lines, decompressed as they are read. Memory holds the object as stored
//! (GZIP on AWS) and one line, never the object's JSON whole: a chunk of highly compressible
//! events is bounded by the JSON it decompresses to ([`crate::curate::RunLimits`]), not by
//! its size in S3.

use std::io::{BufRead, BufReader, Read};

use chrono::{DateTime, Duration, Utc};
use realty_model::listing::MAX_EVENT_RECORD_BYTES;

use crate::LakeError;

/// Where Firehose delivers the events.
pub const EVENTS_PREFIX: &str = "listings/";
/// An object larger than this is not read (Firehose writes buffers of at most 128 MiB; the
/// template asks for far smaller ones), so one object can never exhaust the function.
pub const MAX_OBJECT_BYTES: i64 = 128 * 1024 * 1024;
/// Most bytes an object decompresses to: Firehose buffers at most 128 MiB of records before
/// it compresses them, so a body that decompresses past twice that is no batch of its (a
/// GZIP bomb: 128 MB can hold 100 GB), and is not read on.
pub const MAX_OBJECT_JSON_BYTES: u64 = 256 * 1024 * 1024;

/// One object of events, as listed.
pub(crate) struct ObjectRef {
    pub(crate) key: String,
    pub(crate) modified: DateTime<Utc>,
}

/// Whether an object of `size` bytes is read: at most [`MAX_OBJECT_BYTES`] (a Firehose
/// object is at most 128 MB; anything larger is not the stream's, and holding it would cost
/// the function its memory).
pub(crate) fn within_object_bound(size: Option<i64>) -> bool {
    size.unwrap_or(0) <= MAX_OBJECT_BYTES
}

/// The JSON lines of one object's body (GZIP, one member or several, as Firehose writes it
/// on AWS; plain as written locally), decompressed as they are read. A body that cannot be
/// read to its end (a GZIP stream cut short or corrupt, or decompressing past its bound)
/// gives every whole line before the fault, then stops: [`ObjectLines::fault`] says why.
pub(crate) struct ObjectLines<'a> {
    reader: Box<dyn BufRead + 'a>,
    line: Vec<u8>,
    /// Bytes decompressed so far, newlines and blank lines included.
    json_bytes: u64,
    limit: u64,
    fault: Option<String>,
}

impl<'a> ObjectLines<'a> {
    /// The lines of `body`, decompressing no more than `limit` bytes of it.
    pub(crate) fn new(body: &'a [u8], limit: u64) -> Self {
        let reader: Box<dyn BufRead + 'a> = if body.starts_with(&[0x1f, 0x8b]) {
            Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(body)))
        } else {
            Box::new(body)
        };
        Self {
            reader,
            line: Vec::new(),
            json_bytes: 0,
            limit,
            fault: None,
        }
    }

    /// The next line that is not blank, without its newline; `None` at the end of the body
    /// or at a fault. A line longer than an event can be ([`MAX_EVENT_RECORD_BYTES`]) is
    /// given cut just past that length (so that decoding refuses it as too large) and its
    /// rest is skipped unread into memory.
    pub(crate) fn next_line(&mut self) -> Option<&[u8]> {
        loop {
            if self.fault.is_some() {
                return None;
            }
            self.line.clear();
            let cap = MAX_EVENT_RECORD_BYTES as u64 + 1;
            let read = (&mut self.reader)
                .take(cap)
                .read_until(b'\n', &mut self.line);
            let mut consumed = match read {
                Ok(0) => return None,
                Ok(n) => n as u64,
                // The line read when the stream failed may be cut: only whole lines count.
                Err(e) => return self.stop(format!("gunzip: {e}")),
            };
            if self.line.len() as u64 == cap && self.line.last() != Some(&b'\n') {
                match self.reader.skip_until(b'\n') {
                    Ok(skipped) => consumed += skipped as u64,
                    Err(e) => return self.stop(format!("gunzip: {e}")),
                }
            }
            self.json_bytes += consumed;
            if self.json_bytes > self.limit {
                return self.stop(format!("decompresses past {} bytes", self.limit));
            }
            if self.line.last() == Some(&b'\n') {
                self.line.pop();
            }
            if !self.line.iter().all(u8::is_ascii_whitespace) {
                return Some(&self.line);
            }
        }
    }

    fn stop(&mut self, reason: String) -> Option<&[u8]> {
        self.fault = Some(reason);
        None
    }

    /// Why the body could not be read to its end, if it could not.
    pub(crate) fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }
}

/// The event objects in `bucket` modified at or after `since` (all without), oldest first,
/// and how many of those were skipped as too large to read.
pub(crate) async fn objects_since(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    since: Option<DateTime<Utc>>,
) -> Result<(Vec<ObjectRef>, usize), LakeError> {
    // Firehose names objects `listings/dt=<day its oldest record arrived>/...`: an object
    // written since `since` is under that day or the one before (a buffer across
    // midnight), so the listing starts there rather than at the lake's first day.
    let start_after = since.map(|t| {
        format!(
            "{EVENTS_PREFIX}dt={}",
            (t - Duration::days(1)).format("%Y-%m-%d")
        )
    });
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(EVENTS_PREFIX)
        .set_start_after(start_after)
        .into_paginator()
        .send();
    let (mut objects, mut too_large) = (Vec::new(), 0);
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| s3_error("ListObjectsV2", &e))?;
        for object in page.contents.unwrap_or_default() {
            let (Some(key), Some(modified)) = (object.key, object.last_modified) else {
                continue;
            };
            let Some(modified) = DateTime::from_timestamp(modified.secs(), modified.subsec_nanos())
            else {
                continue;
            };
            if since.is_some_and(|since| modified < since) {
                continue;
            }
            if !within_object_bound(object.size) {
                tracing::error!(key, size = object.size, "lake object too large: skipped");
                too_large += 1;
                continue;
            }
            objects.push(ObjectRef { key, modified });
        }
    }
    objects.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.key.cmp(&b.key)));
    Ok((objects, too_large))
}

/// The body of one object in `bucket` as stored (GZIP on AWS, plain locally:
/// [`ObjectLines`] reads either); `None` when it is gone. A read that failed is an error
/// (the next run reads it again).
pub(crate) async fn object_body(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<aws_sdk_s3::primitives::AggregatedBytes>, LakeError> {
    let got = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(got) => got,
        // Expired by the lake's lifecycle rule between the listing and the read.
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
            tracing::warn!(key, "lake object gone before it was read: skipped");
            return Ok(None);
        }
        Err(e) => return Err(s3_error("GetObject", &e)),
    };
    let body = got
        .body
        .collect()
        .await
        .map_err(|e| LakeError::Invalid(format!("reading {key}: {e}")))?;
    Ok(Some(body))
}

pub(crate) fn s3_error<E: std::error::Error + 'static>(operation: &str, e: &E) -> LakeError {
    LakeError::Invalid(format!(
        "S3 {operation}: {}",
        realty_aws::sdk::error_chain(e)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, bytes).expect("gzip");
        encoder.finish().expect("gzip")
    }

    /// Every line `lines` gives, and its fault.
    fn read_all(body: &[u8], limit: u64) -> (Vec<Vec<u8>>, Option<String>) {
        let mut lines = ObjectLines::new(body, limit);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line() {
            out.push(line.to_vec());
        }
        (out, lines.fault().map(str::to_owned))
    }

    #[test]
    fn objects_at_and_just_past_their_size_bound() {
        assert!(within_object_bound(Some(MAX_OBJECT_BYTES)));
        assert!(!within_object_bound(Some(MAX_OBJECT_BYTES + 1)));
        assert!(within_object_bound(None));
    }

    /// An object decompressing to exactly its bound is read whole; one byte more (a GZIP
    /// bomb, in small) gives the lines within the bound and stops there; plain text and
    /// several GZIP members (Firehose appends them) are read alike; blank lines are none.
    #[test]
    fn objects_decompress_at_and_just_past_their_bound() {
        let text = b"{\"a\":1}\n\n{\"b\":2}\n".repeat(512);
        let limit = text.len() as u64;
        let expected: Vec<Vec<u8>> = (0..512)
            .flat_map(|_| [b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()])
            .collect();
        assert_eq!(read_all(&gzip(&text), limit), (expected.clone(), None));
        assert_eq!(read_all(&text, limit), (expected.clone(), None));
        let members = [
            gzip(&text[..limit as usize / 2]),
            gzip(&text[limit as usize / 2..]),
        ]
        .concat();
        assert_eq!(read_all(&members, limit), (expected.clone(), None));

        let longer = [&text[..], b"{\"c\":3}\n"].concat();
        let (lines, fault) = read_all(&gzip(&longer), limit);
        assert_eq!(lines, expected, "the lines within the bound are kept");
        assert!(fault.is_some_and(|f| f.contains("decompresses past")));
        // A last line without its newline is a line.
        assert_eq!(
            read_all(b"{\"a\":1}\n{\"b\":2}", 100),
            (vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()], None)
        );
    }

    /// A GZIP stream cut short gives the whole lines decompressed before the cut, not the
    /// one it falls in, and says why it stopped.
    #[test]
    fn a_stream_cut_short_keeps_its_whole_lines() {
        let lines: Vec<Vec<u8>> = (0..2_000)
            .map(|i| format!("{{\"event\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 97)).into_bytes())
            .collect();
        let text: Vec<u8> = lines
            .iter()
            .flat_map(|l| [&l[..], b"\n"].concat())
            .collect();
        let whole = gzip(&text);
        let (kept, fault) = read_all(&whole[..whole.len() / 2], MAX_OBJECT_JSON_BYTES);
        assert!(fault.is_some_and(|f| f.starts_with("gunzip")));
        assert!(
            !kept.is_empty() && kept.len() < lines.len(),
            "{} lines of {} kept",
            kept.len(),
            lines.len()
        );
        assert_eq!(
            kept[..],
            lines[..kept.len()],
            "the lines before the cut, whole"
        );
    }

    /// A line past an event's bound is given cut just past it (decoding refuses it) and the
    /// line after it is read as usual; one at the bound is given whole.
    #[test]
    fn lines_at_and_just_past_an_events_bound() {
        let at = vec![b'a'; MAX_EVENT_RECORD_BYTES];
        let past = vec![b'b'; MAX_EVENT_RECORD_BYTES + 10];
        let text = [&at[..], b"\n", &past[..], b"\n{}\n"].concat();
        let (lines, fault) = read_all(&gzip(&text), MAX_OBJECT_JSON_BYTES);
        assert_eq!(fault, None);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], at);
        assert_eq!(lines[1].len(), MAX_EVENT_RECORD_BYTES + 1);
        assert_eq!(lines[2], b"{}");
    }
}
