//! Histograms that support both adding and removing values, so a market's quantiles follow
//! its active listings incrementally, in items of bounded size.
//!
//! [`LogHistogram`]: logarithmic buckets of constant ratio [`LOG_BUCKET_RATIO`] (2 %).
//! Every value in a bucket is within `sqrt(1.02) - 1` (< 1 %) of the bucket's geometric
//! midpoint, which is what quantiles report: any quantile is within 1 % relative error of
//! the exact order statistic, whatever the number of values.
//!
//! [`DayHistogram`]: one bucket per day (exact), for dates such as the on-market date,
//! turned into days on market at read time, so the stored value does not drift with time.
//!
//! Both encode to a compact binary form (delta-coded varints: about 2-4 bytes per occupied
//! bucket), which keeps a market item a few KB and its DynamoDB writes cheap.

use realty_model::varint::{DecodeError, get_varint, put_varint};
use std::sync::LazyLock;

/// Ratio between consecutive bucket edges of a [`LogHistogram`].
pub const LOG_BUCKET_RATIO: f64 = 1.02;

/// Largest relative error of a [`LogHistogram`] quantile against the exact value.
pub const LOG_QUANTILE_MAX_RELATIVE_ERROR: f64 = 0.009_951; // sqrt(1.02) - 1 = 0.0099505, rounded up

/// Sparse counts per bucket index: the occupied buckets in increasing order, none empty. A
/// sorted vector rather than a map: a market item holds a dozen histograms of a few hundred
/// buckets each, copied and dropped whole with every batch that reads and writes it, which is
/// one allocation each this way and one per tree node in a map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Buckets {
    counts: Vec<(i32, u64)>,
    total: u64,
}

impl Buckets {
    fn add(&mut self, bucket: i32, n: u64) {
        match self.counts.binary_search_by_key(&bucket, |&(b, _)| b) {
            Ok(i) => self.counts[i].1 += n,
            Err(i) if n > 0 => self.counts.insert(i, (bucket, n)),
            Err(_) => {}
        }
        self.total += n;
    }

    /// Removes `n` values from `bucket`. The callers only remove values they added, so
    /// removing more than the bucket holds means the histogram has drifted from its listings:
    /// it takes what is there (counts never go negative) and returns `false` so the caller
    /// reports it, with its market and bucket, rather than hiding it.
    #[must_use = "an underflow means the figures drifted: report it"]
    fn remove(&mut self, bucket: i32, n: u64) -> bool {
        let Ok(i) = self.counts.binary_search_by_key(&bucket, |&(b, _)| b) else {
            return n == 0;
        };
        let count = &mut self.counts[i].1;
        let taken = n.min(*count);
        *count -= taken;
        self.total -= taken;
        if *count == 0 {
            self.counts.remove(i);
        }
        taken == n
    }

    /// Bucket of the value at nearest rank `ceil(q * total)` (1-based), `None` if empty.
    fn quantile_bucket(&self, q: f64) -> Option<i32> {
        self.quantile_index(q).map(|i| self.counts[i].0)
    }

