//! The study file: its wire types (strict: unknown keys are errors; the JSON Schema in
//! `schemas/study.json` comes from them) and the settings model. A setting is a `kdstore train`
//! flag named without its dashes (`batch_size` or `batch-size`, `set.temperature` for
//! `--set temperature=…`); nested tables flatten into dotted names, so `set = { temperature = 4 }`
//! and `"set.temperature" = 4` are the same setting.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole study file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    pub study: StudySection,
    /// Settings every run shares: any `kdstore train` flag without its dashes.
    #[serde(default)]
    pub base: BTreeMap<String, Setting>,
    /// The axes: each a list of values; the cells are their Cartesian product.
    #[serde(default)]
    pub grid: BTreeMap<String, Setting>,
    /// Named values per axis: `[values.where] identity = "recipe = 'identity'"` lets the axis list
    /// `"identity"`. A named value that is a table sets several settings at once (and then the
    /// axis needs no train flag of its name); a number on the axis finds the value named by its text.
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, Setting>>,
    /// Cells outside the product (a from-scratch baseline, say): axis values or settings.
    #[serde(default)]
    pub cell: Vec<BTreeMap<String, Setting>>,
    /// Combinations of axis values the product leaves out (a list matches any of its values).
    #[serde(default)]
    pub exclude: Vec<BTreeMap<String, Setting>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StudySection {
    /// The store every run trains from.
    pub store: PathBuf,
    /// The study's folder: runs/, results.parquet, summary.parquet, report/.
    pub out: PathBuf,
    /// The seeds every cell runs with, so that cells pair by seed.
    pub seeds: Vec<u64>,
    /// Train from this committed version of the store (default: the newest when planned). The
    /// version is part of every run's identity.
    #[serde(default)]
    pub store_version: Option<u64>,
    /// The metric cells are ranked and compared by.
    #[serde(default)]
    pub metric: Metric,
    /// The cell the others are compared with, paired by seed: axis values that pick exactly one cell.
    #[serde(default)]
    pub baseline: Option<BTreeMap<String, Setting>>,
    /// Attempts a run gets before it stays failed (a rerun of the study does not retry it then).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Bootstrap resamples for each cell's interval.
    #[serde(default = "default_resamples")]
    pub bootstrap_resamples: usize,
    /// The report's title (default: the study file's name).
    #[serde(default)]
    pub title: Option<String>,
}

fn default_attempts() -> u32 {
    3
}

fn default_resamples() -> usize {
    10_000
}

/// A run's final test metric, of the best-on-validation weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    #[default]
    TestAccuracy,
    TestNll,
    TestEce,
    TestAgreement,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::TestAccuracy => "test_accuracy",
            Metric::TestNll => "test_nll",
            Metric::TestEce => "test_ece",
            Metric::TestAgreement => "test_agreement",
        }
    }

    /// Whether a higher value is better.
    pub fn maximise(self) -> bool {
        matches!(self, Metric::TestAccuracy | Metric::TestAgreement)
    }

    /// Where `results.json` keeps it (under `test`).
    pub fn results_key(self) -> &'static str {
        match self {
            Metric::TestAccuracy => "accuracy",
            Metric::TestNll => "nll",
            Metric::TestEce => "ece",
            Metric::TestAgreement => "teacher_agreement",
        }
    }
}

/// A value in the study file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Setting {
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(String),
    /// In `[base]` or a cell: the flag repeated (`loss = ["ce", "dist=2"]`); in `[grid]`: the axis.
    List(Vec<Setting>),
    Table(BTreeMap<String, Setting>),
}

impl Setting {
    /// The same value, ints and floats compared by value (so `4` matches `4.0`).
    pub fn same(&self, other: &Setting) -> bool {
        match (self.number(), other.number()) {
            (Some(a), Some(b)) => a == b,
            _ => self == other,
        }
    }

    pub fn number(&self) -> Option<f64> {
        match self {
            Setting::Integer(i) => Some(*i as f64),
            Setting::Float(f) => Some(*f),
            _ => None,
        }
    }
}

