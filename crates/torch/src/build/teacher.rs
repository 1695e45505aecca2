//! The teacher stage: a built-in teacher is trained by kdstore's student trainer (`train`: the
//! same optimiser, schedule, warm-up, best-on-validation weights and losses as `kdstore train`),
//! from the labels or from another teacher's stored logits, on its subset of the training samples
//! and its input channels, with one intra-op thread so that its weights do not depend on
//! `--threads`. One training run makes a teacher and its checkpoints; it works in
//! `_training/<teacher>-<key>/` in the store, so a build killed mid-training resumes from the last
//! finished epoch to the same weights, and its results are written as safetensors under `models/`
//! with a `.training.json` record beside them. A TorchScript teacher is recorded by its file's
//! hash. Either way the manifest gets the teacher's provenance, and [`load_classifier`] turns the
//! record back into a model for labelling, benchmarks and training.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kdstore_core::augment::seed;
use kdstore_core::pipeline::config::{TeacherConfig, TeacherOptimizer, TeacherSchedule};
use kdstore_core::pipeline::parts::{short, TeacherTarget};
use kdstore_core::pipeline::plan::Plan;
use kdstore_core::pipeline::teachers::subset_samples;
use kdstore_core::pipeline::views::RenderContext;
use kdstore_core::pipeline::BuildError;
use kdstore_core::progress::Progress;
use kdstore_core::store::reader::SampleTable;
use kdstore_core::store::writer::{self, LogitsFormat};
use kdstore_core::store::{Manifest, Split, Store, TeacherInfo};

use crate::losses::parse_terms;
use crate::teacher::arch::ArchSpec;
use crate::teacher::Classifier;
use crate::train::schedule::Schedule;
use crate::train::{self, Optimizer, TrainConfig, ViewsPerEpoch};

/// The folder in a store where built-in teachers train.
pub const TRAINING_DIR: &str = "_training";

/// Trains or records the teacher `target` and describes it for the manifest. `siblings` are the
/// plan's teachers (a training run writes the models of all that share its key), `manifest` the
/// store as committed so far (with the logits a `distill_from` teacher learns from).
pub(super) fn prepare_teacher(
    plan: &Plan,
    root: &Path,
    target: &TeacherTarget,
    siblings: &[TeacherTarget],
    manifest: &Manifest,
    context: &RenderContext,
    progress: &dyn Progress,
) -> Result<TeacherInfo, BuildError> {
    let samples = context.samples;
    let name = target.name.clone();
    let setup = |detail: String| BuildError::TeacherSetup { teacher: name.clone(), detail };
    let channels = target.config.input_channels().map(<[usize]>::to_vec);
    let shape = kdstore_core::channels::shape_with(&samples.sample_shape, channels.as_deref());
    let (logits_dtype, logits_format) = match target.config.logits_format() {
        LogitsFormat::Dense(dtype) => (dtype.as_str(), None),
        LogitsFormat::TopK(top) if top.top_k > context.class_names.len() => {
            return Err(setup(format!(
                "logits_format.top_k = {} is more than the {} classes",
                top.top_k,
                context.class_names.len()
            )))
        }
        LogitsFormat::TopK(top) => (top.values.as_str(), Some(top)),
    };
    let base = TeacherInfo {
        name: name.clone(),
        key: target.key.clone(),
        label_space: context.class_names.clone(),
        input_layout: input_layout(&shape, channels.as_deref()),
        logits_dtype: logits_dtype.into(),
        logits_format,
        input_channels: channels.clone(),
        subset: target.subset,
        epoch: target.epoch,
        distilled_from: target.config.distill_from().map(str::to_string),
        ..Default::default()
    };
    match &target.config {
        TeacherConfig::Torchscript { path, .. } => {
            let (_, sha) = writer::file_digest(path)?;
            let parameters = Classifier::load_torchscript(&name, path, tch::Device::Cpu)
                .and_then(|model| model.parameters())
                .map_err(|source| BuildError::Teacher { teacher: name.clone(), source: Box::new(source) })?;
            Ok(TeacherInfo {
                kind: "torchscript".into(),
                architecture: "torchscript".into(),
                model_path: path.display().to_string(),
                model_sha256: sha,
                parameters: Some(parameters),
                ..base
            })
        }
        TeacherConfig::Builtin { arch, width, depth, .. } => {
            let input_shape = shape.iter().map(|&d| d as i64).collect();
            let spec = ArchSpec::new(*arch, *width, *depth, input_shape, context.class_count as i64);
            spec.check().map_err(setup)?;
            let model = model_path(target);
            if !root.join(&model).is_file() || !root.join(record_path(target)).is_file() {
                let store = Store { root: root.to_path_buf(), manifest: manifest.clone() };
                train_builtin(plan, &store, samples, target, siblings, progress)?;
            }
            let record_file = root.join(record_path(target));
            let record: serde_json::Value = std::fs::read_to_string(&record_file)
                .map_err(|source| BuildError::Io { path: record_file.clone(), source })
                .and_then(|text| {
                    serde_json::from_str(&text).map_err(|e| setup(format!("{}: {e}", record_file.display())))
                })?;
            let (_, sha) = writer::file_digest(&root.join(&model))?;
            Ok(TeacherInfo {
                kind: "builtin".into(),
                architecture: spec.describe(),
                model_path: model,
                model_sha256: sha,
                arch_spec: serde_json::to_value(&spec).expect("spec serialises"),
                parameters: record["parameters"].as_i64(),
                training: record,
                ..base
            })
        }
    }
}

