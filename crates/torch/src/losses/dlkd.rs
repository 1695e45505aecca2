//! `dlkd`: the knowledge alignment and correlation losses of DLKD (Ding et al., "Multi-level
//! Knowledge Distillation via Knowledge Alignment and Correlation", arXiv 2012.00573; official code
//! ifding/DLKD, its `mlkd` mode), computed as that code computes them.
//!
//! A batch is N = B·k rows: each of B samples brings k views next to each other, its identity view
//! first (the official code's four rotations of each image, the unrotated one first). With `f_s`,
//! `f_t` the penultimate features, `y` the labels and four heads trained with the student:
//!
//! - `gamma · CE(z_s[identity rows], y)`, the cross-entropy on the identity rows only;
//! - `delta · align`: `2 − 2·mean_r ⟨n(H_a(f_s))_r, n(f_t)_r⟩` over all N rows, `n(x) = x / max(‖x‖, 1e-12)`
//!   and `H_a` an MLP head `s → 16t → t` (Linear, BatchNorm in training mode, ReLU, Linear);
//! - `alpha · corr`: with `g = H_c(f_s)` (an MLP head `s → s → s`), the cosine similarities
//!   `S[a, j]` of each of the B(k−1) other rows `a` to each of the B identity rows `j`, and `T` the
//!   same on `f_t`, `KL(softmax(T/τ) ‖ softmax(S/τ))` summed over `j` and averaged over the rows `a`
//!   (`corr_temperature` τ = 0.5, no τ² factor);
//! - `beta · supcon`: the supervised contrastive loss over the 2N rows `[e_s; e_t]`,
//!   `e_s = u(W_s f_s)`, `e_t = u(W_t f_t)` (linear embeddings to `feat_dim`, `u(x) = x/‖x‖` without
//!   eps), logits `z = e·eᵀ/τ` shifted by their row maximum `m`, `log p_ij = z_ij − m_i −
//!   log(Σ_{l≠i} exp(z_il − m_i) + 1e-7)`, positives the other rows of the same label (a row's own
//!   copy on the other side included), loss `−(τ/base_temperature)` times the mean over positives,
//!   averaged over the 2N rows (`supcon_temperature` τ = 0.07).
//!
//! The defaults are the official CIFAR scripts' (γ 1, α 50, β 1, δ 20). The official code has no
//! logit KD term in this mode. Heads are named as the equivalent PyTorch modules' state dict
//! (`align.0.weight`, `align.1.running_mean`, `corr.3.bias`, `embed_s.weight`, …), so
//! `kdstore loss dlkd --heads heads.npz` takes the heads of a PyTorch model.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use super::{cross_entropy, kl_rows, log_softmax_t, non_negative, positive, LossError, Targets};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DlkdConfig {
    /// Weight of the cross-entropy on the identity rows.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Weight of the correlation loss.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Weight of the supervised contrastive loss.
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// Weight of the alignment loss.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Views per sample in a batch, the identity view first (the official code's 4 rotations).
    #[serde(default = "default_views")]
    pub views: f64,
    /// Softmax temperature of the correlation loss.
    #[serde(default = "default_corr_temperature")]
    pub corr_temperature: f64,
    /// Temperature of the supervised contrastive loss.
    #[serde(default = "default_supcon_temperature")]
    pub supcon_temperature: f64,
    /// The contrastive loss is scaled by supcon_temperature / base_temperature.
    #[serde(default = "default_supcon_temperature")]
    pub base_temperature: f64,
    /// Width of the contrastive embeddings.
    #[serde(default = "default_feat_dim")]
    pub feat_dim: f64,
}

fn default_gamma() -> f64 {
    1.0
}
fn default_alpha() -> f64 {
    50.0
}
fn default_beta() -> f64 {
    1.0
}
fn default_delta() -> f64 {
    20.0
}
fn default_views() -> f64 {
    4.0
}
fn default_corr_temperature() -> f64 {
    0.5
}
fn default_supcon_temperature() -> f64 {
    0.07
}
fn default_feat_dim() -> f64 {
    128.0
}

