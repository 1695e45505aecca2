//! Distillation losses on tch tensors, one per file, each with its config (documented keys named as
//! the papers name them, defaults from the official code), its validation and its source. A loss
//! takes the batch's student logits, the stored teacher logits, the hard targets and, for feature
//! losses, the penultimate features, and returns a scalar. Every loss computes in the kind of its
//! inputs (float32 in training, float64 in `kdstore loss`). Losses combine by weights in training.

pub mod bdkd;
pub mod ce;
pub mod dist;
pub mod dkd;
pub mod dlkd;
pub mod ensemble;
pub mod from_files;
pub mod jsd;
pub mod kd;
pub mod mixkd;
pub mod mmd;
pub mod pskd;
pub mod reverse_kl;
pub mod sk;
pub mod sp;
pub mod tfkd;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

pub use ce::{cross_entropy, Targets};

#[derive(Debug, thiserror::Error)]
pub enum LossError {
    #[error("loss {loss}: {detail}")]
    Input { loss: &'static str, detail: String },
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

/// What a loss may read for one batch.
pub struct LossInputs<'a> {
    /// Student logits `[batch, classes]`.
    pub student: &'a Tensor,
    /// Teacher logits `[batch, classes]`, raw (temperature-free).
    pub teacher: Option<&'a Tensor>,
    pub targets: &'a Targets,
    /// Penultimate features `[batch, ...]` of the student and the teacher (feature losses).
    pub student_features: Option<&'a Tensor>,
    pub teacher_features: Option<&'a Tensor>,
    /// The 1-based training epoch, for warm-ups; `None` means after any warm-up.
    pub epoch: Option<usize>,
    /// The trainable heads of `dlkd`.
    pub heads: Option<&'a dlkd::Heads>,
    /// `pskd`: the student's own logits of the rows' samples in the previous epoch (`None` in the
    /// first epoch, when the targets are the labels alone).
    pub previous: Option<&'a Tensor>,
    /// The run's number of epochs, for objectives that move with training (`pskd`'s α_t);
    /// `None` in `kdstore loss`, where the settings are taken as they are.
    pub epochs: Option<usize>,
    /// Give one value per row `[batch]` instead of the batch mean (per-sample weights); losses
    /// that do not decompose into per-sample terms refuse.
    pub per_row: bool,
    /// Each row's group (subject), for `mmd`.
    pub groups: Option<&'a [i64]>,
    /// AMAL's per-sample weights of CE and each teacher's KD, `[batch, 1 + teachers]`.
    pub mixing: Option<&'a Tensor>,
}

impl<'a> LossInputs<'a> {
    /// A batch's student logits and targets, nothing else.
    pub fn new(student: &'a Tensor, targets: &'a Targets) -> LossInputs<'a> {
        LossInputs {
            student,
            teacher: None,
            targets,
            student_features: None,
            teacher_features: None,
            epoch: None,
            heads: None,
            previous: None,
            epochs: None,
            per_row: false,
            groups: None,
            mixing: None,
        }
    }

    fn teacher(&self, loss: &'static str) -> Result<&Tensor, LossError> {
        self.teacher.ok_or(LossError::Input { loss, detail: "needs teacher logits".into() })
    }

    fn features(&self, loss: &'static str) -> Result<(&Tensor, &Tensor), LossError> {
        match (self.student_features, self.teacher_features) {
            (Some(s), Some(t)) => Ok((s, t)),
            _ => Err(LossError::Input { loss, detail: "needs student and teacher features".into() }),
        }
    }
}

/// One loss with its settings, as `--loss NAME --set key=value` or a training config names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "loss", rename_all = "kebab-case")]
pub enum LossConfig {
    Ce(ce::CeConfig),
    Kd(kd::KdConfig),
    ReverseKl(reverse_kl::ReverseKlConfig),
    Jsd(jsd::JsdConfig),
    Dist(dist::DistConfig),
    Dkd(dkd::DkdConfig),
    Mixkd(mixkd::MixkdConfig),
    Sp(sp::SpConfig),
    Sk(sk::SkConfig),
    Dlkd(dlkd::DlkdConfig),
    Tfkd(tfkd::TfkdConfig),
    TfkdSelf(tfkd::TfkdSelfConfig),
    Pskd(pskd::PskdConfig),
    Bdkd(bdkd::BdkdConfig),
    Mmd(mmd::MmdConfig),
}

