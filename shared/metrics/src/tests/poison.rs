//! Records the workflow cannot apply go to the error sink and the rest of the batch is
//! applied: malformed, too large for the data lake, not UTF-8, too large for DynamoDB.

use chrono::Duration;

use super::{SHARD, Step, block_on, events_of, records_of};
use crate::memory::MemoryStores;
use crate::ports::*;
use crate::process::{self, InputRecord, process_batch};
use realty_model::scope::Scope;
use realty_model::state::SequenceNumber;

#[test]
fn poison_records_go_to_the_sink_and_the_rest_is_applied() {
    let events = events_of(&[
        Step::Change {
            listing: 1,
            price_pct: 0,
            status: 0,
        },
        Step::Change {
            listing: 2,
            price_pct: 0,
            status: 0,
        },
    ]);
    let mut records = records_of(&events);
    let poison = [
        b"not json".to_vec(),
        br#"{"schema_version": 99}"#.to_vec(),
        vec![b'x'; 10 * 1024 * 1024],
        String::from_utf8(records[0].data.clone())
            .expect("utf8")
            .replace("\"price_minor\":26000000", "\"price_minor\":-5")
            .into_bytes(),
    ];
    for (i, data) in poison.into_iter().enumerate() {
        records.insert(
            1,
            InputRecord {
                sequence_number: format!("{}", 900 + i),
                data,
                approximate_arrival: records[0].approximate_arrival,
            },
        );
    }
    let stores = MemoryStores::default();
    let ports = stores.ports();
    let outcome = block_on(process_batch(&ports, SHARD, &records));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!((outcome.stats.accepted, outcome.stats.rejected), (2, 4));
    let sunk = stores.poison.lock().expect("lock");
    assert_eq!(sunk.len(), 4);
    assert!(sunk.iter().all(|p| !p.reason.is_empty()));
    assert!(
        sunk.iter()
            .any(|p| p.data_bytes == 10 * 1024 * 1024 && p.data_prefix.len() <= 2048)
    );
    let aggregates = stores.aggregates.lock().expect("lock");
    let nashville = &aggregates[&Scope::city("nashville-tn").key()].aggregate;
    let syracuse = &aggregates[&Scope::city("syracuse-ny").key()].aggregate;
    assert_eq!(nashville.active + syracuse.active, 2);
    assert_eq!(stores.archived.lock().expect("lock").len(), 2);
    assert!(SequenceNumber::parse(&records[0].sequence_number).is_some());
}

#[test]
fn an_event_too_large_for_the_data_lake_is_poison_not_a_blocked_shard() {
    let events = events_of(&[
        Step::Change {
            listing: 1,
            price_pct: 0,
            status: 0,
        },
        Step::Change {
            listing: 2,
            price_pct: 0,
            status: 0,
        },
    ]);
    let mut records = records_of(&events);
    // Valid JSON either way: trailing whitespace pads an event to the limit and past it.
    let pad = |data: &mut Vec<u8>, to: usize| data.resize(to, b' ');
    pad(&mut records[0].data, process::MAX_EVENT_BYTES);
    pad(&mut records[1].data, process::MAX_EVENT_BYTES + 1);
    let stores = MemoryStores::default();
    let ports = stores.ports();
    let outcome = block_on(process_batch(&ports, SHARD, &records));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!((outcome.stats.accepted, outcome.stats.rejected), (1, 1));
    let sunk = stores.poison.lock().expect("lock");
    assert_eq!(sunk[0].reason_kind, "too_large");
    assert_eq!(sunk[0].sequence_number, records[1].sequence_number);
    let archived = stores.archived.lock().expect("lock");
    assert!(archived[0].len() <= MAX_ARCHIVE_RECORD_BYTES);
}

#[test]
fn an_event_with_other_than_utf8_in_a_field_this_version_skips_is_poison() {
    // The decoder skips fields it does not know without reading their text; the journal
    // and the data lake hold the record's JSON, which must be UTF-8.
    let mut records = records_of(&events_of(&[
        Step::Change {
            listing: 1,
            price_pct: 0,
            status: 0,
        },
        Step::Change {
            listing: 2,
            price_pct: 0,
            status: 0,
        },
    ]));
    let mut data = b"{\"from_a_newer_poller\":\"caf\xe9\",".to_vec();
    data.extend_from_slice(&records[0].data[1..]);
    records[0].data = data;
    let stores = MemoryStores::default();
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!((outcome.stats.accepted, outcome.stats.rejected), (1, 1));
    let sunk = stores.poison.lock().expect("lock");
    assert_eq!(sunk[0].sequence_number, records[0].sequence_number);
    assert_eq!(sunk[0].reason_kind, "malformed");
    assert!(sunk[0].reason.contains("UTF-8"), "{}", sunk[0].reason);
    assert_eq!(stores.archived.lock().expect("lock").len(), 1);
}

#[test]
fn a_listing_item_too_large_for_dynamodb_goes_to_the_error_sink() {
    let steps: Vec<Step> = (0..3)
        .map(|listing| Step::Change {
            listing,
            price_pct: 0,
            status: 0,
        })
        .chain([
            Step::Change {
                listing: 0,
                price_pct: -10,
                status: 0,
            },
            Step::Change {
                listing: 1,
                price_pct: -10,
                status: 0,
            },
        ])
        .collect();
    let events = events_of(&steps);
    let mut records = records_of(&events);
    // An event whose listing item would be over 400 KB: a 450 KB address line (the
    // encoder refuses it, so it is written as a misbehaving producer would).
    let mut huge = events[3].clone();
    huge.listing.address.line = Some("9".repeat(450 * 1024));
    records[3].data = serde_json::to_vec(&huge).expect("json");
    // An address line at its limit is stored.
    let mut under = events[4].clone();
    under.listing.address.line = Some("8".repeat(realty_model::listing::MAX_ADDRESS_LINE_BYTES));
    records[4].data = under.encode().expect("encodes");
    let stores = MemoryStores::default();
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!((outcome.stats.accepted, outcome.stats.rejected), (4, 1));
    {
        let sunk = stores.poison.lock().expect("lock");
        // Refused where it is read, by the field's bound, with a short reason.
        assert_eq!(sunk[0].reason_kind, "invalid_listing");
        assert_eq!(sunk[0].sequence_number, records[3].sequence_number);
        assert!(
            sunk[0].reason.contains("address.line"),
            "{}",
            sunk[0].reason
        );
        assert!(
            sunk[0].reason.len() <= 1024,
            "{} bytes",
            sunk[0].reason.len()
        );
    }
    // A later normal cut of that listing counts it once.
    let later = events_of(&[
        Step::Change {
            listing: 0,
            price_pct: 0,
            status: 0,
        },
        Step::Change {
            listing: 0,
            price_pct: -20,
            status: 0,
        },
    ]);
    let mut cut = later[1].clone();
    cut.observed_at += Duration::hours(5);
    cut.listing.observed_at = cut.observed_at;
    let record = InputRecord {
        sequence_number: "49590338271490256608559692538361571095921575989136589999".into(),
        data: cut.encode().expect("encodes"),
        approximate_arrival: cut.observed_at,
    };
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &[record]));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    let aggregates = stores.aggregates.lock().expect("lock");
    let all: i64 = aggregates
        .iter()
        .filter(|(k, _)| k.starts_with("city#") && k.ends_with("#all"))
        .map(|(_, a)| a.aggregate.active)
        .sum();
    assert_eq!(all, 3, "three listings, each counted once");
}
