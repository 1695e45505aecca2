//! Per-sample weights of the objective (`kdstore train --sample-weight`): the batch's loss becomes
//! `(1/B) Σ_b v_b · l_b`, with `l_b` row b's whole objective (Σ weight · loss over the `--loss` terms,
//! each a mean of per-sample terms) and `v_b` held constant (no gradient flows through it).
//!
//! - `spl`, `spl-hard`, `spl-soft`: self-paced learning as CuDFKD computes it (ljrprocc/DFKD,
//!   `datafree/datasets/utils.py`, `curr_v` and `lambda_scheduler`, used per sample in
//!   `datafree_kd.py` at 9210e2f): `log` v = (1 + e^{−λ}) / (1 + e^{l − λ}), `hard` v = 1[l < λ],
//!   `soft` v = 1[l < λ]·(1 − l/λ), with λ = λ₀ + α·iteration, the iteration counted from 0 over the
//!   whole run (the official cap `iter_0` is never reached there and is not offered). The reduction
//!   is the official `(v*l).mean()`; the regulariser g that `curr_v` also returns is not added to
//!   the loss (the official student loss does not add it either). Defaults: λ₀ = 1 (its `--lambda_0`),
//!   α = 0.0001 (its CIFAR-10 value). In CuDFKD l is the distillation loss alone; use
//!   `--loss kd --set ce_weight=0` (or `--loss kd=… --loss ce=…` weighted as wanted) to match.
//! - EXPR: a static weight per view, a numeric SQL expression over the first teacher's rows of
//!   `labels` (`p_label`, `1 - entropy / ln(6)`, `CASE WHEN teacher_correct THEN 1 ELSE 0.2 END`, …);
//!   every training view's value must be finite and ≥ 0.

use std::collections::HashMap;

use serde::Serialize;
use tch::Tensor;

use kdstore_core::select::SelectedView;

/// How `curr_v` turns a loss into a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfPaced {
    Log,
    Hard,
    Soft,
}

/// `--sample-weight`, as recorded in results.json.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SampleWeight {
    SelfPaced { variant: SelfPaced, lambda_0: f64, alpha: f64 },
    Stored { expression: String },
}

/// The `--set spl.KEY=VALUE` keys and their defaults.
pub const SPL_KEYS: &[(&str, f64)] = &[("lambda_0", 1.0), ("alpha", 0.0001)];

impl SampleWeight {
    /// `--sample-weight NAME` with its `spl.KEY=VALUE` settings (keys without the prefix).
    pub fn parse(name: &str, settings: &[String]) -> Result<SampleWeight, String> {
        let variant = match name {
            "spl" | "spl-log" => Some(SelfPaced::Log),
            "spl-hard" => Some(SelfPaced::Hard),
            "spl-soft" => Some(SelfPaced::Soft),
            _ => None,
        };
        let Some(variant) = variant else {
            if let Some(setting) = settings.first() {
                return Err(format!("--set spl.{setting}: self-paced settings go with --sample-weight spl"));
            }
            if name.trim().is_empty() {
                return Err("--sample-weight: expected spl, spl-hard, spl-soft or an SQL expression".into());
            }
            return Ok(SampleWeight::Stored { expression: name.to_string() });
        };
        let mut values: HashMap<&str, f64> = SPL_KEYS.iter().copied().collect();
        for setting in settings {
            let (key, value) =
                setting.split_once('=').ok_or_else(|| format!("--set spl.{setting}: expected key=value"))?;
            let slot = values.get_mut(key.trim()).ok_or_else(|| {
                let known: Vec<&str> = SPL_KEYS.iter().map(|(k, _)| *k).collect();
                format!("--set spl.{setting}: unknown key {key}; expected one of {}", known.join(", "))
            })?;
            *slot = value.trim().parse().map_err(|_| format!("--set spl.{setting}: {value} is not a number"))?;
        }
        let (lambda_0, alpha) = (values["lambda_0"], values["alpha"]);
        if !(lambda_0.is_finite() && alpha.is_finite() && alpha >= 0.0) {
            return Err(format!("--sample-weight {name}: spl.lambda_0 must be finite and spl.alpha finite and >= 0, got {lambda_0} and {alpha}"));
        }
        if variant != SelfPaced::Log && lambda_0 <= 0.0 {
            return Err(format!(
                "--sample-weight {name}: spl.lambda_0 must be > 0 (the weights compare the loss with λ), got {lambda_0}"
            ));
        }
        Ok(SampleWeight::SelfPaced { variant, lambda_0, alpha })
    }
}

/// CuDFKD's `lambda_scheduler` without its cap: `λ₀ + α·iteration`.
pub fn lambda_at(lambda_0: f64, alpha: f64, iteration: usize) -> f64 {
    lambda_0 + alpha * iteration as f64
}

/// `curr_v`'s weights v of per-sample losses `l` at `lambda`, in the kind of `l`, without gradient.
pub fn self_paced_weights(variant: SelfPaced, losses: &Tensor, lambda: f64) -> Tensor {
    tch::no_grad(|| {
        let l = losses.detach();
        match variant {
            SelfPaced::Hard => l.lt(lambda).to_kind(l.kind()),
            SelfPaced::Soft => l.lt(lambda).to_kind(l.kind()) * (1.0 - &l / lambda),
            SelfPaced::Log => (1.0 + (-lambda).exp()) / ((&l - lambda).exp() + 1.0),
        }
    })
}