/// Every loss's name, in the order `kdstore loss --help` lists them.
pub const NAMES: &[&str] = &[
    "ce",
    "kd",
    "reverse-kl",
    "jsd",
    "dist",
    "dkd",
    "mixkd",
    "sp",
    "sk",
    "dlkd",
    "tfkd",
    "tfkd-self",
    "pskd",
    "bdkd",
    "mmd",
];

impl LossConfig {
    pub fn name(&self) -> &'static str {
        match self {
            LossConfig::Ce(_) => "ce",
            LossConfig::Kd(_) => "kd",
            LossConfig::ReverseKl(_) => "reverse-kl",
            LossConfig::Jsd(_) => "jsd",
            LossConfig::Dist(_) => "dist",
            LossConfig::Dkd(_) => "dkd",
            LossConfig::Mixkd(_) => "mixkd",
            LossConfig::Sp(_) => "sp",
            LossConfig::Sk(_) => "sk",
            LossConfig::Dlkd(_) => "dlkd",
            LossConfig::Tfkd(_) => "tfkd",
            LossConfig::TfkdSelf(_) => "tfkd-self",
            LossConfig::Pskd(_) => "pskd",
            LossConfig::Bdkd(_) => "bdkd",
            LossConfig::Mmd(_) => "mmd",
        }
    }

    /// A loss from its name and `key=value` settings; unknown names and keys are errors that list
    /// the known ones.
    pub fn parse(name: &str, settings: &[String]) -> Result<LossConfig, String> {
        if !NAMES.contains(&name) {
            return Err(format!("unknown loss {name}; expected one of {}", NAMES.join(", ")));
        }
        let mut object = serde_json::Map::new();
        object.insert("loss".into(), name.into());
        for setting in settings {
            let (key, value) = setting.split_once('=').ok_or_else(|| format!("--set {setting}: expected key=value"))?;
            let number: f64 = value.trim().parse().map_err(|_| format!("--set {setting}: {value} is not a number"))?;
            object.insert(key.trim().into(), serde_json::json!(number));
        }
        let config: LossConfig =
            serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| format!("loss {name}: {e}"))?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(format!("loss {name}: {}", problems.join("; ")))
        }
    }

    pub fn validate(&self) -> Vec<String> {
        match self {
            LossConfig::Ce(_) | LossConfig::Sp(_) | LossConfig::Sk(_) => Vec::new(),
            LossConfig::Kd(c) => c.validate(),
            LossConfig::ReverseKl(c) => c.validate(),
            LossConfig::Jsd(c) => c.validate(),
            LossConfig::Dist(c) => c.validate(),
            LossConfig::Dkd(c) => c.validate(),
            LossConfig::Mixkd(c) => c.validate(),
            LossConfig::Dlkd(c) => c.validate(),
            LossConfig::Tfkd(c) => c.validate(),
            LossConfig::TfkdSelf(c) => c.validate(),
            LossConfig::Pskd(c) => c.validate(),
            LossConfig::Bdkd(c) => c.validate(),
            LossConfig::Mmd(c) => c.validate(),
        }
    }

    /// Whether the loss reads teacher logits (feature losses read teacher features instead).
    pub fn needs_teacher_logits(&self) -> bool {
        !matches!(
            self,
            LossConfig::Ce(_)
                | LossConfig::Sp(_)
                | LossConfig::Sk(_)
                | LossConfig::Dlkd(_)
                | LossConfig::Tfkd(_)
                | LossConfig::Pskd(_)
                | LossConfig::Mmd(_)
        )
    }

    /// Whether the loss learns from the labels and the student alone, so a run without a teacher
    /// may use it (`pskd`'s teacher is the student's previous epoch).
    pub fn teacher_free(&self) -> bool {
        matches!(self, LossConfig::Ce(_) | LossConfig::Tfkd(_) | LossConfig::Pskd(_) | LossConfig::Mmd(_))
    }

    /// Whether the loss reads the hard labels.
    pub fn needs_labels(&self) -> bool {
        matches!(
            self,
            LossConfig::Ce(_)
                | LossConfig::Kd(_)
                | LossConfig::Dkd(_)
                | LossConfig::Mixkd(_)
                | LossConfig::Dlkd(_)
                | LossConfig::Tfkd(_)
                | LossConfig::TfkdSelf(_)
                | LossConfig::Pskd(_)
                | LossConfig::Bdkd(_)
        )
    }

    /// Whether the loss reads the student's penultimate features.
    pub fn needs_features(&self) -> bool {
        self.needs_teacher_features() || matches!(self, LossConfig::Mmd(_))
    }

    /// Whether the loss reads the teacher's penultimate features.
    pub fn needs_teacher_features(&self) -> bool {
        matches!(self, LossConfig::Sp(_) | LossConfig::Sk(_) | LossConfig::Dlkd(_))
    }

    /// Whether the loss reads each row's group (subject).
    pub fn needs_groups(&self) -> bool {
        matches!(self, LossConfig::Mmd(_))
    }

    /// Views per sample when the loss needs each sample's views side by side in a batch (`dlkd`).
    pub fn views_per_sample(&self) -> Option<usize> {
        match self {
            LossConfig::Dlkd(c) => Some(c.views()),
            _ => None,
        }
    }

    /// The loss on a batch: the batch mean of its per-sample values, or those values themselves
    /// (`[batch]`) when `inputs.per_row` asks for them.
    pub fn compute(&self, inputs: &LossInputs) -> Result<Tensor, LossError> {
        match self.rows(inputs)? {
            Some(rows) if inputs.per_row => Ok(rows),
            Some(rows) => Ok(batch_mean(&rows)),
            None if inputs.per_row => Err(LossError::Input {
                loss: self.name(),
                detail: "is not a mean of per-sample terms, so it cannot be weighted per sample".into(),
            }),
            None => self.batch_value(inputs),
        }
    }

    /// Whether the loss is a batch mean of per-sample terms (and can be weighted per sample).
    pub fn decomposes(&self) -> bool {
        !matches!(
            self,
            LossConfig::Dist(_) | LossConfig::Sp(_) | LossConfig::Sk(_) | LossConfig::Dlkd(_) | LossConfig::Mmd(_)
        )
    }

    /// The per-sample values of the losses that are batch means of them.
    fn rows(&self, inputs: &LossInputs) -> Result<Option<Tensor>, LossError> {
        let name = self.name();
        let (student, targets) = (inputs.student, inputs.targets);
        let rows = match self {
            LossConfig::Ce(_) => ce::ce_rows(student, targets)?,
            LossConfig::Kd(c) => c.rows(student, inputs.teacher(name)?, targets)?,
            LossConfig::ReverseKl(c) => c.rows(student, inputs.teacher(name)?)?,
            LossConfig::Jsd(c) => c.rows(student, inputs.teacher(name)?)?,
            LossConfig::Dkd(c) => c.rows(student, inputs.teacher(name)?, targets, inputs.epoch)?,
            LossConfig::Mixkd(c) => c.rows(student, inputs.teacher(name)?, targets)?,
            LossConfig::Tfkd(c) => c.rows(student, targets)?,
            LossConfig::TfkdSelf(c) => c.rows(student, inputs.teacher(name)?, targets)?,
            LossConfig::Pskd(c) => c.rows(student, inputs.previous, targets, inputs.epoch.zip(inputs.epochs))?,
            LossConfig::Bdkd(c) => c.rows(student, inputs.teacher(name)?, targets)?,
            LossConfig::Dist(_) | LossConfig::Sp(_) | LossConfig::Sk(_) | LossConfig::Dlkd(_) | LossConfig::Mmd(_) => {
                return Ok(None)
            }
        };
        Ok(Some(rows))
    }

    /// The losses that are computed over the whole batch at once.
    fn batch_value(&self, inputs: &LossInputs) -> Result<Tensor, LossError> {
        let name = self.name();
        match self {
            LossConfig::Dist(c) => Ok(c.compute(inputs.student, inputs.teacher(name)?)?),
            LossConfig::Sp(_) => {
                let (s, t) = inputs.features(name)?;
                Ok(sp::sp_loss(s, t)?)
            }
            LossConfig::Sk(_) => {
                let (s, t) = inputs.features(name)?;
                sk::sk_loss(s, t)
            }
            LossConfig::Dlkd(c) => {
                let (s, t) = inputs.features(name)?;
                let heads = inputs.heads.ok_or(LossError::Input { loss: name, detail: "needs its heads".into() })?;
                c.compute(heads, inputs.student, inputs.targets, s, t)
            }
            LossConfig::Mmd(c) => {
                let features = inputs
                    .student_features
                    .ok_or(LossError::Input { loss: name, detail: "needs the student's features".into() })?;
                let groups =
                    inputs.groups.ok_or(LossError::Input { loss: name, detail: "needs each row's group".into() })?;
                Ok(c.compute(features, groups)?)
            }
            _ => unreachable!("{name} is a mean of per-sample terms"),
        }
    }
}

