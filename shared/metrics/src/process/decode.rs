//! Decoding a batch, and setting aside as poison (with their reasons) the records that do not
//! decode or could not be stored.

use super::InputRecord;
use crate::batch::DecodedRecord;
use crate::ports::{JournalEntry, MAX_ARCHIVE_RECORD_BYTES, MAX_JOURNAL_BODY_BYTES, PoisonRecord};
use realty_model::listing::{EventKind, ListingEvent};
use realty_model::ports::MAX_ITEM_BYTES;
use realty_model::state::ListingStore;
use realty_model::state::{AppliedEvent, ListingState, MAX_RECENT_EVENTS, SequenceNumber, Version};

/// Largest event accepted: its data-lake line (plus the newline) must fit one Firehose
/// record (1,000 KiB), below Kinesis's 1 MiB. A larger record would fail every delivery and
/// block its shard, so it goes to the error sink instead.
pub const MAX_EVENT_BYTES: usize = MAX_ARCHIVE_RECORD_BYTES - 1;
/// Bytes of a poison record kept in the error sink.
pub const POISON_PREFIX_BYTES: usize = 2048;

/// A batch split into decodable events and poison records.
#[derive(Debug, Default)]
pub struct DecodedBatch {
    pub events: Vec<DecodedRecord>,
    /// Index in the batch of each of `events`.
    pub accepted: Vec<usize>,
    pub poison: Vec<PoisonRecord>,
}

/// Splits a batch into decodable events and poison records.
pub fn decode_records(shard: &str, records: &[InputRecord]) -> DecodedBatch {
    let mut out = DecodedBatch {
        events: Vec::with_capacity(records.len()),
        accepted: Vec::with_capacity(records.len()),
        poison: Vec::new(),
    };
    for (index, record) in records.iter().enumerate() {
        let reject = |kind: &str, reason: String| poison_of(shard, record, kind, reason);
        let Some(sequence) = SequenceNumber::parse(&record.sequence_number) else {
            out.poison.push(reject(
                "bad_sequence_number",
                format!("not a sequence number: {:?}", record.sequence_number),
            ));
            continue;
        };
        if record.data.len() > MAX_EVENT_BYTES {
            out.poison.push(reject(
                "too_large",
                format!(
                    "{} bytes: the data lake takes events up to {MAX_EVENT_BYTES} bytes (Firehose's record limit)",
                    record.data.len()
                ),
            ));
            continue;
        }
        match ListingEvent::decode_arrived_at(&record.data, record.approximate_arrival) {
            Ok(event) => {
                out.events.push(DecodedRecord { sequence, event });
                out.accepted.push(index);
            }
            Err(e) => out.poison.push(reject(e.kind(), e.to_string())),
        }
    }
    out
}

/// An accepted event whose JSON is under this many bytes makes a listing item under
/// DynamoDB's limit (the item holds the listing, its id and market key, each no larger than
/// the event but for the optional fields a record may leave out and the item writes as
/// null, and a few small fields), so only larger ones are measured exactly.
const EVENT_BYTES_ALWAYS_STORABLE: usize = (MAX_ITEM_BYTES - 16 * 1024) / 3;

/// Splits off the events that could not be stored (their listing item over DynamoDB's item
/// limit, or the event alone over a journal's) into `poison`: written, they would fail every
/// delivery of their batch, and the innocent records with them. Returns the rest with their
/// journal entries (their records' JSON as it came, which the size check reads).
pub(super) fn storable<'r, L: ListingStore>(
    listings: &L,
    shard: &str,
    records: &'r [InputRecord],
    decoded: Vec<DecodedRecord>,
    accepted: Vec<usize>,
    poison: &mut Vec<PoisonRecord>,
) -> (Vec<DecodedRecord>, Vec<usize>, Vec<JournalEntry<'r>>) {
    let mut kept = (
        Vec::with_capacity(decoded.len()),
        Vec::with_capacity(decoded.len()),
        Vec::with_capacity(decoded.len()),
    );
    for (record, index) in decoded.into_iter().zip(accepted) {
        // The record decoded, so it is UTF-8 (`ListingEvent::decode` checks); borrowed here as
        // text for the journal.
        let json = match std::str::from_utf8(&records[index].data) {
            Ok(json) => json,
            Err(e) => {
                let reason = format!("not UTF-8: {e}");
                poison.push(poison_of(shard, &records[index], "malformed", reason));
                continue;
            }
        };
        // The value without the whitespace around it (JSON's four kinds), which the journal
        // need not keep.
        let json = json.trim_matches([' ', '\t', '\n', '\r']);
        let entry = JournalEntry {
            sequence: record.sequence.clone(),
            json,
        };
        if json.len() > EVENT_BYTES_ALWAYS_STORABLE {
            let mut state = ListingState {
                listing: record.event.listing.clone(),
                first_price_minor: record.event.listing.price_minor,
                delisted: matches!(record.event.kind, EventKind::Delisted),
                version: Version {
                    observed_at: record.event.observed_at,
                    sequence: record.sequence.clone(),
                },
                recent_events: Vec::new(),
                interest: Vec::new(),
                baseline: record.event.baseline,
                may_alert: true,
            };
            // The stored item keeps its latest events too: size it with a full list.
            let applied = AppliedEvent::from(&state);
            state.recent_events = vec![applied; MAX_RECENT_EVENTS];
            let too_large = listings.check_state(&state).err().or_else(|| {
                (json.len() > MAX_JOURNAL_BODY_BYTES).then(|| {
                    format!(
                        "event of {} bytes is over the {MAX_JOURNAL_BODY_BYTES}-byte journal item",
                        json.len()
                    )
                })
            });
            if let Some(reason) = too_large {
                poison.push(poison_of(shard, &records[index], "item_too_large", reason));
                continue;
            }
        }
        kept.2.push(entry);
        kept.0.push(record);
        kept.1.push(index);
    }
    kept
}

/// The poison record of `record`.
fn poison_of(shard: &str, record: &InputRecord, kind: &str, reason: String) -> PoisonRecord {
    PoisonRecord {
        shard: shard.to_owned(),
        sequence_number: record.sequence_number.clone(),
        reason_kind: kind.to_owned(),
        reason,
        data_bytes: record.data.len(),
        data_prefix: String::from_utf8_lossy(
            &record.data[..record.data.len().min(POISON_PREFIX_BYTES)],
        )
        .into_owned(),
    }
}
