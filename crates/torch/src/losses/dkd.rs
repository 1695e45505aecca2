//! `dkd`: Decoupled KD (Zhao et al. 2022), as mdistiller's `dkd_loss` computes it. With
//! `p = softmax(z/T)`: TCKD is the KL between the binary distributions
//! `[p_y, Σ_{j≠y} p_j]` of teacher and student (the non-target mass summed, not 1 − p_y; `log`
//! without epsilon), NCKD the KL between `softmax(z/T − 1000·onehot(y))` of teacher and student
//! (the target class masked out by subtracting 1000 after dividing by T); each summed over the
//! batch, times T², divided by B. The loss is `min(epoch / warmup, 1) · (α·TCKD + β·NCKD)`, epochs
//! counted from 1; `kdstore loss` reports the value after warm-up. CE is separate (`ce`, weight 1 in
//! mdistiller). Defaults are mdistiller's: α = 1, β = 8, T = 4, warm-up 20 epochs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{kl_rows, non_negative, positive, Targets};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DkdConfig {
    /// Weight α of the target-class term TCKD.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Weight β of the non-target-class term NCKD.
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// Softmax temperature T (both terms are multiplied by T²).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Epochs over which the loss ramps up linearly, min(epoch / warmup, 1).
    #[serde(default = "default_warmup")]
    pub warmup: f64,
}

fn default_alpha() -> f64 {
    1.0
}
fn default_beta() -> f64 {
    8.0
}
fn default_temperature() -> f64 {
    4.0
}
fn default_warmup() -> f64 {
    20.0
}

impl DkdConfig {
    pub fn validate(&self) -> Vec<String> {
        [
            non_negative("alpha", self.alpha),
            non_negative("beta", self.beta),
            positive("temperature", self.temperature),
            positive("warmup", self.warmup),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Per-sample values; their batch mean is the loss (mdistiller's sums over the batch divided by B).
    pub fn rows(
        &self,
        student: &Tensor,
        teacher: &Tensor,
        targets: &Targets,
        epoch: Option<usize>,
    ) -> Result<Tensor, tch::TchError> {
        let (tckd, nckd) = self.terms(student, teacher, &targets.labels)?;
        let ramp = epoch.map_or(1.0, |e| (e as f64 / self.warmup).min(1.0));
        Ok((tckd * self.alpha + nckd * self.beta) * ramp)
    }

    /// (TCKD, NCKD) of each row, each already multiplied by T².
    pub fn terms(
        &self,
        student: &Tensor,
        teacher: &Tensor,
        labels: &Tensor,
    ) -> Result<(Tensor, Tensor), tch::TchError> {
        let (t, kind) = (self.temperature, student.kind());
        let classes = student.size()[1];
        let gt = labels.f_one_hot(classes)?.to_kind(kind);
        let other: Tensor = 1.0 - &gt;
        let binary = |z: &Tensor| -> Result<Tensor, tch::TchError> {
            let p = (z / t).f_softmax(-1, kind)?;
            let target = (&p * &gt).f_sum_dim_intlist(&[1i64][..], true, kind)?;
            let rest = (&p * &other).f_sum_dim_intlist(&[1i64][..], true, kind)?;
            Tensor::f_cat(&[target, rest], 1)?.f_log()
        };
        let tckd = kl_rows(&binary(teacher)?, &binary(student)?)? * (t * t);
        let masked = |z: &Tensor| -> Result<Tensor, tch::TchError> { (z / t - &gt * 1000.0).f_log_softmax(-1, kind) };
        let nckd = kl_rows(&masked(teacher)?, &masked(student)?)? * (t * t);
        Ok((tckd, nckd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::kd::kd_term;
    use crate::losses::{matrix, value};
    use tch::Kind;

    #[test]
    fn tckd_plus_nckd_weighted_by_the_target_mass_is_kd() {
        // KL(p_t ‖ p_s) = TCKD + (1 − p_t,y)·NCKD exactly (the DKD paper's decomposition).
        let s = matrix(&[&[1.0, -0.5, 2.0, 0.3], &[0.1, 0.2, 0.3, -1.0]]);
        let t = matrix(&[&[3.0, 0.0, -1.0, 0.5], &[-2.0, 1.0, 0.5, 0.0]]);
        let labels = Tensor::from_slice(&[0i64, 1]);
        let config = DkdConfig { alpha: 1.0, beta: 1.0, temperature: 1.0, warmup: 20.0 };
        let (tckd, nckd) = config.terms(&s, &t, &labels).unwrap();
        let (tckd, nckd) = (tckd.sum(Kind::Double), nckd.sum(Kind::Double));
        let p_t = t.softmax(-1, Kind::Double);
        let p_target = [p_t.double_value(&[0, 0]), p_t.double_value(&[1, 1])];
        // Per-sample NCKD weights differ, so check on one sample at a time.
        for (row, &p) in p_target.iter().enumerate() {
            let pick = |x: &Tensor| x.narrow(0, row as i64, 1);
            let label = labels.narrow(0, row as i64, 1);
            let (tc, nc) = config.terms(&pick(&s), &pick(&t), &label).unwrap();
            let kd = value(&kd_term(&pick(&s), &pick(&t), 1.0).unwrap());
            let (tc, nc) = (value(&tc.sum(Kind::Double)), value(&nc.sum(Kind::Double)));
            assert!((tc + (1.0 - p) * nc - kd).abs() < 1e-9);
        }
        assert!(value(&tckd) > 0.0 && value(&nckd) > 0.0);
    }

    #[test]
    fn warm_up_ramps_linearly() {
        let s = matrix(&[&[1.0, -0.5, 2.0]]);
        let t = matrix(&[&[3.0, 0.0, -1.0]]);
        let targets = Targets::plain(Tensor::from_slice(&[2i64]), 3);
        let config = DkdConfig { alpha: 1.0, beta: 8.0, temperature: 4.0, warmup: 20.0 };
        let full = value(&config.rows(&s, &t, &targets, None).unwrap().sum(Kind::Double));
        let early = value(&config.rows(&s, &t, &targets, Some(5)).unwrap().sum(Kind::Double));
        assert!((early - full * 0.25).abs() < 1e-12);
        assert_eq!(value(&config.rows(&s, &t, &targets, Some(40)).unwrap().sum(Kind::Double)), full);
    }
}
