//! `mixkd`: the standardised-logit KD of "Understanding the Role of Mixup in Knowledge
//! Distillation" (Choi et al. 2023), as the official `MIXSTD` loss computes it (hchoi71/MIX-KD,
//! `distiller_zoo/MIXSTD.py`): each logit row is divided by its own standard deviation (unbiased,
//! no epsilon, no mean subtraction), then
//! `ce_weight · (1/B) Σ −ỹ·log_softmax(z_s/σ_s) + kd_weight · (1/B) Σ_b KL(softmax(z_t/σ_t) ‖ softmax(z_s/σ_s))`
//! with ỹ the (mixed) label. The official code has no temperature; ours divides the standardised
//! logits of the KL term by `temperature` and multiplies it by T² (default 1: the official loss).
//! Defaults are the official ones: γ = ce_weight = 0.1, α = kd_weight = 0.9.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::ce::mixed_nll;
use super::reverse_kl::one;
use super::{kl_rows, log_softmax_t, non_negative, positive, Targets};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MixkdConfig {
    /// Weight γ of the cross-entropy on the standardised student logits.
    #[serde(default = "default_ce_weight")]
    pub ce_weight: f64,
    /// Weight α of the KL between the standardised teacher and student distributions.
    #[serde(default = "default_kd_weight")]
    pub kd_weight: f64,
    /// Temperature of the KL term on top of the standardisation (the term is multiplied by T²).
    #[serde(default = "one")]
    pub temperature: f64,
}

fn default_ce_weight() -> f64 {
    0.1
}
fn default_kd_weight() -> f64 {
    0.9
}

impl MixkdConfig {
    pub fn validate(&self) -> Vec<String> {
        [
            non_negative("ce_weight", self.ce_weight),
            non_negative("kd_weight", self.kd_weight),
            positive("temperature", self.temperature),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Per-sample values; their batch mean is the loss.
    pub fn rows(&self, student: &Tensor, teacher: &Tensor, targets: &Targets) -> Result<Tensor, tch::TchError> {
        let (s, t) = (standardise(student)?, standardise(teacher)?);
        let ce = mixed_nll(&s.f_log_softmax(-1, s.kind())?, targets)?;
        let temperature = self.temperature;
        let kl =
            kl_rows(&log_softmax_t(&t, temperature)?, &log_softmax_t(&s, temperature)?)? * (temperature * temperature);
        Ok(ce * self.ce_weight + kl * self.kd_weight)
    }
}

/// Each row divided by its unbiased standard deviation.
pub fn standardise(z: &Tensor) -> Result<Tensor, tch::TchError> {
    Ok(z / z.f_std_dim(&[-1i64][..], true, true)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{matrix, value};

    #[test]
    fn scale_free_in_each_row() {
        let s = matrix(&[&[1.0, -0.5, 2.0], &[0.1, 0.2, 0.3]]);
        let t = matrix(&[&[3.0, 0.0, -1.0], &[-2.0, 1.0, 0.5]]);
        let targets = Targets::plain(Tensor::from_slice(&[2i64, 0]), 3);
        let config = MixkdConfig { ce_weight: 0.1, kd_weight: 0.9, temperature: 1.0 };
        let base = value(&crate::losses::batch_mean(&config.rows(&s, &t, &targets).unwrap()));
        let scaled = value(&crate::losses::batch_mean(&config.rows(&(&s * 7.0), &(&t * 0.25), &targets).unwrap()));
        assert!((base - scaled).abs() < 1e-12, "{base} vs {scaled}");
    }
}
