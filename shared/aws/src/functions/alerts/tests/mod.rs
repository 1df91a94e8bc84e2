//! Tests of the alerts, by concern: the rules on listing-item pairs and the stream fixtures
//! (`rules`), the SNS message and its limits (`message`), the batch workflow over the
//! in-memory ports below with injected failures and crashes (`workflow`, `leases`), decisions
//! per event however metrics batched the events (`per_event`), SNS partial failures
//! through the handler (`sns`), and the feed of published alerts (`feed`).

mod feed;
mod leases;
mod may_alert;
mod message;
mod per_event;
mod rules;
mod sns;
mod workflow;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use serde_json::{Value, json};

use chrono::{DateTime, Utc};

use super::{handle_event, handle_event_until};
use realty_alerts::feed::AlertFeedItem;
use realty_alerts::message::{
    AlertBody, AlertMessage, MAX_BATCH_BYTES, MAX_SUBJECT_CHARS, message, publish_batches,
    sanitize_subject,
};
use realty_alerts::ports::{
    AlertClaimStore, AlertErrorSink, AlertPublisher, Claim, MarketMedians, PublishReport,
    RejectedAlert,
};
use realty_alerts::process::{AlertOutcome, AlertPorts};
use realty_alerts::rules::*;
use realty_model::listing::{
    EventKind, ListingChanges, ListingEvent, ListingId, ListingStatus, Offer, PropertyType,
};
use realty_model::ports::PortError;
use realty_model::state::InterestKind;
use realty_model::state::ListingItem;

/// A stream record judged as the function judges it: decoded, then classified.
fn classify(record: EventRecord) -> Result<ListingChange, Skipped> {
    realty_alerts::rules::classify(super::stream::decode(record))
}

const SAMPLE: &str = include_str!("../../../../../../events/alerts-dynamodb.json");

fn sample_event() -> Event {
    serde_json::from_str(SAMPLE).expect("the sample is a DynamoDB stream event")
}

fn sample_record() -> EventRecord {
    sample_event().records.remove(0)
}

/// The listing of the sample (a Nashville condo of 630 sqft) after its change.
fn base() -> ListingItem {
    classify(sample_record()).expect("the sample decodes").new
}

/// A listing at `price` dollars with `area` sqft, version `version`.
fn item(id: &str, price: i64, area: Option<u32>, version: u32) -> ListingItem {
    let mut item = base();
    item.listing_id = id.to_owned();
    item.listing.id = ListingId::parse(id).expect("valid id");
    item.listing.price_minor = price * 100;
    item.listing.living_area_sqft = area;
    item.sequence = format!("{version:0>128}");
    item
}

fn in_syracuse(mut item: ListingItem, property_type: PropertyType) -> ListingItem {
    item.market = "syracuse-ny".into();
    item.listing.market.city_state = "syracuse-ny".into();
    item.listing.market.zip = Some("13202".into());
    item.listing.address.city = "Syracuse".into();
    item.listing.address.state = "NY".into();
    item.listing.address.postal_code = Some("13202".into());
    item.listing.property_type = property_type;
    item
}

fn change(old: &ListingItem, new: &ListingItem) -> ListingChange {
    ListingChange {
        sequence_number: "1".into(),
        old: Some(old.clone()),
        new: new.clone(),
    }
}

fn kinds(alerts: &[Alert]) -> Vec<AlertKind> {
    alerts.iter().map(|a| a.kind).collect()
}

fn median(scope_key: &str, dollars_per_sqft: f64) -> MarketMedian {
    MarketMedian {
        scope_key: scope_key.into(),
        price_per_sqft: dollars_per_sqft,
    }
}

fn nashville_condo_median() -> MarketMedian {
    median("city#nashville-tn#condo", 500.0)
}

fn pct(p: f64) -> AlertThresholds {
    AlertThresholds {
        price_drop_centi_pct: (p * 100.0).round() as u32,
        ..AlertThresholds::default()
    }
}

// ---- the batch workflow over in-memory ports ----

/// A claim in the in-memory store, and once published the feed item that marks it.
#[derive(Debug, Clone)]
struct StoredClaim {
    state: &'static str,
    token: String,
    lease_until: DateTime<Utc>,
    /// The feed item, once published.
    item: Option<AlertFeedItem>,
}

