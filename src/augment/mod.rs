//! Augmentation: ops, recipes (ordered lists of ops), seed derivation and replay. A view is
//! rendered from (sample, recipe, seed) alone, so the build and the training loader produce the
//! same bits; the parameters each op drew are returned for the `views` table. This module does no
//! I/O and knows nothing of tensors or Parquet.

pub mod jitter;
pub mod magnitude_warp;
pub mod mixup;
pub mod permutation;
pub mod resample;
pub mod rotation;
pub mod scaling;
pub mod seed;
pub mod spline;
pub mod time_warp;
pub mod window_slice;
pub mod window_warp;

use rand::Rng;
use rand::SeedableRng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use jitter::JitterConfig;
pub use magnitude_warp::MagnitudeWarpConfig;
pub use mixup::{Mix, MixupConfig};
pub use permutation::PermutationConfig;
pub use rotation::RotationConfig;
pub use scaling::ScalingConfig;
pub use time_warp::TimeWarpConfig;
pub use window_slice::WindowSliceConfig;
pub use window_warp::WindowWarpConfig;

/// The random generator every op draws from: ChaCha8, seeded with the view's seed. Portable and
/// stable across platforms and crate versions of the same major release.
pub type OpRng = rand_chacha::ChaCha8Rng;

pub(crate) fn default_p() -> f64 {
    1.0
}

/// Where a mixing op finds its partners: the training samples' ids (ascending) and their raw inputs.
pub trait MixSource {
    fn partner_pool(&self) -> &[i64];
    fn raw_input(&self, sample_id: i64) -> &[f32];
}

/// One op of a recipe, as written in the pipeline file (`{ op = "jitter", sigma = 0.05 }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpConfig {
    Jitter(JitterConfig),
    Scaling(ScalingConfig),
    Rotation(RotationConfig),
    Permutation(PermutationConfig),
    MagnitudeWarp(MagnitudeWarpConfig),
    TimeWarp(TimeWarpConfig),
    WindowSlice(WindowSliceConfig),
    WindowWarp(WindowWarpConfig),
    Mixup(MixupConfig),
}

impl OpConfig {
    pub fn name(&self) -> &'static str {
        match self {
            OpConfig::Jitter(_) => "jitter",
            OpConfig::Scaling(_) => "scaling",
            OpConfig::Rotation(_) => "rotation",
            OpConfig::Permutation(_) => "permutation",
            OpConfig::MagnitudeWarp(_) => "magnitude_warp",
            OpConfig::TimeWarp(_) => "time_warp",
            OpConfig::WindowSlice(_) => "window_slice",
            OpConfig::WindowWarp(_) => "window_warp",
            OpConfig::Mixup(_) => "mixup",
        }
    }

    fn p(&self) -> f64 {
        match self {
            OpConfig::Jitter(c) => c.p,
            OpConfig::Scaling(c) => c.p,
            OpConfig::Rotation(c) => c.p,
            OpConfig::Permutation(c) => c.p,
            OpConfig::MagnitudeWarp(c) => c.p,
            OpConfig::TimeWarp(c) => c.p,
            OpConfig::WindowSlice(c) => c.p,
            OpConfig::WindowWarp(c) => c.p,
            OpConfig::Mixup(c) => c.p,
        }
    }

    /// Every problem with this op's settings.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = match self {
            OpConfig::Jitter(c) => c.validate(),
            OpConfig::Scaling(c) => c.validate(),
            OpConfig::Rotation(c) => c.validate(),
            OpConfig::Permutation(c) => c.validate(),
            OpConfig::MagnitudeWarp(c) => c.validate(),
            OpConfig::TimeWarp(c) => c.validate(),
            OpConfig::WindowSlice(c) => c.validate(),
            OpConfig::WindowWarp(c) => c.validate(),
            OpConfig::Mixup(c) => c.validate(),
        };
        if !(0.0..=1.0).contains(&self.p()) {
            problems.push(format!("p must be in [0, 1], got {}", self.p()));
        }
        problems
    }

    /// Whether the op can run on samples of `shape` (known once the source is read).
    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        match self {
            OpConfig::Rotation(c) => c.check_shape(shape),
            OpConfig::Permutation(c) => c.check_shape(shape),
            OpConfig::MagnitudeWarp(c) => c.check_shape(shape),
            OpConfig::TimeWarp(c) => c.check_shape(shape),
            OpConfig::WindowSlice(c) => c.check_shape(shape),
            OpConfig::WindowWarp(c) => c.check_shape(shape),
            OpConfig::Jitter(_) | OpConfig::Scaling(_) | OpConfig::Mixup(_) => Ok(()),
        }
    }

    pub fn is_mix(&self) -> bool {
        matches!(self, OpConfig::Mixup(_))
    }
}

/// Per-channel affine normalisation applied after augmentation: `(x - mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalizer {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalizer {
    pub fn apply(&self, input: &mut [f32]) {
        let channels = self.mean.len().max(1);
        let per_channel = input.len() / channels;
        for (c, chunk) in input.chunks_mut(per_channel).enumerate() {
            let (mean, std) = (self.mean[c], self.std[c]);
            for value in chunk {
                *value = (*value - mean) / std;
            }
        }
    }
}

