//! The alerts function's work on one batch of the listing table's stream, over the ports.
//!
//! Order of effects, in stream order:
//! 1. decode each record into the listing's old and new item, and that into one change per
//!    event the write applied ([`per_event`]); anything else is skipped with its reason
//!    (never a failure: re-delivering it would not make it readable);
//! 2. read the market medians the batch needs, in one lookup;
//! 3. decide the alerts due ([`super::rules`]) and build their messages; an alert that can
//!    never be a message (too large for SNS) is set aside for the error sink;
//! 4. claim the alerts' keys in the alert feed ([`super::feed`]) until the invocation's
//!    deadline, all in one go (the store sends up to 100 a call): an alert already published
//!    is skipped; one another live invocation holds is waited for, or its record failed;
//! 5. publish the claimed alerts (PublishBatch; only entries SNS reports failed re-sent);
//! 6. mark what was published by writing its feed items over the claims, in one go
//!    (re-tried while the claims' leases run), release the claims of what was not, and send
//!    what can never be published to the error sink.
//!
//! A failure in steps 2, 4, 5 or 6 (the sink) fails the batch from the first record it
//! touches: that record's sequence number goes back as `batchItemFailures`, and Lambda
//! re-delivers it and everything after it. The records before it are done. When a crash or a
//! lost answer can still duplicate an alert: docs/alerts.md. A mark that fails for good fails
//! nothing: re-delivering the record would publish its alert again, and the alert reached
//! SNS; it is logged and counted (`alert_marks_failed`), and the feed misses it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::Serialize;

use super::feed::AlertFeedItem;
use super::message::{AlertMessage, MAX_SINK_FIELD_BYTES, Unpublishable, cut_to, message};
use super::ports::{
    AlertClaimStore, AlertErrorSink, AlertPublisher, Claim, MarketMedians, PublishReport,
    RejectedAlert,
};
use super::rules::{
    Alert, AlertKind, AlertThresholds, ListingChange, ListingStreamRecord, Medians, classify,
    evaluate, median_scope_keys, needs_median, per_event,
};
use realty_model::ports::PortError;

/// A claim's lease runs this long past its invocation's deadline, so a taker whose clock is
/// ahead of the holder's by less than this never takes a live claim.
pub const CLAIM_CLOCK_ALLOWANCE: chrono::Duration = chrono::Duration::seconds(2);
/// A claim held by another invocation is waited for when its lease ends at least this long
/// before our own deadline (time to publish, which stops [`PUBLISH_MARGIN`] before it, and
/// mark); otherwise its record is failed.
pub const HELD_CLAIM_WAIT_MARGIN: chrono::Duration = chrono::Duration::seconds(15);
/// A mark that fails is re-tried until this long before the deadline (time to answer).
pub const RETRY_MARGIN: chrono::Duration = chrono::Duration::seconds(2);
/// Publishing stops this long before the deadline, leaving time to mark what was published
/// (a mark call re-tries its failed part for a few seconds, and is re-tried until
/// [`RETRY_MARGIN`]) before Lambda stops the invocation.
pub const PUBLISH_MARGIN: chrono::Duration = chrono::Duration::seconds(10);
/// The first and the longest wait between those re-tries ([`realty_model::backoff::full_jitter`]).
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(50);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(2);

/// All the ports the alerts function uses.
pub struct AlertPorts<'a, I, M, P, S> {
    /// Claims and marks, in the feed of published alerts the API reads.
    pub idempotency: &'a I,
    pub medians: &'a M,
    pub publisher: &'a P,
    pub sink: &'a S,
}

