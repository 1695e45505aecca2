//! Student training from a store (first version): a built-in student trained with
//! `ce_weight · CE + kd_weight · KD(T)` on replayed training views and their stored teacher logits,
//! evaluated on the validation split each epoch and on the test split at the end. Results are
//! written as JSON (config, per-epoch metrics, final metrics) beside the student's weights.

pub mod data;

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

use crate::augment::seed::purpose_seed;
use crate::losses::{cross_entropy, kd::kd_term, Targets};
use crate::progress::Progress;
use crate::select::{ReplayError, Replayer, SelectedView};
use crate::store::{Split, Store, StoreError};
use crate::teacher::arch::{ArchKind, ArchSpec, Net};

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

/// A resolved training configuration (recorded in `results.json`).
#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    pub teacher: String,
    pub filter: Option<String>,
    pub student: ArchKind,
    pub width: i64,
    pub depth: i64,
    pub ce_weight: f64,
    pub kd_weight: f64,
    pub temperature: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub views: ViewsPerEpoch,
    pub seed: u64,
    pub device: String,
    pub verify_replay: usize,
    /// libtorch intra-op threads (default: libtorch's choice, all cores).
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub learning_rate: f64,
    pub train_loss: f64,
    pub val_accuracy: Option<f64>,
    pub val_nll: Option<f64>,
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
    pub test_accuracy: f64,
    pub test_nll: f64,
    pub teacher_test_accuracy: Option<f64>,
    pub student_parameters: i64,
}

/// Trains a student and writes `results.json`, `student.safetensors` and `student.json` into `out`.
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
    spec.check().map_err(|e| TrainError::Config(format!("--student: {e}")))?;
    let vs = nn::VarStore::new(device);
    let net = Net::seeded(&vs.root(), &spec, purpose_seed(config.seed, "student"));
    let parameters: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    let mut optimizer = nn::AdamW { wd: config.weight_decay, ..Default::default() }.build(&vs, config.learning_rate)?;

    let by_sample = group_by_sample(&data.views);
    let (val_inputs, val_labels) = data.split(&replayer, Split::Val);
    let (test_inputs, test_labels) = data.split(&replayer, Split::Test);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(purpose_seed(config.seed, "batches"));
    let mut epochs = Vec::with_capacity(config.epochs);
    let task = progress.task("train student", config.epochs as u64);
    for epoch in 0..config.epochs {
        let started = std::time::Instant::now();
        let learning_rate = cosine(config.learning_rate, epoch, config.epochs);
        optimizer.set_lr(learning_rate);
        let mut chosen: Vec<&SelectedView> = match config.views {
            ViewsPerEpoch::All => data.views.iter().collect(),
            ViewsPerEpoch::OnePerSample => {
                by_sample.iter().map(|views| *views.choose(&mut rng).expect("groups are non-empty")).collect()
            }
        };
        chosen.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for batch in chosen.chunks(config.batch_size) {
            let inputs = Tensor::from_slice(&data.render(&replayer, batch)?).to_device(device);
            let student = net.forward(&inputs, true)?;
            let loss = batch_loss(config, &student, batch, data.classes, device)?;
            optimizer.backward_step(&loss);
            loss_sum += loss.double_value(&[]) * batch.len() as f64;
        }
        let val =
            (!val_labels.is_empty()).then(|| evaluate(&net, &val_inputs, &val_labels, &spec, device)).transpose()?;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            learning_rate,
            train_loss: loss_sum / chosen.len() as f64,
            val_accuracy: val.map(|v| v.0),
            val_nll: val.map(|v| v.1),
            seconds: started.elapsed().as_secs_f64(),
        };
        task.set_message(&format!(
            "loss {:.4} val acc {}",
            metrics.train_loss,
            metrics.val_accuracy.map_or("-".into(), |a| format!("{a:.3}"))
        ));
        task.advance(1);
        epochs.push(metrics);
    }
    task.finish();
    let (test_accuracy, test_nll) = evaluate(&net, &test_inputs, &test_labels, &spec, device)?;
    let results = Results {
        config: config.clone(),
        store: store.root.display().to_string(),
        store_version: store.manifest.version,
        train_views: data.views.len(),
        train_samples: by_sample.len(),
        replayed_and_verified: verified,
        epochs,
        test_accuracy,
        test_nll,
        teacher_test_accuracy: store.manifest.teacher(&config.teacher).and_then(|t| t.accuracy.get("test").copied()),
        student_parameters: parameters,
    };
    write_outputs(out, &results, &vs, &spec)?;
    Ok(results)
}

