//! Properties of the whole metrics workflow over in-memory stores: incremental aggregates
//! equal a brute-force recomputation, whatever the batching, replays and crashes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

use super::aggregate::{ListingFacts, MarketAggregate, Scope, Standing};
use super::batch::{ListingState, SequenceNumber};
use super::histogram::LOG_QUANTILE_MAX_RELATIVE_ERROR;
use super::memory::MemoryStores;
use super::ports::*;
use super::process::{InputRecord, MetricsPorts, process_batch};
use crate::listing::*;
use crate::ports::PortError;
use crate::stats::nearest_rank;

pub(crate) const SHARD: &str = "shardId-000000000000";

pub(crate) fn listing(
    n: u32,
    city: usize,
    price: i64,
    status: ListingStatus,
    at: DateTime<Utc>,
) -> Listing {
    let (city_name, state, zip) =
        [("Nashville", "TN", "37201"), ("Syracuse", "NY", "13202")][city % 2];
    let address = Address {
        line: Some(format!("{n} Main St")),
        city: city_name.into(),
        state: state.into(),
        postal_code: Some(if n.is_multiple_of(3) {
            format!("{}9", &zip[..4])
        } else {
            zip.into()
        }),
        country: CountryCode::US,
        neighbourhood: None,
    };
    // Every fifth listing is a rental, at a monthly rent of a 200th of the price.
    let (offer, price, rent_estimate) = if n % 5 == 4 {
        (Offer::Rent, price / 200, None)
    } else {
        (Offer::Sale, price, Some(price / 180))
    };
    Listing {
        id: ListingId::new(ListingSource::Zillow, &(100_000 + n).to_string()).expect("valid id"),
        source: ListingSource::Zillow,
        status,
        offer,
        price_minor: price,
        currency: "USD".into(),
        previous_price_minor: None,
        property_type: if n.is_multiple_of(2) {
            PropertyType::SingleFamily
        } else {
            PropertyType::Condo
        },
        beds: Some(3),
        baths: Some(2.0),
        living_area_sqft: Some(1_000 + (n % 7) * 250),
        lot_size_sqft: None,
        market: MarketKey::for_address(&address).expect("market"),
        address,
        coordinates: None,
        on_market_date: NaiveDate::from_ymd_opt(2024, 1, 1 + (n % 28)),
        rent_estimate_minor: rent_estimate,
        source_url: None,
        observed_at: at,
        details: ListingDetails::default(),
    }
}

/// One step of a simulated market.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Change {
        listing: u32,
        price_pct: i64,
        status: u8,
    },
    Delist {
        listing: u32,
    },
}

/// `listings` listings appear, then each changes its price by `price_pct`, in that order.
fn appear_then_change_price(listings: u32, price_pct: i64) -> Vec<Step> {
    let appear = (0..listings).map(|listing| Step::Change {
        listing,
        price_pct: 0,
        status: 0,
    });
    let change = (0..listings).map(|listing| Step::Change {
        listing,
        price_pct,
        status: 0,
    });
    appear.chain(change).collect()
}

pub(crate) fn step_strategy(listings: u32) -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..listings, -30i64..20, 0u8..6).prop_map(|(listing, price_pct, status)| Step::Change { listing, price_pct, status }),
        1 => (0..listings).prop_map(|listing| Step::Delist { listing }),
    ]
}

/// Turns steps into the events a poller would emit, in stream order.
pub(crate) fn events_of(steps: &[Step]) -> Vec<ListingEvent> {
    let start = Utc
        .with_ymd_and_hms(2024, 10, 1, 8, 0, 0)
        .single()
        .expect("valid time");
    let mut live: BTreeMap<u32, Listing> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let at = start + Duration::minutes(37 * i as i64);
        match *step {
            Step::Change {
                listing: n,
                price_pct,
                status,
            } => {
                let status = [
                    ListingStatus::Active,
                    ListingStatus::Active,
                    ListingStatus::Active,
                    ListingStatus::Pending,
                    ListingStatus::UnderContract,
                    ListingStatus::Sold,
                ][status as usize % 6];
                match live.get(&n) {
                    None => {
                        let l = listing(
                            n,
                            n as usize,
                            25_000_000 + i64::from(n) * 1_000_000,
                            status,
                            at,
                        );
                        live.insert(n, l.clone());
                        out.push(ListingEvent::new_listing(l, format!("poll-{i}")));
                    }
                    Some(previous) => {
                        let mut next = previous.clone();
                        next.price_minor =
                            (previous.price_minor * (100 + price_pct) / 100).max(1_000_000);
                        next.status = status;
                        next.observed_at = at;
                        if let Some(e) =
                            ListingEvent::changed(previous, next.clone(), format!("poll-{i}"))
                        {
                            live.insert(n, next);
                            out.push(e);
                        }
                    }
                }
            }
            Step::Delist { listing: n } => {
                if let Some(last) = live.remove(&n) {
                    out.push(ListingEvent::delisted(last, at, format!("poll-{i}")));
                }
            }
        }
    }
    out
}