/// Checks shared by the configs: a temperature and weights.
pub(crate) fn positive(name: &str, value: f64) -> Option<String> {
    (!(value.is_finite() && value > 0.0)).then(|| format!("{name} must be > 0, got {value}"))
}
pub(crate) fn fraction(name: &str, value: f64) -> Option<String> {
    (!(0.0..=1.0).contains(&value)).then(|| format!("{name} must be in [0, 1], got {value}"))
}
pub(crate) fn non_negative(name: &str, value: f64) -> Option<String> {
    (!(value.is_finite() && value >= 0.0)).then(|| format!("{name} must be >= 0, got {value}"))
}

/// `log_softmax(z / temperature)` over classes, in the kind of `z`.
pub(crate) fn log_softmax_t(z: &Tensor, temperature: f64) -> Result<Tensor, tch::TchError> {
    (z / temperature).f_log_softmax(-1, z.kind())
}

/// `Σ_c p·(log p − log q)` per row, from log-probabilities; rows where p = 0 add 0 (as PyTorch's
/// `kl_div`, whose `xlogy` treats 0·log 0 as 0).
pub(crate) fn kl_rows(log_p: &Tensor, log_q: &Tensor) -> Result<Tensor, tch::TchError> {
    let p = log_p.exp();
    let terms = (&p * (log_p - log_q)).f_where_self(&p.gt(0.0), &p.zeros_like())?;
    terms.f_sum_dim_intlist(-1, false, log_p.kind())
}

