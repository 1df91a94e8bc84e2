use std::collections::{HashMap, HashSet};
use std::hash::Hasher;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use realty_metrics::items::MarketSnapshotItem;
use realty_model::listing::REPLAY_POLL_ID_PREFIX;
use realty_model::listing::{EventKind, ListingEvent};

/// The stable id of an event: the listing, the instant it was seen and what happened,
/// unique per event of the poller. Readable on purpose (an analyst can tell what it names)
/// and exact (no hash to collide): `zillow:123@2026-11-23T10:00:00.000000Z#changed`.
///
/// A replay's event (`realty replay-raw` after a parser fix, a corrected file) re-derives
/// an instant the poller may have published already, with the same kind: under that id the
/// correction would be dropped as a copy of the event it corrects. Its id also names what
/// it says, `...#changed@replay-<FNV-1a of the listing's JSON>`: a correction is a row of
/// its own, and the same correction sent twice (a replay run again after a crash) is one.
pub fn event_id(event: &ListingEvent) -> String {
    let id = format!(
        "{}@{}#{}",
        event.listing.id.as_str(),
        event
            .observed_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        kind_name(&event.kind)
    );
    if !event.poll_id.starts_with(REPLAY_POLL_ID_PREFIX) {
        return id;
    }
    let mut hasher = fnv::FnvHasher::default();
    // A listing always serialises; were it not to, the digest of nothing still names a
    // replay apart from the poller's event.
    hasher.write(&serde_json::to_vec(&event.listing).unwrap_or_default());
    format!("{id}@replay-{:016x}", hasher.finish())
}

/// The order of a listing's events: when each was seen, then a replay's correction after
/// the event it corrects (whatever their kinds: a status misread as new at an instant, then
/// corrected by a replay's change at the same instant, as the metrics apply them in stream
/// order), then the event id, so that ties order the same way at every run.
pub fn event_order(observed_at: DateTime<Utc>, event_id: &str) -> (DateTime<Utc>, bool, &str) {
    let replayed = event_id
        .rsplit_once('#')
        .is_some_and(|(_, kind)| kind.contains("@replay-"));
    (observed_at, replayed, event_id)
}

fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::New => "new",
        EventKind::Changed { .. } => "changed",
        EventKind::Delisted => "delisted",
    }
}

/// The name serde gives a unit enum value (`single_family`, `under_contract`).
fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// One row of `listing_events`: the event with its listing flattened to typed columns.
/// Field names are the table's column names (docs/lake.md); instants are serialized as
/// microseconds since the epoch (UTC), as Iceberg stores timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    pub event_id: String,
    pub schema_version: i32,
    pub kind: String,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub observed_at: DateTime<Utc>,
    pub poll_id: String,
    pub listing_id: String,
    pub source: String,
    pub status: String,
    pub offer: String,
    pub price_minor: i64,
    pub currency: String,
    pub previous_price_minor: Option<i64>,
    pub property_type: String,
    pub beds: Option<i32>,
    pub baths: Option<f32>,
    pub living_area_sqft: Option<i64>,
    pub lot_size_sqft: Option<i64>,
    pub address_line: Option<String>,
    pub city: String,
    pub state: String,
    pub postal_code: Option<String>,
    pub market: String,
    pub zip: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub on_market_date: Option<NaiveDate>,
    pub rent_estimate_minor: Option<i64>,
    pub source_url: Option<String>,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub listing_observed_at: DateTime<Utc>,
    /// A price change's old price (`changed` events that moved the price).
    pub old_price_minor: Option<i64>,
    /// A status change's old status.
    pub old_status: Option<String>,
    /// The other tracked fields that changed, comma-separated.
    pub changed_fields: Option<String>,
    /// Listing schema version 2's fields (docs/events.md), null in rows written before them:
    /// the country (ISO 3166 alpha-2), neighbourhood, living area in m², floor, seller type,
    /// and the equipment labels and photo URLs as JSON arrays (null when none).
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub neighbourhood: Option<String>,
    #[serde(default)]
    pub living_area_sqm: Option<i32>,
    #[serde(default)]
    pub floor: Option<i32>,
    #[serde(default)]
    pub seller_type: Option<String>,
    #[serde(default)]
    pub equipment: Option<String>,
    #[serde(default)]
    pub images: Option<String>,
    /// The event's `baseline` (docs/events.md: a listing already on the market when first
    /// seen, not news); null in rows written before it was kept.
    #[serde(default)]
    pub baseline: Option<bool>,
}

