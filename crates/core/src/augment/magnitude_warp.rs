//! `magnitude_warp` (Um et al. 2017; uchidalab `magnitude_warp`): each channel is multiplied by
//! its own smooth random curve, the not-a-knot cubic spline through `knots + 2` evenly spaced knots
//! (both ends included) whose values are drawn from N(1, sigma²). The knot values are stored in
//! the `magnitude_warp_knots` column, channel after channel.

use rand_distr::{Distribution, Normal};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::params::{param, Drawn, ParamColumn, ParamKind, ParamValue};
use super::resample::linspace;
use super::spline::CubicSpline;
use super::{default_p, OpRng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MagnitudeWarpConfig {
    /// Standard deviation of the knot values around 1.
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// Interior knots of the curve (the two ends are knots too).
    #[serde(default = "default_knots")]
    pub knots: usize,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

pub(crate) fn default_sigma() -> f64 {
    0.2
}
pub(crate) fn default_knots() -> usize {
    4
}

const MAX_CURVE_SIGMA: f64 = 1000.0;

/// Checks shared by the spline-driven warps.
pub(crate) fn validate_curve(sigma: f64, knots: usize) -> Vec<String> {
    let mut problems = Vec::new();
    // Knot values are N(1, sigma²); past MAX_CURVE_SIGMA their spline sums overflow to NaN.
    if !(sigma > 0.0 && sigma <= MAX_CURVE_SIGMA) {
        problems.push(format!("sigma must be in (0, {MAX_CURVE_SIGMA}], got {sigma}"));
    }
    if !(2..=64).contains(&knots) {
        problems.push(format!("knots must be in 2..=64, got {knots}"));
    }
    problems
}

/// Shape check shared by the spline-driven warps: a series with room for every knot.
pub(crate) fn check_curve_shape(knots: usize, shape: &[usize]) -> Result<(), String> {
    match shape {
        [_, length] if *length >= knots + 2 => Ok(()),
        [_, length] => Err(format!("{knots} knots need a series of at least {} steps, got {length}", knots + 2)),
        _ => Err(format!("needs series (channels × time), got shape {shape:?}")),
    }
}

/// One smooth random curve per channel, evaluated at every step: knot values ~ N(1, sigma²).
pub(crate) fn random_curves(
    rng: &mut OpRng,
    channels: usize,
    length: usize,
    sigma: f64,
    knots: usize,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let knot_steps = linspace(0.0, (length - 1) as f64, knots + 2);
    let normal = Normal::new(1.0, sigma).expect("sigma validated");
    let mut values = Vec::with_capacity(channels);
    let mut curves = Vec::with_capacity(channels);
    for _ in 0..channels {
        let knot_values: Vec<f64> = (0..knots + 2).map(|_| normal.sample(rng)).collect();
        let spline = CubicSpline::not_a_knot(&knot_steps, &knot_values);
        curves.push((0..length).map(|t| spline.eval(t as f64)).collect());
        values.push(knot_values);
    }
    (values, curves)
}

pub const COLUMNS: &[ParamColumn] = &[param(
    "magnitude_warp_knots",
    ParamKind::FloatList,
    "magnitude_warp: the knot values, knots + 2 per channel, channel after channel",
)];

impl MagnitudeWarpConfig {
    pub fn validate(&self) -> Vec<String> {
        validate_curve(self.sigma, self.knots)
    }

    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        check_curve_shape(self.knots, shape)
    }

    pub fn apply(&self, rng: &mut OpRng, input: &mut [f32], shape: &[usize]) -> Drawn {
        let (channels, length) = (shape[0], shape[1]);
        let (knot_values, curves) = random_curves(rng, channels, length, self.sigma, self.knots);
        for (channel, curve) in input.chunks_mut(length).zip(&curves) {
            for (value, factor) in channel.iter_mut().zip(curve) {
                *value = (*value as f64 * factor) as f32;
            }
        }
        vec![("magnitude_warp_knots", ParamValue::FloatList(knot_values.concat()))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn multiplies_by_the_spline_through_the_stored_knots() {
        let config = MagnitudeWarpConfig { sigma: 0.2, knots: 4, p: 1.0 };
        let original: Vec<f32> = (0..2 * 40).map(|i| 1.0 + (i % 7) as f32).collect();
        let mut x = original.clone();
        let params = config.apply(&mut OpRng::seed_from_u64(9), &mut x, &[2, 40]);
        let flat = crate::augment::params::find(&params, "magnitude_warp_knots").unwrap().as_floats().unwrap();
        let knot_values: Vec<&[f64]> = flat.chunks(6).collect();
        assert_eq!(knot_values.len(), 2);
        let steps = linspace(0.0, 39.0, 6);
        for c in 0..2 {
            let spline = CubicSpline::not_a_knot(&steps, knot_values[c]);
            for t in 0..40 {
                assert_eq!(x[c * 40 + t], (original[c * 40 + t] as f64 * spline.eval(t as f64)) as f32);
            }
            // At the ends the factor is the drawn end knot.
            assert!(((x[c * 40] / original[c * 40]) as f64 - knot_values[c][0]).abs() < 1e-6);
        }
        let mut again = original.clone();
        config.apply(&mut OpRng::seed_from_u64(9), &mut again, &[2, 40]);
        assert_eq!(again, x);
    }

    #[test]
    fn validates_its_settings() {
        assert_eq!(MagnitudeWarpConfig { sigma: 0.0, knots: 1, p: 1.0 }.validate().len(), 2);
        assert!(MagnitudeWarpConfig { sigma: 0.2, knots: 4, p: 1.0 }.check_shape(&[1, 5]).is_err());
    }
}
