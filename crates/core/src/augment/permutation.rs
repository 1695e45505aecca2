//! `permutation` (Um et al. 2017; uchidalab `permutation` with equal segments): the time axis is
//! cut into n equal segments (n drawn uniformly from 1..=max_segments; the first `length % n`
//! segments one step longer, as numpy's `array_split`), the segments are shuffled, and every
//! channel is reordered the same way. Where we differ: uchidalab draws n from 1..max_segments−1
//! (numpy's exclusive upper bound); here `max_segments` itself can be drawn. The drawn segment
//! count and order are stored in the `permutation_segments` and `permutation_order` columns.

use rand::seq::SliceRandom;
use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::params::{int, ints, param, Drawn, ParamColumn, ParamKind};
use super::{default_p, OpRng};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PermutationConfig {
    /// Largest number of segments the series is cut into.
    #[serde(default = "default_max_segments")]
    pub max_segments: usize,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_max_segments() -> usize {
    4
}

pub const COLUMNS: &[ParamColumn] = &[
    param("permutation_segments", ParamKind::Int, "permutation: the number of segments drawn"),
    param("permutation_order", ParamKind::IntList, "permutation: the original index of each output segment"),
];

impl PermutationConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_segments < 2 {
            problems.push(format!("max_segments must be >= 2, got {}", self.max_segments));
        }
        problems
    }

    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        match shape {
            [_, length] if *length >= self.max_segments => Ok(()),
            [_, length] => Err(format!("max_segments {} exceeds the series length {length}", self.max_segments)),
            _ => Err(format!("needs series (channels × time), got shape {shape:?}")),
        }
    }

    pub fn apply(&self, rng: &mut OpRng, input: &mut [f32], shape: &[usize]) -> Drawn {
        let length = shape[1];
        let segments = rng.gen_range(1..=self.max_segments);
        let mut order: Vec<usize> = (0..segments).collect();
        order.shuffle(rng);
        let bounds = equal_segments(length, segments);
        let time_order: Vec<usize> = order.iter().flat_map(|&s| bounds[s].clone()).collect();
        for channel in input.chunks_mut(length) {
            let original = channel.to_vec();
            for (t, &source) in time_order.iter().enumerate() {
                channel[t] = original[source];
            }
        }
        vec![("permutation_segments", int(segments)), ("permutation_order", ints(&order))]
    }
}

/// `length` steps cut into `n` contiguous ranges; the first `length % n` are one step longer.
fn equal_segments(length: usize, n: usize) -> Vec<std::ops::Range<usize>> {
    let (base, extra) = (length / n, length % n);
    let mut start = 0;
    (0..n)
        .map(|i| {
            let end = start + base + usize::from(i < extra);
            let range = start..end;
            start = end;
            range
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::params::find;
    use rand::SeedableRng;

    #[test]
    fn segments_split_like_numpy_array_split() {
        assert_eq!(equal_segments(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(equal_segments(8, 4), vec![0..2, 2..4, 4..6, 6..8]);
    }

    #[test]
    fn keeps_each_channels_values_and_moves_all_channels_alike() {
        let config = PermutationConfig { max_segments: 4, p: 1.0 };
        let original: Vec<f32> = (0..2 * 13).map(|i| i as f32).collect();
        for seed in 0..30 {
            let mut x = original.clone();
            let params = config.apply(&mut OpRng::seed_from_u64(seed), &mut x, &[2, 13]);
            let segments = find(&params, "permutation_segments").unwrap().as_int().unwrap() as usize;
            assert!((1..=4).contains(&segments));
            for c in 0..2 {
                let mut a = original[c * 13..(c + 1) * 13].to_vec();
                let mut b = x[c * 13..(c + 1) * 13].to_vec();
                a.sort_by(f32::total_cmp);
                b.sort_by(f32::total_cmp);
                assert_eq!(a, b, "the multiset of values is kept");
            }
            for t in 0..13 {
                assert_eq!(x[13 + t] - x[t], 13.0, "both channels are reordered the same way");
            }
            // Replaying the stored order reproduces the view.
            let order: Vec<usize> =
                find(&params, "permutation_order").unwrap().as_ints().unwrap().iter().map(|&i| i as usize).collect();
            let bounds = equal_segments(13, segments);
            let expected: Vec<f32> = order.iter().flat_map(|&s| bounds[s].clone()).map(|t| original[t]).collect();
            assert_eq!(&x[..13], &expected[..]);
        }
    }

    #[test]
    fn validates_its_settings() {
        assert_eq!(PermutationConfig { max_segments: 1, p: 1.0 }.validate(), vec!["max_segments must be >= 2, got 1"]);
        assert!(PermutationConfig { max_segments: 4, p: 1.0 }.check_shape(&[1, 28, 28]).is_err());
    }
}