/// Where a built-in teacher's weights live in the store.
fn model_path(target: &TeacherTarget) -> String {
    format!("models/{}-{}.safetensors", target.name, short(&target.key))
}

/// The record of the training run that made a built-in teacher (shared with its checkpoints).
fn record_path(target: &TeacherTarget) -> String {
    format!("models/{}-{}.training.json", run_name(target), short(&target.training_key))
}

/// The name of the training run that makes a teacher: `NAME` or `NAME#k`, without the checkpoint.
fn run_name(target: &TeacherTarget) -> &str {
    target.name.split('@').next().unwrap_or(&target.name)
}

/// The student trainer's configuration for a built-in teacher.
fn teacher_training(
    plan: &Plan,
    samples: &SampleTable,
    target: &TeacherTarget,
    out: &Path,
) -> Result<TrainConfig, BuildError> {
    let TeacherConfig::Builtin {
        arch,
        width,
        depth,
        epochs,
        batch_size,
        learning_rate,
        weight_decay,
        optimizer,
        momentum,
        schedule,
        warmup_epochs,
        augment,
        distill_from,
        loss,
        settings,
        checkpoints,
        input_channels,
        ..
    } = &target.config
    else {
        unreachable!("only built-in teachers train")
    };
    let base = run_name(target);
    let setup = |detail: String| BuildError::TeacherSetup { teacher: target.name.clone(), detail };
    let default_loss = if distill_from.is_some() { "kd" } else { "ce" };
    let losses: Vec<String> = if loss.is_empty() { vec![default_loss.to_string()] } else { loss.clone() };
    let settings: Vec<String> = settings.iter().map(|(key, value)| format!("{key}={value}")).collect();
    let losses = parse_terms(&losses, &settings).map_err(|e| setup(format!("loss: {e}")))?;
    let only_samples = subset_of(plan, samples, target).map(Arc::new);
    Ok(TrainConfig {
        teachers: distill_from.iter().cloned().collect(),
        ensemble: None,
        filter: (!augment).then(|| "recipe = 'identity'".to_string()),
        student: *arch,
        torchscript_student: None,
        width: *width,
        depth: *depth,
        heads: None,
        patch: None,
        losses,
        epochs: *epochs,
        batch_size: *batch_size,
        learning_rate: *learning_rate,
        weight_decay: *weight_decay,
        optimizer: match optimizer {
            TeacherOptimizer::Adamw => Optimizer::Adamw,
            TeacherOptimizer::Sgd => Optimizer::Sgd { momentum: *momentum, nesterov: false },
        },
        schedule: match schedule {
            TeacherSchedule::Cosine => Schedule::Cosine,
            TeacherSchedule::Constant => Schedule::Constant,
        },
        warmup_epochs: *warmup_epochs,
        curriculum: None,
        sample_weight: None,
        groups_per_batch: None,
        clip_grad_norm: None,
        views: ViewsPerEpoch::OnePerSample,
        seed: seed::purpose_seed(plan.file.seed, &format!("teacher/{base}")),
        device: "cpu".into(),
        verify_replay: 64,
        // The identity views are one per training sample, as many as the samples table holds; every
        // recipe's views can be many times that, so those are replayed batch by batch.
        preload: !augment,
        alternate_feed: false,
        online: false,
        co_train: false,
        threads: Some(1),
        student_channels: input_channels.clone(),
        keep_epochs: checkpoints.clone(),
        only_samples,
        title: Some(format!("train teacher {base}")),
        resume: train::checkpoint::latest(out).ok().flatten().is_some(),
    })
}

/// The training samples a subset teacher learns from (None: not a subset teacher).
pub(super) fn subset_of(plan: &Plan, samples: &SampleTable, target: &TeacherTarget) -> Option<Vec<i64>> {
    match (&target.config, target.subset) {
        (TeacherConfig::Builtin { name, subsets: Some(subsets), .. }, Some(k)) => {
            Some(subset_samples(&samples.ids_in(Split::Train), subsets.fraction, plan.file.seed, name, k))
        }
        _ => None,
    }
}