impl DlkdConfig {
    pub fn validate(&self) -> Vec<String> {
        let whole = |name: &str, value: f64, least: f64| {
            (value.fract() != 0.0 || value < least)
                .then(|| format!("{name} must be a whole number >= {least}, got {value}"))
        };
        [
            non_negative("gamma", self.gamma),
            non_negative("alpha", self.alpha),
            non_negative("beta", self.beta),
            non_negative("delta", self.delta),
            whole("views", self.views, 2.0),
            positive("corr_temperature", self.corr_temperature),
            positive("supcon_temperature", self.supcon_temperature),
            positive("base_temperature", self.base_temperature),
            whole("feat_dim", self.feat_dim, 1.0),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    pub fn views(&self) -> usize {
        self.views as usize
    }

    /// The loss on a batch in DLKD's layout (see the module note).
    pub fn compute(
        &self,
        heads: &Heads,
        student: &Tensor,
        targets: &Targets,
        student_features: &Tensor,
        teacher_features: &Tensor,
    ) -> Result<Tensor, LossError> {
        let rows = student.size()[0];
        let k = self.views() as i64;
        if rows % k != 0 {
            return Err(LossError::Input {
                loss: "dlkd",
                detail: format!(
                    "{rows} rows are not whole groups of views = {k} (each sample's identity view, then its others)"
                ),
            });
        }
        let (fs, ft) = (student_features.flatten(1, -1), teacher_features.flatten(1, -1));
        let device = student.device();
        let identity: Vec<i64> = (0..rows).step_by(k as usize).collect();
        let others: Vec<i64> = (0..rows).filter(|r| r % k != 0).collect();
        let identity = Tensor::from_slice(&identity).to_device(device);
        let others = Tensor::from_slice(&others).to_device(device);

        let mut loss = cross_entropy(
            &student.f_index_select(0, &identity)?,
            &Targets::plain(targets.labels.f_index_select(0, &identity)?, student.size()[1]),
        )? * self.gamma;
        if self.delta != 0.0 {
            loss += align(&heads.align.forward_t(&fs, true), &ft)? * self.delta;
        }
        if self.alpha != 0.0 {
            let g = heads.corr.forward_t(&fs, true);
            loss += correlation(&g, &ft, &identity, &others, self.corr_temperature)? * self.alpha;
        }
        if self.beta != 0.0 {
            let e_s = unit_rows(&heads.embed_student.forward(&fs));
            let e_t = unit_rows(&heads.embed_teacher.forward(&ft));
            loss += supcon(&e_s, &e_t, &targets.labels, self.supcon_temperature, self.base_temperature)? * self.beta;
        }
        Ok(loss)
    }
}

/// `x / max(‖x‖, eps)` per row (PyTorch's `F.normalize`).
fn normalize(x: &Tensor, eps: f64) -> Result<Tensor, tch::TchError> {
    let norm = x.f_norm_scalaropt_dim(2.0, [1i64].as_slice(), true)?.f_clamp_min(eps)?;
    x.f_div(&norm)
}

/// `x / ‖x‖` per row, without an eps (the official `Normalize` module).
fn unit_rows(x: &Tensor) -> Tensor {
    x / x.pow_tensor_scalar(2).sum_dim_intlist(1, true, x.kind()).sqrt()
}

fn align(projected: &Tensor, teacher: &Tensor) -> Result<Tensor, tch::TchError> {
    let (s, t) = (normalize(projected, 1e-12)?, normalize(teacher, 1e-12)?);
    Ok((s * t).f_sum_dim_intlist(1, false, projected.kind())?.mean(projected.kind()) * -2.0 + 2.0)
}

/// Cosine similarities of the `others` rows to the `identity` rows, `[others, identity]`.
fn similarities(x: &Tensor, identity: &Tensor, others: &Tensor) -> Result<Tensor, tch::TchError> {
    let unit = normalize(x, 1e-8)?;
    unit.f_index_select(0, others)?.f_matmul(&unit.f_index_select(0, identity)?.tr())
}

fn correlation(
    projected: &Tensor,
    teacher: &Tensor,
    identity: &Tensor,
    others: &Tensor,
    temperature: f64,
) -> Result<Tensor, tch::TchError> {
    let student = similarities(projected, identity, others)?;
    let teacher = similarities(teacher, identity, others)?.detach();
    let rows = kl_rows(&log_softmax_t(&teacher, temperature)?, &log_softmax_t(&student, temperature)?)?;
    Ok(rows.mean(projected.kind()))
}

fn supcon(
    e_s: &Tensor,
    e_t: &Tensor,
    labels: &Tensor,
    temperature: f64,
    base_temperature: f64,
) -> Result<Tensor, tch::TchError> {
    let kind = e_s.kind();
    let all = Tensor::f_cat(&[e_s, e_t], 0)?;
    let n = all.size()[0];
    let logits = all.f_matmul(&all.tr())? / temperature;
    let (maxima, _) = logits.f_max_dim(1, true)?;
    let logits = logits - maxima.detach();
    let not_self = Tensor::f_ones([n, n], (kind, all.device()))? - Tensor::f_eye(n, (kind, all.device()))?;
    let labels = Tensor::f_cat(&[labels, labels], 0)?;
    let positives = labels.unsqueeze(1).f_eq_tensor(&labels.unsqueeze(0))?.to_kind(kind) * &not_self;
    let denominator = ((logits.exp() * &not_self).f_sum_dim_intlist(1, true, kind)? + 1e-7).log();
    let log_prob = &logits - denominator;
    let mean_positive =
        (&positives * log_prob).f_sum_dim_intlist(1, false, kind)? / positives.f_sum_dim_intlist(1, false, kind)?;
    Ok(mean_positive.mean(kind) * -(temperature / base_temperature))
}

/// Linear, BatchNorm (training statistics), ReLU, Linear: the official `MLPHead`.
#[derive(Debug)]
pub struct MlpHead {
    first: nn::Linear,
    norm: nn::BatchNorm,
    second: nn::Linear,
}

impl MlpHead {
    fn new(path: nn::Path, inputs: i64, hidden: i64, outputs: i64) -> MlpHead {
        MlpHead {
            first: nn::linear(&path / "0", inputs, hidden, Default::default()),
            norm: nn::batch_norm1d(&path / "1", hidden, Default::default()),
            second: nn::linear(&path / "3", hidden, outputs, Default::default()),
        }
    }
}

impl ModuleT for MlpHead {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply(&self.first).apply_t(&self.norm, train).relu().apply(&self.second)
    }
}

/// The four heads DLKD trains with the student.
#[derive(Debug)]
pub struct Heads {
    align: MlpHead,
    corr: MlpHead,
    embed_student: nn::Linear,
    embed_teacher: nn::Linear,
}

impl Heads {
    /// Heads for student features of width `student` and teacher features of width `teacher`, with
    /// PyTorch's default initialisation (tch's defaults are the same).
    pub fn new(path: &nn::Path, config: &DlkdConfig, student: i64, teacher: i64) -> Heads {
        let feat_dim = config.feat_dim as i64;
        Heads {
            align: MlpHead::new(path / "align", student, 16 * teacher, teacher),
            corr: MlpHead::new(path / "corr", student, student, student),
            embed_student: nn::linear(path / "embed_s", student, feat_dim, Default::default()),
            embed_teacher: nn::linear(path / "embed_t", teacher, feat_dim, Default::default()),
        }
    }
}

/// Copies heads' weights from named tensors (a PyTorch state dict saved with `numpy.savez`);
/// every variable must be there with its shape, extra entries (`num_batches_tracked`) are ignored.
pub fn load_heads(vs: &nn::VarStore, named: &[(String, Tensor)], source: &str) -> Result<(), String> {
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    let mut missing = Vec::new();
    for (name, variable) in &variables {
        match named.iter().find(|(n, _)| n == name) {
            Some((_, value)) if value.size() == variable.size() => {
                tch::no_grad(|| variable.shallow_clone().copy_(&value.to_kind(variable.kind())));
            }
            Some((_, value)) => {
                return Err(format!("{source}: {name} has shape {:?}, expected {:?}", value.size(), variable.size()))
            }
            None => missing.push(format!("{name} {:?}", variable.size())),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("{source}: missing {}", missing.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::value;
    use tch::Kind;

    fn random(shape: &[i64], seed: i64) -> Tensor {
        tch::manual_seed(seed);
        Tensor::randn(shape, (Kind::Double, tch::Device::Cpu))
    }

    /// The contrastive loss, row by row in plain f64.
    fn supcon_reference(e: &[Vec<f64>], labels: &[i64], t: f64) -> f64 {
        let n = e.len();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / t;
        let mut total = 0.0;
        for i in 0..n {
            let z: Vec<f64> = (0..n).map(|j| dot(&e[i], &e[j])).collect();
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let denominator = ((0..n).filter(|&j| j != i).map(|j| (z[j] - m).exp()).sum::<f64>() + 1e-7).ln();
            let positives: Vec<usize> =
                (0..n).filter(|&j| j != i && labels[j % labels.len()] == labels[i % labels.len()]).collect();
            let mean: f64 = positives.iter().map(|&j| z[j] - m - denominator).sum::<f64>() / positives.len() as f64;
            total -= mean;
        }
        total / n as f64
    }

    #[test]
    fn supcon_matches_a_plain_computation() {
        let (e_s, e_t) = (unit_rows(&random(&[6, 5], 1)), unit_rows(&random(&[6, 5], 2)));
        let labels = Tensor::from_slice(&[0i64, 1, 0, 2, 1, 0]);
        let rows: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(Tensor::cat(&[&e_s, &e_t], 0)).unwrap();
        let want = supcon_reference(&rows, &[0, 1, 0, 2, 1, 0], 0.07);
        let got = value(&supcon(&e_s, &e_t, &labels, 0.07, 0.07).unwrap());
        assert!((got - want).abs() < 1e-9 * want.abs(), "{got} vs {want}");
    }

    #[test]
    fn align_is_zero_for_parallel_features_and_four_for_opposite() {
        let x = random(&[4, 3], 3);
        assert!(value(&align(&(&x * 2.0), &x).unwrap()).abs() < 1e-12);
        assert!((value(&align(&-&x, &x).unwrap()) - 4.0).abs() < 1e-12);
    }

    #[test]
    fn correlation_is_zero_when_student_and_teacher_agree() {
        let x = random(&[8, 3], 4);
        let identity = Tensor::from_slice(&[0i64, 4]);
        let others = Tensor::from_slice(&[1i64, 2, 3, 5, 6, 7]);
        assert!(value(&correlation(&x, &(&x * 3.0), &identity, &others, 0.5).unwrap()).abs() < 1e-12);
        assert!(value(&correlation(&x, &random(&[8, 3], 5), &identity, &others, 0.5).unwrap()) > 0.0);
    }

    #[test]
    fn batches_must_be_whole_groups() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let config: DlkdConfig = serde_json::from_str("{}").unwrap();
        let heads = Heads::new(&vs.root(), &config, 3, 3);
        let err = config
            .compute(
                &heads,
                &random(&[6, 2], 1),
                &Targets::plain(Tensor::zeros([6], (Kind::Int64, tch::Device::Cpu)), 2),
                &random(&[6, 3], 2),
                &random(&[6, 3], 3),
            )
            .unwrap_err();
        assert!(err.to_string().contains("6 rows are not whole groups of views = 4"), "{err}");
    }
}