/// A list as a JSON array column; null when empty.
fn json_array(items: &[String]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    serde_json::to_string(items).ok()
}

impl From<&ListingEvent> for EventRow {
    fn from(event: &ListingEvent) -> Self {
        let l = &event.listing;
        let changes = match &event.kind {
            EventKind::Changed { changes } => Some(changes),
            _ => None,
        };
        Self {
            event_id: event_id(event),
            schema_version: i32::try_from(event.schema_version).unwrap_or(i32::MAX),
            kind: kind_name(&event.kind).to_owned(),
            observed_at: event.observed_at,
            poll_id: event.poll_id.clone(),
            listing_id: l.id.as_str().to_owned(),
            source: serde_name(&l.source),
            status: serde_name(&l.status),
            offer: serde_name(&l.offer),
            price_minor: l.price_minor,
            currency: l.currency.clone(),
            previous_price_minor: l.previous_price_minor,
            property_type: serde_name(&l.property_type),
            beds: l.beds.map(i32::from),
            baths: l.baths,
            living_area_sqft: l.living_area_sqft.map(i64::from),
            lot_size_sqft: l.lot_size_sqft.and_then(|v| i64::try_from(v).ok()),
            address_line: l.address.line.clone(),
            city: l.address.city.clone(),
            state: l.address.state.clone(),
            postal_code: l.address.postal_code.clone(),
            market: l.market.city_state.clone(),
            zip: l.market.zip.clone(),
            latitude: l.coordinates.map(|c| c.lat),
            longitude: l.coordinates.map(|c| c.lon),
            on_market_date: l.on_market_date,
            rent_estimate_minor: l.rent_estimate_minor,
            source_url: l.source_url.clone(),
            listing_observed_at: l.observed_at,
            old_price_minor: changes.and_then(|c| c.price.as_ref()).map(|p| p.old),
            old_status: changes
                .and_then(|c| c.status.as_ref())
                .map(|s| serde_name(&s.old)),
            changed_fields: changes.filter(|c| !c.fields.is_empty()).map(|c| {
                c.fields
                    .iter()
                    .map(serde_name)
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            country: Some(l.address.country.as_str().to_owned()),
            neighbourhood: l.address.neighbourhood.clone(),
            living_area_sqm: l
                .details
                .living_area_sqm
                .and_then(|v| i32::try_from(v).ok()),
            floor: l.details.floor.map(i32::from),
            seller_type: l.details.seller_type.as_ref().map(serde_name),
            equipment: json_array(&l.details.equipment),
            images: json_array(&l.details.images),
            baseline: Some(event.baseline),
        }
    }
}

/// One row of `listings`: a listing's current state, from its newest event. A delisted
/// listing keeps its last observed fields and is flagged, not dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListingRow {
    pub listing_id: String,
    pub source: String,
    pub status: String,
    pub offer: String,
    pub price_minor: i64,
    pub currency: String,
    pub property_type: String,
    pub beds: Option<i32>,
    pub baths: Option<f32>,
    pub living_area_sqft: Option<i64>,
    pub lot_size_sqft: Option<i64>,
    pub address_line: Option<String>,
    pub city: String,
    pub state: String,
    pub postal_code: Option<String>,
    pub market: String,
    pub zip: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub on_market_date: Option<NaiveDate>,
    pub rent_estimate_minor: Option<i64>,
    pub source_url: Option<String>,
    pub delisted: bool,
    /// The first price the lake saw for the listing.
    pub first_price_minor: i64,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub first_observed_at: DateTime<Utc>,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub last_observed_at: DateTime<Utc>,
    pub last_event_id: String,
    pub last_event_kind: String,
    /// Events of the listing in `listing_events`.
    pub events: i64,
    /// As [`EventRow`]'s: listing schema version 2's fields.
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub neighbourhood: Option<String>,
    #[serde(default)]
    pub living_area_sqm: Option<i32>,
    #[serde(default)]
    pub floor: Option<i32>,
    #[serde(default)]
    pub seller_type: Option<String>,
    #[serde(default)]
    pub equipment: Option<String>,
    #[serde(default)]
    pub images: Option<String>,
}

impl ListingRow {
    fn from_event(row: &EventRow) -> Self {
        Self {
            listing_id: row.listing_id.clone(),
            source: row.source.clone(),
            status: row.status.clone(),
            offer: row.offer.clone(),
            price_minor: row.price_minor,
            currency: row.currency.clone(),
            property_type: row.property_type.clone(),
            beds: row.beds,
            baths: row.baths,
            living_area_sqft: row.living_area_sqft,
            lot_size_sqft: row.lot_size_sqft,
            address_line: row.address_line.clone(),
            city: row.city.clone(),
            state: row.state.clone(),
            postal_code: row.postal_code.clone(),
            market: row.market.clone(),
            zip: row.zip.clone(),
            latitude: row.latitude,
            longitude: row.longitude,
            on_market_date: row.on_market_date,
            rent_estimate_minor: row.rent_estimate_minor,
            source_url: row.source_url.clone(),
            delisted: row.kind == "delisted",
            first_price_minor: row.price_minor,
            first_observed_at: row.observed_at,
            last_observed_at: row.observed_at,
            last_event_id: row.event_id.clone(),
            last_event_kind: row.kind.clone(),
            events: 1,
            country: row.country.clone(),
            neighbourhood: row.neighbourhood.clone(),
            living_area_sqm: row.living_area_sqm,
            floor: row.floor,
            seller_type: row.seller_type.clone(),
            equipment: row.equipment.clone(),
            images: row.images.clone(),
        }
    }

