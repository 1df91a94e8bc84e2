//! A listing's stored state: its last observation, the version that makes re-deliveries
//! harmless, the events the alerts judge, and its item in the listing table. The metrics
//! batch writes it ([`ListingStore`]); the alerts judge its stream images; the poller's
//! anti-entropy pass reads it back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::listing::{Listing, ListingStatus, Offer};
use crate::ports::PortError;
use crate::varint::DecodeError;

mod may_alert;
pub mod recent_events;

pub use may_alert::may_alert;

/// Most digits a sequence number has: Kinesis's are decimal strings of up to 128 digits
/// (56 in practice).
pub const MAX_SEQUENCE_DIGITS: usize = 128;

/// A Kinesis sequence number, as Kinesis writes it (no leading zeros). `Ord` is numeric
/// order: the shorter number is the smaller, and numbers of one length compare as text.
/// Items written before this stored it zero-padded to 128 digits; [`Self::parse`] reads both.
/// Shared text: a batch copies each event's number into every market contribution and
/// version it makes, and a copy is then a count, not an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceNumber(std::sync::Arc<str>);

impl SequenceNumber {
    /// Parses a decimal sequence number, leading zeros or not; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let digits = text.trim_start_matches('0');
        if text.is_empty()
            || !text.bytes().all(|b| b.is_ascii_digit())
            || digits.len() > MAX_SEQUENCE_DIGITS
        {
            return None;
        }
        Some(Self(std::sync::Arc::from(if digits.is_empty() {
            "0"
        } else {
            digits
        })))
    }

    /// The number as Kinesis writes it, and as stored.
    pub fn as_kinesis(&self) -> &str {
        &self.0
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for SequenceNumber {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SequenceNumber {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("not a sequence number: {:?}", text.as_ref()))
        })
    }
}

/// How far apart two pollers' clocks may be (the time window's skew, `listing::bounds`).
/// Within it, the order of two observations of a listing is their order in the stream;
/// beyond it, their observation times.
pub const MAX_CLOCK_SKEW: chrono::Duration =
    chrono::Duration::seconds(crate::listing::MAX_CLOCK_SKEW_SECONDS);

/// When and where in the stream a listing was observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub observed_at: DateTime<Utc>,
    pub sequence: SequenceNumber,
}

impl Version {
    /// Whether an observation at `self` supersedes one at `other`. All events of a listing
    /// are in one shard (the partition key is its market), in the order the poller put
    /// them, so within [`MAX_CLOCK_SKEW`] the stream order decides: a poller whose clock is
    /// a minute or two slow stamps a later change earlier, and dropping that change would
    /// lose it. Beyond the skew, the observation time decides: a PutRecords retry can put an
    /// old poll's event after a newer one. The same event (same sequence number) never
    /// supersedes itself, so re-deliveries are skipped.
    pub fn is_newer_than(&self, other: &Version) -> bool {
        if self.observed_at > other.observed_at + MAX_CLOCK_SKEW {
            true
        } else if self.observed_at + MAX_CLOCK_SKEW < other.observed_at {
            false
        } else {
            self.sequence > other.sequence
        }
    }
}

/// A listing's stored state: its last observation and the bookkeeping that makes
/// re-deliveries harmless.
#[derive(Debug, Clone, PartialEq)]
pub struct ListingState {
    pub listing: Listing,
    /// First price the pipeline saw (or the source's stated earlier price): cuts are
    /// counted against it.
    pub first_price_minor: i64,
    /// The listing left its source (a `delisted` event).
    pub delisted: bool,
    pub version: Version,
    /// The last events applied, oldest first, the last being `version`'s (for the alerts
    /// function: [`crate::state::ListingItem::recent_events`]).
    pub recent_events: Vec<AppliedEvent>,
    /// The lists of interest it has an entry in (`realty_metrics::interest`).
    pub interest: Vec<InterestKind>,
    /// The event of `version` was a baseline: the listing seen by a market's first read, not
    /// news ([`ListingEvent::baseline`](crate::listing::ListingEvent::baseline)); the alerts raise no new-listing alert for it.
    pub baseline: bool,
    /// The write of this state may raise an alert ([`may_alert`]): set by the metrics batch
    /// that writes it, matched by the alerts trigger's filter.
    pub may_alert: bool,
}

impl ListingState {
    /// Whether the listing is off the market: delisted, or sold or withdrawn by its source.
    /// Its return is a new listing cycle, not a price move.
    pub fn off_the_market(&self) -> bool {
        self.delisted || !stays_listed(&self.listing)
    }
}

/// Most events a listing item keeps in [`crate::state::ListingItem::recent_events`] (about 42 bytes
/// each, packed): more events of one listing in one metrics batch are judged together.
pub const MAX_RECENT_EVENTS: usize = 8;

/// One event applied to a listing, as far as alerts look at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedEvent {
    pub observed_at: DateTime<Utc>,
    /// Shared, like the version's: a state's next one copies its recent events.
    pub sequence: SequenceNumber,
    pub price_minor: i64,
    pub living_area_sqft: Option<u32>,
    pub status: ListingStatus,
    pub offer: Offer,
    pub delisted: bool,
    /// A baseline event ([`ListingState::baseline`]); absent from lists written before it.
    #[serde(default)]
    pub baseline: bool,
}

