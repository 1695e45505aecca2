//! `color_jitter`, brightness and contrast (torchvision `ColorJitter(brightness, contrast)` on
//! float images): a brightness factor b ~ U[max(0, 1 − brightness), 1 + brightness] scales the
//! image, then a contrast factor c ~ U[max(0, 1 − contrast), 1 + contrast] blends it with the mean
//! of its grayscale (`c·x + (1 − c)·mean`; ITU-R 601 weights for 3 channels, the plain mean
//! otherwise), each step clamped to [0, `bound`]. Where we differ: torchvision applies its
//! adjustments in a random order; ours is always brightness first, so the two stored factors alone
//! rebuild the view.

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::image::image_dims;
use super::params::{param, Drawn, ParamColumn, ParamKind, ParamValue};
use super::{default_p, OpRng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColorJitterConfig {
    /// How far the brightness factor strays from 1.
    #[serde(default = "default_strength")]
    pub brightness: f64,
    /// How far the contrast factor strays from 1.
    #[serde(default = "default_strength")]
    pub contrast: f64,
    /// Largest pixel value: 1 for images scaled to [0, 1], 255 for raw bytes.
    #[serde(default = "default_bound")]
    pub bound: f32,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_strength() -> f64 {
    0.2
}
fn default_bound() -> f32 {
    1.0
}

pub const COLUMNS: &[ParamColumn] = &[
    param("color_jitter_brightness", ParamKind::Float, "color_jitter: the brightness factor drawn"),
    param("color_jitter_contrast", ParamKind::Float, "color_jitter: the contrast factor drawn"),
];

impl ColorJitterConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, value) in [("brightness", self.brightness), ("contrast", self.contrast)] {
            if !(value.is_finite() && value >= 0.0) {
                problems.push(format!("{name} must be >= 0, got {value}"));
            }
        }
        if !(self.bound.is_finite() && self.bound > 0.0) {
            problems.push(format!("bound must be > 0, got {}", self.bound));
        }
        problems
    }

    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        image_dims(shape).map(|_| ())
    }

    pub fn apply(&self, rng: &mut OpRng, input: &mut [f32], shape: &[usize]) -> Drawn {
        let dims = image_dims(shape).expect("shape checked");
        let brightness = factor(rng, self.brightness) as f32;
        let contrast = factor(rng, self.contrast) as f32;
        adjust(input, dims, brightness, contrast, self.bound);
        vec![
            ("color_jitter_brightness", ParamValue::Float(brightness.into())),
            ("color_jitter_contrast", ParamValue::Float(contrast.into())),
        ]
    }
}

fn factor(rng: &mut OpRng, strength: f64) -> f64 {
    let low = (1.0 - strength).max(0.0);
    rng.gen_range(low..=1.0 + strength)
}

/// Brightness then contrast, as described in the module note, in float32.
pub fn adjust(input: &mut [f32], dims: (usize, usize, usize), brightness: f32, contrast: f32, bound: f32) {
    for value in input.iter_mut() {
        *value = (brightness * *value).clamp(0.0, bound);
    }
    let mean = gray_mean(input, dims);
    for value in input.iter_mut() {
        *value = (contrast * *value + (1.0 - contrast) * mean).clamp(0.0, bound);
    }
}

/// Mean of the grayscale image: ITU-R 601 luma for RGB, the mean of all values otherwise.
fn gray_mean(input: &[f32], (channels, height, width): (usize, usize, usize)) -> f32 {
    let plane = height * width;
    let total: f64 = if channels == 3 {
        let weights = [0.2989f32, 0.587, 0.114];
        (0..plane).map(|i| (0..3).map(|c| weights[c] * input[c * plane + i]).sum::<f32>() as f64).sum()
    } else {
        input.iter().map(|&v| v as f64).sum::<f64>() / channels as f64
    };
    (total / plane as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn factors_one_keep_the_image_and_contrast_zero_gives_the_mean() {
        let original: Vec<f32> = (0..16).map(|i| i as f32 / 16.0).collect();
        let mut x = original.clone();
        adjust(&mut x, (1, 4, 4), 1.0, 1.0, 1.0);
        assert_eq!(x, original);
        adjust(&mut x, (1, 4, 4), 1.0, 0.0, 1.0);
        assert!(x.iter().all(|&v| (v - 7.5 / 16.0).abs() < 1e-6));
    }

    #[test]
    fn draws_stay_in_range_and_values_in_bounds() {
        let config = ColorJitterConfig { brightness: 0.5, contrast: 0.5, bound: 1.0, p: 1.0 };
        for seed in 0..100 {
            let mut x: Vec<f32> = (0..3 * 16).map(|i| (i % 17) as f32 / 16.0).collect();
            let drawn = config.apply(&mut OpRng::seed_from_u64(seed), &mut x, &[3, 4, 4]);
            for (_, value) in &drawn {
                assert!((0.5..=1.5).contains(&value.as_float().unwrap()));
            }
            assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }

    #[test]
    fn brightness_scales_before_clamping() {
        let mut x = vec![0.2, 0.6];
        adjust(&mut x, (1, 1, 2), 2.0, 1.0, 1.0);
        assert_eq!(x, vec![0.4, 1.0]);
    }
}