    /// The order of a listing's versions: its last event's [`event_order`].
    fn version(&self) -> (DateTime<Utc>, bool, &str) {
        event_order(self.last_observed_at, &self.last_event_id)
    }
}

/// The newest event of each listing among `events` (by `event_order`: the time, then a
/// replay's event after the one it corrects, then the id), as the listing state the metrics
/// keep (docs/metrics.md: an older observation never overwrites a newer one).
pub fn newest_per_listing(events: &[EventRow]) -> HashMap<&str, &EventRow> {
    let mut newest: HashMap<&str, &EventRow> = HashMap::new();
    for row in events {
        newest
            .entry(row.listing_id.as_str())
            .and_modify(|kept| {
                if event_order(row.observed_at, &row.event_id)
                    > event_order(kept.observed_at, &kept.event_id)
                {
                    *kept = row;
                }
            })
            .or_insert(row);
    }
    newest
}

/// `listings` after `events` (events not yet merged, each once): every listing's row
/// takes the newest of its previous state and its new events; first price and first
/// sighting stay the oldest. Order-independent, so re-merging the same events in any
/// order gives the same rows; rows come out sorted by listing id.
pub fn merge_listings(previous: Vec<ListingRow>, events: &[EventRow]) -> Vec<ListingRow> {
    let mut merge = ListingsMerge::new(previous);
    merge.add(events);
    merge.finish()
}

/// [`merge_listings`] a part of the events at a time, so a rebuild from every event holds
/// one row per listing and one part of the events, never all of them.
#[derive(Debug, Default)]
pub struct ListingsMerge {
    by_id: HashMap<String, ListingRow>,
}

impl ListingsMerge {
    pub fn new(previous: Vec<ListingRow>) -> Self {
        Self {
            by_id: previous
                .into_iter()
                .map(|row| (row.listing_id.clone(), row))
                .collect(),
        }
    }

