//! Publishing listing events to Kinesis with PutRecords (partition key = the listing's market,
//! [`ListingEvent::partition_key`]: a market's events, and so each listing's, in one shard).

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use super::retry::{RetryPolicy, Sent, send_with_retries};
use realty_model::listing::ListingEvent;
use realty_model::ports::PortError;
use realty_poller::ports::{EventPublisher, PublishFailure};

/// PutRecords takes at most 500 records and 5 MiB (data and partition keys) a call, and
/// 1 MiB (data and partition key) a record: one record past it fails the whole call.
pub const MAX_RECORDS: usize = 500;
pub const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// What a call of ours carries at most: a poll's events are one market's, one partition key,
/// so one shard, which takes 1 MiB a second. A 5 MiB call to it is throttled in part every
/// time, and its throttled records, sent again, land after the later ones of their market.
pub const MAX_CALL_BYTES: usize = MAX_RECORD_BYTES;
/// Records a shard takes a second.
pub const SHARD_RECORDS_PER_SECOND: usize = 1_000;

/// Spaces one market's calls to what its shard takes a second (1 MiB, 1,000 records): calls
/// sent back to back were throttled in part, and their throttled records, sent again, landed
/// after later ones. A poll of a market under a shard's second (most) never waits.
struct ShardPace {
    started: tokio::time::Instant,
    bytes: usize,
    records: usize,
}

impl ShardPace {
    fn new() -> Self {
        Self {
            started: tokio::time::Instant::now(),
            bytes: 0,
            records: 0,
        }
    }

    /// Waits, if a call of `bytes` and `records` would take the second past the shard's.
    async fn before(&mut self, bytes: usize, records: usize) {
        let over = self.bytes + bytes > MAX_CALL_BYTES
            || self.records + records > SHARD_RECORDS_PER_SECOND;
        if (self.bytes > 0 || self.records > 0) && over {
            tokio::time::sleep_until(self.started + std::time::Duration::from_secs(1)).await;
            *self = Self::new();
        }
        self.bytes += bytes;
        self.records += records;
    }
}

/// Why a record is never sent, or `None` when it fits Kinesis's record limit.
pub fn oversize_reason(data_bytes: usize, partition_key_bytes: usize) -> Option<String> {
    let size = data_bytes + partition_key_bytes;
    (size > MAX_RECORD_BYTES).then(|| {
        format!(
            "event of {size} bytes (data and partition key) is over Kinesis's {MAX_RECORD_BYTES}-byte record limit; not sent"
        )
    })
}

#[derive(Debug, Clone)]
pub struct KinesisPublisher {
    pub client: Client,
    pub stream: String,
    pub retry: RetryPolicy,
}

/// Groups entries (index, size) into calls within PutRecords' limits and a shard's second
/// ([`MAX_CALL_BYTES`]), in order.
pub fn chunk_by_limits(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    realty_model::ports::chunk_by_limits(sizes, MAX_RECORDS, MAX_CALL_BYTES)
}

type Indexed = (usize, PutRecordsRequestEntry);

impl EventPublisher for KinesisPublisher {
    async fn publish(&self, events: &[ListingEvent]) -> Result<Vec<PublishFailure>, PortError> {
        let Encoded {
            entries,
            sizes,
            mut failures,
        } = encode(events)?;
        let mut pace = ShardPace::new();
        for range in chunk_by_limits(&sizes) {
            pace.before(sizes[range.clone()].iter().sum(), range.len())
                .await;
            let chunk = entries[range].to_vec();
            let result =
                send_with_retries(self.retry, chunk, |chunk| self.put_records(chunk)).await;
            if let Err(unsent) = result {
                failures.extend(unsent.items.into_iter().map(|(index, _)| PublishFailure {
                    index,
                    error: unsent.last_error.clone(),
                }));
            }
        }
        failures.sort_by_key(|f| f.index);
        Ok(failures)
    }
}

/// The events as PutRecords entries, with their sizes (data and partition key), and those
/// that are never sent.
struct Encoded {
    entries: Vec<Indexed>,
    sizes: Vec<usize>,
    failures: Vec<PublishFailure>,
}