/// [`self_paced_weights`] of float64 values (what `kdstore loss --sample-weight` prints).
pub fn self_paced_weights_of(variant: SelfPaced, losses: &[f64], lambda: f64) -> Vec<f64> {
    let weights = self_paced_weights(variant, &Tensor::from_slice(losses), lambda);
    Vec::<f64>::try_from(weights).expect("float64 weights")
}

/// A run's resolved weighting: the rule and, for a stored expression, each selected view's weight.
pub struct SampleWeighting {
    pub rule: SampleWeight,
    /// By the view's index in the selection.
    stored: Option<Vec<f32>>,
}

impl SampleWeighting {
    /// `rule` with, for `Stored`, each selected view's weight by its index in the selection
    /// ([`stored_weight`]).
    pub fn new(rule: &SampleWeight, stored: Option<Vec<f32>>) -> SampleWeighting {
        assert_eq!(
            matches!(rule, SampleWeight::Stored { .. }),
            stored.is_some(),
            "stored weights go with a stored rule"
        );
        SampleWeighting { rule: rule.clone(), stored }
    }

    /// The weights of a batch's rows: `losses` its per-row objective, `rows` the views (indices into
    /// the selection), `iteration` the run's 0-based step.
    pub fn weights(&self, losses: &Tensor, rows: &[usize], iteration: usize) -> Tensor {
        match (&self.rule, &self.stored) {
            (SampleWeight::SelfPaced { variant, lambda_0, alpha }, _) => {
                self_paced_weights(*variant, losses, lambda_at(*lambda_0, *alpha, iteration))
            }
            (SampleWeight::Stored { .. }, Some(stored)) => {
                let values: Vec<f32> = rows.iter().map(|&row| stored[row]).collect();
                Tensor::from_slice(&values).to_device(losses.device()).to_kind(losses.kind())
            }
            (SampleWeight::Stored { .. }, None) => unreachable!("resolved with its values"),
        }
    }
}

/// `(1/B) Σ_b v_b · l_b`.
pub fn weighted_mean(weights: &Tensor, rows: &Tensor) -> Tensor {
    let product = weights * rows;
    product.mean(product.kind())
}

/// A view's stored weight, from the expression's `values` by view id: finite and not negative.
pub fn stored_weight(view: &SelectedView, value: Option<f64>) -> Result<f32, String> {
    match value {
        Some(w) if w.is_finite() && w >= 0.0 => Ok(w as f32),
        Some(w) => Err(format!(
            "view {} (sample {}, recipe {}) has a weight of {w}; weights must be finite and >= 0",
            view.view_id, view.sample_id, view.recipe
        )),
        None => Err(format!("view {} has no row to weigh it by", view.view_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap()
    }

    #[test]
    fn curr_v_variants() {
        let l = Tensor::from_slice(&[0.0f64, 0.5, 1.0, 2.0]);
        let lambda = 1.0f64;
        let log: Vec<f64> =
            [0.0f64, 0.5, 1.0, 2.0].iter().map(|x| (1.0 + (-lambda).exp()) / (1.0 + (x - lambda).exp())).collect();
        assert_eq!(values(&self_paced_weights(SelfPaced::Log, &l, lambda)), log);
        assert_eq!(values(&self_paced_weights(SelfPaced::Hard, &l, lambda)), [1.0, 1.0, 0.0, 0.0]);
        assert_eq!(values(&self_paced_weights(SelfPaced::Soft, &l, lambda)), [1.0, 0.5, 0.0, 0.0]);
        assert_eq!(lambda_at(1.0, 0.0001, 2000), 1.2);
    }

    #[test]
    fn settings_and_their_errors() {
        let spl = SampleWeight::parse("spl-soft", &["lambda_0=2".into()]).unwrap();
        assert_eq!(spl, SampleWeight::SelfPaced { variant: SelfPaced::Soft, lambda_0: 2.0, alpha: 0.0001 });
        assert!(SampleWeight::parse("spl", &["lamda=2".into()]).unwrap_err().contains("unknown key lamda"));
        assert!(SampleWeight::parse("spl-hard", &["lambda_0=0".into()]).unwrap_err().contains("must be > 0"));
        assert!(SampleWeight::parse("p_label", &["alpha=1".into()])
            .unwrap_err()
            .contains("go with --sample-weight spl"));
        assert_eq!(SampleWeight::parse("p_label", &[]).unwrap(), SampleWeight::Stored { expression: "p_label".into() });
    }

    #[test]
    fn stored_weights_must_be_finite_and_not_negative() {
        let view = crate::train::test_view(7, 3, "jitter");
        let error = stored_weight(&view, Some(-0.5)).unwrap_err();
        assert!(error.contains("view 7 (sample 3, recipe jitter) has a weight of -0.5"), "{error}");
        assert_eq!(stored_weight(&view, Some(0.25)), Ok(0.25));
        assert!(stored_weight(&view, None).unwrap_err().contains("no row to weigh it by"));
    }
}