/// The batch mean of a per-row tensor.
pub(crate) fn batch_mean(rows: &Tensor) -> Tensor {
    rows.mean(rows.kind())
}

/// A tensor from an f64 matrix, for the tests.
#[cfg(test)]
pub(crate) fn matrix(rows: &[&[f64]]) -> Tensor {
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
}

#[cfg(test)]
pub(crate) fn value(t: &Tensor) -> f64 {
    t.to_kind(tch::Kind::Double).double_value(&[])
}

/// Every loss's `--set` keys with their defaults and meanings, from the configs' JSON Schema.
pub fn keys_help() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(LossConfig)).expect("schema serialises");
    let mut text = String::from("Losses and their --set keys (defaults in brackets):\n");
    for variant in schema["oneOf"].as_array().into_iter().flatten() {
        let properties = &variant["properties"];
        let name = properties["loss"]["enum"][0].as_str().unwrap_or("?");
        text.push_str(&format!("  {name}\n"));
        if let Some(note) = variant["description"].as_str() {
            text.push_str(&format!("      {note}\n"));
        }
        for (key, property) in properties.as_object().into_iter().flatten().filter(|(k, _)| k.as_str() != "loss") {
            text.push_str(&format!(
                "      {key} [{}]  {}\n",
                property["default"],
                property["description"].as_str().unwrap_or("")
            ));
        }
    }
    text
}

/// A loss and its weight in a training objective.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossTerm {
    pub weight: f64,
    #[serde(flatten)]
    pub config: LossConfig,
}

/// The keys a loss accepts (its config's fields).
fn keys_of(name: &str) -> Vec<String> {
    LossConfig::parse(name, &[])
        .ok()
        .and_then(|config| serde_json::to_value(config).ok())
        .and_then(|value| value.as_object().map(|o| o.keys().filter(|k| *k != "loss").cloned().collect()))
        .unwrap_or_default()
}

