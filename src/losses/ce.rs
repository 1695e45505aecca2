//! `ce`: cross-entropy with the labels, no teacher — the student trained from scratch on the same
//! views. For a mixed view the target is mixed as the input was: λ·CE(y) + (1−λ)·CE(y_partner)
//! (mixup's loss; for λ = 1 it is the ordinary CE), averaged over the batch.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CeConfig {}

/// Hard targets of a batch: the label, and for mixed views the partner's label and the weight λ
/// of the own label (λ = 1 for unmixed views).
pub struct Targets {
    pub labels: Tensor,
    pub partner_labels: Tensor,
    pub lam: Tensor,
}

impl Targets {
    /// Plain labels: every λ is 1.
    pub fn plain(labels: Tensor) -> Targets {
        let lam = Tensor::ones(labels.size(), (tch::Kind::Float, labels.device()));
        Targets { partner_labels: labels.shallow_clone(), labels, lam }
    }
}

/// Per-sample mixed cross-entropy of `log_p` (log-probabilities `[batch, classes]`).
pub fn mixed_nll(log_p: &Tensor, targets: &Targets) -> Result<Tensor, tch::TchError> {
    let own = log_p.f_gather(1, &targets.labels.unsqueeze(1), false)?.squeeze_dim(1);
    let partner = log_p.f_gather(1, &targets.partner_labels.unsqueeze(1), false)?.squeeze_dim(1);
    let lam = targets.lam.to_kind(log_p.kind());
    let other: Tensor = 1.0 - &lam;
    Ok(-(&lam * own + other * partner))
}

/// Cross-entropy with the (mixed) labels, batch mean.
pub fn cross_entropy(student: &Tensor, targets: &Targets) -> Result<Tensor, tch::TchError> {
    let per_sample = mixed_nll(&student.f_log_softmax(-1, student.kind())?, targets)?;
    Ok(per_sample.mean(per_sample.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{matrix, value};

    #[test]
    fn plain_and_mixed_targets() {
        let z = matrix(&[&[2.0, 0.0, -1.0], &[0.5, 0.5, 1.0]]);
        let lse = |r: [f64; 3]| r.iter().map(|v| v.exp()).sum::<f64>().ln();
        let (l0, l1) = (lse([2.0, 0.0, -1.0]), lse([0.5, 0.5, 1.0]));
        let plain = Targets::plain(Tensor::from_slice(&[0i64, 2]));
        let want = ((l0 - 2.0) + (l1 - 1.0)) / 2.0;
        assert!((value(&cross_entropy(&z, &plain).unwrap()) - want).abs() < 1e-12);
        let mixed = Targets {
            labels: Tensor::from_slice(&[0i64, 2]),
            partner_labels: Tensor::from_slice(&[1i64, 2]),
            lam: Tensor::from_slice(&[0.25f32, 1.0]),
        };
        let want = (0.25 * (l0 - 2.0) + 0.75 * (l0 - 0.0) + (l1 - 1.0)) / 2.0;
        assert!((value(&cross_entropy(&z, &mixed).unwrap()) - want).abs() < 1e-7);
    }
}
