//! `dist`: DIST, "Knowledge Distillation from A Stronger Teacher" (Huang et al. 2022), as the
//! official `DIST` class computes it (hunto/image_classification_sota, `lib/models/losses/dist_kd.py`):
//! with `Y = softmax(z/τ)`, the inter-class term `τ²·(1 − mean_b ρ(Y_s[b,:], Y_t[b,:]))` and the
//! intra-class term `τ²·(1 − mean_c ρ(Y_s[:,c], Y_t[:,c]))`, ρ the Pearson correlation computed as
//! the cosine of the mean-centred vectors with `1e-8` added to the product of their norms; the loss
//! is `β·inter + γ·intra`. The CE term is separate (`ce`); the paper's CIFAR setting is τ = 4 with the
//! DIST term weighted 2 against CE.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{non_negative, positive};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DistConfig {
    /// Weight β of the inter-class relation.
    #[serde(default = "one")]
    pub beta: f64,
    /// Weight γ of the intra-class relation.
    #[serde(default = "one")]
    pub gamma: f64,
    /// Softmax temperature τ (each term is multiplied by τ²).
    #[serde(default = "one")]
    pub tau: f64,
}

fn one() -> f64 {
    1.0
}

const EPS: f64 = 1e-8;

impl DistConfig {
    pub fn validate(&self) -> Vec<String> {
        [non_negative("beta", self.beta), non_negative("gamma", self.gamma), positive("tau", self.tau)]
            .into_iter()
            .flatten()
            .collect()
    }

    pub fn compute(&self, student: &Tensor, teacher: &Tensor) -> Result<Tensor, tch::TchError> {
        let kind = student.kind();
        let y_s = (student / self.tau).f_softmax(-1, kind)?;
        let y_t = (teacher / self.tau).f_softmax(-1, kind)?;
        let scale = self.tau * self.tau;
        let inter = relation(&y_s, &y_t)? * scale;
        let intra = relation(&y_s.tr(), &y_t.tr())? * scale;
        Ok(inter * self.beta + intra * self.gamma)
    }
}

/// `1 − mean over rows of ρ(a[row], b[row])`.
fn relation(a: &Tensor, b: &Tensor) -> Result<Tensor, tch::TchError> {
    let kind = a.kind();
    let centred = |x: &Tensor| -> Result<Tensor, tch::TchError> { Ok(x - x.f_mean_dim(&[1i64][..], true, kind)?) };
    let (a, b) = (centred(a)?, centred(b)?);
    let dot = (&a * &b).f_sum_dim_intlist(&[1i64][..], false, kind)?;
    let norms = a.f_norm_scalaropt_dim(2, &[1i64][..], false)? * b.f_norm_scalaropt_dim(2, &[1i64][..], false)?;
    let pearson = dot / (norms + EPS);
    Ok(1.0 - pearson.mean(kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{matrix, value};

    #[test]
    fn identical_logits_cost_nothing_and_tau_squares() {
        let z = matrix(&[&[1.0, -0.5, 2.0], &[0.1, 0.2, 0.3], &[2.0, 2.0, -1.0]]);
        let config = DistConfig { beta: 1.0, gamma: 1.0, tau: 1.0 };
        // Not exactly 0: the official 1e-8 added to the norms' product weighs on small columns.
        let same = value(&config.compute(&z, &z).unwrap());
        assert!(same > 0.0 && same < 1e-5, "{same}");
        let t = matrix(&[&[3.0, 0.0, -1.0], &[-2.0, 1.0, 0.5], &[0.0, 1.0, 0.0]]);
        let loss = value(&config.compute(&z, &t).unwrap());
        assert!(loss > 0.0 && loss <= 4.0, "{loss}");
    }
}
