//! Seeds and ids derived purely from identifiers, never from thread timing or build order, so the
//! same pipeline gives the same views whatever the number of threads or the order of stages.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// The seed of one view: a hash of (sample id, recipe name, replica) keyed by the pipeline seed.
pub fn view_seed(pipeline_seed: u64, sample_id: i64, recipe: &str, replica: u32) -> u64 {
    xxh3_64_with_seed(&identity_bytes(sample_id, recipe, replica), pipeline_seed)
}

/// The stable id of a view, independent of the pipeline seed: non-negative so that it is a
/// plain BIGINT in every engine.
pub fn view_id(sample_id: i64, recipe: &str, replica: u32) -> i64 {
    (xxh3_64(&identity_bytes(sample_id, recipe, replica)) & (i64::MAX as u64)) as i64
}

/// A seed for a named purpose (a split shuffle, a teacher's initialisation) under the pipeline seed.
pub fn purpose_seed(pipeline_seed: u64, purpose: &str) -> u64 {
    xxh3_64_with_seed(purpose.as_bytes(), pipeline_seed)
}

fn identity_bytes(sample_id: i64, recipe: &str, replica: u32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(recipe.len() + 16);
    bytes.extend_from_slice(&sample_id.to_le_bytes());
    bytes.extend_from_slice(&replica.to_le_bytes());
    bytes.extend_from_slice(recipe.as_bytes());
    bytes
}

/// Hash of the exact float32 input a model saw (its little-endian bytes).
pub fn input_hash(input: &[f32]) -> u64 {
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    xxh3_64(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_depend_on_every_identifier() {
        let base = view_seed(7, 3, "jitter", 0);
        assert_eq!(base, view_seed(7, 3, "jitter", 0));
        assert_ne!(base, view_seed(8, 3, "jitter", 0));
        assert_ne!(base, view_seed(7, 4, "jitter", 0));
        assert_ne!(base, view_seed(7, 3, "scaling", 0));
        assert_ne!(base, view_seed(7, 3, "jitter", 1));
    }

    #[test]
    fn view_ids_are_non_negative_and_ignore_the_seed() {
        for sample in 0..1000 {
            assert!(view_id(sample, "mixup", 2) >= 0);
        }
        assert_ne!(view_id(1, "a", 0), view_id(1, "a", 1));
    }

    #[test]
    fn input_hash_sees_every_bit() {
        let a = [1.0f32, 2.0, 3.0];
        let mut b = a;
        b[2] = f32::from_bits(b[2].to_bits() ^ 1);
        assert_ne!(input_hash(&a), input_hash(&b));
        assert_eq!(input_hash(&a), input_hash(&[1.0, 2.0, 3.0]));
    }
}
