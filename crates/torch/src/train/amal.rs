//! AMAL (`kdstore train --ensemble amal`): per-sample mixing weights of the CE and of each teacher's
//! KD term, learnt by a one-step lookahead on the student's last layer, as durgas16/AMAL computes
//! them (`KD/train_distill.py`, `KD/LearnMultiLambdaMeta.py` at 6c4764b).
//!
//! - The weights λ are a `[samples, 1 + teachers]` table keyed by training sample (not by view):
//!   column 0 weighs CE, column m + 1 teacher m's KD. They start at kd's `ce_weight` and
//!   `kd_weight` (0.1 and 0.9, the official `--lam 0.9` with CE = 1 − 0.9) and are not normalised.
//! - A batch's loss is `(1/B) Σ_b [λ_b0·CE_b + Σ_m λ_b,m+1·T²·KL(p_t,m ‖ p_s)_b]` at kd's T.
//! - At the start of every epoch e (0-based) with `e % select_every == 0` and `e ≥ select_every`,
//!   the student (evaluation mode) is run over the training samples, one view each, in batches of
//!   `--batch-size` from the epoch's AMAL seed, grouped `grad_fit` batches at a time. For each
//!   sample i and term k the gradient of the batch-mean term with respect to the last layer,
//!   `g_ik ⊗ [1, e_i]` (g the logit gradient: (softmax(z) − y)/B for CE, (T/B)(softmax(z/T) −
//!   softmax(t/T)) for KD with `batchmean`·T²; e the penultimate features), is kept; the lookahead
//!   last layer θ' = θ − η·Σ_ik λ_ik·g_ik⊗[1, e_i] (η the epoch's learning rate, momentum and decay
//!   ignored, as the official code does) is evaluated on one validation batch of `val_batch` views
//!   (cycling through the validation split in the AMAL seed's order), and `inner_steps` (5) times
//!   λ_ik ← clamp(λ_ik − meta_lr·∂CE_val(θ')/∂λ_ik, 1e-7, 2 − 1e-7) with meta_lr 1500. The official
//!   code gets ∂CE_val/∂λ from autograd; here it is the closed form
//!   −η·⟨∇_θ' CE_val, g_ik⊗[1, e_i]⟩, checked against autograd through a real lookahead in the tests.
//! - The table is part of the checkpoint, so `--resume` is bit-exact.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::batches::{epoch_plan, BatchSource, SampleViews};
use super::data::SplitData;
use super::sample_rows::SampleRows;
use super::student::Student;
use super::{TrainError, ViewsPerEpoch};
use crate::losses::Targets;
use kdstore_core::augment::seed::purpose_seed;
use kdstore_core::select::SelectedView;

/// AMAL's settings (`--set amal.KEY=VALUE`), defaults from the official CIFAR-100 configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AmalSettings {
    pub select_every: usize,
    pub meta_lr: f64,
    pub inner_steps: usize,
    pub grad_fit: usize,
    pub val_batch: usize,
    /// The KD temperature: the run's kd term's (resolved before training, not a setting).
    #[serde(skip)]
    pub temperature: f64,
}

impl Default for AmalSettings {
    fn default() -> Self {
        AmalSettings {
            select_every: 10,
            meta_lr: 1500.0,
            inner_steps: 5,
            grad_fit: 3,
            val_batch: 1000,
            temperature: 4.0,
        }
    }
}

impl AmalSettings {
    pub const KEYS: &'static [&'static str] = &["select_every", "meta_lr", "inner_steps", "grad_fit", "val_batch"];

    /// From `KEY=VALUE` settings (without the `amal.` prefix).
    pub fn parse(settings: &[String]) -> Result<AmalSettings, String> {
        let mut parsed = AmalSettings::default();
        for setting in settings {
            let (key, value) =
                setting.split_once('=').ok_or_else(|| format!("--set amal.{setting}: expected key=value"))?;
            let number: f64 =
                value.trim().parse().map_err(|_| format!("--set amal.{setting}: {value} is not a number"))?;
            let count = || -> Result<usize, String> {
                (number >= 1.0 && number.fract() == 0.0)
                    .then_some(number as usize)
                    .ok_or_else(|| format!("--set amal.{setting}: {key} must be a whole number >= 1"))
            };
            match key.trim() {
                "select_every" => parsed.select_every = count()?,
                "inner_steps" => parsed.inner_steps = count()?,
                "grad_fit" => parsed.grad_fit = count()?,
                "val_batch" => parsed.val_batch = count()?,
                "meta_lr" if number.is_finite() && number > 0.0 => parsed.meta_lr = number,
                "meta_lr" => return Err(format!("--set amal.{setting}: meta_lr must be > 0")),
                other => {
                    return Err(format!(
                        "--set amal.{setting}: unknown key {other}; expected one of {}",
                        AmalSettings::KEYS.join(", ")
                    ))
                }
            }
        }
        Ok(parsed)
    }

    /// Whether the weights are updated before 0-based `epoch`.
    pub fn updates_before(&self, epoch: usize) -> bool {
        epoch >= self.select_every && epoch.is_multiple_of(self.select_every)
    }
}

