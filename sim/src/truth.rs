//! Ground truth: every event the simulated market went through, with its simulated time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::listing::{ListingStatus, SourceIds};

/// One thing that happened to one listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroundTruthEvent {
    /// Position in the market's history, from 1: events are applied in this order.
    pub seq: u64,
    /// Simulated time of the event (whole milliseconds).
    #[serde(with = "crate::time_format::serde_millis")]
    pub at: DateTime<Utc>,
    /// Market key (`nashville-tn`).
    pub market: String,
    /// The listing's id in each API.
    pub ids: SourceIds,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Serialised with a `kind` tag: `{"kind": "price_change", "old": 450000,
/// "new": 425000}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A listing came on the market, active, at `price`.
    New { price: u64, status: ListingStatus },
    /// The list price changed (a cut when `new < old`).
    PriceChange { old: u64, new: u64 },
    /// Active to pending, or pending back to active.
    StatusChange {
        old: ListingStatus,
        new: ListingStatus,
    },
    /// The listing left the market: sold (from pending) or withdrawn (from active).
    Delisted {
        old: ListingStatus,
        new: ListingStatus,
    },
}

impl EventKind {
    /// The tag it is serialised with.
    pub fn name(&self) -> &'static str {
        match self {
            Self::New { .. } => "new",
            Self::PriceChange { .. } => "price_change",
            Self::StatusChange { .. } => "status_change",
            Self::Delisted { .. } => "delisted",
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn serialises_flat_with_a_kind_tag_and_round_trips() {
        let event = GroundTruthEvent {
            seq: 7,
            at: Utc
                .with_ymd_and_hms(2025, 3, 3, 14, 0, 1)
                .single()
                .expect("valid time")
                + chrono::TimeDelta::milliseconds(250),
            market: "nashville-tn".into(),
            ids: SourceIds {
                zpid: "108712579".into(),
                realtor_property_id: "2661871835".into(),
                realtor_listing_id: "2964125083".into(),
                reso_listing_key: "RTC2605011".into(),
                reso_listing_id: "2605011".into(),
            },
            kind: EventKind::PriceChange {
                old: 425_000,
                new: 410_000,
            },
        };
        let json = serde_json::to_value(&event).expect("serialises");
        assert_eq!(json["kind"], "price_change");
        assert_eq!(json["old"], 425_000);
        assert_eq!(json["new"], 410_000);
        assert_eq!(json["at"], "2025-03-03T14:00:01.250Z");
        assert_eq!(json["ids"]["zpid"], "108712579");
        let back: GroundTruthEvent = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, event);

        let delisted = serde_json::to_value(EventKind::Delisted {
            old: ListingStatus::Pending,
            new: ListingStatus::Sold,
        })
        .expect("serialises");
        assert_eq!(
            delisted,
            serde_json::json!({"kind": "delisted", "old": "pending", "new": "sold"})
        );
    }
}
