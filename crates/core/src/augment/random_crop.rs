//! `random_crop` with zero padding (torchvision `RandomCrop(size, padding)` with the crop as large
//! as the image, the CIFAR recipe): the image is padded by `padding` zeros on every side and a
//! window of the original size is cut at a random offset, the same for every channel. The offset
//! (0..=2·padding on each axis; `padding` means no shift) is stored in `random_crop_top` and
//! `random_crop_left`.

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::image::image_dims;
use super::params::{int, param, Drawn, ParamColumn, ParamKind};
use super::{default_p, OpRng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomCropConfig {
    /// Zero pixels added on each side before cropping.
    #[serde(default = "default_padding")]
    pub padding: usize,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_padding() -> usize {
    4
}

pub const COLUMNS: &[ParamColumn] = &[
    param("random_crop_top", ParamKind::Int, "random_crop: row of the crop in the padded image (padding = no shift)"),
    param("random_crop_left", ParamKind::Int, "random_crop: column of the crop in the padded image"),
];

impl RandomCropConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.padding == 0 {
            problems.push("padding must be >= 1 (a crop without padding is the identity)".into());
        }
        problems
    }

    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        image_dims(shape).map(|_| ())
    }

    pub fn apply(&self, rng: &mut OpRng, input: &mut [f32], shape: &[usize]) -> Drawn {
        let dims = image_dims(shape).expect("shape checked");
        let top = rng.gen_range(0..=2 * self.padding);
        let left = rng.gen_range(0..=2 * self.padding);
        shift(input, dims, top as isize - self.padding as isize, left as isize - self.padding as isize);
        vec![("random_crop_top", int(top)), ("random_crop_left", int(left))]
    }
}

/// Output pixel (y, x) becomes input pixel (y + dy, x + dx), or 0 where that falls outside.
pub fn shift(input: &mut [f32], (_, height, width): (usize, usize, usize), dy: isize, dx: isize) {
    for channel in input.chunks_mut(height * width) {
        let source = channel.to_vec();
        for y in 0..height {
            for x in 0..width {
                let (sy, sx) = (y as isize + dy, x as isize + dx);
                let inside = (0..height as isize).contains(&sy) && (0..width as isize).contains(&sx);
                channel[y * width + x] = if inside { source[sy as usize * width + sx as usize] } else { 0.0 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::params::find;
    use rand::SeedableRng;

    fn crop(seed: u64, padding: usize) -> (Vec<f32>, Vec<f32>, usize, usize) {
        let original: Vec<f32> = (1..=2 * 6 * 5).map(|i| i as f32).collect();
        let mut x = original.clone();
        let drawn = RandomCropConfig { padding, p: 1.0 }.apply(&mut OpRng::seed_from_u64(seed), &mut x, &[2, 6, 5]);
        let top = find(&drawn, "random_crop_top").unwrap().as_int().unwrap() as usize;
        let left = find(&drawn, "random_crop_left").unwrap().as_int().unwrap() as usize;
        (original, x, top, left)
    }

    #[test]
    fn equals_slicing_the_zero_padded_image() {
        for seed in 0..50 {
            let (original, x, top, left) = crop(seed, 2);
            assert!(top <= 4 && left <= 4);
            // Reference: pad explicitly, then slice.
            let (ph, pw) = (6 + 4, 5 + 4);
            for c in 0..2 {
                let mut padded = vec![0.0f32; ph * pw];
                for y in 0..6 {
                    for xx in 0..5 {
                        padded[(y + 2) * pw + xx + 2] = original[c * 30 + y * 5 + xx];
                    }
                }
                for y in 0..6 {
                    for xx in 0..5 {
                        assert_eq!(x[c * 30 + y * 5 + xx], padded[(y + top) * pw + xx + left]);
                    }
                }
            }
        }
    }

    #[test]
    fn replays_and_depends_on_the_seed() {
        assert_eq!(crop(3, 4), crop(3, 4));
        let offsets: std::collections::HashSet<(usize, usize)> =
            (0..40).map(|s| (crop(s, 4).2, crop(s, 4).3)).collect();
        assert!(offsets.len() > 10, "only {} distinct offsets", offsets.len());
    }

    #[test]
    fn needs_images_and_padding() {
        assert!(RandomCropConfig { padding: 4, p: 1.0 }.check_shape(&[3, 100]).is_err());
        assert!(!RandomCropConfig { padding: 0, p: 1.0 }.validate().is_empty());
    }
}