/// What happened to a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertStats {
    pub records: usize,
    /// Records skipped, by reason (`not_modify`, `malformed_new_image`, ...).
    pub skipped: BTreeMap<&'static str, usize>,
    /// Listing changes judged: one per event the records' writes applied.
    pub changes: usize,
    /// Alerts due, by type (`price_drop`, `undervalued`, ...).
    pub due: BTreeMap<&'static str, usize>,
    /// Changes whose market has no median yet (their undervalued check could not run).
    pub without_median: usize,
    /// Alerts skipped because they were published before (re-deliveries).
    pub already_published: usize,
    /// Claims found held by another live invocation (waited for, or their record failed).
    pub claims_held: usize,
    pub published: usize,
    /// Known not published (SNS answered with an error): their records come again.
    pub unpublished: usize,
    /// Sent, but the call got no answer: their records come again, which may duplicate them.
    pub publish_unknown: usize,
    /// Alerts that can never be published (too large, refused by SNS), in the error sink.
    pub rejected: usize,
    pub publish_retries: u32,
    /// Failed marks re-tried while the claim's lease ran.
    pub mark_retries: u32,
    /// Published alerts whose record could not be marked before the deadline: the feed
    /// misses them, and a re-delivery of their record would repeat them (the alert went out;
    /// its record is not failed).
    pub marks_failed: usize,
    pub duration_ms: u64,
}

/// The batch's result: stats, and where Lambda must re-deliver from if it failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertOutcome {
    pub stats: AlertStats,
    /// Sequence number of the first record not fully processed (`batchItemFailures`).
    pub failed_from: Option<String>,
    pub error: Option<String>,
}

/// The earliest failure so far: the index of the change it touches, and why.
#[derive(Debug, Default)]
struct FirstFailure(Option<(usize, String)>);

impl FirstFailure {
    fn record(&mut self, change: usize, error: impl Into<String>) {
        if self.0.as_ref().is_none_or(|(first, _)| change < *first) {
            self.0 = Some((change, error.into()));
        }
    }

    /// Changes before this index are unaffected.
    fn limit(&self) -> usize {
        self.0.as_ref().map_or(usize::MAX, |(first, _)| *first)
    }
}

/// An alert on its way: the change it came from (index), its message and its feed item
/// (whose keys its claim takes).
struct Pending {
    change: usize,
    kind: AlertKind,
    listing_id: String,
    message: AlertMessage,
    feed: AlertFeedItem,
}

/// An alert for the error sink: the change it came from (index), and its entry.
struct Rejected {
    change: usize,
    entry: RejectedAlert,
}

impl Rejected {
    fn new(
        change: usize,
        sequence_number: &str,
        kind: AlertKind,
        alert_id: &str,
        listing_id: &str,
        why: Unpublishable,
    ) -> Self {
        Self {
            change,
            entry: RejectedAlert {
                function: "alerts",
                alert_id: cut_to(alert_id, MAX_SINK_FIELD_BYTES),
                alert_type: kind.as_str(),
                listing_id: cut_to(listing_id, MAX_SINK_FIELD_BYTES),
                sequence_number: cut_to(sequence_number, MAX_SINK_FIELD_BYTES),
                reason_kind: why.kind,
                reason: cut_to(&why.reason, MAX_SINK_FIELD_BYTES),
                message_bytes: why.bytes,
            },
        }
    }
}

/// A random name for this invocation's claims.
fn claim_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Processes one batch of stream records. `deadline` is when Lambda stops the invocation
/// (its context's deadline): claims are leased until then, and a held claim is waited for
/// only when that still leaves time to publish.
pub async fn process_batch<I, M, P, S>(
    ports: &AlertPorts<'_, I, M, P, S>,
    thresholds: &AlertThresholds,
    records: Vec<ListingStreamRecord>,
    deadline: DateTime<Utc>,
) -> AlertOutcome
where
    I: AlertClaimStore,
    M: MarketMedians,
    P: AlertPublisher,
    S: AlertErrorSink,
{
    let started = Instant::now();
    let mut stats = AlertStats {
        records: records.len(),
        ..AlertStats::default()
    };
    let changes = decode(records, &mut stats);
    let mut failure = FirstFailure::default();
    let medians = read_medians(ports.medians, &changes, &mut failure).await;
    let Decided { due, mut sink } =
        decide(&changes, thresholds, &medians, failure.limit(), &mut stats);
    let token = claim_token();
    let to_publish = claim(
        ports.idempotency,
        due,
        &token,
        deadline,
        &mut failure,
        &mut stats,
    )
    .await;
    let published = publish(
        ports.publisher,
        to_publish,
        &changes,
        deadline,
        &mut sink,
        &mut failure,
        &mut stats,
    )
    .await;
    record_outcome(
        ports,
        &published,
        &sink,
        &token,
        deadline,
        &mut failure,
        &mut stats,
    )
    .await;

    stats.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (failed_from, error) = match failure.0 {
        Some((change, error)) => (Some(changes[change].sequence_number.clone()), Some(error)),
        None => (None, None),
    };
    AlertOutcome {
        stats,
        failed_from,
        error,
    }
}

