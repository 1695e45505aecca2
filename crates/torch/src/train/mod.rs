//! Student training from a store: a built-in student trained with a weighted sum of losses on
//! replayed training views and their stored teacher logits, evaluated each epoch on the validation
//! split (accuracy, NLL, ECE, agreement with and KL to the teacher) and at the end on the test split
//! with the best-on-validation weights. The output folder holds `results.json` (config, per-epoch
//! and final metrics, the test reliability bins), `metrics.parquet` (one row per epoch),
//! `predictions.parquet` (the test predictions), the best and last weights and the architecture. While it runs, a checkpoint after every epoch lets an interrupted run resume
//! (`--resume`) to the same end, bit for bit; the checkpoints are removed when the run completes.

pub mod amal;
pub mod batches;
pub mod checkpoint;
pub mod co_train;
pub mod curriculum;
pub mod data;
pub mod de_weights;
pub mod finite;
pub mod group_batches;
pub mod metrics;
pub mod optimizer;
pub mod predictions;
pub mod previous;
pub mod sample_rows;
pub mod sample_weights;
pub mod schedule;
pub mod step;
pub mod student;
pub mod target;
pub mod teachers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::build::load_classifier;
use crate::losses::{dlkd, LossConfig, LossTerm};
use crate::teacher::arch::{seeded_init, ArchKind, ArchSpec};
use batches::BatchSource;
use co_train::CoTeacher;
use kdstore_core::augment::seed::purpose_seed;
use kdstore_core::calibration::ReliabilityBin;
use kdstore_core::progress::Progress;
use kdstore_core::query::{self, Values};
use kdstore_core::select::{ReplayError, Replayer};
use kdstore_core::store::{Split, Store, StoreError};
use metrics::{agreement, split_metrics, split_reliability, SplitMetrics};
pub use optimizer::Optimizer;
use optimizer::Stepper;
use sample_rows::SampleRows;
use schedule::{learning_rate, Schedule};
use step::Step;
use student::{Student, StudentSource};
pub use target::EnsembleChoice;
use teachers::EnsembleReport;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("selecting training views: {0}")]
    Selection(String),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("reading the samples: {0}")]
    Input(kdstore_core::source::SourceError),
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
    #[error(transparent)]
    Diverged(#[from] finite::Diverged),
    #[error("stopped by {} after {epochs_done} finished epochs; the checkpoint of the last one continues the run with --resume", kdstore_core::interrupt::name(*.signal))]
    Interrupted { signal: i32, epochs_done: usize },
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

/// A resolved training configuration (recorded in `results.json`).
#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    /// The teachers, as `--teacher` names them (names or globs; resolved in `Results::teachers`).
    pub teachers: Vec<String>,
    /// How several teachers make the target (required with more than one).
    pub ensemble: Option<EnsembleChoice>,
    pub filter: Option<String>,
    pub student: ArchKind,
    /// A TorchScript student to train instead of the built-in one (`student`, `width` and `depth`
    /// are then unused).
    pub torchscript_student: Option<PathBuf>,
    pub width: i64,
    pub depth: i64,
    /// A transformer student's attention heads and time steps per token (`--heads`, `--patch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<i64>,
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
    /// Order and pace the training samples by a stored difficulty (`--curriculum`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curriculum: Option<curriculum::CurriculumConfig>,
    /// Batches of this many groups (subjects) each (`--groups-per-batch`; `mmd` needs it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_per_batch: Option<usize>,
    /// Weigh each sample's objective (`--sample-weight`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_weight: Option<sample_weights::SampleWeight>,
    /// Clip the gradients' global L2 norm to this value.
    pub clip_grad_norm: Option<f64>,
    pub views: ViewsPerEpoch,
    pub seed: u64,
    pub device: String,
    pub verify_replay: usize,
    /// Render every selected view once before training and batch from memory (no replay per batch).
    pub preload: bool,
    /// A benchmark of the store's cost in one run: every view rendered once as with `preload`, odd
    /// epochs (1st, 3rd, ...) batched from memory and even ones replayed from the store. The
    /// batches are the same either way, so the run trains exactly as without it; each epoch's
    /// metrics say where its batches came from.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub alternate_feed: bool,
    /// Run the frozen teachers on each batch instead of reading their stored logits (the baseline
    /// that the store replaces).
    pub online: bool,
    /// Train a fresh teacher of the store teacher's architecture together with the student (DML).
    pub co_train: bool,
    /// libtorch intra-op threads (default: libtorch's choice, all cores).
    pub threads: Option<usize>,
    /// The input channels the student sees (default all): `--student-channels`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_channels: Option<Vec<usize>>,
    /// Keep the weights after these epochs as `epoch-<N>.<ext>` in the output folder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keep_epochs: Vec<usize>,
    /// Train only on these training samples (a subset teacher's share; the build sets it).
    #[serde(skip)]
    pub only_samples: Option<std::sync::Arc<Vec<i64>>>,
    /// What the progress bar calls the run.
    #[serde(skip)]
    pub title: Option<String>,
    /// Continue the interrupted run whose checkpoint is in the output folder.
    #[serde(skip)]
    pub resume: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub learning_rate: f64,
    pub train_loss: f64,
    /// Validation metrics (absent when the store has no validation split); with several teachers,
    /// agreement and KL are with the ensemble.
    pub val: Option<SplitMetrics>,
    /// With several teachers: top-1 agreement with each one on the validation split.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub val_agreement_with: BTreeMap<String, f64>,
    pub seconds: f64,
    /// The training steps' share of `seconds` (batch preparation, forward, backward, update).
    #[serde(default)]
    pub train_seconds: f64,
    /// With `alternate_feed`: "memory" or "store".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fed_from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub config: TrainConfig,
    /// The teachers `config.teachers` named, in order.
    pub teachers: Vec<String>,
    /// With several teachers: how they were combined (DE weights, curriculum strata) and how the
    /// ensemble itself does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<EnsembleReport>,
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
    /// The kept weights' reliability diagram on the test split (`calibration::ECE_BINS` bins).
    pub test_reliability: Vec<ReliabilityBin>,
    /// With several teachers: top-1 agreement with each one on the test split.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub test_agreement_with: BTreeMap<String, f64>,
    /// The (first) teacher's test accuracy.
    pub teacher_test_accuracy: Option<f64>,
    /// With `--co-train`: the co-trained teacher's test metrics (its last weights).
    pub co_trained_teacher: Option<SplitMetrics>,
    /// With `--ensemble amal`: where the per-sample weights ended, per term (CE, then each teacher).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amal_weights: Option<Vec<amal::WeightSummary>>,
    pub student_parameters: i64,
}