    /// Index in `counts` of [`Self::quantile_bucket`]'s bucket.
    fn quantile_index(&self, q: f64) -> Option<usize> {
        if self.total == 0 || self.counts.is_empty() {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &(_, count)) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(i);
            }
        }
        Some(self.counts.len() - 1)
    }

    /// The median (nearest rank) of `deviation` over the values, where `deviation` of the
    /// bucket at `center` is the least and grows with the distance from it on either side
    /// (a distance from the center's value, or from its logarithm). The buckets above the
    /// center are then in order of deviation going up, those below it going down: merging
    /// the two runs walks every value in order of deviation, with no copy and no sort.
    fn median_deviation(&self, center: usize, deviation: impl Fn(i32) -> f64) -> Option<f64> {
        let counts = &self.counts;
        let rank = self.total.div_ceil(2).max(1);
        let at = |i: usize| counts.get(i).map(|&(b, c)| (deviation(b), c));
        // `below` is the next bucket down (one past it, so 0 is "none left").
        let (mut below, mut above) = (center, center);
        let mut next_below = below.checked_sub(1).and_then(at);
        let mut next_above = at(above);
        let mut seen = 0;
        loop {
            let (d, count) = match (next_below, next_above) {
                (Some(low), Some(high)) if low.0 < high.0 => {
                    below -= 1;
                    next_below = below.checked_sub(1).and_then(at);
                    low
                }
                (_, Some(high)) => {
                    above += 1;
                    next_above = at(above);
                    high
                }
                (Some(low), None) => {
                    below -= 1;
                    next_below = below.checked_sub(1).and_then(at);
                    low
                }
                (None, None) => return None,
            };
            seen += count;
            if seen >= rank {
                return Some(d);
            }
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.counts.len() * 3 + 2);
        let mut previous: Option<i32> = None;
        for &(bucket, count) in &self.counts {
            match previous {
                // First bucket: zig-zag, it may be negative.
                None => put_varint(&mut out, zigzag(bucket)),
                Some(p) => put_varint(&mut out, (bucket - p) as u64),
            }
            put_varint(&mut out, count);
            previous = Some(bucket);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut buckets = Self::default();
        let mut pos = 0;
        let mut previous: Option<i32> = None;
        while pos < bytes.len() {
            let raw = get_varint(bytes, &mut pos)?;
            let bucket = match previous {
                None => unzigzag(raw)?,
                Some(p) => {
                    let step =
                        i32::try_from(raw).map_err(|_| DecodeError("bucket step out of range"))?;
                    if step == 0 {
                        return Err(DecodeError("buckets not strictly increasing"));
                    }
                    p.checked_add(step)
                        .ok_or(DecodeError("bucket out of range"))?
                }
            };
            let count = get_varint(bytes, &mut pos)?;
            if count == 0 {
                return Err(DecodeError("empty bucket stored"));
            }
            // No real histogram holds 2^64 values: a sum past it is a corrupt item.
            if buckets.total.checked_add(count).is_none() {
                return Err(DecodeError("counts overflow"));
            }
            buckets.add(bucket, count);
            previous = Some(bucket);
        }
        Ok(buckets)
    }
}

fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn unzigzag(v: u64) -> Result<i32, DecodeError> {
    let v = u32::try_from(v).map_err(|_| DecodeError("first bucket out of range"))?;
    Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
}

/// Histogram of positive values in logarithmic buckets (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogHistogram(Buckets);

/// The geometric midpoint of a bucket.
fn midpoint(bucket: i32) -> f64 {
    LOG_BUCKET_RATIO.powf(f64::from(bucket) + 0.5)
}

/// Buckets whose midpoints (and their logarithms) are computed once, into [`MIDPOINTS`]: values
/// from 1 to about 4e17, every amount in minor units and area among them. A market's figures
/// walk its buckets' midpoints several times a batch (the deviations from the median), and a
/// `powf` is about a hundred instructions where a table read is a few; outside the range the
/// midpoint is computed as before, so both give the same bits.
const TABLED_BUCKETS: usize = 2048;

struct Midpoints {
    value: Vec<f64>,
    ln: Vec<f64>,
}

static MIDPOINTS: LazyLock<Midpoints> = LazyLock::new(|| {
    let value: Vec<f64> = (0..TABLED_BUCKETS as i32).map(midpoint).collect();
    let ln = value.iter().map(|v| v.ln()).collect();
    Midpoints { value, ln }
});

impl LogHistogram {
    /// The bucket of a positive, finite value; `None` for anything else.
    pub fn bucket_of(value: f64) -> Option<i32> {
        (value.is_finite() && value > 0.0)
            .then(|| (value.ln() / LOG_BUCKET_RATIO.ln()).floor() as i32)
    }

    /// The value a bucket stands for: its geometric midpoint.
    pub fn bucket_value(bucket: i32) -> f64 {
        Self::tabled(bucket, |m| &m.value).unwrap_or_else(|| midpoint(bucket))
    }

    /// The natural logarithm of [`Self::bucket_value`], as `bucket_value(bucket).ln()` gives it.
    fn bucket_value_ln(bucket: i32) -> f64 {
        Self::tabled(bucket, |m| &m.ln).unwrap_or_else(|| midpoint(bucket).ln())
    }

    fn tabled(bucket: i32, column: impl Fn(&Midpoints) -> &[f64]) -> Option<f64> {
        let index = usize::try_from(bucket).ok()?;
        column(&MIDPOINTS).get(index).copied()
    }

    pub fn add(&mut self, value: f64) {
        if let Some(b) = Self::bucket_of(value) {
            self.0.add(b, 1);
        }
    }

