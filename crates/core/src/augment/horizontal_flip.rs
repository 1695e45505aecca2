//! `horizontal_flip` (torchvision `RandomHorizontalFlip`): mirrors every channel left to right.
//! Its probability defaults to 0.5, the usual setting; the op's flag column
//! (`horizontal_flip`) is the drawn outcome, so `WHERE horizontal_flip` selects flipped views.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::image::image_dims;
use super::params::{Drawn, ParamColumn};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HorizontalFlipConfig {
    /// Probability that a view is flipped.
    #[serde(default = "default_flip_p")]
    pub p: f64,
}

fn default_flip_p() -> f64 {
    0.5
}

pub const COLUMNS: &[ParamColumn] = &[];

impl HorizontalFlipConfig {
    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        image_dims(shape).map(|_| ())
    }

    pub fn apply(&self, input: &mut [f32], shape: &[usize]) -> Drawn {
        let (_, _, width) = image_dims(shape).expect("shape checked");
        for row in input.chunks_mut(width) {
            row.reverse();
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_each_row_and_twice_is_identity() {
        let original: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32).collect();
        let mut x = original.clone();
        HorizontalFlipConfig { p: 1.0 }.apply(&mut x, &[2, 3, 4]);
        for c in 0..2 {
            for y in 0..3 {
                for col in 0..4 {
                    assert_eq!(x[c * 12 + y * 4 + col], original[c * 12 + y * 4 + 3 - col]);
                }
            }
        }
        HorizontalFlipConfig { p: 1.0 }.apply(&mut x, &[2, 3, 4]);
        assert_eq!(x, original);
    }
}