/// Trains the run that makes `target` and writes the models of every teacher it makes (the kept
/// weights and the checkpoints) and its record.
fn train_builtin(
    plan: &Plan,
    store: &Store,
    samples: &SampleTable,
    target: &TeacherTarget,
    siblings: &[TeacherTarget],
    progress: &dyn Progress,
) -> Result<(), BuildError> {
    let root = &store.root;
    let base = run_name(target).to_string();
    let out = root.join(TRAINING_DIR).join(format!("{base}-{}", short(&target.training_key)));
    let failed = |e: crate::train::TrainError| BuildError::Training { teacher: base.clone(), source: Box::new(e) };
    let config = teacher_training(plan, samples, target, &out)?;
    if !config.resume && out.exists() {
        // A finished run whose models were not all written: train it again.
        std::fs::remove_dir_all(&out).map_err(|source| BuildError::Io { path: out.clone(), source })?;
    }
    let results = train::train(store, &config, &out, progress).map_err(failed)?;
    let record = serde_json::json!({
        "trainer": "kdstore train",
        "config": results.config,
        "data": format!(
            "{}, {}",
            config.only_samples.as_ref().map_or("the train split".to_string(), |only| format!(
                "{} of the train split's samples (its subset)",
                only.len()
            )),
            if config.filter.is_some() { "identity views" } else { "one view of any recipe per sample per epoch" }
        ),
        "train_samples": results.train_samples,
        "best_epoch": results.best_epoch,
        "test_accuracy": results.test_accuracy,
        "parameters": results.student_parameters,
        "history": results.epochs.iter().map(|e| serde_json::json!({
            "epoch": e.epoch, "train_loss": e.train_loss, "val_accuracy": e.val.map(|v| v.accuracy),
        })).collect::<Vec<_>>(),
    });
    let models = root.join("models");
    std::fs::create_dir_all(&models).map_err(|source| BuildError::Io { path: models.clone(), source })?;
    for sibling in siblings.iter().filter(|s| s.training_key == target.training_key) {
        let from = match sibling.epoch {
            Some(epoch) => out.join(format!("epoch-{epoch}.safetensors")),
            None => out.join("student.safetensors"),
        };
        install(&from, &root.join(model_path(sibling)))?;
    }
    let record_file = root.join(record_path(target));
    let tmp = record_file.with_file_name(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, serde_json::to_string_pretty(&record).expect("record serialises"))
        .map_err(|source| BuildError::Io { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, &record_file).map_err(|source| BuildError::Io { path: record_file, source })?;
    std::fs::remove_dir_all(&out).map_err(|source| BuildError::Io { path: out, source })
}

/// Copies a file into place through a temporary file, so that the place holds all of it or nothing.
fn install(from: &Path, to: &Path) -> Result<(), BuildError> {
    let tmp: PathBuf = to.with_file_name(format!(".{}.tmp.safetensors", std::process::id()));
    std::fs::copy(from, &tmp).map_err(|source| BuildError::Io { path: from.to_path_buf(), source })?;
    std::fs::rename(&tmp, to).map_err(|source| BuildError::Io { path: to.to_path_buf(), source })
}

fn input_layout(shape: &[usize], channels: Option<&[usize]>) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let names = if shape.len() == 2 { "channels × time" } else { "channels × height × width" };
    let seen = match channels {
        Some(channels) => format!(
            "; channels {} of the sample, in this order",
            channels.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
        ),
        None => String::new(),
    };
    format!(
        "float32 [batch, {}] ({names}), normalised per channel with the manifest's mean and std{seen}",
        dims.join(", ")
    )
}

/// Loads a teacher as a classifier for inference on `device`.
pub fn load_classifier(root: &Path, info: &TeacherInfo, device: tch::Device) -> Result<Classifier, BuildError> {
    let teacher_error = |source| BuildError::Teacher { teacher: info.name.clone(), source: Box::new(source) };
    // The weights must be those the store's logits came from.
    kdstore_core::verify::check_model(&info.name, &info.model_file(root), &info.model_sha256)?;
    let classifier = if info.kind == "builtin" {
        let spec: ArchSpec = serde_json::from_value(info.arch_spec.clone()).map_err(|e| BuildError::TeacherSetup {
            teacher: info.name.clone(),
            detail: format!("bad arch_spec in the manifest: {e}"),
        })?;
        Classifier::load_builtin(&info.name, &spec, &info.model_file(root), device).map_err(teacher_error)?
    } else {
        Classifier::load_torchscript(&info.name, &info.model_file(root), device).map_err(teacher_error)?
    };
    Ok(classifier.with_channels(info.input_channels.clone()))
}
