//! Student training from a store: a built-in student trained with a weighted sum of losses on
//! replayed training views and their stored teacher logits, evaluated each epoch on the validation
//! split (accuracy, NLL, ECE, agreement with and KL to the teacher) and at the end on the test split
//! with the best-on-validation weights. The output folder holds `results.json` (config, per-epoch
//! and final metrics), `metrics.parquet` (one row per epoch), the best and last weights and the
//! architecture.

pub mod data;
pub mod metrics;
pub mod schedule;
pub mod student;

use std::path::{Path, PathBuf};

use polars::prelude::{Column, DataFrame, PolarsResult};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

use crate::augment::seed::purpose_seed;
use crate::losses::{LossInputs, LossTerm, Targets};
use crate::pipeline::build::load_classifier;
use crate::progress::Progress;
use crate::query;
use crate::select::{ReplayError, Replayer, SelectedView};
use crate::store::{Split, Store, StoreError};
use crate::teacher::arch::{ArchKind, ArchSpec, Net};
use metrics::{split_metrics, SplitMetrics};
use schedule::{learning_rate, Schedule};
use student::Student;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("selecting training views: {0}")]
    Selection(String),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("{0}")]
    Config(String),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Which views each epoch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewsPerEpoch {
    /// One stored view per training sample, drawn anew each epoch (the FKD way).
    OnePerSample,
    /// Every selected view, every epoch.
    All,
}

/// The optimiser and its settings (weight decay and learning rate live in [`TrainConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    /// AdamW (decoupled weight decay), β = (0.9, 0.999), ε = 1e-8.
    Adamw,
    /// SGD with momentum, optionally Nesterov; weight decay added to the gradient (L2).
    Sgd { momentum: f64, nesterov: bool },
}

/// A resolved training configuration (recorded in `results.json`).
#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    pub teacher: String,
    pub filter: Option<String>,
    pub student: ArchKind,
    /// A TorchScript student to train instead of the built-in one (`student`, `width` and `depth`
    /// are then unused).
    pub torchscript_student: Option<PathBuf>,
    pub width: i64,
    pub depth: i64,
    /// The objective: Σ weight · loss.
    pub losses: Vec<LossTerm>,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// Epochs of linear learning-rate warm-up.
    pub warmup_epochs: usize,
    /// Clip the gradients' global L2 norm to this value.
    pub clip_grad_norm: Option<f64>,
    pub views: ViewsPerEpoch,
    pub seed: u64,
    pub device: String,
    pub verify_replay: usize,
    /// Render every selected view once before training and batch from memory (no replay per batch).
    pub preload: bool,
    /// Run the frozen teacher on each batch instead of reading its stored logits (the baseline that
    /// the store replaces).
    pub online: bool,
    /// libtorch intra-op threads (default: libtorch's choice, all cores).
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub learning_rate: f64,
    pub train_loss: f64,
    /// Validation metrics (absent when the store has no validation split).
    pub val: Option<SplitMetrics>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub config: TrainConfig,
    pub store: String,
    pub store_version: u64,
    pub train_views: usize,
    pub train_samples: usize,
    pub replayed_and_verified: usize,
    pub epochs: Vec<EpochMetrics>,
    /// Time spent in training steps (batch preparation, forward, loss, backward, update), all
    /// epochs, without evaluation; and the training views processed per second of it.
    pub train_seconds: f64,
    pub train_views_per_second: f64,
    /// The epoch whose weights were kept (best validation accuracy; the last without validation).
    pub best_epoch: usize,
    /// Test metrics of the kept weights.
    pub test: SplitMetrics,
    pub test_accuracy: f64,
    pub teacher_test_accuracy: Option<f64>,
    pub student_parameters: i64,
}

