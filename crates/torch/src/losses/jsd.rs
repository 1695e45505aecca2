//! `jsd`: the (generalised) Jensen-Shannon divergence between teacher and student, as TRL's
//! `generalized_jsd_loss` computes it: with `m = β·p_t + (1 − β)·p_s`,
//! `β·KL(p_t ‖ m) + (1 − β)·KL(p_s ‖ m)`, `p = softmax(z/T)`, `log m` by log-sum-exp; summed over
//! classes, averaged over the batch, times T² as in `kd` (TRL has no T²; at the default T = 1 they
//! agree). β = 0.5 is the symmetric JSD.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::reverse_kl::one;
use super::{kl_rows, log_softmax_t, positive};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsdConfig {
    /// Softmax temperature T (the loss is multiplied by T²).
    #[serde(default = "one")]
    pub temperature: f64,
    /// Weight of the teacher in the mixture m, strictly between 0 and 1.
    #[serde(default = "half")]
    pub beta: f64,
}

fn half() -> f64 {
    0.5
}

impl JsdConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems: Vec<String> = positive("temperature", self.temperature).into_iter().collect();
        if !(self.beta > 0.0 && self.beta < 1.0) {
            problems.push(format!("beta must be in (0, 1), got {}", self.beta));
        }
        problems
    }

    /// Per-sample values; their batch mean is the loss.
    pub fn rows(&self, student: &Tensor, teacher: &Tensor) -> Result<Tensor, tch::TchError> {
        let t = self.temperature;
        let (log_s, log_t) = (log_softmax_t(student, t)?, log_softmax_t(teacher, t)?);
        let log_m = Tensor::f_stack(&[&log_s + (1.0 - self.beta).ln(), &log_t + self.beta.ln()], 0)?
            .f_logsumexp(&[0i64][..], false)?;
        let rows = kl_rows(&log_t, &log_m)? * self.beta + kl_rows(&log_s, &log_m)? * (1.0 - self.beta);
        Ok(rows * (t * t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{matrix, value};

    #[test]
    fn symmetric_zero_and_bounded_by_ln2() {
        let s = matrix(&[&[1.0, -0.5, 2.0], &[0.1, 0.2, 0.3]]);
        let t = matrix(&[&[3.0, 0.0, -1.0], &[-2.0, 1.0, 0.5]]);
        let config = JsdConfig { temperature: 1.0, beta: 0.5 };
        let mean = |a: &Tensor, b: &Tensor| value(&crate::losses::batch_mean(&config.rows(a, b).unwrap()));
        let forward = mean(&s, &t);
        assert!((forward - mean(&t, &s)).abs() < 1e-12);
        assert!(forward > 0.0 && forward < 2f64.ln());
        assert!(mean(&s, &s).abs() < 1e-12);
    }
}
