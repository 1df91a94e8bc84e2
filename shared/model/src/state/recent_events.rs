//! [`ListingItem::recent_events`](super::ListingItem::recent_events) as stored: one binary
//! attribute packing the events, about 40 bytes each, instead of a list of maps of about 175
//! (attribute names, an RFC 3339 time, the sequence number as text). DynamoDB bills a write per
//! started KB, and the list of maps was what took most listing items past one.
//!
//! Layout: a format byte (`FORMAT`), then per event, oldest first: the observation time
//! (zig-zag varint seconds since the epoch, varint nanoseconds), the sequence number (varint
//! digit count, then two decimal digits a byte, high nibble first, a last odd digit padded
//! with 0xF), the price (zig-zag varint), the living area (varint, 0 for none, else area + 1)
//! and one byte of status (bits 0-2), offer (bit 3), delisted (bit 4) and baseline (bit 5).
//! Readers take this and the list of maps items written before it hold.

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serializer};

use crate::listing::{ListingStatus, Offer};
use crate::state::{AppliedEvent, MAX_SEQUENCE_DIGITS, SequenceNumber};
use crate::varint::{get_varint, put_varint, unzigzag, zigzag};

/// The layout's version: the first byte.
const FORMAT: u8 = 1;
/// Most events a stored list may hold: far above what the metrics function keeps
/// ([`crate::state::MAX_RECENT_EVENTS`]), a bound on what a hostile item makes a
/// reader build.
const MAX_STORED_EVENTS: usize = 64;
/// Most bytes one packed event takes: varints of 10 (seconds, price), 5 (nanoseconds, area)
/// and 2 (digit count) bytes, 64 bytes of digits, the flags.
const MAX_PACKED_EVENT_BYTES: usize = 10 + 5 + 2 + MAX_SEQUENCE_DIGITS / 2 + 10 + 5 + 1;
/// Most bytes a packed list may take.
const MAX_PACKED_BYTES: usize = 1 + MAX_STORED_EVENTS * MAX_PACKED_EVENT_BYTES;

const STATUSES: [ListingStatus; 6] = [
    ListingStatus::ComingSoon,
    ListingStatus::Active,
    ListingStatus::UnderContract,
    ListingStatus::Pending,
    ListingStatus::Sold,
    ListingStatus::OffMarket,
];
const OFFERS: [Offer; 2] = [Offer::Sale, Offer::Rent];
const OFFER_BIT: u8 = 1 << 3;
const DELISTED_BIT: u8 = 1 << 4;
const BASELINE_BIT: u8 = 1 << 5;

