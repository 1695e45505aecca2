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
/// of the own label (λ = 1 for unmixed views); and the target distribution they make.
pub struct Targets {
    pub labels: Tensor,
    pub partner_labels: Tensor,
    pub lam: Tensor,
    /// `λ·onehot(y) + (1 − λ)·onehot(y_partner)`, `[batch, classes]`.
    pub distribution: Tensor,
}

impl Targets {
    pub fn new(labels: Tensor, partner_labels: Tensor, lam: Tensor, classes: i64) -> Targets {
        let weight = lam.unsqueeze(1);
        let own = labels.one_hot(classes).to_kind(lam.kind());
        let partner = partner_labels.one_hot(classes).to_kind(lam.kind());
        let distribution = own * &weight + partner * (1.0 - &weight);
        Targets { labels, partner_labels, lam, distribution }
    }

    /// Plain labels: every λ is 1.
    pub fn plain(labels: Tensor, classes: i64) -> Targets {
        let lam = Tensor::ones(labels.size(), (tch::Kind::Float, labels.device()));
        Targets::new(labels.shallow_clone(), labels, lam, classes)
    }

    /// Targets of a batch's rows, the distribution built here rather than with tensor operations
    /// (the training loop's hot path).
    pub fn of_rows(
        labels: &[i64],
        partner_labels: &[i64],
        lam: &[f32],
        classes: usize,
        device: tch::Device,
    ) -> Targets {
        let mut distribution = vec![0.0f32; labels.len() * classes];
        for (row, ((&own, &partner), &lam)) in labels.iter().zip(partner_labels).zip(lam).enumerate() {
            distribution[row * classes + own as usize] += lam;
            distribution[row * classes + partner as usize] += 1.0 - lam;
        }
        Targets {
            labels: Tensor::from_slice(labels).to_device(device),
            partner_labels: Tensor::from_slice(partner_labels).to_device(device),
            lam: Tensor::from_slice(lam).to_device(device),
            distribution: Tensor::from_slice(&distribution)
                .view([labels.len() as i64, classes as i64])
                .to_device(device),
        }
    }
}

/// Per-sample mixed cross-entropy of `log_p` (log-probabilities `[batch, classes]`):
/// `−Σ_c target_c · log p_c`, i.e. `−(λ·log p_y + (1 − λ)·log p_partner)`.
pub fn mixed_nll(log_p: &Tensor, targets: &Targets) -> Result<Tensor, tch::TchError> {
    Ok(-(log_p * &targets.distribution).f_sum_dim_intlist(1, false, log_p.kind())?)
}

/// Cross-entropy with the (mixed) labels of each row.
pub fn ce_rows(student: &Tensor, targets: &Targets) -> Result<Tensor, tch::TchError> {
    mixed_nll(&student.f_log_softmax(-1, student.kind())?, targets)
}

/// Cross-entropy with the (mixed) labels, batch mean.
pub fn cross_entropy(student: &Tensor, targets: &Targets) -> Result<Tensor, tch::TchError> {
    let per_sample = ce_rows(student, targets)?;
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
        let plain = Targets::plain(Tensor::from_slice(&[0i64, 2]), 3);
        let want = ((l0 - 2.0) + (l1 - 1.0)) / 2.0;
        assert!((value(&cross_entropy(&z, &plain).unwrap()) - want).abs() < 1e-12);
        let mixed = Targets::new(
            Tensor::from_slice(&[0i64, 2]),
            Tensor::from_slice(&[1i64, 2]),
            Tensor::from_slice(&[0.25f32, 1.0]),
            3,
        );
        let want = (0.25 * (l0 - 2.0) + 0.75 * (l0 - 0.0) + (l1 - 1.0)) / 2.0;
        assert!((value(&cross_entropy(&z, &mixed).unwrap()) - want).abs() < 1e-7);
        let rows = Targets::of_rows(&[0, 2], &[1, 2], &[0.25, 1.0], 3, tch::Device::Cpu);
        assert_eq!(Vec::<f32>::try_from(rows.distribution.flatten(0, -1)).unwrap(), [0.25, 0.75, 0.0, 0.0, 0.0, 1.0]);
    }
}
