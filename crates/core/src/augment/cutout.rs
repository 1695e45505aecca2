//! `cutout` (DeVries & Taylor 2017, the official `Cutout` class): a `size × size` square centred
//! on a uniformly drawn pixel is set to `value` in every channel, clipped at the borders (so a
//! square near an edge covers less). The clipped box is stored in the `cutout_*` columns, rows
//! `y0..y1` and columns `x0..x1`, ends exclusive.

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::image::{fill_box, image_dims};
use super::params::{int, param, Drawn, ParamColumn, ParamKind};
use super::{default_p, OpRng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CutoutConfig {
    /// Side of the square in pixels (16 is the paper's CIFAR-10 setting).
    #[serde(default = "default_size")]
    pub size: usize,
    /// Value written into the square, in the units of the raw input.
    #[serde(default)]
    pub value: f32,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_size() -> usize {
    16
}

pub const COLUMNS: &[ParamColumn] = &[
    param("cutout_y0", ParamKind::Int, "cutout: first row of the erased box"),
    param("cutout_y1", ParamKind::Int, "cutout: row after the last erased row"),
    param("cutout_x0", ParamKind::Int, "cutout: first column of the erased box"),
    param("cutout_x1", ParamKind::Int, "cutout: column after the last erased column"),
];

/// The box of side `size` centred at `center` along an axis of `length`, clipped: `center ∓ size/2`.
pub(crate) fn clipped_span(center: usize, size: usize, length: usize) -> (usize, usize) {
    (center.saturating_sub(size / 2), (center + size / 2).min(length))
}

impl CutoutConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.size == 0 {
            problems.push("size must be >= 1".into());
        }
        if !self.value.is_finite() {
            problems.push(format!("value must be a finite number, got {}", self.value));
        }
        problems
    }

    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        image_dims(shape).map(|_| ())
    }

    pub fn apply(&self, rng: &mut OpRng, input: &mut [f32], shape: &[usize]) -> Drawn {
        let dims = image_dims(shape).expect("shape checked");
        let (cy, cx) = (rng.gen_range(0..dims.1), rng.gen_range(0..dims.2));
        let (y0, y1) = clipped_span(cy, self.size, dims.1);
        let (x0, x1) = clipped_span(cx, self.size, dims.2);
        fill_box(input, dims, (y0, y1), (x0, x1), |_| self.value);
        vec![("cutout_y0", int(y0)), ("cutout_y1", int(y1)), ("cutout_x0", int(x0)), ("cutout_x1", int(x1))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn erases_exactly_the_stored_box() {
        let config = CutoutConfig { size: 4, value: -1.0, p: 1.0 };
        let original: Vec<f32> = (0..2 * 7 * 9).map(|i| i as f32).collect();
        for seed in 0..100 {
            let mut x = original.clone();
            let drawn = config.apply(&mut OpRng::seed_from_u64(seed), &mut x, &[2, 7, 9]);
            let get = |i: usize| drawn[i].1.as_int().unwrap() as usize;
            let (y0, y1, x0, x1) = (get(0), get(1), get(2), get(3));
            assert!(y1 - y0 <= 4 && x1 - x0 <= 4 && y1 <= 7 && x1 <= 9 && y1 > y0 && x1 > x0);
            for (i, (&out, &before)) in x.iter().zip(&original).enumerate() {
                let (y, col) = ((i % 63) / 9, i % 9);
                let inside = (y0..y1).contains(&y) && (x0..x1).contains(&col);
                assert_eq!(out, if inside { -1.0 } else { before });
            }
        }
    }

    #[test]
    fn spans_clip_at_the_borders() {
        assert_eq!(clipped_span(0, 4, 10), (0, 2));
        assert_eq!(clipped_span(5, 4, 10), (3, 7));
        assert_eq!(clipped_span(9, 5, 10), (7, 10));
    }
}