    pub fn add(&mut self, events: &[EventRow]) {
        for event in events {
            let incoming = ListingRow::from_event(event);
            match self.by_id.get_mut(&event.listing_id) {
                None => {
                    self.by_id.insert(event.listing_id.clone(), incoming);
                }
                Some(current) => {
                    let events_seen = current.events + 1;
                    let (first_price, first_at) =
                        if incoming.first_observed_at < current.first_observed_at {
                            (incoming.first_price_minor, incoming.first_observed_at)
                        } else {
                            (current.first_price_minor, current.first_observed_at)
                        };
                    if incoming.version() > current.version() {
                        *current = incoming;
                    }
                    current.events = events_seen;
                    current.first_price_minor = first_price;
                    current.first_observed_at = first_at;
                }
            }
        }
    }

    /// The rows, sorted by listing id.
    pub fn finish(self) -> Vec<ListingRow> {
        let mut rows: Vec<ListingRow> = self.by_id.into_values().collect();
        rows.sort_by(|a, b| a.listing_id.cmp(&b.listing_id));
        rows
    }
}

/// One row of `market_daily`: a market scope's figures at the end of a day (or as of now
/// for the current day), with the moving averages and trends stored with the day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketDayRow {
    /// The scope key (`city#nashville-tn#all`).
    pub scope: String,
    /// The market (`nashville-tn`).
    pub market: String,
    pub day: NaiveDate,
    #[serde(with = "chrono::serde::ts_microseconds_option")]
    pub as_of: Option<DateTime<Utc>>,
    pub active_listings: i64,
    pub pending_listings: i64,
    pub total_listings: i64,
    pub pending_ratio: Option<f64>,
    pub median_price: Option<f64>,
    pub average_price: Option<f64>,
    pub median_price_per_sqft: Option<f64>,
    pub median_living_area_sqft: Option<f64>,
    pub median_days_on_market: Option<i64>,
    pub new_listings_today: i64,
    pub price_cuts_today: i64,
    pub price_rises_today: i64,
    pub delistings_today: i64,
    pub new_listings_7d: i64,
    pub price_cuts_7d: i64,
    pub price_rises_7d: i64,
    pub delistings_7d: i64,
    pub share_active_with_cut: Option<f64>,
    pub average_cut_pct_7d: Option<f64>,
    pub active_rentals: i64,
    pub median_rent: Option<f64>,
    pub median_rent_per_sqft: Option<f64>,
    /// The rents and yields by bedrooms, as the JSON array the API serves.
    pub rents_by_bedrooms: String,
    pub gross_yield: Option<f64>,
    pub price_to_rent: Option<f64>,
    pub yield_basis: Option<String>,
    pub price_per_sqft_mad: Option<f64>,
    pub price_per_sqft_anomaly_below: Option<f64>,
    pub price_per_sqft_anomaly_above: Option<f64>,
    pub anomalous_listings: i64,
    pub median_price_ma_7d: Option<f64>,
    pub median_price_ma_30d: Option<f64>,
    pub median_price_per_sqft_ma_7d: Option<f64>,
    pub median_price_per_sqft_ma_30d: Option<f64>,
    pub median_price_change_7d_pct: Option<f64>,
    pub median_price_change_30d_pct: Option<f64>,
    pub median_price_per_sqft_change_7d_pct: Option<f64>,
    pub median_price_per_sqft_change_30d_pct: Option<f64>,
    /// The market's country (ISO 3166 alpha-2) and the currency of its amounts (`USD`,
    /// `MAD`): null in rows written before them.
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
}

