//! A market live item's binary parts (its values, its on-market days, its days of counters
//! and its closes) as stored since 2026-11-26: one binary attribute, `packed`,
//! DEFLATE-compressed together. Apart, each part is too short to compress and costs an
//! attribute name; together they took a month-old regional item of histograms from about
//! 1.9 KB to about 1.0 KB (docs/capacity.md, "The three sizes").
//!
//! Layout: a format byte, then the DEFLATE stream of the parts in their order, each as a
//! varint of its length plus one (0: absent; only the whole prices and rents may be), then
//! its bytes. Format 2 (since 2026-11-29) holds exact values and 13 parts
//! ([`ValueLayout::Exact`]); format 1 held histograms and 12 parts, the rents always whole
//! ([`ValueLayout::LogHistograms`]), and is still read. Items are written by this code but
//! read as untrusted: a reader inflates at most [`MAX_INFLATED_BYTES`], and the writer packs
//! nothing larger.

use std::io::Read as _;
#[cfg(test)]
use std::io::Write as _;

use crate::aggregate::{EncodedValues, ValueLayout};
use realty_model::varint::{get_varint, put_varint};

/// The layout's version written: the first byte, outside the compressed stream.
const FORMAT: u8 = 2;
/// The layout of items written from 2026-11-26 to 2026-11-28: histograms.
const FORMAT_HISTOGRAMS: u8 = 1;
/// Most bytes the parts may inflate to: ten times DynamoDB's item limit, far above what a
/// market's bounded histograms and days take, and a bound on what a hostile item makes a
/// reader allocate.
pub const MAX_INFLATED_BYTES: usize = 4 << 20;
/// Level 9: the items are small and a market's writer writes one per batch, so the smallest
/// output is worth its time (about 0.1 ms an item).
const LEVEL: u32 = 9;

thread_local! {
    /// One compressor a thread, reset for each item: setting one up (its window and hash
    /// tables, about 300 KB) costs more than compressing an item of 2 KB.
    static COMPRESSOR: std::cell::RefCell<flate2::Compress> =
        std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::new(LEVEL), false));
}

/// Why a packed attribute could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("packed market parts: {0}")]
pub struct PackedError(pub String);

/// The parts a market item packs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedParts {
    pub values: EncodedValues,
    /// What `values` hold (the writer writes [`ValueLayout::Exact`] only).
    pub layout: ValueLayout,
    /// [`super::market_days`]-encoded counters.
    pub daily: Vec<u8>,
    /// [`super::market_days`]-encoded closes.
    pub closing: Vec<u8>,
}

impl PackedParts {
    /// The parts in their stored order (format 2).
    const ORDER: usize = 13;
    /// Format 1's: no `rent_without_beds`, the whole rents always present.
    const ORDER_HISTOGRAMS: usize = 12;

    fn parts(&self) -> [Option<&[u8]>; Self::ORDER] {
        let v = &self.values;
        [
            v.price.as_deref(),
            Some(&v.price_without_beds),
            Some(&v.price_per_sqft),
            Some(&v.living_area),
            Some(&v.listed_day_negated),
            Some(&v.gross_yield),
            v.rent.as_deref(),
            Some(&v.rent_without_beds),
            Some(&v.rent_per_sqft),
            Some(&v.rent_by_bedrooms),
            Some(&v.price_by_bedrooms),
            Some(&self.daily),
            Some(&self.closing),
        ]
    }

    /// The stored attribute (format 2); `None` when the parts are over
    /// [`MAX_INFLATED_BYTES`] (a reader would refuse them).
    pub fn pack(&self) -> Option<Vec<u8>> {
        let parts = self.parts();
        let raw_len: usize = parts.iter().map(|p| p.map_or(1, |p| p.len() + 10)).sum();
        let mut raw = Vec::with_capacity(raw_len);
        for part in parts {
            match part {
                None => put_varint(&mut raw, 0),
                Some(bytes) => {
                    put_varint(&mut raw, bytes.len() as u64 + 1);
                    raw.extend_from_slice(bytes);
                }
            }
        }
        if raw.len() > MAX_INFLATED_BYTES {
            return None;
        }
        // Room for all of it even incompressible (DEFLATE's stored blocks add 5 bytes per
        // block of at most 64 KB; zlib's own bound adds about len / 4,000), so one call
        // ends the stream.
        let mut out = Vec::with_capacity(raw.len() + raw.len() / 1_000 + 64);
        out.push(FORMAT);
        COMPRESSOR.with_borrow_mut(|compressor| {
            compressor.reset();
            match compressor.compress_vec(&raw, &mut out, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => Some(out),
                _ => None,
            }
        })
    }