    /// Removes one value; `Err(bucket)` when the bucket did not hold it (an underflow: the
    /// histogram had drifted from its listings).
    pub fn remove(&mut self, value: f64) -> Result<(), i32> {
        match Self::bucket_of(value) {
            Some(b) if !self.0.remove(b, 1) => Err(b),
            _ => Ok(()),
        }
    }

    pub fn count(&self) -> u64 {
        self.0.total
    }

    /// The value at nearest rank `ceil(q * n)`, within [`LOG_QUANTILE_MAX_RELATIVE_ERROR`].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile_bucket(q).map(Self::bucket_value)
    }

    pub fn median(&self) -> Option<f64> {
        self.quantile(0.5)
    }

    /// Median absolute deviation from the median, within about 2 % (both the median and
    /// the deviations come from bucket midpoints).
    pub fn median_absolute_deviation(&self) -> Option<f64> {
        let center = self.0.quantile_index(0.5)?;
        let median = Self::bucket_value(self.0.counts[center].0);
        let deviation = self
            .0
            .median_deviation(center, |b| (Self::bucket_value(b) - median).abs())?;
        // Reported as a bucket's midpoint too; a deviation of 0 has no bucket.
        Some(Self::bucket_of(deviation).map_or(0.0, Self::bucket_value))
    }

    /// The median absolute deviation of the values' natural logarithms from the log of the
    /// median (prices are skewed: on a log scale a spread is a ratio, and bounds built from it
    /// never fall below zero). Exact over the buckets (a few hundred at most).
    pub fn log_median_absolute_deviation(&self) -> Option<f64> {
        let center = self.0.quantile_index(0.5)?;
        let median = Self::bucket_value_ln(self.0.counts[center].0);
        self.0
            .median_deviation(center, |b| (Self::bucket_value_ln(b) - median).abs())
    }

    /// `(bucket value, count)` in increasing order, for charts.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.0
            .counts
            .iter()
            .map(|&(b, c)| (Self::bucket_value(b), c))
    }

    pub fn encode(&self) -> Vec<u8> {
        self.0.encode()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Buckets::decode(bytes).map(Self)
    }

    /// This histogram less the values of `part`; `None` when `part` holds a value this one
    /// does not (the two have drifted apart).
    pub fn without(&self, part: &Self) -> Option<Self> {
        let mut rest = self.clone();
        part.0
            .counts
            .iter()
            .all(|&(bucket, count)| rest.0.remove(bucket, count))
            .then_some(rest)
    }

    /// Adds the values of `other` (stored histograms: a total past 2^64 is a corrupt item).
    pub fn merge(&mut self, other: &Self) -> Result<(), DecodeError> {
        if self.0.total.checked_add(other.0.total).is_none() {
            return Err(DecodeError("counts overflow"));
        }
        for &(bucket, count) in &other.0.counts {
            self.0.add(bucket, count);
        }
        Ok(())
    }
}

/// Histogram of days (days since 1970-01-01), one exact bucket per day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayHistogram(Buckets);

impl DayHistogram {
    pub fn add(&mut self, day: i32) {
        self.0.add(day, 1);
    }

    /// Removes one day; `Err(day)` when it was not there (an underflow).
    pub fn remove(&mut self, day: i32) -> Result<(), i32> {
        if self.0.remove(day, 1) {
            Ok(())
        } else {
            Err(day)
        }
    }

    pub fn count(&self) -> u64 {
        self.0.total
    }

    /// The day at nearest rank `ceil(q * n)`, exactly.
    pub fn quantile(&self, q: f64) -> Option<i32> {
        self.0.quantile_bucket(q)
    }