/// The alert feed with its claims, keyed by alert id (the store's keys are functions of it).
#[derive(Default)]
struct MemoryIdempotency {
    records: Mutex<BTreeMap<String, StoredClaim>>,
    /// Claims of alert ids containing this fail (a DynamoDB outage for them).
    fail_claims_of: Mutex<Option<String>>,
    /// Stands for a crash right after publishing: marks and releases never happen.
    crash_after_publish: AtomicBool,
    /// This many mark calls fail (a short DynamoDB outage), then they work again.
    failing_marks: AtomicUsize,
    /// Releases never answer (DeleteItems throttled, the SDK backing off).
    hung_releases: AtomicBool,
    /// How far the store's clock is ahead of the real one: Lambda re-delivering a batch
    /// after the deadline of the invocation that crashed on it.
    clock_ahead: Mutex<chrono::Duration>,
    claims: AtomicUsize,
    marks: AtomicUsize,
    /// Mark calls that wrote (each one write of the feed).
    mark_calls: AtomicUsize,
}

/// The alert id of a feed item, from its body.
fn alert_id(item: &AlertFeedItem) -> String {
    serde_json::from_str::<Value>(&item.body).expect("a JSON body")["alert_id"]
        .as_str()
        .expect("an alert id")
        .to_owned()
}

/// What another invocation claims for alert `id` (of the sample's market, as the function
/// would claim it: the store keys by the alert).
fn claim_of(id: &str) -> AlertFeedItem {
    let observed_at = Utc::now();
    AlertFeedItem {
        pk: realty_alerts::feed::feed_key("nashville-tn"),
        sk: realty_alerts::feed::feed_sort_key("price_drop", observed_at, id),
        alert_type: AlertKind::PriceDrop,
        observed_at,
        body: json!({ "alert_id": id }).to_string(),
        expires_at: observed_at.timestamp(),
    }
}

impl MemoryIdempotency {
    fn states(&self) -> BTreeMap<String, &'static str> {
        self.records
            .lock()
            .expect("lock")
            .iter()
            .map(|(k, c)| (k.clone(), c.state))
            .collect()
    }

    /// The alert ids in the feed (published, with their item), sorted.
    fn alert_ids(&self) -> Vec<String> {
        self.records
            .lock()
            .expect("lock")
            .values()
            .filter_map(|c| c.item.as_ref().map(alert_id))
            .collect()
    }

    /// The feed's items, by key.
    fn feed_items(&self) -> BTreeMap<(String, String), AlertFeedItem> {
        self.records
            .lock()
            .expect("lock")
            .values()
            .filter_map(|c| c.item.clone())
            .map(|i| ((i.pk.clone(), i.sk.clone()), i))
            .collect()
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.clock_ahead.lock().expect("lock")
    }

    /// Moves the store's clock past every lease a crashed invocation can have left.
    fn after_the_crashed_deadline(&self) {
        *self.clock_ahead.lock().expect("lock") += chrono::Duration::minutes(30);
    }
}

impl AlertClaimStore for MemoryIdempotency {
    async fn claim_all(
        &self,
        alerts: &[&AlertFeedItem],
        token: &str,
        lease_until: DateTime<Utc>,
    ) -> Vec<Result<Claim, PortError>> {
        let now = self.now();
        let mut records = self.records.lock().expect("lock");
        let bad = self.fail_claims_of.lock().expect("lock").clone();
        alerts
            .iter()
            .map(|alert| {
                let key = alert_id(alert);
                self.claims.fetch_add(1, Ordering::SeqCst);
                if bad.as_deref().is_some_and(|bad| key.contains(bad)) {
                    return Err(PortError::new("TransactWriteItems", "injected outage"));
                }
                match records.get(&key) {
                    Some(c) if c.state == "published" => Ok(Claim::AlreadyPublished),
                    Some(c) if c.lease_until >= now => Ok(Claim::HeldUntil(c.lease_until)),
                    _ => {
                        records.insert(
                            key,
                            StoredClaim {
                                state: "pending",
                                token: token.to_owned(),
                                lease_until,
                                item: None,
                            },
                        );
                        Ok(Claim::Acquired)
                    }
                }
            })
            .collect()
    }