/// Step 1: each record decoded into one change per event its write applied; the rest
/// skipped, each with its reason.
fn decode(records: Vec<ListingStreamRecord>, stats: &mut AlertStats) -> Vec<ListingChange> {
    let mut changes: Vec<ListingChange> = Vec::with_capacity(records.len());
    for record in records {
        let event_id = record.event_id.clone();
        let sequence_number = record.sequence_number.clone();
        match classify(record) {
            // One change per event the record's write applied (decisions per event).
            Ok(change) => changes.extend(per_event(change)),
            Err(skipped) => {
                let reason = skipped.reason.as_str();
                let detail = cut_to(&skipped.detail, MAX_SINK_FIELD_BYTES);
                tracing::warn!(event_id, ?sequence_number, reason, detail, "record skipped");
                metrics::counter!("records_skipped", "reason" => reason).increment(1);
                *stats.skipped.entry(reason).or_default() += 1;
            }
        }
    }
    stats.changes = changes.len();
    changes
}

/// Step 2: the medians of every market the batch needs, in one lookup. A failed lookup
/// blocks only the changes that needed a median, from the first of them.
async fn read_medians<M: MarketMedians>(
    store: &M,
    changes: &[ListingChange],
    failure: &mut FirstFailure,
) -> BTreeMap<String, f64> {
    let wanted: BTreeSet<String> = changes
        .iter()
        .filter(|c| needs_median(c.old.as_ref(), &c.new))
        .flat_map(|c| median_scope_keys(&c.new.listing))
        .collect();
    if wanted.is_empty() {
        return BTreeMap::new();
    }
    let keys: Vec<String> = wanted.into_iter().collect();
    match store.medians_per_sqft(&keys).await {
        Ok(medians) => medians,
        Err(e) => {
            if let Some(first) = changes
                .iter()
                .position(|c| needs_median(c.old.as_ref(), &c.new))
            {
                failure.record(first, e.to_string());
            }
            BTreeMap::new()
        }
    }
}

/// The alerts step 3 found due, and those that can never be published.
struct Decided {
    due: Vec<Pending>,
    sink: Vec<Rejected>,
}

/// Step 3: the alerts due, decided in stream order up to `limit` (the first change that
/// cannot be judged), each with its message; one that can never be a message is set aside
/// for the error sink.
fn decide(
    changes: &[ListingChange],
    thresholds: &AlertThresholds,
    medians: &BTreeMap<String, f64>,
    limit: usize,
    stats: &mut AlertStats,
) -> Decided {
    let mut decided = Decided {
        due: Vec::new(),
        sink: Vec::new(),
    };
    let mut due_ids: HashSet<String> = HashSet::new();
    for (i, change) in changes.iter().enumerate().take(limit) {
        let judged_by = if needs_median(change.old.as_ref(), &change.new) {
            let judged_by = Medians::of(&change.new.listing, medians);
            if judged_by.judged.is_none() {
                stats.without_median += 1;
            }
            judged_by
        } else {
            Medians::default()
        };
        for alert in evaluate(change, thresholds, &judged_by) {
            *stats.due.entry(alert.kind.as_str()).or_default() += 1;
            match message_and_feed(&alert) {
                // The same event twice in one batch (a listing write repeated): one alert.
                Ok((message, _)) if !due_ids.insert(message.alert_id.clone()) => {
                    tracing::info!(alert_id = %message.alert_id, "alert due twice in one batch; sent once");
                }
                Ok((message, feed)) => decided.due.push(Pending {
                    change: i,
                    kind: alert.kind,
                    listing_id: alert.listing.listing_id.clone(),
                    message,
                    feed,
                }),
                Err(why) => {
                    tracing::error!(alert = %alert_name(&alert), reason = %why, "alert cannot be published; it goes to the error sink");
                    decided.sink.push(Rejected::new(
                        i,
                        &change.sequence_number,
                        alert.kind,
                        &alert.idempotency_key(),
                        &alert.listing.listing_id,
                        why,
                    ));
                }
            }
        }
    }
    decided
}

