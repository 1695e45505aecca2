//! Cubic splines with "not-a-knot" end conditions, as scipy's `CubicSpline` computes them by
//! default (the smooth random curves of `magnitude_warp` and `time_warp`). The knots are few, so
//! the system for the second derivatives is solved directly.

/// A cubic spline through `(x[i], y[i])`, `x` strictly increasing, at least 4 knots.
#[derive(Debug, Clone)]
pub struct CubicSpline {
    x: Vec<f64>,
    y: Vec<f64>,
    /// Second derivatives at the knots.
    m: Vec<f64>,
}

impl CubicSpline {
    pub fn not_a_knot(x: &[f64], y: &[f64]) -> CubicSpline {
        let n = x.len();
        assert!(n >= 4 && y.len() == n, "a not-a-knot spline needs at least 4 knots");
        let h: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
        let mut a = vec![vec![0.0; n]; n];
        let mut b = vec![0.0; n];
        // Third derivative continuous at the second and the second-to-last knot.
        a[0][0] = -1.0 / h[0];
        a[0][1] = 1.0 / h[0] + 1.0 / h[1];
        a[0][2] = -1.0 / h[1];
        a[n - 1][n - 3] = -1.0 / h[n - 3];
        a[n - 1][n - 2] = 1.0 / h[n - 3] + 1.0 / h[n - 2];
        a[n - 1][n - 1] = -1.0 / h[n - 2];
        // Second derivative continuous at the interior knots.
        for i in 1..n - 1 {
            a[i][i - 1] = h[i - 1];
            a[i][i] = 2.0 * (h[i - 1] + h[i]);
            a[i][i + 1] = h[i];
            b[i] = 6.0 * ((y[i + 1] - y[i]) / h[i] - (y[i] - y[i - 1]) / h[i - 1]);
        }
        CubicSpline { x: x.to_vec(), y: y.to_vec(), m: solve(a, b) }
    }

    /// The spline's value at `t` (extrapolating with the end pieces, as scipy does).
    pub fn eval(&self, t: f64) -> f64 {
        let last = self.x.len() - 2;
        let j = self.x.partition_point(|&k| k <= t).saturating_sub(1).min(last);
        let (x0, x1) = (self.x[j], self.x[j + 1]);
        let h = x1 - x0;
        let (m0, m1) = (self.m[j], self.m[j + 1]);
        m0 * (x1 - t).powi(3) / (6.0 * h)
            + m1 * (t - x0).powi(3) / (6.0 * h)
            + (self.y[j] / h - m0 * h / 6.0) * (x1 - t)
            + (self.y[j + 1] / h - m1 * h / 6.0) * (t - x0)
    }
}

/// Gaussian elimination with partial pivoting for a small dense system.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).expect("rows");
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col].clone();
        for row in col + 1..n {
            let factor = a[row][col] / pivot_row[col];
            for (value, pivot_value) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *value -= factor * pivot_value;
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let sum: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - sum) / a[row][row];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_a_cubic_exactly() {
        // Not-a-knot splines are exact on cubic data (scipy's CubicSpline is too).
        let f = |t: f64| 0.5 * t.powi(3) - 2.0 * t * t + t - 3.0;
        let x = [0.0, 1.5, 2.0, 4.0, 7.0, 8.0];
        let y: Vec<f64> = x.iter().map(|&t| f(t)).collect();
        let spline = CubicSpline::not_a_knot(&x, &y);
        for i in 0..=80 {
            let t = i as f64 * 0.1;
            assert!((spline.eval(t) - f(t)).abs() < 1e-9, "t = {t}: {} vs {}", spline.eval(t), f(t));
        }
    }

    #[test]
    fn passes_through_its_knots() {
        let x = [0.0, 1.0, 2.0, 3.0, 4.0];
        let y = [1.0, 0.7, 1.3, 0.9, 1.1];
        let spline = CubicSpline::not_a_knot(&x, &y);
        for (t, v) in x.iter().zip(y) {
            assert!((spline.eval(*t) - v).abs() < 1e-12);
        }
    }
}
