//! A batch that stops part way is finished from its journal by the next one, a replay
//! changes nothing, and a journal too big for one item is written in halves.

use std::sync::atomic::Ordering;

use chrono::{TimeZone, Utc};

use super::crashing_stores::{CrashingStores, deliver_once};
use super::{SHARD, Step, appear_then_change_price, block_on, events_of, listing, records_of};
use crate::memory::MemoryStores;
use crate::ports::*;
use crate::process::process_batch;
use realty_model::listing::*;

fn assert_same_stores(a: &MemoryStores, b: &MemoryStores, context: &str) {
    assert_eq!(
        *a.listings.lock().expect("lock"),
        *b.listings.lock().expect("lock"),
        "listings, {context}"
    );
    assert_eq!(
        *a.aggregates.lock().expect("lock"),
        *b.aggregates.lock().expect("lock"),
        "markets, {context}"
    );
    assert_eq!(
        *a.snapshots.lock().expect("lock"),
        *b.snapshots.lock().expect("lock"),
        "snapshots, {context}"
    );
    assert!(
        a.journals.lock().expect("lock").is_empty(),
        "journal left, {context}"
    );
}

/// The distinct events in the data lake, by (listing, observation time, kind): what readers
/// deduplicate on.
fn archived_events(stores: &MemoryStores) -> std::collections::BTreeSet<String> {
    stores
        .archived
        .lock()
        .expect("lock")
        .iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_slice(line).expect("a JSON line");
            format!("{} {} {}", v["listing"]["id"], v["observed_at"], v["kind"])
        })
        .collect()
}

#[test]
fn a_batch_discarded_after_any_write_is_finished_by_the_next_and_a_replay_changes_nothing() {
    // Six listings appear, are cut (the batch Lambda discards), then cut again, delisted or
    // put under contract (the next events of the same listings).
    let mut steps: Vec<Step> = (0..6)
        .map(|listing| Step::Change {
            listing,
            price_pct: 0,
            status: 0,
        })
        .collect();
    steps.extend((0..6).map(|listing| Step::Change {
        listing,
        price_pct: -10,
        status: 0,
    }));
    steps.extend((0..6).map(|listing| match listing % 3 {
        0 => Step::Delist { listing },
        1 => Step::Change {
            listing,
            price_pct: -5,
            status: 3,
        },
        _ => Step::Change {
            listing,
            price_pct: -5,
            status: 0,
        },
    }));
    let records = records_of(&events_of(&steps));
    let (first, rest) = records.split_at(6);
    let (discarded, next) = rest.split_at(6);

    let clean = CrashingStores::default();
    for batch in [first, discarded, next] {
        assert_eq!(deliver_once(&clean, batch).failed_from, None);
    }

    let mut k = 1;
    loop {
        let mut messy = CrashingStores::default();
        assert_eq!(deliver_once(&messy, first).failed_from, None);
        // Every write from the k-th on fails, on every delivery, until Lambda gives up.
        messy.discard_from = Some(messy.writes.load(Ordering::SeqCst) + k);
        let outcome = deliver_once(&messy, discarded);
        let discarded_part_way = outcome.failed_from.is_some();
        messy.discard_from = None;
        let outcome = deliver_once(&messy, next);
        assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
        if discarded_part_way {
            assert_eq!(
                outcome.stats.journals_finished, 1,
                "discard after write {k}"
            );
        }
        assert_same_stores(
            &messy.inner,
            &clean.inner,
            &format!("discarded after write {k}, then the next batch"),
        );
        // The data lake has every event of the three batches (at least once).
        assert_eq!(
            archived_events(&messy.inner),
            archived_events(&clean.inner),
            "data lake, discarded after write {k}"
        );
        // The operator replays the discarded range: nothing changes.
        let outcome = deliver_once(&messy, discarded);
        assert_eq!(outcome.failed_from, None);
        assert_eq!(outcome.stats.markets_updated, 0);
        assert_same_stores(
            &messy.inner,
            &clean.inner,
            &format!("discarded after write {k}, the next batch, then a replay"),
        );
        if !discarded_part_way {
            break; // past the batch's last write
        }
        k += 1;
    }
    assert!(k > 4, "only {k} writes were discarded after");
}

#[test]
fn batches_that_write_find_a_left_journal_by_writing_theirs_without_a_read() {
    let steps = appear_then_change_price(8, -10);
    let records = records_of(&events_of(&steps));
    let (first, second) = records.split_at(8);
    let stores = CrashingStores::default();
    for batch in [first, second] {
        assert_eq!(deliver_once(&stores, batch).failed_from, None);
    }
    assert_eq!(stores.journal_reads.load(Ordering::SeqCst), 0);
    // A re-delivery writes nothing: it reads for a journal to finish, once.
    let outcome = deliver_once(&stores, second);
    assert_eq!(outcome.stats.already_applied, 8);
    assert_eq!(stores.journal_reads.load(Ordering::SeqCst), 1);

    // A batch that stopped after its journal: the next one finds it by its own write.
    let mut left = CrashingStores::default();
    assert_eq!(deliver_once(&left, first).failed_from, None);
    left.discard_from = Some(left.writes.load(Ordering::SeqCst) + 1);
    assert!(deliver_once(&left, second).failed_from.is_some());
    left.discard_from = None;
    let outcome = deliver_once(&left, &second[..4]);
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!(outcome.stats.journals_finished, 1);
    assert_eq!(
        outcome.stats.already_applied, 4,
        "planned again after finishing"
    );
    assert_eq!(left.journal_reads.load(Ordering::SeqCst), 0);
    assert_same_stores(&left.inner, &stores.inner, "a left journal finished");
}

