//! Several teachers, one target: how the K teachers' logits of a batch become what a logit loss
//! sees (`--ensemble`).
//!
//! - `mean`: the average of the teachers' probabilities at the loss's temperature T, handed to the
//!   loss as the pseudo-logits `T · log q`, so that any loss reading the teacher through
//!   `softmax(· / T)` at its own T sees exactly `q`.
//! - `camkd`: CA-MKD (Zhang et al., ICASSP 2022) as its official code (Rorozhl/CA-MKD,
//!   `helper/loops.py`) computes the logit term: per sample, each teacher's cross-entropy on the
//!   label at T = 1, `w[k,b] = (1 − softmax_k(CE[·,b])[k]) / (K − 1)`, and the KD term becomes
//!   `Σ_k Σ_b w[k,b] · T² · KL_b(t^k ‖ s) / (B · K)` (its `1/K` comes on top of weights that sum
//!   to 1, as in the code).
//! - `ebkd`: the repository's EBKD baseline: `H[k,b]` the entropy of teacher k's softmax at T = 1,
//!   `w[k,b] = 1 − H[k,b] / Σ_j H[j,b]` (not renormalised: per sample they sum to K − 1), reduced as
//!   CA-MKD's. The entropy is taken from `log_softmax`, where the official `log(softmax)` gives NaN
//!   for a probability that underflows to 0; elsewhere the two agree.
//!
//! The weights carry no gradient (the teachers run under `no_grad` there). The weighted ensembles
//! weight per-sample KL rows, so they apply to `kd`'s teacher term, the CA-MKD/EBKD logit loss;
//! its cross-entropy with the labels stays as it is.

use tch::Tensor;

use super::ce::mixed_nll;
use super::{kl_rows, log_softmax_t, LossConfig, LossError, Targets};

/// How several teachers make one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ensemble {
    Mean,
    Camkd,
    Ebkd,
}

impl Ensemble {
    pub const NAMES: &'static [&'static str] = &["mean", "camkd", "ebkd"];

    pub fn parse(name: &str) -> Result<Ensemble, String> {
        match name {
            "mean" => Ok(Ensemble::Mean),
            "camkd" => Ok(Ensemble::Camkd),
            "ebkd" => Ok(Ensemble::Ebkd),
            other => Err(format!("unknown ensemble {other}; expected one of {}", Ensemble::NAMES.join(", "))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Ensemble::Mean => "mean",
            Ensemble::Camkd => "camkd",
            Ensemble::Ebkd => "ebkd",
        }
    }
}

/// The temperature at which a loss reads its teacher, for `mean`.
pub fn temperature_of(config: &LossConfig) -> Option<f64> {
    match config {
        LossConfig::Kd(c) => Some(c.temperature),
        LossConfig::ReverseKl(c) => Some(c.temperature),
        LossConfig::Jsd(c) => Some(c.temperature),
        LossConfig::Dist(c) => Some(c.tau),
        LossConfig::Dkd(c) => Some(c.temperature),
        LossConfig::Mixkd(c) => Some(c.temperature),
        LossConfig::TfkdSelf(c) => Some(c.temperature),
        LossConfig::Bdkd(c) => Some(c.temperature),
        LossConfig::Ce(_)
        | LossConfig::Sp(_)
        | LossConfig::Sk(_)
        | LossConfig::Dlkd(_)
        | LossConfig::Tfkd(_)
        | LossConfig::Pskd(_)
        | LossConfig::Mmd(_) => None,
    }
}

/// `T · log(mean_k softmax(t^k / T))`: logits whose softmax at T is the teachers' mean.
pub fn mean_target(teachers: &[Tensor], temperature: f64) -> Result<Tensor, tch::TchError> {
    weighted_target(teachers, &vec![1.0 / teachers.len() as f64; teachers.len()], temperature)
}

