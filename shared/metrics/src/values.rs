//! A market's values as they are ([`ValueCounts`]): its listings' prices, rents and prices
//! per sqft in minor units, living areas in square feet, yields in basis points, each with
//! how many listings have it. Every nearest-rank quantile is then one of the listings' own
//! values, exactly (docs/metrics.md, "Exact medians"), and, like the histograms they
//! replace, they take both adds and removes, so they follow the active listings
//! incrementally.
//!
//! Stored sorted and delta-coded (about 1.5 bytes a listing once the item is compressed:
//! [`ValueCounts::encode`]). A market too large for its item to hold every value (far past
//! any real city: docs/capacity.md) keeps them **bucketed** instead: each value snapped to
//! the midpoint of its 2 % logarithmic bucket, as the histograms before 2026-11-29 kept
//! them, so its quantiles are within 1 % ([`ValueCounts::bucketed`]). Items written before
//! then read that way too ([`ValueCounts::from_log_histogram`]), until `realty reconcile`
//! recomputes them from the listings.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::histogram::LogHistogram;

use realty_model::varint::{DecodeError, get_varint, put_varint};

/// Largest magnitude a stored value may have: far above any amount in minor units the
/// listing bounds let through (10^15), and small enough that a delta shifted by a flag bit
/// fits a `u64`.
pub const MAX_VALUE: i64 = 1 << 60;

/// Integer values and how many times each is held: an exact multiset, or a bucketed one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValueCounts {
    /// Occupied values only. A tree, not a sorted vector: a city's prices are thousands of
    /// distinct values, and a sorted vector moves half of them on every insert.
    counts: BTreeMap<i64, u64>,
    total: u64,
    /// Every value is held as its 2 % bucket's midpoint ([`snap`]), not as itself.
    bucketed: bool,
}

/// Values below this are held as they are even in a bucketed set: a bucket there is narrower
/// than a few units, so its rounded midpoint could lie in the next one, and bucketing them
/// saves nothing.
pub const BUCKETED_FROM: i64 = 1_000;

/// The midpoint of the 2 % logarithmic bucket of `value`, rounded: what a bucketed set holds
/// for it (values below [`BUCKETED_FROM`]: themselves). `snap(snap(v)) == snap(v)`: a
/// rounded midpoint from there on is well inside its bucket.
pub fn snap(value: i64) -> i64 {
    match LogHistogram::bucket_of(value as f64) {
        Some(bucket) if value >= BUCKETED_FROM => {
            let midpoint = LogHistogram::bucket_value(bucket).round();
            if midpoint.abs() <= MAX_VALUE as f64 {
                midpoint as i64
            } else {
                value
            }
        }
        _ => value,
    }
}

impl ValueCounts {
    /// What this set holds for `value`: itself, or its bucket's midpoint.
    fn key(&self, value: i64) -> i64 {
        if self.bucketed { snap(value) } else { value }
    }

    /// Whether the values are held bucketed (their quantiles within 1 %), not exactly.
    pub fn is_bucketed(&self) -> bool {
        self.bucketed
    }

    /// The same values, bucketed.
    pub fn bucketed(&self) -> Self {
        let mut out = Self {
            bucketed: true,
            ..Self::default()
        };
        for (&value, &count) in &self.counts {
            *out.counts.entry(snap(value)).or_insert(0) += count;
        }
        out.total = self.total;
        out
    }

    pub fn add(&mut self, value: i64) {
        *self.counts.entry(self.key(value)).or_insert(0) += 1;
        self.total += 1;
    }

    /// Removes one `value`; `Err(value)` when none was held (an underflow: the values had
    /// drifted from their listings). Counts never go negative.
    pub fn remove(&mut self, value: i64) -> Result<(), i64> {
        let key = self.key(value);
        let Some(count) = self.counts.get_mut(&key) else {
            return Err(value);
        };
        *count -= 1;
        if *count == 0 {
            self.counts.remove(&key);
        }
        self.total -= 1;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// `(value, count)` in increasing order of value.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = (i64, u64)> + '_ {
        self.counts.iter().map(|(&v, &c)| (v, c))
    }

