//! The listing-event record that travels on Kinesis: its wire format (`docs/events.md`),
//! encoding with the size bound, and decoding that refuses what no source would produce.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::bounds::check_text;
use super::{
    CURRENT_SCHEMA_VERSION, InvalidListing, Listing, ListingChanges, MAX_CHANGED_FIELDS,
    MAX_ENCODED_EVENT_BYTES, MAX_EVENT_RECORD_BYTES, QUOTED_VALUE_BYTES, READABLE_SCHEMA_VERSIONS,
    bound_reason, diff, quote, time_window_violation,
};

/// How the poll ids of replays begin (`realty replay`, S3 imports, `realty replay-raw`):
/// their events re-derive instants the poller may already have published, so the lake
/// names them apart (`realty_lake::rows::event_id`).
pub const REPLAY_POLL_ID_PREFIX: &str = "replay-";

/// How a poll id names its instant (`poll-2026-11-27T10:00:00.000Z`,
/// `replay-2026-11-27T10:00:00.000Z`): 24 characters, read back by the lake's checks.
pub const POLL_ID_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// Kinesis takes partition keys of up to 256 Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// What happened to a listing. Serialized inside [`ListingEvent`] as a `kind` field
/// (`"new"`, `"changed"`, `"delisted"`) next to the event's other fields, plus `changes` for
/// `changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// First observation of the listing.
    New,
    /// A tracked field differs from the last observation.
    Changed { changes: ListingChanges },
    /// The listing no longer appears at its source; `listing` is its last observed state.
    Delisted,
}

/// One record of the listing-events stream (Kinesis), partitioned by listing id.
/// Wire format: `docs/events.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WireEvent")]
pub struct ListingEvent {
    pub schema_version: u32,
    #[serde(flatten)]
    pub kind: EventKind,
    pub listing: Listing,
    /// When the change was seen: the listing's `observed_at` for `new` and `changed`, the
    /// poll that missed the listing for `delisted`.
    pub observed_at: DateTime<Utc>,
    /// The poll run that produced the event (idempotency and tracing).
    pub poll_id: String,
    /// A `new` event of a listing that was already on the market: seen by a market's first
    /// read (a market or source added, a market re-added), or by an import or replay of
    /// history with an on-market date before the day it was seen, or none. Inventory, not
    /// news: it raises no new-listing alerts and counts as a new listing only on its own
    /// on-market day ([`ListingEvent::is_inventory`]). Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub baseline: bool,
}

/// [`ListingEvent`] as it is read: `kind` and `changes` as plain fields. Deserializing the
/// event through this instead of a flattened enum lets serde read the bytes in one pass
/// (a flattened field makes it buffer every field of the event first).
#[derive(Deserialize)]
struct WireEvent {
    schema_version: u32,
    kind: WireKind,
    #[serde(default)]
    changes: Option<ListingChanges>,
    listing: Listing,
    #[serde(deserialize_with = "super::wire_time::utc")]
    observed_at: DateTime<Utc>,
    poll_id: String,
    /// Absent, or `null` as an optional value may be written: not a baseline.
    #[serde(default)]
    baseline: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireKind {
    New,
    Changed,
    Delisted,
}

impl TryFrom<WireEvent> for ListingEvent {
    type Error = String;

    fn try_from(wire: WireEvent) -> Result<Self, String> {
        let kind = match (wire.kind, wire.changes) {
            (WireKind::New, _) => EventKind::New,
            (WireKind::Delisted, _) => EventKind::Delisted,
            (WireKind::Changed, Some(changes)) => EventKind::Changed { changes },
            (WireKind::Changed, None) => return Err("missing field `changes`".to_owned()),
        };
        Ok(Self {
            schema_version: wire.schema_version,
            kind,
            listing: wire.listing,
            observed_at: wire.observed_at,
            poll_id: wire.poll_id,
            baseline: wire.baseline.unwrap_or(false),
        })
    }
}

/// Why a record of the stream is not a usable listing event. The metrics function routes
/// such records to the error sink with [`EventDecodeError::kind`] and the message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventDecodeError {
    #[error("not a listing event: {0}")]
    Malformed(String),
    #[error("not a listing event: no schema_version")]
    MissingSchemaVersion,
    #[error(
        "unsupported schema_version {found}: this build reads versions 1 to {CURRENT_SCHEMA_VERSION}"
    )]
    UnsupportedSchemaVersion { found: String },
    #[error("invalid listing in event: {0}")]
    InvalidListing(#[from] InvalidListing),
    #[error("inconsistent event: {0}")]
    Inconsistent(String),
    #[error("event of {bytes} bytes, over the {limit}-byte limit")]
    TooLarge { bytes: usize, limit: usize },
    /// Observed in the future of its reference time, or too long before it
    /// ([`ListingEvent::check_observed_at`]).
    #[error("observation time out of its window: {0}")]
    ObservedOutOfWindow(String),
}

