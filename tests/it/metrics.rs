//! The metrics function against the local AWS: replays and crashes leave every DynamoDB item
//! as one clean delivery does; poison records go to the error sink without failing the batch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::event::kinesis::KinesisEvent;
use base64::Engine as _;
use libtest_mimic::Failed;
use realty_aws::functions::metrics::{MetricsFunction, handle_event};
use realty_metrics::ports::*;
use realty_metrics::process::MetricsPorts;
use realty_metrics::reconcile::{MarketScan as _, reconcile};
use realty_model::config::StackResources;
use realty_model::ports::PortError;
use realty_model::state::{ListingState, ListingStore, StoredStates};
use realty_tests::{Explain, TestAws};
use serde_json::{Value, json};

crate::async_tests!(
    replays_and_crashes_leave_every_item_as_one_clean_delivery,
    poison_records_in_the_middle_go_to_the_error_sink,
    a_batch_discarded_after_any_write_then_the_next_batch_and_a_replay_leave_the_truth,
    two_shards_writing_one_market_concurrently_give_the_true_figures,
    a_cut_stamped_two_minutes_early_by_a_slow_clock_is_counted,
);

pub(crate) fn ensure(condition: bool, message: impl Into<String>) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message.into().into())
    }
}

/// A batch of `n` events in one hour: new listings across two ZIPs and types, then cuts,
/// rises and delistings of some of them, in the exact Kinesis event format.
pub(crate) fn batch(n: usize) -> KinesisEvent {
    let sample: Value = serde_json::from_str(include_str!("../../events/metrics-kinesis.json"))
        .expect("sample event");
    let template = sample["Records"][0].clone();
    let first: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(template["kinesis"]["data"].as_str().expect("data"))
            .expect("base64"),
    )
    .expect("event json");
    let mut records = Vec::new();
    let mut prices: BTreeMap<usize, i64> = BTreeMap::new();
    for i in 0..n {
        let listing_no = if i < n / 2 { i } else { (i * 7) % (n / 2) };
        // From 15:05 to about 16:14: the batch closes the 15:00 hour (its snapshot is
        // stored) and leaves the 16:00 one open.
        let minute = 5 + i * 70 / n;
        let at = format!(
            "2025-09-12T{:02}:{:02}:{:02}Z",
            15 + minute / 60,
            minute % 60,
            i % 60
        );
        let mut event = first.clone();
        let zip = if listing_no % 2 == 0 {
            "37201"
        } else {
            "37203"
        };
        {
            let listing = &mut event["listing"];
            listing["id"] = json!(format!("zillow:{}", 5_000_000 + listing_no));
            listing["address"]["line"] = json!(format!("{listing_no} Church St"));
            listing["address"]["postal_code"] = json!(zip);
            listing["market"]["zip"] = json!(zip);
            listing["property_type"] = json!(if listing_no % 3 == 0 {
                "single_family"
            } else {
                "condo"
            });
            listing["living_area_sqft"] = json!(600 + listing_no * 37);
            listing["observed_at"] = json!(at);
        }
        event["observed_at"] = json!(at);
        match prices.get(&listing_no).copied() {
            None => {
                let price = 30_000_000 + (listing_no as i64) * 1_250_000;
                event["listing"]["price_minor"] = json!(price);
                prices.insert(listing_no, price);
            }
            Some(old) if i % 5 == 0 => {
                event["kind"] = json!("delisted");
                event["listing"]["price_minor"] = json!(old);
                prices.remove(&listing_no);
            }
            Some(old) => {
                let new = if i % 3 == 0 {
                    old + old / 20
                } else {
                    old - old / 5
                };
                event["listing"]["price_minor"] = json!(new);
                event["listing"]["previous_price_minor"] = json!(old);
                event["kind"] = json!("changed");
                event["changes"] =
                    json!({"price": {"old": old, "new": new}, "status": null, "fields": []});
                prices.insert(listing_no, new);
            }
        }
        let mut record = template.clone();
        let seq = format!(
            "4959033827149025660855969253836157109592157598913{:07}",
            1000 + i
        );
        record["kinesis"]["sequenceNumber"] = json!(seq);
        // Each record reaches Kinesis a second after its event was observed.
        let observed = chrono::DateTime::parse_from_rfc3339(&at).expect("time");
        record["kinesis"]["approximateArrivalTimestamp"] = json!(observed.timestamp() + 1);
        record["kinesis"]["partitionKey"] = event["listing"]["id"].clone();
        record["kinesis"]["data"] = json!(
            base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&event).expect("json"))
        );
        record["eventID"] = json!(format!("shardId-000000000000:{seq}"));
        records.push(record);
    }
    serde_json::from_value(json!({ "Records": records })).expect("a Kinesis event")
}

