//! `mixup` (Zhang et al. 2018), exact and batch-independent: the partner is another training
//! sample chosen from the view's seed, λ ~ Beta(α, α) is drawn once, and the view is
//! `λ·x + (1−λ)·partner` computed in float32 with the stored λ, so the stored (partner, λ)
//! reproduce the input bit for bit. The partner contributes its raw (un-augmented) input.

use rand::Rng;
use rand_distr::{Beta, Distribution};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::params::ParamColumn;
use super::{default_p, MixSource, OpRng};
use crate::source::SourceError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MixupConfig {
    /// Concentration of the symmetric Beta(α, α) that λ is drawn from.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Probability that the op is applied to a view.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_alpha() -> f64 {
    0.2
}

/// The partner and λ live in the shared `partner_id` and `lam` columns.
pub const COLUMNS: &[ParamColumn] = &[];

/// The mix actually drawn for a view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    pub partner_id: i64,
    pub lam: f32,
}

impl MixupConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            problems.push(format!("alpha must be > 0, got {}", self.alpha));
        }
        problems
    }

    /// Draws the partner and λ, mixes in place and returns the mix. Returns `None` (input
    /// untouched) when the pool holds no sample other than the view's own.
    pub fn apply(
        &self,
        rng: &mut OpRng,
        input: &mut [f32],
        sample_id: i64,
        source: &dyn MixSource,
    ) -> Result<Option<Mix>, SourceError> {
        let Some(partner_id) = draw_partner(rng, sample_id, source) else { return Ok(None) };
        let lam = Beta::new(self.alpha, self.alpha).expect("alpha validated").sample(rng) as f32;
        mix_into(input, &source.raw_input(partner_id)?, lam);
        Ok(Some(Mix { partner_id, lam }))
    }
}

/// Draws a partner uniformly among the training pool without the sample itself; `None` when the
/// pool holds no other sample.
pub(crate) fn draw_partner(rng: &mut OpRng, sample_id: i64, source: &dyn MixSource) -> Option<i64> {
    let pool = source.partner_pool();
    let own = pool.binary_search(&sample_id).ok();
    let candidates = pool.len() - usize::from(own.is_some());
    if candidates == 0 {
        return None;
    }
    let mut index = rng.gen_range(0..candidates);
    if own.is_some_and(|own| index >= own) {
        index += 1;
    }
    Some(pool[index])
}

/// `input ← λ·input + (1−λ)·partner`, elementwise in float32. Replay and export use this exact
/// expression so that the stored λ reproduces the bits.
pub fn mix_into(input: &mut [f32], partner: &[f32], lam: f32) {
    let other = 1.0f32 - lam;
    for (value, &p) in input.iter_mut().zip(partner) {
        *value = lam * *value + other * p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    use crate::augment::TestPool;

    #[test]
    fn mix_is_exact_and_never_picks_itself() {
        let pool = TestPool(vec![0, 1, 2], vec![vec![1.0, 2.0], vec![10.0, 20.0], vec![-3.0, 0.5]]);
        let config = MixupConfig { alpha: 0.4, p: 1.0 };
        for seed in 0..200 {
            let mut input = pool.1[1].clone();
            let mix = config.apply(&mut OpRng::seed_from_u64(seed), &mut input, 1, &pool).unwrap().unwrap();
            assert_ne!(mix.partner_id, 1);
            assert!((0.0..=1.0).contains(&mix.lam));
            let partner = &pool.1[mix.partner_id as usize];
            for i in 0..2 {
                assert_eq!(input[i], mix.lam * pool.1[1][i] + (1.0 - mix.lam) * partner[i]);
            }
        }
    }

    #[test]
    fn a_pool_of_one_cannot_mix() {
        let pool = TestPool(vec![0], vec![vec![1.0]]);
        let mut input = vec![1.0];
        assert!(MixupConfig { alpha: 1.0, p: 1.0 }
            .apply(&mut OpRng::seed_from_u64(0), &mut input, 0, &pool)
            .unwrap()
            .is_none());
    }
}