fn group_by_sample(views: &[SelectedView]) -> Vec<Vec<&SelectedView>> {
    let mut groups: std::collections::BTreeMap<i64, Vec<&SelectedView>> = Default::default();
    for view in views {
        groups.entry(view.sample_id).or_default().push(view);
    }
    groups.into_values().collect()
}

/// Cosine decay from `base` to 0 over the epochs (evaluated at the start of each epoch).
fn cosine(base: f64, epoch: usize, epochs: usize) -> f64 {
    base * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos())
}

fn batch_loss(
    config: &TrainConfig,
    student: &Tensor,
    batch: &[&SelectedView],
    classes: usize,
    device: Device,
) -> Result<Tensor, TrainError> {
    let targets = Targets {
        labels: Tensor::from_slice(&batch.iter().map(|v| v.label).collect::<Vec<_>>()).to_device(device),
        partner_labels: Tensor::from_slice(&batch.iter().map(|v| v.partner_label).collect::<Vec<_>>())
            .to_device(device),
        lam: Tensor::from_slice(&batch.iter().map(|v| v.lam).collect::<Vec<_>>()).to_device(device),
    };
    let mut loss = cross_entropy(student, &targets)? * config.ce_weight;
    if config.kd_weight > 0.0 {
        let teacher: Vec<f32> = batch.iter().flat_map(|v| v.teacher_logits.iter().copied()).collect();
        let teacher = Tensor::from_slice(&teacher).view([batch.len() as i64, classes as i64]).to_device(device);
        loss += kd_term(student, &teacher, config.temperature)? * config.kd_weight;
    }
    Ok(loss)
}

/// Accuracy and mean negative log-likelihood on a split.
fn evaluate(
    net: &Net,
    inputs: &[f32],
    labels: &[i64],
    spec: &ArchSpec,
    device: Device,
) -> Result<(f64, f64), TrainError> {
    if labels.is_empty() {
        return Ok((f64::NAN, f64::NAN));
    }
    let per_sample: usize = spec.input_shape.iter().product::<i64>() as usize;
    let (mut correct, mut nll) = (0i64, 0.0f64);
    tch::no_grad(|| -> Result<(), TrainError> {
        for (x, y) in inputs.chunks(512 * per_sample).zip(labels.chunks(512)) {
            let logits = net.forward(&Tensor::from_slice(x).to_device(device), false)?;
            let y = Tensor::from_slice(y).to_device(device);
            correct += logits.argmax(-1, false).eq_tensor(&y).to_kind(Kind::Int64).sum(Kind::Int64).int64_value(&[]);
            nll += logits.f_cross_entropy_loss::<Tensor>(&y, None, tch::Reduction::Sum, -100, 0.0)?.double_value(&[]);
        }
        Ok(())
    })?;
    Ok((correct as f64 / labels.len() as f64, nll / labels.len() as f64))
}

fn write_outputs(out: &Path, results: &Results, vs: &nn::VarStore, spec: &ArchSpec) -> Result<(), TrainError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Write { path, source }
    };
    std::fs::create_dir_all(out).map_err(write_error(out))?;
    let results_path = out.join("results.json");
    std::fs::write(&results_path, serde_json::to_string_pretty(results).expect("results serialise"))
        .map_err(write_error(&results_path))?;
    let spec_path = out.join("student.json");
    std::fs::write(&spec_path, serde_json::to_string_pretty(spec).expect("spec serialises"))
        .map_err(write_error(&spec_path))?;
    vs.save(out.join("student.safetensors"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_starts_at_base_and_decays() {
        assert_eq!(cosine(0.1, 0, 10), 0.1);
        assert!((cosine(0.1, 5, 10) - 0.05).abs() < 1e-12);
        assert!(cosine(0.1, 9, 10) < 0.01);
    }
}
