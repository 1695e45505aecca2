//! An encoder-only transformer for series (channels × time), the kind of network TASKED trains on
//! sensor windows: the series is cut into tokens of `patch` consecutive time steps (all channels),
//! each embedded linearly to `width` and added to a learned position embedding (initialised from
//! N(0, 0.02²)); `depth` encoder layers as PyTorch's `nn.TransformerEncoderLayer` builds them by
//! default (post-norm: x = LN(x + MHA(x)), x = LN(x + FF(x)), FF = Linear(width, 2·width), ReLU,
//! Linear(2·width, width); `heads` heads of scaled dot-product attention; no dropout, so training is
//! a pure function of the seed); the features are the tokens' mean.

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use kdstore_core::arch::ArchSpec;

#[derive(Debug)]
struct EncoderLayer {
    qkv: nn::Linear,
    out: nn::Linear,
    norm1: nn::LayerNorm,
    ff1: nn::Linear,
    ff2: nn::Linear,
    norm2: nn::LayerNorm,
    heads: i64,
}

impl EncoderLayer {
    fn new(path: nn::Path, width: i64, heads: i64) -> EncoderLayer {
        let norm = |name: &str| nn::layer_norm(&path / name, vec![width], Default::default());
        EncoderLayer {
            qkv: nn::linear(&path / "qkv", width, 3 * width, Default::default()),
            out: nn::linear(&path / "out", width, width, Default::default()),
            norm1: norm("norm1"),
            ff1: nn::linear(&path / "ff1", width, 2 * width, Default::default()),
            ff2: nn::linear(&path / "ff2", 2 * width, width, Default::default()),
            norm2: norm("norm2"),
            heads,
        }
    }

    /// Multi-head self-attention of `x` `[B, N, width]`.
    fn attend(&self, x: &Tensor) -> Tensor {
        let (b, n, width) = x.size3().expect("tokens are [batch, tokens, width]");
        let d = width / self.heads;
        let split = |t: &Tensor| t.view([b, n, self.heads, d]).transpose(1, 2);
        let qkv = x.apply(&self.qkv).chunk(3, -1);
        let (q, k, v) = (split(&qkv[0]), split(&qkv[1]), split(&qkv[2]));
        let weights = (q.matmul(&k.transpose(-2, -1)) / (d as f64).sqrt()).softmax(-1, x.kind());
        weights.matmul(&v).transpose(1, 2).reshape([b, n, width]).apply(&self.out)
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = (x + self.attend(x)).apply(&self.norm1);
        let ff = x.apply(&self.ff1).relu().apply(&self.ff2);
        (x + ff).apply(&self.norm2)
    }
}

/// The transformer's body: tokens, position embedding, encoder layers, mean over tokens.
#[derive(Debug)]
pub struct TransformerBody {
    embed: nn::Linear,
    position: Tensor,
    layers: Vec<EncoderLayer>,
    patch: i64,
}

impl TransformerBody {
    /// The body of `spec` (checked: series, width a multiple of heads, patch dividing the length).
    pub fn new(path: &nn::Path, spec: &ArchSpec) -> TransformerBody {
        let (channels, steps) = (spec.input_shape[0], spec.input_shape[1]);
        let patch = spec.patch();
        let tokens = steps / patch;
        let position = path.var("position", &[1, tokens, spec.width], nn::Init::Randn { mean: 0.0, stdev: 0.02 });
        TransformerBody {
            embed: nn::linear(path / "embed", channels * patch, spec.width, Default::default()),
            position,
            layers: (0..spec.depth)
                .map(|i| EncoderLayer::new(path / format!("layer{i}"), spec.width, spec.heads()))
                .collect(),
            patch,
        }
    }
}

impl ModuleT for TransformerBody {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        let (b, channels, steps) = xs.size3().expect("series are [batch, channels, time]");
        let tokens = steps / self.patch;
        let x = xs
            .view([b, channels, tokens, self.patch])
            .permute([0, 2, 1, 3])
            .reshape([b, tokens, channels * self.patch])
            .apply(&self.embed)
            + &self.position;
        let x = self.layers.iter().fold(x, |x, layer| layer.forward(&x));
        x.mean_dim(&[1i64][..], false, Kind::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kdstore_core::arch::ArchKind;

    #[test]
    fn attention_is_softmax_of_scaled_dot_products() {
        // One head over two tokens: out(attend(x)) against the formula written out.
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let layer = EncoderLayer::new(vs.root(), 2, 1);
        let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25]).view([1, 2, 2]);
        let qkv = x.apply(&layer.qkv).chunk(3, -1);
        let scores = qkv[0].matmul(&qkv[1].transpose(-2, -1)) / 2f64.sqrt();
        let want = scores.softmax(-1, Kind::Float).matmul(&qkv[2]).apply(&layer.out);
        assert!(layer.attend(&x).allclose(&want, 1e-6, 1e-6, false));
    }

    #[test]
    fn patches_make_the_tokens_and_the_order_of_time_matters() {
        let spec = ArchSpec { patch: Some(4), ..ArchSpec::new(ArchKind::Transformer, 8, 1, vec![2, 16], 3) };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let body = TransformerBody::new(&vs.root(), &spec);
        assert_eq!(body.position.size(), [1, 4, 8], "16 steps / patch 4 = 4 tokens");
        let x = Tensor::randn([3, 2, 16], tch::kind::FLOAT_CPU);
        let features = body.forward_t(&x, false);
        assert_eq!(features.size(), [3, 8]);
        // Reversed time changes the features (the position embedding makes order matter).
        assert!(!features.allclose(&body.forward_t(&x.flip([2]), false), 1e-4, 1e-4, false));
    }
}