/// Why a stored list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt recent events: {0}")]
pub struct RecentEventsError(&'static str);

/// The events packed (see the module docs).
pub fn encode(events: &[AppliedEvent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + events.len() * 48);
    out.push(FORMAT);
    for e in events {
        put_varint(&mut out, zigzag(e.observed_at.timestamp()));
        put_varint(&mut out, u64::from(e.observed_at.timestamp_subsec_nanos()));
        // 1 to 128 decimal digits, as every `SequenceNumber`.
        let digits = e.sequence.as_kinesis().as_bytes();
        put_varint(&mut out, digits.len() as u64);
        for pair in digits.chunks(2) {
            let high = pair[0] - b'0';
            let low = pair.get(1).map_or(0x0F, |d| d - b'0');
            out.push(high << 4 | low);
        }
        put_varint(&mut out, zigzag(e.price_minor));
        put_varint(&mut out, e.living_area_sqft.map_or(0, |a| u64::from(a) + 1));
        let status = status_index(e.status);
        let offer = if e.offer == Offer::Rent { OFFER_BIT } else { 0 };
        let delisted = if e.delisted { DELISTED_BIT } else { 0 };
        let baseline = if e.baseline { BASELINE_BIT } else { 0 };
        out.push(status | offer | delisted | baseline);
    }
    out
}

/// The events of a packed list.
pub fn decode(bytes: &[u8]) -> Result<Vec<AppliedEvent>, RecentEventsError> {
    let corrupt = |_| RecentEventsError("truncated or overlong varint");
    let Some((&FORMAT, mut rest)) = bytes.split_first() else {
        return Err(RecentEventsError("unknown format"));
    };
    let mut events = Vec::new();
    while !rest.is_empty() {
        if events.len() == MAX_STORED_EVENTS {
            return Err(RecentEventsError("more events than an item keeps"));
        }
        let mut pos = 0;
        let seconds = unzigzag(get_varint(rest, &mut pos).map_err(corrupt)?);
        let nanos = u32::try_from(get_varint(rest, &mut pos).map_err(corrupt)?)
            .map_err(|_| RecentEventsError("nanoseconds out of range"))?;
        let observed_at = DateTime::<Utc>::from_timestamp(seconds, nanos)
            .ok_or(RecentEventsError("observation time out of range"))?;
        let count = usize::try_from(get_varint(rest, &mut pos).map_err(corrupt)?)
            .ok()
            .filter(|n| (1..=MAX_SEQUENCE_DIGITS).contains(n))
            .ok_or(RecentEventsError("sequence number not 1-128 digits"))?;
        let packed = rest
            .get(pos..pos + count.div_ceil(2))
            .ok_or(RecentEventsError("truncated sequence number"))?;
        pos += packed.len();
        let mut digits = [0u8; MAX_SEQUENCE_DIGITS];
        for (i, byte) in packed.iter().enumerate() {
            for (j, nibble) in [byte >> 4, byte & 0x0F].into_iter().enumerate() {
                if 2 * i + j == count {
                    if nibble != 0x0F {
                        return Err(RecentEventsError("sequence number padding"));
                    }
                } else if nibble > 9 {
                    return Err(RecentEventsError("sequence number digit"));
                } else {
                    digits[2 * i + j] = b'0' + nibble;
                }
            }
        }
        // 1 to 128 decimal digits: always a sequence number (items written before this
        // held them zero-padded; read, they are as Kinesis writes them).
        let sequence = std::str::from_utf8(&digits[..count])
            .ok()
            .and_then(SequenceNumber::parse)
            .ok_or(RecentEventsError("sequence number digit"))?;
        let price_minor = unzigzag(get_varint(rest, &mut pos).map_err(corrupt)?);
        let living_area_sqft = match get_varint(rest, &mut pos).map_err(corrupt)? {
            0 => None,
            area => {
                Some(u32::try_from(area - 1).map_err(|_| RecentEventsError("area out of range"))?)
            }
        };
        let flags = *rest.get(pos).ok_or(RecentEventsError("truncated flags"))?;
        pos += 1;
        if flags & !(0x07 | OFFER_BIT | DELISTED_BIT | BASELINE_BIT) != 0 {
            return Err(RecentEventsError("unknown flags"));
        }
        let status = *STATUSES
            .get(usize::from(flags & 0x07))
            .ok_or(RecentEventsError("unknown status"))?;
        events.push(AppliedEvent {
            observed_at,
            sequence,
            price_minor,
            living_area_sqft,
            status,
            offer: OFFERS[usize::from(flags & OFFER_BIT != 0)],
            delisted: flags & DELISTED_BIT != 0,
            baseline: flags & BASELINE_BIT != 0,
        });
        rest = &rest[pos..];
    }
    Ok(events)
}

/// The index of `status` in [`STATUSES`] (a match, so a new status cannot be left out).
fn status_index(status: ListingStatus) -> u8 {
    match status {
        ListingStatus::ComingSoon => 0,
        ListingStatus::Active => 1,
        ListingStatus::UnderContract => 2,
        ListingStatus::Pending => 3,
        ListingStatus::Sold => 4,
        ListingStatus::OffMarket => 5,
    }
}

/// `#[serde(with = ...)]` of the item field: written packed, read packed or as the list of
/// maps of items written before.
pub fn serialize<S: Serializer>(events: &[AppliedEvent], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(&encode(events))
}

pub fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<AppliedEvent>, D::Error> {
    deserializer.deserialize_any(StoredVisitor)
}

struct StoredVisitor;

/// One element of a stored list: a byte of the packed form as a text format writes bytes
/// (JSON: an array of numbers), or an event of the list of maps.
#[derive(Deserialize)]
#[serde(untagged)]
enum Element {
    Byte(u8),
    Event(AppliedEvent),
}

impl<'de> Visitor<'de> for StoredVisitor {
    type Value = Vec<AppliedEvent>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("packed recent events, or a list of them")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
        decode(bytes).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut bytes = Vec::new();
        let mut events = Vec::new();
        while let Some(element) = seq.next_element::<Element>()? {
            match element {
                Element::Byte(_) if bytes.len() == MAX_PACKED_BYTES => {
                    return Err(de::Error::custom("packed recent events too long"));
                }
                Element::Event(_) if events.len() == MAX_STORED_EVENTS => {
                    return Err(de::Error::custom("more recent events than an item keeps"));
                }
                Element::Byte(b) if events.is_empty() => bytes.push(b),
                Element::Event(e) if bytes.is_empty() => events.push(e),
                _ => return Err(de::Error::custom("recent events of two forms")),
            }
        }
        if bytes.is_empty() {
            Ok(events)
        } else {
            decode(&bytes).map_err(de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(seconds: i64, nanos: u32, sequence: &str) -> AppliedEvent {
        AppliedEvent {
            observed_at: DateTime::from_timestamp(seconds, nanos).expect("time"),
            sequence: SequenceNumber::parse(sequence).expect("a sequence number"),
            price_minor: 45_000_000,
            living_area_sqft: Some(1_850),
            status: ListingStatus::Active,
            offer: Offer::Sale,
            delisted: false,
            baseline: false,
        }
    }

    fn any_event() -> impl Strategy<Value = AppliedEvent> {
        (
            -62_000_000_000i64..250_000_000_000,
            0u32..1_000_000_000,
            "[1-9][0-9]{0,127}",
            any::<i64>(),
            proptest::option::of(any::<u32>()),
            0usize..6,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(s, n, seq, price, area, status, rent, delisted, baseline)| AppliedEvent {
                    observed_at: DateTime::from_timestamp(s, n).expect("in range"),
                    sequence: SequenceNumber::parse(&seq).expect("digits"),
                    price_minor: price,
                    living_area_sqft: area,
                    status: STATUSES[status],
                    offer: if rent { Offer::Rent } else { Offer::Sale },
                    delisted,
                    baseline,
                },
            )
    }

    proptest! {
        #[test]
        fn packed_events_read_back_as_written(events in proptest::collection::vec(any_event(), 0..10)) {
            let packed = encode(&events);
            prop_assert_eq!(decode(&packed).expect("decodes"), events);
        }

        #[test]
        fn any_bytes_are_read_or_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }

    /// An item's field as a text format carries it.
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Item {
        #[serde(with = "super")]
        recent_events: Vec<AppliedEvent>,
    }

    #[test]
    fn text_formats_read_both_forms_up_to_their_bounds() {
        let one = event(
            1_763_000_000,
            0,
            "49590338271490256608559692538361571095921575989136588898",
        );
        let read = |json: serde_json::Value| serde_json::from_value::<Item>(json);
        // Packed, as JSON writes bytes (an array of numbers), at the event limit and past it.
        let packed = |n| {
            serde_json::to_value(Item {
                recent_events: vec![one.clone(); n],
            })
        };
        let at_limit = packed(MAX_STORED_EVENTS).expect("JSON");
        assert_eq!(
            read(at_limit).expect("at the limit").recent_events.len(),
            MAX_STORED_EVENTS
        );
        assert!(read(packed(MAX_STORED_EVENTS + 1).expect("JSON")).is_err());
        // The list of maps items written before hold, at the limit and past it.
        let listed = |n| serde_json::json!({ "recent_events": vec![one.clone(); n] });
        assert_eq!(
            read(listed(MAX_STORED_EVENTS))
                .expect("at the limit")
                .recent_events
                .len(),
            MAX_STORED_EVENTS
        );
        assert!(read(listed(MAX_STORED_EVENTS + 1)).is_err());
        // Bytes past the longest packed list are refused before they are kept.
        let long = serde_json::json!({ "recent_events": vec![0u8; MAX_PACKED_BYTES + 1] });
        assert!(read(long).is_err());
        // The two forms mixed, and the empty list.
        let mixed = serde_json::json!({ "recent_events": [1, one] });
        assert!(read(mixed).is_err());
        assert!(
            read(serde_json::json!({ "recent_events": [] }))
                .expect("empty")
                .recent_events
                .is_empty()
        );
    }

    #[test]
    fn statuses_are_indexed_in_their_table_order() {
        for (i, status) in STATUSES.into_iter().enumerate() {
            assert_eq!(usize::from(status_index(status)), i);
        }
    }

    #[test]
    fn a_kinesis_event_packs_in_about_forty_bytes() {
        let events = vec![
            event(
                1_763_000_000,
                0,
                "49590338271490256608559692538361571095921575989136588898",
            );
            8
        ];
        let packed = encode(&events);
        let as_maps = serde_json::to_vec(&events).expect("JSON").len();
        assert!(packed.len() <= 1 + 8 * 42, "{} bytes", packed.len());
        assert!(packed.len() * 4 < as_maps, "{} vs {as_maps}", packed.len());
        // Items written before stored sequence numbers padded to 128 digits: read, they are
        // as Kinesis writes them.
        let seven = event(0, 1, "7");
        let unpadded = encode(std::slice::from_ref(&seven));
        assert_eq!(&unpadded[3..5], [1, 0x7F], "one digit, then the pad nibble");
        let mut padded = unpadded[..3].to_vec();
        put_varint(&mut padded, 128);
        padded.extend([0u8; 63]);
        padded.push(0x07);
        padded.extend_from_slice(&unpadded[5..]);
        assert_eq!(decode(&padded).expect("decodes"), vec![seven]);
    }

    #[test]
    fn corrupt_or_hostile_lists_are_refused() {
        let good = encode(&[event(1_763_000_000, 0, "123")]);
        assert!(decode(&[]).is_err(), "no format byte");
        assert!(decode(&[2]).is_err(), "unknown format");
        assert_eq!(decode(&[FORMAT]).expect("empty list"), Vec::new());
        // Cut anywhere after the format byte (which alone is the empty list).
        for cut in 2..good.len() {
            assert!(decode(&good[..cut]).is_err(), "truncated at {cut}");
        }
        let mut bad_flags = good.clone();
        *bad_flags.last_mut().expect("flags") |= 0x80;
        assert!(decode(&bad_flags).is_err());
        let mut next_unknown = good.clone();
        *next_unknown.last_mut().expect("flags") |= 0x40;
        assert!(decode(&next_unknown).is_err());
        let mut bad_status = good.clone();
        *bad_status.last_mut().expect("flags") |= 0x07;
        assert!(decode(&bad_status).is_err());
        let mut many = vec![FORMAT];
        for _ in 0..=MAX_STORED_EVENTS {
            many.extend_from_slice(&good[1..]);
        }
        assert!(decode(&many).is_err(), "past {MAX_STORED_EVENTS} events");
        assert_eq!(
            decode(&many[..many.len() - (good.len() - 1)])
                .expect("at the limit")
                .len(),
            MAX_STORED_EVENTS
        );
        let digits = good
            .windows(2)
            .position(|w| w == [0x12, 0x3F])
            .expect("the packed digits");
        let mut bad_digit = good.clone();
        bad_digit[digits] = 0x1A;
        assert!(decode(&bad_digit).is_err(), "a nibble past 9");
        let mut bad_pad = good.clone();
        bad_pad[digits + 1] = 0x34;
        assert!(
            decode(&bad_pad).is_err(),
            "no pad nibble after an odd count"
        );
        // 129 digits, one past Kinesis's longest: refused before they are read.
        let mut too_long = vec![FORMAT, 0, 0];
        put_varint(&mut too_long, 129);
        too_long.extend([0x99; 64]);
        too_long.push(0x9F);
        too_long.extend([0, 0, 0]);
        assert!(decode(&too_long).is_err(), "129 digits");
        let longest = event(0, 0, &"9".repeat(128));
        assert_eq!(
            decode(&encode(std::slice::from_ref(&longest))).expect("decodes"),
            [longest]
        );
    }
}