pub(crate) fn part(event: &KinesisEvent, range: std::ops::Range<usize>) -> KinesisEvent {
    let mut e = event.clone();
    e.records = event.records[range].to_vec();
    e
}

/// The real adapters, with the `fail_at`-th write failing once: a crash between two writes;
/// with `discard`, every write from the `fail_at`-th on fails, as in a batch that fails on
/// every delivery until Lambda discards it.
pub(crate) struct Crashing<'a> {
    pub(crate) real: &'a MetricsFunction,
    pub(crate) writes: AtomicUsize,
    pub(crate) fail_at: usize,
    pub(crate) discard: bool,
}

impl Crashing<'_> {
    fn write(&self, op: &'static str) -> Result<(), PortError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        if n == self.fail_at || (self.discard && n > self.fail_at) {
            return Err(PortError::new(op, "injected crash"));
        }
        Ok(())
    }

    /// How many writes were made (or attempted).
    pub(crate) fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    pub(crate) fn ports(&self) -> MetricsPorts<'_, Self, Self, Self, Self> {
        MetricsPorts {
            listings: self,
            markets: self,
            archive: self,
            poison: self,
            rules: Default::default(),
        }
    }
}

impl ListingStore for Crashing<'_> {
    fn check_state(&self, state: &ListingState) -> Result<(), String> {
        self.real.listings.check_state(state)
    }
    async fn get_states(&self, ids: &[&str]) -> Result<StoredStates, PortError> {
        self.real.listings.get_states(ids).await
    }
    async fn put_states(&self, mut states: Vec<ListingState>) -> Result<(), PortError> {
        // Half the states land before the crash, as when a BatchWriteItem sequence dies.
        let rest = states.split_off(states.len() / 2);
        self.real.listings.put_states(states).await?;
        self.write("put_states")?;
        self.real.listings.put_states(rest).await
    }
}

impl MarketStore for Crashing<'_> {
    async fn get_aggregates(
        &self,
        keys: &[String],
    ) -> Result<BTreeMap<String, StoredAggregate>, PortError> {
        self.real.markets.get_aggregates(keys).await
    }
    async fn put_aggregates(&self, puts: &[AggregatePut<'_>]) -> Result<Vec<bool>, PortError> {
        // Each put a write of its own: a crash can land part of the call, as a transaction
        // of an earlier group can land before a later one fails.
        let mut landed = Vec::with_capacity(puts.len());
        for put in puts {
            self.write("put_aggregates")?;
            landed.extend(
                self.real
                    .markets
                    .put_aggregates(std::slice::from_ref(put))
                    .await?,
            );
        }
        Ok(landed)
    }
    async fn put_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<(), PortError> {
        self.write("put_snapshots")?;
        self.real.markets.put_snapshots(snapshots).await
    }
    async fn write_interest(
        &self,
        writes: Vec<realty_metrics::interest::InterestWrite>,
    ) -> Result<(), PortError> {
        self.write("write_interest")?;
        self.real.markets.write_interest(writes).await
    }
    async fn get_journal(&self, shard: &str) -> Result<Option<EncodedJournal>, PortError> {
        self.real.markets.get_journal(shard).await
    }
    async fn put_journal(
        &self,
        journal: &EncodedJournal,
    ) -> Result<Option<EncodedJournal>, PortError> {
        self.write("put_journal")?;
        self.real.markets.put_journal(journal).await
    }
    async fn delete_journal(&self, shard: &str) -> Result<(), PortError> {
        self.write("delete_journal")?;
        self.real.markets.delete_journal(shard).await
    }
}

