//! Order statistics over samples, the one way the project ranks them: the nearest rank.

/// The value at nearest rank `ceil(q * n)` (1-based; rank 1 for `q` = 0) of the `n` finite
/// `values`, `None` when there are none.
pub fn nearest_rank(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_nearest_ranks() {
        let v = vec![15.0, 20.0, 35.0, 40.0, 50.0];
        assert_eq!(nearest_rank(&v, 0.05), Some(15.0));
        assert_eq!(nearest_rank(&v, 0.3), Some(20.0));
        assert_eq!(nearest_rank(&v, 0.4), Some(20.0));
        assert_eq!(nearest_rank(&v, 0.5), Some(35.0));
        assert_eq!(nearest_rank(&v, 1.0), Some(50.0));
        assert_eq!(nearest_rank(&v, 0.0), Some(15.0));
    }

    #[test]
    fn no_rank_without_finite_values() {
        assert_eq!(nearest_rank(&[], 0.5), None);
        assert_eq!(nearest_rank(&[f64::NAN], 0.5), None);
        assert_eq!(
            nearest_rank(&[f64::NAN, 2.0, f64::INFINITY], 1.0),
            Some(2.0)
        );
    }
}
