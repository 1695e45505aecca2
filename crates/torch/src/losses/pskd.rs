//! `pskd`: Progressive Self-Knowledge Distillation (Kim et al. 2021), as the official code computes
//! it (lgcnsai/PS-KD-Pytorch, `main.py` and `loss/pskd_loss.py`): the target of a sample mixes its
//! label with the student's own prediction of it in the previous epoch,
//! `(1 − α_t)·y + α_t·softmax(z_prev)`, and the loss is the soft-target cross-entropy
//! `(1/B) Σ_b Σ_c −target·log_softmax(z_s)`, no temperature, no separate CE. In training,
//! `α_t = alpha·(epoch + 1)/epochs` with 0-based epochs (so `alpha` is reached in the last epoch), and
//! in the first epoch the previous prediction is the label itself (the official code fills its buffer
//! with one-hot targets at epoch 0). `kdstore loss pskd` takes the previous epoch's logits as
//! `--teacher` and α_t as `alpha`. Default α_T = 0.8, the official one. For a mixed view, y is the
//! λ-mixed label.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::Targets;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PskdConfig {
    /// α_T, the weight of the previous prediction in the last epoch (in `kdstore loss`: α_t itself).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

fn default_alpha() -> f64 {
    0.8
}

impl PskdConfig {
    pub fn validate(&self) -> Vec<String> {
        super::fraction("alpha", self.alpha).into_iter().collect()
    }

    /// α_t at a 1-based `epoch` of `epochs`, or `alpha` itself outside training.
    pub fn alpha_at(&self, progress: Option<(usize, usize)>) -> f64 {
        match progress {
            Some((epoch, epochs)) => (self.alpha * epoch as f64 / epochs.max(1) as f64).max(0.0),
            None => self.alpha,
        }
    }

    /// Per-sample values: `previous` the rows' logits of the previous epoch (`None`: the labels),
    /// `progress` the 1-based epoch and the number of epochs.
    pub fn rows(
        &self,
        student: &Tensor,
        previous: Option<&Tensor>,
        targets: &Targets,
        progress: Option<(usize, usize)>,
    ) -> Result<Tensor, tch::TchError> {
        let labels = targets.distribution.to_kind(student.kind());
        let soft = match previous {
            Some(previous) => {
                let alpha = self.alpha_at(progress);
                let predicted = tch::no_grad(|| previous.detach().f_softmax(-1, student.kind()))?;
                &labels * (1.0 - alpha) + predicted * alpha
            }
            None => labels,
        };
        let log_p = student.f_log_softmax(-1, student.kind())?;
        Ok(-(log_p * soft).f_sum_dim_intlist(-1, false, student.kind())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{batch_mean, matrix, value};

    #[test]
    fn mixes_the_label_with_the_previous_prediction() {
        let z = matrix(&[&[0.5, -1.0, 2.0]]);
        let previous = matrix(&[&[1.0, 1.0, 0.0]]);
        let targets = Targets::plain(Tensor::from_slice(&[2i64]), 3);
        let config = PskdConfig { alpha: 0.8 };
        let lse = (0.5f64.exp() + (-1.0f64).exp() + 2.0f64.exp()).ln();
        let log_p = [0.5 - lse, -1.0 - lse, 2.0 - lse];
        let q = {
            let e = [1f64.exp(), 1f64.exp(), 1.0];
            let total: f64 = e.iter().sum();
            e.map(|v| v / total)
        };
        // Epoch 5 of 10: α_t = 0.4.
        let target = [0.4 * q[0], 0.4 * q[1], 0.6 + 0.4 * q[2]];
        let want: f64 = -target.iter().zip(log_p).map(|(t, l)| t * l).sum::<f64>();
        let got = value(&batch_mean(&config.rows(&z, Some(&previous), &targets, Some((5, 10))).unwrap()));
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        let first = value(&batch_mean(&config.rows(&z, None, &targets, Some((1, 10))).unwrap()));
        assert!((first - (lse - 2.0)).abs() < 1e-12);
    }
}