impl EventArchive for Crashing<'_> {
    async fn put_lines(&self, lines: &[Vec<u8>]) -> Result<(), PortError> {
        self.write("put_lines")?;
        self.real.archive.put_lines(lines).await
    }
}

impl PoisonSink for Crashing<'_> {
    async fn send(&self, records: &[PoisonRecord]) -> Result<(), PortError> {
        self.real.poison.send(records).await
    }
}

/// An attribute as JSON, binary as base64 and sets sorted, so two items compare by value.
fn attribute_json(v: aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => json!({ "S": s }),
        A::N(n) => json!({ "N": n }),
        A::B(b) => json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.into_inner()) }),
        A::Bool(b) => json!({ "BOOL": b }),
        A::Null(_) => json!({ "NULL": true }),
        A::M(m) => {
            json!({ "M": m.into_iter().map(|(k, v)| (k, attribute_json(v))).collect::<serde_json::Map<_, _>>() })
        }
        A::L(l) => json!({ "L": l.into_iter().map(attribute_json).collect::<Vec<_>>() }),
        A::Ss(mut ss) => {
            ss.sort();
            json!({ "SS": ss })
        }
        A::Ns(mut ns) => {
            ns.sort();
            json!({ "NS": ns })
        }
        other => json!({ "other": format!("{other:?}") }),
    }
}

/// Every item of a table, keyed by its key attributes, as JSON.
async fn scan(aws: &TestAws, table: &str) -> Result<BTreeMap<String, Value>, Failed> {
    let client = aws_sdk_dynamodb::Client::new(&aws.sdk_config().await);
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .explain("Scan")?;
        for item in page.items.unwrap_or_default() {
            let value = Value::Object(
                item.into_iter()
                    .map(|(k, v)| (k, attribute_json(v)))
                    .collect(),
            );
            let key = format!(
                "{}|{}|{}",
                value["listing_id"]["S"], value["pk"]["S"], value["sk"]["S"]
            );
            out.insert(key, value);
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(out),
        }
    }
}

/// The tables as any delivery of the same events must leave them: all but the listings of
/// interest (a listing's `interest` and the `interest#` entries), which are judged against
/// the market figures at the end of the batch that wrote the listing, so they follow how the
/// stream was cut (docs/metrics.md, "Listings of interest"), and a listing's `may_alert`
/// mark, which says what the write applied (docs/alerts.md, "Which writes reach the alerts
/// function").
pub(crate) async fn tables(aws: &TestAws, r: &StackResources) -> Result<Tables, Failed> {
    let mut listings = scan(aws, &r.listing_table).await?;
    for item in listings.values_mut() {
        if let Some(attributes) = item.as_object_mut() {
            attributes.remove("interest");
            attributes.remove("may_alert");
        }
    }
    let mut markets = scan(aws, &r.market_table).await?;
    markets.retain(|_, item| {
        !item["pk"]["S"]
            .as_str()
            .is_some_and(|pk| pk.starts_with(realty_metrics::interest::INTEREST_KEY_PREFIX))
    });
    Ok((listings, markets))
}

/// Tables as `tables` reads them: listing items and market items, by key.
pub(crate) type Tables = (BTreeMap<String, Value>, BTreeMap<String, Value>);