/// Trains a student and writes its outputs into `out` (see the module note).
pub fn train(store: &Store, config: &TrainConfig, out: &Path, progress: &dyn Progress) -> Result<Results, TrainError> {
    let device = match config.device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" if tch::Cuda::is_available() => Device::Cuda(0),
        "cuda" => return Err(TrainError::Config("--device cuda: no CUDA device is available to libtorch here".into())),
        other => return Err(TrainError::Config(format!("--device {other}: expected cpu or cuda"))),
    };
    if let Some(threads) = config.threads {
        tch::set_num_threads(threads.max(1) as i32);
    }
    if store.manifest.teacher(&config.teacher).is_none() {
        let known: Vec<&str> = store.manifest.teachers.iter().map(|t| t.name.as_str()).collect();
        return Err(TrainError::Config(format!(
            "--teacher {}: the store has no such teacher (it has: {})",
            config.teacher,
            known.join(", ")
        )));
    }
    if config.losses.is_empty() {
        return Err(TrainError::Config("--loss: name at least one loss".into()));
    }
    let data = data::load(store, &config.teacher, config.filter.as_deref())?;
    let replayer = Replayer::new(store, &data.samples)?;
    let verified = data.verify_replay(&replayer, config.verify_replay, config.seed)?;

    let spec = ArchSpec {
        kind: config.student,
        width: config.width,
        depth: config.depth,
        input_shape: data.samples.sample_shape.iter().map(|&d| d as i64).collect(),
        classes: data.classes as i64,
    };
    let mut vs = nn::VarStore::new(device);
    let mut net = match &config.torchscript_student {
        Some(path) => Student::scripted(path, &vs, spec.input_shape.clone())
            .map_err(|e| TrainError::Config(format!("--student-torchscript {}: {e}", path.display())))?,
        None => {
            spec.check().map_err(|e| TrainError::Config(format!("--student: {e}")))?;
            let net = Net::seeded(&vs.root(), &spec, purpose_seed(config.seed, "student"));
            Student::Builtin { net, spec: spec.clone() }
        }
    };
    let parameters: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    let mut optimizer = match config.optimizer {
        Optimizer::Adamw => {
            nn::AdamW { wd: config.weight_decay, ..Default::default() }.build(&vs, config.learning_rate)?
        }
        Optimizer::Sgd { momentum, nesterov } => {
            nn::Sgd { momentum, dampening: 0.0, wd: config.weight_decay, nesterov }.build(&vs, config.learning_rate)?
        }
    };

    let by_sample = group_by_sample(&data.views);
    let preloaded = if config.preload { Some(data.render_all(&replayer)?) } else { None };
    let online_teacher = if config.online {
        let info = store.manifest.teacher(&config.teacher).expect("checked above");
        Some(load_classifier(&store.root, info).map_err(|e| TrainError::Config(format!("--online: {e}")))?)
    } else {
        None
    };
    let sample_len = data.samples.sample_len;
    let needs_features = config.losses.iter().any(|t| t.config.needs_features());
    let stored_features = if needs_features && !config.online {
        Some(stored_teacher_features(store, &config.teacher, &data.views)?)
    } else {
        None
    };
    let val = data.split(&replayer, Split::Val);
    let test = data.split(&replayer, Split::Test);
    std::fs::create_dir_all(out).map_err(|source| TrainError::Write { path: out.to_path_buf(), source })?;
    let best_path = out.join("student.safetensors");
    let mut best: Option<(usize, Option<f64>)> = None;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(purpose_seed(config.seed, "batches"));
    let mut epochs = Vec::with_capacity(config.epochs);
    let (mut train_seconds, mut trained_views) = (0.0, 0usize);
    let task = progress.task("train student", config.epochs as u64);
    for epoch in 0..config.epochs {
        let started = std::time::Instant::now();
        let learning_rate =
            learning_rate(config.schedule, config.learning_rate, config.warmup_epochs, epoch, config.epochs);
        optimizer.set_lr(learning_rate);
        let mut chosen: Vec<usize> = match config.views {
            ViewsPerEpoch::All => (0..data.views.len()).collect(),
            ViewsPerEpoch::OnePerSample => {
                by_sample.iter().map(|views| *views.choose(&mut rng).expect("groups are non-empty")).collect()
            }
        };
        chosen.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let steps_started = std::time::Instant::now();
        for batch in chosen.chunks(config.batch_size) {
            let views: Vec<&SelectedView> = batch.iter().map(|&i| &data.views[i]).collect();
            let flat = match &preloaded {
                Some(all) => batch.iter().flat_map(|&i| &all[i * sample_len..(i + 1) * sample_len]).copied().collect(),
                None => data.render(&replayer, &views)?,
            };
            let (teacher, teacher_features): (Vec<f32>, Option<Vec<f32>>) = match &online_teacher {
                Some(model) => {
                    let inference =
                        tch::no_grad(|| model.infer(&flat, &data.samples.sample_shape, Device::Cpu, needs_features))
                            .map_err(|e| TrainError::Config(format!("--online: {e}")))?;
                    (inference.logits, needs_features.then_some(inference.features))
                }
                None => (
                    views.iter().flat_map(|v| v.teacher_logits.iter().copied()).collect(),
                    stored_features
                        .as_ref()
                        .map(|stored| views.iter().flat_map(|v| stored[&v.view_id].iter().copied()).collect()),
                ),
            };
            let rows = batch.len() as i64;
            let teacher = Tensor::from_slice(&teacher).view([rows, data.classes as i64]).to_device(device);
            let teacher_features = teacher_features.map(|f| Tensor::from_slice(&f).view([rows, -1]).to_device(device));
            let inputs = Tensor::from_slice(&flat).to_device(device);
            let (student_features, student) = net.forward_with_features(&inputs, true, needs_features)?;
            let features = student_features.as_ref().zip(teacher_features.as_ref());
            let loss = batch_loss(config, &student, &teacher, features, &views, epoch + 1, device)?;
            match config.clip_grad_norm {
                Some(max) => optimizer.backward_step_clip_norm(&loss, max),
                None => optimizer.backward_step(&loss),
            }
            loss_sum += loss.double_value(&[]) * batch.len() as f64;
        }
        let epoch_seconds = steps_started.elapsed().as_secs_f64();
        train_seconds += epoch_seconds;
        trained_views += chosen.len();
        let val_metrics =
            (!val.labels.is_empty()).then(|| evaluate(&mut net, &val, &spec, data.classes, device)).transpose()?;
        let score = val_metrics.map(|m| m.accuracy);
        if keeps(best.and_then(|(_, kept)| kept), score) {
            vs.save(&best_path)?;
            best = Some((epoch + 1, score));
        }
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            learning_rate,
            train_loss: loss_sum / chosen.len().max(1) as f64,
            val: val_metrics,
            seconds: started.elapsed().as_secs_f64(),
        };
        task.set_message(&format!(
            "loss {:.4} val acc {} {:.0} views/s",
            metrics.train_loss,
            metrics.val.map_or("-".into(), |m| format!("{:.3}", m.accuracy)),
            chosen.len() as f64 / epoch_seconds.max(f64::MIN_POSITIVE)
        ));
        task.advance(1);
        epochs.push(metrics);
    }
    task.finish();
    vs.save(out.join("last.safetensors"))?;
    let best_epoch = match best {
        Some((epoch, _)) => {
            vs.load(&best_path)?;
            epoch
        }
        None => {
            vs.save(&best_path)?;
            0
        }
    };
    let test_metrics = evaluate(&mut net, &test, &spec, data.classes, device)?;
    let results = Results {
        config: config.clone(),
        store: store.root.display().to_string(),
        store_version: store.manifest.version,
        train_views: data.views.len(),
        train_samples: by_sample.len(),
        replayed_and_verified: verified,
        epochs,
        train_seconds,
        train_views_per_second: trained_views as f64 / train_seconds.max(f64::MIN_POSITIVE),
        best_epoch,
        test: test_metrics,
        test_accuracy: test_metrics.accuracy,
        teacher_test_accuracy: store.manifest.teacher(&config.teacher).and_then(|t| t.accuracy.get("test").copied()),
        student_parameters: parameters,
    };
    write_outputs(out, &results)?;
    net.save(out).map_err(|e| TrainError::Config(format!("saving the student: {e}")))?;
    Ok(results)
}