/// `T · log(Σ_k w_k softmax(t^k / T))` for fixed weights summing to 1 (the `de` ensemble).
pub fn weighted_target(teachers: &[Tensor], weights: &[f64], temperature: f64) -> Result<Tensor, tch::TchError> {
    tch::no_grad(|| {
        let mut mixture: Option<Tensor> = None;
        for (teacher, &weight) in teachers.iter().zip(weights) {
            let part = log_softmax_t(teacher, temperature)?.f_exp()? * weight;
            mixture = Some(match mixture {
                Some(sum) => sum + part,
                None => part,
            });
        }
        let mixture = mixture.ok_or_else(|| tch::TchError::Kind("an ensemble of no teachers".into()))?;
        Ok(mixture.f_log()? * temperature)
    })
}

/// The weights `[K, B]` of a weighted ensemble, from the teachers' raw logits and the targets.
pub fn weights(ensemble: Ensemble, teachers: &[Tensor], targets: &Targets) -> Result<Tensor, tch::TchError> {
    let k = teachers.len() as f64;
    tch::no_grad(|| match ensemble {
        Ensemble::Camkd => {
            let losses: Vec<Tensor> = teachers
                .iter()
                .map(|t| mixed_nll(&t.f_log_softmax(-1, t.kind())?, targets))
                .collect::<Result<_, _>>()?;
            let losses = Tensor::f_stack(&losses, 0)?;
            Ok((1.0 - losses.f_softmax(0, losses.kind())?) / (k - 1.0))
        }
        Ensemble::Ebkd => {
            let entropies: Vec<Tensor> = teachers
                .iter()
                .map(|t| {
                    let log_p = t.f_log_softmax(-1, t.kind())?;
                    Ok::<_, tch::TchError>(-(log_p.exp() * &log_p).f_sum_dim_intlist(-1, false, t.kind())?)
                })
                .collect::<Result<_, _>>()?;
            let entropies = Tensor::f_stack(&entropies, 0)?;
            let total = entropies.f_sum_dim_intlist(0, true, entropies.kind())?;
            Ok(1.0 - entropies / total)
        }
        Ensemble::Mean => {
            let b = teachers[0].size()[0];
            Ok(Tensor::full([teachers.len() as i64, b], 1.0 / k, (teachers[0].kind(), teachers[0].device())))
        }
    })
}

/// `Σ_k w[k,b] · T² · KL(softmax(t^k_b/T) ‖ softmax(s_b/T)) / K` of each row b; their batch mean is
/// CA-MKD's reduction, `/ (B · K)`.
pub fn weighted_kd_rows(
    student: &Tensor,
    teachers: &[Tensor],
    weights: &Tensor,
    temperature: f64,
) -> Result<Tensor, tch::TchError> {
    let log_q = log_softmax_t(student, temperature)?;
    let rows: Vec<Tensor> = teachers
        .iter()
        .map(|t| kl_rows(&log_softmax_t(&t.detach(), temperature)?, &log_q))
        .collect::<Result<_, _>>()?;
    let rows = Tensor::f_stack(&rows, 0)? * (temperature * temperature);
    Ok((rows * weights).f_sum_dim_intlist(0, false, student.kind())? / teachers.len() as f64)
}

