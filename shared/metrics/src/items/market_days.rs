//! [`MarketLiveItem::daily`](super::MarketLiveItem::daily) and
//! [`MarketLiveItem::closing`](super::MarketLiveItem::closing) as stored: one binary attribute
//! each, about 8 bytes a day of counters and 18 a day's close, instead of a map of maps of
//! about 85 and 75 (a date and the field names as text, on every day). A market item keeps
//! 36 days of counters and 35 closes, and a market item is written, in a transaction that
//! bills two units per started KB, once a second by its writer: the maps were most of its
//! bytes once a feed had run for a month.
//!
//! Layout: a format byte (`FORMAT`), then per day, oldest first: the day (zig-zag varint
//! of its number of days from the common era's first day for the first, then a varint of
//! the days since the one before, at least 1), then its value: for counters, five zig-zag
//! varints (new listings, cuts, rises, delistings, the cuts' basis-point sum); for a close,
//! a byte saying which medians it has and how (bits 0, 2 and 4 the price, 1, 3 and 5 the
//! price per sqft), then each of those: in cents, a zig-zag varint (bits 4 and 5: medians
//! are listings' own amounts, so about 4 bytes), or as 8 bytes (IEEE 754, little-endian;
//! bits 0 and 1, for a value not a whole number of cents). Closes written from 2026-11-26
//! to 2026-11-28 hold a median as its histogram bucket (bits 2 and 3, a zig-zag varint:
//! the bucket's midpoint, [`median_of_bucket`]). Readers take all of these, and the maps
//! items written before the packing hold.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use chrono::{Datelike, NaiveDate};
use serde::Serializer;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::aggregate::{DailyCounts, DayClose};
use crate::histogram::LogHistogram;
use realty_model::listing::CENTS_PER_DOLLAR;
use realty_model::varint::{get_varint, put_varint};
use realty_model::varint::{unzigzag, zigzag};

/// The layout's version: the first byte.
const FORMAT: u8 = 1;
/// Most days a stored map may hold: far above what an item keeps
/// ([`crate::aggregate::DAILY_COUNTER_DAYS`] + 1), a bound on what a hostile item
/// makes a reader build.
pub const MAX_STORED_DAYS: usize = 64;

