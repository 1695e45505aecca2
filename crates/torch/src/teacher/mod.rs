//! Teachers: built-in architectures trained by the build, and TorchScript modules exported from
//! PyTorch. Both are wrapped as a [`Classifier`] that turns a batch of normalised float32 inputs into
//! raw logits, in eval mode and without gradients. Only this module, `losses` and `train` touch tch.
//!
//! A TorchScript teacher receives a float32 tensor of shape `[batch, *sample_shape]`
//! (`[batch, channels, time]` for series, `[batch, channels, height, width]` for images), already
//! normalised with the per-channel mean and std recorded in the manifest, and must return the
//! logits `[batch, classes]` (or a tuple whose first element is the logits). For the `embeddings`
//! table it returns the tuple `(logits, features)`, the features being its penultimate
//! representation `[batch, dim]`.

pub mod arch;
pub mod resnet;
pub mod transformer;

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

/// A model that maps normalised inputs to logits; one with `channels` sees only those channels of
/// the inputs it is given.
pub struct Classifier {
    name: String,
    model: Model,
    channels: Option<Vec<usize>>,
}

enum Model {
    Builtin { vs: nn::VarStore, net: Net },
    TorchScript { module: tch::CModule },
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
        Ok(Classifier { name: name.into(), model: Model::Builtin { vs, net }, channels: None })
    }

    pub fn load_torchscript(name: &str, path: &Path, device: Device) -> Result<Classifier, TeacherError> {
        let mut module = tch::CModule::load_on_device(path, device).map_err(|source| TeacherError::Load {
            teacher: name.into(),
            path: path.display().to_string(),
            source,
        })?;
        module.set_eval();
        Ok(Classifier { name: name.into(), model: Model::TorchScript { module }, channels: None })
    }

    /// The same model, seeing only `channels` of its inputs (None: all).
    pub fn with_channels(self, channels: Option<Vec<usize>>) -> Classifier {
        Classifier { channels, ..self }
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// The number of parameters (weights and biases; a TorchScript module's registered parameters).
    pub fn parameters(&self) -> Result<i64, TeacherError> {
        let tensors = match &self.model {
            Model::Builtin { vs, .. } => vs.trainable_variables(),
            Model::TorchScript { module } => module
                .named_parameters()
                .map_err(|source| TeacherError::Forward { teacher: self.name().into(), source })?
                .into_iter()
                .map(|(_, t)| t)
                .collect(),
        };
        Ok(tensors.iter().map(|t| t.numel() as i64).sum())
    }

    /// Logits for `batch` inputs laid out row-major in `inputs`, as a flat `[batch × classes]` vector.
    pub fn logits(
        &self,
        inputs: &[f32],
        sample_shape: &[usize],
        device: Device,
    ) -> Result<(Vec<f32>, usize), TeacherError> {
        let inference = self.infer(inputs, sample_shape, device, false)?;
        Ok((inference.logits, inference.classes))
    }

    /// Logits and, when `with_features`, the penultimate features of a batch.
    pub fn infer(
        &self,
        inputs: &[f32],
        sample_shape: &[usize],
        device: Device,
        with_features: bool,
    ) -> Result<Inference, TeacherError> {
        let per_sample: usize = sample_shape.iter().product();
        let batch = inputs.len() / per_sample.max(1);
        let selected;
        let (inputs, sample_shape) = match &self.channels {
            Some(channels) => {
                selected = kdstore_core::channels::select(inputs, sample_shape, channels);
                (selected.as_slice(), kdstore_core::channels::shape_with(sample_shape, Some(channels)))
            }
            None => (inputs, sample_shape.to_vec()),
        };
        let mut shape = vec![batch as i64];
        shape.extend(sample_shape.iter().map(|&d| d as i64));
        let forward_error = |source| TeacherError::Forward { teacher: self.name().into(), source };
        let x = Tensor::from_slice(inputs).f_view(shape.as_slice()).map_err(forward_error)?.to_device(device);
        let (out, features) = tch::no_grad(|| -> Result<(Tensor, Option<Tensor>), TeacherError> {
            match &self.model {
                Model::Builtin { net, .. } => {
                    let (features, logits) = net.forward_with_features(&x, false).map_err(forward_error)?;
                    Ok((logits, Some(features)))
                }
                Model::TorchScript { module } => {
                    let value = module.forward_is(&[tch::IValue::Tensor(x.shallow_clone())]).map_err(forward_error)?;
                    let mut tensors = tensors_of(value).into_iter();
                    let logits = tensors.next().ok_or_else(|| TeacherError::Output {
                        teacher: self.name().into(),
                        detail: "the module returned neither a tensor nor a tuple starting with one".into(),
                    })?;
                    Ok((logits, tensors.next()))
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
        let flatten =
            |t: Tensor| Vec::<f32>::try_from(t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous().view([-1]));
        let logits = flatten(out).map_err(forward_error)?;
        let (features, feature_dim) = match (with_features, features) {
            (false, _) => (Vec::new(), 0),
            (true, Some(f)) if f.dim() == 2 && f.size()[0] == batch as i64 => {
                let dim = f.size()[1] as usize;
                (flatten(f).map_err(forward_error)?, dim)
            }
            (true, _) => {
                return Err(TeacherError::Output {
                    teacher: self.name().into(),
                    detail: format!(
                        "the build asks for embeddings: the module must return (logits, features) with features of shape [{batch}, dim]"
                    ),
                })
            }
        };
        Ok(Inference { logits, classes, features, feature_dim })
    }
}

/// What one batch through a teacher gives: flat logits and, when asked for, flat features.
pub struct Inference {
    pub logits: Vec<f32>,
    pub classes: usize,
    pub features: Vec<f32>,
    pub feature_dim: usize,
}

/// The tensors of a module's output: the tensor itself, or a tuple's or list's tensors in order.
pub(crate) fn tensors_of(value: tch::IValue) -> Vec<Tensor> {
    match value {
        tch::IValue::Tensor(t) => vec![t],
        tch::IValue::Tuple(items) | tch::IValue::GenericList(items) => items
            .into_iter()
            .filter_map(|item| match item {
                tch::IValue::Tensor(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
