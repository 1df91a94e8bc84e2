//! Parse-only baselines over the same bytes the metrics compute reads: what merely reading an
//! event costs, so the compute can be compared with the fastest parse there is, not a slow
//! one. Three parsers: `serde_json` into a `Value` (a tree of allocations, the slowest),
//! `serde_json` into borrowed typed structs, and `sonic-rs` (SIMD) into the same structs.
//! The structs mirror the whole wire format (docs/events.md, schema version 2): every field
//! is read and typed, strings borrowed from the input where they hold no escapes.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::InputRecord;
use anyhow::{Context as _, Result};
use serde::Deserialize;

#[derive(Deserialize)]
struct EventRef<'a> {
    schema_version: u32,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    changes: Option<ChangesRef<'a>>,
    #[serde(borrow)]
    listing: ListingRef<'a>,
    #[serde(borrow)]
    observed_at: Cow<'a, str>,
    #[serde(borrow)]
    poll_id: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ChangesRef<'a> {
    price: Option<Change<i64>>,
    #[serde(borrow)]
    status: Option<Change<Cow<'a, str>>>,
    #[serde(borrow, default)]
    fields: Vec<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Change<T> {
    old: T,
    new: T,
}

#[derive(Deserialize)]
struct ListingRef<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow)]
    offer: Cow<'a, str>,
    price_minor: i64,
    #[serde(borrow)]
    currency: Cow<'a, str>,
    previous_price_minor: Option<i64>,
    #[serde(borrow)]
    property_type: Cow<'a, str>,
    beds: Option<u16>,
    baths: Option<f32>,
    living_area_sqft: Option<u32>,
    lot_size_sqft: Option<u64>,
    #[serde(borrow)]
    address: AddressRef<'a>,
    #[serde(borrow)]
    market: MarketRef<'a>,
    coordinates: Option<Coordinates>,
    #[serde(borrow)]
    on_market_date: Option<Cow<'a, str>>,
    rent_estimate_minor: Option<i64>,
    #[serde(borrow)]
    source_url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    observed_at: Cow<'a, str>,
    #[serde(borrow, default)]
    details: Option<DetailsRef<'a>>,
}

/// Schema version 2's portal details (the bench's US events have none; read if present).
#[derive(Deserialize)]
struct DetailsRef<'a> {
    living_area_sqm: Option<u32>,
    floor: Option<i16>,
    #[serde(borrow)]
    seller_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    equipment: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    images: Vec<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AddressRef<'a> {
    #[serde(borrow)]
    line: Option<Cow<'a, str>>,
    #[serde(borrow)]
    city: Cow<'a, str>,
    #[serde(borrow)]
    state: Cow<'a, str>,
    #[serde(borrow)]
    postal_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    country: Option<Cow<'a, str>>,
    #[serde(borrow)]
    neighbourhood: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MarketRef<'a> {
    #[serde(borrow)]
    city_state: Cow<'a, str>,
    #[serde(borrow)]
    zip: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Coordinates {
    lat: f64,
    lon: f64,
}

impl EventRef<'_> {
    /// A number that depends on every field, so the optimiser keeps the whole parse.
    fn touch(&self) -> u64 {
        let l = &self.listing;
        let text = [
            &self.kind,
            &self.observed_at,
            &self.poll_id,
            &l.id,
            &l.source,
            &l.status,
            &l.offer,
            &l.currency,
            &l.property_type,
            &l.address.city,
            &l.address.state,
            &l.market.city_state,
            &l.observed_at,
        ]
        .iter()
        .map(|s| s.len() as u64)
        .sum::<u64>();
        let optional_text = [
            &l.address.line,
            &l.address.postal_code,
            &l.market.zip,
            &l.on_market_date,
            &l.source_url,
            &l.address.country,
            &l.address.neighbourhood,
        ]
        .iter()
        .map(|s| s.as_ref().map_or(0, |s| s.len() as u64))
        .sum::<u64>();
        let details = l.details.as_ref().map_or(0, |d| {
            u64::from(d.living_area_sqm.unwrap_or(0))
                ^ d.floor.unwrap_or(0) as u64
                ^ d.seller_type.as_ref().map_or(0, |t| t.len() as u64)
                ^ d.equipment
                    .iter()
                    .chain(&d.images)
                    .map(|s| s.len() as u64)
                    .sum::<u64>()
        });
        let changes = self.changes.as_ref().map_or(0, |c| {
            c.price.as_ref().map_or(0, |p| (p.old ^ p.new) as u64)
                + c.status
                    .as_ref()
                    .map_or(0, |s| (s.old.len() + s.new.len()) as u64)
                + c.fields.len() as u64
        });
        let numbers = u64::from(self.schema_version)
            ^ l.price_minor as u64
            ^ l.previous_price_minor.unwrap_or(0) as u64
            ^ u64::from(l.beds.unwrap_or(0))
            ^ u64::from(l.baths.unwrap_or(0.0).to_bits())
            ^ u64::from(l.living_area_sqft.unwrap_or(0))
            ^ l.lot_size_sqft.unwrap_or(0)
            ^ l.rent_estimate_minor.unwrap_or(0) as u64
            ^ l.coordinates
                .as_ref()
                .map_or(0, |c| (c.lat + c.lon).to_bits());
        text + optional_text + changes + numbers + details
    }
}