/// The value of `config` with `teachers` combined by `ensemble` (per row with `per_row`, as
/// [`LossConfig::compute`] gives it); `compute` runs the loss on a single teacher's logits (the mean
/// target), `targets` are the batch's labels.
pub fn compute(
    config: &LossConfig,
    ensemble: Ensemble,
    student: &Tensor,
    teachers: &[Tensor],
    targets: &Targets,
    per_row: bool,
    compute: impl FnOnce(&Tensor) -> Result<Tensor, LossError>,
) -> Result<Tensor, LossError> {
    let name = config.name();
    let input = |detail: String| LossError::Input { loss: name, detail };
    if teachers.len() < 2 {
        return Err(input(format!(
            "an ensemble ({}) needs at least two teachers, got {}",
            ensemble.name(),
            teachers.len()
        )));
    }
    match (ensemble, config) {
        (Ensemble::Mean, _) => {
            let temperature = temperature_of(config)
                .ok_or_else(|| input("reads no teacher logits, so it has nothing to ensemble".into()))?;
            compute(&mean_target(teachers, temperature)?)
        }
        (Ensemble::Camkd | Ensemble::Ebkd, LossConfig::Kd(kd)) => {
            let weights = weights(ensemble, teachers, targets)?;
            let mut rows = weighted_kd_rows(student, teachers, &weights, kd.temperature)? * kd.kd_weight;
            if kd.ce_weight != 0.0 {
                rows += super::ce::ce_rows(student, targets)? * kd.ce_weight;
            }
            Ok(if per_row { rows } else { super::batch_mean(&rows) })
        }
        (_, _) => Err(input(format!(
            "the {} ensemble weights per-sample KL terms, which only kd has (CA-MKD's and EBKD's logit loss); use --ensemble mean with {name}",
            ensemble.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{kd::KdConfig, matrix, value, LossInputs};

    /// The test vector of docs/notes/multi-teacher-targets.md (a transcription of the official code).
    fn fixture() -> (Tensor, Vec<Tensor>, Targets) {
        let student = matrix(&[&[1.0, 2.0, 0.5, -1.0], &[0.2, -0.3, 1.5, 0.0]]);
        let teachers = vec![
            matrix(&[&[2.0, 1.0, 0.0, -1.0], &[0.0, 0.5, 3.0, -0.5]]),
            matrix(&[&[0.5, 2.5, 0.1, 0.0], &[1.0, 1.0, 1.0, 1.0]]),
            matrix(&[&[-1.0, 0.0, 4.0, 1.0], &[0.3, 0.2, 0.1, 2.0]]),
        ];
        (student, teachers, Targets::plain(Tensor::from_slice(&[1i64, 2]), 4))
    }

    fn term_only() -> LossConfig {
        LossConfig::Kd(KdConfig { temperature: 4.0, ce_weight: 0.0, kd_weight: 1.0 })
    }

    fn run(ensemble: Ensemble) -> f64 {
        let (student, teachers, targets) = fixture();
        let config = term_only();
        let single = |teacher: &Tensor| {
            config.compute(&crate::losses::LossInputs { teacher: Some(teacher), ..LossInputs::new(&student, &targets) })
        };
        value(&compute(&config, ensemble, &student, &teachers, &targets, false, single).unwrap())
    }

    #[test]
    fn camkd_and_ebkd_match_the_official_arithmetic() {
        assert!((run(Ensemble::Camkd) - 0.12588812282347384).abs() < 1e-12, "{}", run(Ensemble::Camkd));
        assert!((run(Ensemble::Ebkd) - 0.6374525728582948).abs() < 1e-12, "{}", run(Ensemble::Ebkd));
        let (_, teachers, targets) = fixture();
        let camkd = weights(Ensemble::Camkd, &teachers, &targets).unwrap();
        assert!((value(&camkd.sum_dim_intlist(0, false, camkd.kind()).mean(camkd.kind())) - 1.0).abs() < 1e-12);
        let ebkd = weights(Ensemble::Ebkd, &teachers, &targets).unwrap();
        assert!((value(&ebkd.sum_dim_intlist(0, false, ebkd.kind()).mean(ebkd.kind())) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn the_mean_target_is_the_mean_of_the_probabilities_at_the_loss_temperature() {
        let (_, teachers, _) = fixture();
        let target = mean_target(&teachers, 4.0).unwrap();
        let got = (target / 4.0).softmax(-1, tch::Kind::Double);
        let want = (teachers[0].shallow_clone() / 4.0).softmax(-1, tch::Kind::Double)
            + (teachers[1].shallow_clone() / 4.0).softmax(-1, tch::Kind::Double)
            + (teachers[2].shallow_clone() / 4.0).softmax(-1, tch::Kind::Double);
        assert!(value(&(got - want / 3.0).abs().max()) < 1e-12);
    }

    #[test]
    fn one_teacher_or_a_loss_without_rows_is_refused() {
        let (student, teachers, targets) = fixture();
        let error =
            compute(&term_only(), Ensemble::Camkd, &student, &teachers[..1], &targets, false, |_| unreachable!());
        assert!(error.unwrap_err().to_string().contains("at least two teachers"));
        let dist = LossConfig::parse("dist", &[]).unwrap();
        let error = compute(&dist, Ensemble::Ebkd, &student, &teachers, &targets, false, |_| unreachable!());
        assert!(error.unwrap_err().to_string().contains("use --ensemble mean"));
    }
}