#[test]
fn a_journal_written_with_its_events_as_json_strings_is_finished_too() {
    // Journals embed each event's JSON as it came; those written before held it as a JSON
    // string. One of those, left by a batch that stopped after its journal, is finished.
    let steps = appear_then_change_price(4, -5);
    let records = records_of(&events_of(&steps));
    let (first, next) = records.split_at(4);
    let clean = CrashingStores::default();
    for batch in [first, next] {
        assert_eq!(deliver_once(&clean, batch).failed_from, None);
    }

    let mut messy = CrashingStores::default();
    // Every write after the journal's fails, until Lambda gives up on the batch.
    messy.discard_from = Some(messy.writes.load(Ordering::SeqCst) + 1);
    assert!(deliver_once(&messy, first).failed_from.is_some());
    messy.discard_from = None;
    {
        let mut journals = messy.inner.journals.lock().expect("lock");
        let json = zstd::decode_all(journals[SHARD].body.as_slice()).expect("a Zstandard frame");
        let mut old: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        for entry in old["events"].as_array_mut().expect("events") {
            entry["event"] = serde_json::Value::String(entry["event"].to_string());
        }
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
        std::io::Write::write_all(&mut encoder, &serde_json::to_vec(&old).expect("JSON"))
            .expect("deflate");
        let body = encoder.finish().expect("deflate");
        journals.insert(
            SHARD.to_owned(),
            EncodedJournal {
                shard: SHARD.to_owned(),
                body,
            },
        );
    }
    let outcome = deliver_once(&messy, next);
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!(outcome.stats.journals_finished, 1);
    assert_same_stores(
        &messy.inner,
        &clean.inner,
        "an old journal, then the next batch",
    );
    assert_eq!(
        archived_events(&messy.inner),
        archived_events(&clean.inner),
        "data lake"
    );
}

#[test]
fn a_batch_left_after_its_journal_is_finished_from_its_records_as_they_came() {
    // The journal embeds each record's JSON as the stream carried it (`JournalEntry`):
    // whitespace around and inside it, and the values of fields this version does not know,
    // must read back from it as they went in.
    let steps = appear_then_change_price(4, -10);
    let compact = records_of(&events_of(&steps));
    let mut sent = compact.clone();
    for record in &mut sent {
        let mut value: serde_json::Value = serde_json::from_slice(&record.data).expect("JSON");
        value["from_a_newer_poller"] = serde_json::json!({
            "nested": [1, -2.5e3, true, false, null, "a \"quoted\" \\ line\nbreak, caf\u{e9} \u{1F3E0}"],
            "empty": {},
            "none": [],
        });
        let pretty = serde_json::to_string_pretty(&value).expect("JSON");
        record.data = format!(" \n\t{pretty}\r\n ").into_bytes();
    }
    let clean = CrashingStores::default();
    for batch in compact.chunks(4) {
        assert_eq!(deliver_once(&clean, batch).failed_from, None);
    }
    let (first, second) = sent.split_at(4);
    let mut messy = CrashingStores::default();
    assert_eq!(deliver_once(&messy, first).failed_from, None);
    // The journal lands, then every write fails until Lambda gives up on the batch.
    messy.discard_from = Some(messy.writes.load(Ordering::SeqCst) + 1);
    assert!(deliver_once(&messy, second).failed_from.is_some());
    assert_eq!(messy.inner.journals.lock().expect("lock").len(), 1);
    messy.discard_from = None;
    // The shard's next batch (a replay of the first, nothing new) finishes it from the journal.
    let outcome = deliver_once(&messy, first);
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!(outcome.stats.journals_finished, 1);
    assert_same_stores(&messy.inner, &clean.inner, "finished from the journal");
    assert_eq!(archived_events(&messy.inner), archived_events(&clean.inner));
    // Each lake line is one line, whatever the record's own line breaks.
    for line in messy.inner.archived.lock().expect("lock").iter() {
        assert_eq!(memchr::memchr_iter(b'\n', line).count(), 1);
        assert!(line.ends_with(b"\n"));
    }
}

#[test]
fn a_batch_too_big_for_one_journal_item_is_journaled_in_halves() {
    // 500 new listings whose address and URL hardly compress: the batch's journal is well
    // over DynamoDB's 400 KB item (the in-memory store refuses such a journal as DynamoDB
    // would), so it must be split.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut noise = |len: usize| {
        let mut out = String::with_capacity(len + 16);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.push_str(&format!("{state:016x}"));
        }
        out.truncate(len);
        out
    };
    let at = Utc
        .with_ymd_and_hms(2026, 11, 2, 12, 0, 0)
        .single()
        .expect("time");
    let events: Vec<ListingEvent> = (0..500)
        .map(|n| {
            let mut l = listing(
                n,
                n as usize,
                30_000_000 + i64::from(n),
                ListingStatus::Active,
                at,
            );
            l.address.line = Some(noise(realty_model::listing::MAX_ADDRESS_LINE_BYTES));
            l.source_url = Some(format!("https://example.com/{}", noise(2_000)));
            ListingEvent::new_listing(l, "poll-1")
        })
        .collect();
    let records = records_of(&events);
    let whole: usize = records.iter().map(|r| r.data.len()).sum();
    assert!(whole > 2 * MAX_JOURNAL_BODY_BYTES, "{whole} bytes");
    let stores = MemoryStores::default();
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!(outcome.stats.accepted, 500);
    let aggregates = stores.aggregates.lock().expect("lock");
    let all: i64 = aggregates
        .iter()
        .filter(|(k, _)| k.starts_with("city#") && k.ends_with("#all"))
        .map(|(_, a)| a.aggregate.active + a.aggregate.rents.rentals)
        .sum();
    assert_eq!(
        all, 500,
        "every listing counted once (for sale or for rent)"
    );
    assert!(
        stores.journals.lock().expect("lock").is_empty(),
        "no journal left"
    );
}