    /// The value at nearest rank `ceil(q * n)` (1-based; rank 1 for `q` = 0), `None` when
    /// empty: `realty_model::stats::nearest_rank` over the values, without listing them.
    pub fn quantile(&self, q: f64) -> Option<i64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        self.values().find_map(|(v, c)| {
            seen += c;
            (seen >= rank).then_some(v)
        })
    }

    pub fn median(&self) -> Option<i64> {
        self.quantile(0.5)
    }

    /// The median (nearest rank) of |value - median|: exact, in the values' unit.
    pub fn median_absolute_deviation(&self) -> Option<i64> {
        let median = self.median()?;
        // Deviations as i128: values span at most 2 * MAX_VALUE.
        let at = |v: i64| (i128::from(v) - i128::from(median)).unsigned_abs();
        self.median_deviation(median, |below, above| at(below) < at(above))
            .map(|v| i64::try_from(at(v)).unwrap_or(i64::MAX))
    }

    /// The median (nearest rank) of |ln value - ln median| over the positive values: prices
    /// are skewed, and on a log scale a spread is a ratio. `None` when the median is not
    /// positive.
    pub fn log_median_absolute_deviation(&self) -> Option<f64> {
        let median = self.median().filter(|m| *m > 0)?;
        let m = median as f64;
        // ln(m / below) < ln(above / m) exactly when m * m < below * above: no logarithm
        // until the answer.
        // A value of 0 or less has no logarithm: it deviates most, and is taken last.
        let value = self.median_deviation(median, |below, above| {
            below > 0 && m * m < below as f64 * above as f64
        })?;
        (value > 0).then(|| ((value as f64).ln() - m.ln()).abs())
    }

    /// The value whose deviation from `median` is the median deviation, where
    /// `below_is_closer(b, a)` says whether the value `b` (at most the median) deviates less
    /// than `a` (at least it). The values above the median are in order of deviation going
    /// up, those below it going down: merging the two runs walks every value in order of
    /// deviation, with no copy and no sort.
    fn median_deviation(
        &self,
        median: i64,
        below_is_closer: impl Fn(i64, i64) -> bool,
    ) -> Option<i64> {
        let rank = self.total.div_ceil(2).max(1);
        let mut below = self
            .counts
            .range((Bound::Unbounded, Bound::Excluded(median)))
            .rev()
            .peekable();
        let mut above = self.counts.range(median..).peekable();
        let mut seen = 0;
        loop {
            let take_below = match (below.peek(), above.peek()) {
                (Some(b), Some(a)) => below_is_closer(*b.0, *a.0),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return None,
            };
            let (&value, &count) = if take_below {
                below.next()?
            } else {
                above.next()?
            };
            seen += count;
            if seen >= rank {
                return Some(value);
            }
        }
    }

    /// How many values lie below `low` or above `high`.
    pub fn count_outside(&self, low: f64, high: f64) -> u64 {
        let below: u64 = self
            .values()
            .take_while(|&(v, _)| (v as f64) < low)
            .map(|(_, c)| c)
            .sum();
        let above: u64 = self
            .values()
            .rev()
            .take_while(|&(v, _)| (v as f64) > high)
            .map(|(_, c)| c)
            .sum();
        // A range so narrow that a value is both below and above it does not exist; the
        // cap keeps a NaN bound from counting a value twice.
        (below + above).min(self.total)
    }

    /// Adds the values of `other` (stored values: a total past 2^64 is a corrupt item);
    /// bucketed if either is.
    pub fn merge(&mut self, other: &Self) -> Result<(), DecodeError> {
        let total = self
            .total
            .checked_add(other.total)
            .ok_or(DecodeError("counts overflow"))?;
        if other.bucketed && !self.bucketed {
            *self = self.bucketed();
        }
        for (&value, &count) in &other.counts {
            *self.counts.entry(self.key(value)).or_insert(0) += count;
        }
        self.total = total;
        Ok(())
    }

    /// These values less those of `part`; `None` when `part` holds a value this does not
    /// (the two have drifted apart), or the two are not held alike.
    pub fn without(&self, part: &Self) -> Option<Self> {
        if self.bucketed != part.bucketed {
            return None;
        }
        let mut rest = self.clone();
        for (&value, &count) in &part.counts {
            let held = rest.counts.get_mut(&value)?;
            *held = held.checked_sub(count)?;
            if *held == 0 {
                rest.counts.remove(&value);
            }
            rest.total -= count;
        }
        Some(rest)
    }

    /// The stored form: nothing when empty; else a varint of the values' greatest common
    /// divisor (prices are whole dollars or hundreds of them, so the steps shrink by it)
    /// shifted left by one, bit 0 set when the values are bucketed; then per value, in
    /// increasing order, its step from the one before over that divisor (zig-zag for the
    /// first), shifted left by one with bit 0 set when its count is not 1, and then that
    /// count.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.counts.len() * 3 + 4);
        if self.counts.is_empty() {
            return out;
        }
        let divisor = self
            .counts
            .keys()
            .fold(0u64, |g, &v| gcd(g, v.unsigned_abs()))
            .max(1);
        put_varint(&mut out, divisor << 1 | u64::from(self.bucketed));
        let divisor = i64::try_from(divisor).unwrap_or(1);
        let mut previous: Option<i64> = None;
        for (&value, &count) in &self.counts {
            let scaled = value / divisor;
            let step = match previous {
                None => zigzag(scaled),
                Some(p) => scaled.abs_diff(p),
            };
            put_varint(&mut out, step << 1 | u64::from(count != 1));
            if count != 1 {
                put_varint(&mut out, count);
            }
            previous = Some(scaled);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut values = Self::default();
        if bytes.is_empty() {
            return Ok(values);
        }
        let mut pos = 0;
        let header = get_varint(bytes, &mut pos)?;
        values.bucketed = header & 1 == 1;
        let divisor = i64::try_from(header >> 1)
            .ok()
            .filter(|d| (1..=MAX_VALUE).contains(d))
            .ok_or(DecodeError("divisor out of range"))?;
        let mut previous: Option<i64> = None;
        while pos < bytes.len() {
            let tagged = get_varint(bytes, &mut pos)?;
            let step = tagged >> 1;
            let count = if tagged & 1 == 1 {
                match get_varint(bytes, &mut pos)? {
                    0 | 1 => return Err(DecodeError("count stored without need")),
                    n => n,
                }
            } else {
                1
            };
            let scaled = match previous {
                None => unzigzag(step),
                Some(_) if step == 0 => {
                    return Err(DecodeError("values not strictly increasing"));
                }
                Some(p) => i64::try_from(step).ok().and_then(|s| p.checked_add(s)),
            }
            .ok_or(DecodeError("value out of range"))?;
            let value = scaled
                .checked_mul(divisor)
                .filter(|v| v.unsigned_abs() <= MAX_VALUE as u64)
                .ok_or(DecodeError("value out of range"))?;
            if values.bucketed && snap(value) != value {
                return Err(DecodeError("a bucketed value off its midpoint"));
            }
            values.total = values
                .total
                .checked_add(count)
                .ok_or(DecodeError("counts overflow"))?;
            values.counts.insert(value, count);
            previous = Some(scaled);
        }
        Ok(values)
    }

    /// The values of a histogram an item written before 2026-11-29 holds, bucketed: each
    /// bucket's count at its midpoint times `scale` (the figures such an item gave, within
    /// the histogram's 1 %).
    pub fn from_log_histogram(histogram: &LogHistogram, scale: f64) -> Self {
        let mut values = Self {
            bucketed: true,
            ..Self::default()
        };
        for (midpoint, count) in histogram.buckets() {
            let value = (midpoint * scale).round();
            if value.is_finite() && value.abs() <= MAX_VALUE as f64 {
                *values.counts.entry(snap(value as i64)).or_insert(0) += count;
                values.total += count;
            }
        }
        values
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> Option<i64> {
    Some(((v >> 1) as i64) ^ -((v & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use realty_model::stats::nearest_rank;

    fn of(values: &[i64]) -> ValueCounts {
        let mut v = ValueCounts::default();
        for &x in values {
            v.add(x);
        }
        v
    }

    #[test]
    fn quantiles_are_the_values_themselves() {
        let mut v = of(&[54_990_000, 55_490_000, 29_900_000, 120_000_000, 55_490_000]);
        assert_eq!(v.median(), Some(55_490_000));
        assert_eq!(v.quantile(0.0), Some(29_900_000));
        assert_eq!(v.quantile(1.0), Some(120_000_000));
        v.remove(120_000_000).expect("held");
        // Four values: the lower middle (nearest rank 2).
        assert_eq!(v.median(), Some(54_990_000));
        assert_eq!(v.count(), 4);
        assert_eq!(ValueCounts::default().median(), None);
    }

    #[test]
    fn removing_what_is_not_held_is_reported_and_counts_stay_whole() {
        let mut v = of(&[250_000]);
        assert_eq!(v.remove(900_000), Err(900_000));
        assert_eq!(v.count(), 1);
        assert_eq!(v.remove(250_000), Ok(()));
        assert_eq!(v.remove(250_000), Err(250_000));
        assert_eq!(v, ValueCounts::default());
    }

    #[test]
    fn deviations_of_a_known_set() {
        let v = of(&[90, 95, 100, 105, 110]);
        assert_eq!(v.median_absolute_deviation(), Some(5));
        let v = of(&[50, 100, 100, 200, 400]);
        // ln deviations from ln 100: ln 2, 0, 0, ln 2, ln 4: the median is ln 2.
        let mad = v.log_median_absolute_deviation().expect("a deviation");
        assert!((mad - 2f64.ln()).abs() < 1e-12, "{mad}");
        assert_eq!(of(&[7, 7, 7]).log_median_absolute_deviation(), Some(0.0));
    }

    #[test]
    fn values_outside_a_range_are_counted_once() {
        let v = of(&[1, 5, 5, 10, 20]);
        assert_eq!(v.count_outside(5.0, 10.0), 2);
        assert_eq!(v.count_outside(0.0, 100.0), 0);
        assert_eq!(v.count_outside(f64::NAN, f64::NAN), 0);
    }

    #[test]
    fn whole_dollar_prices_store_in_about_two_bytes() {
        // 1,000 distinct prices $500 apart, in cents.
        let v = of(&(0..1_000)
            .map(|i| 20_000_000 + i * 50_000)
            .collect::<Vec<_>>());
        let bytes = v.encode();
        assert!(bytes.len() < 1_000 * 2 + 8, "{}", bytes.len());
        assert_eq!(ValueCounts::decode(&bytes), Ok(v));
    }

    #[test]
    fn corrupt_encodings_are_refused() {
        for bad in [
            &[0x80][..],
            &[0],       // a divisor of 0
            &[1],       // a divisor of 0, bucketed
            &[2, 0x81], // truncated varint
            &[2, 3, 0], // a count of 0
            &[2, 3, 1], // a count of 1 flagged
            &[2, 2, 0], // a step of 0: values not increasing
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ] {
            assert!(ValueCounts::decode(bad).is_err(), "{bad:?}");
        }
        // Past MAX_VALUE.
        let mut far = Vec::new();
        put_varint(&mut far, 2);
        put_varint(&mut far, zigzag(MAX_VALUE + 1) << 1);
        assert!(ValueCounts::decode(&far).is_err());
        let mut at = Vec::new();
        put_varint(&mut at, 2);
        put_varint(&mut at, zigzag(MAX_VALUE) << 1);
        assert_eq!(ValueCounts::decode(&at), Ok(of(&[MAX_VALUE])));
    }

    #[test]
    fn counts_summing_past_u64_are_refused() {
        let mut bytes = Vec::new();
        put_varint(&mut bytes, 2);
        put_varint(&mut bytes, zigzag(1) << 1 | 1);
        put_varint(&mut bytes, u64::MAX);
        put_varint(&mut bytes, 1 << 1 | 1);
        put_varint(&mut bytes, 2);
        assert!(ValueCounts::decode(&bytes).is_err());
    }

    #[test]
    fn a_legacy_histogram_reads_as_its_midpoints_bucketed() {
        let mut h = LogHistogram::default();
        h.add(55_000_000.0);
        h.add(55_000_000.0);
        let mut v = ValueCounts::from_log_histogram(&h, 1.0);
        let midpoint = h.buckets().next().expect("a bucket").0;
        assert_eq!(
            v.values().collect::<Vec<_>>(),
            [(midpoint.round() as i64, 2)]
        );
        assert!(v.is_bucketed());
        // A listing's own value is removed from its bucket, as the histogram did.
        assert_eq!(v.remove(55_000_000), Ok(()));
        assert_eq!(v.count(), 1);
        assert_eq!(ValueCounts::decode(&v.encode()), Ok(v));
    }

    #[test]
    fn bucketed_values_are_within_one_percent_and_take_exact_removals() {
        let exact = of(&[54_990_000, 55_490_000, 29_900_000, 120_000_000, 55_490_000]);
        let mut bucketed = exact.bucketed();
        let (e, b) = (exact.median().unwrap(), bucketed.median().unwrap());
        assert!((b as f64 / e as f64 - 1.0).abs() < 0.01, "{e} {b}");
        assert_eq!(bucketed.count(), 5);
        assert_eq!(bucketed.remove(29_900_000), Ok(()));
        assert_eq!(bucketed.remove(29_900_000), Err(29_900_000));
        // Merged with exact values, the whole is bucketed.
        let mut all = of(&[1_000_000]);
        all.merge(&bucketed).unwrap();
        assert!(all.is_bucketed());
        assert_eq!(all.count(), 5);
        assert_eq!(all.remove(1_000_000), Ok(()));
        // A bucketed value stored off its midpoint is a corrupt item.
        let mut off = Vec::new();
        put_varint(&mut off, 1 << 1 | 1);
        put_varint(&mut off, zigzag(1_000_001) << 1);
        assert!(ValueCounts::decode(&off).is_err());
    }

    proptest! {
        /// Every quantile against a sort of the values kept after random removals.
        #[test]
        fn every_quantile_is_the_exact_nearest_rank(
            values in prop::collection::vec(-1_000_000i64..1_000_000_000, 1..300),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..100),
            q in 0.0f64..=1.0,
        ) {
            let mut v = of(&values);
            let mut kept = values.clone();
            for index in removed {
                if kept.len() <= 1 { break; }
                let x = kept.remove(index.index(kept.len()));
                prop_assert!(v.remove(x).is_ok());
            }
            let as_f64: Vec<f64> = kept.iter().map(|&x| x as f64).collect();
            prop_assert_eq!(v.quantile(q).map(|x| x as f64), nearest_rank(&as_f64, q));
            prop_assert_eq!(v.count(), kept.len() as u64);
        }

        /// Both deviations against every value's own deviation, sorted.
        #[test]
        fn deviations_match_a_sort_of_every_value(
            values in prop::collection::vec((1i64..60, 1usize..4), 1..200),
        ) {
            let all: Vec<i64> = values.iter()
                .flat_map(|&(step, copies)| std::iter::repeat_n(step * step * 997, copies))
                .collect();
            let v = of(&all);
            let median = v.median().expect("values");
            let median_of = |mut d: Vec<f64>| {
                d.sort_by(f64::total_cmp);
                d[d.len().div_ceil(2) - 1]
            };
            let linear = median_of(all.iter().map(|&x| (x - median).abs() as f64).collect());
            prop_assert_eq!(v.median_absolute_deviation().map(|d| d as f64), Some(linear));
            let log = median_of(
                all.iter().map(|&x| ((x as f64).ln() - (median as f64).ln()).abs()).collect(),
            );
            let got = v.log_median_absolute_deviation().expect("positive values");
            prop_assert!((got - log).abs() < 1e-12, "{} vs {}", got, log);
        }

        #[test]
        fn encoding_round_trips(
            values in prop::collection::vec(-MAX_VALUE..=MAX_VALUE, 0..200),
            scale in prop::sample::select(vec![1i64, 100, 10_000]),
        ) {
            let scaled: Vec<i64> = values.iter().map(|v| v / scale * scale).collect();
            let mut v = of(&scaled);
            v.add(scaled.first().copied().unwrap_or(0));
            prop_assert_eq!(ValueCounts::decode(&v.encode()), Ok(v.clone()));
            let b = v.bucketed();
            prop_assert_eq!(ValueCounts::decode(&b.encode()), Ok(b));
        }

        #[test]
        fn snapping_twice_is_snapping_once(value in -10i64..MAX_VALUE) {
            prop_assert_eq!(snap(snap(value)), snap(value));
            let v = value as f64;
            if value >= BUCKETED_FROM {
                prop_assert!((snap(value) as f64 / v - 1.0).abs() <= 0.0105, "{}", snap(value));
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = ValueCounts::decode(&bytes);
        }
    }
}
