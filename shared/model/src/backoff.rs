//! The project's one backoff: exponential, capped, with full jitter (a uniform wait between
//! zero and the attempt's ceiling), so that callers retrying together spread out.

use std::time::Duration;

use rand::Rng;

/// The wait before retry `attempt` (0 for the first retry): uniform in
/// `0 ..= min(first * 2^attempt, max)`. Zero when `first` or `max` is zero.
pub fn full_jitter(first: Duration, max: Duration, attempt: u32) -> Duration {
    let ceiling = first.saturating_mul(1 << attempt.min(16)).min(max);
    if ceiling.is_zero() {
        return Duration::ZERO;
    }
    let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::rng().random_range(0..=micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_under_a_ceiling_that_doubles_up_to_the_cap() {
        let first = Duration::from_millis(10);
        let max = Duration::from_millis(300);
        for attempt in 0..40 {
            let ceiling = (first * 2u32.pow(attempt.min(16))).min(max);
            for _ in 0..50 {
                assert!(full_jitter(first, max, attempt) <= ceiling);
            }
        }
    }

    #[test]
    fn no_wait_without_a_first_delay_or_a_cap() {
        assert_eq!(
            full_jitter(Duration::ZERO, Duration::from_secs(1), 3),
            Duration::ZERO
        );
        assert_eq!(
            full_jitter(Duration::from_secs(1), Duration::ZERO, 3),
            Duration::ZERO
        );
    }
}
