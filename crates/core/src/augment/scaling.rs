//! `scaling`: every channel multiplied by its own factor ~ N(1, sigma²) (Um et al. 2017). The drawn
//! factors are stored in the `scaling_factors` column.

use rand_distr::{Distribution, Normal};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::params::{floats, param, Drawn, ParamColumn, ParamKind};
use super::{default_p, OpRng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScalingConfig {
    /// Standard deviation of the per-channel factor around 1.
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_sigma() -> f64 {
    0.1
}

pub const COLUMNS: &[ParamColumn] =
    &[param("scaling_factors", ParamKind::FloatList, "scaling: the factor drawn for each channel")];

impl ScalingConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        // Drawn in f32: a sigma past f32's range would be infinite.
        if !((self.sigma as f32).is_finite() && self.sigma > 0.0) {
            problems.push(format!("sigma must be > 0 and at most {:e}, got {}", f32::MAX, self.sigma));
        }
        problems
    }

    /// `shape[0]` is the channel axis; the rest of the sample is scaled by that channel's factor.
    pub fn apply(&self, rng: &mut OpRng, input: &mut [f32], shape: &[usize]) -> Drawn {
        let channels = shape[0].max(1);
        let per_channel = input.len() / channels;
        let factor = Normal::new(1.0f32, self.sigma as f32).expect("sigma validated");
        let factors: Vec<f32> = (0..channels).map(|_| factor.sample(rng)).collect();
        for (chunk, &f) in input.chunks_mut(per_channel).zip(&factors) {
            for value in chunk {
                *value *= f;
            }
        }
        vec![("scaling_factors", floats(&factors))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::params::find;
    use rand::SeedableRng;

    #[test]
    fn each_channel_gets_one_factor() {
        let config = ScalingConfig { sigma: 0.1, p: 1.0 };
        let mut input = vec![2.0f32; 3 * 4];
        let params = config.apply(&mut OpRng::seed_from_u64(5), &mut input, &[3, 4]);
        let factors: Vec<f32> =
            find(&params, "scaling_factors").unwrap().as_floats().unwrap().iter().map(|&f| f as f32).collect();
        assert_eq!(factors.len(), 3);
        for (c, f) in factors.iter().enumerate() {
            for t in 0..4 {
                assert_eq!(input[c * 4 + t], 2.0 * f);
            }
        }
        assert!(factors.iter().all(|f| (f - 1.0).abs() < 0.6));
    }
}
