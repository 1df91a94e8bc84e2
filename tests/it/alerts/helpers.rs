//! What the alerts tests share: a provisioned stack and its clients, listings and markets
//! written as the metrics function writes them, the listing table's stream in Lambda's
//! shape, and SQS subscribers of the alert topic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodb::types::AttributeValue as Ddb;
use aws_sdk_dynamodbstreams::types::Record;
use libtest_mimic::Failed;
use realty_alerts::config::AlertsConfig;
use realty_alerts::feed::FEED_KEY_PREFIX;
use realty_alerts::message::AlertBody;
use realty_alerts::process::AlertOutcome;
use realty_aws::functions::alerts::AlertsFunction;
use realty_infra::runner;
use realty_metrics::aggregate::{Contribution, ListingFacts};
use realty_metrics::items::MarketLiveItem;
use realty_metrics::ports::StoredAggregate;
use realty_model::config::StackResources;
use realty_model::listing::{ListingId, PropertyType};
use realty_model::state::ListingItem;
use realty_tests::{Explain, TableStreamReader, TestAws, ensure};
use serde_json::{Value, json};

// ---- the stack and its clients ----

pub(crate) struct Stack {
    pub(crate) resources: StackResources,
    stream_arn: String,
    pub(super) dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    sns: aws_sdk_sns::Client,
    pub(super) sqs: aws_sdk_sqs::Client,
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
        function: AlertsFunction::new(
            &aws.function_sdk("AlertsFunction").await,
            &resources,
            &config,
        ),
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
pub(super) enum City {
    Nashville,
    Syracuse,
}

pub(super) fn listing(
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
pub(super) fn repriced(item: &ListingItem, price_dollars: i64, version: u32) -> ListingItem {
    let mut next = item.clone();
    next.listing.previous_price_minor = Some(item.listing.price_minor);
    next.listing.price_minor = price_dollars * 100;
    next.sequence = format!("{version:0>128}");
    next.observed_at = item.observed_at + chrono::Duration::minutes(5 * i64::from(version));
    next.listing.observed_at = next.observed_at;
    next
}

pub(super) async fn put_listing(stack: &Stack, item: &ListingItem) -> Result<(), Failed> {
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
pub(super) async fn put_market(stack: &Stack, scope_key: &str, about: f64) -> Result<f64, Failed> {
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
    pub(super) fn key(&self) -> (String, String) {
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

/// Every item of the alerts in the market table: claims and published feed items.
pub(super) async fn alert_records(stack: &Stack) -> Result<Vec<HashMap<String, Ddb>>, Failed> {
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
