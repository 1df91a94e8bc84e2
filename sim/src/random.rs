//! Stable hashing and the few distributions the simulation draws from.
//!
//! Everything here is a pure function of its inputs so that a seed reproduces a run: the
//! hashes are FNV-1a and SplitMix64 (std's `DefaultHasher` is not promised to stay the
//! same across Rust releases) and the samplers only consume a seeded [`ChaCha8Rng`].

use std::hash::Hasher as _;

use fnv::FnvHasher;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SplitMix64's finaliser: a cheap bijective mix with good avalanche.
pub(crate) const fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Combines several words into one well-mixed hash.
pub(crate) fn hash_words(words: &[u64]) -> u64 {
    words
        .iter()
        .fold(0x243F_6A88_85A3_08D3, |acc, &w| mix64(acc ^ mix64(w)))
}

/// FNV-1a over bytes, then mixed: stable across runs, platforms and Rust versions.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut fnv = FnvHasher::default();
    fnv.write(bytes);
    mix64(fnv.finish())
}

/// A hash as a uniform number in `[0, 1)`.
pub(crate) fn unit_interval(hash: u64) -> f64 {
    // The top 53 bits fill an f64 mantissa exactly.
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// A generator for one independent stream of draws, named by words.
pub(crate) fn stream(words: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(hash_words(words))
}

/// A standard normal draw (Box-Muller; one of the pair is discarded to keep the stream
/// position independent of earlier calls).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // 1 - u keeps the logarithm away from zero.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A log-normal draw with the given median and log-scale spread.
pub(crate) fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// A Poisson count with mean `lambda`. Knuth's product method, in chunks of at most 30 so
/// `exp(-lambda)` never underflows; a sum of Poisson counts is a Poisson count.
pub(crate) fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    if !lambda.is_finite() || lambda <= 0.0 {
        return 0;
    }
    let mut remaining = lambda;
    let mut total = 0u32;
    while remaining > 0.0 {
        let chunk = remaining.min(30.0);
        remaining -= chunk;
        let limit = (-chunk).exp();
        let mut product: f64 = rng.random::<f64>();
        while product > limit {
            total = total.saturating_add(1);
            product *= rng.random::<f64>();
        }
    }
    total
}

/// Index of a weighted choice; `weights` must not all be zero.
pub(crate) fn weighted_index(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut target = rng.random::<f64>() * total;
    for (index, &weight) in weights.iter().enumerate() {
        if target < weight {
            return index;
        }
        target -= weight;
    }
    weights.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_spread() {
        // Pinned values: a change here changes every simulated market.
        assert_eq!(hash_bytes(b""), mix64(0xCBF2_9CE4_8422_2325));
        assert_ne!(hash_words(&[1, 2]), hash_words(&[2, 1]));
        assert_ne!(hash_bytes(b"page=1"), hash_bytes(b"page=2"));
        let u = unit_interval(u64::MAX);
        assert!((0.0..1.0).contains(&u));
    }

    /// Published FNV-1a 64 test vectors: the `fnv` crate computes what the hand-written
    /// loop it replaced did, so every seeded market stays the same.
    #[test]
    fn hash_bytes_is_fnv1a_then_mixed() {
        assert_eq!(hash_bytes(b"a"), mix64(0xAF63_DC4C_8601_EC8C));
        assert_eq!(hash_bytes(b"foobar"), mix64(0x8594_4171_F739_67E8));
    }

    #[test]
    fn poisson_mean_matches_lambda_small_and_large() {
        for lambda in [0.3f64, 4.0, 75.0] {
            let mut rng = stream(&[7, lambda.to_bits()]);
            let n = 20_000;
            let sum: u64 = (0..n).map(|_| u64::from(poisson(&mut rng, lambda))).sum();
            let mean = sum as f64 / f64::from(n);
            assert!(
                (mean - lambda).abs() < lambda.sqrt() * 0.05 + 0.02,
                "lambda {lambda}: mean {mean}"
            );
        }
        let mut rng = stream(&[1]);
        assert_eq!(poisson(&mut rng, 0.0), 0);
        assert_eq!(poisson(&mut rng, f64::NAN), 0);
    }

    #[test]
    fn normal_has_unit_spread() {
        let mut rng = stream(&[3]);
        let draws: Vec<f64> = (0..20_000).map(|_| normal(&mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }

    #[test]
    fn weighted_index_follows_weights() {
        let mut rng = stream(&[9]);
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            counts[weighted_index(&mut rng, &[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((7_000..8_000).contains(&counts[2]), "{counts:?}");
    }
}
