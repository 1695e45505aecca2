//! Built-in network architectures shared by teachers and students: `cnn1d` for series
//! (channels × time), `cnn2d` for images (channels × height × width), `mlp` for either and the
//! CIFAR-style `resnet` (depth 8, 14, 20, …) for either, and a `transformer` for series. Each
//! exposes its penultimate features and its logits. An architecture is fully described by an
//! [`ArchSpec`], which is saved as JSON beside the weights (safetensors) so a model can be rebuilt.

pub use kdstore_core::arch::{ArchKind, ArchSpec};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// A built-in network: a feature extractor and a linear head.
#[derive(Debug)]
pub struct Net {
    body: Box<dyn ModuleT>,
    head: nn::Linear,
    input_shape: Vec<i64>,
}

/// libtorch's random generator is global to the process: seeding it and drawing a network's initial
/// weights happen under this lock, so that concurrent inits (tests, threads) cannot interleave.
static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `init` (which draws initial weights) with libtorch's generator seeded with `seed`.
pub fn seeded_init<T>(seed: u64, init: impl FnOnce() -> T) -> T {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed as i64);
    init()
}

impl Net {
    /// A network whose initial weights are drawn from libtorch's generator seeded with `seed`.
    pub fn seeded(path: &nn::Path, spec: &ArchSpec, seed: u64) -> Net {
        seeded_init(seed, || Net::build(path, spec))
    }

    /// A network with unseeded initial weights (about to be overwritten by loaded ones).
    pub fn new(path: &nn::Path, spec: &ArchSpec) -> Net {
        let _guard = INIT_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Net::build(path, spec)
    }

    fn build(path: &nn::Path, spec: &ArchSpec) -> Net {
        let boxed = |(body, features): (nn::SequentialT, i64)| (Box::new(body) as Box<dyn ModuleT>, features);
        let (body, features) = match spec.kind {
            ArchKind::Cnn1d => boxed(conv_body(path, spec, false)),
            ArchKind::Cnn2d => boxed(conv_body(path, spec, true)),
            ArchKind::Mlp => boxed(mlp_body(path, spec)),
            ArchKind::Transformer => {
                let body = super::transformer::TransformerBody::new(path, spec);
                (Box::new(body) as Box<dyn ModuleT>, spec.width)
            }
            ArchKind::Resnet => {
                let two_d = spec.input_shape.len() == 3;
                let (body, features) =
                    super::resnet::ResnetBody::new(path, spec.input_shape[0], spec.width, spec.depth, two_d);
                (Box::new(body) as Box<dyn ModuleT>, features)
            }
        };
        let head = nn::linear(path / "head", features, spec.classes, Default::default());
        Net { body, head, input_shape: spec.input_shape.clone() }
    }

    /// Penultimate features, `[batch, features]`.
    pub fn features(&self, inputs: &Tensor, train: bool) -> Result<Tensor, tch::TchError> {
        let mut shape = vec![-1];
        shape.extend_from_slice(&self.input_shape);
        let inputs = inputs.f_view(shape.as_slice())?;
        Ok(self.body.forward_t(&inputs, train))
    }

    /// Logits, `[batch, classes]`.
    pub fn forward(&self, inputs: &Tensor, train: bool) -> Result<Tensor, tch::TchError> {
        Ok(self.features(inputs, train)?.apply(&self.head))
    }

    /// Penultimate features and logits from one pass.
    pub fn forward_with_features(&self, inputs: &Tensor, train: bool) -> Result<(Tensor, Tensor), tch::TchError> {
        let features = self.features(inputs, train)?;
        let logits = features.apply(&self.head);
        Ok((features, logits))
    }
}

fn conv_body(path: &nn::Path, spec: &ArchSpec, two_d: bool) -> (nn::SequentialT, i64) {
    let mut body = nn::seq_t();
    let mut channels = spec.input_shape[0];
    let blocks = spec.depth.max(2);
    for block in 0..blocks {
        let out = spec.width * (1 << block.min(2));
        let p = path / format!("block{block}");
        let config = nn::ConvConfig { padding: 1, bias: false, ..Default::default() };
        if two_d {
            body = body.add(nn::conv2d(&p / "conv", channels, out, 3, config)).add(nn::batch_norm2d(
                &p / "bn",
                out,
                Default::default(),
            ));
        } else {
            let config = nn::ConvConfig { padding: 2, ..config };
            body = body.add(nn::conv1d(&p / "conv", channels, out, 5, config)).add(nn::batch_norm1d(
                &p / "bn",
                out,
                Default::default(),
            ));
        }
        body = body.add_fn(|x| x.relu());
        if block + 1 < blocks {
            body = if two_d {
                body.add_fn(|x| x.max_pool2d_default(2))
            } else {
                body.add_fn(|x| x.max_pool1d(2, 2, 0, 1, false))
            };
        }
        channels = out;
    }
    let dims: &'static [i64] = if two_d { &[2, 3] } else { &[2] };
    body = body.add_fn(move |x| x.mean_dim(dims, false, tch::Kind::Float));
    (body, channels)
}

fn mlp_body(path: &nn::Path, spec: &ArchSpec) -> (nn::SequentialT, i64) {
    let inputs: i64 = spec.input_shape.iter().product();
    let mut body = nn::seq_t().add_fn(|x| x.flatten(1, -1));
    let mut width = inputs;
    for layer in 0..spec.depth {
        body = body
            .add(nn::linear(path / format!("fc{layer}"), width, spec.width, Default::default()))
            .add_fn(|x| x.relu());
        width = spec.width;
    }
    (body, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_gives_logits_per_class() {
        let cases = [
            ArchSpec::new(ArchKind::Cnn1d, 4, 3, vec![6, 32], 5),
            ArchSpec::new(ArchKind::Cnn2d, 4, 2, vec![1, 8, 8], 3),
            ArchSpec::new(ArchKind::Mlp, 8, 2, vec![2, 5], 4),
            ArchSpec::new(ArchKind::Resnet, 4, 8, vec![1, 8, 8], 3),
            ArchSpec::new(ArchKind::Resnet, 4, 14, vec![6, 32], 5),
            ArchSpec::new(ArchKind::Transformer, 8, 2, vec![6, 32], 5),
            ArchSpec { heads: Some(4), patch: Some(8), ..ArchSpec::new(ArchKind::Transformer, 8, 1, vec![6, 32], 5) },
        ];
        for spec in cases {
            spec.check().unwrap();
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let net = Net::new(&vs.root(), &spec);
            let numel: i64 = spec.input_shape.iter().product();
            let inputs = Tensor::arange(7 * numel, tch::kind::FLOAT_CPU).view([7, numel]) / (7 * numel) as f64;
            let logits = net.forward(&inputs, false).unwrap();
            assert_eq!(logits.size(), vec![7, spec.classes], "{}", spec.describe());
        }
    }
}
