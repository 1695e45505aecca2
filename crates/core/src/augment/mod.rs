//! Augmentation: ops, recipes (ordered lists of ops), seed derivation and replay. A view is
//! rendered from (sample, recipe, seed) alone, so the build and the training loader produce the
//! same bits; the parameters each op drew are returned for the `views` table. This module does no
//! I/O and knows nothing of tensors or Parquet.

pub mod color_jitter;
pub mod cutmix;
pub mod cutout;
pub mod horizontal_flip;
pub mod image;
pub mod jitter;
pub mod magnitude_warp;
pub mod mixup;
pub mod params;
pub mod permutation;
pub mod random_crop;
pub mod random_resized_crop;
pub mod resample;
pub mod rotation;
pub mod scaling;
pub mod seed;
pub mod spline;
pub mod time_warp;
pub mod window_slice;
pub mod window_warp;

use std::borrow::Cow;

use rand::Rng;
use rand::SeedableRng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::source::SourceError;
use params::Drawn;

pub use color_jitter::ColorJitterConfig;
pub use cutmix::CutmixConfig;
pub use cutout::CutoutConfig;
pub use horizontal_flip::HorizontalFlipConfig;
pub use jitter::JitterConfig;
pub use magnitude_warp::MagnitudeWarpConfig;
pub use mixup::{Mix, MixupConfig};
pub use params::{DrawnParams, ParamColumn, ParamKind, ParamValue};
pub use permutation::PermutationConfig;
pub use random_crop::RandomCropConfig;
pub use random_resized_crop::RandomResizedCropConfig;
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

/// Where a view finds its sample and a mixing op its partners: the training samples' ids
/// (ascending) and every sample's raw input (decoded from its file, for a large image folder: a
/// file that changed since the store was built is an error).
pub trait MixSource {
    fn partner_pool(&self) -> &[i64];
    fn raw_input(&self, sample_id: i64) -> Result<Cow<'_, [f32]>, SourceError>;
}

/// A mixing pool for tests: ids (ascending) and each id's raw input, indexed by id.
#[cfg(test)]
pub(crate) struct TestPool(pub Vec<i64>, pub Vec<Vec<f32>>);

#[cfg(test)]
impl MixSource for TestPool {
    fn partner_pool(&self) -> &[i64] {
        &self.0
    }
    fn raw_input(&self, sample_id: i64) -> Result<Cow<'_, [f32]>, SourceError> {
        Ok(Cow::Borrowed(&self.1[sample_id as usize]))
    }
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
    RandomCrop(RandomCropConfig),
    HorizontalFlip(HorizontalFlipConfig),
    RandomResizedCrop(RandomResizedCropConfig),
    Cutout(CutoutConfig),
    ColorJitter(ColorJitterConfig),
    Mixup(MixupConfig),
    Cutmix(CutmixConfig),
}

/// Every op's name (also its flag column) and parameter columns, in the order the `views` table
/// lists them.
pub const OP_COLUMNS: &[(&str, &[ParamColumn])] = &[
    ("jitter", jitter::COLUMNS),
    ("scaling", scaling::COLUMNS),
    ("rotation", rotation::COLUMNS),
    ("permutation", permutation::COLUMNS),
    ("magnitude_warp", magnitude_warp::COLUMNS),
    ("time_warp", time_warp::COLUMNS),
    ("window_slice", window_slice::COLUMNS),
    ("window_warp", window_warp::COLUMNS),
    ("random_crop", random_crop::COLUMNS),
    ("horizontal_flip", horizontal_flip::COLUMNS),
    ("random_resized_crop", random_resized_crop::COLUMNS),
    ("cutout", cutout::COLUMNS),
    ("color_jitter", color_jitter::COLUMNS),
    ("mixup", mixup::COLUMNS),
    ("cutmix", cutmix::COLUMNS),
];

/// What an op's flag column means.
pub const FLAG_DESCRIPTION: &str =
    "true when the op was applied to the view, false when its probability draw skipped it, null when the recipe has no such op";