/// Where one term's per-sample weights ended.
#[derive(Debug, Clone, Serialize)]
pub struct WeightSummary {
    pub term: String,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// The clamp of the official code.
const LOWEST: f64 = 1e-7;
const HIGHEST: f64 = 2.0 - 1e-7;

/// The per-sample mixing weights of a run.
pub struct MixingWeights {
    rows: SampleRows,
    /// `[samples, 1 + teachers]`, row-major.
    values: Vec<f32>,
    columns: usize,
}

const FILE: &str = "amal-weights.safetensors";

impl MixingWeights {
    /// Every sample of `rows` starts at `ce` for CE and `kd` for each of `teachers`.
    pub fn new(rows: SampleRows, teachers: usize, ce: f64, kd: f64) -> MixingWeights {
        let columns = teachers + 1;
        let row: Vec<f32> = std::iter::once(ce as f32).chain(std::iter::repeat_n(kd as f32, teachers)).collect();
        let values = row.iter().copied().cycle().take(rows.len() * columns).collect();
        MixingWeights { rows, values, columns }
    }

    /// The weights of a batch's rows, `[B, 1 + teachers]`.
    pub fn batch(&self, views: &[&SelectedView], device: Device) -> Tensor {
        let c = self.columns;
        let mut values = Vec::with_capacity(views.len() * c);
        for view in views {
            let row = self.rows.row(view.sample_id);
            values.extend_from_slice(&self.values[row * c..(row + 1) * c]);
        }
        Tensor::from_slice(&values).view([views.len() as i64, c as i64]).to_device(device)
    }

    /// Sets the weights of `views`' samples to the rows of `weights` `[G, 1 + teachers]`.
    fn set(&mut self, views: &[&SelectedView], weights: &Tensor) -> Result<(), tch::TchError> {
        let c = self.columns;
        let values = Vec::<f32>::try_from(weights.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))?;
        for (view, row_values) in views.iter().zip(values.chunks(c)) {
            let row = self.rows.row(view.sample_id);
            self.values[row * c..(row + 1) * c].copy_from_slice(row_values);
        }
        Ok(())
    }

    /// Every sample's weights, for the results: mean and range per term; `teachers` name the KD
    /// terms.
    pub fn summary(&self, teachers: &[String]) -> Vec<WeightSummary> {
        let terms = std::iter::once("ce".to_string()).chain(teachers.iter().map(|t| format!("kd:{t}")));
        terms
            .enumerate()
            .map(|(k, term)| {
                let column: Vec<f64> = self.values.iter().skip(k).step_by(self.columns).map(|&v| v as f64).collect();
                let mean = column.iter().sum::<f64>() / column.len().max(1) as f64;
                let (min, max) = column.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                WeightSummary { term, mean, min, max }
            })
            .collect()
    }

    pub fn save(&self, dir: &Path) -> Result<(), tch::TchError> {
        let weights = Tensor::from_slice(&self.values).view([self.rows.len() as i64, self.columns as i64]);
        self.rows.save(&dir.join(FILE), &[("weights", weights)])
    }

