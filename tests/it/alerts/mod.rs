//! The alerts function against the local AWS: listing items change in the listing table,
//! the table's real stream records (read through the DynamoDB Streams API and turned into the
//! Lambda event shape) go through the handler, and SQS queues subscribed to the alert topic
//! with filter policies receive exactly the alerts they asked for, once, however often the
//! batch is replayed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_sdk_dynamodb::types::AttributeValue as Ddb;
use aws_sdk_dynamodbstreams::types::Record;
use base64::Engine as _;
use libtest_mimic::Failed;
use realty_aws::adapters::retry::RetryPolicy;
use realty_aws::adapters::sns::SnsAlertPublisher;
use realty_aws::functions::alerts::AlertsFunction;
use realty_core::alerts::config::AlertsConfig;
use realty_core::alerts::feed::{
    ALERT_FEED_DAYS, AlertFeedItem, FEED_KEY_PREFIX, feed_key, feed_sort_key,
};
use realty_core::alerts::message::{AlertBody, MAX_MESSAGE_BYTES, message};
use realty_core::alerts::ports::{Claim, IdempotencyStore};
use realty_core::alerts::process::AlertOutcome;
use realty_core::alerts::rules::AlertKind;
use realty_core::alerts::rules::{AlertThresholds, ListingChange, MarketMedian, evaluate};
use realty_core::config::StackResources;
use realty_core::listing::{ListingId, ListingStatus, Offer, PropertyType};
use realty_core::metrics::aggregate::{Contribution, ListingFacts};
use realty_core::metrics::ports::StoredAggregate;
use realty_core::store::{ListingItem, MarketLiveItem};
use realty_infra::runner;
use realty_tests::{Explain, TableStreamReader, TestAws, ensure};
use serde_json::{Value, json};

crate::async_tests!(
    subscribers_get_each_alert_they_filter_for_once,
    an_unreachable_topic_fails_the_batch_and_the_replay_delivers_once,
    an_alert_over_the_sns_limit_goes_to_the_error_sink_and_one_at_it_is_delivered,
    a_live_claim_is_not_taken_over_and_an_expired_one_is,
    a_publish_without_an_answer_is_sent_once_and_its_record_comes_again,
    the_same_events_fire_the_same_alerts_however_metrics_batched_them,
);

// ---- the stack and its clients ----

pub(crate) struct Stack {
    pub(crate) resources: StackResources,
    stream_arn: String,
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    pub(crate) function: AlertsFunction,
    prefix: String,
}

pub(crate) async fn stack(aws: &TestAws) -> Result<Stack, Failed> {
    let provisioned = aws.provision(&[]).await;
    let resources = StackResources::from_outputs(&provisioned.outputs)?;
    let stream_arn = provisioned
        .outputs
        .get("ListingTableStreamArn")
        .cloned()
        .ok_or("no ListingTableStreamArn output")?;
    let sdk = aws.sdk_config().await;
    // The template's defaults: 15 %, no floor, 0.8.
    let config = AlertsConfig::from_lookup(|_| None)?;
    Ok(Stack {
        function: AlertsFunction::new(&sdk, &resources, &config),
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        streams: aws_sdk_dynamodbstreams::Client::new(&sdk),
        sns: aws_sdk_sns::Client::new(&sdk),
        sqs: aws_sdk_sqs::Client::new(&sdk),
        prefix: provisioned.stack_name.clone(),
        resources,
        stream_arn,
    })
}

impl Stack {
    /// A reader of the listing table's stream from its start.
    pub(crate) fn stream_reader(&self) -> TableStreamReader {
        TableStreamReader::new(self.streams.clone(), &self.stream_arn)
    }
}

// ---- listings and markets ----

/// The listing of events/alerts-dynamodb.json (a Nashville condo), as the metrics function
/// stores it.
fn sample_item() -> Result<ListingItem, Failed> {
    let event: Event = serde_json::from_str(include_str!("../../../events/alerts-dynamodb.json"))?;
    let record = event.records.into_iter().next().ok_or("empty sample")?;
    Ok(serde_dynamo::from_item(record.change.new_image)?)
}

#[derive(Clone, Copy)]
enum City {
    Nashville,
    Syracuse,
}

fn listing(
    native_id: u32,
    city: City,
    property_type: PropertyType,
    price_dollars: i64,
) -> Result<ListingItem, Failed> {
    let mut item = sample_item()?;
    let id = format!("zillow:{native_id}");
    item.listing.id = ListingId::parse(&id)?;
    item.listing_id = id;
    item.listing.property_type = property_type;
    item.listing.price_minor = price_dollars * 100;
    item.listing.previous_price_minor = None;
    item.first_price_minor = item.listing.price_minor;
    item.listing.living_area_sqft = Some(1_000);
    item.listing.address.line = Some(format!("{native_id} Main St"));
    if let City::Syracuse = city {
        item.market = "syracuse-ny".into();
        item.listing.market.city_state = "syracuse-ny".into();
        item.listing.market.zip = Some("13202".into());
        item.listing.address.city = "Syracuse".into();
        item.listing.address.state = "NY".into();
        item.listing.address.postal_code = Some("13202".into());
    }
    item.sequence = format!("{:0>128}", 1);
    Ok(item)
}

/// The next version of `item` at `price_dollars`, as the metrics function writes it after a
/// price-change event.
fn repriced(item: &ListingItem, price_dollars: i64, version: u32) -> ListingItem {
    let mut next = item.clone();
    next.listing.previous_price_minor = Some(item.listing.price_minor);
    next.listing.price_minor = price_dollars * 100;
    next.sequence = format!("{version:0>128}");
    next.observed_at = item.observed_at + chrono::Duration::minutes(5 * i64::from(version));
    next.listing.observed_at = next.observed_at;
    next
}