/// Every parameter column of the `views` table: each op's flag column, then its drawn values.
pub fn param_columns() -> Vec<ParamColumn> {
    OP_COLUMNS
        .iter()
        .flat_map(|(op, columns)| {
            std::iter::once(ParamColumn { name: op, kind: ParamKind::Bool, description: FLAG_DESCRIPTION })
                .chain(columns.iter().copied())
        })
        .collect()
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
            OpConfig::RandomCrop(_) => "random_crop",
            OpConfig::HorizontalFlip(_) => "horizontal_flip",
            OpConfig::RandomResizedCrop(_) => "random_resized_crop",
            OpConfig::Cutout(_) => "cutout",
            OpConfig::ColorJitter(_) => "color_jitter",
            OpConfig::Mixup(_) => "mixup",
            OpConfig::Cutmix(_) => "cutmix",
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
            OpConfig::RandomCrop(c) => c.p,
            OpConfig::HorizontalFlip(c) => c.p,
            OpConfig::RandomResizedCrop(c) => c.p,
            OpConfig::Cutout(c) => c.p,
            OpConfig::ColorJitter(c) => c.p,
            OpConfig::Mixup(c) => c.p,
            OpConfig::Cutmix(c) => c.p,
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
            OpConfig::RandomCrop(c) => c.validate(),
            OpConfig::HorizontalFlip(_) => Vec::new(),
            OpConfig::RandomResizedCrop(c) => c.validate(),
            OpConfig::Cutout(c) => c.validate(),
            OpConfig::ColorJitter(c) => c.validate(),
            OpConfig::Mixup(c) => c.validate(),
            OpConfig::Cutmix(c) => c.validate(),
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
            OpConfig::RandomCrop(c) => c.check_shape(shape),
            OpConfig::HorizontalFlip(c) => c.check_shape(shape),
            OpConfig::RandomResizedCrop(c) => c.check_shape(shape),
            OpConfig::Cutout(c) => c.check_shape(shape),
            OpConfig::ColorJitter(c) => c.check_shape(shape),
            OpConfig::Cutmix(c) => c.check_shape(shape),
            OpConfig::Jitter(_) | OpConfig::Scaling(_) | OpConfig::Mixup(_) => Ok(()),
        }
    }

    pub fn is_mix(&self) -> bool {
        matches!(self, OpConfig::Mixup(_) | OpConfig::Cutmix(_))
    }

    /// Applies the op (its `p` draw already made), returning the mix it made, if any, and its draws.
    fn apply(
        &self,
        rng: &mut OpRng,
        input: &mut [f32],
        shape: &[usize],
        sample_id: i64,
        source: &dyn MixSource,
    ) -> Result<(Option<Mix>, Drawn), SourceError> {
        let plain = |drawn| Ok((None, drawn));
        match self {
            OpConfig::Jitter(c) => plain(c.apply(rng, input)),
            OpConfig::Scaling(c) => plain(c.apply(rng, input, shape)),
            OpConfig::Rotation(c) => plain(c.apply(rng, input, shape)),
            OpConfig::Permutation(c) => plain(c.apply(rng, input, shape)),
            OpConfig::MagnitudeWarp(c) => plain(c.apply(rng, input, shape)),
            OpConfig::TimeWarp(c) => plain(c.apply(rng, input, shape)),
            OpConfig::WindowSlice(c) => plain(c.apply(rng, input, shape)),
            OpConfig::WindowWarp(c) => plain(c.apply(rng, input, shape)),
            OpConfig::RandomCrop(c) => plain(c.apply(rng, input, shape)),
            OpConfig::HorizontalFlip(c) => plain(c.apply(input, shape)),
            OpConfig::RandomResizedCrop(c) => plain(c.apply(rng, input, shape)),
            OpConfig::Cutout(c) => plain(c.apply(rng, input, shape)),
            OpConfig::ColorJitter(c) => plain(c.apply(rng, input, shape)),
            OpConfig::Mixup(c) => Ok((c.apply(rng, input, sample_id, source)?, Vec::new())),
            OpConfig::Cutmix(c) => Ok(match c.apply(rng, input, shape, sample_id, source)? {
                Some((mix, drawn)) => (Some(mix), drawn),
                None => (None, Vec::new()),
            }),
        }
    }
}