/// A view rendered for a model, plus what was drawn to make it.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedView {
    /// The normalised float32 input, exactly what the teacher saw.
    pub input: Vec<f32>,
    pub mix: Option<Mix>,
    /// JSON array of each op's drawn parameters, in recipe order.
    pub params: String,
    pub input_hash: u64,
}

/// Renders one view: the raw sample, then each op in order (each first draws whether it applies,
/// with probability `p`), then normalisation, then the hash.
pub fn render_view(
    ops: &[OpConfig],
    seed: u64,
    sample_id: i64,
    sample_shape: &[usize],
    source: &dyn MixSource,
    normalizer: &Normalizer,
) -> RenderedView {
    let mut rng = OpRng::seed_from_u64(seed);
    let mut input = source.raw_input(sample_id).to_vec();
    let mut mix = None;
    let mut params = Vec::with_capacity(ops.len());
    for op in ops {
        let draw: f64 = rng.gen();
        if draw >= op.p() {
            params.push(serde_json::json!({ "op": op.name(), "applied": false }));
            continue;
        }
        let drawn = match op {
            OpConfig::Jitter(c) => c.apply(&mut rng, &mut input),
            OpConfig::Scaling(c) => c.apply(&mut rng, &mut input, sample_shape),
            OpConfig::Rotation(c) => c.apply(&mut rng, &mut input, sample_shape),
            OpConfig::Permutation(c) => c.apply(&mut rng, &mut input, sample_shape),
            OpConfig::MagnitudeWarp(c) => c.apply(&mut rng, &mut input, sample_shape),
            OpConfig::TimeWarp(c) => c.apply(&mut rng, &mut input, sample_shape),
            OpConfig::WindowSlice(c) => c.apply(&mut rng, &mut input, sample_shape),
            OpConfig::WindowWarp(c) => c.apply(&mut rng, &mut input, sample_shape),
            OpConfig::Mixup(c) => match c.apply(&mut rng, &mut input, sample_id, source) {
                Some(m) => {
                    mix = Some(m);
                    serde_json::json!({ "op": "mixup", "alpha": c.alpha, "partner_id": m.partner_id, "lam": m.lam })
                }
                None => serde_json::json!({ "op": "mixup", "applied": false }),
            },
        };
        params.push(drawn);
    }
    normalizer.apply(&mut input);
    let input_hash = seed::input_hash(&input);
    RenderedView { input, mix, params: serde_json::Value::Array(params).to_string(), input_hash }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two(Vec<i64>, Vec<Vec<f32>>);
    impl MixSource for Two {
        fn partner_pool(&self) -> &[i64] {
            &self.0
        }
        fn raw_input(&self, sample_id: i64) -> &[f32] {
            &self.1[sample_id as usize]
        }
    }

    fn source() -> Two {
        Two(vec![0, 1], vec![vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0, 7.0, 8.0]])
    }

    #[test]
    fn identity_is_the_normalised_sample() {
        let norm = Normalizer { mean: vec![1.0, 3.0], std: vec![2.0, 1.0] };
        let view = render_view(&[], 9, 0, &[2, 2], &source(), &norm);
        assert_eq!(view.input, vec![0.0, 0.5, 0.0, 1.0]);
        assert_eq!(view.params, "[]");
        assert!(view.mix.is_none());
    }

    #[test]
    fn replay_is_bit_exact_and_seed_sensitive() {
        let ops = vec![
            OpConfig::Scaling(ScalingConfig { sigma: 0.1, p: 1.0 }),
            OpConfig::Jitter(JitterConfig { sigma: 0.05, p: 0.5 }),
            OpConfig::Mixup(MixupConfig { alpha: 0.2, p: 1.0 }),
        ];
        let norm = Normalizer { mean: vec![0.0, 0.0], std: vec![1.0, 1.0] };
        let a = render_view(&ops, 42, 0, &[2, 2], &source(), &norm);
        let b = render_view(&ops, 42, 0, &[2, 2], &source(), &norm);
        assert_eq!(a, b);
        assert_eq!(a.mix.unwrap().partner_id, 1);
        let c = render_view(&ops, 43, 0, &[2, 2], &source(), &norm);
        assert_ne!(a.input_hash, c.input_hash);
    }

    #[test]
    fn probability_zero_never_applies() {
        let ops = vec![OpConfig::Jitter(JitterConfig { sigma: 1.0, p: 0.0 })];
        let norm = Normalizer { mean: vec![0.0, 0.0], std: vec![1.0, 1.0] };
        let view = render_view(&ops, 1, 1, &[2, 2], &source(), &norm);
        assert_eq!(view.input, vec![5.0, 6.0, 7.0, 8.0]);
        assert_eq!(view.params, r#"[{"applied":false,"op":"jitter"}]"#);
    }
}