/// Trains a student and writes its outputs into `out` (see the module note). With
/// `config.resume`, continues the interrupted run whose checkpoint is in `out`.
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
    let teachers = check(store, config)?;
    let first_teacher = teachers.first().map(|name| store.manifest.teacher(name).expect("resolved from the manifest"));
    let config_json = serde_json::to_value(config).expect("config serialises");
    let resumed = resumable(out, config, &config_json)?;
    let selecting = data::Selecting {
        filter: config.filter.as_deref(),
        only: config.only_samples.as_deref().map(Vec::as_slice),
        student_channels: config.student_channels.as_deref(),
    };
    let data = data::load(store, &teachers, &selecting)?;
    let (rule, mut ensemble) = teachers::resolve(store, config, &data)?;
    let replayer = Replayer::new(store, &data.samples)?;
    let verified = data.verify_replay(&replayer, config.verify_replay, config.seed)?;

    let spec = ArchSpec {
        heads: config.heads,
        patch: config.patch,
        ..ArchSpec::new(
            config.student,
            config.width,
            config.depth,
            data.student_shape().iter().map(|&d| d as i64).collect(),
            data.classes as i64,
        )
    };
    let source = match &config.torchscript_student {
        Some(path) => StudentSource::Scripted { path: path.clone(), input_shape: spec.input_shape.clone() },
        None => {
            spec.check().map_err(|e| TrainError::Config(format!("--student: {e}")))?;
            StudentSource::Builtin { spec: spec.clone(), seed: purpose_seed(config.seed, "student") }
        }
    };
    let extension = source.extension();
    let open_student = |vs: &mut nn::VarStore, weights: Option<&Path>| {
        Student::open(&source, vs, weights).map_err(|e| match &config.torchscript_student {
            Some(path) => TrainError::Config(format!("--student-torchscript {}: {e}", path.display())),
            None => TrainError::Torch(e),
        })
    };
    let mut vs = nn::VarStore::new(device);
    let mut net =
        open_student(&mut vs, resumed.as_ref().map(|c| checkpoint::last_weights(&c.dir, extension)).as_deref())?;
    let parameters: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();

    let by_sample = data.by_sample()?;
    let views_per_sample = config.losses.iter().find_map(|t| t.config.views_per_sample());
    if let Some(views) = views_per_sample {
        if config.views == ViewsPerEpoch::All {
            return Err(TrainError::Config(format!(
                "--views all: dlkd draws each sample's identity view and {} others every epoch instead",
                views - 1
            )));
        }
        check_groups(&data, &by_sample, views)?;
    }
    let paced = match &config.curriculum {
        Some(c) => Some(paced_order(store, c, config, &data, &by_sample, views_per_sample.is_some())?),
        None => None,
    };
    let mix = group_mix(config, &data)?;
    let weighting = match &config.sample_weight {
        Some(rule) => Some(sample_weighting(store, rule, config, &data)?),
        None => None,
    };
    let memory = config
        .losses
        .iter()
        .any(|t| matches!(t.config, LossConfig::Pskd(_)))
        .then(|| data.samples_in_selection_order(&by_sample))
        .transpose()?
        .map(|ids| std::cell::RefCell::new(previous::PreviousPredictions::new(SampleRows::new(ids), data.classes)));
    if let (Some(memory), Some(checkpoint)) = (&memory, &resumed) {
        memory.borrow_mut().load(&checkpoint.dir).map_err(|e| TrainError::Config(format!("--resume: {e}")))?;
    }
    let mixing = mixing_weights(config, &data, &by_sample, resumed.as_ref())?;
    let preloaded = if config.preload || config.alternate_feed { Some(data.render_all(&replayer)?) } else { None };
    let needs_features = config.losses.iter().any(|t| t.config.needs_features());
    let needs_teacher_features = config.losses.iter().any(|t| t.config.needs_teacher_features());
    let online_teachers = if config.online { load_teachers(store, &teachers, device)? } else { Vec::new() };
    let stored_features = if needs_teacher_features && !config.online && !config.co_train {
        Some(stored_teacher_features(store, &teachers[0], &data)?)
    } else {
        None
    };
    let mut co_teacher = if config.co_train {
        let info = first_teacher.expect("checked: co-training needs a teacher");
        Some(CoTeacher::new(info, config, device, resumed.as_ref().map(|c| c.dir.as_path()))?)
    } else {
        None
    };
    let mut heads_vs = nn::VarStore::new(device);
    let heads = match config.losses.iter().find_map(|t| match &t.config {
        LossConfig::Dlkd(dlkd) => Some(dlkd),
        _ => None,
    }) {
        Some(dlkd) => {
            let first = data.render(&replayer, &[&data.rows(&[0])?.views[0]])?;
            let sources = FeatureSources {
                co_teacher: co_teacher.as_ref(),
                stored: stored_features.as_ref(),
                online: online_teachers.first(),
            };
            let (student_width, teacher_width) = feature_widths(&mut net, &first, &data, &sources, device)?;
            let heads = seeded_init(purpose_seed(config.seed, "dlkd-heads"), || {
                dlkd::Heads::new(&(heads_vs.root() / "dlkd"), dlkd, student_width, teacher_width)
            });
            if let Some(checkpoint) = &resumed {
                heads_vs.load(checkpoint::heads_weights(&checkpoint.dir))?;
            }
            Some(heads)
        }
        None => None,
    };
    let mut stepper = Stepper::new(&[&vs, &heads_vs], config.optimizer, config.weight_decay);
    if let Some(checkpoint) = &resumed {
        stepper.load(&checkpoint::optimizer_state(&checkpoint.dir))?;
    }
    // The newest checkpoint's folder: its best weights are the kept ones until an epoch beats them.
    let mut latest_checkpoint = resumed.as_ref().map(|c| c.dir.clone());
    let mut state = resumed.map(|c| c.state).unwrap_or_default();
    let batches = BatchSource {
        data: &data,
        replayer: &replayer,
        preloaded: preloaded.as_deref(),
        stored_logits: online_teachers.is_empty() && !config.co_train,
        stored_features: stored_features.as_ref(),
        preparation: batches::Preparation::for_run(device)?,
    };
    let val = data.split(Split::Val, &rule)?;
    let test = data.split(Split::Test, &rule)?;
    if let Some(report) = ensemble.as_mut() {
        report.evaluate(&val, &test, data.classes);
    }
    std::fs::create_dir_all(out).map_err(|source| TrainError::Write { path: out.to_path_buf(), source })?;
    let task = progress.task(config.title.as_deref().unwrap_or("train student"), config.epochs as u64);
    task.advance(state.epochs_done as u64);
    for epoch in state.epochs_done..config.epochs {
        let started = std::time::Instant::now();
        // A TorchScript student may draw (dropout): each epoch seeds libtorch from its own seed.
        tch::manual_seed(purpose_seed(config.seed, &format!("torch/epoch-{epoch}")) as i64);
        let learning_rate =
            learning_rate(config.schedule, config.learning_rate, config.warmup_epochs, epoch, config.epochs);
        if let Some((settings, weights)) = mixing.as_ref().filter(|(settings, _)| settings.updates_before(epoch)) {
            let meta = amal::MetaStep {
                settings,
                batches: &batches,
                by_sample: &by_sample,
                val: &val,
                batch_size: config.batch_size,
                seed: config.seed,
                device,
            };
            meta.run(&mut weights.borrow_mut(), &mut net, epoch, learning_rate)?;
        }
        let plans = match &paced {
            Some(curriculum) => curriculum.epoch_plan(config.batch_size, config.seed, epoch + 1),
            None => batches::epoch_plan(
                &by_sample,
                config.views,
                views_per_sample,
                mix.as_ref(),
                config.batch_size,
                config.seed,
                epoch + 1,
            ),
        };
        let epoch_views: usize = plans.iter().map(Vec::len).sum();
        let mut loss_sum = 0.0;
        let steps_started = std::time::Instant::now();
        let step = Step {
            config,
            data: &data,
            online_teachers: &online_teachers,
            rule: &rule,
            needs_features,
            needs_teacher_features,
            heads: heads.as_ref(),
            weighting: weighting.as_ref(),
            memory: memory.as_ref(),
            mixing: mixing.as_ref().map(|(_, weights)| weights),
            device,
        };
        let mut step_number = 0;
        let from_store = config.alternate_feed && epoch % 2 == 1;
        let epoch_batches = BatchSource { preloaded: batches.preloaded.filter(|_| !from_store), ..batches };
        epoch_batches.run(plans, |batch| {
            if let Some(signal) = kdstore_core::interrupt::received() {
                return Err(TrainError::Interrupted { signal, epochs_done: epoch });
            }
            step_number += 1;
            let rows = batch.views.len() as f64;
            stepper.zero_grad();
            if let Some(co) = co_teacher.as_mut() {
                co.stepper.zero_grad();
            }
            let at =
                step::Position { epoch: epoch + 1, step: step_number, iteration: state.steps_done + step_number - 1 };
            let (mut terms, teacher_loss) = step.objectives(&mut net, co_teacher.as_ref(), &batch, at)?;
            let loss = terms.iter().fold(Tensor::zeros([], (Kind::Float, device)), |sum, (_, term)| sum + term);
            if let Some(teacher_loss) = &teacher_loss {
                terms.push(("the co-trained teacher's objective".to_string(), teacher_loss.shallow_clone()));
            }
            finite::check_terms(&terms, epoch + 1, step_number)?;
            match &teacher_loss {
                Some(teacher_loss) => (&loss + teacher_loss).backward(),
                None => loss.backward(),
            }
            finite::check_gradients(stepper.gradient_norm()?, "student", epoch + 1, step_number)?;
            if let Some(co) = co_teacher.as_mut() {
                finite::check_gradients(co.stepper.gradient_norm()?, "co-trained teacher", epoch + 1, step_number)?;
            }
            for stepper in std::iter::once(&mut stepper).chain(co_teacher.as_mut().map(|co| &mut co.stepper)) {
                if let Some(max) = config.clip_grad_norm {
                    stepper.clip_grad_norm(max)?;
                }
                stepper.step(learning_rate)?;
            }
            loss_sum += loss.double_value(&[]) * rows;
            Ok(())
        })?;
        let epoch_seconds = steps_started.elapsed().as_secs_f64();
        state.steps_done += step_number;
        if let Some(memory) = &memory {
            memory.borrow_mut().end_epoch();
        }
        state.train_seconds += epoch_seconds;
        state.trained_views += epoch_views;
        let (val_metrics, val_agreement_with) = match val.labels.is_empty() {
            true => (None, BTreeMap::new()),
            false => {
                let evaluation = evaluate(&mut |x| net.forward(x, false), &val, &data, &replayer, device)?;
                (Some(evaluation.metrics), evaluation.agreement_with)
            }
        };
        if let Some(metrics) = &val_metrics {
            finite::check_metrics(metrics, "val", epoch + 1, step_number)?;
        }
        let score = val_metrics.map(|m| m.accuracy);
        let improved = keeps(state.best.and_then(|(_, kept)| kept), score);
        if improved {
            state.best = Some((epoch + 1, score));
        }
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            learning_rate,
            train_loss: loss_sum / epoch_views.max(1) as f64,
            val: val_metrics,
            val_agreement_with,
            seconds: started.elapsed().as_secs_f64(),
            train_seconds: epoch_seconds,
            fed_from: config.alternate_feed.then(|| if from_store { "store" } else { "memory" }.to_string()),
        };
        task.set_message(&format!(
            "loss {:.4} val acc {} {:.0} views/s",
            metrics.train_loss,
            metrics.val.map_or("-".into(), |m| format!("{:.3}", m.accuracy)),
            epoch_views as f64 / epoch_seconds.max(f64::MIN_POSITIVE)
        ));
        state.epochs.push(metrics);
        state.epochs_done = epoch + 1;
        let written = checkpoint::write(out, &config_json, &state, |dir| {
            let last = checkpoint::last_weights(dir, extension);
            let best = checkpoint::best_weights(dir, extension);
            net.save_weights(&vs, &last).map_err(|e| format!("{}: {e}", last.display()))?;
            let kept = match &latest_checkpoint {
                Some(previous) if !improved => checkpoint::best_weights(previous, extension),
                _ => last.clone(),
            };
            std::fs::copy(&kept, &best).map(drop).map_err(|e| format!("{}: {e}", best.display()))?;
            if heads.is_some() {
                heads_vs.save(checkpoint::heads_weights(dir)).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            if let Some(co) = &co_teacher {
                co.save(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            if let Some(memory) = &memory {
                memory.borrow().save(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            if let Some((_, weights)) = &mixing {
                weights.borrow().save(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            if config.keep_epochs.contains(&(epoch + 1)) {
                let kept = out.join(format!("epoch-{}.{extension}", epoch + 1));
                std::fs::copy(&last, &kept).map(drop).map_err(|e| format!("{}: {e}", kept.display()))?;
            }
            stepper.save(&checkpoint::optimizer_state(dir)).map_err(|e| format!("{}: {e}", dir.display()))
        })
        .map_err(|e| TrainError::Write { path: checkpoint::folder(out), source: std::io::Error::other(e) })?;
        latest_checkpoint = Some(written);
        task.advance(1);
    }
    task.finish();

    let best_path = write_final_weights(out, latest_checkpoint.as_deref(), &net, &vs, extension)?;
    net.save_architecture(out).map_err(|e| TrainError::Config(format!("saving the student: {e}")))?;
    let mut best_vs = nn::VarStore::new(device);
    let mut best_net = open_student(&mut best_vs, Some(&best_path))?;
    let tested = evaluate(&mut |x| best_net.forward(x, false), &test, &data, &replayer, device)?;
    let (test_metrics, test_agreement_with) = (tested.metrics, tested.agreement_with);
    finite::check_metrics(&test_metrics, "test", config.epochs, 0)?;
    let predicted = predictions::columns(&test.sample_ids, &test.labels, &tested.logits, data.classes);
    write_table_file(&out.join(predictions::FILE), predicted)?;
    let co_trained_teacher = match &co_teacher {
        Some(co) => {
            co.write(out)?;
            let metrics = evaluate(&mut |x| co.net.forward(x, false), &test, &data, &replayer, device)?.metrics;
            finite::check_metrics(&metrics, "co-trained teacher's test", config.epochs, 0)?;
            Some(SplitMetrics { teacher_agreement: None, kl_to_teacher: None, ..metrics })
        }
        None => None,
    };
    let results = Results {
        config: config.clone(),
        teachers: teachers.clone(),
        ensemble,
        store: store.root.display().to_string(),
        store_version: store.manifest.version,
        train_views: data.views.len(),
        train_samples: by_sample.len(),
        replayed_and_verified: verified,
        train_seconds: state.train_seconds,
        train_views_per_second: state.trained_views as f64 / state.train_seconds.max(f64::MIN_POSITIVE),
        best_epoch: state.best.map_or(0, |(epoch, _)| epoch),
        epochs: state.epochs,
        test: test_metrics,
        test_accuracy: test_metrics.accuracy,
        test_reliability: split_reliability(&tested.logits, &test.labels, data.classes),
        test_agreement_with,
        teacher_test_accuracy: first_teacher.and_then(|t| t.accuracy.get("test").copied()),
        co_trained_teacher,
        amal_weights: mixing.as_ref().map(|(_, weights)| weights.borrow().summary(&teachers)),
        student_parameters: parameters,
    };
    write_outputs(out, &results)?;
    let checkpoints = checkpoint::folder(out);
    std::fs::remove_dir_all(&checkpoints).map_err(|source| TrainError::Write { path: checkpoints, source })?;
    Ok(results)
}

/// Writes `student.<ext>` (the kept weights) and `last.<ext>` into `out`, from the newest
/// checkpoint (or the network itself when no epoch ran), and gives the kept weights' path.
fn write_final_weights(
    out: &Path,
    latest_checkpoint: Option<&Path>,
    net: &Student,
    vs: &nn::VarStore,
    extension: &str,
) -> Result<PathBuf, TrainError> {
    let (best_path, last_path) = (out.join(format!("student.{extension}")), out.join(format!("last.{extension}")));
    let copy = |from: &Path, to: &Path| {
        std::fs::copy(from, to).map(drop).map_err(|source| TrainError::Write { path: to.to_path_buf(), source })
    };
    match latest_checkpoint {
        Some(dir) => {
            copy(&checkpoint::best_weights(dir, extension), &best_path)?;
            copy(&checkpoint::last_weights(dir, extension), &last_path)?;
        }
        None => {
            net.save_weights(vs, &best_path)?;
            net.save_weights(vs, &last_path)?;
        }
    }
    Ok(best_path)
}

/// Where a run's teacher features come from (the first that is there).
struct FeatureSources<'a> {
    co_teacher: Option<&'a CoTeacher>,
    stored: Option<&'a std::collections::HashMap<i64, Vec<f32>>>,
    online: Option<&'a crate::teacher::Classifier>,
}

/// The widths of the student's and the teacher's penultimate features, from one rendered view.
fn feature_widths(
    net: &mut Student,
    first: &[f32],
    data: &data::TrainData,
    sources: &FeatureSources,
    device: Device,
) -> Result<(i64, i64), TrainError> {
    let student_first = data.student_inputs(first);
    let student_width =
        tch::no_grad(|| net.forward_with_features(&Tensor::from_slice(&student_first).to_device(device), false, true))?
            .0
            .map_or(0, |f| f.size()[1..].iter().product::<i64>());
    let teacher_width = match (sources.co_teacher, sources.stored, sources.online) {
        (Some(co), _, _) => {
            tch::no_grad(|| co.net.features(&Tensor::from_slice(first).to_device(device), false))?.size()[1]
        }
        (None, Some(stored), _) => stored[&data.rows(&[0])?.views[0].view_id].len() as i64,
        (None, None, Some(model)) => tch::no_grad(|| model.infer(first, &data.samples.sample_shape, device, true))
            .map_err(|e| TrainError::Config(format!("--online: {e}")))?
            .features
            .len() as i64,
        (None, None, None) => unreachable!("feature losses read stored, online or co-trained teacher features"),
    };
    Ok((student_width, teacher_width))
}

/// The curriculum of a run: its difficulty read from the first teacher's rows (the identity views',
/// or every training view's with `per_view`), the samples or views ordered by it.
fn paced_order(
    store: &Store,
    config: &curriculum::CurriculumConfig,
    train: &TrainConfig,
    data: &data::TrainData,
    by_sample: &[batches::SampleViews],
    grouped: bool,
) -> Result<curriculum::Curriculum, TrainError> {
    if grouped || train.views == ViewsPerEpoch::All {
        return Err(TrainError::Config(
            "--curriculum draws one view per admitted sample at each step: it goes with neither --views all nor dlkd"
                .into(),
        ));
    }
    let teacher = data.teachers.first().ok_or_else(|| {
        TrainError::Config(
            "--curriculum reads its difficulty from a teacher's rows of `labels`: name a --teacher".into(),
        )
    })?;
    let difficulty = data
        .stored_values(
            store,
            teacher,
            &config.difficulty,
            if config.per_view { "split = 'train'" } else { "split = 'train' AND recipe = 'identity'" },
        )
        .map_err(|e| TrainError::Config(format!("--curriculum {}: {e}", config.difficulty)))?;
    let read = |indices: &[usize]| data.rows(indices).map(|rows| rows.views).map_err(|e| e.to_string());
    curriculum::Curriculum::new(config, by_sample, read, &difficulty, train.batch_size, train.epochs)
        .map_err(|e| TrainError::Config(format!("--curriculum {}: {e}", config.difficulty)))
}

/// AMAL's settings and per-sample weights, from the kd term's weights or a checkpoint.
fn mixing_weights(
    config: &TrainConfig,
    data: &data::TrainData,
    by_sample: &[batches::SampleViews],
    resumed: Option<&checkpoint::Checkpoint>,
) -> Result<Option<(amal::AmalSettings, std::cell::RefCell<amal::MixingWeights>)>, TrainError> {
    let Some(EnsembleChoice::Amal(settings)) = &config.ensemble else { return Ok(None) };
    let Some(kd) = config.losses.iter().find_map(|t| match &t.config {
        LossConfig::Kd(kd) => Some(kd),
        _ => None,
    }) else {
        return Err(TrainError::Config("--ensemble amal weighs CE and each teacher's KD: use --loss kd".into()));
    };
    let rows = SampleRows::new(data.samples_in_selection_order(by_sample)?);
    let mut weights = amal::MixingWeights::new(rows, data.teachers.len(), kd.ce_weight, kd.kd_weight);
    if let Some(checkpoint) = resumed {
        weights.load(&checkpoint.dir).map_err(|e| TrainError::Config(format!("--resume: {e}")))?;
    }
    let settings = amal::AmalSettings { temperature: kd.temperature, ..settings.clone() };
    Ok(Some((settings, std::cell::RefCell::new(weights))))
}

/// Batches that mix groups, if the run asks for them (`mmd` must).
fn group_mix(config: &TrainConfig, data: &data::TrainData) -> Result<Option<group_batches::GroupMix>, TrainError> {
    let mmd = config.losses.iter().any(|t| t.config.needs_groups());
    match config.groups_per_batch {
        None if mmd => Err(TrainError::Config(
            "--loss mmd aligns the groups (subjects) within each batch: set --groups-per-batch (at least 2)".into(),
        )),
        None => Ok(None),
        Some(_) if config.curriculum.is_some() => Err(TrainError::Config(
            "--groups-per-batch and --curriculum both choose each batch's samples; use one".into(),
        )),
        Some(per_batch) => {
            let error = |e: String| TrainError::Config(format!("--groups-per-batch: {e}"));
            let mut groups = Vec::with_capacity(data.views.len());
            data.each_view(|_, view| {
                groups.push(group_batches::group_of(&view, &data.samples.groups).map_err(error)?);
                Ok(())
            })?;
            group_batches::GroupMix::new(groups, per_batch).map(Some).map_err(error)
        }
    }
}

/// A run's per-sample weights, resolved: every loss must be a mean of per-sample terms, and a
/// stored weight is read from the first teacher's rows of every selected training view.
fn sample_weighting(
    store: &Store,
    rule: &sample_weights::SampleWeight,
    config: &TrainConfig,
    data: &data::TrainData,
) -> Result<sample_weights::SampleWeighting, TrainError> {
    if let Some(term) = config.losses.iter().find(|t| !t.config.decomposes()) {
        return Err(TrainError::Config(format!(
            "--sample-weight weighs each sample's objective, and --loss {} is not a mean of per-sample terms",
            term.config.name()
        )));
    }
    let stored = match rule {
        sample_weights::SampleWeight::Stored { expression } => {
            let teacher = data.teachers.first().ok_or_else(|| {
                TrainError::Config(format!(
                    "--sample-weight {expression} is read from a teacher's rows of `labels`: name a --teacher"
                ))
            })?;
            let values = data
                .stored_values(store, teacher, expression, "split = 'train'")
                .map_err(|e| TrainError::Config(format!("--sample-weight {expression}: {e}")))?;
            let mut weights = Vec::with_capacity(data.views.len());
            data.each_view(|index, view| {
                let weight = sample_weights::stored_weight(&view, values[index])
                    .map_err(|e| TrainError::Config(format!("--sample-weight: {e}")))?;
                weights.push(weight);
                Ok(())
            })?;
            Some(weights)
        }
        sample_weights::SampleWeight::SelfPaced { .. } => None,
    };
    Ok(sample_weights::SampleWeighting::new(rule, stored))
}

/// Settings that cannot go together. A run without teachers learns from the labels (and itself)
/// alone: its losses must not read a teacher, and there is nothing to run online or to co-train.
/// The checks a configuration passes before any data is loaded, against the store's manifest:
/// its teachers (resolved names returned), its losses and their combinations, and the built-in
/// student's shape. What `kdstore study` runs on every cell before it trains anything.
pub fn check(store: &Store, config: &TrainConfig) -> Result<Vec<String>, TrainError> {
    let teachers = store.manifest.resolve_teachers(&config.teachers).map_err(TrainError::Config)?;
    check_combinations(config, teachers.is_empty())?;
    if config.losses.is_empty() {
        return Err(TrainError::Config("--loss: name at least one loss".into()));
    }
    if config.torchscript_student.is_none() {
        let shape: Vec<i64> = match &config.student_channels {
            Some(channels) => {
                let mut shape: Vec<i64> = store.manifest.dataset.sample_shape.iter().map(|&d| d as i64).collect();
                shape[0] = channels.len() as i64;
                shape
            }
            None => store.manifest.dataset.sample_shape.iter().map(|&d| d as i64).collect(),
        };
        let classes = store.manifest.dataset.class_names.len() as i64;
        let spec = ArchSpec {
            heads: config.heads,
            patch: config.patch,
            ..ArchSpec::new(config.student, config.width, config.depth, shape, classes)
        };
        spec.check().map_err(|e| TrainError::Config(format!("--student: {e}")))?;
    }
    Ok(teachers)
}

fn check_combinations(config: &TrainConfig, no_teacher: bool) -> Result<(), TrainError> {
    if let Some(term) = config.losses.iter().find(|t| no_teacher && !t.config.teacher_free()) {
        return Err(TrainError::Config(format!(
            "--loss {} learns from a teacher, and this run has none",
            term.config.name()
        )));
    }
    if no_teacher && (config.online || config.co_train) {
        return Err(TrainError::Config("--online and --co-train need a teacher".into()));
    }
    if config.student_channels.is_some() && config.co_train {
        return Err(TrainError::Config(
            "--student-channels with --co-train: the co-trained teacher would see the student's channels; train them apart".into(),
        ));
    }
    Ok(())
}

/// The run's teachers as models, to run on every batch (`--online`).
fn load_teachers(
    store: &Store,
    teachers: &[String],
    device: Device,
) -> Result<Vec<crate::teacher::Classifier>, TrainError> {
    teachers
        .iter()
        .map(|name| {
            let info = store.manifest.teacher(name).expect("resolved from the manifest");
            load_classifier(&store.root, info, device).map_err(|e| TrainError::Config(format!("--online: {e}")))
        })
        .collect()
}

/// The checkpoint to continue from: `--resume` needs one written with the same settings, and a
/// new run refuses to start over an interrupted one.
fn resumable(
    out: &Path,
    config: &TrainConfig,
    config_json: &serde_json::Value,
) -> Result<Option<checkpoint::Checkpoint>, TrainError> {
    let found = checkpoint::latest(out).map_err(TrainError::Config)?;
    match (found, config.resume) {
        (Some(checkpoint), true) => {
            checkpoint.check_config(config_json).map_err(|e| TrainError::Config(format!("--resume: {e}")))?;
            Ok(Some(checkpoint))
        }
        (None, true) => Err(TrainError::Config(format!(
            "--resume: {} holds no checkpoint of an interrupted training",
            out.display()
        ))),
        (Some(checkpoint), false) => Err(TrainError::Config(format!(
            "{} holds an interrupted training ({} of {} epochs done): add --resume to continue it, or choose another --out",
            out.display(),
            checkpoint.state.epochs_done,
            config.epochs
        ))),
        (None, false) => Ok(None),
    }
}

/// Whether an epoch's weights replace the kept ones: a higher validation accuracy than the kept
/// weights' (the first of equals stays), or, without validation scores, always (the last is kept).
fn keeps(kept: Option<f64>, validation: Option<f64>) -> bool {
    match (kept, validation) {
        (Some(kept), Some(score)) => score > kept,
        _ => true,
    }
}

/// Fails unless every training sample has its identity view and `views − 1` others selected, as
/// a loss that batches each sample's views together (`dlkd`) needs.
fn check_groups(data: &data::TrainData, by_sample: &[batches::SampleViews], views: usize) -> Result<(), TrainError> {
    let short: Vec<&batches::SampleViews> =
        by_sample.iter().filter(|s| s.identity.is_none() || s.others.len() + 1 < views).collect();
    let Some(first) = short.first() else { return Ok(()) };
    let example = match first.identity.or(first.others.first().map(|&i| i as usize)) {
        Some(index) => data.rows(&[index])?.views[0].sample_id,
        None => -1,
    };
    Err(TrainError::Config(format!(
        "dlkd batches each training sample's identity view with {} other views of it, and {} of {} samples have fewer (sample {example}: {} identity view, {} others selected); select more views with --where, add recipes or replicas to the pipeline, or lower --set views",
        views - 1,
        short.len(),
        by_sample.len(),
        if first.identity.is_some() { "an" } else { "no" },
        first.others.len()
    )))
}

/// The teacher's stored features of every selected view, or why the store cannot give them.
fn stored_teacher_features(
    store: &Store,
    teacher: &str,
    data: &data::TrainData,
) -> Result<std::collections::HashMap<i64, Vec<f32>>, TrainError> {
    let stored =
        kdstore_core::select::teacher_features(store, teacher).map_err(|e| TrainError::Selection(e.to_string()))?;
    data.each_view(|_, view| match stored.contains_key(&view.view_id) {
        true => Ok(()),
        false => Err(TrainError::Config(format!(
            "the feature losses need the teacher's penultimate features, and the store holds none for teacher {teacher} (view {}): add `embeddings = \"f16\"` to its [[teacher]] and run kdstore build again",
            view.view_id
        ))),
    })?;
    Ok(stored)
}

/// A network's logits on a split, their metrics against the teachers' target, and, with several
/// teachers, its top-1 agreement with each one.
struct Evaluation {
    metrics: SplitMetrics,
    agreement_with: BTreeMap<String, f64>,
    logits: Vec<f32>,
}

/// Runs a network (in evaluation mode) on a split's identity views.
fn evaluate(
    forward: &mut dyn FnMut(&Tensor) -> Result<Tensor, tch::TchError>,
    split: &data::SplitData,
    data: &data::TrainData,
    replayer: &Replayer,
    device: Device,
) -> Result<Evaluation, TrainError> {
    let mut logits = Vec::with_capacity(split.labels.len() * data.classes);
    tch::no_grad(|| -> Result<(), TrainError> {
        for ids in split.sample_ids.chunks(512) {
            let x = data.identity_inputs(replayer, ids)?;
            let out = forward(&Tensor::from_slice(&data.student_inputs(&x)).to_device(device))?;
            logits.extend(Vec::<f32>::try_from(out.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))?);
        }
        Ok(())
    })?;
    let metrics = split_metrics(&logits, &split.labels, split.teacher_logits.as_deref(), data.classes);
    let agreement_with: BTreeMap<String, f64> = match data.teachers.len() {
        1 => BTreeMap::new(),
        _ => data
            .teachers
            .iter()
            .zip(&split.each_teacher)
            .filter_map(|(name, teacher)| Some((name.clone(), agreement(&logits, teacher.as_deref()?, data.classes))))
            .collect(),
    };
    Ok(Evaluation { metrics, agreement_with, logits })
}

fn write_outputs(out: &Path, results: &Results) -> Result<(), TrainError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Write { path, source }
    };
    let config_path = out.join("config.json");
    std::fs::write(&config_path, serde_json::to_string_pretty(&results.config).expect("config serialises"))
        .map_err(write_error(&config_path))?;
    write_table_file(&out.join("metrics.parquet"), epochs_table(&results.epochs))?;
    // Last, and whole or not at all: a finished run is one whose results.json reads (a study relies on it).
    let results_path = out.join("results.json");
    let text = serde_json::to_string_pretty(results).expect("results serialise");
    kdstore_core::study::state::write_atomically(&results_path, text.as_bytes()).map_err(write_error(&results_path))?;
    Ok(())
}

/// Writes `columns` as a Parquet file.
fn write_table_file(path: &Path, columns: Vec<(&str, Values)>) -> Result<(), TrainError> {
    let mut file =
        std::fs::File::create(path).map_err(|source| TrainError::Write { path: path.to_path_buf(), source })?;
    query::write_table(columns, query::Format::Parquet, &mut file)
        .map_err(|e| TrainError::Write { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) })
}