pub(crate) fn records_of(events: &[ListingEvent]) -> Vec<InputRecord> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| InputRecord {
            sequence_number: format!(
                "4959033827149025660855969253836157109592157598913658{:04}",
                i + 1
            ),
            data: e.encode().expect("encodes"),
            approximate_arrival: e.observed_at,
        })
        .collect()
}

/// Memory stores whose writes fail once, at the `fail_at`-th write: a crash between writes;
/// or every write from the `discard_from`-th on: a batch that fails until Lambda discards it.
#[derive(Default)]
struct CrashingStores {
    inner: MemoryStores,
    writes: AtomicUsize,
    fail_at: Option<usize>,
    discard_from: Option<usize>,
    /// Reads of the shard's journal.
    journal_reads: AtomicUsize,
}

impl CrashingStores {
    fn write(&self, op: &'static str) -> Result<(), PortError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        if Some(n) == self.fail_at || self.discard_from.is_some_and(|from| n >= from) {
            return Err(PortError::new(op, "injected crash"));
        }
        Ok(())
    }
}

impl ListingStore for CrashingStores {
    fn check_state(&self, state: &ListingState) -> Result<(), String> {
        self.inner.check_state(state)
    }
    async fn get_states(&self, ids: &[String]) -> Result<StoredStates, PortError> {
        self.inner.get_states(ids).await
    }
    async fn put_states(&self, states: Vec<ListingState>) -> Result<(), PortError> {
        self.write("put_states")?;
        self.inner.put_states(states).await
    }
}