    async fn mark_published(&self, alerts: &[&AlertFeedItem]) -> Result<(), PortError> {
        if self.crash_after_publish.load(Ordering::SeqCst) {
            return Err(PortError::new("BatchWriteItem", "crashed"));
        }
        if self
            .failing_marks
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PortError::new("BatchWriteItem", "injected outage"));
        }
        self.mark_calls.fetch_add(1, Ordering::SeqCst);
        let mut records = self.records.lock().expect("lock");
        for alert in alerts {
            self.marks.fetch_add(1, Ordering::SeqCst);
            records.insert(
                alert_id(alert),
                StoredClaim {
                    state: "published",
                    token: String::new(),
                    lease_until: self.now(),
                    item: Some((*alert).clone()),
                },
            );
        }
        Ok(())
    }

    async fn release(&self, alert: &AlertFeedItem, token: &str) -> Result<(), PortError> {
        if self.crash_after_publish.load(Ordering::SeqCst) {
            return Err(PortError::new("DeleteItem", "crashed"));
        }
        if self.hung_releases.load(Ordering::SeqCst) {
            return std::future::pending().await;
        }
        let key = alert_id(alert);
        let mut records = self.records.lock().expect("lock");
        if records
            .get(&key)
            .is_some_and(|c| c.state == "pending" && c.token == token)
        {
            records.remove(&key);
        }
        Ok(())
    }
}

#[derive(Default)]
struct MemoryMedians {
    medians: BTreeMap<String, f64>,
    down: AtomicBool,
    lookups: Mutex<Vec<Vec<String>>>,
}

impl MarketMedians for MemoryMedians {
    async fn medians_per_sqft(&self, keys: &[String]) -> Result<BTreeMap<String, f64>, PortError> {
        self.lookups.lock().expect("lock").push(keys.to_vec());
        if self.down.load(Ordering::SeqCst) {
            return Err(PortError::new("BatchGetItem", "injected outage"));
        }
        Ok(keys
            .iter()
            .filter_map(|k| self.medians.get(k).map(|m| (k.clone(), *m)))
            .collect())
    }
}

#[derive(Default)]
struct MemoryPublisher {
    sent: Mutex<Vec<AlertMessage>>,
    /// Alerts whose id contains one of these are never published.
    failing: Mutex<BTreeSet<String>>,
    /// Alerts whose id contains one of these are published, but the answer is lost (a
    /// timeout after SNS accepted the call).
    answer_lost: Mutex<BTreeSet<String>>,
    /// Alerts whose id contains one of these are refused for good (a sender fault).
    refusing: Mutex<BTreeSet<String>>,
}

impl MemoryPublisher {
    /// The alerts whose id contains `id` are never published (until cleared).
    fn fail_alerts_of(&self, id: &str) {
        self.failing.lock().expect("lock").insert(id.to_owned());
    }

    fn published(&self) -> Vec<String> {
        self.sent
            .lock()
            .expect("lock")
            .iter()
            .map(|m| m.alert_id.clone())
            .collect()
    }
}

impl AlertPublisher for MemoryPublisher {
    async fn publish(
        &self,
        messages: &[AlertMessage],
        _deadline: chrono::DateTime<chrono::Utc>,
    ) -> PublishReport {
        let names = |set: &Mutex<BTreeSet<String>>, m: &AlertMessage| {
            set.lock()
                .expect("lock")
                .iter()
                .any(|f| m.alert_id.contains(f.as_str()))
        };
        let mut report = PublishReport::default();
        for (i, m) in messages.iter().enumerate() {
            if names(&self.failing, m) {
                report.unpublished.push(i);
                report.error = Some("injected failure".into());
            } else if names(&self.refusing, m) {
                report
                    .refused
                    .push((i, "InvalidParameter: injected refusal".into()));
            } else {
                self.sent.lock().expect("lock").push(m.clone());
                if names(&self.answer_lost, m) {
                    report.unknown.push(i);
                    report.error = Some("injected timeout".into());
                }
            }
        }
        report
    }
}

#[derive(Default)]
struct MemorySink {
    received: Mutex<Vec<RejectedAlert>>,
    down: AtomicBool,
}

impl AlertErrorSink for MemorySink {
    async fn send(&self, rejected: &[RejectedAlert]) -> Result<(), PortError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(PortError::new("SendMessageBatch", "injected outage"));
        }
        self.received
            .lock()
            .expect("lock")
            .extend(rejected.iter().cloned());
        Ok(())
    }
}

/// The alert feed, by (pk, sk) as the market table keys it.
/// The in-memory world of one alerts function. Its invocations have a short deadline, so a
/// mark that keeps failing (a crash) is given up quickly.
struct World {
    idempotency: MemoryIdempotency,
    medians: MemoryMedians,
    publisher: MemoryPublisher,
    sink: MemorySink,
}