/// A batch of 40 cut into the three deliveries of a discard: the one before, the one Lambda
/// discards, the shard's next; and the tables one clean delivery of the three leaves.
pub(crate) async fn discard_scenario(aws: &TestAws) -> Result<([KinesisEvent; 3], Tables), Failed> {
    let event = batch(40);
    let deliveries = [
        part(&event, 0..14),
        part(&event, 14..27),
        part(&event, 27..40),
    ];
    let (clean_resources, clean) = fresh_function(aws).await?;
    for e in &deliveries {
        deliver(&clean, e.clone()).await?;
    }
    Ok((deliveries, tables(aws, &clean_resources).await?))
}

/// The metrics function's stores with the operator's clients, for what the tests and
/// `realty reconcile` do beside the function: their calls are not the function's (its role
/// is checked against its own).
pub(crate) async fn operator(aws: &TestAws, resources: &StackResources) -> MetricsFunction {
    MetricsFunction::new(&aws.sdk_config().await, resources)
}

pub(crate) async fn fresh_function(
    aws: &TestAws,
) -> Result<(StackResources, MetricsFunction), Failed> {
    let stack = aws.provision(&[]).await;
    let resources = StackResources::from_outputs(&stack.outputs)?;
    let function = MetricsFunction::new(&aws.function_sdk("MetricsFunction").await, &resources);
    Ok((resources, function))
}

/// Delivers `event` as Lambda does: the failed part again, from the first failed record,
/// until the function reports no failure.
pub(crate) async fn deliver(function: &MetricsFunction, event: KinesisEvent) -> Result<(), Failed> {
    let (response, _) = function.handle(event).await;
    ensure(
        response.batch_item_failures.is_empty(),
        format!("failures: {:?}", response.batch_item_failures),
    )
}

async fn replays_and_crashes_leave_every_item_as_one_clean_delivery(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let event = batch(40);
    let n = event.records.len();
    let (clean_resources, clean) = fresh_function(&aws).await?;
    deliver(&clean, event.clone()).await?;
    let expected = tables(&aws, &clean_resources).await?;
    ensure(
        expected.0.len() == n / 2,
        format!("{} listing items", expected.0.len()),
    )?;
    ensure(
        expected
            .1
            .values()
            .any(|v| v["sk"]["S"] == "LIVE" && v["active"]["N"] != "0"),
        "no live market item",
    )?;
    ensure(
        expected.1.keys().any(|k| k.contains("H#2025-09-12T15")),
        "no hourly snapshot",
    )?;

    let scenarios: Vec<(&str, Vec<KinesisEvent>)> = vec![
        ("twice", vec![event.clone(); 2]),
        ("five times", vec![event.clone(); 5]),
        (
            "in halves",
            vec![part(&event, 0..n / 2), part(&event, n / 2..n)],
        ),
        (
            "first half, then whole",
            vec![part(&event, 0..n / 2), event.clone()],
        ),
    ];
    for (name, deliveries) in scenarios {
        let (resources, function) = fresh_function(&aws).await?;
        for d in deliveries {
            deliver(&function, d).await?;
        }
        ensure(
            tables(&aws, &resources).await? == expected,
            format!("delivered {name}: items differ from one clean delivery"),
        )?;
    }

    // A crash between any two writes of the batch, then re-delivery from the first failed record.
    let mut fail_at = 0;
    loop {
        let (resources, function) = fresh_function(&aws).await?;
        let crashing = Crashing {
            real: &function,
            writes: AtomicUsize::new(0),
            fail_at,
            discard: false,
        };
        let (response, _) = handle_event(&crashing.ports(), event.clone()).await;
        let crashed = !response.batch_item_failures.is_empty();
        if crashed {
            let from = response.batch_item_failures[0]
                .item_identifier
                .clone()
                .ok_or("no item identifier")?;
            let i = event
                .records
                .iter()
                .position(|r| r.kinesis.sequence_number == from)
                .ok_or("failure outside the batch")?;
            deliver(&function, part(&event, i..n)).await?;
        }
        ensure(
            tables(&aws, &resources).await? == expected,
            format!("crash at write {fail_at}: items differ from one clean delivery"),
        )?;
        if !crashed {
            break; // past the last write
        }
        fail_at += 1;
    }
    ensure(
        fail_at > 3,
        format!("only {fail_at} writes were crashed into"),
    )
}