    pub fn load(&mut self, dir: &Path) -> Result<(), String> {
        let weights = self.rows.load(&dir.join(FILE), &["weights"])?.remove(0);
        self.values = Vec::<f32>::try_from(weights.flatten(0, -1)).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// What the meta step knows of one group of training samples (a few batches), in float32 on the
/// training device: per term k the logit gradients `grads[k]` `[G, C]` of the batch-mean terms,
/// and the penultimate features `[G, D]`.
pub struct Group<'a> {
    pub views: Vec<&'a SelectedView>,
    pub grads: Vec<Tensor>,
    pub features: Tensor,
}

/// The logit gradients of the batch-mean CE (against `targets`, the rows' label distributions) and
/// of each teacher's `T²·batchmean KL`, `[B, C]` each.
pub fn term_gradients(logits: &Tensor, targets: &Tensor, teachers: &[Tensor], temperature: f64) -> Vec<Tensor> {
    tch::no_grad(|| {
        let b = logits.size()[0] as f64;
        let ce = (logits.softmax(-1, Kind::Float) - targets.to_kind(Kind::Float)) / b;
        let student = (logits / temperature).softmax(-1, Kind::Float);
        std::iter::once(ce)
            .chain(teachers.iter().map(|t| (&student - (t / temperature).softmax(-1, Kind::Float)) * (temperature / b)))
            .collect()
    })
}

/// The lookahead logits of the validation rows, `val_logits − η·(g_b + H·g_Wᵀ)`, for weights
/// `lambdas` `[G, K]` of the group's terms.
fn lookahead(lambdas: &Tensor, group: &Group, val_logits: &Tensor, val_features: &Tensor, eta: f64) -> Tensor {
    let weighted: Tensor = group
        .grads
        .iter()
        .enumerate()
        .map(|(k, g)| g * lambdas.select(1, k as i64).unsqueeze(1))
        .reduce(|a, b| a + b)
        .expect("CE and at least one teacher");
    let grad_bias = weighted.sum_dim_intlist(&[0i64][..], false, Kind::Float);
    let grad_weight = weighted.transpose(0, 1).matmul(&group.features);
    val_logits - (grad_bias.unsqueeze(0) + val_features.matmul(&grad_weight.transpose(0, 1))) * eta
}

/// ∂CE_val(θ')/∂λ `[G, K]` in closed form: −η·(⟨∇_b, g_ik⟩ + g_ikᵀ·∇_W·e_i) at the lookahead.
pub fn meta_gradient(
    lambdas: &Tensor,
    group: &Group,
    val_logits: &Tensor,
    val_features: &Tensor,
    val_labels: &Tensor,
    eta: f64,
) -> Tensor {
    tch::no_grad(|| {
        let ahead = lookahead(lambdas, group, val_logits, val_features, eta);
        let (n, c) = (ahead.size()[0] as f64, ahead.size()[1]);
        let d_logits = (ahead.softmax(-1, Kind::Float) - val_labels.one_hot(c).to_kind(Kind::Float)) / n;
        let d_bias = d_logits.sum_dim_intlist(&[0i64][..], false, Kind::Float);
        let d_weight = d_logits.transpose(0, 1).matmul(val_features);
        // Per sample i: ∇_W·e_i, then its inner product with each g_ik, plus ⟨∇_b, g_ik⟩.
        let projected = group.features.matmul(&d_weight.transpose(0, 1)) + d_bias.unsqueeze(0);
        let columns: Vec<Tensor> =
            group.grads.iter().map(|g| (g * &projected).sum_dim_intlist(&[1i64][..], false, Kind::Float)).collect();
        Tensor::stack(&columns, 1) * (-eta)
    })
}

/// The official inner loop on one group: `steps` times λ ← clamp(λ − meta_lr·∂CE_val/∂λ).
#[allow(clippy::too_many_arguments)]
pub fn update_group(
    weights: &mut MixingWeights,
    group: &Group,
    val_logits: &Tensor,
    val_features: &Tensor,
    val_labels: &Tensor,
    eta: f64,
    settings: &AmalSettings,
) -> Result<(), tch::TchError> {
    let device = group.features.device();
    let mut lambdas = weights.batch(&group.views, device);
    for _ in 0..settings.inner_steps {
        let gradient = meta_gradient(&lambdas, group, val_logits, val_features, val_labels, eta);
        lambdas = (lambdas - gradient * settings.meta_lr).clamp(LOWEST, HIGHEST);
    }
    weights.set(&group.views, &lambdas)
}

/// What the meta step of an epoch reads besides the weights: the student, the training views'
/// batches and the validation split.
pub struct MetaStep<'a> {
    pub settings: &'a AmalSettings,
    pub batches: &'a BatchSource<'a>,
    pub by_sample: &'a [SampleViews],
    pub val: &'a SplitData,
    pub batch_size: usize,
    /// The run's seed: the step draws its views, batches and validation order from it.
    pub seed: u64,
    pub device: Device,
}

