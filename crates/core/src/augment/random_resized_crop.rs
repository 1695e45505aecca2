//! `random_resized_crop` (torchvision `RandomResizedCrop`, the crop FKD and apple/ml-dr label):
//! a window covering a fraction of the area drawn uniformly from `scale`, with an aspect ratio
//! drawn log-uniformly from `ratio`, is cut at a random position and resized bilinearly to the
//! full image. As in torchvision, up to 10 draws are tried; when none fits, the central crop with
//! the ratio clamped to `ratio` is used. The window is stored in the `random_resized_crop_*`
//! columns.

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::image::{image_dims, resize_crop};
use super::params::{int, param, Drawn, ParamColumn, ParamKind};
use super::{default_p, OpRng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomResizedCropConfig {
    /// Range of the crop's area as a fraction of the image.
    #[serde(default = "default_scale")]
    pub scale: [f64; 2],
    /// Range of the crop's aspect ratio (width / height), drawn log-uniformly.
    #[serde(default = "default_ratio")]
    pub ratio: [f64; 2],
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_scale() -> [f64; 2] {
    [0.08, 1.0]
}
fn default_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}

pub const COLUMNS: &[ParamColumn] = &[
    param("random_resized_crop_top", ParamKind::Int, "random_resized_crop: first row of the crop"),
    param("random_resized_crop_left", ParamKind::Int, "random_resized_crop: first column of the crop"),
    param("random_resized_crop_height", ParamKind::Int, "random_resized_crop: rows in the crop"),
    param("random_resized_crop_width", ParamKind::Int, "random_resized_crop: columns in the crop"),
];

/// A crop window: top, left, height, width.
type Window = (usize, usize, usize, usize);

impl RandomResizedCropConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let [low, high] = self.scale;
        if !(low > 0.0 && low <= high && high <= 1.0) {
            problems.push(format!("scale must satisfy 0 < min <= max <= 1, got {:?}", self.scale));
        }
        let [low, high] = self.ratio;
        if !(low > 0.0 && low <= high && high.is_finite()) {
            problems.push(format!("ratio must satisfy 0 < min <= max, got {:?}", self.ratio));
        }
        problems
    }

    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        image_dims(shape).map(|_| ())
    }

    /// torchvision's `RandomResizedCrop.get_params`.
    pub fn window(&self, rng: &mut OpRng, height: usize, width: usize) -> Window {
        let area = (height * width) as f64;
        let log_ratio = [self.ratio[0].ln(), self.ratio[1].ln()];
        for _ in 0..10 {
            let target_area = area * uniform(rng, self.scale);
            let aspect = uniform(rng, log_ratio).exp();
            let w = (target_area * aspect).sqrt().round() as usize;
            let h = (target_area / aspect).sqrt().round() as usize;
            if 0 < w && w <= width && 0 < h && h <= height {
                let top = rng.gen_range(0..=height - h);
                let left = rng.gen_range(0..=width - w);
                return (top, left, h, w);
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (h, w) = if in_ratio < self.ratio[0] {
            (((width as f64) / self.ratio[0]).round() as usize, width)
        } else if in_ratio > self.ratio[1] {
            (height, ((height as f64) * self.ratio[1]).round() as usize)
        } else {
            (height, width)
        };
        ((height - h) / 2, (width - w) / 2, h, w)
    }

    pub fn apply(&self, rng: &mut OpRng, input: &mut [f32], shape: &[usize]) -> Drawn {
        let dims = image_dims(shape).expect("shape checked");
        let (top, left, h, w) = self.window(rng, dims.1, dims.2);
        resize_crop(input, dims, top, left, (h, w));
        vec![
            ("random_resized_crop_top", int(top)),
            ("random_resized_crop_left", int(left)),
            ("random_resized_crop_height", int(h)),
            ("random_resized_crop_width", int(w)),
        ]
    }
}

/// Uniform in [low, high] (a point when they are equal).
fn uniform(rng: &mut OpRng, [low, high]: [f64; 2]) -> f64 {
    if low == high {
        low
    } else {
        rng.gen_range(low..high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn config() -> RandomResizedCropConfig {
        RandomResizedCropConfig { scale: default_scale(), ratio: default_ratio(), p: 1.0 }
    }

    #[test]
    fn windows_fit_and_follow_the_requested_area_and_ratio() {
        let mut areas = Vec::new();
        for seed in 0..400 {
            let (top, left, h, w) = config().window(&mut OpRng::seed_from_u64(seed), 32, 32);
            assert!(h >= 1 && w >= 1 && top + h <= 32 && left + w <= 32);
            let area = (h * w) as f64 / 1024.0;
            // Rounding each side moves the area a little outside the drawn range.
            assert!((0.05..=1.0).contains(&area), "area {area}");
            areas.push(area);
        }
        let mean = areas.iter().sum::<f64>() / areas.len() as f64;
        // Uniform area in [0.08, 1] has mean 0.54; fits fail more often for large areas.
        assert!((0.40..0.60).contains(&mean), "mean area {mean}");
    }

    #[test]
    fn a_full_window_is_the_identity_and_others_replay() {
        let whole = RandomResizedCropConfig { scale: [1.0, 1.0], ratio: [1.0, 1.0], p: 1.0 };
        let original: Vec<f32> = (0..3 * 8 * 8).map(|i| (i % 13) as f32).collect();
        let mut x = original.clone();
        let drawn = whole.apply(&mut OpRng::seed_from_u64(1), &mut x, &[3, 8, 8]);
        assert_eq!(x, original);
        assert_eq!(drawn[2].1.as_int(), Some(8));
        let run = |seed| {
            let mut x = original.clone();
            config().apply(&mut OpRng::seed_from_u64(seed), &mut x, &[3, 8, 8]);
            x
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn falls_back_to_the_central_crop() {
        // No 1:4 window fits a square image with this area, so the ratio is clamped.
        let narrow = RandomResizedCropConfig { scale: [1.0, 1.0], ratio: [4.0, 5.0], p: 1.0 };
        assert_eq!(narrow.window(&mut OpRng::seed_from_u64(0), 8, 8), (3, 0, 2, 8));
    }
}