/// Whether a `--set` key (`KEY` or `LOSS.KEY`) belongs to one of the losses `specs` select; a
/// study leaves out the loss settings of its grid that a cell's losses do not take (a grid of
/// losses × temperatures has no temperature for `ce`).
pub fn takes_setting(specs: &[String], key: &str) -> bool {
    let names: Vec<&str> =
        specs.iter().map(|spec| spec.split_once('=').map_or(spec.as_str(), |(name, _)| name).trim()).collect();
    match key.split_once('.') {
        Some((loss, _)) => names.contains(&loss),
        None => names.iter().any(|name| keys_of(name).iter().any(|k| k == key)),
    }
}

/// Training objectives from `--loss NAME[=WEIGHT]` specs and `--set [NAME.]key=value` settings. An
/// unprefixed key goes to the one selected loss that has it; a key that no loss or several losses
/// have is an error.
pub fn parse_terms(specs: &[String], settings: &[String]) -> Result<Vec<LossTerm>, String> {
    let mut named: Vec<(String, f64)> = Vec::new();
    for spec in specs {
        let (name, weight) = match spec.split_once('=') {
            Some((name, weight)) => {
                let weight: f64 =
                    weight.parse().map_err(|_| format!("--loss {spec}: weight {weight} is not a number"))?;
                (name.trim().to_string(), weight)
            }
            None => (spec.trim().to_string(), 1.0),
        };
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(format!("--loss {spec}: the weight must be >= 0"));
        }
        if named.iter().any(|(n, _)| *n == name) {
            return Err(format!("--loss {name} is given twice"));
        }
        named.push((name, weight));
    }
    let mut per_loss: Vec<Vec<String>> = vec![Vec::new(); named.len()];
    for setting in settings {
        let (key, value) = setting.split_once('=').ok_or_else(|| format!("--set {setting}: expected key=value"))?;
        let owners: Vec<usize> = match key.split_once('.') {
            Some((loss, _)) => named.iter().position(|(n, _)| n == loss).into_iter().collect(),
            None => (0..named.len()).filter(|&i| keys_of(&named[i].0).iter().any(|k| k == key)).collect(),
        };
        let bare = key.split_once('.').map_or(key, |(_, k)| k);
        match owners.as_slice() {
            [owner] => per_loss[*owner].push(format!("{bare}={value}")),
            [] => return Err(format!("--set {setting}: no selected loss has the key {key}")),
            _ => {
                let names: Vec<String> = owners.iter().map(|&i| format!("{}.{key}", named[i].0)).collect();
                return Err(format!("--set {setting}: several losses have {key}; write {}", names.join(" or ")));
            }
        }
    }
    named
        .into_iter()
        .zip(per_loss)
        .map(|((name, weight), settings)| Ok(LossTerm { weight, config: LossConfig::parse(&name, &settings)? }))
        .collect()
}

#[cfg(test)]
mod term_tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn specs_weights_and_settings() {
        let terms = parse_terms(&strings(&["ce", "dist=2"]), &strings(&["tau=4"])).unwrap();
        assert_eq!(terms[0], LossTerm { weight: 1.0, config: LossConfig::Ce(ce::CeConfig {}) });
        assert_eq!(terms[1].weight, 2.0);
        assert_eq!(terms[1].config, LossConfig::Dist(dist::DistConfig { beta: 1.0, gamma: 1.0, tau: 4.0 }));
        let both = parse_terms(&strings(&["kd", "dkd"]), &strings(&["dkd.temperature=2"])).unwrap();
        assert!(matches!(&both[1].config, LossConfig::Dkd(c) if c.temperature == 2.0));
    }

    #[test]
    fn unclear_settings_are_errors() {
        let err = parse_terms(&strings(&["kd", "dkd"]), &strings(&["temperature=2"])).unwrap_err();
        assert!(err.contains("write kd.temperature or dkd.temperature"), "{err}");
        let err = parse_terms(&strings(&["ce"]), &strings(&["tau=2"])).unwrap_err();
        assert!(err.contains("no selected loss has the key tau"), "{err}");
        assert!(parse_terms(&strings(&["kd=-1"]), &[]).is_err());
    }
}