/// Whether an epoch's weights replace the kept ones: a higher validation accuracy than the kept
/// weights' (the first of equals stays), or, without validation scores, always (the last is kept).
fn keeps(kept: Option<f64>, validation: Option<f64>) -> bool {
    match (kept, validation) {
        (Some(kept), Some(score)) => score > kept,
        _ => true,
    }
}

/// Indices of the views of each sample, samples in id order.
fn group_by_sample(views: &[SelectedView]) -> Vec<Vec<usize>> {
    let mut groups: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (index, view) in views.iter().enumerate() {
        groups.entry(view.sample_id).or_default().push(index);
    }
    groups.into_values().collect()
}

/// The teacher's stored features of every selected view, or why the store cannot give them.
fn stored_teacher_features(
    store: &Store,
    teacher: &str,
    views: &[SelectedView],
) -> Result<std::collections::HashMap<i64, Vec<f32>>, TrainError> {
    let stored = crate::select::teacher_features(store, teacher).map_err(|e| TrainError::Selection(e.to_string()))?;
    if let Some(view) = views.iter().find(|v| !stored.contains_key(&v.view_id)) {
        return Err(TrainError::Config(format!(
            "the feature losses need the teacher's penultimate features, and the store holds none for teacher {teacher} (view {}): add `embeddings = \"f16\"` to its [[teacher]] and run kdstore build again",
            view.view_id
        )));
    }
    Ok(stored)
}