impl From<&ListingState> for AppliedEvent {
    fn from(s: &ListingState) -> Self {
        Self {
            observed_at: s.version.observed_at,
            sequence: s.version.sequence.clone(),
            price_minor: s.listing.price_minor,
            living_area_sqft: s.listing.living_area_sqft,
            status: s.listing.status,
            offer: s.listing.offer,
            delisted: s.delisted,
            baseline: s.baseline,
        }
    }
}

/// Whether a listing is still listed: not delisted by its source as sold or off the market.
pub fn stays_listed(listing: &Listing) -> bool {
    !listing.status.has_ended()
}

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterestKind {
    PriceCut,
    Undervalued,
    Anomalous,
}

impl InterestKind {
    pub const ALL: [Self; 3] = [Self::PriceCut, Self::Undervalued, Self::Anomalous];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PriceCut => "price_cut",
            Self::Undervalued => "undervalued",
            Self::Anomalous => "anomalous",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The sort-key prefix of the kind's entries (`price_cut#`).
    pub fn prefix(self) -> String {
        format!("{}#", self.as_str())
    }
}

/// One listing in the listing table (key `listing_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListingItem {
    pub listing_id: String,
    /// The city-state market key (`nashville-tn`).
    pub market: String,
    pub listing: Listing,
    pub first_price_minor: i64,
    pub delisted: bool,
    /// Version of the last event applied: its observation time and sequence number (as
    /// Kinesis writes it; zero-padded to 128 digits in items written before).
    pub observed_at: DateTime<Utc>,
    pub sequence: String,
    /// The last events applied to the listing, oldest first, the last being this item's
    /// version; at most [`crate::state::MAX_RECENT_EVENTS`]. The alerts function judges each event a
    /// write applied on its own (those after the old image's version), so its alerts do not
    /// depend on how the Kinesis stream was cut into batches. Like the rest of the item, a
    /// function of the events applied only. Stored packed in one binary attribute
    /// ([`recent_events`]: a fifth of the bytes); read back from that or from the list of
    /// maps items written before hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "recent_events")]
    pub recent_events: Vec<AppliedEvent>,
    /// Whether `recent_events` holds two or more (absent when not): what the alerts
    /// trigger's filter matches exactly to pass the INSERT of a listing first seen and
    /// changed in one batch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub several_recent_events: bool,
    /// The market's lists of interest the listing has an entry in (undervalued,
    /// anomalous): the event that takes it out deletes the entry without a read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interest: Vec<InterestKind>,
    /// The event of this version was a baseline: the listing seen by a market's first read
    /// (or an import of history), already on the market, not news (docs/events.md
    /// `baseline`). Absent when not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub baseline: bool,
    /// Whether the write may raise an alert ([`may_alert`]): the alerts trigger's filter
    /// passes the writes where it is `true`, and those of items from before it (without it).
    /// Always written, so that only those lack it. A mark of the write, not of the listing:
    /// unlike the rest of the item it depends on which events the write applied, as the
    /// stream record's old and new images do.
    #[serde(default)]
    pub may_alert: bool,
}

/// A stored item that is not what this build writes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ItemError {
    #[error("item field {field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error(transparent)]
    Encoding(#[from] DecodeError),
}

impl From<ListingState> for ListingItem {
    /// By value: the state's listing and events move into the item.
    fn from(s: ListingState) -> Self {
        Self {
            listing_id: s.listing.id.as_str().to_owned(),
            market: s.listing.market.city_state.clone(),
            first_price_minor: s.first_price_minor,
            delisted: s.delisted,
            observed_at: s.version.observed_at,
            sequence: s.version.sequence.as_kinesis().to_owned(),
            several_recent_events: s.recent_events.len() > 1,
            recent_events: s.recent_events,
            interest: s.interest,
            listing: s.listing,
            baseline: s.baseline,
            may_alert: s.may_alert,
        }
    }
}

impl From<&ListingState> for ListingItem {
    fn from(s: &ListingState) -> Self {
        Self::from(s.clone())
    }
}

impl TryFrom<ListingItem> for ListingState {
    type Error = ItemError;

    fn try_from(item: ListingItem) -> Result<Self, ItemError> {
        let sequence = SequenceNumber::parse(&item.sequence).ok_or_else(|| ItemError::Field {
            field: "sequence",
            reason: format!("not a sequence number: {:?}", item.sequence),
        })?;
        Ok(Self {
            listing: item.listing,
            first_price_minor: item.first_price_minor,
            delisted: item.delisted,
            version: Version {
                observed_at: item.observed_at,
                sequence,
            },
            recent_events: item.recent_events,
            interest: item.interest,
            baseline: item.baseline,
            may_alert: item.may_alert,
        })
    }
}

/// Stored listing states by listing id, as read for a batch: shared, so a store that keeps
/// them (the in-memory one) hands them out without copying each listing. Looked up only, never
/// walked in order: a hash map, built and dropped with one allocation a batch.
pub type StoredStates = foldhash::HashMap<String, std::sync::Arc<ListingState>>;

/// The listing table.
pub trait ListingStore {
    /// Whether a listing state can be stored (`Err` says why not: the item would be over the
    /// store's size limit). Checked before any write, so such a state goes to the error sink
    /// instead of failing its batch on every delivery.
    fn check_state(&self, state: &ListingState) -> Result<(), String>;
    fn get_states(&self, ids: &[&str]) -> impl Future<Output = Result<StoredStates, PortError>>;
    fn put_states(&self, states: Vec<ListingState>) -> impl Future<Output = Result<(), PortError>>;
}
