//! `tfkd` and `tfkd-self`: Teacher-free KD (Yuan et al. 2020), as the official code computes them
//! (yuanli2333/Teacher-free-Knowledge-Distillation, `my_loss_function.py`).
//!
//! - `tfkd` (`loss_kd_regularization`, the virtual teacher; needs no teacher): the virtual
//!   teacher's vector holds `correct_prob` at the label and `(1 − correct_prob)/(K − 1)` elsewhere;
//!   that probability vector is divided by T and passed through a softmax, the student's
//!   `log_softmax` is taken at T = 1, and the two meet in PyTorch's `nn.KLDivLoss()` with its
//!   default reduction, the mean over batch × classes (not over the batch). The loss is
//!   `(1 − alpha)·CE + alpha·multiplier·KL`, without T².
//! - `tfkd-self` (`loss_kd_self`, a stored teacher, typically a trained copy of the student's own
//!   architecture): `(1 − alpha)·CE + alpha·multiplier·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T))`, the
//!   KL again the mean over batch × classes.
//!
//! Defaults are the official ResNet18 CIFAR-100 experiments' (`reg_alpha` 0.1, `reg_temperature` 20,
//! `multiplier` 100; self-teacher `alpha` 0.95, `temperature` 6, `multiplier` 50). For a mixed view
//! (mixup, cutmix) the CE is the mixed one and the virtual teacher is the λ-mix of the two labels'
//! virtual vectors (the official code has no mixing; for λ = 1 they are its vector).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::ce::ce_rows;
use super::{fraction, kl_rows, log_softmax_t, non_negative, positive, Targets};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TfkdConfig {
    /// Weight of the regulariser; the CE has 1 − alpha (`reg_alpha`).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Temperature applied to the virtual teacher's probability vector (`reg_temperature`).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Factor of the KL term (`multiplier`).
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    /// The virtual teacher's probability of the label (`correct_prob`).
    #[serde(default = "default_correct_prob")]
    pub correct_prob: f64,
}

fn default_alpha() -> f64 {
    0.1
}
fn default_temperature() -> f64 {
    20.0
}
fn default_multiplier() -> f64 {
    100.0
}
fn default_correct_prob() -> f64 {
    0.99
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TfkdSelfConfig {
    /// Weight of the KL term; the CE has 1 − alpha.
    #[serde(default = "default_self_alpha")]
    pub alpha: f64,
    /// Softmax temperature T of both sides (the KL is multiplied by T²).
    #[serde(default = "default_self_temperature")]
    pub temperature: f64,
    /// Factor of the KL term (`multiplier`).
    #[serde(default = "default_self_multiplier")]
    pub multiplier: f64,
}

fn default_self_alpha() -> f64 {
    0.95
}
fn default_self_temperature() -> f64 {
    6.0
}
fn default_self_multiplier() -> f64 {
    50.0
}

impl TfkdConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems: Vec<String> = [
            fraction("alpha", self.alpha),
            positive("temperature", self.temperature),
            non_negative("multiplier", self.multiplier),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !(self.correct_prob > 0.0 && self.correct_prob < 1.0) {
            problems.push(format!("correct_prob must be in (0, 1), got {}", self.correct_prob));
        }
        problems
    }

    /// Per-sample values; their batch mean is the official loss.
    pub fn rows(&self, student: &Tensor, targets: &Targets) -> Result<Tensor, tch::TchError> {
        let classes = student.size()[1];
        let other = (1.0 - self.correct_prob) / (classes - 1).max(1) as f64;
        let virtual_teacher = tch::no_grad(|| {
            let vector = targets.distribution.to_kind(student.kind()) * (self.correct_prob - other) + other;
            log_softmax_t(&vector, self.temperature)
        })?;
        let kl = kl_rows(&virtual_teacher, &student.f_log_softmax(-1, student.kind())?)? / classes as f64;
        Ok(ce_rows(student, targets)? * (1.0 - self.alpha) + kl * (self.alpha * self.multiplier))
    }
}

impl TfkdSelfConfig {
    pub fn validate(&self) -> Vec<String> {
        [
            fraction("alpha", self.alpha),
            positive("temperature", self.temperature),
            non_negative("multiplier", self.multiplier),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Per-sample values; their batch mean is the official loss.
    pub fn rows(&self, student: &Tensor, teacher: &Tensor, targets: &Targets) -> Result<Tensor, tch::TchError> {
        let (t, classes) = (self.temperature, student.size()[1] as f64);
        let teacher = log_softmax_t(&teacher.detach(), t)?;
        let kl = kl_rows(&teacher, &log_softmax_t(student, t)?)? * (t * t / classes);
        Ok(ce_rows(student, targets)? * (1.0 - self.alpha) + kl * (self.alpha * self.multiplier))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{batch_mean, matrix, value};

    #[test]
    fn the_virtual_teacher_is_the_softened_probability_vector() {
        // One sample, K = 3, label 1: the vector (0.005, 0.99, 0.005) / T through a softmax.
        let z = matrix(&[&[0.5, -1.0, 2.0]]);
        let targets = Targets::plain(Tensor::from_slice(&[1i64]), 3);
        let config = TfkdConfig { alpha: 1.0, temperature: 2.0, multiplier: 1.0, correct_prob: 0.99 };
        let u = [0.005f64 / 2.0, 0.99 / 2.0, 0.005 / 2.0];
        let lse = |v: &[f64]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
        let (lu, lz) = (lse(&u), lse(&[0.5, -1.0, 2.0]));
        let want: f64 = u.iter().zip([0.5, -1.0, 2.0]).map(|(a, b)| (a - lu).exp() * ((a - lu) - (b - lz))).sum();
        let got = value(&batch_mean(&config.rows(&z, &targets).unwrap()));
        assert!((got - want / 3.0).abs() < 1e-12, "{got} vs {}", want / 3.0);
    }

    #[test]
    fn alpha_zero_is_the_cross_entropy() {
        let z = matrix(&[&[0.5, -1.0, 2.0], &[1.0, 0.0, 0.0]]);
        let targets = Targets::plain(Tensor::from_slice(&[1i64, 0]), 3);
        let ce = value(&batch_mean(&ce_rows(&z, &targets).unwrap()));
        let config = TfkdSelfConfig { alpha: 0.0, temperature: 4.0, multiplier: 50.0 };
        assert!((value(&batch_mean(&config.rows(&z, &z, &targets).unwrap())) - ce).abs() < 1e-12);
    }
}
