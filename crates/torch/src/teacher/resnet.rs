//! The CIFAR-style ResNet of He et al. 2016 (§4.2), as the KD literature's students use it
//! (RepDistiller's resnet8/14/20): a 3×3 stem with `width` channels, three stages of n basic blocks
//! (two 3×3 convolutions with batch norm) with `width`, 2·`width` and 4·`width` channels, the
//! second and third starting with stride 2 and a 1×1 convolution + batch norm on the shortcut when
//! the shape changes, then global average pooling. Depth = 6n + 2 (8, 14, 20, …). For series the
//! same network is built with 1-D convolutions (kernel 3).

use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

use kdstore_core::arch::blocks_per_stage;

/// A convolution of either dimension behind one interface.
type Conv = Box<dyn Module>;

fn conv(path: nn::Path, inputs: i64, outputs: i64, kernel: i64, stride: i64, two_d: bool) -> Conv {
    let config = nn::ConvConfig { stride, padding: kernel / 2, bias: false, ..Default::default() };
    if two_d {
        Box::new(nn::conv2d(path, inputs, outputs, kernel, config))
    } else {
        Box::new(nn::conv1d(path, inputs, outputs, kernel, config))
    }
}

fn norm(path: nn::Path, channels: i64, two_d: bool) -> nn::BatchNorm {
    if two_d {
        nn::batch_norm2d(path, channels, Default::default())
    } else {
        nn::batch_norm1d(path, channels, Default::default())
    }
}

#[derive(Debug)]
struct Block {
    conv1: Conv,
    bn1: nn::BatchNorm,
    conv2: Conv,
    bn2: nn::BatchNorm,
    shortcut: Option<(Conv, nn::BatchNorm)>,
}

impl ModuleT for Block {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let hidden = self.conv1.forward(x).apply_t(&self.bn1, train).relu();
        let out = self.conv2.forward(&hidden).apply_t(&self.bn2, train);
        let shortcut = match &self.shortcut {
            Some((conv, bn)) => conv.forward(x).apply_t(bn, train),
            None => x.shallow_clone(),
        };
        (out + shortcut).relu()
    }
}

/// The network body up to the pooled features.
#[derive(Debug)]
pub struct ResnetBody {
    stem: Conv,
    stem_bn: nn::BatchNorm,
    blocks: Vec<Block>,
    two_d: bool,
}

impl ResnetBody {
    /// The body and its feature width (4·width).
    pub fn new(path: &nn::Path, input_channels: i64, width: i64, depth: i64, two_d: bool) -> (ResnetBody, i64) {
        let per_stage = blocks_per_stage(depth).expect("depth checked");
        let stem = conv(path / "stem", input_channels, width, 3, 1, two_d);
        let stem_bn = norm(path / "stem_bn", width, two_d);
        let mut blocks = Vec::new();
        let mut channels = width;
        for stage in 0..3 {
            let out = width << stage;
            for index in 0..per_stage {
                let stride = if stage > 0 && index == 0 { 2 } else { 1 };
                let p = path / format!("stage{stage}") / format!("block{index}");
                let shortcut = (stride != 1 || channels != out)
                    .then(|| (conv(&p / "down", channels, out, 1, stride, two_d), norm(&p / "down_bn", out, two_d)));
                blocks.push(Block {
                    conv1: conv(&p / "conv1", channels, out, 3, stride, two_d),
                    bn1: norm(&p / "bn1", out, two_d),
                    conv2: conv(&p / "conv2", out, out, 3, 1, two_d),
                    bn2: norm(&p / "bn2", out, two_d),
                    shortcut,
                });
                channels = out;
            }
        }
        (ResnetBody { stem, stem_bn, blocks, two_d }, channels)
    }
}

impl ModuleT for ResnetBody {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = self.stem.forward(x).apply_t(&self.stem_bn, train).relu();
        for block in &self.blocks {
            x = block.forward_t(&x, train);
        }
        let dims: &[i64] = if self.two_d { &[2, 3] } else { &[2] };
        x.mean_dim(dims, false, x.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_follow_the_paper() {
        // resnet20 on CIFAR-10 (width 16) has about 0.27M parameters (He et al. 2016, Table 6).
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let (body, features) = ResnetBody::new(&vs.root(), 3, 16, 20, true);
        let head = nn::linear(vs.root() / "head", features, 10, Default::default());
        let parameters: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert!((265_000..280_000).contains(&parameters), "{parameters}");
        let logits = Tensor::zeros([2, 3, 32, 32], tch::kind::FLOAT_CPU).apply_t(&body, false).apply(&head);
        assert_eq!(logits.size(), vec![2, 10]);
    }
}