/// An alert's SNS message and its feed item, or why it can never be published.
fn message_and_feed(alert: &Alert) -> Result<(AlertMessage, AlertFeedItem), Unpublishable> {
    message(alert).and_then(|m| {
        let feed = AlertFeedItem::of(&m).map_err(|e| Unpublishable {
            kind: "unencodable",
            reason: cut_to(&e.to_string(), MAX_SINK_FIELD_BYTES),
            bytes: m.size_bytes(),
        })?;
        Ok((m, feed))
    })
}

/// Step 4: claims every alert due before the first failure, in one go (the store sends up
/// to 100 claims a call). Claims another live invocation holds are waited for together when
/// their leases end in time; the first claim that fails or stays held stops the batch there.
/// Returns the alerts to publish; the claims of a change cut by a failure are handed back.
async fn claim<I: AlertClaimStore>(
    store: &I,
    mut due: Vec<Pending>,
    token: &str,
    deadline: DateTime<Utc>,
    failure: &mut FirstFailure,
    stats: &mut AlertStats,
) -> Vec<Pending> {
    let lease_until = deadline + CLAIM_CLOCK_ALLOWANCE;
    due.retain(|p| p.change < failure.limit());
    let keys: Vec<&AlertFeedItem> = due.iter().map(|p| &p.feed).collect();
    let mut claims = store.claim_all(&keys, token, lease_until).await;
    let waitable = waitable_claims(&due, &claims, deadline, failure, stats);
    // Only the held claims before the first failure are waited for (one held far down the
    // batch no longer kept the earlier alerts waiting for it, to be handed back at the
    // failure after all).
    let held: Vec<(usize, DateTime<Utc>)> = waitable
        .into_iter()
        .filter(|(i, _)| due[*i].change < failure.limit())
        .collect();
    claim_again_after_leases(store, &keys, &held, &mut claims, token, lease_until).await;
    drop(keys);
    let claimed = acquired(due, claims, failure, stats);
    // A change with one alert claimed and the next failing is re-delivered whole: hand its
    // claims back instead of publishing half of it.
    let (to_publish, handed_back): (Vec<Pending>, Vec<Pending>) = claimed
        .into_iter()
        .partition(|p| p.change < failure.limit());
    release(store, &handed_back, token, deadline).await;
    to_publish
}

/// The first answers to the claims: a claim that failed, or is held past the time this
/// invocation could wait, fails its change; the held ones that can be waited for are
/// returned (their index in `due`, and when their lease ends).
fn waitable_claims(
    due: &[Pending],
    claims: &[Result<Claim, PortError>],
    deadline: DateTime<Utc>,
    failure: &mut FirstFailure,
    stats: &mut AlertStats,
) -> Vec<(usize, DateTime<Utc>)> {
    let mut waitable: Vec<(usize, DateTime<Utc>)> = Vec::new();
    for (i, claim) in claims.iter().enumerate() {
        let change = due[i].change;
        match claim {
            Ok(Claim::HeldUntil(until)) => {
                stats.claims_held += 1;
                // Left by an invocation that crashed, or one about to end: wait for its
                // lease when it ends in time for this one to publish and mark.
                if *until + HELD_CLAIM_WAIT_MARGIN < deadline {
                    waitable.push((i, *until));
                } else {
                    failure.record(
                        change,
                        format!(
                            "alert {} is claimed by another live invocation until {until}",
                            cut_to(&due[i].message.alert_id, MAX_SINK_FIELD_BYTES)
                        ),
                    );
                }
            }
            Err(e) => failure.record(change, e.to_string()),
            Ok(_) => {}
        }
    }
    waitable
}