/// Per-channel affine normalisation, `(x - mean[c]) / std[c]`, applied to a view on its way into a
/// model (teacher or student); the view itself, its hash and exports stay in raw units.
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

/// A view, plus what was drawn to make it.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedView {
    /// The augmented float32 input in the units of the raw sample (before normalisation).
    pub input: Vec<f32>,
    pub mix: Option<Mix>,
    pub params: DrawnParams,
    /// `seed::input_hash` of `input`.
    pub input_hash: u64,
}

/// Renders one view: the raw sample, then each op in order (each first draws whether it applies,
/// with probability `p`), then the hash. A mixing op that finds no partner counts as not applied.
/// Normalisation is the model's business, not the view's: see `Normalizer`.
pub fn render_view(
    ops: &[OpConfig],
    seed: u64,
    sample_id: i64,
    sample_shape: &[usize],
    source: &dyn MixSource,
) -> Result<RenderedView, SourceError> {
    let mut rng = OpRng::seed_from_u64(seed);
    let mut input = source.raw_input(sample_id)?.into_owned();
    let mut mix = None;
    let mut params = DrawnParams::default();
    for op in ops {
        let draw: f64 = rng.gen();
        let mut applied = draw < op.p();
        if applied {
            let (made, drawn) = op.apply(&mut rng, &mut input, sample_shape, sample_id, source)?;
            if op.is_mix() {
                applied = made.is_some();
                mix = made;
            }
            for (column, value) in drawn {
                params.insert(column, value);
            }
        }
        params.insert(op.name(), ParamValue::Bool(applied));
    }
    let input_hash = seed::input_hash(&input);
    Ok(RenderedView { input, mix, params, input_hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> TestPool {
        TestPool(vec![0, 1], vec![vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0, 7.0, 8.0]])
    }

    #[test]
    fn identity_is_the_raw_sample_and_normalising_is_per_channel() {
        let view = render_view(&[], 9, 0, &[2, 2], &source()).unwrap();
        assert_eq!(view.input, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(view.input_hash, seed::input_hash(&[1.0, 2.0, 3.0, 4.0]));
        assert!(view.params.0.is_empty() && view.mix.is_none());
        let mut x = view.input;
        Normalizer { mean: vec![1.0, 3.0], std: vec![2.0, 1.0] }.apply(&mut x);
        assert_eq!(x, vec![0.0, 0.5, 0.0, 1.0]);
    }

    #[test]
    fn replay_is_bit_exact_and_seed_sensitive() {
        let ops = vec![
            OpConfig::Scaling(ScalingConfig { sigma: 0.1, p: 1.0 }),
            OpConfig::Jitter(JitterConfig { sigma: 0.05, p: 0.5 }),
            OpConfig::Mixup(MixupConfig { alpha: 0.2, p: 1.0 }),
        ];
        let a = render_view(&ops, 42, 0, &[2, 2], &source()).unwrap();
        let b = render_view(&ops, 42, 0, &[2, 2], &source()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.mix.unwrap().partner_id, 1);
        assert_eq!(a.params.get("mixup"), Some(&ParamValue::Bool(true)));
        assert_eq!(a.params.get("scaling_factors").and_then(|v| v.as_floats()).map(|f| f.len()), Some(2));
        let c = render_view(&ops, 43, 0, &[2, 2], &source()).unwrap();
        assert_ne!(a.input_hash, c.input_hash);
    }

    #[test]
    fn probability_zero_never_applies() {
        let ops = vec![OpConfig::Jitter(JitterConfig { sigma: 1.0, p: 0.0 })];
        let view = render_view(&ops, 1, 1, &[2, 2], &source()).unwrap();
        assert_eq!(view.input, vec![5.0, 6.0, 7.0, 8.0]);
        assert_eq!(view.params.0.into_iter().collect::<Vec<_>>(), vec![("jitter", ParamValue::Bool(false))]);
    }

    #[test]
    fn every_column_is_unique_and_prefixed_with_its_op() {
        let columns = param_columns();
        let names: std::collections::HashSet<_> = columns.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), columns.len());
        for (op, own) in OP_COLUMNS {
            assert!(own.iter().all(|c| c.name.starts_with(&format!("{op}_"))), "{op}");
        }
    }

    /// Every op with its defaults, on a sample shape it accepts.
    fn every_op() -> Vec<(OpConfig, Vec<usize>)> {
        let series = vec![6, 100];
        let image = vec![3, 12, 10];
        let names = [
            ("jitter", &series),
            ("scaling", &series),
            ("rotation", &series),
            ("permutation", &series),
            ("magnitude_warp", &series),
            ("time_warp", &series),
            ("window_slice", &series),
            ("window_warp", &series),
            ("random_crop", &image),
            ("horizontal_flip", &image),
            ("random_resized_crop", &image),
            ("cutout", &image),
            ("color_jitter", &image),
            ("mixup", &series),
            ("cutmix", &image),
            ("cutmix", &series),
        ];
        names
            .iter()
            .map(|(name, shape)| {
                let op: OpConfig = serde_json::from_value(serde_json::json!({ "op": name, "p": 1.0 })).unwrap();
                assert!(op.validate().is_empty(), "{name} defaults are invalid");
                assert_eq!(op.check_shape(shape), Ok(()), "{name}");
                (op, shape.to_vec())
            })
            .collect()
    }

    #[test]
    fn every_op_keeps_the_shape_replays_and_depends_on_the_seed() {
        for (op, shape) in every_op() {
            let len: usize = shape.iter().product();
            // Values in [0, 1] (images) with structure, so that every op visibly changes them.
            let pool = TestPool(
                (0..4).collect(),
                (0..4).map(|s| (0..len).map(|i| ((i * 7 + s * 13) % 23) as f32 / 23.0).collect()).collect(),
            );
            let ops = [op.clone()];
            let views: Vec<RenderedView> =
                (0..12).map(|seed| render_view(&ops, seed, 1, &shape, &pool).unwrap()).collect();
            for (seed, view) in views.iter().enumerate() {
                assert_eq!(view.input.len(), len, "{}", op.name());
                assert_eq!(view, &render_view(&ops, seed as u64, 1, &shape, &pool).unwrap(), "{} replays", op.name());
                assert_eq!(view.params.get(op.name()), Some(&ParamValue::Bool(true)), "{}", op.name());
            }
            let distinct: std::collections::HashSet<u64> = views.iter().map(|v| v.input_hash).collect();
            // A flip has nothing to draw once applied; every other op differs across seeds.
            let expected = if op.name() == "horizontal_flip" { 1 } else { 5 };
            assert!(distinct.len() >= expected, "{}: {} distinct views of 12", op.name(), distinct.len());
            let changed = views.iter().filter(|v| v.input != pool.1[1]).count();
            // A permutation draws one segment or the original order 43% of the time with 4 segments.
            assert!(changed >= 4, "{} changed the sample in {changed} of 12 views", op.name());
        }
    }

    #[test]
    fn an_op_may_not_see_the_wrong_kind_of_sample() {
        for (op, shape) in every_op() {
            let other = if shape.len() == 2 { vec![3, 12, 10] } else { vec![6, 40] };
            let accepts_both =
                matches!(op, OpConfig::Jitter(_) | OpConfig::Scaling(_) | OpConfig::Mixup(_) | OpConfig::Cutmix(_));
            assert_eq!(op.check_shape(&other).is_ok(), accepts_both, "{} on {other:?}", op.name());
        }
    }
}