/// Time left to the invocations of a [`World`]: the mark re-tries stop after about 0.5 s.
const WORLD_INVOCATION: chrono::Duration = chrono::Duration::milliseconds(2_500);

impl Default for World {
    fn default() -> Self {
        Self {
            idempotency: MemoryIdempotency::default(),
            medians: MemoryMedians {
                medians: BTreeMap::from([
                    ("city#nashville-tn#condo".to_owned(), 500.0),
                    ("city#syracuse-ny#all".to_owned(), 200.0),
                ]),
                ..MemoryMedians::default()
            },
            publisher: MemoryPublisher::default(),
            sink: MemorySink::default(),
        }
    }
}

impl World {
    async fn handle(
        &self,
        event: Event,
    ) -> (
        aws_lambda_events::event::streams::DynamoDbEventResponse,
        AlertOutcome,
    ) {
        self.handle_until(event, Utc::now() + WORLD_INVOCATION)
            .await
    }

    /// [`World::handle`] with other thresholds than the template's defaults.
    async fn handle_with(
        &self,
        thresholds: &AlertThresholds,
        event: Event,
    ) -> (
        aws_lambda_events::event::streams::DynamoDbEventResponse,
        AlertOutcome,
    ) {
        let ports = AlertPorts {
            idempotency: &self.idempotency,
            medians: &self.medians,
            publisher: &self.publisher,
            sink: &self.sink,
        };
        handle_event_until(&ports, thresholds, event, Utc::now() + WORLD_INVOCATION).await
    }

    async fn handle_until(
        &self,
        event: Event,
        deadline: DateTime<Utc>,
    ) -> (
        aws_lambda_events::event::streams::DynamoDbEventResponse,
        AlertOutcome,
    ) {
        let ports = AlertPorts {
            idempotency: &self.idempotency,
            medians: &self.medians,
            publisher: &self.publisher,
            sink: &self.sink,
        };
        handle_event_until(&ports, &AlertThresholds::default(), event, deadline).await
    }
}

fn record(sequence_number: &str, old: &ListingItem, new: &ListingItem) -> EventRecord {
    let mut record = sample_record();
    record.change.sequence_number = Some(sequence_number.to_owned());
    record.change.old_image = serde_dynamo::to_item(old).expect("old image");
    record.change.new_image = serde_dynamo::to_item(new).expect("new image");
    record
}

fn event(records: Vec<EventRecord>) -> Event {
    let mut event = sample_event();
    event.records = records;
    event
}

/// Five changes, in stream order:
/// 100: zillow:1 cut 20 % (price drop);
/// 200: zillow:2 raised 5 % (nothing);
/// 300: zillow:3 in Syracuse, cut 18 % to 155 $/sqft under the city median 200 (both alerts);
/// 400: an INSERT (a new listing without an area: nothing);
/// 500: zillow:5 cut 30 % (price drop).
fn batch() -> Event {
    let syracuse = |price, version| {
        in_syracuse(
            item("zillow:3", price, Some(1_000), version),
            PropertyType::SingleFamily,
        )
    };
    let mut insert = record(
        "400",
        &item("zillow:4", 1, None, 1),
        &item("zillow:4", 1, None, 2),
    );
    insert.event_name = "INSERT".into();
    event(vec![
        record(
            "100",
            &item("zillow:1", 600_000, Some(1_000), 1),
            &item("zillow:1", 480_000, Some(1_000), 2),
        ),
        record(
            "200",
            &item("zillow:2", 600_000, Some(1_000), 1),
            &item("zillow:2", 630_000, Some(1_000), 2),
        ),
        record("300", &syracuse(190_000, 1), &syracuse(155_000, 2)),
        insert,
        record(
            "500",
            &item("zillow:5", 300_000, None, 1),
            &item("zillow:5", 210_000, None, 2),
        ),
    ])
}

fn expected_alerts() -> Vec<&'static str> {
    vec![
        "alert#price_drop#zillow:1#2",
        "alert#price_drop#zillow:3#2",
        "alert#undervalued#zillow:3#2",
        "alert#price_drop#zillow:5#2",
    ]
}

fn failed_from(response: &aws_lambda_events::event::streams::DynamoDbEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap_or_default())
        .collect()
}

fn from_sequence(event: &Event, sequence_number: &str) -> Event {
    let mut rest = event.clone();
    let at = rest
        .records
        .iter()
        .position(|r| r.change.sequence_number.as_deref() == Some(sequence_number))
        .expect("the failed record is in the batch");
    rest.records.drain(..at);
    rest
}