/// Waits for the latest of the `held` claims' leases to end, then claims those again,
/// their answers replacing the first ones in `claims`.
async fn claim_again_after_leases<I: AlertClaimStore>(
    store: &I,
    keys: &[&AlertFeedItem],
    held: &[(usize, DateTime<Utc>)],
    claims: &mut [Result<Claim, PortError>],
    token: &str,
    lease_until: DateTime<Utc>,
) {
    let Some(latest) = held.iter().map(|(_, until)| *until).max() else {
        return;
    };
    let wait = (latest - Utc::now()).to_std().unwrap_or_default();
    tracing::info!(
        claims = held.len(),
        ?wait,
        "alerts claimed by another invocation; waiting for their leases to end"
    );
    tokio::time::sleep(wait + std::time::Duration::from_millis(50)).await;
    let again: Vec<&AlertFeedItem> = held.iter().map(|(i, _)| keys[*i]).collect();
    let answers = store.claim_all(&again, token, lease_until).await;
    for ((i, _), answer) in held.iter().zip(answers) {
        claims[*i] = answer;
    }
}

/// The alerts whose claim this invocation holds; the others counted as already published,
/// or failing their change (still held, or the claim failed).
fn acquired(
    due: Vec<Pending>,
    claims: Vec<Result<Claim, PortError>>,
    failure: &mut FirstFailure,
    stats: &mut AlertStats,
) -> Vec<Pending> {
    let mut claimed: Vec<Pending> = Vec::with_capacity(due.len());
    for (pending, claim) in due.into_iter().zip(claims) {
        let key = pending.message.alert_id.as_str();
        match claim {
            // Past a failure it is handed back by the caller.
            Ok(Claim::Acquired) => claimed.push(pending),
            _ if pending.change >= failure.limit() => {}
            Ok(Claim::AlreadyPublished) => {
                tracing::info!(alert_id = %key, "alert already published; skipped");
                stats.already_published += 1;
            }
            // Recorded before, or still held (or failed) after the wait.
            Ok(Claim::HeldUntil(until)) => failure.record(
                pending.change,
                format!(
                    "alert {} is claimed by another live invocation until {until}",
                    cut_to(key, MAX_SINK_FIELD_BYTES)
                ),
            ),
            Err(e) => failure.record(pending.change, e.to_string()),
        }
    }
    claimed
}

/// The claimed alerts after step 5: those SNS took, and the others.
struct Published {
    published: Vec<Pending>,
    not_published: Vec<Pending>,
}

/// Step 5: publishes the claimed alerts. One SNS refused for good goes to the error sink;
/// the first one not published for now fails its change.
async fn publish<P: AlertPublisher>(
    publisher: &P,
    to_publish: Vec<Pending>,
    changes: &[ListingChange],
    deadline: DateTime<Utc>,
    sink: &mut Vec<Rejected>,
    failure: &mut FirstFailure,
    stats: &mut AlertStats,
) -> Published {
    let messages: Vec<AlertMessage> = to_publish.iter().map(|p| p.message.clone()).collect();
    let report = if messages.is_empty() {
        PublishReport::default()
    } else {
        publisher
            .publish(&messages, deadline - PUBLISH_MARGIN)
            .await
    };
    stats.publish_retries = report.retries;
    let refused: BTreeMap<usize, &String> = report.refused.iter().map(|(i, r)| (*i, r)).collect();
    let mut sorted = Published {
        published: Vec::new(),
        not_published: Vec::new(),
    };
    let mut first_unpublished: Option<usize> = None;
    for (i, pending) in to_publish.into_iter().enumerate() {
        if report.published(i) {
            sorted.published.push(pending);
            continue;
        }
        if let Some(reason) = refused.get(&i) {
            // Refused for good: re-delivering cannot help, the error sink records it.
            sink.push(refused_by_sns(&pending, changes, reason));
        } else {
            if report.unknown.contains(&i) {
                stats.publish_unknown += 1;
            } else {
                stats.unpublished += 1;
            }
            first_unpublished.get_or_insert(pending.change);
        }
        sorted.not_published.push(pending);
    }
    if let Some(change) = first_unpublished {
        failure.record(
            change,
            format!(
                "{} alerts unpublished ({} of them sent without an answer): {}",
                stats.unpublished + stats.publish_unknown,
                stats.publish_unknown,
                report.error.as_deref().unwrap_or("unknown error")
            ),
        );
    }
    sorted
}

