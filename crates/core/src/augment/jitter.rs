//! `jitter`: additive Gaussian noise, x + N(0, sigma²) on every element (Um et al. 2017).
//! The noise itself is not stored: it is redrawn from the view's seed on replay.

use rand_distr::{Distribution, Normal};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::params::{param, Drawn, ParamColumn, ParamKind, ParamValue};
use super::{default_p, OpRng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JitterConfig {
    /// Standard deviation of the noise, in the units of the raw input.
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_sigma() -> f64 {
    0.05
}

pub const COLUMNS: &[ParamColumn] = &[param(
    "jitter_sigma",
    ParamKind::Float,
    "jitter: standard deviation of the noise (the noise itself is redrawn from the view's seed)",
)];

impl JitterConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        // Drawn in f32: a sigma past f32's range would be infinite.
        if !((self.sigma as f32).is_finite() && self.sigma > 0.0) {
            problems.push(format!("sigma must be > 0 and at most {:e}, got {}", f32::MAX, self.sigma));
        }
        problems
    }

    pub fn apply(&self, rng: &mut OpRng, input: &mut [f32]) -> Drawn {
        let noise = Normal::new(0.0f32, self.sigma as f32).expect("sigma validated");
        for value in input.iter_mut() {
            *value += noise.sample(rng);
        }
        vec![("jitter_sigma", ParamValue::Float(self.sigma))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn noise_has_the_requested_spread_and_replays() {
        let config = JitterConfig { sigma: 0.5, p: 1.0 };
        let mut input = vec![0.0f32; 20_000];
        config.apply(&mut OpRng::seed_from_u64(1), &mut input);
        let mean = input.iter().map(|&v| v as f64).sum::<f64>() / input.len() as f64;
        let var = input.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / input.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.02, "std {}", var.sqrt());
        let mut again = vec![0.0f32; 20_000];
        config.apply(&mut OpRng::seed_from_u64(1), &mut again);
        assert_eq!(input, again);
        let mut other = vec![0.0f32; 20_000];
        config.apply(&mut OpRng::seed_from_u64(2), &mut other);
        assert_ne!(input, other);
    }

    #[test]
    fn rejects_a_sigma_that_is_not_positive_or_past_f32() {
        assert_eq!(
            JitterConfig { sigma: 0.0, p: 1.0 }.validate(),
            vec!["sigma must be > 0 and at most 3.4028235e38, got 0"]
        );
        // Drawn in f32, 1e308 would be infinite (found by the fuzz tests).
        assert_eq!(JitterConfig { sigma: 1e308, p: 1.0 }.validate().len(), 1);
        assert!(JitterConfig { sigma: 1e30, p: 1.0 }.validate().is_empty());
    }
}
