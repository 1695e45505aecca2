//! Distillation losses on tch tensors, one per file. Each takes student logits, stored teacher
//! logits and the batch's targets, and returns a scalar loss averaged over the batch.

pub mod kd;

use tch::{Kind, Tensor};

/// Hard targets of a batch: the label, and for mixed views the partner's label and the weight λ
/// of the own label (λ = 1 for unmixed views).
pub struct Targets {
    pub labels: Tensor,
    pub partner_labels: Tensor,
    pub lam: Tensor,
}

/// Cross-entropy with the labels, mixed as the inputs were: λ·CE(y) + (1−λ)·CE(y_partner), batch mean.
pub fn cross_entropy(student: &Tensor, targets: &Targets) -> Result<Tensor, tch::TchError> {
    let log_p = student.f_log_softmax(-1, Kind::Float)?;
    let own = log_p.f_gather(1, &targets.labels.unsqueeze(1), false)?.squeeze_dim(1);
    let partner = log_p.f_gather(1, &targets.partner_labels.unsqueeze(1), false)?.squeeze_dim(1);
    let other: Tensor = 1.0 - &targets.lam;
    let per_sample: Tensor = -(&targets.lam * own + other * partner);
    Ok(per_sample.mean(Kind::Float))
}