/// `market_daily` from the watched markets' daily snapshots (`watched_rows`, read from the
/// market table) and the table's `previous` rows: a market no longer watched keeps the rows
/// it had (its history stays in the lake), a watched one is replaced by what the market
/// table holds now. Sorted by scope and day.
pub fn market_daily_rows(
    watched: &HashSet<&str>,
    watched_rows: Vec<MarketDayRow>,
    previous: Vec<MarketDayRow>,
) -> Vec<MarketDayRow> {
    let mut rows = watched_rows;
    rows.extend(
        previous
            .into_iter()
            .filter(|row| !watched.contains(row.market.as_str())),
    );
    rows.sort_by(|a, b| a.scope.cmp(&b.scope).then(a.day.cmp(&b.day)));
    rows
}

/// The `market_daily` row of a daily snapshot item; `None` for an hourly one.
pub fn market_day_row(item: &MarketSnapshotItem) -> Option<MarketDayRow> {
    let day = match item.period {
        realty_metrics::ports::Period::Day(day) => day,
        realty_metrics::ports::Period::Hour(_) => return None,
    };
    let f = &item.figures;
    let t = item.trends.clone().unwrap_or_default();
    // `city#nashville-tn#all` names the market `nashville-tn`.
    let market = item.pk.split('#').nth(1).unwrap_or(&item.pk).to_owned();
    let units = realty_model::listing::MarketUnits::of(&market);
    let country = realty_model::listing::MarketKey::country_of(&market);
    Some(MarketDayRow {
        scope: item.pk.clone(),
        market,
        day,
        as_of: f.as_of,
        active_listings: f.active_listings,
        pending_listings: f.pending_listings,
        total_listings: f.total_listings,
        pending_ratio: f.pending_ratio,
        median_price: f.median_price,
        average_price: f.average_price,
        median_price_per_sqft: f.median_price_per_sqft,
        median_living_area_sqft: f.median_living_area_sqft,
        median_days_on_market: f.median_days_on_market,
        new_listings_today: f.new_listings_today,
        price_cuts_today: f.price_cuts_today,
        price_rises_today: f.price_rises_today,
        delistings_today: f.delistings_today,
        new_listings_7d: f.new_listings_7d,
        price_cuts_7d: f.price_cuts_7d,
        price_rises_7d: f.price_rises_7d,
        delistings_7d: f.delistings_7d,
        share_active_with_cut: f.share_active_with_cut,
        average_cut_pct_7d: f.average_cut_pct_7d,
        active_rentals: f.active_rentals,
        median_rent: f.median_rent,
        median_rent_per_sqft: f.median_rent_per_sqft,
        rents_by_bedrooms: serde_json::to_string(&f.rents_by_bedrooms)
            .unwrap_or_else(|_| "[]".to_owned()),
        gross_yield: f.gross_yield,
        price_to_rent: f.price_to_rent,
        yield_basis: f.yield_basis.as_ref().map(serde_name),
        price_per_sqft_mad: f.price_per_sqft_mad,
        price_per_sqft_anomaly_below: f.price_per_sqft_anomaly_below,
        price_per_sqft_anomaly_above: f.price_per_sqft_anomaly_above,
        anomalous_listings: f.anomalous_listings,
        median_price_ma_7d: t.median_price_ma_7d,
        median_price_ma_30d: t.median_price_ma_30d,
        median_price_per_sqft_ma_7d: t.median_price_per_sqft_ma_7d,
        median_price_per_sqft_ma_30d: t.median_price_per_sqft_ma_30d,
        median_price_change_7d_pct: t.median_price_change_7d_pct,
        median_price_change_30d_pct: t.median_price_change_30d_pct,
        median_price_per_sqft_change_7d_pct: t.median_price_per_sqft_change_7d_pct,
        median_price_per_sqft_change_30d_pct: t.median_price_per_sqft_change_30d_pct,
        country: country.map(|c| c.as_str().to_owned()),
        currency: units.currency.map(str::to_owned),
    })
}
