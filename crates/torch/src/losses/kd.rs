//! `kd`: Hinton et al. 2015, as mdistiller's `KD` distiller computes it:
//! `ce_weight · CE(z_s, y) + kd_weight · T² · (1/B) Σ_b KL(softmax(z_t/T) ‖ softmax(z_s/T))`,
//! the KL summed over classes and averaged over the batch (mdistiller `kd_loss`:
//! `F.kl_div(log_softmax(s/T), softmax(t/T), reduction="none").sum(1).mean() * T**2`; RepDistiller's
//! `DistillKL` gives the same number). Defaults are mdistiller's CIFAR ones: T = 4, 0.1 and 0.9.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::ce::ce_rows;
use super::{batch_mean, kl_rows, log_softmax_t, non_negative, positive, Targets};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KdConfig {
    /// Softmax temperature T of the KD term.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight of the cross-entropy with the labels.
    #[serde(default = "default_ce_weight")]
    pub ce_weight: f64,
    /// Weight of the T²-scaled KL term.
    #[serde(default = "default_kd_weight")]
    pub kd_weight: f64,
}

pub(super) fn default_temperature() -> f64 {
    4.0
}
pub(super) fn default_ce_weight() -> f64 {
    0.1
}
pub(super) fn default_kd_weight() -> f64 {
    0.9
}

impl Default for KdConfig {
    fn default() -> Self {
        KdConfig { temperature: default_temperature(), ce_weight: default_ce_weight(), kd_weight: default_kd_weight() }
    }
}

impl KdConfig {
    pub fn validate(&self) -> Vec<String> {
        [
            positive("temperature", self.temperature),
            non_negative("ce_weight", self.ce_weight),
            non_negative("kd_weight", self.kd_weight),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Per-sample values; their batch mean is the loss.
    pub fn rows(&self, student: &Tensor, teacher: &Tensor, targets: &Targets) -> Result<Tensor, tch::TchError> {
        let mut rows = kd_rows(student, teacher, self.temperature)? * self.kd_weight;
        if self.ce_weight != 0.0 {
            rows += ce_rows(student, targets)? * self.ce_weight;
        }
        Ok(rows)
    }
}

/// `T² · KL(softmax(z_t/T) ‖ softmax(z_s/T))` of each row, the teacher's distribution a constant
/// target. Written as `Σ p_t·log p_t − Σ p_t·log p_s` with the first sum computed outside autograd,
/// which keeps the differentiated part to a few operations (training calls this every batch).
pub fn kd_rows(student: &Tensor, teacher: &Tensor, temperature: f64) -> Result<Tensor, tch::TchError> {
    let (target, negative_entropy) = tch::no_grad(|| -> Result<(Tensor, Tensor), tch::TchError> {
        let log_p = log_softmax_t(&teacher.detach(), temperature)?;
        let p = log_p.exp();
        let negative_entropy = kl_rows(&log_p, &log_p.zeros_like())?;
        Ok((p, negative_entropy))
    })?;
    let cross = (target * log_softmax_t(student, temperature)?).f_sum_dim_intlist(-1, false, student.kind())?;
    Ok((negative_entropy - cross) * (temperature * temperature))
}

/// The batch mean of [`kd_rows`].
pub fn kd_term(student: &Tensor, teacher: &Tensor, temperature: f64) -> Result<Tensor, tch::TchError> {
    Ok(batch_mean(&kd_rows(student, teacher, temperature)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{matrix, value};

    fn reference(student: &[&[f64]], teacher: &[&[f64]], t: f64) -> f64 {
        let log_softmax = |z: &[f64]| {
            let z: Vec<f64> = z.iter().map(|v| v / t).collect();
            let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            z.iter().map(|v| v - lse).collect::<Vec<_>>()
        };
        let total: f64 = student
            .iter()
            .zip(teacher)
            .map(|(s, te)| {
                let (ls, lt) = (log_softmax(s), log_softmax(te));
                lt.iter().zip(&ls).map(|(a, b)| a.exp() * (a - b)).sum::<f64>()
            })
            .sum();
        total / student.len() as f64 * t * t
    }

    #[test]
    fn matches_a_plain_f64_computation() {
        let student: [&[f64]; 2] = [&[1.0, -0.5, 2.0], &[0.1, 0.2, 0.3]];
        let teacher: [&[f64]; 2] = [&[3.0, 0.0, -1.0], &[-2.0, 1.0, 0.5]];
        for t in [1.0, 4.0] {
            let got = value(&kd_term(&matrix(&student), &matrix(&teacher), t).unwrap());
            let want = reference(&student, &teacher, t);
            assert!((got - want).abs() < 1e-12 * want.abs().max(1.0), "T={t}: {got} vs {want}");
        }
    }

    #[test]
    fn is_zero_when_student_equals_teacher() {
        let z = matrix(&[&[0.3, -1.0], &[2.0, 0.0]]);
        assert!(value(&kd_term(&z, &z, 4.0).unwrap()).abs() < 1e-12);
    }
}
