//! `bdkd`: Balanced Divergence KD (Amara et al.), as kdstore's own documented construction. The
//! paper's equations were not available to us (only its abstract and summaries: forward
//! KL(p_t‖p_s) and reverse KL(p_s‖p_t) weighted per sample by the gap between the teacher's and
//! the student's entropies, reverse KL as the teacher-side regulariser in online training), so
//! this is not a transcription of an official code. Per sample i, with `p = softmax(z/T)` and `H`
//! the entropy of `p`:
//!
//! `L = ce_weight·CE + kd_weight·T²·(1/B) Σ_i [w_i·KL(p_s,i‖p_t,i) + (1 − w_i)·KL(p_t,i‖p_s,i)]`,
//! `w_i = σ((H_s,i − H_t,i)/scale)`, held constant (no gradient flows through w),
//!
//! so the student is sharpened by the mode-seeking reverse KL where it is less sure than the
//! teacher and spreads by the forward KL where it is surer; `scale = 0` is the hard switch
//! `w_i = 1[H_s,i > H_t,i]`. With `--co-train` the teacher trains on `CE + beta·T²·KL(p_t‖p_s)`
//! (its own reverse KL against the student, the student held fixed).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::ce::ce_rows;
use super::kd::{default_ce_weight, default_kd_weight, default_temperature};
use super::{kl_rows, log_softmax_t, non_negative, positive, Targets};

/// kdstore's documented construction of BD-KD, not a transcription (the paper's equations were not
/// available): ce_weight·CE + kd_weight·T²·mean[w·KL(p_s‖p_t) + (1 − w)·KL(p_t‖p_s)], w =
/// σ((H_s − H_t)/scale) per sample (README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BdkdConfig {
    /// Softmax temperature T of both divergences and the entropies (the KD term is multiplied by T²).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight of the cross-entropy with the labels.
    #[serde(default = "default_ce_weight")]
    pub ce_weight: f64,
    /// Weight of the balanced divergence term.
    #[serde(default = "default_kd_weight")]
    pub kd_weight: f64,
    /// Softness of the entropy-gap switch σ((H_s − H_t)/scale); 0: the hard switch.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// With --co-train: weight of the teacher's reverse KL against the student.
    #[serde(default = "default_beta")]
    pub beta: f64,
}

fn default_scale() -> f64 {
    0.1
}
fn default_beta() -> f64 {
    1.0
}

/// The entropy of each row of `softmax(z/T)`, from its log-probabilities.
fn entropy_rows(log_p: &Tensor) -> Result<Tensor, tch::TchError> {
    Ok(-(log_p.exp() * log_p).f_sum_dim_intlist(-1, false, log_p.kind())?)
}

impl BdkdConfig {
    pub fn validate(&self) -> Vec<String> {
        [
            positive("temperature", self.temperature),
            non_negative("ce_weight", self.ce_weight),
            non_negative("kd_weight", self.kd_weight),
            non_negative("scale", self.scale),
            non_negative("beta", self.beta),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The per-sample weight of the reverse KL, `[batch]`, without gradient.
    pub fn reverse_weights(&self, log_s: &Tensor, log_t: &Tensor) -> Result<Tensor, tch::TchError> {
        tch::no_grad(|| {
            let gap = entropy_rows(&log_s.detach())? - entropy_rows(log_t)?;
            if self.scale == 0.0 {
                Ok(gap.gt(0.0).to_kind(log_s.kind()))
            } else {
                (gap / self.scale).f_sigmoid()
            }
        })
    }

    /// Per-sample values; their batch mean is the loss.
    pub fn rows(&self, student: &Tensor, teacher: &Tensor, targets: &Targets) -> Result<Tensor, tch::TchError> {
        let t = self.temperature;
        let log_s = log_softmax_t(student, t)?;
        let log_t = log_softmax_t(&teacher.detach(), t)?;
        let w = self.reverse_weights(&log_s, &log_t)?;
        let reverse = kl_rows(&log_s, &log_t)?;
        let forward = kl_rows(&log_t, &log_s)?;
        let balanced = (&w * reverse + (1.0 - &w) * forward) * (t * t);
        let mut rows = balanced * self.kd_weight;
        if self.ce_weight != 0.0 {
            rows += ce_rows(student, targets)? * self.ce_weight;
        }
        Ok(rows)
    }

    /// The co-trained teacher's objective: `CE + beta·T²·KL(p_t‖p_s)`, the student held fixed.
    pub fn teacher_objective(
        &self,
        teacher: &Tensor,
        student: &Tensor,
        targets: &Targets,
    ) -> Result<Tensor, tch::TchError> {
        let t = self.temperature;
        let reverse = kl_rows(&log_softmax_t(teacher, t)?, &log_softmax_t(&student.detach(), t)?)?;
        let ce = ce_rows(teacher, targets)?;
        let rows = ce + reverse * (self.beta * t * t);
        Ok(rows.mean(rows.kind()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{batch_mean, matrix, value};

    #[test]
    fn the_switch_picks_reverse_kl_where_the_student_is_less_sure() {
        // Row 0: a flat student and a sharp teacher (H_s > H_t, reverse KL); row 1: the opposite.
        let s = matrix(&[&[0.0, 0.0, 0.0], &[6.0, 0.0, 0.0]]);
        let t = matrix(&[&[6.0, 0.0, 0.0], &[0.0, 0.1, 0.0]]);
        let targets = Targets::plain(Tensor::from_slice(&[0i64, 0]), 3);
        let hard = BdkdConfig { temperature: 1.0, ce_weight: 0.0, kd_weight: 1.0, scale: 0.0, beta: 1.0 };
        let got = hard.rows(&s, &t, &targets).unwrap();
        let (ls, lt) = (s.log_softmax(-1, s.kind()), t.log_softmax(-1, t.kind()));
        let reverse = kl_rows(&ls, &lt).unwrap();
        let forward = kl_rows(&lt, &ls).unwrap();
        assert!((value(&got.get(0)) - value(&reverse.get(0))).abs() < 1e-12);
        assert!((value(&got.get(1)) - value(&forward.get(1))).abs() < 1e-12);
        // A very sharp soft switch is the hard one; a very soft one is the even mix of the two.
        let sharp = BdkdConfig { scale: 1e-6, ..hard.clone() };
        assert!((value(&batch_mean(&sharp.rows(&s, &t, &targets).unwrap())) - value(&batch_mean(&got))).abs() < 1e-12);
        let even = BdkdConfig { scale: 1e9, ..hard.clone() };
        let half = (value(&batch_mean(&reverse)) + value(&batch_mean(&forward))) / 2.0;
        assert!((value(&batch_mean(&even.rows(&s, &t, &targets).unwrap())) - half).abs() < 1e-6);
    }
}
