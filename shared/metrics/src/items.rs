//! What the stack stores, item by item, as plain serde types: the table layout (keys, sort
//! keys, what each item holds). `realty_aws::items` maps them to DynamoDB items and sizes them
//! as DynamoDB does. The alerts rules judge [`ListingItem`](realty_model::state::ListingItem)s (the listing table's stream
//! images); readers compute a market's figures with [`MarketLiveItem::figures`]. Layout:
//! docs/metrics.md.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::history::Trends;
use crate::aggregate::{
    DailyCounts, DayClose, EncodedValues, MarketAggregate, MarketFigures, ValueLayout,
};
use crate::interest::{InterestEntry, InterestingListing, interest_key};
use crate::ports::{EncodedJournal, Period, Snapshot, StoredAggregate};
use realty_model::state::ItemError;
use realty_model::state::SequenceNumber;

pub mod market_days;
pub mod market_packed;

use market_packed::PackedParts;

/// Sort key of a market's live aggregate.
pub const LIVE_SORT_KEY: &str = "LIVE";
/// Hourly snapshots expire after this many days (daily ones are kept).
pub const HOURLY_SNAPSHOT_DAYS: i64 = 35;
/// Sort key of a shard's journal item in the market table (`pk` = `journal#<shard>`).
pub const JOURNAL_SORT_KEY: &str = "JOURNAL";

/// A shard's journal in the market table (`pk` = `journal#<shard>`, `sk` = `JOURNAL`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalItem {
    pub pk: String,
    pub sk: String,
    pub shard: String,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl JournalItem {
    /// The partition key of `shard`'s journal.
    pub fn key_of(shard: &str) -> String {
        format!("journal#{shard}")
    }
}

impl From<&EncodedJournal> for JournalItem {
    fn from(j: &EncodedJournal) -> Self {
        Self {
            pk: Self::key_of(&j.shard),
            sk: JOURNAL_SORT_KEY.to_owned(),
            shard: j.shard.clone(),
            body: j.body.clone(),
        }
    }
}

/// A market's live aggregate in the market table (`pk` = scope key, `sk` = `LIVE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketLiveItem {
    pub pk: String,
    pub sk: String,
    pub revision: String,
    /// Per shard, the sequence number of the newest contribution held.
    pub watermarks: BTreeMap<String, String>,
    /// Per shard, how many contributions from it the item holds (absent on items written
    /// before it was kept: none counted yet).
    #[serde(default)]
    pub applied: BTreeMap<String, u64>,
    pub as_of: Option<DateTime<Utc>>,
    pub active: i64,
    pub pending: i64,
    pub price_sum_minor: i64,
    pub active_with_cut: i64,
    /// The values, days and closes, DEFLATE-compressed together ([`market_packed`]).
    /// Absent on items written before 2026-11-26: those hold them, as histograms, in the
    /// attributes below.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub packed: Option<Vec<u8>>,
    /// Absent when the prices are `hist_price_by_bedrooms` and `hist_price_without_beds`
    /// together ([`EncodedValues::price`](crate::aggregate::EncodedValues::price)).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub hist_price: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "serde_bytes")]
    pub hist_price_without_beds: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "serde_bytes")]
    pub hist_price_per_sqft: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "serde_bytes")]
    pub hist_living_area: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "serde_bytes")]
    pub hist_listed_day_negated: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "serde_bytes")]
    pub hist_gross_yield: Vec<u8>,
    /// Rents (absent on items written before rents were kept: none held).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "serde_bytes")]
    pub hist_rent: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "serde_bytes")]
    pub hist_rent_per_sqft: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "serde_bytes")]
    pub hist_rent_by_bedrooms: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "serde_bytes")]
    pub hist_price_by_bedrooms: Vec<u8>,
    /// Per day, its event counts ([`market_days`]: packed).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "market_days"
    )]
    pub daily: BTreeMap<NaiveDate, DailyCounts>,
    /// Per day, the medians of its close ([`market_days`]: packed; absent on items written
    /// before they were kept).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "market_days"
    )]
    pub closing: BTreeMap<NaiveDate, DayClose>,
    // No figures: readers compute them from the rest ([`Self::figures`]). Stored, they were
    // a map of about 1.1 KB, a third of a regional item and the step from 6 to 8 write
    // units of its transactional write (items written before hold them; they are ignored).
}

