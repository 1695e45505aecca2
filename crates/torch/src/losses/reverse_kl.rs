//! `reverse-kl`: the reverse (mode-seeking) divergence KL(student ‖ teacher),
//! `T² · (1/B) Σ_b Σ_c p_s (log p_s − log p_t)` with `p = softmax(z/T)`. There is no single official
//! classification code: the formula is TRL's and DistiLLM's reverse KL (their `β = 1` generalised JSD)
//! with the T² factor of mdistiller's `kd_loss`, so that at T = 1 (the default) it equals theirs
//! and at other temperatures its gradients scale like `kd`'s.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{kl_rows, log_softmax_t, positive};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReverseKlConfig {
    /// Softmax temperature T (the loss is multiplied by T²).
    #[serde(default = "one")]
    pub temperature: f64,
}

pub(crate) fn one() -> f64 {
    1.0
}

impl ReverseKlConfig {
    pub fn validate(&self) -> Vec<String> {
        positive("temperature", self.temperature).into_iter().collect()
    }

    /// Per-sample values; their batch mean is the loss.
    pub fn rows(&self, student: &Tensor, teacher: &Tensor) -> Result<Tensor, tch::TchError> {
        let t = self.temperature;
        Ok(kl_rows(&log_softmax_t(student, t)?, &log_softmax_t(teacher, t)?)? * (t * t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::kd::kd_term;
    use crate::losses::{matrix, value};

    #[test]
    fn is_forward_kl_with_the_roles_swapped() {
        let s = matrix(&[&[1.0, -0.5, 2.0], &[0.1, 0.2, 0.3]]);
        let t = matrix(&[&[3.0, 0.0, -1.0], &[-2.0, 1.0, 0.5]]);
        for temperature in [1.0, 3.0] {
            let reverse = value(&crate::losses::batch_mean(&ReverseKlConfig { temperature }.rows(&s, &t).unwrap()));
            let swapped = value(&kd_term(&t, &s, temperature).unwrap());
            assert!((reverse - swapped).abs() < 1e-12);
        }
    }
}
