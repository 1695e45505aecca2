//! The network being trained: a built-in architecture (`ArchSpec`, saved as safetensors with the
//! spec in `student.json`) or a TorchScript module exported from PyTorch (its parameters trained
//! here and the whole module saved back as TorchScript, `student.pt`, which PyTorch loads with
//! `torch.jit.load`). A TorchScript student takes `[batch, *sample_shape]` float32 and returns
//! `[batch, classes]` logits from `forward`, or `(logits, features)` as a TorchScript teacher does.

use std::path::Path;

use tch::{nn, Tensor};

use crate::teacher::arch::{ArchSpec, Net};
use crate::teacher::tensors_of;

pub enum Student {
    Builtin { net: Net, spec: ArchSpec },
    Scripted { module: tch::TrainableCModule, input_shape: Vec<i64>, training: bool },
}

impl Student {
    /// Logits for a flat batch of inputs; `train` switches batch norm and dropout.
    pub fn forward(&mut self, inputs: &Tensor, train: bool) -> Result<Tensor, tch::TchError> {
        match self {
            Student::Builtin { net, .. } => net.forward(inputs, train),
            Student::Scripted { .. } => tensors_of(self.scripted_forward(inputs, train)?)
                .into_iter()
                .next()
                .ok_or_else(|| tch::TchError::Convert("the TorchScript student returned no tensor".into())),
        }
    }

    /// Penultimate features (when `with_features`) and logits. A TorchScript student gives features
    /// by returning `(logits, features)`.
    pub fn forward_with_features(
        &mut self,
        inputs: &Tensor,
        train: bool,
        with_features: bool,
    ) -> Result<(Option<Tensor>, Tensor), tch::TchError> {
        if !with_features {
            return Ok((None, self.forward(inputs, train)?));
        }
        match self {
            Student::Builtin { net, .. } => {
                let (features, logits) = net.forward_with_features(inputs, train)?;
                Ok((Some(features), logits))
            }
            Student::Scripted { .. } => {
                let mut tensors = tensors_of(self.scripted_forward(inputs, train)?).into_iter();
                match (tensors.next(), tensors.next()) {
                    (Some(logits), Some(features)) => Ok((Some(features), logits)),
                    _ => Err(tch::TchError::Convert(
                        "feature losses need the TorchScript student to return (logits, features)".into(),
                    )),
                }
            }
        }
    }

    /// A TorchScript student's raw output, with the module switched to training or eval mode.
    fn scripted_forward(&mut self, inputs: &Tensor, train: bool) -> Result<tch::IValue, tch::TchError> {
        let Student::Scripted { module, input_shape, training } = self else {
            unreachable!("only called for TorchScript students")
        };
        if *training != train {
            if train {
                module.f_set_train()?;
            } else {
                module.f_set_eval()?;
            }
            *training = train;
        }
        let mut shape = vec![-1];
        shape.extend_from_slice(input_shape);
        module.forward_is(&[tch::IValue::Tensor(inputs.f_view(shape.as_slice())?)])
    }

    /// A student in `vs`: newly initialised from its source, or with the weights saved by
    /// [`Student::save_weights`] at `weights` (a TorchScript student is then that saved module).
    pub fn open(
        source: &StudentSource,
        vs: &mut nn::VarStore,
        weights: Option<&Path>,
    ) -> Result<Student, tch::TchError> {
        match source {
            StudentSource::Builtin { spec, seed } => {
                let net = Net::seeded(&vs.root(), spec, *seed);
                if let Some(weights) = weights {
                    vs.load(weights)?;
                }
                Ok(Student::Builtin { net, spec: spec.clone() })
            }
            StudentSource::Scripted { path, input_shape } => {
                let mut module = tch::TrainableCModule::load(weights.unwrap_or(path), vs.root())?;
                module.f_set_train()?;
                Ok(Student::Scripted { module, input_shape: input_shape.clone(), training: true })
            }
        }
    }

    /// Writes the student's current weights (see [`StudentSource::extension`]).
    pub fn save_weights(&self, vs: &nn::VarStore, path: &Path) -> Result<(), tch::TchError> {
        match self {
            Student::Builtin { .. } => vs.save(path),
            Student::Scripted { module, .. } => module.save(path),
        }
    }

    /// Writes a built-in student's architecture as `student.json` (a TorchScript student carries
    /// its own).
    pub fn save_architecture(&self, out: &Path) -> Result<(), String> {
        match self {
            Student::Builtin { spec, .. } => {
                std::fs::write(out.join("student.json"), serde_json::to_string_pretty(spec).expect("spec serialises"))
                    .map_err(|e| format!("{}: {e}", out.join("student.json").display()))
            }
            Student::Scripted { .. } => Ok(()),
        }
    }
}

/// Where a student comes from: a built-in architecture with its initialisation seed, or a
/// TorchScript module exported from PyTorch.
#[derive(Debug, Clone)]
pub enum StudentSource {
    Builtin { spec: ArchSpec, seed: u64 },
    Scripted { path: std::path::PathBuf, input_shape: Vec<i64> },
}

impl StudentSource {
    /// The extension of the student's weights files: safetensors for a built-in student, `pt` for a
    /// TorchScript one (the whole module, buffers such as batch-norm statistics included).
    pub fn extension(&self) -> &'static str {
        match self {
            StudentSource::Builtin { .. } => "safetensors",
            StudentSource::Scripted { .. } => "pt",
        }
    }
}
