//! `time_warp` (Um et al. 2017): each channel is resampled along a smooth random, always monotone
//! time distortion. A random curve (the not-a-knot spline through `knots + 2` knots ~ N(1, sigma²),
//! as in `magnitude_warp`) is read as a speed; its cumulative sum, scaled to end at T − 1, gives
//! where each original step lands, and the view is the channel interpolated back onto 0..T.
//! Where we differ: the speed is clipped at 0.01 so the distortion is monotone for any sigma
//! (uchidalab warps the positions themselves with a spline, which can fold back for large sigma and
//! then interpolates over non-increasing points). First and last values are kept.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::magnitude_warp::{check_curve_shape, default_knots, default_sigma, random_curves, validate_curve};
use super::params::{param, Drawn, ParamColumn, ParamKind, ParamValue};
use super::resample::interp;
use super::{default_p, OpRng};

/// Smallest speed of the distortion, so that time never stands still or runs backwards.
const MIN_SPEED: f64 = 0.01;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeWarpConfig {
    /// Standard deviation of the speed curve's knots around 1.
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// Interior knots of the speed curve (the two ends are knots too).
    #[serde(default = "default_knots")]
    pub knots: usize,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

pub const COLUMNS: &[ParamColumn] = &[param(
    "time_warp_knots",
    ParamKind::FloatList,
    "time_warp: the speed curve's knot values, knots + 2 per channel, channel after channel",
)];

impl TimeWarpConfig {
    pub fn validate(&self) -> Vec<String> {
        validate_curve(self.sigma, self.knots)
    }

    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        check_curve_shape(self.knots, shape)
    }

    pub fn apply(&self, rng: &mut OpRng, input: &mut [f32], shape: &[usize]) -> Drawn {
        let (channels, length) = (shape[0], shape[1]);
        let (knot_values, speeds) = random_curves(rng, channels, length, self.sigma, self.knots);
        let steps: Vec<f64> = (0..length).map(|t| t as f64).collect();
        for (channel, speed) in input.chunks_mut(length).zip(&speeds) {
            let positions = warped_positions(speed);
            let values: Vec<f64> = channel.iter().map(|&v| v as f64).collect();
            for (out, value) in channel.iter_mut().zip(interp(&steps, &positions, &values)) {
                *out = value as f32;
            }
        }
        vec![("time_warp_knots", ParamValue::FloatList(knot_values.concat()))]
    }
}

/// Where each original step lands: the cumulative sum of the clipped speed, scaled to end at T − 1.
pub fn warped_positions(speed: &[f64]) -> Vec<f64> {
    let mut total = 0.0;
    let mut positions: Vec<f64> = speed
        .iter()
        .map(|&s| {
            total += s.max(MIN_SPEED);
            total
        })
        .collect();
    let scale = (speed.len() - 1) as f64 / total;
    for p in &mut positions {
        *p *= scale;
    }
    positions
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn positions_are_strictly_increasing_and_end_at_the_last_step() {
        let speed = [1.0, -3.0, 0.5, 2.0, 0.0, 1.0];
        let p = warped_positions(&speed);
        assert!(p.windows(2).all(|w| w[1] > w[0]), "{p:?}");
        assert_eq!(*p.last().unwrap(), 5.0);
        // A constant speed of one is the identity (Um et al.'s cumulative sum starts one step in).
        let p = warped_positions(&[1.0; 5]);
        assert_eq!(p, vec![0.8, 1.6, 2.4000000000000004, 3.2, 4.0]);
    }

    #[test]
    fn keeps_shape_and_end_values_and_replays_even_for_a_wild_sigma() {
        let config = TimeWarpConfig { sigma: 2.0, knots: 4, p: 1.0 };
        let original: Vec<f32> = (0..3 * 60).map(|i| ((i * 5 % 13) as f32).sin()).collect();
        for seed in 0..20 {
            let mut x = original.clone();
            config.apply(&mut OpRng::seed_from_u64(seed), &mut x, &[3, 60]);
            for c in 0..3 {
                assert_eq!(x[c * 60], original[c * 60]);
                assert!((x[c * 60 + 59] - original[c * 60 + 59]).abs() < 1e-6);
                // Values stay within the channel's range: interpolation never overshoots.
                let (lo, hi) =
                    original[c * 60..(c + 1) * 60].iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
                assert!(x[c * 60..(c + 1) * 60].iter().all(|&v| v >= lo - 1e-6 && v <= hi + 1e-6));
            }
            let mut again = original.clone();
            config.apply(&mut OpRng::seed_from_u64(seed), &mut again, &[3, 60]);
            assert_eq!(again, x);
        }
    }
}
