//! `window_warp` (Le Guennec et al. 2016; uchidalab `window_warp`): a window of `ceil(ratio · T)`
//! steps starting at a random step in [1, T − window − 2] is sped up or slowed down by a factor
//! drawn from `scales` (resampled to `floor(window · scale)` steps), and the whole series is then
//! resampled back to T steps, every channel alike. As in the reference, the first and last values
//! are kept. The drawn window and scale are stored in the
//! `window_warp_*` columns.

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::params::{int, param, Drawn, ParamColumn, ParamKind, ParamValue};
use super::resample::{interp, linspace};
use super::{default_p, OpRng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowWarpConfig {
    /// Length of the warped window as a fraction of the series.
    #[serde(default = "default_ratio")]
    pub ratio: f64,
    /// Speed factors to draw from (uniformly): 0.5 halves the window, 2 doubles it.
    #[serde(default = "default_scales")]
    pub scales: Vec<f64>,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

const MAX_SCALE: f64 = 100.0;

fn default_ratio() -> f64 {
    0.1
}
fn default_scales() -> Vec<f64> {
    vec![0.5, 2.0]
}

pub const COLUMNS: &[ParamColumn] = &[
    param("window_warp_start", ParamKind::Int, "window_warp: first step of the warped window"),
    param("window_warp_length", ParamKind::Int, "window_warp: steps in the window before warping"),
    param("window_warp_scale", ParamKind::Float, "window_warp: the speed factor drawn from `scales`"),
];

impl WindowWarpConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.ratio > 0.0 && self.ratio < 1.0) {
            problems.push(format!("ratio must be in (0, 1), got {}", self.ratio));
        }
        // A window `MAX_SCALE` times longer than itself is already far past any published setting.
        if self.scales.is_empty() || self.scales.iter().any(|s| !(*s > 0.0 && *s <= MAX_SCALE)) {
            problems
                .push(format!("scales must be a non-empty list of numbers in (0, {MAX_SCALE}], got {:?}", self.scales));
        }
        problems
    }

    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        match shape {
            [_, length] if *length >= self.window(*length) + 3 => Ok(()),
            [_, length] => Err(format!(
                "a window of ratio {} needs a series of at least window + 3 steps, got {length}",
                self.ratio
            )),
            _ => Err(format!("needs series (channels × time), got shape {shape:?}")),
        }
    }

    fn window(&self, length: usize) -> usize {
        (self.ratio * length as f64).ceil() as usize
    }

    pub fn apply(&self, rng: &mut OpRng, input: &mut [f32], shape: &[usize]) -> Drawn {
        let length = shape[1];
        let window = self.window(length);
        let scale = self.scales[rng.gen_range(0..self.scales.len())];
        let start = rng.gen_range(1..length - window - 1);
        warp_window(input, length, start, window, scale);
        vec![
            ("window_warp_start", int(start)),
            ("window_warp_length", int(window)),
            ("window_warp_scale", ParamValue::Float(scale)),
        ]
    }
}

/// Warps `[start, start + window)` of each channel by `scale` and resamples the result to `length`.
pub fn warp_window(input: &mut [f32], length: usize, start: usize, window: usize, scale: f64) {
    let window_steps: Vec<f64> = (0..window).map(|t| t as f64).collect();
    let warped_len = ((window as f64) * scale) as usize;
    let window_positions = linspace(0.0, (window - 1) as f64, warped_len);
    let steps: Vec<f64> = (0..length).map(|t| t as f64).collect();
    for channel in input.chunks_mut(length) {
        let values: Vec<f64> = channel.iter().map(|&v| v as f64).collect();
        let mut warped = values[..start].to_vec();
        warped.extend(interp(&window_positions, &window_steps, &values[start..start + window]));
        warped.extend_from_slice(&values[start + window..]);
        let positions = linspace(0.0, (length - 1) as f64, warped.len());
        for (out, value) in channel.iter_mut().zip(interp(&steps, &positions, &warped)) {
            *out = value as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn matches_the_reference_for_explicit_draws() {
        // T = 10, window [2, 4) doubled: the warped series is
        // [x0, x1, x2, x2+1/3, x2+2/3, x3, x4..x9] (13 points), resampled to 10 steps.
        let x: Vec<f32> = (0..10).map(|v| (v * v) as f32).collect();
        let mut out = x.clone();
        warp_window(&mut out, 10, 2, 2, 2.0);
        let warped: Vec<f64> =
            [0.0, 1.0, 4.0, 4.0 + 5.0 / 3.0, 4.0 + 10.0 / 3.0, 9.0, 16.0, 25.0, 36.0, 49.0, 64.0, 81.0].to_vec();
        let positions = linspace(0.0, 9.0, warped.len());
        let steps: Vec<f64> = (0..10).map(|t| t as f64).collect();
        let expected: Vec<f32> = interp(&steps, &positions, &warped).into_iter().map(|v| v as f32).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn keeps_shape_and_end_values_and_replays() {
        let config = WindowWarpConfig { ratio: 0.1, scales: default_scales(), p: 1.0 };
        let original: Vec<f32> = (0..2 * 100).map(|i| ((i * 7 % 11) as f32).cos()).collect();
        let run = |seed| {
            let mut x = original.clone();
            config.apply(&mut OpRng::seed_from_u64(seed), &mut x, &[2, 100]);
            x
        };
        for seed in 0..20 {
            let x = run(seed);
            assert_eq!(x.len(), 200);
            for c in 0..2 {
                assert_eq!(x[c * 100], original[c * 100]);
                assert!((x[c * 100 + 99] - original[c * 100 + 99]).abs() < 1e-6);
            }
            assert_eq!(run(seed), x);
        }
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn validates_its_settings() {
        let config = WindowWarpConfig { ratio: 0.1, scales: vec![], p: 1.0 };
        assert!(config.validate()[0].contains("scales"));
        assert!(WindowWarpConfig { ratio: 0.5, scales: default_scales(), p: 1.0 }.check_shape(&[1, 5]).is_err());
    }
}