impl MarketStore for CrashingStores {
    async fn get_aggregates(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, StoredAggregate>, PortError> {
        self.inner.get_aggregates(keys).await
    }
    async fn put_aggregates(&self, puts: &[AggregatePut<'_>]) -> Result<Vec<bool>, PortError> {
        // Each put a write of its own: a crash can land part of the call, as a transaction
        // of an earlier group can land before a later one fails.
        let mut landed = Vec::with_capacity(puts.len());
        for put in puts {
            self.write("put_aggregates")?;
            landed.extend(self.inner.put_aggregates(std::slice::from_ref(put)).await?);
        }
        Ok(landed)
    }
    async fn put_snapshots(&self, snapshots: &[Snapshot]) -> Result<(), PortError> {
        self.write("put_snapshots")?;
        self.inner.put_snapshots(snapshots).await
    }
    async fn write_interest(
        &self,
        writes: &[crate::metrics::interest::InterestWrite],
    ) -> Result<(), PortError> {
        self.write("write_interest")?;
        self.inner.write_interest(writes).await
    }
    async fn get_journal(&self, shard: &str) -> Result<Option<EncodedJournal>, PortError> {
        self.journal_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_journal(shard).await
    }
    async fn put_journal(
        &self,
        journal: &EncodedJournal,
    ) -> Result<Option<EncodedJournal>, PortError> {
        self.write("put_journal")?;
        self.inner.put_journal(journal).await
    }
    async fn delete_journal(&self, shard: &str) -> Result<(), PortError> {
        self.write("delete_journal")?;
        self.inner.delete_journal(shard).await
    }
}

impl EventArchive for CrashingStores {
    async fn put_lines(&self, lines: &[Vec<u8>]) -> Result<(), PortError> {
        self.write("put_lines")?;
        self.inner.put_lines(lines).await
    }
}

impl PoisonSink for CrashingStores {
    async fn send(&self, records: &[PoisonRecord]) -> Result<(), PortError> {
        self.inner.send(records).await
    }
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Delivers `records` in `cuts`-sized batches, each delivered `copies` times, halves first
/// when asked, with an optional crash; failed batches are re-delivered until they succeed.
fn deliver(
    stores: &mut CrashingStores,
    records: &[InputRecord],
    plan: &[(usize, u8, bool, Option<usize>)],
) {
    let mut start = 0;
    let mut plan_iter = plan.iter().cycle();
    while start < records.len() {
        let &(size, copies, halved_first, crash) = plan_iter.next().expect("cycle");
        let end = (start + size.max(1)).min(records.len());
        let batch = &records[start..end];
        let mut deliveries: Vec<&[InputRecord]> = Vec::new();
        if halved_first && batch.len() > 1 {
            deliveries.push(&batch[..batch.len() / 2]);
        }
        for _ in 0..copies.max(1) {
            deliveries.push(batch);
        }
        stores.fail_at = crash.map(|k| stores.writes.load(Ordering::SeqCst) + k);
        for delivery in deliveries {
            let mut pending = delivery;
            loop {
                let ports = MetricsPorts {
                    listings: &*stores,
                    markets: &*stores,
                    archive: &*stores,
                    poison: &*stores,
                    rules: Default::default(),
                };
                let outcome = block_on(process_batch(&ports, SHARD, pending));
                match outcome.failed_from {
                    None => break,
                    // Lambda re-delivers from the first failed record.
                    Some(from) => {
                        let i = pending
                            .iter()
                            .position(|r| r.sequence_number == from)
                            .expect("failed record is in the batch");
                        pending = &pending[i..];
                    }
                }
            }
        }
        stores.fail_at = None;
        start = end;
    }
}

/// Aggregates recomputed from scratch from the final listing states.
/// One scope's figures recomputed from the final listing states.
#[derive(Debug, Clone, Default)]
struct Recomputed {
    active: i64,
    pending: i64,
    price_sum: i64,
    prices: Vec<f64>,
    prices_per_sqft: Vec<f64>,
    rents: Vec<f64>,
}

fn brute_force(events: &[ListingEvent]) -> BTreeMap<String, Recomputed> {
    let mut last: BTreeMap<&str, (&ListingEvent, i64)> = BTreeMap::new();
    for e in events {
        let first = match (&e.kind, last.get(e.listing.id.as_str())) {
            (EventKind::New, _) | (_, None) => e.listing.price_minor,
            (_, Some((_, f))) => *f,
        };
        last.insert(e.listing.id.as_str(), (e, first));
    }
    let mut out: BTreeMap<String, Recomputed> = BTreeMap::new();
    for (e, first) in last.values() {
        if matches!(e.kind, EventKind::Delisted) {
            continue;
        }
        let Some(f) = ListingFacts::of(&e.listing, *first) else {
            continue;
        };
        for scope in f.scopes() {
            let entry = out.entry(scope.key()).or_default();
            match f.standing {
                Standing::Active => {
                    entry.active += 1;
                    entry.price_sum += f.price_minor;
                    entry.prices.push(f.price_minor as f64);
                    entry.prices_per_sqft.extend(f.price_per_sqft_minor());
                }
                Standing::Pending => entry.pending += 1,
                Standing::Rental => entry.rents.push(f.price_minor as f64),
            }
        }
    }
    out
}

fn batching() -> impl Strategy<Value = Vec<(usize, u8, bool, Option<usize>)>> {
    prop::collection::vec(
        (
            1usize..12,
            1u8..4,
            any::<bool>(),
            prop::option::weighted(0.3, 0usize..12),
        ),
        1..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn incremental_aggregates_equal_a_recomputation(
        steps in prop::collection::vec(step_strategy(10), 1..60),
        plan in batching(),
    ) {
        let events = events_of(&steps);
        let records = records_of(&events);
        let mut stores = CrashingStores::default();
        deliver(&mut stores, &records, &plan);

        let expected = brute_force(&events);
        let aggregates = stores.inner.aggregates.lock().expect("lock").clone();
        for (key, r) in expected.clone() {
            let a: &MarketAggregate = &aggregates.get(&key).expect("aggregate exists").aggregate;
            prop_assert_eq!((a.active, a.pending, a.price_sum_minor), (r.active, r.pending, r.price_sum), "{}", key);
            prop_assert_eq!(a.rents.rentals, r.rents.len() as i64, "{}", key);
            for q in [0.1, 0.5, 0.9] {
                for (exact, histogram) in [(&r.prices, &a.price), (&r.rents, &a.rents.rent)] {
                    match (nearest_rank(exact, q), histogram.quantile(q)) {
                        (Some(exact), Some(est)) => prop_assert!((est / exact - 1.0).abs() <= LOG_QUANTILE_MAX_RELATIVE_ERROR),
                        (None, None) => {}
                        other => prop_assert!(false, "{key}: {other:?}"),
                    }
                }
                if let (Some(exact), Some(est)) = (nearest_rank(&r.prices_per_sqft, q), a.price_per_sqft.quantile(q)) {
                    prop_assert!((est / exact - 1.0).abs() <= LOG_QUANTILE_MAX_RELATIVE_ERROR);
                }
            }
        }
        // Markets that emptied out hold nothing.
        for (key, item) in &aggregates {
            if !expected.contains_key(key) {
                let a = &item.aggregate;
                prop_assert_eq!((a.active, a.pending, a.price_sum_minor, a.rents.rentals), (0, 0, 0, 0), "{}", key);
            }
        }
        // Every event counted once: the day counters equal a count over the event list
        // (cuts of sale listings that stay listed: rentals count in no daily counter, and a
        // cut that comes with a sale is a delisting).
        let mut cuts = 0i64;
        let mut seen: BTreeMap<&str, i64> = BTreeMap::new();
        for e in &events {
            let before = seen.get(e.listing.id.as_str());
            let stays_listed = !matches!(e.listing.status, ListingStatus::Sold | ListingStatus::OffMarket);
            if e.listing.offer == Offer::Sale && stays_listed && matches!(e.kind, EventKind::Changed { .. }) && before.is_some_and(|b| e.listing.price_minor < *b) {
                cuts += 1;
            }
            seen.insert(e.listing.id.as_str(), e.listing.price_minor);
        }
        let counted: i64 = aggregates
            .iter()
            .filter(|(k, _)| k.starts_with("city#") && k.ends_with("#all"))
            .flat_map(|(_, item)| item.aggregate.daily.values().map(|d| d.price_cuts))
            .sum();
        prop_assert_eq!(counted, cuts);
    }

    #[test]
    fn any_delivery_ends_in_the_state_of_one_clean_delivery(
        steps in prop::collection::vec(step_strategy(8), 1..40),
        plan in batching(),
    ) {
        let events = events_of(&steps);
        let records = records_of(&events);
        // The same batches, each delivered once without a fault.
        let clean_plan: Vec<_> = plan.iter().map(|&(size, _, _, _)| (size, 1, false, None)).collect();
        let mut clean = CrashingStores::default();
        deliver(&mut clean, &records, &clean_plan);
        let mut messy = CrashingStores::default();
        deliver(&mut messy, &records, &plan);
        // Which lists of interest a listing is in is judged against its market's figures at
        // the end of the batch that wrote it, so it depends on the batching (a re-delivered
        // half batch judges against other figures): the figures and the rest of the state
        // do not.
        let without_interest = |stores: &CrashingStores| {
            let mut states = stores.inner.listings.lock().expect("lock").clone();
            for s in states.values_mut() {
                Arc::make_mut(s).interest.clear();
            }
            states
        };
        prop_assert_eq!(without_interest(&messy), without_interest(&clean));
        prop_assert_eq!(&*messy.inner.snapshots.lock().expect("lock"), &*clean.inner.snapshots.lock().expect("lock"));
        prop_assert_eq!(&*messy.inner.aggregates.lock().expect("lock"), &*clean.inner.aggregates.lock().expect("lock"));
    }
}

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
    pad(&mut records[0].data, super::process::MAX_EVENT_BYTES);
    pad(&mut records[1].data, super::process::MAX_EVENT_BYTES + 1);
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

/// Memory stores where another writer gets to each market item first, `lose` times: the
/// conditional put finds a revision it did not read.
struct ContendedStores {
    inner: MemoryStores,
    lose: usize,
    lost: std::sync::Mutex<BTreeMap<String, usize>>,
    /// How many keys each `get_aggregates` asked for.
    reads: std::sync::Mutex<Vec<usize>>,
}

impl MarketStore for ContendedStores {
    async fn get_aggregates(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, StoredAggregate>, PortError> {
        self.reads.lock().expect("lock").push(keys.len());
        self.inner.get_aggregates(keys).await
    }
    async fn put_aggregates(&self, puts: &[AggregatePut<'_>]) -> Result<Vec<bool>, PortError> {
        for put in puts {
            let mut lost = self.lost.lock().expect("lock");
            let n = lost.entry(put.key.to_owned()).or_default();
            if *n < self.lose {
                *n += 1;
                let mut aggregates = self.inner.aggregates.lock().expect("lock");
                let other = aggregates.entry(put.key.to_owned()).or_default();
                other.revision = format!("another writer {n}");
            }
        }
        self.inner.put_aggregates(puts).await
    }
    async fn put_snapshots(&self, snapshots: &[Snapshot]) -> Result<(), PortError> {
        self.inner.put_snapshots(snapshots).await
    }
    async fn write_interest(
        &self,
        writes: &[crate::metrics::interest::InterestWrite],
    ) -> Result<(), PortError> {
        self.inner.write_interest(writes).await
    }
    async fn get_journal(&self, shard: &str) -> Result<Option<EncodedJournal>, PortError> {
        self.inner.get_journal(shard).await
    }
    async fn put_journal(
        &self,
        journal: &EncodedJournal,
    ) -> Result<Option<EncodedJournal>, PortError> {
        self.inner.put_journal(journal).await
    }
    async fn delete_journal(&self, shard: &str) -> Result<(), PortError> {
        self.inner.delete_journal(shard).await
    }
}

fn contended(
    lose: usize,
    records: &[InputRecord],
) -> (ContendedStores, super::process::BatchOutcome) {
    let stores = ContendedStores {
        inner: MemoryStores::default(),
        lose,
        lost: Default::default(),
        reads: Default::default(),
    };
    let ports = MetricsPorts {
        listings: &stores.inner,
        markets: &stores,
        archive: &stores.inner,
        poison: &stores.inner,
        rules: Default::default(),
    };
    let outcome = block_on(process_batch(&ports, SHARD, records));
    (stores, outcome)
}

#[test]
fn lost_market_writes_are_reread_together_and_retried() {
    let steps: Vec<Step> = (0..12)
        .map(|i| Step::Change {
            listing: i % 6,
            price_pct: -5,
            status: 0,
        })
        .collect();
    let records = records_of(&events_of(&steps));
    let clean = MemoryStores::default();
    let ports = clean.ports();
    let outcome = block_on(process_batch(&ports, SHARD, &records));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    let markets = outcome.stats.markets_updated;
    assert!(markets > 4, "{markets} markets");

    let (stores, outcome) = contended(3, &records);
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!(outcome.stats.markets_updated, markets);
    assert_eq!(outcome.stats.conflict_retries, 3 * markets);
    // One read of every market, then one read per round of the ones that lost.
    assert_eq!(*stores.reads.lock().expect("lock"), [markets; 4]);
    assert_eq!(
        &*stores.inner.aggregates.lock().expect("lock"),
        &*clean.aggregates.lock().expect("lock")
    );
    assert_eq!(
        &*stores.inner.snapshots.lock().expect("lock"),
        &*clean.snapshots.lock().expect("lock")
    );
    assert_eq!(
        &*stores.inner.listings.lock().expect("lock"),
        &*clean.listings.lock().expect("lock")
    );

    // Contended past the limit: the batch fails, before any listing state is written.
    let limit = super::process::MAX_CONFLICT_RETRIES;
    let (_, outcome) = contended(limit - 1, &records);
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert_eq!(outcome.stats.conflict_retries, (limit - 1) * markets);
    let (stores, outcome) = contended(limit, &records);
    let error = outcome.error.expect("still contended");
    assert_eq!(
        outcome.failed_from.as_ref(),
        Some(&records[0].sequence_number)
    );
    assert!(
        error
            .message
            .contains(&format!("still contended after {limit} attempts")),
        "{error}"
    );
    assert!(stores.inner.listings.lock().expect("lock").is_empty());
}

/// Runs one delivery of `records` on `stores`, without re-delivery.
fn deliver_once(stores: &CrashingStores, records: &[InputRecord]) -> super::process::BatchOutcome {
    let ports = MetricsPorts {
        listings: stores,
        markets: stores,
        archive: stores,
        poison: stores,
        rules: Default::default(),
    };
    block_on(process_batch(&ports, SHARD, records))
}

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
    under.listing.address.line = Some("8".repeat(crate::listing::MAX_ADDRESS_LINE_BYTES));
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

#[test]
fn a_cut_stamped_two_minutes_early_by_a_slow_clock_is_applied() {
    let events = events_of(&[
        Step::Change {
            listing: 1,
            price_pct: 0,
            status: 0,
        },
        Step::Change {
            listing: 1,
            price_pct: -29,
            status: 0,
        },
    ]);
    let mut cut = events[1].clone();
    // The second poller's clock is 2 minutes slow: its later read is stamped earlier.
    cut.observed_at = events[0].observed_at - Duration::minutes(2);
    cut.listing.observed_at = cut.observed_at;
    let records = records_of(&[events[0].clone(), cut.clone()]);
    for batches in [vec![&records[..]], vec![&records[..1], &records[1..]]] {
        let stores = MemoryStores::default();
        for batch in batches {
            let outcome = block_on(process_batch(&stores.ports(), SHARD, batch));
            assert_eq!(outcome.failed_from, None);
            assert_eq!(outcome.stats.already_applied + outcome.stats.superseded, 0);
        }
        let listings = stores.listings.lock().expect("lock");
        let state = &listings[events[0].listing.id.as_str()];
        assert_eq!(state.listing.price_minor, cut.listing.price_minor);
        let aggregates = stores.aggregates.lock().expect("lock");
        let market = &aggregates[&Scope::city("syracuse-ny").key()].aggregate;
        assert_eq!(market.price_sum_minor, cut.listing.price_minor);
        assert_eq!(market.active_with_cut, 1);
        let cuts: i64 = market.daily.values().map(|d| d.price_cuts).sum();
        assert_eq!(cuts, 1);
    }
    // An old poll's event put late (observed an hour before the state) is still dropped,
    // and counted as superseded.
    let mut stale = events[1].clone();
    stale.observed_at = events[0].observed_at - Duration::hours(1);
    stale.listing.observed_at = stale.observed_at;
    let records = records_of(&[events[0].clone(), stale]);
    let stores = MemoryStores::default();
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records));
    assert_eq!(outcome.stats.superseded, 1);
    let listings = stores.listings.lock().expect("lock");
    assert_eq!(
        listings[events[0].listing.id.as_str()].listing.price_minor,
        events[0].listing.price_minor
    );
}

#[test]
fn a_removal_from_a_drifted_market_is_reported_not_hidden() {
    let events = events_of(&[
        Step::Change {
            listing: 1,
            price_pct: 0,
            status: 0,
        },
        Step::Delist { listing: 1 },
    ]);
    let records = records_of(&events);
    let stores = MemoryStores::default();
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records[..1]));
    assert_eq!(outcome.stats.market_underflows, 0);
    // Corruption: the markets lose the listing (their counts and histograms), nothing else.
    for item in stores.aggregates.lock().expect("lock").values_mut() {
        let daily = item.aggregate.daily.clone();
        let as_of = item.aggregate.as_of;
        item.aggregate = MarketAggregate {
            daily,
            as_of,
            ..MarketAggregate::default()
        };
    }
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records[1..]));
    assert_eq!(outcome.failed_from, None, "the batch goes on");
    // Four markets, each missing the listing: its count and each of its histograms.
    assert!(
        outcome.stats.market_underflows >= 4 * 5,
        "{}",
        outcome.stats.market_underflows
    );
    for item in stores.aggregates.lock().expect("lock").values() {
        assert!(item.aggregate.price.count() == 0);
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
            l.address.line = Some(noise(crate::listing::MAX_ADDRESS_LINE_BYTES));
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

/// Each daily snapshot carries the trends of the day as the metrics function wrote it, and
/// they are what the daily snapshots themselves give: the medians each day closed with.
#[test]
fn daily_snapshots_carry_the_trends_their_days_give() {
    // About 40 days of changes (37 minutes a step), delivered in uneven batches.
    let steps: Vec<Step> = (0..1_600u32)
        .map(|i| Step::Change {
            listing: i % 9,
            price_pct: [-3, 0, 2, 0, -1][(i % 5) as usize],
            status: (i % 7) as u8 % 3,
        })
        .collect();
    let events = events_of(&steps);
    let records = records_of(&events);
    let mut stores = CrashingStores::default();
    deliver(
        &mut stores,
        &records,
        &[(37, 1, false, None), (5, 2, true, None)],
    );
    let snapshots = stores.inner.snapshots.lock().expect("lock").clone();
    let key = Scope::city("nashville-tn").key();
    let days: BTreeMap<NaiveDate, (super::aggregate::DayClose, Option<super::history::Trends>)> =
        snapshots
            .values()
            .filter(|s| s.scope_key == key)
            .filter_map(|s| match s.period {
                Period::Day(d) => Some((d, ((&s.figures).into(), s.trends.clone()))),
                Period::Hour(_) => None,
            })
            .collect();
    assert!(days.len() >= 35, "{} days", days.len());
    let closes: BTreeMap<NaiveDate, super::aggregate::DayClose> =
        days.iter().map(|(d, (c, _))| (*d, *c)).collect();
    for (day, (_, stored)) in &days {
        let before: BTreeMap<_, _> = closes.range(..=*day).map(|(d, c)| (*d, *c)).collect();
        assert_eq!(
            stored.as_ref(),
            Some(&super::history::trends(&before, *day)),
            "{day}"
        );
    }
    let last = days
        .values()
        .last()
        .and_then(|(_, t)| t.clone())
        .expect("trends");
    assert!(last.median_price_ma_30d.is_some() && last.median_price_change_30d_pct.is_some());
}

/// A listing cut and sold in one change (a feed that reports status, read between polls) is
/// a delisting, not a price cut; a cut of a listing that stays listed is a cut.
#[test]
fn a_cut_that_comes_with_a_sale_is_a_delisting_not_a_cut() {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 2, 12, 0, 0)
        .single()
        .expect("time");
    let first = listing(1, 0, 30_000_000, ListingStatus::Active, at);
    let mut sold = first.clone();
    sold.status = ListingStatus::Sold;
    sold.price_minor = 28_000_000;
    sold.observed_at = at + Duration::hours(1);
    let other = listing(2, 0, 40_000_000, ListingStatus::Active, at);
    let mut cut = other.clone();
    cut.status = ListingStatus::Pending;
    cut.price_minor = 38_000_000;
    cut.observed_at = at + Duration::hours(2);
    let events = [
        ListingEvent::new_listing(first.clone(), "poll-1"),
        ListingEvent::new_listing(other.clone(), "poll-1"),
        ListingEvent::changed(&first, sold, "poll-2").expect("a change"),
        ListingEvent::changed(&other, cut, "poll-3").expect("a change"),
    ];
    let stores = MemoryStores::default();
    let outcome = block_on(process_batch(&stores.ports(), SHARD, &records_of(&events)));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    let aggregates = stores.aggregates.lock().expect("lock");
    let city = &aggregates[&Scope::city("nashville-tn").key()].aggregate;
    let day = city.daily[&at.date_naive()];
    assert_eq!(
        (day.price_cuts, day.delistings, day.new_listings),
        (1, 1, 2)
    );
}

/// A batch writes the snapshots of the periods it closes only; readers get the open hour and
/// day from the live item, as the write that closes them will store them.
#[test]
fn open_periods_are_read_from_the_live_item_and_stored_when_they_close() {
    use crate::api::ports::MarketReader;
    // 37 minutes apart from 08:00: two events in the 08:00 hour, the third at 09:14; new
    // listings for sale in Nashville (even numbers; 4 would be a rental).
    let steps: Vec<Step> = [0u32, 2, 6]
        .into_iter()
        .map(|i| Step::Change {
            listing: i,
            price_pct: 0,
            status: 0,
        })
        .collect();
    let records = records_of(&events_of(&steps));
    let stores = MemoryStores::default();
    let ports = stores.ports();
    let key = Scope::city("nashville-tn").key();
    let read = |from: &str, to: &str| block_on(stores.snapshots(&key, from, to)).expect("read");

    let outcome = block_on(process_batch(&ports, SHARD, &records[..2]));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    assert!(
        stores.snapshots.lock().expect("lock").is_empty(),
        "nothing closed yet"
    );
    let open_hour = read("H#", "H#~");
    let open_day = read("D#", "D#~");
    assert_eq!(
        open_hour.iter().map(|s| s.sk.as_str()).collect::<Vec<_>>(),
        ["H#2024-10-01T08"]
    );
    assert_eq!(
        open_day.iter().map(|s| s.sk.as_str()).collect::<Vec<_>>(),
        ["D#2024-10-01"]
    );
    assert_eq!(open_hour[0].figures.active_listings, 2);
    assert!(open_day[0].trends.is_some(), "a day carries its trends");
    // Outside the range asked for, the open periods are not returned.
    assert!(read("H#2024-10-02", "H#~").is_empty());

    let outcome = block_on(process_batch(&ports, SHARD, &records[2..]));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    let stored: Vec<String> = stores
        .snapshots
        .lock()
        .expect("lock")
        .keys()
        .filter(|(k, _)| *k == key)
        .map(|(_, sk)| sk.clone())
        .collect();
    assert_eq!(
        stored,
        ["H#2024-10-01T08"],
        "the hour closed, inside its day: the day stays open, not written"
    );
    let hours = read("H#", "H#~");
    assert_eq!(hours[0], open_hour[0], "stored as it was read while open");
    assert_eq!(hours[1].sk, "H#2024-10-01T09");
    assert_eq!(hours[1].figures.active_listings, 3);
    // The day is still open: read from the live item, with the third listing.
    let open_day = read("D#", "D#~");
    assert_eq!(open_day[0].figures.active_listings, 3);

    // A listing the next day closes the hour and the day: both stored as they were read
    // while open, the day with its trends.
    let next_day = Utc
        .with_ymd_and_hms(2024, 10, 2, 7, 30, 0)
        .single()
        .expect("time");
    let mut late = records_of(&[ListingEvent::new_listing(
        listing(8, 0, 41_000_000, ListingStatus::Active, next_day),
        "poll-next-day",
    )]);
    late[0].sequence_number = "49590338271490256608559692538361571095921575989136589999".into();
    let outcome = block_on(process_batch(&ports, SHARD, &late));
    assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    let stored = stores.snapshots.lock().expect("lock").clone();
    let stored_day = &stored[&(key.clone(), "D#2024-10-01".to_owned())];
    assert_eq!(
        crate::store::MarketSnapshotItem::from(stored_day),
        open_day[0],
        "the day as it was read while open"
    );
    assert!(
        stored_day.trends.is_some(),
        "a closed day carries its trends"
    );
    assert!(stored.contains_key(&(key.clone(), "H#2024-10-01T09".to_owned())));
    assert_eq!(
        read("D#", "D#~")
            .iter()
            .map(|s| (s.sk.as_str(), s.figures.active_listings))
            .collect::<Vec<_>>(),
        [("D#2024-10-01", 3), ("D#2024-10-02", 4)]
    );
}

/// A listing that leaves a market its event does not name (here its type, corrected) is
/// taken out of it: the market is read and written from the stored state, not the event.
#[test]
fn a_listing_that_leaves_a_market_its_event_does_not_name_is_removed_from_it() {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 2, 12, 0, 0)
        .single()
        .expect("time");
    let house = listing(2, 0, 30_000_000, ListingStatus::Active, at);
    let neighbour = listing(6, 0, 50_000_000, ListingStatus::Active, at);
    assert_eq!(house.property_type, PropertyType::SingleFamily);
    let mut condo = house.clone();
    condo.property_type = PropertyType::Condo;
    condo.price_minor = 29_000_000;
    condo.observed_at = at + Duration::hours(1);
    let stores = MemoryStores::default();
    let records = records_of(&[
        ListingEvent::new_listing(house.clone(), "poll-1"),
        ListingEvent::new_listing(neighbour, "poll-1"),
        ListingEvent::changed(&house, condo, "poll-2").expect("a change"),
    ]);
    for batch in [&records[..2], &records[2..]] {
        let outcome = block_on(process_batch(&stores.ports(), SHARD, batch));
        assert_eq!(outcome.failed_from, None, "{:?}", outcome.error);
    }
    let aggregates = stores.aggregates.lock().expect("lock");
    let active = |property_type| {
        let key = super::aggregate::city_scope_key("nashville-tn", Some(property_type));
        aggregates[&key].aggregate.active
    };
    assert_eq!(active(PropertyType::SingleFamily), 1, "the neighbour only");
    assert_eq!(active(PropertyType::Condo), 1);
    assert_eq!(
        aggregates[&Scope::city("nashville-tn").key()]
            .aggregate
            .active,
        2
    );
}