/// Why a stored map could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt market days: {0}")]
pub struct MarketDaysError(&'static str);

/// A day's value as packed.
pub trait PackedDay: Sized + DeserializeOwned {
    /// Most bytes one packed value takes.
    const MAX_BYTES: usize;
    fn put(&self, out: &mut Vec<u8>);
    fn get(bytes: &[u8], pos: &mut usize) -> Result<Self, MarketDaysError>;
}

impl PackedDay for DailyCounts {
    const MAX_BYTES: usize = 5 * 10;

    fn put(&self, out: &mut Vec<u8>) {
        for v in [
            self.new_listings,
            self.price_cuts,
            self.price_rises,
            self.delistings,
            self.cut_bp_sum,
        ] {
            put_varint(out, zigzag(v));
        }
    }

    fn get(bytes: &[u8], pos: &mut usize) -> Result<Self, MarketDaysError> {
        let mut next = || {
            get_varint(bytes, pos)
                .map(unzigzag)
                .map_err(|_| MarketDaysError("truncated or overlong varint"))
        };
        Ok(Self {
            new_listings: next()?,
            price_cuts: next()?,
            price_rises: next()?,
            delistings: next()?,
            cut_bp_sum: next()?,
        })
    }
}

const PRICE_BIT: u8 = 1;
const PER_SQFT_BIT: u8 = 1 << 1;
const PRICE_BUCKET_BIT: u8 = 1 << 2;
const PER_SQFT_BUCKET_BIT: u8 = 1 << 3;
const PRICE_CENTS_BIT: u8 = 1 << 4;
const PER_SQFT_CENTS_BIT: u8 = 1 << 5;

/// The median, in major units, that a price histogram's `bucket` stood for: what the
/// figures of items written before 2026-11-29 reported, and their closes stored.
pub fn median_of_bucket(bucket: i32) -> f64 {
    LogHistogram::bucket_value(bucket) / 100.0
}

/// The whole number of cents `median` (major units) is exactly, if it is one.
fn cents_of(median: f64) -> Option<i64> {
    let cents = (median * CENTS_PER_DOLLAR as f64).round();
    // Within i64, and read back as the same bits.
    (cents.abs() < 9.0e15 && (cents / CENTS_PER_DOLLAR as f64).to_bits() == median.to_bits())
        .then_some(cents as i64)
}

impl PackedDay for DayClose {
    const MAX_BYTES: usize = 1 + 2 * 10;

    fn put(&self, out: &mut Vec<u8>) {
        /// A median as stored: its cents when it is a whole number of them, else its bits.
        enum Form {
            Cents(i64),
            Raw(f64),
        }
        let medians = [
            (self.median_price, PRICE_BIT, PRICE_CENTS_BIT),
            (self.median_price_per_sqft, PER_SQFT_BIT, PER_SQFT_CENTS_BIT),
        ]
        .map(|(median, raw_bit, cents_bit)| {
            median.map(|v| match cents_of(v) {
                Some(c) => (cents_bit, Form::Cents(c)),
                None => (raw_bit, Form::Raw(v)),
            })
        });
        out.push(
            medians
                .iter()
                .flatten()
                .fold(0, |flags, (bit, _)| flags | bit),
        );
        for (_, form) in medians.into_iter().flatten() {
            match form {
                Form::Cents(c) => put_varint(out, zigzag(c)),
                Form::Raw(v) => out.extend_from_slice(&v.to_le_bytes()),
            }
        }
    }

    fn get(bytes: &[u8], pos: &mut usize) -> Result<Self, MarketDaysError> {
        let flags = *bytes.get(*pos).ok_or(MarketDaysError("truncated close"))?;
        *pos += 1;
        let price_bits = PRICE_BIT | PRICE_BUCKET_BIT | PRICE_CENTS_BIT;
        let per_sqft_bits = PER_SQFT_BIT | PER_SQFT_BUCKET_BIT | PER_SQFT_CENTS_BIT;
        if flags & !(price_bits | per_sqft_bits) != 0 {
            return Err(MarketDaysError("unknown close flags"));
        }
        let mut median = |bits: u8| -> Result<Option<f64>, MarketDaysError> {
            match flags & bits {
                0 => Ok(None),
                form if form.count_ones() > 1 => Err(MarketDaysError("a median in two forms")),
                form if form & (PRICE_BIT | PER_SQFT_BIT) != 0 => {
                    let raw: [u8; 8] = bytes
                        .get(*pos..*pos + 8)
                        .and_then(|b| b.try_into().ok())
                        .ok_or(MarketDaysError("truncated median"))?;
                    *pos += 8;
                    Ok(Some(f64::from_le_bytes(raw)))
                }
                form if form & (PRICE_BUCKET_BIT | PER_SQFT_BUCKET_BIT) != 0 => {
                    let bucket = get_varint(bytes, pos)
                        .ok()
                        .and_then(|v| i32::try_from(unzigzag(v)).ok())
                        .ok_or(MarketDaysError("median bucket out of range"))?;
                    Ok(Some(median_of_bucket(bucket)))
                }
                _ => {
                    let cents = get_varint(bytes, pos)
                        .map_err(|_| MarketDaysError("truncated or overlong varint"))?;
                    Ok(Some(unzigzag(cents) as f64 / CENTS_PER_DOLLAR as f64))
                }
            }
        };
        Ok(Self {
            median_price: median(price_bits)?,
            median_price_per_sqft: median(per_sqft_bits)?,
        })
    }
}

/// Most bytes a packed map of `V` may take.
const fn max_packed_bytes<V: PackedDay>() -> usize {
    1 + MAX_STORED_DAYS * (10 + V::MAX_BYTES)
}

/// The days packed (see the module docs).
pub fn encode<V: PackedDay>(days: &BTreeMap<NaiveDate, V>) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + days.len() * 12);
    out.push(FORMAT);
    let mut previous: Option<i32> = None;
    for (day, value) in days {
        let number = day.num_days_from_ce();
        match previous {
            None => put_varint(&mut out, zigzag(i64::from(number))),
            // Keys are in order and distinct: the gap is at least a day.
            Some(p) => put_varint(&mut out, u64::from(number.abs_diff(p))),
        }
        previous = Some(number);
        value.put(&mut out);
    }
    out
}

/// The days of a packed map.
pub fn decode<V: PackedDay>(bytes: &[u8]) -> Result<BTreeMap<NaiveDate, V>, MarketDaysError> {
    let Some((&FORMAT, rest)) = bytes.split_first() else {
        return Err(MarketDaysError("unknown format"));
    };
    let corrupt = |_| MarketDaysError("truncated or overlong varint");
    let mut days = BTreeMap::new();
    let mut pos = 0;
    let mut previous: Option<i64> = None;
    while pos < rest.len() {
        if days.len() == MAX_STORED_DAYS {
            return Err(MarketDaysError("more days than an item keeps"));
        }
        let number = match previous {
            None => unzigzag(get_varint(rest, &mut pos).map_err(corrupt)?),
            Some(p) => {
                let gap = get_varint(rest, &mut pos).map_err(corrupt)?;
                if gap == 0 {
                    return Err(MarketDaysError("a day twice"));
                }
                i64::try_from(gap)
                    .ok()
                    .and_then(|g| p.checked_add(g))
                    .ok_or(MarketDaysError("day out of range"))?
            }
        };
        let day = i32::try_from(number)
            .ok()
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .ok_or(MarketDaysError("day out of range"))?;
        previous = Some(number);
        days.insert(day, V::get(rest, &mut pos)?);
    }
    Ok(days)
}