/// A parser of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    /// `serde_json::Value`.
    Value,
    /// `serde_json` into the borrowed typed structs.
    SerdeTyped,
    /// `sonic-rs` into the same structs.
    SonicTyped,
}

impl Parser {
    pub const ALL: [Self; 3] = [Self::Value, Self::SerdeTyped, Self::SonicTyped];

    /// The key of its figure in `realty bench --json` (`parse_<name>_events_per_s`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Value => "serde_json_value",
            Self::SerdeTyped => "serde_json_typed",
            Self::SonicTyped => "sonic_rs_typed",
        }
    }
}

/// Parses every record with `parser`; the time taken.
pub fn run(parser: Parser, records: &[InputRecord]) -> Result<Duration> {
    let started = Instant::now();
    let mut sum = 0u64;
    for record in records {
        sum = sum.wrapping_add(match parser {
            Parser::Value => {
                let value: serde_json::Value = serde_json::from_slice(&record.data)
                    .context("a generated event is not JSON")?;
                value.as_object().map_or(0, |o| o.len() as u64)
            }
            Parser::SerdeTyped => serde_json::from_slice::<EventRef>(&record.data)
                .context("a generated event does not parse (serde_json, typed)")?
                .touch(),
            Parser::SonicTyped => sonic_rs::from_slice::<EventRef>(&record.data)
                .context("a generated event does not parse (sonic-rs, typed)")?
                .touch(),
        });
    }
    let elapsed = started.elapsed();
    black_box(sum);
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records;

    /// Every parser reads every event, and the typed ones read the same values.
    #[test]
    fn the_parsers_read_every_event_alike() {
        use realty_metrics::testing::listing;
        use realty_model::listing::{ListingEvent, ListingStatus};
        let at = chrono::Utc::now();
        let mut encoded = Vec::new();
        for n in 0..20 {
            let first = listing(n, n as usize, 30_000_000, ListingStatus::Active, at);
            let mut next = first.clone();
            next.price_minor = first.price_minor * 9 / 10;
            next.status = ListingStatus::Pending;
            let changed = ListingEvent::changed(&first, next, "poll-2").expect("a change");
            for event in [ListingEvent::new_listing(first, "poll-1"), changed] {
                encoded.push(event.encode().expect("encodes"));
            }
        }
        let records = records(&encoded, at, chrono::Duration::seconds(1));
        for parser in Parser::ALL {
            assert!(run(parser, &records).is_ok(), "{}", parser.name());
        }
        for r in &records {
            let a = serde_json::from_slice::<EventRef>(&r.data).expect("serde");
            let b = sonic_rs::from_slice::<EventRef>(&r.data).expect("sonic");
            assert_eq!(a.touch(), b.touch());
        }
        // A field of the wrong type is refused, not skipped.
        let broken = String::from_utf8(records[0].data.clone())
            .expect("utf-8")
            .replacen("\"price_minor\":", "\"price_minor\":\"x\",\"was\":", 1);
        assert!(serde_json::from_str::<EventRef>(&broken).is_err());
        assert!(sonic_rs::from_str::<EventRef>(&broken).is_err());
    }
}