async fn put_listing(stack: &Stack, item: &ListingItem) -> Result<(), Failed> {
    let attributes: HashMap<String, Ddb> = serde_dynamo::to_item(item)?;
    stack
        .dynamodb
        .put_item()
        .table_name(&stack.resources.listing_table)
        .set_item(Some(attributes))
        .send()
        .await
        .explain("PutItem listing")?;
    Ok(())
}

/// A live market item of 40 active listings at `about` dollars per sqft, as the metrics
/// function writes it. Returns its median price per sqft as readers compute it (the
/// histogram's: within 1 % of `about`), the one the alerts function judges against.
async fn put_market(stack: &Stack, scope_key: &str, about: f64) -> Result<f64, Failed> {
    let sample = listing(
        9000,
        City::Nashville,
        PropertyType::Condo,
        (about * 1e3) as i64,
    )?;
    let facts = Arc::new(
        ListingFacts::of(&sample.listing, sample.first_price_minor).ok_or("no listing facts")?,
    );
    let mut stored = StoredAggregate::default();
    for _ in 0..40 {
        stored
            .aggregate
            .apply(&Contribution::Add(Arc::clone(&facts)));
    }
    stored.aggregate.advance_to(sample.listing.observed_at);
    let item = MarketLiveItem::new(scope_key, &stored);
    let median = item
        .figures()?
        .median_price_per_sqft
        .ok_or("the market has no median")?;
    let attributes: HashMap<String, Ddb> = serde_dynamo::to_item(&item)?;
    stack
        .dynamodb
        .put_item()
        .table_name(&stack.resources.market_table)
        .set_item(Some(attributes))
        .send()
        .await
        .explain("PutItem market")?;
    Ok(median)
}

// ---- the listing table's stream, as Lambda would deliver it ----

/// The records in the shape Lambda's DynamoDB event source mapping hands a function, as the
/// local event source mapping builds it, parsed as aws_lambda_events does.
pub(crate) fn lambda_event(stack: &Stack, records: &[Record]) -> Result<Event, Failed> {
    let lambda_records = records
        .iter()
        .map(|r| runner::dynamodb_record(r, &stack.stream_arn).map(|r| r.json))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(serde_json::from_value(
        json!({ "Records": lambda_records }),
    )?)
}

// ---- subscribers ----

/// One SQS queue subscribed to the alert topic.
pub(crate) struct Subscriber {
    url: String,
    raw: bool,
}

pub(crate) async fn subscribe(
    stack: &Stack,
    name: &str,
    filter_policy: Option<Value>,
    raw: bool,
) -> Result<Subscriber, Failed> {
    let url = stack
        .sqs
        .create_queue()
        .queue_name(format!("{}-{name}", stack.prefix))
        .send()
        .await
        .explain("CreateQueue")?
        .queue_url
        .ok_or("no queue url")?;
    let arn = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .explain("GetQueueAttributes")?
        .attributes
        .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .ok_or("no queue arn")?;
    // What AWS needs for SNS to deliver into the queue (moto does not check it).
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "sns.amazonaws.com" },
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": { "ArnEquals": { "aws:SourceArn": stack.resources.alert_topic_arn } }
        }]
    });
    stack
        .sqs
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::Policy,
            policy.to_string(),
        )
        .send()
        .await
        .explain("SetQueueAttributes")?;
    let mut request = stack
        .sns
        .subscribe()
        .topic_arn(&stack.resources.alert_topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .return_subscription_arn(true);
    if let Some(policy) = filter_policy {
        request = request.attributes("FilterPolicy", policy.to_string());
    }
    if raw {
        request = request.attributes("RawMessageDelivery", "true");
    }
    request.send().await.explain("Subscribe")?;
    Ok(Subscriber { url, raw })
}

/// An alert as a subscriber received it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Received {
    pub(crate) body: AlertBody,
    pub(crate) subject: Option<String>,
    /// Message attributes (name -> value).
    pub(crate) attributes: BTreeMap<String, String>,
}

impl Received {
    fn key(&self) -> (String, String) {
        (
            self.body.alert_type.as_str().to_owned(),
            self.body.listing_id.clone(),
        )
    }
}

/// How long the queue must stay empty before a drain ends: SNS hands a published message to
/// its SQS subscribers after the publish returns (LocalStack on a worker thread), so an empty
/// queue right after a publish does not yet mean nothing is coming.
const QUIET_SECONDS: i32 = 2;