/// The error sink's entry for an alert SNS refused for good, for `reason`.
fn refused_by_sns(pending: &Pending, changes: &[ListingChange], reason: &str) -> Rejected {
    Rejected::new(
        pending.change,
        &changes[pending.change].sequence_number,
        pending.kind,
        &pending.message.alert_id,
        &pending.listing_id,
        Unpublishable {
            kind: "refused_by_sns",
            reason: reason.to_owned(),
            bytes: pending.message.size_bytes(),
        },
    )
}

/// Step 6: records the outcome of each claim. The marks (which are the feed the API reads),
/// the error sink and the claims handed back are independent writes: side by side, one
/// round trip after the publish. The releases first, a throttled one retried by the SDK,
/// took the time the marks needed: published alerts left unmarked, their claims taken over
/// by the re-delivery that the unpublished ones made certain, were published again.
async fn record_outcome<I, M, P, S>(
    ports: &AlertPorts<'_, I, M, P, S>,
    published: &Published,
    sink: &[Rejected],
    token: &str,
    deadline: DateTime<Utc>,
    failure: &mut FirstFailure,
    stats: &mut AlertStats,
) where
    I: AlertClaimStore,
    S: AlertErrorSink,
{
    for pending in &published.published {
        stats.published += 1;
        metrics::counter!("alerts_published", "alert_type" => pending.kind.as_str()).increment(1);
        tracing::info!(alert_id = %pending.message.alert_id, subject = %pending.message.subject, "alert published");
    }
    let items: Vec<&AlertFeedItem> = published.published.iter().map(|p| &p.feed).collect();
    // The error sink takes the rejected alerts of the changes that are done (later ones come
    // again and are judged again). One it cannot take fails its record: never lost silently.
    let limit = failure.limit();
    let done: Vec<&Rejected> = sink.iter().filter(|r| r.change < limit).collect();
    let entries: Vec<RejectedAlert> = done.iter().map(|r| r.entry.clone()).collect();
    let handing_back = release(ports.idempotency, &published.not_published, token, deadline);
    let (marked, sunk, ()) = futures::join!(
        mark(ports.idempotency, &items, deadline),
        send_to_sink(ports.sink, &entries, deadline),
        handing_back
    );
    if let Some((retries, result)) = marked {
        stats.mark_retries += retries;
        if let Err(e) = result {
            // Published is published: failing the records would publish them again. The
            // pending claims left behind only matter if their records are re-delivered.
            tracing::error!(alerts = items.len(), error = %e, "alerts published but not marked, nor kept in the alert feed");
            stats.marks_failed += items.len();
        }
    }
    if let Some(first) = done.first() {
        match sunk {
            Ok(()) => stats.rejected = entries.len(),
            Err(e) => failure.record(
                first.change,
                format!("the error sink did not take {} alerts: {e}", entries.len()),
            ),
        }
    }
}

/// Marks `items` published, re-tried until [`RETRY_MARGIN`] before `deadline`: while the
/// claims' leases run no other invocation can take them, so a late mark is right. `None`
/// when there is nothing to mark; else the retries and the outcome.
async fn mark<I: AlertClaimStore>(
    store: &I,
    items: &[&AlertFeedItem],
    deadline: DateTime<Utc>,
) -> Option<(u32, Result<(), PortError>)> {
    if items.is_empty() {
        return None;
    }
    let what = format!("mark {} alerts published", items.len());
    Some(retry_before_deadline(deadline, &what, || store.mark_published(items)).await)
}