    pub fn encode(&self) -> Vec<u8> {
        self.0.encode()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Buckets::decode(bytes).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_stored_histograms_refuses_a_total_past_u64() {
        // One bucket holding 2^63 values: a stored histogram can carry that count.
        let mut bytes = Vec::new();
        put_varint(&mut bytes, 2); // bucket 1, zig-zag
        put_varint(&mut bytes, 1 << 63);
        let half = LogHistogram::decode(&bytes).expect("at the limit of one histogram");
        let mut sum = half.clone();
        let mut almost = Vec::new();
        put_varint(&mut almost, 2);
        put_varint(&mut almost, (1 << 63) - 1);
        sum.merge(&LogHistogram::decode(&almost).unwrap())
            .expect("a total of 2^64 - 1 still fits");
        let mut past = half.clone();
        assert!(past.merge(&half).is_err(), "2^64 values are a corrupt item");
    }
    use proptest::prelude::*;
    use realty_model::stats::nearest_rank;

    #[test]
    fn quantiles_of_a_known_set() {
        let mut h = LogHistogram::default();
        for v in [100_000.0, 200_000.0, 300_000.0, 400_000.0, 10_000_000.0] {
            h.add(v);
        }
        let median = h.median().unwrap();
        assert!(
            (median / 300_000.0 - 1.0).abs() <= LOG_QUANTILE_MAX_RELATIVE_ERROR,
            "{median}"
        );
        h.remove(10_000_000.0).unwrap();
        h.remove(100_000.0).unwrap();
        let median = h.median().unwrap();
        assert!(
            (median / 300_000.0 - 1.0).abs() <= LOG_QUANTILE_MAX_RELATIVE_ERROR,
            "{median}"
        );
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn tabled_midpoints_are_the_computed_ones_bit_for_bit() {
        for bucket in -3 * TABLED_BUCKETS as i32..3 * TABLED_BUCKETS as i32 {
            let computed = LOG_BUCKET_RATIO.powf(f64::from(bucket) + 0.5);
            assert_eq!(
                LogHistogram::bucket_value(bucket).to_bits(),
                computed.to_bits(),
                "{bucket}"
            );
            assert_eq!(
                LogHistogram::bucket_value_ln(bucket).to_bits(),
                computed.ln().to_bits(),
                "{bucket}"
            );
        }
    }

    #[test]
    fn ignores_values_that_are_not_positive_and_finite() {
        let mut h = LogHistogram::default();
        for v in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            h.add(v);
        }
        assert_eq!(h.count(), 0);
        assert_eq!(h.median(), None);
    }

    #[test]
    fn rejects_corrupt_encodings() {
        assert!(LogHistogram::decode(&[0x80]).is_err());
        assert!(LogHistogram::decode(&[2, 0]).is_err(), "zero count");
        assert!(
            LogHistogram::decode(&[2, 1, 0, 1]).is_err(),
            "repeated bucket"
        );
    }

    #[test]
    fn day_histogram_is_exact() {
        let mut h = DayHistogram::default();
        for d in [19_000, 19_010, 19_020, 19_030] {
            h.add(d);
        }
        assert_eq!(h.quantile(0.5), Some(19_010));
        h.remove(19_000).unwrap();
        assert_eq!(h.quantile(0.5), Some(19_020));
    }

    #[test]
    fn removing_what_is_not_there_is_reported_and_counts_stay_whole() {
        let mut h = LogHistogram::default();
        h.add(250_000.0);
        let bucket = LogHistogram::bucket_of(900_000.0).unwrap();
        assert_eq!(h.remove(900_000.0), Err(bucket));
        assert_eq!(h.count(), 1);
        assert_eq!(h.remove(250_000.0), Ok(()));
        assert_eq!(
            h.remove(250_000.0),
            Err(LogHistogram::bucket_of(250_000.0).unwrap())
        );
        assert_eq!(h.count(), 0);
        let mut d = DayHistogram::default();
        assert_eq!(d.remove(19_000), Err(19_000));
        assert_eq!(d.count(), 0);
    }

    #[test]
    fn log_median_absolute_deviation_of_a_known_set() {
        let mut h = LogHistogram::default();
        for v in [50.0, 100.0, 100.0, 200.0, 400.0] {
            h.add(v);
        }
        // ln deviations from ln 100: ln 2, 0, 0, ln 2, ln 4: the median is ln 2.
        let mad = h.log_median_absolute_deviation().unwrap();
        assert!((mad / 2f64.ln() - 1.0).abs() < 0.02, "{mad}");
    }

    #[test]
    fn median_absolute_deviation_of_a_known_set() {
        let mut h = LogHistogram::default();
        for v in [90.0, 95.0, 100.0, 105.0, 110.0] {
            h.add(v);
        }
        let mad = h.median_absolute_deviation().unwrap();
        assert!((mad / 5.0 - 1.0).abs() < 0.25, "{mad}");
    }

    proptest! {
        #[test]
        fn every_quantile_is_within_the_stated_bound(
            values in prop::collection::vec(1.0f64..1e9, 1..400),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..100),
            q in 0.0f64..=1.0,
        ) {
            let mut h = LogHistogram::default();
            for &v in &values { h.add(v); }
            let mut kept = values.clone();
            for index in removed {
                if kept.len() <= 1 { break; }
                let v = kept.remove(index.index(kept.len()));
                prop_assert!(h.remove(v).is_ok());
            }
            let exact = nearest_rank(&kept, q).unwrap();
            let estimate = h.quantile(q).unwrap();
            prop_assert!((estimate / exact - 1.0).abs() <= LOG_QUANTILE_MAX_RELATIVE_ERROR,
                "q={q} exact={exact} estimate={estimate}");
            prop_assert_eq!(h.count(), kept.len() as u64);
        }

        #[test]
        fn encoding_round_trips(values in prop::collection::vec(1e-3f64..1e12, 0..300), days in prop::collection::vec(-30_000i32..60_000, 0..300)) {
            let mut h = LogHistogram::default();
            for &v in &values { h.add(v); }
            prop_assert_eq!(LogHistogram::decode(&h.encode()).unwrap(), h);
            let mut d = DayHistogram::default();
            for &v in &days { d.add(v); }
            prop_assert_eq!(DayHistogram::decode(&d.encode()).unwrap(), d);
        }

        /// Both deviations against every value's own deviation, sorted (the merge of the
        /// two runs either side of the median must walk them in that order), with values
        /// piled on few buckets so ties, a zero deviation and one-sided spreads occur.
        #[test]
        fn median_deviations_match_a_sort_of_every_value(
            values in prop::collection::vec((1u32..60, 1u32..4), 1..200),
        ) {
            let mut h = LogHistogram::default();
            let mut midpoints = Vec::new();
            for &(step, copies) in &values {
                let v = 1_000.0 * LOG_BUCKET_RATIO.powi(step as i32 * 3);
                for _ in 0..copies {
                    h.add(v);
                    midpoints.push(LogHistogram::bucket_value(LogHistogram::bucket_of(v).unwrap()));
                }
            }
            midpoints.sort_by(f64::total_cmp);
            let median = nearest_rank(&midpoints, 0.5).unwrap();
            let sorted_median_of = |f: &dyn Fn(f64) -> f64| {
                let mut d: Vec<f64> = midpoints.iter().map(|&v| f(v)).collect();
                d.sort_by(f64::total_cmp);
                d[d.len().div_ceil(2) - 1]
            };
            let log = sorted_median_of(&|v: f64| (v.ln() - median.ln()).abs());
            prop_assert_eq!(h.log_median_absolute_deviation(), Some(log));
            let linear = sorted_median_of(&|v: f64| (v - median).abs());
            let bucketed = LogHistogram::bucket_of(linear).map_or(0.0, LogHistogram::bucket_value);
            prop_assert_eq!(h.median_absolute_deviation(), Some(bucketed));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = LogHistogram::decode(&bytes);
        }
    }