impl fmt::Display for Setting {
    /// As a command-line value: `2`, `0.5`, `kd`; a list joins with `+`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::Bool(b) => write!(f, "{b}"),
            Setting::Integer(i) => write!(f, "{i}"),
            Setting::Float(x) => write!(f, "{x}"),
            Setting::Text(s) => write!(f, "{s}"),
            Setting::List(items) => {
                let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
                write!(f, "{}", parts.join("+"))
            }
            Setting::Table(table) => {
                let parts: Vec<String> = flatten(table).iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "{{{}}}", parts.join(","))
            }
        }
    }
}

/// Nested tables as dotted names: `{ set = { temperature = 4 } }` → `set.temperature = 4`.
pub fn flatten(table: &BTreeMap<String, Setting>) -> BTreeMap<String, Setting> {
    let mut flat = BTreeMap::new();
    for (key, value) in table {
        match value {
            Setting::Table(inner) => {
                for (inner_key, inner_value) in flatten(inner) {
                    flat.insert(format!("{key}.{inner_key}"), inner_value);
                }
            }
            other => {
                flat.insert(key.clone(), other.clone());
            }
        }
    }
    flat
}

/// A setting's name in one spelling: dashes become underscores (`batch-size` → `batch_size`).
/// The part after `set.` is a loss setting and kept as written.
pub fn canonical_key(key: &str) -> String {
    match key.strip_prefix("set.") {
        Some(loss_setting) => format!("set.{loss_setting}"),
        None => key.replace('-', "_"),
    }
}

/// The command-line arguments of one setting: `--flag value`, `--flag` for true, nothing for
/// false, the flag repeated for a list, `--set key=value` for `set.key`.
pub fn setting_args(key: &str, value: &Setting) -> Vec<String> {
    if let Some(loss_setting) = key.strip_prefix("set.") {
        return match value {
            Setting::List(items) => items.iter().flat_map(|item| setting_args(key, item)).collect(),
            other => vec!["--set".into(), format!("{loss_setting}={other}")],
        };
    }
    let flag = format!("--{}", key.replace('_', "-"));
    match value {
        Setting::Bool(true) => vec![flag],
        Setting::Bool(false) => Vec::new(),
        Setting::List(items) => items.iter().flat_map(|item| setting_args(key, item)).collect(),
        // `--lr=-1`: a value that starts with a dash would read as a flag.
        other if other.to_string().starts_with('-') => vec![format!("{flag}={other}")],
        other => vec![flag, other.to_string()],
    }
}

/// The settings a study decides itself (or that say how, not what, to train): never in a study file.
pub const RESERVED: &[&str] =
    &["store", "at_version", "out", "seed", "resume", "json", "threads", "device", "quiet", "verbose"];

/// JSON Schema of a study file.
pub fn study_schema() -> String {
    let schema = schemars::schema_for!(StudyFile);
    serde_json::to_string_pretty(&schema).expect("schema serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_train_flags() {
        assert_eq!(setting_args("batch_size", &Setting::Integer(64)), ["--batch-size", "64"]);
        assert_eq!(setting_args("lr", &Setting::Integer(-1)), ["--lr=-1"]);
        assert_eq!(setting_args("set.kd.temperature", &Setting::Float(0.5)), ["--set", "kd.temperature=0.5"]);
        assert_eq!(setting_args("preload", &Setting::Bool(true)), ["--preload"]);
        assert!(setting_args("preload", &Setting::Bool(false)).is_empty());
        let losses = Setting::List(vec![Setting::Text("ce".into()), Setting::Text("dist=2".into())]);
        assert_eq!(setting_args("loss", &losses), ["--loss", "ce", "--loss", "dist=2"]);
        assert_eq!(losses.to_string(), "ce+dist=2");
        assert_eq!(canonical_key("batch-size"), "batch_size");
        assert_eq!(canonical_key("set.my-loss.t"), "set.my-loss.t");
    }

    #[test]
    fn nested_tables_flatten_to_dotted_names() {
        let file: StudyFile = toml::from_str(
            "[study]\nstore = 's'\nout = 'o'\nseeds = [1]\n[base]\nset.temperature = 4\nepochs = 2\n[grid]\nset.alpha = [0.1, 0.9]\n",
        )
        .unwrap();
        let base = flatten(&file.base);
        assert_eq!(base["set.temperature"], Setting::Integer(4));
        assert!(flatten(&file.grid).contains_key("set.alpha"));
        assert!(Setting::Integer(4).same(&Setting::Float(4.0)));
    }
}