impl EventDecodeError {
    /// A short stable label for metrics and the error sink.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::MissingSchemaVersion => "missing_schema_version",
            Self::UnsupportedSchemaVersion { .. } => "unsupported_schema_version",
            Self::InvalidListing(_) => "invalid_listing",
            Self::Inconsistent(_) => "inconsistent",
            Self::TooLarge { .. } => "too_large",
            Self::ObservedOutOfWindow(_) => "observed_at_out_of_window",
        }
    }
}

/// Longest `poll_id` accepted.
pub const MAX_POLL_ID_LEN: usize = 200;

impl ListingEvent {
    /// A `new` event: first sight of `listing`.
    pub fn new_listing(listing: Listing, poll_id: impl Into<String>) -> Self {
        Self {
            schema_version: CURRENT_SCHEMA_VERSION,
            kind: EventKind::New,
            observed_at: listing.observed_at,
            listing,
            poll_id: poll_id.into(),
            baseline: false,
        }
    }

    /// A `new` event of a listing already on the market ([`ListingEvent::baseline`]).
    pub fn baseline_listing(listing: Listing, poll_id: impl Into<String>) -> Self {
        Self {
            baseline: true,
            ..Self::new_listing(listing, poll_id)
        }
    }

    /// Whether the event records inventory rather than news: a baseline event whose listing
    /// did not go on the market on the day it was seen (UTC, the day its counts go to). It
    /// counts in no day's new listings (docs/metrics.md, "A first read is a baseline").
    pub fn is_inventory(&self) -> bool {
        self.baseline && self.listing.on_market_date != Some(self.observed_at.date_naive())
    }

    /// A `changed` event from the last stored observation to the current one, or `None`
    /// when no tracked field changed.
    pub fn changed(
        previous: &Listing,
        current: Listing,
        poll_id: impl Into<String>,
    ) -> Option<Self> {
        let changes = diff(previous, &current);
        if changes.is_empty() {
            return None;
        }
        Some(Self {
            schema_version: CURRENT_SCHEMA_VERSION,
            kind: EventKind::Changed { changes },
            observed_at: current.observed_at,
            listing: current,
            poll_id: poll_id.into(),
            baseline: false,
        })
    }

    /// A `delisted` event: `last_seen` vanished from its source in the poll at `observed_at`.
    pub fn delisted(
        last_seen: Listing,
        observed_at: DateTime<Utc>,
        poll_id: impl Into<String>,
    ) -> Self {
        Self {
            schema_version: CURRENT_SCHEMA_VERSION,
            kind: EventKind::Delisted,
            listing: last_seen,
            observed_at,
            poll_id: poll_id.into(),
            baseline: false,
        }
    }

    /// The Kinesis partition key: the listing's market (`city_state`, its first
    /// [`MAX_PARTITION_KEY_CHARS`] characters). A listing's events stay in order in one shard,
    /// and so do all its market's: the city's market items are written by one shard only, so
    /// market writes do not grow with the shard count and shards never contend for a market
    /// (docs/capacity.md). A market's events then share one shard's 1,000 records/s.
    pub fn partition_key(&self) -> &str {
        let market = self.listing.market.city_state.as_str();
        match market.char_indices().nth(MAX_PARTITION_KEY_CHARS) {
            Some((end, _)) => &market[..end],
            None => market,
        }
    }