impl MarketLiveItem {
    pub fn new(key: &str, stored: &StoredAggregate) -> Self {
        let a = &stored.aggregate;
        let packed = PackedParts {
            values: a.encode_values_to_store(),
            layout: ValueLayout::Exact,
            daily: market_days::encode(&a.daily),
            closing: market_days::encode(&a.closing),
        }
        .pack()
        // Not reached: the values are at most MAX_EXACT_VALUE_BYTES, the days a few KB, far
        // under the reader's bound.
        .unwrap_or_default();
        Self {
            pk: key.to_owned(),
            sk: LIVE_SORT_KEY.to_owned(),
            revision: stored.revision.clone(),
            watermarks: stored
                .watermarks
                .iter()
                .map(|(shard, seq)| (shard.clone(), seq.as_kinesis().to_owned()))
                .collect(),
            applied: stored.applied.clone(),
            as_of: a.as_of,
            active: a.active,
            pending: a.pending,
            price_sum_minor: a.price_sum_minor,
            active_with_cut: a.active_with_cut,
            packed: Some(packed),
            hist_price: None,
            hist_price_without_beds: Vec::new(),
            hist_price_per_sqft: Vec::new(),
            hist_living_area: Vec::new(),
            hist_listed_day_negated: Vec::new(),
            hist_gross_yield: Vec::new(),
            hist_rent: Vec::new(),
            hist_rent_per_sqft: Vec::new(),
            hist_rent_by_bedrooms: Vec::new(),
            hist_price_by_bedrooms: Vec::new(),
            daily: BTreeMap::new(),
            closing: BTreeMap::new(),
        }
    }

    /// The market's figures as of the item's `as_of`, from its counts, histograms and days.
    pub fn figures(&self) -> Result<MarketFigures, ItemError> {
        Ok(self.clone().into_stored()?.aggregate.figures())
    }

    pub fn into_stored(self) -> Result<StoredAggregate, ItemError> {
        let (values, layout, daily, closing) = match &self.packed {
            Some(packed) => {
                let parts = PackedParts::unpack(packed).map_err(|e| ItemError::Field {
                    field: "packed",
                    reason: e.to_string(),
                })?;
                (
                    parts.values,
                    parts.layout,
                    packed_days("packed daily", &parts.daily)?,
                    packed_days("packed closing", &parts.closing)?,
                )
            }
            None => (
                EncodedValues {
                    price: self.hist_price,
                    price_without_beds: self.hist_price_without_beds,
                    price_per_sqft: self.hist_price_per_sqft,
                    living_area: self.hist_living_area,
                    listed_day_negated: self.hist_listed_day_negated,
                    gross_yield: self.hist_gross_yield,
                    rent: Some(self.hist_rent),
                    rent_without_beds: Vec::new(),
                    rent_per_sqft: self.hist_rent_per_sqft,
                    rent_by_bedrooms: self.hist_rent_by_bedrooms,
                    price_by_bedrooms: self.hist_price_by_bedrooms,
                },
                ValueLayout::LogHistograms,
                self.daily,
                self.closing,
            ),
        };
        let mut aggregate = MarketAggregate {
            active: self.active,
            pending: self.pending,
            price_sum_minor: self.price_sum_minor,
            active_with_cut: self.active_with_cut,
            daily,
            closing,
            as_of: self.as_of,
            ..MarketAggregate::default()
        };
        aggregate.set_values(&values, layout)?;
        let mut watermarks = BTreeMap::new();
        for (shard, seq) in self.watermarks {
            let seq = SequenceNumber::parse(&seq).ok_or_else(|| ItemError::Field {
                field: "watermarks",
                reason: format!("not a sequence number: {seq:?}"),
            })?;
            watermarks.insert(shard, seq);
        }
        Ok(StoredAggregate {
            aggregate,
            watermarks,
            applied: self.applied,
            revision: self.revision,
        })
    }
}

/// The days of a packed item's part.
fn packed_days<V: market_days::PackedDay>(
    field: &'static str,
    bytes: &[u8],
) -> Result<BTreeMap<NaiveDate, V>, ItemError> {
    market_days::decode(bytes).map_err(|e| ItemError::Field {
        field,
        reason: e.to_string(),
    })
}

/// A market snapshot (`pk` = scope key, `sk` = `H#2026-11-21T18` or `D#2026-11-21`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketSnapshotItem {
    pub pk: String,
    pub sk: String,
    pub period: Period,
    pub figures: MarketFigures,
    /// A day's moving averages and trends as of its end (absent on hours, and on days
    /// written before they were stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trends: Option<Trends>,
    /// TTL (epoch seconds) of hourly snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl From<&Snapshot> for MarketSnapshotItem {
    fn from(s: &Snapshot) -> Self {
        let expires_at = match s.period {
            Period::Hour(t) => Some((t + Duration::days(HOURLY_SNAPSHOT_DAYS)).timestamp()),
            Period::Day(_) => None,
        };
        Self {
            pk: s.scope_key.clone(),
            sk: s.period.sort_key(),
            period: s.period,
            figures: s.figures.clone(),
            trends: s.trends.clone(),
            expires_at,
        }
    }
}

/// An entry of a market's listings of interest (`pk` = `interest#<market>`, `sk` =
/// `price_cut#<time>#<hash>`, `undervalued#<hash>` or `anomalous#<hash>`; see
/// [`crate::interest`]), expiring at `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterestItem {
    pub pk: String,
    pub sk: String,
    pub listing: InterestingListing,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undervalued_ratio: Option<f64>,
    pub expires_at: i64,
}

impl From<InterestEntry> for InterestItem {
    fn from(e: InterestEntry) -> Self {
        Self {
            pk: interest_key(&e.market),
            sk: e.sort_key,
            listing: e.listing,
            undervalued_ratio: e.undervalued_ratio,
            expires_at: e.expires_at,
        }
    }
}