/// `#[serde(with = ...)]` of the item fields: written packed, read packed or as the map of
/// items written before.
pub fn serialize<V: PackedDay, S: Serializer>(
    days: &BTreeMap<NaiveDate, V>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(&encode(days))
}

pub fn deserialize<'de, V: PackedDay, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<NaiveDate, V>, D::Error> {
    deserializer.deserialize_any(StoredVisitor(PhantomData))
}

struct StoredVisitor<V>(PhantomData<V>);

impl<'de, V: PackedDay> Visitor<'de> for StoredVisitor<V> {
    type Value = BTreeMap<NaiveDate, V>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("packed market days, or a map of them by date")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
        if bytes.len() > max_packed_bytes::<V>() {
            return Err(E::custom("packed market days too long"));
        }
        decode(bytes).map_err(E::custom)
    }

    /// The packed form as a text format writes bytes (JSON: an array of numbers).
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut bytes = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            if bytes.len() == max_packed_bytes::<V>() {
                return Err(de::Error::custom("packed market days too long"));
            }
            bytes.push(b);
        }
        decode(&bytes).map_err(de::Error::custom)
    }

    /// The map of maps items written before the packed form hold.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut days = BTreeMap::new();
        while let Some((day, value)) = map.next_entry::<NaiveDate, V>()? {
            if days.len() == MAX_STORED_DAYS {
                return Err(de::Error::custom("more market days than an item keeps"));
            }
            days.insert(day, value);
        }
        Ok(days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(n: i32) -> NaiveDate {
        NaiveDate::from_num_days_from_ce_opt(n).expect("in range")
    }

    fn any_counts() -> impl Strategy<Value = DailyCounts> {
        (
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
        )
            .prop_map(|(a, b, c, d, e)| DailyCounts {
                new_listings: a,
                price_cuts: b,
                price_rises: c,
                delistings: d,
                cut_bp_sum: e,
            })
    }

    /// A median as figures report it (a whole number of cents, stored as them) or any
    /// other value (stored as its bits).
    fn any_median() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-100_000_000_000i64..100_000_000_000).prop_map(|c| c as f64 / 100.0),
            -1e300f64..1e300,
        ]
    }

    fn any_close() -> impl Strategy<Value = DayClose> {
        (
            proptest::option::of(any_median()),
            proptest::option::of(any_median()),
        )
            .prop_map(|(p, s)| DayClose {
                median_price: p,
                median_price_per_sqft: s,
            })
    }

    proptest! {
        #[test]
        fn packed_counters_read_back_as_written(
            days in proptest::collection::btree_map(-1_000_000i32..1_000_000, any_counts(), 0..40)
        ) {
            let days: BTreeMap<NaiveDate, DailyCounts> =
                days.into_iter().map(|(n, c)| (day(n), c)).collect();
            prop_assert_eq!(decode::<DailyCounts>(&encode(&days)).expect("decodes"), days);
        }

        #[test]
        fn packed_closes_read_back_as_written(
            days in proptest::collection::btree_map(700_000i32..800_000, any_close(), 0..40)
        ) {
            let days: BTreeMap<NaiveDate, DayClose> =
                days.into_iter().map(|(n, c)| (day(n), c)).collect();
            prop_assert_eq!(decode::<DayClose>(&encode(&days)).expect("decodes"), days);
        }

        #[test]
        fn any_bytes_are_read_or_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode::<DailyCounts>(&bytes);
            let _ = decode::<DayClose>(&bytes);
        }
    }

    /// An item's fields as a text format carries them.
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Item {
        #[serde(with = "super")]
        daily: BTreeMap<NaiveDate, DailyCounts>,
        #[serde(with = "super")]
        closing: BTreeMap<NaiveDate, DayClose>,
    }

    fn month(days: usize) -> Item {
        let first = day(739_000);
        let counts = DailyCounts {
            new_listings: 12,
            price_cuts: 7,
            price_rises: 2,
            delistings: 3,
            cut_bp_sum: 4_350,
        };
        let close = DayClose {
            median_price: Some(512_345.67),
            median_price_per_sqft: Some(287.5),
        };
        Item {
            daily: (0..days)
                .map(|i| (first + chrono::Duration::days(i as i64), counts))
                .collect(),
            closing: (0..days)
                .map(|i| (first + chrono::Duration::days(i as i64), close))
                .collect(),
        }
    }

    #[test]
    fn a_month_of_days_packs_small() {
        let item = month(36);
        // About 8 bytes a day of counters and 18 a close.
        assert!(
            encode(&item.daily).len() < 36 * 9,
            "{}",
            encode(&item.daily).len()
        );
        assert!(
            encode(&item.closing).len() < 36 * 19,
            "{}",
            encode(&item.closing).len()
        );
    }

    #[test]
    fn a_close_of_exact_medians_packs_as_cents() {
        let close = DayClose {
            median_price: Some(549_900.0),
            median_price_per_sqft: Some(287.45),
        };
        let closes: BTreeMap<NaiveDate, DayClose> =
            (0..35).map(|i| (day(739_000 + i), close)).collect();
        let packed = encode(&closes);
        // A day (3 bytes for the first, 1 after), the flags, 4 bytes of price cents and 3
        // of per-sqft cents: 9 bytes a close instead of 18.
        assert!(packed.len() <= 1 + 2 + 35 * 9, "{}", packed.len());
        assert_eq!(decode::<DayClose>(&packed).expect("decodes"), closes);
    }

    /// Closes written from 2026-11-26 to 2026-11-28 hold their medians as buckets.
    #[test]
    fn a_close_of_bucket_medians_still_reads() {
        let price = LogHistogram::bucket_of(51_234_567.0).expect("a bucket");
        let mut bytes = vec![FORMAT];
        put_varint(&mut bytes, zigzag(739_000));
        bytes.push(PRICE_BUCKET_BIT | PER_SQFT_CENTS_BIT);
        put_varint(&mut bytes, zigzag(i64::from(price)));
        put_varint(&mut bytes, zigzag(28_745));
        let closes = decode::<DayClose>(&bytes).expect("decodes");
        assert_eq!(
            closes.into_values().collect::<Vec<_>>(),
            [DayClose {
                median_price: Some(median_of_bucket(price)),
                median_price_per_sqft: Some(287.45),
            }]
        );
        // A close saying a median twice, in both forms, is refused.
        let mut bytes = vec![FORMAT];
        put_varint(&mut bytes, zigzag(739_000));
        bytes.push(PRICE_BIT | PRICE_BUCKET_BIT);
        bytes.extend_from_slice(&1.0f64.to_le_bytes());
        assert!(decode::<DayClose>(&bytes).is_err());
        // A bucket past an i32 is refused, not wrapped.
        let mut bytes = vec![FORMAT];
        put_varint(&mut bytes, zigzag(739_000));
        bytes.push(PRICE_BUCKET_BIT);
        put_varint(&mut bytes, zigzag(i64::from(i32::MAX) + 1));
        assert!(decode::<DayClose>(&bytes).is_err());
    }

    #[test]
    fn text_formats_read_both_forms_up_to_their_bounds() {
        let read = |json: serde_json::Value| serde_json::from_value::<Item>(json);
        // Packed, as JSON writes bytes, at the day limit and past it.
        let at_limit = serde_json::to_value(month(MAX_STORED_DAYS)).expect("JSON");
        let back = read(at_limit).expect("at the limit");
        assert_eq!(
            (back.daily.len(), back.closing.len()),
            (MAX_STORED_DAYS, MAX_STORED_DAYS)
        );
        let past = serde_json::to_value(month(MAX_STORED_DAYS + 1)).expect("JSON");
        assert!(read(past).is_err());
        // The maps items written before hold, at the limit and past it.
        let maps = |days: usize| {
            let item = month(days);
            serde_json::json!({ "daily": item.daily, "closing": item.closing })
        };
        let back = read(maps(MAX_STORED_DAYS)).expect("at the limit");
        assert_eq!(back.daily, month(MAX_STORED_DAYS).daily);
        assert_eq!(back.closing, month(MAX_STORED_DAYS).closing);
        assert!(read(maps(MAX_STORED_DAYS + 1)).is_err());
        // Bytes past the longest packed map are refused before they are kept.
        let long = serde_json::json!({
            "daily": vec![0u8; max_packed_bytes::<DailyCounts>() + 1],
            "closing": [FORMAT],
        });
        assert!(read(long).is_err());
        // Empty maps, in both forms.
        let empty = read(serde_json::json!({ "daily": [FORMAT], "closing": {} })).expect("empty");
        assert!(empty.daily.is_empty() && empty.closing.is_empty());
    }
}
