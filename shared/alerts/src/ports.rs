//! What the alerts function needs from the outside world, as small traits. The AWS adapters
//! live in `realty_aws::adapters` (`idempotency`, `market_median`, `sns`, `alert_sink`).

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::feed::AlertFeedItem;
use super::message::AlertMessage;
use realty_model::ports::PortError;

/// The result of claiming an alert's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody published this alert and no live invocation holds it: the caller publishes it.
    Acquired,
    /// An alert under this key was published already: the caller skips it.
    AlreadyPublished,
    /// Another invocation holds the claim until this time and may be publishing it now: the
    /// caller neither publishes nor skips it (its record is failed and comes again later).
    HeldUntil(DateTime<Utc>),
}

/// Records of alerts published: the alert feed's items ([`AlertFeedItem`]), each first
/// written as a claim. A key is `pending` from its claim to its publication, then
/// `published`, when the claim is replaced by the feed item itself (one write records the
/// alert as published and keeps it for the API). A pending claim is a lease: it holds until
/// `lease_until` (the claiming invocation's deadline, plus a clock allowance) and only an
/// expired one can be taken over (docs/alerts.md, "Once per price change").
pub trait AlertClaimStore {
    /// Claims the key of each of `alerts` for the caller (`token` names the claim) until
    /// `lease_until`, unless it is published or another claim's lease is still running: in as
    /// few calls as the store allows. Answers per alert, in order; a store failure answers
    /// the alerts it left unclaimed and no others. A key given twice is held by the first.
    fn claim_all(
        &self,
        alerts: &[&AlertFeedItem],
        token: &str,
        lease_until: DateTime<Utc>,
    ) -> impl Future<Output = Vec<Result<Claim, PortError>>>;
    /// [`Self::claim_all`] of one alert.
    fn claim(
        &self,
        alert: &AlertFeedItem,
        token: &str,
        lease_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, PortError>> {
        async move {
            self.claim_all(&[alert], token, lease_until)
                .await
                .pop()
                .unwrap_or_else(|| Err(PortError::new("claim", "the store gave no answer")))
        }
    }
    /// Records that `alerts` are published, by writing their feed items over their claims
    /// (all of them, or an error: a call that failed part way is made again whole, which only
    /// writes the same items again; only what the store did not take is re-sent).
    fn mark_published(
        &self,
        alerts: &[&AlertFeedItem],
    ) -> impl Future<Output = Result<(), PortError>>;
    /// Drops the caller's pending claim (its alert could not be published), so nothing says
    /// it was.
    fn release(
        &self,
        alert: &AlertFeedItem,
        token: &str,
    ) -> impl Future<Output = Result<(), PortError>>;
}

/// Market medians, from the market table's live items.
pub trait MarketMedians {
    /// Median price per sqft (dollars) of each scope key that has a live item with one;
    /// scopes without are left out.
    fn medians_per_sqft(
        &self,
        scope_keys: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, f64>, PortError>>;
}

/// What a publisher could not publish, by what is known of each message's fate. Indices
/// point into the messages given, ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Known not accepted: SNS answered with an error for them (after the SDK's retries, or
    /// as failed entries of a partly failed call, after the re-sends). Publishing them again
    /// later cannot duplicate them.
    pub unpublished: Vec<usize>,
    /// Outcome unknown: their call got no error status (a timeout, a dropped connection, a
    /// success whose body could not be read), so SNS may have accepted them. Publishing them again later may duplicate them.
    pub unknown: Vec<usize>,
    /// Refused for good (the sender's fault, such as a message SNS finds too large), with
    /// SNS's reason: re-sending cannot help, they go to the error sink.
    pub refused: Vec<(usize, String)>,
    /// The last error seen, when some were not published.
    pub error: Option<String>,
    /// Calls re-sent for partly failed batches.
    pub retries: u32,
}

impl PublishReport {
    /// Whether `messages[index]` is known to be published.
    pub fn published(&self, index: usize) -> bool {
        !self.unpublished.contains(&index)
            && !self.unknown.contains(&index)
            && !self.refused.iter().any(|(i, _)| *i == index)
    }
}

/// The alert topic.
pub trait AlertPublisher {
    /// Publishes every message; re-sends only entries SNS reported as failed (never a call
    /// whose answer was lost); reports the rest. Starts no call, and re-sends nothing, past
    /// `deadline`: what is left then is reported unpublished (sent nowhere, so its records
    /// may safely come again), where running on would have the invocation stopped with
    /// alerts published and not yet marked.
    fn publish(
        &self,
        messages: &[AlertMessage],
        deadline: DateTime<Utc>,
    ) -> impl Future<Output = PublishReport>;
}

/// An alert that can never be published, as the error sink records it: who, where in the
/// stream, and a short reason. Every field is bounded (docs/alerts.md, "Limits").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedAlert {
    /// Always `alerts`: the error sink is shared with the metrics function's poison records.
    pub function: &'static str,
    /// The alert's idempotency key (cut to [`super::message::MAX_SINK_FIELD_BYTES`]).
    pub alert_id: String,
    pub alert_type: &'static str,
    /// The listing (cut like `alert_id`).
    pub listing_id: String,
    /// The stream record's `dynamodb.SequenceNumber`: the record can be read back from the
    /// stream for 24 hours.
    pub sequence_number: String,
    /// `message_too_large`, `alert_id_too_long`, `unencodable` or `refused_by_sns`.
    pub reason_kind: &'static str,
    /// At most [`super::message::MAX_SINK_FIELD_BYTES`] bytes.
    pub reason: String,
    /// The message's size as SNS counts it (0 when it could not be built).
    pub message_bytes: usize,
}

/// Where alerts that can never be published go, so none is lost silently.
pub trait AlertErrorSink {
    fn send(&self, rejected: &[RejectedAlert]) -> impl Future<Output = Result<(), PortError>>;
}