    /// Checks what [`ListingEvent::decode`] checks after parsing.
    pub fn validate(&self) -> Result<(), EventDecodeError> {
        if !READABLE_SCHEMA_VERSIONS.contains(&self.schema_version) {
            return Err(EventDecodeError::UnsupportedSchemaVersion {
                found: self.schema_version.to_string(),
            });
        }
        if self.schema_version == 1
            && (!self.listing.address.country.is_us()
                || self.listing.address.neighbourhood.is_some()
                || !self.listing.details.is_empty()
                || matches!(
                    self.listing.source,
                    super::ListingSource::Avito | super::ListingSource::Mubawab
                ))
        {
            return Err(EventDecodeError::Inconsistent(
                "a schema_version 1 event with what version 2 added (a country, a \
                 neighbourhood, details, a portal source)"
                    .into(),
            ));
        }
        if self.poll_id.trim().is_empty() {
            return Err(EventDecodeError::Inconsistent("empty poll_id".into()));
        }
        if let Err(e) = check_text("poll_id", &self.poll_id, MAX_POLL_ID_LEN) {
            return Err(EventDecodeError::Inconsistent(e.to_string()));
        }
        if self.baseline && self.kind != EventKind::New {
            return Err(EventDecodeError::Inconsistent(
                "baseline on an event other than `new`".into(),
            ));
        }
        self.listing.validate()?;
        if let EventKind::Changed { changes } = &self.kind {
            if changes.is_empty() {
                return Err(EventDecodeError::Inconsistent(
                    "a changed event with no changes".into(),
                ));
            }
            if changes.fields.len() > MAX_CHANGED_FIELDS {
                return Err(EventDecodeError::Inconsistent(format!(
                    "changes.fields has {} names, over the limit of {MAX_CHANGED_FIELDS}",
                    changes.fields.len()
                )));
            }
            if let Some(price) = changes.price {
                if price.new != self.listing.price_minor {
                    return Err(EventDecodeError::Inconsistent(format!(
                        "changes.price.new {} differs from listing.price_minor {}",
                        price.new, self.listing.price_minor
                    )));
                }
                if price.old == price.new {
                    return Err(EventDecodeError::Inconsistent(
                        "changes.price has equal old and new".into(),
                    ));
                }
                if price.old <= 0 {
                    return Err(EventDecodeError::Inconsistent(format!(
                        "changes.price.old must be positive, got {}",
                        price.old
                    )));
                }
            }
            if let Some(status) = changes.status {
                if status.new != self.listing.status {
                    return Err(EventDecodeError::Inconsistent(format!(
                        "changes.status.new {:?} differs from listing.status {:?}",
                        status.new, self.listing.status
                    )));
                }
                if status.old == status.new {
                    return Err(EventDecodeError::Inconsistent(
                        "changes.status has equal old and new".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the event's times can be trusted against `reference`: the Kinesis arrival
    /// time of its record (fixed per record, so a replay decides the same), or the clock of
    /// the poll that makes it. The event's `observed_at`, and its listing's, may be at most
    /// [`MAX_CLOCK_SKEW_SECONDS`](super::MAX_CLOCK_SKEW_SECONDS) after it; the event's at
    /// most [`MAX_OBSERVATION_AGE_DAYS`](super::MAX_OBSERVATION_AGE_DAYS) before it (a
    /// `delisted` event's listing is its last sighting, which may be older).
    pub fn check_observed_at(&self, reference: DateTime<Utc>) -> Result<(), EventDecodeError> {
        let listing_violation =
            time_window_violation("listing.observed_at", self.listing.observed_at, reference)
                .filter(|_| {
                    self.kind != EventKind::Delisted || self.listing.observed_at > self.observed_at
                });
        match time_window_violation("observed_at", self.observed_at, reference)
            .or(listing_violation)
        {
            Some(reason) => Err(EventDecodeError::ObservedOutOfWindow(reason)),
            None => Ok(()),
        }
    }

    /// Serializes a valid event to JSON. Refuses an event that [`ListingEvent::decode`]
    /// would refuse, so nothing unreadable reaches the stream, and one over
    /// [`MAX_ENCODED_EVENT_BYTES`] (which a valid event never reaches: every field is
    /// bounded).
    pub fn encode(&self) -> Result<Vec<u8>, EventDecodeError> {
        self.validate()?;
        let bytes = serde_json::to_vec(self)
            .map_err(|e| EventDecodeError::Malformed(bound_reason(e.to_string())))?;
        if bytes.len() > MAX_ENCODED_EVENT_BYTES {
            return Err(EventDecodeError::TooLarge {
                bytes: bytes.len(),
                limit: MAX_ENCODED_EVENT_BYTES,
            });
        }
        Ok(bytes)
    }

    /// [`ListingEvent::decode`], then [`ListingEvent::check_observed_at`] against the time
    /// the record reached Kinesis (its `ApproximateArrivalTimestamp`).
    pub fn decode_arrived_at(
        bytes: &[u8],
        arrival: DateTime<Utc>,
    ) -> Result<Self, EventDecodeError> {
        let event = Self::decode(bytes)?;
        event.check_observed_at(arrival)?;
        Ok(event)
    }

    /// Parses and checks one stream record: the schema version first (so a record from a
    /// newer producer says so rather than failing on a field), then the shape, then the
    /// values ([`Listing::validate`], and `changes` agreeing with the listing).
    ///
    /// A current, well-formed event is read once, straight from the bytes into the typed
    /// event. Only a record that fails that is read again, by `why_unreadable`, to
    /// give the reason in that order and name the failing field's path.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventDecodeError> {
        if bytes.len() > MAX_EVENT_RECORD_BYTES {
            return Err(EventDecodeError::TooLarge {
                bytes: bytes.len(),
                limit: MAX_EVENT_RECORD_BYTES,
            });
        }
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(EventDecodeError::Malformed(
                match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                    Err(e) => bound_reason(format!("not JSON: {e}")),
                    Ok(_) => "expected a JSON object".to_owned(),
                },
            ));
        }
        // JSON text is UTF-8 (RFC 8259). Checked once over the record, the parser need not
        // check each string again (reading from a `str`, serde_json does not).
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => return Err(Self::why_unreadable(bytes, Some(e))),
        };
        let mut reader = serde_json::Deserializer::from_str(text);
        if let Ok(event) = Self::deserialize(&mut reader)
            && reader.end().is_ok()
            && READABLE_SCHEMA_VERSIONS.contains(&event.schema_version)
        {
            event.validate()?;
            return Ok(event);
        }
        Err(Self::why_unreadable(bytes, None))
    }

    /// Why `bytes` (a JSON object, by its first byte) is not a readable event; `not_utf8`
    /// where the record is not UTF-8, which is the reason once its version and fields read.
    fn why_unreadable(bytes: &[u8], not_utf8: Option<std::str::Utf8Error>) -> EventDecodeError {
        /// The schema version alone; serde skips the other fields without building them.
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            schema_version: Option<serde_json::Value>,
        }
        let probe: Probe = match serde_json::from_slice(bytes) {
            Ok(probe) => probe,
            Err(e) => return EventDecodeError::Malformed(bound_reason(format!("not JSON: {e}"))),
        };
        match probe.schema_version {
            None | Some(serde_json::Value::Null) => return EventDecodeError::MissingSchemaVersion,
            Some(version)
                if !version
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .is_some_and(|v| READABLE_SCHEMA_VERSIONS.contains(&v)) =>
            {
                let found = version.to_string();
                return EventDecodeError::UnsupportedSchemaVersion {
                    found: if found.len() <= QUOTED_VALUE_BYTES {
                        found
                    } else {
                        quote(&found)
                    },
                };
            }
            Some(_) => {}
        }
        // The error names the field's path (`listing.price_minor: invalid type...`).
        let mut reader = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize::<_, Self>(&mut reader) {
            // serde quotes a bad value whole (`unknown variant `<600 KB>``): bounded here.
            Err(e) => EventDecodeError::Malformed(bound_reason(e.to_string())),
            // Text in a field this version skips is not UTF-8 (a field it reads would have
            // failed above, with its path).
            Ok(_) => EventDecodeError::Malformed(match not_utf8 {
                Some(e) => format!("not UTF-8: {e}"),
                // Not reached: the first read failed, and this one reads the same way.
                None => "not a readable event".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented event (docs/events.md's first JSON block) as bytes.
    fn documented() -> Vec<u8> {
        let doc = include_str!("../../../../docs/events.md");
        let start = doc.find("```json\n").map(|i| i + "```json\n".len());
        let block =
            start.and_then(|start| doc[start..].find("```").map(|len| &doc[start..start + len]));
        block
            .expect("docs/events.md has a json block")
            .as_bytes()
            .to_vec()
    }

    /// `bytes` with the first `from` replaced by `to`.
    fn replaced(bytes: &[u8], from: &str, to: &[u8]) -> Vec<u8> {
        let at = bytes
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .expect("the field is in the example");
        [&bytes[..at], to, &bytes[at + from.len()..]].concat()
    }

    #[test]
    fn a_record_other_than_utf8_is_refused_with_the_reason_in_order() {
        let event = documented();
        assert!(ListingEvent::decode(&event).is_ok());
        // In a field the event reads: its path.
        let in_city = replaced(&event, r#""Nashville""#, b"\"Nashvill\xe9\"");
        let err = ListingEvent::decode(&in_city).expect_err("not UTF-8");
        assert_eq!(err.kind(), "malformed");
        assert!(err.to_string().contains("listing.address.city"), "{err}");
        // In a field this version skips: the record is still not JSON text.
        let skipped = replaced(&event, "{", b"{\"from_a_newer_poller\":\"caf\xe9\",");
        let err = ListingEvent::decode(&skipped).expect_err("not UTF-8");
        assert_eq!(err.kind(), "malformed");
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        // From a newer producer: its version comes first.
        let newer = replaced(
            &skipped,
            r#""schema_version": 2"#,
            br#""schema_version": 99"#,
        );
        let err = ListingEvent::decode(&newer).expect_err("newer");
        assert_eq!(err.kind(), "unsupported_schema_version", "{err}");
    }

    /// `baseline` is written only when true, read when absent or null, and refused on an
    /// event other than `new`.
    #[test]
    fn baseline_is_written_only_when_true_and_only_on_new_events() {
        let changed = ListingEvent::decode(&documented()).expect("documented");
        let bytes = changed.encode().expect("encodes");
        assert!(!String::from_utf8_lossy(&bytes).contains("baseline"));
        let mut first = ListingEvent::baseline_listing(changed.listing.clone(), "p");
        let bytes = first.encode().expect("encodes");
        assert!(String::from_utf8_lossy(&bytes).contains(r#""baseline":true"#));
        assert_eq!(ListingEvent::decode(&bytes).expect("decodes"), first);
        let null = replaced(&bytes, r#""baseline":true"#, br#""baseline":null"#);
        assert!(!ListingEvent::decode(&null).expect("null reads").baseline);
        first.kind = EventKind::Delisted;
        assert_eq!(first.encode().expect_err("refused").kind(), "inconsistent");
        let wrong = replaced(&documented(), "{", br#"{"baseline": true,"#);
        assert_eq!(
            ListingEvent::decode(&wrong).expect_err("refused").kind(),
            "inconsistent"
        );
    }

    /// A baseline listing is inventory unless it went on the market on the (UTC) day it was
    /// seen; a listing without an on-market date is inventory; a news event never is.
    #[test]
    fn a_baseline_listing_is_inventory_unless_listed_the_day_it_was_seen() {
        let changed = ListingEvent::decode(&documented()).expect("documented");
        let mut listing = changed.listing;
        let day = listing.observed_at.date_naive();
        let with = |date: Option<chrono::NaiveDate>| {
            let mut l = listing.clone();
            l.on_market_date = date;
            ListingEvent::baseline_listing(l, "p")
        };
        assert!(!with(Some(day)).is_inventory());
        assert!(with(day.pred_opt()).is_inventory());
        assert!(with(day.succ_opt()).is_inventory());
        assert!(with(None).is_inventory());
        listing.on_market_date = day.pred_opt();
        assert!(!ListingEvent::new_listing(listing, "p").is_inventory());
    }
}
