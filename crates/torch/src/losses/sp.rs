//! `sp`: similarity-preserving KD (Tung & Mori 2019), as RepDistiller's `Similarity` computes it:
//! features flattened to `[B, D]`, Gram matrices `G = f·fᵀ` (`B × B`), each row L2-normalised
//! (`x / max(‖x‖, 1e-12)`, PyTorch's `F.normalize`), and `‖G_t − G_s‖²_F / B²`. Student and teacher
//! may have different feature widths. RepDistiller's CIFAR setting weights it 3000 against CE.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SpConfig {}

const EPS: f64 = 1e-12;

/// The row-normalised batch Gram matrix of `features` `[B, ...]`.
fn gram(features: &Tensor) -> Result<Tensor, tch::TchError> {
    let batch = features.size()[0];
    let flat = features.f_reshape([batch, -1])?;
    let g = flat.f_mm(&flat.tr())?;
    let norms = g.f_norm_scalaropt_dim(2, &[1i64][..], true)?.f_clamp_min(EPS)?;
    Ok(g / norms)
}

pub fn sp_loss(student: &Tensor, teacher: &Tensor) -> Result<Tensor, tch::TchError> {
    let batch = student.size()[0] as f64;
    let diff = gram(teacher)? - gram(student)?;
    Ok((&diff * &diff).sum(diff.kind()) / (batch * batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{matrix, value};

    #[test]
    fn depends_only_on_pairwise_similarity() {
        let s = matrix(&[&[1.0, 0.0, 2.0], &[0.5, -1.0, 0.0], &[0.0, 1.0, 1.0]]);
        // Scaling every feature by one factor leaves the row-normalised Gram matrix unchanged.
        assert!(value(&sp_loss(&s, &(&s * 3.0)).unwrap()).abs() < 1e-12);
        let t = matrix(&[&[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]]);
        assert!(value(&sp_loss(&s, &t).unwrap()) > 0.0);
    }
}