    /// Found by the property test on a clean clone: counts summing past `u64::MAX`.
    #[test]
    fn counts_summing_past_u64_are_refused() {
        let bytes = [
            0, 1, 1, 1, 1, 1, 1, 128, 128, 128, 128, 128, 128, 128, 128, 128, 35, 1, 1, 1, 1, 1,
            128, 128, 128, 128, 128, 128, 128, 128, 128, 29,
        ];
        assert!(LogHistogram::decode(&bytes).is_err());
    }

    proptest! {
        /// The sorted buckets against a map of the same adds and removes: the same counts,
        /// every bucket occupied and in order, and the encoding read back whole.
        #[test]
        fn buckets_follow_a_map_of_the_same_changes(
            changes in prop::collection::vec((-40i32..40, 0u64..4, any::<bool>()), 0..300),
        ) {
            let mut buckets = Buckets::default();
            let mut model = std::collections::BTreeMap::<i32, u64>::new();
            for (bucket, n, is_add) in changes {
                if is_add {
                    buckets.add(bucket, n);
                    if n > 0 { *model.entry(bucket).or_insert(0) += n; }
                } else {
                    let held = model.get(&bucket).copied().unwrap_or(0);
                    prop_assert_eq!(buckets.remove(bucket, n), n <= held);
                    let left = held.saturating_sub(n);
                    if left == 0 { model.remove(&bucket); } else { model.insert(bucket, left); }
                }
            }
            let expected: Vec<(i32, u64)> = model.into_iter().collect();
            prop_assert_eq!(&buckets.counts, &expected);
            prop_assert_eq!(buckets.total, expected.iter().map(|&(_, c)| c).sum::<u64>());
            prop_assert_eq!(Buckets::decode(&buckets.encode()), Ok(buckets));
        }
    }
}