fn batch_loss(
    config: &TrainConfig,
    student: &Tensor,
    teacher: &Tensor,
    features: Option<(&Tensor, &Tensor)>,
    batch: &[&SelectedView],
    epoch: usize,
    device: Device,
) -> Result<Tensor, TrainError> {
    let targets = Targets {
        labels: Tensor::from_slice(&batch.iter().map(|v| v.label).collect::<Vec<_>>()).to_device(device),
        partner_labels: Tensor::from_slice(&batch.iter().map(|v| v.partner_label).collect::<Vec<_>>())
            .to_device(device),
        lam: Tensor::from_slice(&batch.iter().map(|v| v.lam).collect::<Vec<_>>()).to_device(device),
    };
    let inputs = LossInputs {
        student,
        teacher: Some(teacher),
        targets: &targets,
        student_features: features.map(|f| f.0),
        teacher_features: features.map(|f| f.1),
        epoch: Some(epoch),
    };
    let mut total = Tensor::zeros([], (student.kind(), device));
    for term in &config.losses {
        total += term.config.compute(&inputs).map_err(|e| TrainError::Config(e.to_string()))? * term.weight;
    }
    Ok(total)
}

/// The student's metrics on a split (its identity views), against the teacher's stored logits.
fn evaluate(
    net: &mut Student,
    split: &data::SplitData,
    spec: &ArchSpec,
    classes: usize,
    device: Device,
) -> Result<SplitMetrics, TrainError> {
    let per_sample: usize = spec.input_shape.iter().product::<i64>() as usize;
    let mut logits = Vec::with_capacity(split.labels.len() * classes);
    tch::no_grad(|| -> Result<(), TrainError> {
        for x in split.inputs.chunks(512 * per_sample) {
            let out = net.forward(&Tensor::from_slice(x).to_device(device), false)?;
            logits.extend(Vec::<f32>::try_from(out.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))?);
        }
        Ok(())
    })?;
    Ok(split_metrics(&logits, &split.labels, split.teacher_logits.as_deref(), classes))
}

fn write_outputs(out: &Path, results: &Results) -> Result<(), TrainError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Write { path, source }
    };
    let results_path = out.join("results.json");
    std::fs::write(&results_path, serde_json::to_string_pretty(results).expect("results serialise"))
        .map_err(write_error(&results_path))?;
    let config_path = out.join("config.json");
    std::fs::write(&config_path, serde_json::to_string_pretty(&results.config).expect("config serialises"))
        .map_err(write_error(&config_path))?;
    let metrics_path = out.join("metrics.parquet");
    let mut file = std::fs::File::create(&metrics_path).map_err(write_error(&metrics_path))?;
    let mut frame = epochs_frame(&results.epochs).map_err(|e| TrainError::Config(format!("metrics: {e}")))?;
    query::write(&mut frame, query::Format::Parquet, &mut file)
        .map_err(|e| TrainError::Write { path: metrics_path.clone(), source: std::io::Error::other(e.to_string()) })?;
    Ok(())
}

/// One row per epoch: the learning rate, the training loss and the validation metrics.
fn epochs_frame(epochs: &[EpochMetrics]) -> PolarsResult<DataFrame> {
    let val = |f: fn(&SplitMetrics) -> Option<f64>| -> Vec<Option<f64>> {
        epochs.iter().map(|e| e.val.as_ref().and_then(f)).collect()
    };
    DataFrame::new(
        epochs.len(),
        vec![
            Column::new("epoch".into(), epochs.iter().map(|e| e.epoch as i64).collect::<Vec<_>>()),
            Column::new("learning_rate".into(), epochs.iter().map(|e| e.learning_rate).collect::<Vec<_>>()),
            Column::new("train_loss".into(), epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>()),
            Column::new("val_accuracy".into(), val(|m| Some(m.accuracy))),
            Column::new("val_nll".into(), val(|m| Some(m.nll))),
            Column::new("val_ece".into(), val(|m| Some(m.ece))),
            Column::new("val_teacher_agreement".into(), val(|m| m.teacher_agreement)),
            Column::new("val_kl_to_teacher".into(), val(|m| m.kl_to_teacher)),
            Column::new("seconds".into(), epochs.iter().map(|e| e.seconds).collect::<Vec<_>>()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::keeps;

    #[test]
    fn the_best_validation_accuracy_is_kept_and_ties_keep_the_first() {
        assert!(keeps(None, Some(0.5)));
        assert!(keeps(Some(0.5), Some(0.6)));
        assert!(!keeps(Some(0.6), Some(0.6)));
        assert!(!keeps(Some(0.6), Some(0.4)));
        assert!(keeps(None, None) && keeps(Some(0.9), None), "without validation the last is kept");
    }
}
