//! `window_slice` (Le Guennec et al. 2016; uchidalab `window_slice`): crop a window of
//! `ceil(ratio · T)` steps starting at a random step and stretch it back to T steps by linear
//! interpolation, every channel with the same window. Where we differ: uchidalab stretches over
//! `linspace(0, window, T)`, one step past the window's last sample (the final point repeats
//! the last value); we stretch over `linspace(0, window − 1, T)`, so the view spans exactly the
//! crop, first and last values included. The crop is stored in the
//! `window_slice_start` and `window_slice_length` columns.

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::params::{int, param, Drawn, ParamColumn, ParamKind};
use super::resample::{interp, linspace};
use super::{default_p, OpRng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSliceConfig {
    /// Length of the crop as a fraction of the series.
    #[serde(default = "default_ratio")]
    pub ratio: f64,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_ratio() -> f64 {
    0.9
}

pub const COLUMNS: &[ParamColumn] = &[
    param("window_slice_start", ParamKind::Int, "window_slice: first step of the crop"),
    param("window_slice_length", ParamKind::Int, "window_slice: steps in the crop"),
];

impl WindowSliceConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.ratio > 0.0 && self.ratio < 1.0) {
            problems.push(format!("ratio must be in (0, 1), got {}", self.ratio));
        }
        problems
    }

    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        match shape {
            [_, length] if self.window(*length) >= 2 => Ok(()),
            [_, length] => Err(format!("a window of ratio {} of {length} steps is shorter than 2 steps", self.ratio)),
            _ => Err(format!("needs series (channels × time), got shape {shape:?}")),
        }
    }

    fn window(&self, length: usize) -> usize {
        ((self.ratio * length as f64).ceil() as usize).min(length)
    }

    pub fn apply(&self, rng: &mut OpRng, input: &mut [f32], shape: &[usize]) -> Drawn {
        let length = shape[1];
        let window = self.window(length);
        let start = rng.gen_range(0..=length - window);
        slice_and_stretch(input, length, start, window);
        vec![("window_slice_start", int(start)), ("window_slice_length", int(window))]
    }
}

/// Replaces each channel (of `length` steps) by its window `[start, start + window)` stretched to `length`.
pub fn slice_and_stretch(input: &mut [f32], length: usize, start: usize, window: usize) {
    let positions = linspace(0.0, (window - 1) as f64, length);
    let steps: Vec<f64> = (0..window).map(|t| t as f64).collect();
    for channel in input.chunks_mut(length) {
        let crop: Vec<f64> = channel[start..start + window].iter().map(|&v| v as f64).collect();
        for (out, value) in channel.iter_mut().zip(interp(&positions, &steps, &crop)) {
            *out = value as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::params::find;
    use rand::SeedableRng;

    #[test]
    fn stretches_the_crop_over_the_whole_length() {
        // A ramp stays a ramp: the crop [2, 6) of 0..8 stretched to 8 steps runs from 2 to 5.
        let mut x: Vec<f32> = (0..8).map(|v| v as f32).collect();
        slice_and_stretch(&mut x, 8, 2, 4);
        let expected: Vec<f32> = linspace(2.0, 5.0, 8).into_iter().map(|v| v as f32).collect();
        assert_eq!(x, expected);
    }

    #[test]
    fn keeps_shape_and_crop_ends_and_replays() {
        let config = WindowSliceConfig { ratio: 0.9, p: 1.0 };
        let original: Vec<f32> = (0..3 * 50).map(|i| ((i * 13 % 17) as f32).sin()).collect();
        let run = |seed| {
            let mut x = original.clone();
            let params = config.apply(&mut OpRng::seed_from_u64(seed), &mut x, &[3, 50]);
            (x, params)
        };
        let (x, params) = run(5);
        assert_eq!(x.len(), original.len());
        let start = find(&params, "window_slice_start").unwrap().as_int().unwrap() as usize;
        let window = find(&params, "window_slice_length").unwrap().as_int().unwrap() as usize;
        assert_eq!(window, 45);
        for c in 0..3 {
            assert_eq!(x[c * 50], original[c * 50 + start], "first value is the crop's first");
            assert_eq!(x[c * 50 + 49], original[c * 50 + start + window - 1], "last value is the crop's last");
        }
        assert_eq!(run(5).0, x);
        assert!((0..40).any(|seed| run(seed).0 != x), "other seeds draw other windows");
    }

    #[test]
    fn validates_its_settings() {
        assert_eq!(WindowSliceConfig { ratio: 1.0, p: 1.0 }.validate(), vec!["ratio must be in (0, 1), got 1"]);
        assert!(WindowSliceConfig { ratio: 0.1, p: 1.0 }.check_shape(&[1, 10]).is_err());
    }
}