    /// The parts of a stored attribute.
    pub fn unpack(packed: &[u8]) -> Result<Self, PackedError> {
        let err = |reason: &str| PackedError(reason.to_owned());
        let (layout, order, compressed) = match packed.split_first() {
            Some((&FORMAT, rest)) => (ValueLayout::Exact, Self::ORDER, rest),
            Some((&FORMAT_HISTOGRAMS, rest)) => {
                (ValueLayout::LogHistograms, Self::ORDER_HISTOGRAMS, rest)
            }
            _ => return Err(err("unknown format")),
        };
        let mut raw = Vec::with_capacity(compressed.len() * 3);
        flate2::read::DeflateDecoder::new(compressed)
            .take(MAX_INFLATED_BYTES as u64 + 1)
            .read_to_end(&mut raw)
            .map_err(|e| PackedError(format!("not DEFLATE: {e}")))?;
        if raw.len() > MAX_INFLATED_BYTES {
            return Err(PackedError(format!(
                "inflates past {MAX_INFLATED_BYTES} bytes"
            )));
        }
        let mut pos = 0;
        let mut parts: Vec<Option<Vec<u8>>> = Vec::with_capacity(order);
        while parts.len() < order {
            let tagged = get_varint(&raw, &mut pos).map_err(|e| PackedError(e.to_string()))?;
            let Some(len) = tagged.checked_sub(1) else {
                parts.push(None);
                continue;
            };
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| pos.checked_add(len))
                .filter(|&end| end <= raw.len())
                .ok_or_else(|| err("a part runs past the end"))?;
            parts.push(Some(raw[pos..end].to_vec()));
            pos = end;
        }
        if pos != raw.len() {
            return Err(err("bytes after the last part"));
        }
        let mut parts = parts.into_iter();
        let mut next = |name: &str| {
            parts
                .next()
                .flatten()
                .ok_or_else(|| PackedError(format!("{name} absent")))
        };
        // Only the whole prices and rents may be absent (they are then their groups' sum
        // and the rest); format 1 always holds the rents whole.
        let price = next("price").ok();
        let price_without_beds = next("price_without_beds")?;
        let price_per_sqft = next("price_per_sqft")?;
        let living_area = next("living_area")?;
        let listed_day_negated = next("listed_day_negated")?;
        let gross_yield = next("gross_yield")?;
        let (rent, rent_without_beds) = match layout {
            ValueLayout::Exact => (next("rent").ok(), next("rent_without_beds")?),
            ValueLayout::LogHistograms => (Some(next("rent")?), Vec::new()),
        };
        let values = EncodedValues {
            price,
            price_without_beds,
            price_per_sqft,
            living_area,
            listed_day_negated,
            gross_yield,
            rent,
            rent_without_beds,
            rent_per_sqft: next("rent_per_sqft")?,
            rent_by_bedrooms: next("rent_by_bedrooms")?,
            price_by_bedrooms: next("price_by_bedrooms")?,
        };
        Ok(Self {
            values,
            layout,
            daily: next("daily")?,
            closing: next("closing")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_of(sizes: [usize; PackedParts::ORDER]) -> PackedParts {
        let part = |i: usize| vec![(i as u8).wrapping_mul(37); sizes[i]];
        PackedParts {
            values: EncodedValues {
                price: Some(part(0)),
                price_without_beds: part(1),
                price_per_sqft: part(2),
                living_area: part(3),
                listed_day_negated: part(4),
                gross_yield: part(5),
                rent: Some(part(6)),
                rent_without_beds: part(7),
                rent_per_sqft: part(8),
                rent_by_bedrooms: part(9),
                price_by_bedrooms: part(10),
            },
            layout: ValueLayout::Exact,
            daily: part(11),
            closing: part(12),
        }
    }

    fn deflated(format: u8, raw: &[u8]) -> Vec<u8> {
        let mut out = vec![format];
        let mut encoder = flate2::write::DeflateEncoder::new(&mut out, Default::default());
        encoder.write_all(raw).expect("deflate");
        encoder.finish().expect("deflate");
        out
    }

    /// The raw (inflated) length of `parts`, as [`PackedParts::pack`] lays them out.
    fn raw_len(parts: &PackedParts) -> usize {
        parts
            .parts()
            .iter()
            .map(|p| {
                p.map_or(1, |p| {
                    let mut tag = Vec::new();
                    put_varint(&mut tag, p.len() as u64 + 1);
                    tag.len() + p.len()
                })
            })
            .sum()
    }

    #[test]
    fn parts_come_back_as_they_went_in_with_or_without_the_whole_prices_and_rents() {
        let parts = parts_of([3, 0, 40, 7, 1, 0, 9, 4, 2, 300, 5, 60, 33]);
        let packed = parts.pack().expect("packs");
        assert_eq!(PackedParts::unpack(&packed), Ok(parts.clone()));

        let mut without_wholes = parts;
        without_wholes.values.price = None;
        without_wholes.values.rent = None;
        let packed = without_wholes.pack().expect("packs");
        assert_eq!(PackedParts::unpack(&packed), Ok(without_wholes));
    }

    /// Items written from 2026-11-26 to 2026-11-28: twelve parts of histograms, the rents
    /// whole.
    #[test]
    fn the_histograms_of_format_1_still_read() {
        let mut raw = Vec::new();
        for i in 0..PackedParts::ORDER_HISTOGRAMS {
            put_varint(&mut raw, 3);
            raw.extend_from_slice(&[i as u8, 7]);
        }
        let parts = PackedParts::unpack(&deflated(FORMAT_HISTOGRAMS, &raw)).expect("reads");
        assert_eq!(parts.layout, ValueLayout::LogHistograms);
        assert_eq!(parts.values.rent, Some(vec![6, 7]));
        assert_eq!(parts.values.rent_without_beds, Vec::<u8>::new());
        assert_eq!(parts.values.price_by_bedrooms, vec![9, 7]);
        assert_eq!(parts.closing, vec![11, 7]);
        // Thirteen parts are not format 1.
        put_varint(&mut raw, 1);
        assert!(PackedParts::unpack(&deflated(FORMAT_HISTOGRAMS, &raw)).is_err());
    }

    #[test]
    fn parts_inflating_to_the_bound_are_packed_and_read_and_one_byte_more_is_neither() {
        // Twelve small parts and one that brings the whole to the bound exactly.
        let mut sizes = [4; PackedParts::ORDER];
        sizes[9] = 0;
        let rest = MAX_INFLATED_BYTES - raw_len(&parts_of(sizes));
        // The big part's length tag grows from 1 byte to 4 (a varint of about 4 million).
        sizes[9] = rest - 3;
        let at_bound = parts_of(sizes);
        assert_eq!(raw_len(&at_bound), MAX_INFLATED_BYTES);
        let packed = at_bound.pack().expect("at the bound: packed");
        assert_eq!(PackedParts::unpack(&packed), Ok(at_bound));

        sizes[9] += 1;
        let past = parts_of(sizes);
        assert_eq!(raw_len(&past), MAX_INFLATED_BYTES + 1);
        assert_eq!(past.pack(), None, "past the bound: not packed");

        // A hostile attribute that inflates one byte past the bound is refused before it is
        // split (its parts are well formed but for that).
        let mut raw = Vec::new();
        for part in past.parts() {
            let part = part.expect("present");
            put_varint(&mut raw, part.len() as u64 + 1);
            raw.extend_from_slice(part);
        }
        let hostile = deflated(FORMAT, &raw);
        let refused = PackedParts::unpack(&hostile).expect_err("past the bound");
        assert!(refused.0.contains("inflates past"), "{refused}");
    }

    #[test]
    fn incompressible_parts_are_packed_too() {
        // A megabyte that DEFLATE cannot shrink (a linear congruential sequence's high
        // bytes): the output outgrows the input, and must still end in one call.
        let mut state: u64 = 7;
        let noise: Vec<u8> = (0..1 << 20)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 56) as u8
            })
            .collect();
        let mut parts = parts_of([3; PackedParts::ORDER]);
        parts.values.price_by_bedrooms = noise;
        let packed = parts.pack().expect("packed, not kept apart");
        assert!(packed.len() > 1 << 20, "{} bytes", packed.len());
        assert_eq!(PackedParts::unpack(&packed), Ok(parts));
    }

    #[test]
    fn corrupt_attributes_are_errors_not_panics() {
        let packed = parts_of([5; PackedParts::ORDER]).pack().expect("packs");
        for (name, bytes) in [
            ("empty", Vec::new()),
            ("unknown format", [&[9u8][..], &packed[1..]].concat()),
            ("not deflate", vec![FORMAT, 0xff, 0xff, 0xff]),
            ("cut short", packed[..packed.len() / 2].to_vec()),
        ] {
            assert!(PackedParts::unpack(&bytes).is_err(), "{name}");
        }
        // Well-formed DEFLATE around bad layouts.
        let mut twelve = Vec::new();
        for _ in 0..12 {
            put_varint(&mut twelve, 1);
        }
        let mut fourteen = twelve.clone();
        put_varint(&mut fourteen, 1);
        put_varint(&mut fourteen, 1);
        let mut thirteen_with_daily_absent = twelve.clone();
        thirteen_with_daily_absent[11] = 0;
        put_varint(&mut thirteen_with_daily_absent, 1);
        let mut overrun = twelve.clone();
        put_varint(&mut overrun, 1_000);
        for (name, raw) in [
            ("twelve parts", twelve),
            ("bytes after the thirteenth", fourteen),
            (
                "a part other than the prices and rents absent",
                thirteen_with_daily_absent,
            ),
            ("a length past the end", overrun),
            ("an overlong varint", vec![0xff; 11]),
        ] {
            assert!(
                PackedParts::unpack(&deflated(FORMAT, &raw)).is_err(),
                "{name}"
            );
        }
    }
}