/// Everything in the queue until it stays empty for `QUIET_SECONDS`, deleted as it is read.
pub(crate) async fn drain(stack: &Stack, subscriber: &Subscriber) -> Result<Vec<Received>, Failed> {
    let mut out = Vec::new();
    let mut confirming = false;
    loop {
        let page = stack
            .sqs
            .receive_message()
            .queue_url(&subscriber.url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(if confirming { QUIET_SECONDS } else { 0 })
            .send()
            .await
            .explain("ReceiveMessage")?;
        let messages = page.messages.unwrap_or_default();
        if messages.is_empty() {
            if confirming {
                return Ok(out);
            }
            confirming = true;
            continue;
        }
        confirming = false;
        for m in messages {
            let text = m.body().ok_or("a message without body")?;
            out.push(if subscriber.raw {
                Received {
                    body: serde_json::from_str(text)?,
                    subject: None,
                    attributes: m
                        .message_attributes()
                        .map(|a| {
                            a.iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.string_value().unwrap_or_default().to_owned())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            } else {
                // The SNS envelope: {"Type": "Notification", "Subject", "Message", "MessageAttributes"}.
                let envelope: Value = serde_json::from_str(text)?;
                let message = envelope["Message"].as_str().ok_or("no Message")?;
                Received {
                    body: serde_json::from_str(message)?,
                    subject: envelope["Subject"].as_str().map(str::to_owned),
                    attributes: envelope["MessageAttributes"]
                        .as_object()
                        .map(|a| {
                            a.iter()
                                .map(|(k, v)| {
                                    (
                                        k.clone(),
                                        v["Value"].as_str().unwrap_or_default().to_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            });
            if let Some(handle) = m.receipt_handle() {
                stack
                    .sqs
                    .delete_message()
                    .queue_url(&subscriber.url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .explain("DeleteMessage")?;
            }
        }
    }
}

/// A market's alert feed in the market table, newest first (one Query, as the API reads it).
async fn feed(stack: &Stack, market: &str) -> Result<Vec<AlertFeedItem>, Failed> {
    let page = stack
        .dynamodb
        .query()
        .table_name(&stack.resources.market_table)
        .key_condition_expression("pk = :pk")
        .filter_expression("attribute_not_exists(lease_until)")
        .expression_attribute_values(":pk", Ddb::S(feed_key(market)))
        .scan_index_forward(false)
        .send()
        .await
        .explain("Query")?;
    let mut items = Vec::new();
    for item in page.items.unwrap_or_default() {
        items.push(serde_dynamo::from_item(item)?);
    }
    Ok(items)
}

/// Every item of the alerts in the market table: claims and published feed items.
async fn alert_records(stack: &Stack) -> Result<Vec<HashMap<String, Ddb>>, Failed> {
    Ok(stack
        .dynamodb
        .scan()
        .table_name(&stack.resources.market_table)
        .filter_expression("begins_with(pk, :alerts)")
        .expression_attribute_values(":alerts", Ddb::S(FEED_KEY_PREFIX.to_owned()))
        .send()
        .await
        .explain("Scan")?
        .items
        .unwrap_or_default())
}

/// The keys the function claims alert `alert_id` (of type `kind`) of `item` under: its feed
/// item's, in the listing's market at the time it was observed.
fn alert_key(item: &ListingItem, kind: AlertKind, alert_id: &str) -> AlertFeedItem {
    AlertFeedItem {
        pk: feed_key(&item.market),
        sk: feed_sort_key(kind.as_str(), item.observed_at, alert_id),
        alert_type: kind,
        observed_at: item.observed_at,
        body: serde_json::json!({ "alert_id": alert_id }).to_string(),
        expires_at: (item.observed_at + chrono::Duration::days(ALERT_FEED_DAYS)).timestamp(),
    }
}

/// The feed of each market holds exactly the alerts subscribers received, as published, with
/// their TTL.
async fn ensure_feed_holds(stack: &Stack, received: &[Received]) -> Result<(), Failed> {
    let mut markets: BTreeMap<&str, Vec<AlertBody>> = BTreeMap::new();
    for r in received {
        markets
            .entry(&r.body.market)
            .or_default()
            .push(r.body.clone());
    }
    for (market, mut published) in markets {
        let items = feed(stack, market).await?;
        let mut kept = Vec::new();
        // Kept 30 days from the alert's observation, and at least a week from now (past
        // every re-delivery of its record: these fixtures were observed in 2025).
        let week = chrono::Utc::now().timestamp() + 7 * 86_400;
        for item in &items {
            let body: AlertBody = serde_json::from_str(&item.body)?;
            let feed_time =
                (body.observed_at + chrono::Duration::days(ALERT_FEED_DAYS)).timestamp();
            ensure(
                item.alert_type == body.alert_type
                    && item.observed_at == body.observed_at
                    && (item.expires_at == feed_time
                        || (feed_time < week && (item.expires_at - week).abs() < 600)),
                format!("feed item {item:?}"),
            )?;
            kept.push(body);
        }
        kept.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
        published.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
        ensure(
            kept == published,
            format!("the {market} feed holds {kept:?}, not what was published ({published:?})"),
        )?;
    }
    Ok(())
}

pub(crate) fn keys(received: &[Received]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = received.iter().map(Received::key).collect();
    keys.sort();
    keys
}

pub(crate) fn expected(pairs: &[(&str, u32)]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = pairs
        .iter()
        .map(|(kind, id)| ((*kind).to_owned(), format!("zillow:{id}")))
        .collect();
    keys.sort();
    keys
}

pub(crate) fn ensure_clean(
    outcome: &AlertOutcome,
    published: usize,
    already: usize,
) -> Result<(), Failed> {
    ensure(
        outcome.failed_from.is_none(),
        format!("batch failed: {:?}", outcome.error),
    )?;
    ensure(
        (outcome.stats.published, outcome.stats.already_published) == (published, already),
        format!(
            "expected {published} published and {already} already published: {:?}",
            outcome.stats
        ),
    )
}

// ---- the tests ----

async fn subscribers_get_each_alert_they_filter_for_once(aws: Arc<TestAws>) -> Result<(), Failed> {
    let stack = stack(&aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let big_drops = subscribe(
        &stack,
        "big-drops",
        Some(json!({ "alert_type": ["price_drop"], "drop_pct": [{ "numeric": [">=", 20] }] })),
        false,
    )
    .await?;
    let syracuse = subscribe(
        &stack,
        "syracuse",
        Some(json!({ "market": ["syracuse-ny"] })),
        true,
    )
    .await?;

    // Markets: Nashville condos at about 500 $/sqft (city 400); Syracuse has only its
    // all-types figure, about 200.
    let condos = put_market(&stack, "city#nashville-tn#condo", 500.0).await?;
    put_market(&stack, "city#nashville-tn#all", 400.0).await?;
    put_market(&stack, "city#syracuse-ny#all", 200.0).await?;

    use City::*;
    use PropertyType::*;
    let a = listing(1001, Nashville, Condo, 600_000)?;
    let b = listing(1002, Nashville, Condo, 500_000)?;
    let c = listing(1003, Nashville, SingleFamily, 500_000)?;
    let d = listing(1004, Syracuse, SingleFamily, 200_000)?;
    let e = listing(1005, Syracuse, Condo, 190_000)?;
    let mut f = listing(1006, Nashville, Condo, 3_000)?;
    f.listing.offer = Offer::Rent;
    // New listings at or under the bound (0.8 of the condos' median, about 400 $/sqft):
    // undervalued from their first sighting.
    let g = listing(1007, Nashville, Condo, (0.8 * condos * 1e3).floor() as i64)?;
    let h = listing(1008, Nashville, Condo, 390_000)?;
    let i = listing(1009, Nashville, Condo, 300_000)?;
    for item in [&a, &b, &c, &d, &e, &f, &g, &h, &i] {
        put_listing(&stack, item).await?;
    }

    // Round 1: prices change through the table.
    let a2 = repriced(&a, 480_000, 2); // -20 %: price drop (480 $/sqft is not undervalued)
    let e2 = repriced(&e, 155_000, 2); // -18.42 % and 155 <= 0.8 x 200: both alerts
    let mut g2 = repriced(&g, 300_000, 2); // -25 %, but delisted: nothing
    g2.delisted = true;
    let mut h2 = repriced(&h, 390_000, 2); // status only, still undervalued: nothing new
    h2.listing.status = ListingStatus::UnderContract;
    h2.listing.previous_price_minor = None;
    for item in [
        a2.clone(),
        repriced(&b, 440_000, 2), // -12 %: a price cut, under the drop threshold
        repriced(&c, 525_000, 2), // a rise
        repriced(&d, 170_000, 2), // exactly -15 %; 170 > 160: price drop only
        e2.clone(),
        repriced(&f, 2_000, 2), // a rent: nothing
        g2,
        h2,
    ] {
        put_listing(&stack, &item).await?;
    }
    stack
        .dynamodb
        .delete_item()
        .table_name(&stack.resources.listing_table)
        .key("listing_id", Ddb::S(i.listing_id.clone()))
        .send()
        .await
        .explain("DeleteItem")?;

    let mut reader = stack.stream_reader();
    let round1 = reader.next_records().await?;
    ensure(
        round1.len() == 18,
        format!(
            "{} stream records, expected 9 INSERT + 8 MODIFY + 1 REMOVE",
            round1.len()
        ),
    )?;
    let event1 = lambda_event(&stack, &round1)?;
    let (response, outcome) = stack.function.handle(event1.clone()).await;
    ensure(
        response.batch_item_failures.is_empty(),
        format!("{:?}", response.batch_item_failures),
    )?;
    ensure_clean(&outcome, 8, 0)?;
    ensure(
        outcome.stats.skipped.get("not_modify") == Some(&1),
        format!("skipped {:?}", outcome.stats.skipped),
    )?;

    let all = drain(&stack, &everything).await?;
    ensure(
        keys(&all)
            == expected(&[
                ("price_drop", 1001),
                ("price_cut", 1002),
                ("price_drop", 1004),
                ("price_drop", 1005),
                ("undervalued", 1005),
                ("undervalued", 1007),
                ("undervalued", 1008),
                ("undervalued", 1009),
            ]),
        format!("everything got {:?}", keys(&all)),
    )?;
    let dropped = drain(&stack, &big_drops).await?;
    ensure(
        keys(&dropped) == expected(&[("price_drop", 1001)]),
        format!("the >= 20 % subscriber got {:?}", keys(&dropped)),
    )?;
    let first = &dropped[0];
    ensure(
        first.subject.as_deref()
            == Some("Price drop 20%: 1001 Main St, Nashville, TN now $480,000"),
        format!("subject {:?}", first.subject),
    )?;
    ensure(
        first.attributes
            == BTreeMap::from([
                ("alert_type".to_owned(), "price_drop".to_owned()),
                ("bedrooms".to_owned(), "1".to_owned()),
                ("drop_pct".to_owned(), "20.00".to_owned()),
                ("listing_id".to_owned(), "zillow:1001".to_owned()),
                ("market".to_owned(), "nashville-tn".to_owned()),
                ("price".to_owned(), "480000".to_owned()),
                ("property_type".to_owned(), "condo".to_owned()),
            ]),
        format!("attributes {:?}", first.attributes),
    )?;
    ensure(
        (
            first.body.old_price,
            first.body.new_price,
            first.body.drop_pct,
        ) == (600_000.0, 480_000.0, 20.0)
            && first.body.market_median_price_per_sqft == Some((condos * 100.0).round() / 100.0)
            && first.body.median_scope.as_deref() == Some("city#nashville-tn#condo"),
        format!("body {:?}", first.body),
    )?;
    let in_syracuse = drain(&stack, &syracuse).await?;
    ensure(
        keys(&in_syracuse)
            == expected(&[
                ("price_drop", 1004),
                ("price_drop", 1005),
                ("undervalued", 1005),
            ]),
        format!("the Syracuse subscriber got {:?}", keys(&in_syracuse)),
    )?;
    let undervalued = in_syracuse
        .iter()
        .find(|r| r.key().0 == "undervalued")
        .ok_or("no undervalued alert")?;
    ensure(
        undervalued.body.median_scope.as_deref() == Some("city#syracuse-ny#all")
            && undervalued.body.price_per_sqft == Some(155.0)
            && undervalued.attributes.get("drop_pct").map(String::as_str) == Some("18.42"),
        format!("{undervalued:?}"),
    )?;

    // The records of what was published (the feed items, no claim left), kept past every
    // re-delivery.
    let records = alert_records(&stack).await?;
    let now = chrono::Utc::now().timestamp();
    ensure(
        records.len() == 8
            && records.iter().all(|r| {
                r.get("state")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some("published")
                    && !r.contains_key("lease_until")
                    && r.get("expires_at")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<i64>().ok())
                        .is_some_and(|t| t >= now + 7 * 86_400 - 600)
            }),
        format!("alert records {records:?}"),
    )?;

    // Lambda re-delivers the same batch (a retry after a timeout, say): nothing twice.
    for _ in 0..2 {
        let (response, outcome) = stack.function.handle(event1.clone()).await;
        ensure(response.batch_item_failures.is_empty(), "replay failed")?;
        ensure_clean(&outcome, 0, 8)?;
    }
    for subscriber in [&everything, &big_drops, &syracuse] {
        let again = drain(&stack, subscriber).await?;
        ensure(
            again.is_empty(),
            format!("a replay delivered {:?}", keys(&again)),
        )?;
    }
    // The feed the API reads: what was published, once, however often it was replayed.
    ensure_feed_holds(&stack, &all).await?;

    // Round 2: a further cut of a makes a new version, so new alerts; e falls a little more
    // while undervalued; d rises.
    put_listing(&stack, &repriced(&a2, 380_000, 3)).await?; // -20.83 %, and 380 <= 400
    put_listing(&stack, &repriced(&e2, 150_000, 3)).await?; // -3.2 %: a price cut, further under
    put_listing(&stack, &repriced(&d, 178_500, 3)).await?;
    let round2 = reader.next_records().await?;
    ensure(
        round2.len() == 3,
        format!("{} new stream records", round2.len()),
    )?;
    let (response, outcome) = stack.function.handle(lambda_event(&stack, &round2)?).await;
    ensure(response.batch_item_failures.is_empty(), "round 2 failed")?;
    ensure_clean(&outcome, 4, 0)?;
    ensure(
        keys(&drain(&stack, &everything).await?)
            == expected(&[
                ("price_drop", 1001),
                ("undervalued", 1001),
                ("price_cut", 1005),
                ("undervalued", 1005),
            ]),
        "round 2: everything",
    )?;
    let dropped = drain(&stack, &big_drops).await?;
    ensure(
        keys(&dropped) == expected(&[("price_drop", 1001)])
            && dropped[0].attributes.get("drop_pct").map(String::as_str) == Some("20.83"),
        format!("round 2: the >= 20 % subscriber got {dropped:?}"),
    )?;
    ensure(
        keys(&drain(&stack, &syracuse).await?)
            == expected(&[("price_cut", 1005), ("undervalued", 1005)]),
        "round 2: Syracuse",
    )?;

    // The whole stream replayed at once: every alert is known.
    let mut replay = stack.stream_reader();
    let everything_so_far = replay.next_records().await?;
    let (response, outcome) = stack
        .function
        .handle(lambda_event(&stack, &everything_so_far)?)
        .await;
    ensure(
        response.batch_item_failures.is_empty(),
        "full replay failed",
    )?;
    ensure_clean(&outcome, 0, 12)?;
    for subscriber in [&everything, &big_drops, &syracuse] {
        let again = drain(&stack, subscriber).await?;
        ensure(
            again.is_empty(),
            format!("the full replay delivered {:?}", keys(&again)),
        )?;
    }
    Ok(())
}

async fn an_unreachable_topic_fails_the_batch_and_the_replay_delivers_once(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let mut stack = stack(&aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let quiet = listing(2001, City::Nashville, PropertyType::Condo, 500_000)?;
    let cut = listing(2002, City::Nashville, PropertyType::Condo, 500_000)?;
    for item in [&quiet, &cut] {
        put_listing(&stack, item).await?;
    }
    put_listing(&stack, &repriced(&quiet, 505_000, 2)).await?;
    put_listing(&stack, &repriced(&cut, 400_000, 2)).await?;
    let records = stack.stream_reader().next_records().await?;
    let event = lambda_event(&stack, &records)?;
    let cut_sequence = event
        .records
        .iter()
        .filter(|r| r.event_name == "MODIFY")
        .nth(1)
        .and_then(|r| r.change.sequence_number.clone())
        .ok_or("no second MODIFY")?;

    // SNS refuses every call (a topic that is not there): the batch fails from the record
    // whose alert could not go out, and its claim is handed back.
    let topic = stack.function.publisher.topic_arn.clone();
    stack.function.publisher.topic_arn = format!("{topic}-gone");
    stack.function.publisher.retry = RetryPolicy::immediate(Duration::from_millis(200));
    let (response, outcome) = stack.function.handle(event.clone()).await;
    let failed: Vec<Option<String>> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ensure(
        failed == [Some(cut_sequence.clone())],
        format!("failures {failed:?}, expected from {cut_sequence}"),
    )?;
    ensure(
        outcome.stats.unpublished == 1,
        format!("{:?}", outcome.stats),
    )?;
    let claims = alert_records(&stack).await?.len();
    ensure(claims == 0, format!("{claims} claims left behind"))?;
    ensure(
        drain(&stack, &everything).await?.is_empty(),
        "delivered while failing",
    )?;

    // Lambda re-delivers from the failed record; SNS is back.
    stack.function.publisher.topic_arn = topic;
    let mut rest = event.clone();
    let from = rest
        .records
        .iter()
        .position(|r| r.change.sequence_number.as_deref() == Some(cut_sequence.as_str()))
        .ok_or("failed record not in the batch")?;
    rest.records.drain(..from);
    for round in 0..2 {
        let (response, outcome) = stack.function.handle(rest.clone()).await;
        ensure(
            response.batch_item_failures.is_empty(),
            "re-delivery failed",
        )?;
        ensure_clean(&outcome, 1 - round, round)?;
    }
    let got = drain(&stack, &everything).await?;
    ensure(
        keys(&got) == expected(&[("price_drop", 2002)]),
        format!("delivered {:?}", keys(&got)),
    )
}

/// The size of the price-drop alert of `old` -> `new` as SNS counts it (body, subject and
/// attributes), judged against a Nashville condo median of `median` dollars per sqft, as
/// the handler judges it; also for a message over the limit.
fn alert_bytes(old: &ListingItem, new: &ListingItem, median: f64) -> Result<usize, Failed> {
    let change = ListingChange {
        sequence_number: "0".into(),
        old: Some(old.clone()),
        new: new.clone(),
    };
    let median = MarketMedian {
        scope_key: "city#nashville-tn#condo".into(),
        price_per_sqft: median,
    };
    let alert = evaluate(&change, &AlertThresholds::default(), Some(&median))
        .into_iter()
        .next()
        .ok_or("no alert")?;
    Ok(match message(&alert) {
        Ok(m) => m.size_bytes(),
        Err(e) => e.bytes,
    })
}

/// `item` (and its next version, 20 % cheaper) with an address line of `line_bytes`.
fn with_address(item: &ListingItem, line_bytes: usize) -> (ListingItem, ListingItem) {
    let mut old = item.clone();
    old.listing.address.line = Some("a".repeat(line_bytes));
    let new = repriced(&old, old.listing.price_minor / 100 * 4 / 5, 2);
    (old, new)
}

/// Listing items written without the event bounds (by an older version of the metrics
/// function, or by hand): one whose alert is exactly SNS's 256 KiB and one whose alert is a
/// byte over. The first is delivered; the second can never be, so it goes to the error sink
/// (the PoisonRecordQueue) with a short reason, and the batch goes on instead of failing
/// every delivery for an hour and then being discarded.
async fn an_alert_over_the_sns_limit_goes_to_the_error_sink_and_one_at_it_is_delivered(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let stack = stack(&aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let median = put_market(&stack, "city#nashville-tn#condo", 500.0).await?;
    let normal = listing(3001, City::Nashville, PropertyType::Condo, 600_000)?;
    let at_limit = listing(3002, City::Nashville, PropertyType::Condo, 600_000)?;
    let over = listing(3003, City::Nashville, PropertyType::Condo, 600_000)?;

    // The longest address line whose alert fits: the size grows a byte per byte of line.
    let (mut fits, mut too_long) = (0, MAX_MESSAGE_BYTES);
    while too_long - fits > 1 {
        let mid = usize::midpoint(fits, too_long);
        let (old, new) = with_address(&at_limit, mid);
        if alert_bytes(&old, &new, median)? <= MAX_MESSAGE_BYTES {
            fits = mid;
        } else {
            too_long = mid;
        }
    }
    let (at_old, at_new) = with_address(&at_limit, fits);
    let (over_old, over_new) = with_address(&over, fits + 1);
    ensure(
        alert_bytes(&at_old, &at_new, median)? == MAX_MESSAGE_BYTES
            && alert_bytes(&over_old, &over_new, median)? == MAX_MESSAGE_BYTES + 1,
        "the alerts are not at and just past the limit",
    )?;

    for item in [&normal, &at_old, &over_old] {
        put_listing(&stack, item).await?;
    }
    put_listing(&stack, &repriced(&normal, 480_000, 2)).await?;
    put_listing(&stack, &at_new).await?;
    put_listing(&stack, &over_new).await?;
    let records = stack.stream_reader().next_records().await?;
    let event = lambda_event(&stack, &records)?;
    let over_sequence = event
        .records
        .iter()
        .filter(|r| r.event_name == "MODIFY")
        .nth(2)
        .and_then(|r| r.change.sequence_number.clone())
        .ok_or("no third MODIFY")?;

    let (response, outcome) = stack.function.handle(event.clone()).await;
    ensure(
        response.batch_item_failures.is_empty(),
        format!("the batch failed: {:?}", outcome.error),
    )?;
    ensure(
        (outcome.stats.published, outcome.stats.rejected) == (2, 1),
        format!("expected 2 published and 1 rejected: {:?}", outcome.stats),
    )?;
    let got = drain(&stack, &everything).await?;
    ensure(
        keys(&got) == expected(&[("price_drop", 3001), ("price_drop", 3002)]),
        format!("delivered {:?}", keys(&got)),
    )?;
    let delivered_at_limit = got
        .iter()
        .find(|r| r.body.listing_id == "zillow:3002")
        .ok_or("the alert at the limit was not delivered")?;
    ensure(
        delivered_at_limit.body.address.len() > fits,
        "the alert at the limit was cut",
    )?;

    // The error sink has the alert over the limit: who, where in the stream, and why.
    let sunk = stack
        .sqs
        .receive_message()
        .queue_url(&stack.resources.poison_record_queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .send()
        .await
        .explain("ReceiveMessage")?
        .messages
        .unwrap_or_default();
    ensure(
        sunk.len() == 1,
        format!("{} error-sink messages", sunk.len()),
    )?;
    let text = sunk[0].body().ok_or("an error-sink message without body")?;
    ensure(
        text.len() < 2_048,
        format!("an error-sink entry of {} bytes", text.len()),
    )?;
    let entry: Value = serde_json::from_str(text)?;
    ensure(
        entry["function"] == "alerts"
            && entry["reason_kind"] == "message_too_large"
            && entry["alert_id"] == "alert#price_drop#zillow:3003#2"
            && entry["listing_id"] == "zillow:3003"
            && entry["sequence_number"] == over_sequence.as_str()
            && entry["message_bytes"] == MAX_MESSAGE_BYTES + 1
            && entry["reason"]
                .as_str()
                .is_some_and(|r| r.len() < 200 && r.contains("262145")),
        format!("error-sink entry {entry}"),
    )?;
    // Nothing of the alert over the limit was claimed (it was never going to be published).
    let claims = alert_records(&stack).await?.len();
    ensure(claims == 2, format!("{claims} alert records, expected 2"))?;

    // A re-delivery publishes nothing again.
    let (response, outcome) = stack.function.handle(event).await;
    ensure(
        response.batch_item_failures.is_empty(),
        "the re-delivery failed",
    )?;
    ensure_clean(&outcome, 0, 2)?;
    ensure(
        drain(&stack, &everything).await?.is_empty(),
        "a re-delivery delivered again",
    )
}

/// Claims are leases in the real table: another invocation's live claim is neither taken
/// over nor skipped (its record fails and comes again), an expired one is taken over, a
/// published alert is never claimed again, and a claim is released only by its holder.
async fn a_live_claim_is_not_taken_over_and_an_expired_one_is(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let stack = stack(&aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let store = &stack.function.idempotency;
    let now = chrono::Utc::now();
    let live = now + chrono::Duration::minutes(10);
    let expired = now - chrono::Duration::seconds(1);

    // The store on its own.
    let some = listing(4000, City::Nashville, PropertyType::Condo, 500_000)?;
    let key = &alert_key(
        &some,
        AlertKind::PriceDrop,
        "alert#price_drop#zillow:4000#2",
    );
    ensure(
        store.claim(key, "a", live).await? == Claim::Acquired,
        "a new key is claimed",
    )?;
    let held = store.claim(key, "b", live).await?;
    ensure(
        matches!(held, Claim::HeldUntil(until) if (until - live).num_milliseconds().abs() < 1),
        format!("a live claim is taken over: {held:?}"),
    )?;
    store.release(key, "b").await?;
    ensure(
        matches!(store.claim(key, "b", live).await?, Claim::HeldUntil(_)),
        "a claim released by another token",
    )?;
    // The API's read of the feed leaves claims out.
    let reader = realty_aws::adapters::dynamodb::DynamoMarketStore {
        client: stack.dynamodb.clone(),
        table: stack.resources.market_table.clone(),
        retry: Default::default(),
    };
    let page = realty_core::api::lists::recent_alerts(
        &reader,
        std::slice::from_ref(&some.market),
        None,
        10,
        None,
    )
    .await?;
    ensure(
        page.alerts.is_empty() && page.next.is_none(),
        format!("a claim is read as a published alert: {page:?}"),
    )?;
    let key = &alert_key(
        &some,
        AlertKind::PriceDrop,
        "alert#price_drop#zillow:4001#2",
    );
    store.claim(key, "a", expired).await?;
    ensure(
        store.claim(key, "b", live).await? == Claim::Acquired,
        "an expired claim is not taken over",
    )?;
    store.mark_published(&[key]).await?;
    ensure(
        store.claim(key, "c", expired).await? == Claim::AlreadyPublished,
        "a published alert is claimed again",
    )?;

    // Through the handler: a live claim on the alert (another consumer publishing it now).
    let item = listing(4002, City::Nashville, PropertyType::Condo, 500_000)?;
    put_listing(&stack, &item).await?;
    let cut = repriced(&item, 400_000, 2);
    put_listing(&stack, &cut).await?;
    let records = stack.stream_reader().next_records().await?;
    let event = lambda_event(&stack, &records)?;
    let alert = alert_key(&cut, AlertKind::PriceDrop, "alert#price_drop#zillow:4002#2");
    store.claim(&alert, "other", live).await?;
    let (response, outcome) = stack.function.handle(event.clone()).await;
    ensure(
        response.batch_item_failures.len() == 1
            && outcome.stats.claims_held == 1
            && outcome.stats.published == 0,
        format!(
            "a held claim: {:?} {:?}",
            response.batch_item_failures, outcome
        ),
    )?;
    ensure(
        drain(&stack, &everything).await?.is_empty(),
        "published under another invocation's live claim",
    )?;
    // The holder died: its lease runs out, and the re-delivery publishes the alert once.
    stack
        .dynamodb
        .delete_item()
        .table_name(&stack.resources.market_table)
        .key("pk", Ddb::S(alert.pk.clone()))
        .key("sk", Ddb::S(alert.sk.clone()))
        .send()
        .await
        .explain("DeleteItem")?;
    store.claim(&alert, "other", expired).await?;
    for round in 0..2 {
        let (response, outcome) = stack.function.handle(event.clone()).await;
        ensure(
            response.batch_item_failures.is_empty(),
            format!("re-delivery {round}: {:?}", outcome.error),
        )?;
        ensure_clean(&outcome, 1 - round, round)?;
    }
    let got = drain(&stack, &everything).await?;
    ensure(
        keys(&got) == expected(&[("price_drop", 4002)]),
        format!("delivered {:?}", keys(&got)),
    )
}

/// A local SNS endpoint that reads each call whole, counts it (as SNS would accept it) and
/// never answers.
async fn silent_sns() -> Result<(String, Arc<std::sync::Mutex<usize>>), Failed> {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let calls = Arc::new(std::sync::Mutex::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request);
                    let Some(head) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..head]
                        .lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if request.len() >= head + 4 + length {
                        if let Ok(mut n) = counted.lock() {
                            *n += 1;
                        }
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(socket);
            });
        }
    });
    Ok((url, calls))
}

/// SNS accepts the PublishBatch call and its answer is lost: the call is not sent again (by
/// the SDK or the function), the record fails with its alert `unknown` and its claim handed
/// back, and the re-delivery publishes it. With a real SNS that had delivered the first call,
/// the subscriber gets the documented duplicate: two copies with one `alert_id`.
async fn a_publish_without_an_answer_is_sent_once_and_its_record_comes_again(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let mut stack = stack(&aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let item = listing(5001, City::Nashville, PropertyType::Condo, 500_000)?;
    put_listing(&stack, &item).await?;
    put_listing(&stack, &repriced(&item, 400_000, 2)).await?;
    let records = stack.stream_reader().next_records().await?;
    let event = lambda_event(&stack, &records)?;
    let sequence = event
        .records
        .iter()
        .find(|r| r.event_name == "MODIFY")
        .and_then(|r| r.change.sequence_number.clone())
        .ok_or("no MODIFY")?;

    let (url, calls) = silent_sns().await?;
    let silent = aws
        .sdk_config()
        .await
        .to_builder()
        .endpoint_url(url)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(500))
                .build(),
        )
        .build();
    let real = stack.function.publisher.clone();
    stack.function.publisher = SnsAlertPublisher::new(&silent, real.topic_arn.clone(), real.retry);
    let (response, outcome) = stack.function.handle(event.clone()).await;
    let failed: Vec<Option<String>> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ensure(
        failed == [Some(sequence.clone())],
        format!("failures {failed:?}, expected from {sequence}"),
    )?;
    ensure(
        (outcome.stats.publish_unknown, outcome.stats.unpublished) == (1, 0),
        format!("{:?}", outcome.stats),
    )?;
    let sent = *calls.lock().map_err(|_| "lock")?;
    ensure(sent == 1, format!("SNS received the call {sent} times"))?;
    let claims = alert_records(&stack).await?.len();
    ensure(claims == 0, format!("{claims} claims left behind"))?;

    // Lambda re-delivers the record: published once, then known.
    stack.function.publisher = real;
    for round in 0..2 {
        let (response, outcome) = stack.function.handle(event.clone()).await;
        ensure(
            response.batch_item_failures.is_empty(),
            format!("re-delivery {round}: {:?}", outcome.error),
        )?;
        ensure_clean(&outcome, 1 - round, round)?;
    }
    let got = drain(&stack, &everything).await?;
    ensure(
        keys(&got) == expected(&[("price_drop", 5001)]),
        format!("delivered {:?}", keys(&got)),
    )
}

/// One listing's events in the Kinesis format, from events/metrics-kinesis.json's first
/// record: seen at $600,000, cut 20 % to $480,000, raised back to $600,000, cut 25 % to
/// $450,000, five minutes apart.
fn cut_raise_cut_events() -> Result<KinesisEvent, Failed> {
    let sample: Value = serde_json::from_str(include_str!("../../../events/metrics-kinesis.json"))?;
    let template = sample["Records"][0].clone();
    let first: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(template["kinesis"]["data"].as_str().ok_or("no data")?)?,
    )?;
    let start = chrono::DateTime::parse_from_rfc3339("2025-09-12T15:40:02Z")?;
    let mut records = Vec::new();
    let mut old: Option<i64> = None;
    for (i, dollars) in [600_000i64, 480_000, 600_000, 450_000]
        .into_iter()
        .enumerate()
    {
        let price = dollars * 100;
        let at = start + chrono::Duration::minutes(5 * i as i64);
        let mut event = first.clone();
        event["listing"]["price_minor"] = json!(price);
        event["listing"]["observed_at"] = json!(at.to_rfc3339());
        event["observed_at"] = json!(at.to_rfc3339());
        if let Some(old) = old {
            event["kind"] = json!("changed");
            event["listing"]["previous_price_minor"] = json!(old);
            event["changes"] =
                json!({"price": {"old": old, "new": price}, "status": null, "fields": []});
        }
        old = Some(price);
        records.push(kinesis_record(&template, &event, 1000 + i, at.timestamp())?);
    }
    Ok(serde_json::from_value(json!({ "Records": records }))?)
}

/// `template` (a record of events/metrics-kinesis.json) carrying `event`, as the `n`th
/// record of the shard, arrived a second after `observed` (epoch seconds).
pub(crate) fn kinesis_record(
    template: &Value,
    event: &Value,
    n: usize,
    observed: i64,
) -> Result<Value, Failed> {
    let mut record = template.clone();
    let sequence = format!("4959033827149025660855969253836157109592157598913{n:07}");
    record["kinesis"]["sequenceNumber"] = json!(sequence);
    record["kinesis"]["approximateArrivalTimestamp"] = json!(observed + 1);
    record["kinesis"]["data"] =
        json!(base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(event)?));
    record["eventID"] = json!(format!("shardId-000000000000:{sequence}"));
    Ok(record)
}

/// The alert ids subscribers receive when the real metrics function applies the events in
/// Kinesis batches of the given sizes and the alerts function reads the table's stream.
async fn alerts_after_metrics_batches(
    aws: &TestAws,
    cuts: &[usize],
) -> Result<Vec<String>, Failed> {
    let stack = stack(aws).await?;
    let everything = subscribe(&stack, "everything", None, true).await?;
    let metrics = realty_aws::functions::metrics::MetricsFunction::new(
        &aws.sdk_config().await,
        &stack.resources,
    );
    let events = cut_raise_cut_events()?;
    let mut next = 0;
    for size in cuts {
        let mut part = events.clone();
        part.records = events.records[next..next + size].to_vec();
        next += size;
        let (response, _) = metrics.handle(part).await;
        ensure(
            response.batch_item_failures.is_empty(),
            format!("metrics failed: {:?}", response.batch_item_failures),
        )?;
    }
    let records = stack.stream_reader().next_records().await?;
    ensure(
        records.len() == cuts.len(),
        format!(
            "{} listing writes for {} batches",
            records.len(),
            cuts.len()
        ),
    )?;
    let (response, outcome) = stack.function.handle(lambda_event(&stack, &records)?).await;
    ensure(
        response.batch_item_failures.is_empty(),
        format!("alerts failed: {:?}", outcome.error),
    )?;
    let mut ids: Vec<String> = drain(&stack, &everything)
        .await?
        .into_iter()
        .map(|r| r.body.alert_id)
        .collect();
    ids.sort();
    Ok(ids)
}

/// The metrics function writes a listing once per Kinesis batch; the alerts it causes are the
/// same however the stream was cut: each cut alerts once, under its own event's version,
/// even when a rise follows it in the same batch, or the listing was first seen in it.
async fn the_same_events_fire_the_same_alerts_however_metrics_batched_them(
    aws: Arc<TestAws>,
) -> Result<(), Failed> {
    let one_each = alerts_after_metrics_batches(&aws, &[1, 1, 1, 1]).await?;
    let expected: Vec<String> = [1001, 1003]
        .iter()
        .map(|n| {
            format!("alert#price_drop#zillow:108712579#4959033827149025660855969253836157109592157598913{n:07}")
        })
        .collect();
    ensure(
        one_each == expected,
        format!("one event a batch: {one_each:?}"),
    )?;
    for cuts in [&[1, 3][..], &[2, 2], &[4]] {
        let got = alerts_after_metrics_batches(&aws, cuts).await?;
        ensure(got == expected, format!("batches of {cuts:?}: {got:?}"))?;
    }
    Ok(())
}