impl MetaStep<'_> {
    /// Updates `weights` before 0-based `epoch`, at the epoch's learning rate `eta`.
    pub fn run(
        &self,
        weights: &mut MixingWeights,
        net: &mut Student,
        epoch: usize,
        eta: f64,
    ) -> Result<(), TrainError> {
        let data = self.batches.data;
        let seed = purpose_seed(self.seed, "amal");
        let plans = epoch_plan(self.by_sample, ViewsPerEpoch::OnePerSample, None, None, self.batch_size, seed, epoch);
        let mut val_order: Vec<usize> = (0..self.val.labels.len()).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(purpose_seed(seed, &format!("val/epoch-{epoch}")));
        val_order.shuffle(&mut rng);
        let mut val_batches = val_order.chunks(self.settings.val_batch).cycle();
        let mut pending: Vec<(Vec<SelectedView>, Vec<Tensor>, Tensor)> = Vec::new();
        let total = plans.len();
        let mut seen = 0;
        let mut flush = |pending: &mut Vec<(Vec<SelectedView>, Vec<Tensor>, Tensor)>,
                         net: &mut Student|
         -> Result<(), TrainError> {
            let pending = std::mem::take(pending);
            let terms = pending[0].1.len();
            let group = Group {
                views: pending.iter().flat_map(|(views, _, _)| views.iter()).collect(),
                grads: (0..terms)
                    .map(|k| Tensor::cat(&pending.iter().map(|p| &p.1[k]).collect::<Vec<_>>(), 0))
                    .collect(),
                features: Tensor::cat(&pending.iter().map(|p| &p.2).collect::<Vec<_>>(), 0),
            };
            let chosen = val_batches.next().expect("a validation split with rows");
            let ids: Vec<i64> = chosen.iter().map(|&i| self.val.sample_ids[i]).collect();
            let inputs = data.identity_inputs(self.batches.replayer, &ids)?;
            let labels: Vec<i64> = chosen.iter().map(|&i| self.val.labels[i]).collect();
            let (features, logits) = tch::no_grad(|| {
                net.forward_with_features(
                    &Tensor::from_slice(&data.student_inputs(&inputs)).to_device(self.device),
                    false,
                    true,
                )
            })?;
            let features =
                features.ok_or_else(|| TrainError::Config("--ensemble amal: the student gives no features".into()))?;
            let labels = Tensor::from_slice(&labels).to_device(self.device);
            update_group(
                weights,
                &group,
                &logits.to_kind(Kind::Float),
                &features.flatten(1, -1).to_kind(Kind::Float),
                &labels,
                eta,
                self.settings,
            )?;
            Ok(())
        };
        self.batches.run(plans, |batch| {
            let rows = batch.views.len() as i64;
            let inputs = Tensor::from_slice(&data.student_inputs(&batch.inputs)).to_device(self.device);
            let (features, logits) = tch::no_grad(|| net.forward_with_features(&inputs, false, true))?;
            let features =
                features.ok_or_else(|| TrainError::Config("--ensemble amal: the student gives no features".into()))?;
            let stored = batch.teacher_logits.as_ref().expect("AMAL reads the stored logits");
            let teachers: Vec<Tensor> =
                stored.iter().map(|t| Tensor::from_slice(t).view([rows, -1]).to_device(self.device)).collect();
            let views = &batch.selected;
            let labels: Vec<i64> = views.iter().map(|v| v.label).collect();
            let partners: Vec<i64> = views.iter().map(|v| v.partner_label).collect();
            let lam: Vec<f32> = views.iter().map(|v| v.lam).collect();
            let targets = Targets::of_rows(&labels, &partners, &lam, data.classes, self.device);
            let grads = term_gradients(
                &logits.to_kind(Kind::Float),
                &targets.distribution,
                &teachers,
                self.settings.temperature,
            );
            pending.push((batch.selected, grads, features.flatten(1, -1).to_kind(Kind::Float)));
            seen += 1;
            if pending.len() == self.settings.grad_fit || seen == total {
                flush(&mut pending, net)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::test_view;

    /// The meta-gradient by autograd through a real lookahead: a linear last layer (W, b), the
    /// λ-weighted training loss Σ_i Σ_k λ_ik·ℓ_ik with ℓ the batch-mean CE and T²·batchmean KL
    /// terms, θ' = θ − η·∇_θ (with its graph), CE on the validation rows at θ', and ∂/∂λ.
    #[test]
    fn the_closed_form_meta_gradient_equals_autograd() {
        tch::manual_seed(3);
        let (g, d, c, n, t, eta) = (6i64, 4i64, 3i64, 5i64, 4.0, 0.3);
        let opts = (Kind::Float, Device::Cpu);
        let w = (Tensor::randn([c, d], opts) * 0.5).set_requires_grad(true);
        let b = (Tensor::randn([c], opts) * 0.1).set_requires_grad(true);
        let e = Tensor::randn([g, d], opts);
        let labels = Tensor::from_slice(&[0i64, 2, 1, 1, 0, 2]);
        let teachers = vec![Tensor::randn([g, c], opts) * 2.0, Tensor::randn([g, c], opts)];
        let lambdas = (Tensor::rand([g, 3], opts) + 0.2).set_requires_grad(true);
        let (val_e, val_y) = (Tensor::randn([n, d], opts), Tensor::from_slice(&[1i64, 0, 2, 2, 1]));

        let logits = e.matmul(&w.transpose(0, 1)) + &b;
        let log_s = logits.log_softmax(-1, Kind::Float);
        let ce_rows =
            -(log_s * labels.one_hot(c).to_kind(Kind::Float)).sum_dim_intlist(&[1i64][..], false, Kind::Float);
        let mut train = (lambdas.select(1, 0) * ce_rows).sum(Kind::Float) / g as f64;
        for (m, teacher) in teachers.iter().enumerate() {
            let log_q = (&logits / t).log_softmax(-1, Kind::Float);
            let log_p = (teacher / t).log_softmax(-1, Kind::Float);
            let kl = (log_p.exp() * (&log_p - log_q)).sum_dim_intlist(&[1i64][..], false, Kind::Float) * (t * t);
            train += (lambdas.select(1, m as i64 + 1) * kl).sum(Kind::Float) / g as f64;
        }
        let grads = Tensor::run_backward(&[train], &[&w, &b], true, true);
        let (w2, b2) = (&w - &grads[0] * eta, &b - &grads[1] * eta);
        let val = (val_e.matmul(&w2.transpose(0, 1)) + b2).cross_entropy_for_logits(&val_y);
        let want = Tensor::run_backward(&[val], &[&lambdas], false, false).remove(0);

        let views: Vec<SelectedView> = (0..g).map(|i| test_view(i, i, "identity")).collect();
        let group = Group {
            views: views.iter().collect(),
            grads: term_gradients(&logits.detach(), &labels.one_hot(c), &teachers, t),
            features: e.shallow_clone(),
        };
        let val_logits = tch::no_grad(|| val_e.matmul(&w.transpose(0, 1)) + &b);
        let got = meta_gradient(&lambdas.detach(), &group, &val_logits, &val_e, &val_y, eta);
        assert!(got.allclose(&want, 1e-5, 1e-7, false), "closed form {got} vs autograd {want}");
    }

    #[test]
    fn updates_clamp_and_follow_the_official_schedule() {
        let settings = AmalSettings::default();
        assert!(!settings.updates_before(0) && settings.updates_before(10) && !settings.updates_before(15));
        assert!(AmalSettings::parse(&["grad_fit=0".into()]).unwrap_err().contains("whole number >= 1"));
        assert!(AmalSettings::parse(&["lr=1".into()]).unwrap_err().contains("unknown key lr"));
        let views: Vec<SelectedView> = (0..2).map(|i| test_view(i, i, "identity")).collect();
        let weights = MixingWeights::new(SampleRows::new(views.iter().map(|v| v.sample_id)), 1, 0.1, 0.9);
        let refs: Vec<&SelectedView> = views.iter().collect();
        let batch = weights.batch(&refs, Device::Cpu);
        assert_eq!(Vec::<f32>::try_from(batch.flatten(0, -1)).unwrap(), [0.1, 0.9, 0.1, 0.9]);
    }
}