/// One row per epoch: the learning rate, the training loss and the validation metrics.
fn epochs_table(epochs: &[EpochMetrics]) -> Vec<(&'static str, Values)> {
    let val = |f: fn(&SplitMetrics) -> Option<f64>| {
        Values::Float(epochs.iter().map(|e| e.val.as_ref().and_then(f)).collect())
    };
    let all = |f: fn(&EpochMetrics) -> f64| Values::Float(epochs.iter().map(|e| Some(f(e))).collect());
    vec![
        ("epoch", Values::Int(epochs.iter().map(|e| e.epoch as i64).collect())),
        ("learning_rate", all(|e| e.learning_rate)),
        ("train_loss", all(|e| e.train_loss)),
        ("val_accuracy", val(|m| Some(m.accuracy))),
        ("val_nll", val(|m| Some(m.nll))),
        ("val_ece", val(|m| Some(m.ece))),
        ("val_teacher_agreement", val(|m| m.teacher_agreement)),
        ("val_kl_to_teacher", val(|m| m.kl_to_teacher)),
        ("seconds", all(|e| e.seconds)),
    ]
}

/// A selected view with only its identifiers set, for the unit tests of the batch pieces.
#[cfg(test)]
pub(crate) fn test_view(view_id: i64, sample_id: i64, recipe: &str) -> kdstore_core::select::SelectedView {
    kdstore_core::select::SelectedView {
        view_id,
        sample_id,
        recipe: recipe.into(),
        seed: 0,
        input_hash: 0,
        label: 0,
        partner_id: None,
        partner_label: 0,
        lam: 1.0,
    }
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