async fn poison_records_in_the_middle_go_to_the_error_sink(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let (resources, function) = fresh_function(&aws).await?;
    let mut event = batch(10);
    let mut bad = Vec::new();
    for (i, data) in [
        b"not json at all".to_vec(),
        br#"{"schema_version": 7, "kind": "new"}"#.to_vec(),
        String::from_utf8(event.records[0].kinesis.data.0.clone())?
            .replacen("\"price_minor\":30000000", "\"price_minor\":0", 1)
            .into_bytes(),
        vec![b'"'; 900_000],
    ]
    .into_iter()
    .enumerate()
    {
        let mut record = event.records[0].clone();
        record.kinesis.sequence_number = format!(
            "4959033827149025660855969253836157109592157598913{:07}",
            1004 + i
        );
        record.kinesis.data.0 = data;
        bad.push(record);
    }
    // Good records keep their stream order; the bad ones sit in the middle of the batch.
    for (offset, record) in bad.into_iter().enumerate() {
        event.records.insert(5 + offset, record);
    }
    for (i, r) in event.records.iter_mut().enumerate() {
        r.kinesis.sequence_number = format!(
            "4959033827149025660855969253836157109592157598913{:07}",
            2000 + i
        );
    }
    let (response, outcomes) = function.handle(event).await;
    ensure(
        response.batch_item_failures.is_empty(),
        "a poison record failed the batch",
    )?;
    let stats = &outcomes[0].stats;
    ensure(
        (stats.accepted, stats.rejected) == (10, 4),
        format!("{stats:?}"),
    )?;

    let sqs = aws_sdk_sqs::Client::new(&aws.sdk_config().await);
    let mut reasons = Vec::new();
    for _ in 0..5 {
        let out = sqs
            .receive_message()
            .queue_url(&resources.poison_record_queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .explain("ReceiveMessage")?;
        for m in out.messages() {
            let p: PoisonRecord = serde_json::from_str(m.body().unwrap_or_default())?;
            reasons.push(p.reason_kind);
        }
        if reasons.len() >= 4 {
            break;
        }
    }
    reasons.sort();
    ensure(
        reasons
            == [
                "invalid_listing",
                "malformed",
                "malformed",
                "unsupported_schema_version",
            ],
        format!("error sink holds {reasons:?}"),
    )?;
    let (listings, _) = tables(&aws, &resources).await?;
    ensure(
        listings.len() == 5,
        format!("{} listings applied", listings.len()),
    )
}

/// Issue 12, point 1: markets were written before listing states, so a batch Lambda gave up
/// on part-way left its market contributions without the listing states, the next event of
/// a listing counted again, and a replay of the skipped range was ignored. A batch whose
/// every write from the k-th on fails, for each k, on every delivery until Lambda discards
/// it; then the shard's next batch; then the operator's replay of the discarded range: the
/// tables hold what one clean delivery of the three leaves.
async fn a_batch_discarded_after_any_write_then_the_next_batch_and_a_replay_leave_the_truth(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let ([first, discarded, next], expected) = discard_scenario(&aws).await?;

    let mut k = 0;
    loop {
        let (resources, function) = fresh_function(&aws).await?;
        deliver(&function, first.clone()).await?;
        let crashing = Crashing {
            real: &function,
            writes: AtomicUsize::new(0),
            fail_at: k,
            discard: true,
        };
        // Lambda's retries of the failing batch, then it gives up.
        let mut discarded_part_way = false;
        for _ in 0..2 {
            let (response, _) = handle_event(&crashing.ports(), discarded.clone()).await;
            discarded_part_way = !response.batch_item_failures.is_empty();
            if !discarded_part_way {
                break; // went through: Lambda does not deliver it again
            }
        }
        let (response, outcomes) = function.handle(next.clone()).await;
        ensure(
            response.batch_item_failures.is_empty(),
            format!(
                "discard after write {k}: the next batch failed: {:?}",
                outcomes[0].error
            ),
        )?;
        if k == 0 {
            // Nothing of the batch landed (its first write, the journal, failed every time):
            // the next batch applies its listings' later states, so the inventory figures
            // are true, but the discarded events themselves (their daily counts) are lost
            // and a replay behind the next batch is skipped as superseded. A limit, in
            // docs/reliability.md.
            deliver(&function, discarded.clone()).await?;
            let operator = operator(&aws, &resources).await;
            let report = reconcile(&operator.listings, &operator.markets, None, true).await?;
            ensure(
                report.repairs.is_empty() && report.busy.is_empty(),
                format!("nothing landed: the figures drifted from the listings: {report:?}"),
            )?;
            k += 1;
            continue;
        }
        ensure(
            tables(&aws, &resources).await? == expected,
            format!(
                "discard after write {k}, then the next batch: items differ from one clean delivery"
            ),
        )?;
        ensure(
            !discarded_part_way || outcomes[0].stats.journals_finished == 1,
            format!("discard after write {k}: the next batch did not finish the discarded one"),
        )?;
        deliver(&function, discarded.clone()).await?;
        ensure(
            tables(&aws, &resources).await? == expected,
            format!("discard after write {k}, the next batch, then a replay: items differ"),
        )?;
        if !discarded_part_way {
            break; // past the batch's last write
        }
        k += 1;
    }
    ensure(k > 4, format!("only {k} writes were discarded after"))
}

/// `event`'s records as they come from shard `shard`: its event ids name it.
fn on_shard(event: &KinesisEvent, shard: usize) -> KinesisEvent {
    let mut e = event.clone();
    for r in &mut e.records {
        r.event_id = Some(format!("shardId-{shard:012}:{}", r.kinesis.sequence_number));
    }
    e
}

/// The live items of the market table, their aggregates alone (no bookkeeping), by key.
async fn live_aggregates(
    function: &MetricsFunction,
    keys: &[String],
) -> Result<BTreeMap<String, realty_metrics::aggregate::MarketAggregate>, Failed> {
    Ok(function
        .markets
        .get_aggregates(keys)
        .await?
        .into_iter()
        .map(|(k, item)| (k, item.aggregate))
        .collect())
}

/// Listings of one city arrive through every shard, so two Lambda instances write its city
/// markets at once: the conditional writes make the loser re-read, and the figures are
/// those of one delivery of the same events, one batch after another.
async fn two_shards_writing_one_market_concurrently_give_the_true_figures(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let event = batch(60);
    // Listings alternate between the two shards (a listing stays on one: its partition key).
    let mut shards = [event.clone(), event.clone()];
    for (s, shard) in shards.iter_mut().enumerate() {
        shard.records.retain(|r| {
            let data: Value = serde_json::from_slice(&r.kinesis.data.0).unwrap_or_default();
            let id = data["listing"]["id"].as_str().unwrap_or_default();
            id.bytes().last().is_some_and(|b| usize::from(b % 2) == s)
        });
        *shard = on_shard(shard, s);
    }
    ensure(
        shards.iter().all(|s| s.records.len() > 20),
        "both shards carry events",
    )?;
    let (clean_resources, clean) = fresh_function(&aws).await?;
    let (resources, first) = fresh_function(&aws).await?;
    let second = MetricsFunction::new(&aws.function_sdk("MetricsFunction").await, &resources);
    let mut conflicts = 0;
    for round in 0..4 {
        let cut = |e: &KinesisEvent| {
            let n = e.records.len();
            part(e, n * round / 4..n * (round + 1) / 4)
        };
        let (a, b) = (cut(&shards[0]), cut(&shards[1]));
        deliver(&clean, a.clone()).await?;
        deliver(&clean, b.clone()).await?;
        let ((ra, oa), (rb, ob)) = tokio::join!(first.handle(a), second.handle(b));
        ensure(
            ra.batch_item_failures.is_empty() && rb.batch_item_failures.is_empty(),
            format!("round {round}: {:?} {:?}", oa[0].error, ob[0].error),
        )?;
        conflicts += oa[0].stats.conflict_retries + ob[0].stats.conflict_retries;
    }
    let clean = operator(&aws, &clean_resources).await;
    let keys = clean.markets.market_keys().await?;
    ensure(keys.len() > 3, format!("{} markets", keys.len()))?;
    let expected = live_aggregates(&clean, &keys).await?;
    let concurrent = live_aggregates(&operator(&aws, &resources).await, &keys).await?;
    ensure(
        concurrent == expected,
        format!(
            "figures written concurrently differ from one delivery ({conflicts} write conflicts)"
        ),
    )?;
    // And both are the recomputation from the listing states.
    for resources in [&clean_resources, &resources] {
        let operator = operator(&aws, resources).await;
        let report = reconcile(&operator.listings, &operator.markets, None, true).await?;
        ensure(
            report.repairs.is_empty() && report.busy.is_empty(),
            format!("{}: {report:?}", resources.market_table),
        )?;
    }
    Ok(())
}

/// Issue 12, point 4: a 29 % cut stamped 2 minutes before the listing's previous
/// observation (the second poller's clock is slow) was dropped as older: no figure moved.
async fn a_cut_stamped_two_minutes_early_by_a_slow_clock_is_counted(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let (resources, function) = fresh_function(&aws).await?;
    let operator = operator(&aws, &resources).await;
    let listed = part(&batch(2), 0..1);
    let data: Value = serde_json::from_slice(&listed.records[0].kinesis.data.0)?;
    let old = data["listing"]["price_minor"].as_i64().ok_or("price")?;
    let new = old * 71 / 100;
    let observed: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(data["observed_at"].clone())?;
    let early = (observed - chrono::Duration::minutes(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut cut = data.clone();
    cut["kind"] = json!("changed");
    cut["changes"] = json!({"price": {"old": old, "new": new}, "status": null, "fields": []});
    cut["listing"]["price_minor"] = json!(new);
    cut["listing"]["previous_price_minor"] = json!(old);
    cut["listing"]["observed_at"] = json!(early);
    cut["observed_at"] = json!(early);
    let mut later = listed.clone();
    let record = &mut later.records[0];
    record.kinesis.sequence_number = format!("{}9", record.kinesis.sequence_number);
    record.event_id = Some(format!(
        "shardId-000000000000:{}",
        record.kinesis.sequence_number
    ));
    record.kinesis.data.0 = serde_json::to_vec(&cut)?;
    // It reaches Kinesis a minute after the first event: in our time, not the poller's.
    let arrival = observed + chrono::Duration::minutes(1);
    record.kinesis.approximate_arrival_timestamp =
        serde_json::from_value(json!(arrival.timestamp()))?;
    deliver(&function, listed).await?;
    let (_, outcomes) = function.handle(later).await;
    let stats = &outcomes[0].stats;
    ensure(
        stats.accepted == 1 && stats.superseded + stats.already_applied == 0,
        format!("the cut was not applied: {stats:?}"),
    )?;
    let id = data["listing"]["id"].as_str().ok_or("id")?.to_owned();
    let states = operator.listings.get_states(&[id.as_str()]).await?;
    let state = states.get(id.as_str()).ok_or("no listing state")?;
    ensure(
        state.listing.price_minor == new,
        format!(
            "listing price {} after a cut to {new}",
            state.listing.price_minor
        ),
    )?;
    let keys = operator.markets.market_keys().await?;
    let markets = live_aggregates(&operator, &keys).await?;
    ensure(
        !markets.is_empty()
            && markets
                .values()
                .all(|a| a.active == 1 && a.active_with_cut == 1 && a.price_sum_minor == new),
        format!("markets after the cut: {markets:?}"),
    )
}
