//! The three tables' Iceberg schemas and partition specs (docs/lake.md).
//!
//! Columns are listed in field-id order and only ever appended: a column's id is its place
//! in its list, so a column added by a later build gets a new id and older data files read
//! it as null (Iceberg projects by field id), without any rewrite.

use std::sync::Arc;

use iceberg::spec::{NestedField, PrimitiveType, Schema, Transform, Type, UnboundPartitionSpec};

use crate::LakeError;

/// A column's type, as the row structs of `crate::rows` carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Long,
    Float,
    Double,
    Bool,
    Date,
    Timestamp,
}

impl Kind {
    fn iceberg(self) -> PrimitiveType {
        match self {
            Kind::Text => PrimitiveType::String,
            Kind::Int => PrimitiveType::Int,
            Kind::Long => PrimitiveType::Long,
            Kind::Float => PrimitiveType::Float,
            Kind::Double => PrimitiveType::Double,
            Kind::Bool => PrimitiveType::Boolean,
            Kind::Date => PrimitiveType::Date,
            // Without a zone: Glue (Hive) types have none, so the Glue catalog refuses
            // timestamptz; every value is UTC (docs/lake.md).
            Kind::Timestamp => PrimitiveType::Timestamp,
        }
    }
}

/// A column: name (the row field's name), type, and whether it is required (never null).
pub type Column = (&'static str, Kind, bool);

const REQUIRED: bool = true;
const OPTIONAL: bool = false;

/// `listing_events`: one row per event (`crate::rows::EventRow`).
pub const LISTING_EVENTS: &[Column] = &[
    ("event_id", Kind::Text, REQUIRED),
    ("schema_version", Kind::Int, REQUIRED),
    ("kind", Kind::Text, REQUIRED),
    ("observed_at", Kind::Timestamp, REQUIRED),
    ("poll_id", Kind::Text, REQUIRED),
    ("listing_id", Kind::Text, REQUIRED),
    ("source", Kind::Text, REQUIRED),
    ("status", Kind::Text, REQUIRED),
    ("offer", Kind::Text, REQUIRED),
    ("price_minor", Kind::Long, REQUIRED),
    ("currency", Kind::Text, REQUIRED),
    ("previous_price_minor", Kind::Long, OPTIONAL),
    ("property_type", Kind::Text, REQUIRED),
    ("beds", Kind::Int, OPTIONAL),
    ("baths", Kind::Float, OPTIONAL),
    ("living_area_sqft", Kind::Long, OPTIONAL),
    ("lot_size_sqft", Kind::Long, OPTIONAL),
    ("address_line", Kind::Text, OPTIONAL),
    ("city", Kind::Text, REQUIRED),
    ("state", Kind::Text, REQUIRED),
    ("postal_code", Kind::Text, OPTIONAL),
    ("market", Kind::Text, REQUIRED),
    ("zip", Kind::Text, OPTIONAL),
    ("latitude", Kind::Double, OPTIONAL),
    ("longitude", Kind::Double, OPTIONAL),
    ("on_market_date", Kind::Date, OPTIONAL),
    ("rent_estimate_minor", Kind::Long, OPTIONAL),
    ("source_url", Kind::Text, OPTIONAL),
    ("listing_observed_at", Kind::Timestamp, REQUIRED),
    ("old_price_minor", Kind::Long, OPTIONAL),
    ("old_status", Kind::Text, OPTIONAL),
    ("changed_fields", Kind::Text, OPTIONAL),
    // Listing schema version 2 (crate::rows::PlaceAndDetails), added later: optional.
    ("country", Kind::Text, OPTIONAL),
    ("neighbourhood", Kind::Text, OPTIONAL),
    ("living_area_sqm", Kind::Int, OPTIONAL),
    ("floor", Kind::Int, OPTIONAL),
    ("seller_type", Kind::Text, OPTIONAL),
    ("equipment", Kind::Text, OPTIONAL),
    ("images", Kind::Text, OPTIONAL),
    // An event's `baseline` (docs/events.md), added later: optional.
    ("baseline", Kind::Bool, OPTIONAL),
];

/// `listings`: one row per listing (`crate::rows::ListingRow`).
pub const LISTINGS: &[Column] = &[
    ("listing_id", Kind::Text, REQUIRED),
    ("source", Kind::Text, REQUIRED),
    ("status", Kind::Text, REQUIRED),
    ("offer", Kind::Text, REQUIRED),
    ("price_minor", Kind::Long, REQUIRED),
    ("currency", Kind::Text, REQUIRED),
    ("property_type", Kind::Text, REQUIRED),
    ("beds", Kind::Int, OPTIONAL),
    ("baths", Kind::Float, OPTIONAL),
    ("living_area_sqft", Kind::Long, OPTIONAL),
    ("lot_size_sqft", Kind::Long, OPTIONAL),
    ("address_line", Kind::Text, OPTIONAL),
    ("city", Kind::Text, REQUIRED),
    ("state", Kind::Text, REQUIRED),
    ("postal_code", Kind::Text, OPTIONAL),
    ("market", Kind::Text, REQUIRED),
    ("zip", Kind::Text, OPTIONAL),
    ("latitude", Kind::Double, OPTIONAL),
    ("longitude", Kind::Double, OPTIONAL),
    ("on_market_date", Kind::Date, OPTIONAL),
    ("rent_estimate_minor", Kind::Long, OPTIONAL),
    ("source_url", Kind::Text, OPTIONAL),
    ("delisted", Kind::Bool, REQUIRED),
    ("first_price_minor", Kind::Long, REQUIRED),
    ("first_observed_at", Kind::Timestamp, REQUIRED),
    ("last_observed_at", Kind::Timestamp, REQUIRED),
    ("last_event_id", Kind::Text, REQUIRED),
    ("last_event_kind", Kind::Text, REQUIRED),
    ("events", Kind::Long, REQUIRED),
    // Listing schema version 2 (crate::rows::PlaceAndDetails), added later: optional.
    ("country", Kind::Text, OPTIONAL),
    ("neighbourhood", Kind::Text, OPTIONAL),
    ("living_area_sqm", Kind::Int, OPTIONAL),
    ("floor", Kind::Int, OPTIONAL),
    ("seller_type", Kind::Text, OPTIONAL),
    ("equipment", Kind::Text, OPTIONAL),
    ("images", Kind::Text, OPTIONAL),
];

/// `market_daily`: one row per market scope and day (`crate::rows::MarketDayRow`).
pub const MARKET_DAILY: &[Column] = &[
    ("scope", Kind::Text, REQUIRED),
    ("market", Kind::Text, REQUIRED),
    ("day", Kind::Date, REQUIRED),
    ("as_of", Kind::Timestamp, OPTIONAL),
    ("active_listings", Kind::Long, REQUIRED),
    ("pending_listings", Kind::Long, REQUIRED),
    ("total_listings", Kind::Long, REQUIRED),
    ("pending_ratio", Kind::Double, OPTIONAL),
    ("median_price", Kind::Double, OPTIONAL),
    ("average_price", Kind::Double, OPTIONAL),
    ("median_price_per_sqft", Kind::Double, OPTIONAL),
    ("median_living_area_sqft", Kind::Double, OPTIONAL),
    ("median_days_on_market", Kind::Long, OPTIONAL),
    ("new_listings_today", Kind::Long, REQUIRED),
    ("price_cuts_today", Kind::Long, REQUIRED),
    ("price_rises_today", Kind::Long, REQUIRED),
    ("delistings_today", Kind::Long, REQUIRED),
    ("new_listings_7d", Kind::Long, REQUIRED),
    ("price_cuts_7d", Kind::Long, REQUIRED),
    ("price_rises_7d", Kind::Long, REQUIRED),
    ("delistings_7d", Kind::Long, REQUIRED),
    ("share_active_with_cut", Kind::Double, OPTIONAL),
    ("average_cut_pct_7d", Kind::Double, OPTIONAL),
    ("active_rentals", Kind::Long, REQUIRED),
    ("median_rent", Kind::Double, OPTIONAL),
    ("median_rent_per_sqft", Kind::Double, OPTIONAL),
    ("rents_by_bedrooms", Kind::Text, REQUIRED),
    ("gross_yield", Kind::Double, OPTIONAL),
    ("price_to_rent", Kind::Double, OPTIONAL),
    ("yield_basis", Kind::Text, OPTIONAL),
    ("price_per_sqft_mad", Kind::Double, OPTIONAL),
    ("price_per_sqft_anomaly_below", Kind::Double, OPTIONAL),
    ("price_per_sqft_anomaly_above", Kind::Double, OPTIONAL),
    ("anomalous_listings", Kind::Long, REQUIRED),
    ("median_price_ma_7d", Kind::Double, OPTIONAL),
    ("median_price_ma_30d", Kind::Double, OPTIONAL),
    ("median_price_per_sqft_ma_7d", Kind::Double, OPTIONAL),
    ("median_price_per_sqft_ma_30d", Kind::Double, OPTIONAL),
    ("median_price_change_7d_pct", Kind::Double, OPTIONAL),
    ("median_price_change_30d_pct", Kind::Double, OPTIONAL),
    (
        "median_price_per_sqft_change_7d_pct",
        Kind::Double,
        OPTIONAL,
    ),
    (
        "median_price_per_sqft_change_30d_pct",
        Kind::Double,
        OPTIONAL,
    ),
    // Added with markets outside the US: optional.
    ("country", Kind::Text, OPTIONAL),
    ("currency", Kind::Text, OPTIONAL),
];

/// A table of the lake: its name, columns and partitioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// The timestamp or date column the table is partitioned by day on, if any.
    pub day_partition: Option<&'static str>,
}

