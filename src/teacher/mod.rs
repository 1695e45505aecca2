//! Teachers: built-in architectures trained by the build, and TorchScript modules exported from
//! PyTorch. Both are wrapped as a [`Classifier`] that turns a batch of normalised float32 inputs into
//! raw logits, in eval mode and without gradients. Only this module, `losses` and `train` touch tch.
//!
//! A TorchScript teacher receives a float32 tensor of shape `[batch, *sample_shape]`
//! (`[batch, channels, time]` for series, `[batch, channels, height, width]` for images), already
//! normalised with the per-channel mean and std recorded in the manifest, and must return the
//! logits `[batch, classes]` (or a tuple whose first element is the logits).

pub mod arch;
pub mod builtin;
pub mod resnet;
pub mod stats;

use std::path::Path;

use tch::{nn, Device, Kind, Tensor};

use arch::{ArchSpec, Net};

#[derive(Debug, thiserror::Error)]
pub enum TeacherError {
    #[error("teacher {teacher}: cannot load {path}: {source}")]
    Load {
        teacher: String,
        path: String,
        #[source]
        source: tch::TchError,
    },
    #[error("teacher {teacher}: forward pass failed: {source}")]
    Forward {
        teacher: String,
        #[source]
        source: tch::TchError,
    },
    #[error("teacher {teacher}: {detail}")]
    Output { teacher: String, detail: String },
}

/// A model that maps normalised inputs to logits.
pub enum Classifier {
    Builtin { name: String, _vs: nn::VarStore, net: Net },
    TorchScript { name: String, module: tch::CModule },
}

impl Classifier {
    pub fn load_builtin(
        name: &str,
        spec: &ArchSpec,
        weights: &Path,
        device: Device,
    ) -> Result<Classifier, TeacherError> {
        let mut vs = nn::VarStore::new(device);
        let net = Net::new(&vs.root(), spec);
        vs.load(weights).map_err(|source| TeacherError::Load {
            teacher: name.into(),
            path: weights.display().to_string(),
            source,
        })?;
        Ok(Classifier::Builtin { name: name.into(), _vs: vs, net })
    }

    pub fn load_torchscript(name: &str, path: &Path, device: Device) -> Result<Classifier, TeacherError> {
        let mut module = tch::CModule::load_on_device(path, device).map_err(|source| TeacherError::Load {
            teacher: name.into(),
            path: path.display().to_string(),
            source,
        })?;
        module.set_eval();
        Ok(Classifier::TorchScript { name: name.into(), module })
    }

    fn name(&self) -> &str {
        match self {
            Classifier::Builtin { name, .. } | Classifier::TorchScript { name, .. } => name,
        }
    }

    /// Logits for `batch` inputs laid out row-major in `inputs`, as a flat `[batch × classes]` vector.
    pub fn logits(
        &self,
        inputs: &[f32],
        sample_shape: &[usize],
        device: Device,
    ) -> Result<(Vec<f32>, usize), TeacherError> {
        let per_sample: usize = sample_shape.iter().product();
        let batch = inputs.len() / per_sample.max(1);
        let mut shape = vec![batch as i64];
        shape.extend(sample_shape.iter().map(|&d| d as i64));
        let forward_error = |source| TeacherError::Forward { teacher: self.name().into(), source };
        let x = Tensor::from_slice(inputs).f_view(shape.as_slice()).map_err(forward_error)?.to_device(device);
        let out = tch::no_grad(|| -> Result<Tensor, TeacherError> {
            match self {
                Classifier::Builtin { net, .. } => net.forward(&x, false).map_err(forward_error),
                Classifier::TorchScript { module, .. } => {
                    let value = module.forward_is(&[tch::IValue::Tensor(x.shallow_clone())]).map_err(forward_error)?;
                    first_tensor(value).ok_or_else(|| TeacherError::Output {
                        teacher: self.name().into(),
                        detail: "the module returned neither a tensor nor a tuple starting with one".into(),
                    })
                }
            }
        })?;
        let size = out.size();
        if size.len() != 2 || size[0] != batch as i64 {
            return Err(TeacherError::Output {
                teacher: self.name().into(),
                detail: format!("expected logits of shape [{batch}, classes], got {size:?}"),
            });
        }
        let classes = size[1] as usize;
        let flat = Vec::<f32>::try_from(out.to_kind(Kind::Float).to_device(Device::Cpu).contiguous().view([-1]))
            .map_err(forward_error)?;
        Ok((flat, classes))
    }
}

fn first_tensor(value: tch::IValue) -> Option<Tensor> {
    match value {
        tch::IValue::Tensor(t) => Some(t),
        tch::IValue::Tuple(items) | tch::IValue::GenericList(items) => items.into_iter().next().and_then(first_tensor),
        _ => None,
    }
}
