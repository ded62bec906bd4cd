//! Percentiles and means, written out because they are a few lines and the method must be the
//! one the module docs name (an evaluator comparing with R or NumPy needs to know it).

/// The `p`-th quantile (0 ≤ p ≤ 1) of `values` by linear interpolation between closest ranks
/// (Hyndman & Fan type 7, the default of R and NumPy): the median of an even count is the mean of
/// the two middle values. `None` for no values.
pub fn quantile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (values.len() - 1) as f64 * p.clamp(0.0, 1.0);
    let below = rank.floor() as usize;
    let above = rank.ceil() as usize;
    let fraction = rank - below as f64;
    Some(values[below] + (values[above] - values[below]) * fraction)
}

/// `total / count`, or `None` when nothing was counted.
pub fn ratio(total: f64, count: u32) -> Option<f64> {
    (count > 0).then(|| total / f64::from(count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_closest_ranks() {
        let mut values = vec![10.0, 1.0, 4.0, 3.0];
        assert_eq!(quantile(&mut values, 0.5), Some(3.5));
        assert_eq!(quantile(&mut values, 0.75), Some(5.5));
        let p90 = quantile(&mut values, 0.9).expect("values");
        assert!((p90 - 8.2).abs() < 1e-9, "p90 {p90}");
        assert_eq!(quantile(&mut [7.0], 0.9), Some(7.0));
        assert_eq!(quantile(&mut [], 0.5), None);
    }

    #[test]
    fn ratio_of_nothing_is_none() {
        assert_eq!(ratio(6.0, 4), Some(1.5));
        assert_eq!(ratio(6.0, 0), None);
    }
}