/// Encodes each event as an entry; one that cannot be encoded, or is over the record
/// limit, fails alone. An entry the SDK cannot build fails the whole publish.
fn encode(events: &[ListingEvent]) -> Result<Encoded, PortError> {
    let mut encoded = Encoded {
        entries: Vec::with_capacity(events.len()),
        sizes: Vec::with_capacity(events.len()),
        failures: Vec::new(),
    };
    for (i, event) in events.iter().enumerate() {
        let data = match event.encode() {
            Ok(data) => data,
            Err(e) => {
                encoded.failures.push(PublishFailure {
                    index: i,
                    error: e.to_string(),
                });
                continue;
            }
        };
        if let Some(reason) = oversize_reason(data.len(), event.partition_key().len()) {
            // Rejected alone, before the call: it would fail its whole chunk of up to
            // 500, on every poll.
            tracing::error!(listing = %event.listing.id, %reason, "event rejected");
            metrics::counter!("events_rejected_oversize").increment(1);
            encoded.failures.push(PublishFailure {
                index: i,
                error: reason,
            });
            continue;
        }
        encoded.sizes.push(data.len() + event.partition_key().len());
        let entry = PutRecordsRequestEntry::builder()
            .data(Blob::new(data))
            .partition_key(event.partition_key())
            .build()
            .map_err(|e| PortError::new("PutRecords", e.to_string()))?;
        encoded.entries.push((i, entry));
    }
    Ok(encoded)
}

impl KinesisPublisher {
    /// One PutRecords of `chunk`: the entries to send again.
    async fn put_records(&self, chunk: Vec<Indexed>) -> Sent<Indexed> {
        let request: Vec<PutRecordsRequestEntry> = chunk.iter().map(|(_, e)| e.clone()).collect();
        match self
            .client
            .put_records()
            .stream_name(&self.stream)
            .set_records(Some(request))
            .send()
            .await
        {
            // Results line up with requests; an answer that does not is not trusted for any
            // of them (a record sent twice is read once downstream).
            Ok(out) if out.records.len() != chunk.len() => Sent::Answered {
                error: format!(
                    "PutRecords answered {} results for {} records",
                    out.records.len(),
                    chunk.len()
                ),
                failed: chunk,
            },
            // Re-send the entries that carry an error, whatever the failed count says.
            Ok(out) => {
                let mut error = None;
                let failed = chunk
                    .into_iter()
                    .zip(out.records)
                    .filter_map(|(entry, result)| {
                        result.error_code.map(|code| {
                            error = Some(format!(
                                "{code}: {}",
                                result.error_message.unwrap_or_default()
                            ));
                            entry
                        })
                    })
                    .collect();
                Sent::Answered {
                    failed,
                    error: error.unwrap_or_default(),
                }
            }
            Err(e) => Sent::Failed {
                unsent: chunk,
                error: crate::sdk::error_line(&e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(chunks: &[std::ops::Range<usize>]) -> Vec<usize> {
        chunks.iter().map(|r| r.len()).collect()
    }

    #[test]
    fn a_record_may_be_1_mib_and_not_a_byte_more() {
        assert_eq!(oversize_reason(MAX_RECORD_BYTES - 20, 20), None);
        let reason = oversize_reason(MAX_RECORD_BYTES - 20, 21).expect("too big");
        assert!(reason.contains("1048577 bytes"), "{reason}");
    }

    #[test]
    fn a_call_holds_500_records_and_not_501() {
        assert_eq!(lens(&chunk_by_limits(&[10; 500])), [500]);
        assert_eq!(lens(&chunk_by_limits(&[10; 501])), [500, 1]);
    }

    #[test]
    fn a_call_holds_a_shard_s_second_and_not_a_byte_more() {
        // A record of exactly 1 MiB fills a call to the byte.
        assert_eq!(lens(&chunk_by_limits(&[MAX_RECORD_BYTES; 3])), [1, 1, 1]);
        let half = MAX_CALL_BYTES / 2;
        assert_eq!(lens(&chunk_by_limits(&[half, half, 1])), [2, 1]);
        assert_eq!(lens(&chunk_by_limits(&[half, half + 1])), [1, 1]);
        const { assert!(MAX_CALL_BYTES <= MAX_REQUEST_BYTES) };
    }
}
