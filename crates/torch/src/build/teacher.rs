//! The teacher stage: a built-in teacher is trained on the training split's identity views and its
//! weights saved as safetensors under `models/`; a TorchScript teacher is recorded by its file's
//! hash. Either way the manifest gets the teacher's provenance, and [`load_classifier`] turns the
//! record back into a model for labelling, benchmarks and training.

use std::collections::BTreeMap;
use std::path::Path;

use kdstore_core::augment::seed;
use kdstore_core::pipeline::config::TeacherConfig;
use kdstore_core::pipeline::parts::{short, TeacherTarget};
use kdstore_core::pipeline::plan::Plan;
use kdstore_core::pipeline::views::RenderContext;
use kdstore_core::pipeline::BuildError;
use kdstore_core::progress::Progress;
use kdstore_core::store::writer;
use kdstore_core::store::{Split, TeacherInfo};

use crate::teacher::arch::ArchSpec;
use crate::teacher::{builtin, Classifier};

/// Trains or records the teacher `target` and describes it for the manifest.
pub(super) fn prepare_teacher(
    plan: &Plan,
    root: &Path,
    target: &TeacherTarget,
    context: &RenderContext,
    progress: &dyn Progress,
) -> Result<TeacherInfo, BuildError> {
    let samples = context.samples;
    let name = target.config.name().to_string();
    let base = TeacherInfo {
        name: name.clone(),
        key: target.key.clone(),
        kind: String::new(),
        architecture: String::new(),
        model_path: String::new(),
        model_sha256: String::new(),
        label_space: context.class_names.clone(),
        input_layout: input_layout(&samples.sample_shape),
        logits_dtype: target.config.logits_dtype().as_str().into(),
        arch_spec: serde_json::Value::Null,
        accuracy: BTreeMap::new(),
        training: serde_json::Value::Null,
    };
    match &target.config {
        TeacherConfig::Torchscript { path, .. } => {
            let (_, sha) = writer::file_digest(path)?;
            Ok(TeacherInfo {
                kind: "torchscript".into(),
                architecture: "torchscript".into(),
                model_path: path.display().to_string(),
                model_sha256: sha,
                ..base
            })
        }
        TeacherConfig::Builtin { arch, width, depth, epochs, batch_size, learning_rate, weight_decay, .. } => {
            let spec = ArchSpec {
                kind: *arch,
                width: *width,
                depth: *depth,
                input_shape: samples.sample_shape.iter().map(|&d| d as i64).collect(),
                classes: context.class_count as i64,
            };
            spec.check().map_err(|detail| BuildError::TeacherSetup { teacher: name.clone(), detail })?;
            let train_ids = samples.ids_in(Split::Train);
            let mut inputs = Vec::with_capacity(train_ids.len() * samples.sample_len);
            let mut labels = Vec::with_capacity(train_ids.len());
            for &i in &train_ids {
                let mut x = samples.input(i).to_vec();
                context.normalizer.apply(&mut x);
                inputs.extend_from_slice(&x);
                labels.push(samples.labels[i]);
            }
            let settings = builtin::TeacherTraining {
                epochs: *epochs,
                batch_size: *batch_size,
                learning_rate: *learning_rate,
                weight_decay: *weight_decay,
                seed: seed::purpose_seed(plan.file.seed, &format!("teacher/{name}")),
            };
            let task = progress.task(&format!("train teacher {name}"), *epochs as u64);
            let (vs, records) = builtin::train(&spec, &inputs, &labels, &settings, &mut |record| {
                task.set_message(&format!("loss {:.4} acc {:.3}", record.train_loss, record.train_accuracy));
                task.advance(1);
            })
            .map_err(|source| BuildError::Training { teacher: name.clone(), source: Box::new(source) })?;
            task.finish();
            let relative = format!("models/{name}-{}.safetensors", short(&target.key));
            let final_path = root.join(&relative);
            let dir = final_path.parent().unwrap().to_path_buf();
            std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io { path: dir.clone(), source })?;
            let tmp = dir.join(format!(".{name}-{}.tmp.safetensors", std::process::id()));
            vs.save(&tmp).map_err(|source| BuildError::Training { teacher: name.clone(), source: Box::new(source) })?;
            std::fs::rename(&tmp, &final_path).map_err(|source| BuildError::Io { path: final_path.clone(), source })?;
            let (_, sha) = writer::file_digest(&final_path)?;
            Ok(TeacherInfo {
                kind: "builtin".into(),
                architecture: spec.describe(),
                model_path: relative,
                model_sha256: sha,
                arch_spec: serde_json::to_value(&spec).expect("spec serialises"),
                training: serde_json::json!({
                    "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                    "weight_decay": weight_decay, "optimizer": "adam", "data": "train split, identity views",
                    "history": records,
                }),
                ..base
            })
        }
    }
}

fn input_layout(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let names = if shape.len() == 2 { "channels × time" } else { "channels × height × width" };
    format!("float32 [batch, {}] ({names}), normalised per channel with the manifest's mean and std", dims.join(", "))
}

/// Loads a teacher as a classifier for inference on `device`.
pub fn load_classifier(root: &Path, info: &TeacherInfo, device: tch::Device) -> Result<Classifier, BuildError> {
    let teacher_error = |source| BuildError::Teacher { teacher: info.name.clone(), source: Box::new(source) };
    // The weights must be those the store's logits came from.
    kdstore_core::verify::check_model(&info.name, &info.model_file(root), &info.model_sha256)?;
    if info.kind == "builtin" {
        let spec: ArchSpec = serde_json::from_value(info.arch_spec.clone()).map_err(|e| BuildError::TeacherSetup {
            teacher: info.name.clone(),
            detail: format!("bad arch_spec in the manifest: {e}"),
        })?;
        Classifier::load_builtin(&info.name, &spec, &info.model_file(root), device).map_err(teacher_error)
    } else {
        Classifier::load_torchscript(&info.name, &info.model_file(root), device).map_err(teacher_error)
    }
}
