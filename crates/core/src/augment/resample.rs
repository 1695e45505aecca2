//! Linear resampling helpers with numpy's semantics, shared by the window ops: `linspace` as
//! `np.linspace(start, stop, num)` and `interp` as `np.interp` (values outside the sample points
//! clamp to the first or last value).

/// `num` evenly spaced points from `start` to `stop`, both included.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (num - 1) as f64;
            (0..num).map(|i| if i + 1 == num { stop } else { start + step * i as f64 }).collect()
        }
    }
}

/// Piecewise-linear interpolation of the points `(xp[i], fp[i])` (xp increasing) at each `x`.
pub fn interp(x: &[f64], xp: &[f64], fp: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|&v| {
            if v <= xp[0] {
                return fp[0];
            }
            let last = xp.len() - 1;
            if v >= xp[last] {
                return fp[last];
            }
            // The segment [xp[j], xp[j+1]] that holds v (the first one for a NaN v, which stays NaN).
            let j = xp.partition_point(|&p| p <= v).saturating_sub(1);
            let t = (v - xp[j]) / (xp[j + 1] - xp[j]);
            fp[j] + t * (fp[j + 1] - fp[j])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_includes_both_ends() {
        assert_eq!(linspace(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(linspace(2.0, 3.0, 1), vec![2.0]);
    }

    #[test]
    fn interp_is_linear_inside_and_clamps_outside() {
        let xp = [0.0, 1.0, 3.0];
        let fp = [10.0, 20.0, 0.0];
        assert_eq!(
            interp(&[-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 9.0], &xp, &fp),
            vec![10.0, 10.0, 15.0, 20.0, 10.0, 0.0, 0.0]
        );
    }
}