/// Every event, partitioned by the day it was observed (a duplicate lands in the same
/// partition as its original, so deduplication reads one day's ids).
pub const LISTING_EVENTS_TABLE: TableDef = TableDef {
    name: "listing_events",
    columns: LISTING_EVENTS,
    day_partition: Some("observed_at"),
};

/// Rewritten whole on each change: small (one row per listing), read whole.
pub const LISTINGS_TABLE: TableDef = TableDef {
    name: "listings",
    columns: LISTINGS,
    day_partition: None,
};

/// Rewritten whole on each change: markets × days rows.
pub const MARKET_DAILY_TABLE: TableDef = TableDef {
    name: "market_daily",
    columns: MARKET_DAILY,
    day_partition: None,
};

impl TableDef {
    /// The Iceberg schema of the first `columns` columns (all of them by default; fewer
    /// makes the schema an older build wrote, as the schema-evolution test does).
    pub fn schema_of(&self, columns: usize) -> Result<Schema, LakeError> {
        let fields = self.columns[..columns.min(self.columns.len())]
            .iter()
            .enumerate()
            .map(|(i, (name, kind, required))| {
                let id = i32::try_from(i + 1).unwrap_or(i32::MAX);
                let field = if *required {
                    NestedField::required(id, *name, Type::Primitive(kind.iceberg()))
                } else {
                    NestedField::optional(id, *name, Type::Primitive(kind.iceberg()))
                };
                Arc::new(field)
            })
            .collect::<Vec<_>>();
        Ok(Schema::builder().with_fields(fields).build()?)
    }

    pub fn schema(&self) -> Result<Schema, LakeError> {
        self.schema_of(self.columns.len())
    }

    pub fn partition_spec(&self) -> Result<UnboundPartitionSpec, LakeError> {
        let mut spec = UnboundPartitionSpec::builder();
        if let Some(column) = self.day_partition {
            let source_id = self
                .columns
                .iter()
                .position(|(name, _, _)| *name == column)
                .and_then(|i| i32::try_from(i + 1).ok())
                .ok_or_else(|| LakeError::Invalid(format!("no column {column} to partition by")))?;
            spec = spec.add_partition_field(source_id, format!("{column}_day"), Transform::Day)?;
        }
        Ok(spec.build())
    }
}