/// Sends `entries` to the error sink, stopped [`RETRY_MARGIN`] before `deadline`.
async fn send_to_sink<S: AlertErrorSink>(
    sink: &S,
    entries: &[RejectedAlert],
    deadline: DateTime<Utc>,
) -> Result<(), PortError> {
    if entries.is_empty() {
        return Ok(());
    }
    let left = (deadline - RETRY_MARGIN - Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::timeout(left, sink.send(entries))
        .await
        .unwrap_or_else(|_| {
            Err(PortError::new(
                "alerts workflow",
                "cannot send to the error sink: still running 2 s before the invocation's deadline; stopped",
            ))
        })
}

fn alert_name(alert: &Alert) -> String {
    format!(
        "{} {}",
        alert.kind.as_str(),
        cut_to(&alert.listing.listing_id, MAX_SINK_FIELD_BYTES)
    )
}

/// Runs `attempt` until it succeeds, re-trying a failure (after the project's backoff) while
/// the next try can still start [`RETRY_MARGIN`] before `deadline`, and stopping a try still
/// running then (a throttled call's SDK retries, a store's re-send of its unprocessed part):
/// an invocation Lambda stops fails its whole batch, whose alerts, published and unmarked,
/// a re-delivery publishes again. Returns the retries, and the last error if it never went
/// through.
async fn retry_before_deadline<T, Fut: Future<Output = Result<T, PortError>>>(
    deadline: DateTime<Utc>,
    what: &str,
    mut attempt: impl FnMut() -> Fut,
) -> (u32, Result<T, PortError>) {
    let mut retries = 0;
    loop {
        let left = (deadline - RETRY_MARGIN - Utc::now())
            .to_std()
            .unwrap_or_default();
        let tried = match tokio::time::timeout(left, attempt()).await {
            Ok(tried) => tried,
            Err(_) => {
                return (
                    retries,
                    Err(PortError::new(
                        "alerts workflow",
                        format!(
                            "cannot {what}: still running 2 s before the invocation's deadline; stopped"
                        ),
                    )),
                );
            }
        };
        match tried {
            Ok(done) => return (retries, Ok(done)),
            Err(e) => {
                let wait =
                    realty_model::backoff::full_jitter(RETRY_FIRST_DELAY, RETRY_MAX_DELAY, retries);
                let wait_chrono = chrono::Duration::from_std(wait).unwrap_or(RETRY_MARGIN);
                if Utc::now() + wait_chrono + RETRY_MARGIN >= deadline {
                    return (retries, Err(e));
                }
                tracing::warn!(error = %e, "cannot {what}; trying again");
                tokio::time::sleep(wait).await;
                retries += 1;
            }
        }
    }
}

/// Claims handed back at once.
const RELEASES_IN_FLIGHT: usize = 16;

/// Hands claims back, [`RELEASES_IN_FLIGHT`] at a time, until [`RETRY_MARGIN`] before the
/// deadline. A claim not handed back is logged only: its lease runs out at the deadline (and
/// its margin), and a re-delivery meanwhile waits for it or fails its record as held.
async fn release<I: AlertClaimStore>(
    store: &I,
    claims: &[Pending],
    token: &str,
    deadline: DateTime<Utc>,
) {
    if claims.is_empty() {
        return;
    }
    let left = (deadline - RETRY_MARGIN - Utc::now())
        .to_std()
        .unwrap_or_default();
    let all = futures::stream::iter(claims).for_each_concurrent(RELEASES_IN_FLIGHT, |pending| async move {
        if let Err(e) = store.release(&pending.feed, token).await {
            tracing::warn!(alert_id = %pending.message.alert_id, error = %e, "cannot release an alert claim");
        }
    });
    if tokio::time::timeout(left, all).await.is_err() {
        tracing::warn!(
            claims = claims.len(),
            "alert claims still being handed back 2 s before the deadline; their leases run out"
        );
    }
}

#[cfg(test)]
mod deadline_tests {
    use super::*;

    /// A try still running [`RETRY_MARGIN`] before the deadline (a mark whose throttled
    /// call the SDK keeps retrying) is stopped there, so the invocation answers instead of
    /// being stopped by Lambda with its published alerts unmarked.
    #[tokio::test(start_paused = true)]
    async fn a_try_still_running_near_the_deadline_is_stopped() {
        let deadline = Utc::now() + RETRY_MARGIN + chrono::Duration::seconds(30);
        let hung = tokio::time::timeout(
            Duration::from_secs(120),
            retry_before_deadline(deadline, "mark 3 alerts published", || {
                std::future::pending::<Result<(), PortError>>()
            }),
        )
        .await;
        let Ok((retries, Err(e))) = hung else {
            panic!("the try ran on past the invocation's deadline: {hung:?}");
        };
        assert_eq!(retries, 0);
        assert!(e.to_string().contains("mark 3 alerts published"), "{e}");
    }
}
