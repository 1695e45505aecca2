//! What a batch's teacher target is when several teachers teach (`kdstore train --teacher A
//! --teacher B --ensemble E`). The rule is resolved once before training, and then turns the K
//! teachers' logits of a batch into what each loss sees:
//!
//! - `mean`, `camkd`, `ebkd`: as `kdstore loss --ensemble` computes them (`losses::ensemble`);
//! - `de`: the probability average with fixed weights found by differential evolution on the
//!   validation split (`de_weights`);
//! - `random`: one teacher per row, drawn from the step's own seed (RoS-KD's stochastic teacher),
//!   so a resumed run draws what an uninterrupted one would; with `unseen`, only among the
//!   teachers that did not train on the row's sample (all of them where every one did);
//! - `curriculum`: one teacher per view, fixed before training (CES-KD; see [`curriculum`]);
//! - `amal`: CE and each teacher's KD weighted per sample by AMAL's learnt weights (`amal`).
//!
//! For evaluation (agreement and KL with "the ensemble"), the teachers combine as the
//! probability average the rule trains towards: weighted by the per-sample CA-MKD/EBKD weights
//! (normalised), by the DE weights, and equally for `mean`, `random` and `curriculum` (whose
//! per-row choice exists only for training views).

use rand::{Rng, SeedableRng};
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::losses::ensemble::{self, Ensemble};
use crate::losses::{LossConfig, LossError, LossInputs, Targets};
use kdstore_core::augment::seed::purpose_seed;

/// How several teachers make the target, as `--ensemble` names it (recorded in results.json).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnsembleChoice {
    Mean,
    Camkd,
    Ebkd,
    De,
    /// RoS-KD; `unseen`: draw only among teachers whose subset left the sample out.
    Random {
        unseen: bool,
    },
    /// CES-KD: views ranked by `difficulty` (SQL over `labels`, read from the largest teacher's
    /// rows) into as many strata as teachers; the easiest stratum is taught by the smallest teacher.
    Curriculum {
        difficulty: String,
    },
    /// AMAL: per-sample weights of CE and each teacher's KD, meta-learnt (one teacher or more).
    Amal(super::amal::AmalSettings),
}

impl EnsembleChoice {
    pub const NAMES: &'static [&'static str] = &["mean", "camkd", "ebkd", "de", "random", "curriculum", "amal"];

    pub fn name(&self) -> &'static str {
        match self {
            EnsembleChoice::Mean => "mean",
            EnsembleChoice::Camkd => "camkd",
            EnsembleChoice::Ebkd => "ebkd",
            EnsembleChoice::De => "de",
            EnsembleChoice::Random { .. } => "random",
            EnsembleChoice::Curriculum { .. } => "curriculum",
            EnsembleChoice::Amal(_) => "amal",
        }
    }
}

/// The resolved rule.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetRule {
    /// One teacher: its logits as they are.
    One,
    /// `mean`, `camkd` or `ebkd`.
    Combined(Ensemble),
    /// `de`: fixed weights, one per teacher, summing to 1.
    Weighted(Vec<f64>),
    /// `random`: one teacher per row from the step's seed, derived from this seed; `allowed`, per
    /// selected view, the teachers it may draw (a bit mask; 0: all).
    Random { seed: u64, allowed: Option<Vec<u64>> },
    /// `curriculum`: the teacher of each selected view (by its index in the selection).
    Assigned(Vec<usize>),
    /// `amal`: the batch's per-sample weights come with the loss inputs (`mixing`).
    Mixed,
}

impl TargetRule {
    /// The teacher each row of a batch learns from, for the rules that pick one per row.
    /// `rows` are the batch's views (indices into the selection); `epoch` and `step` are 1-based.
    pub fn picks(&self, teachers: usize, rows: &[usize], epoch: usize, step: usize) -> Option<Vec<usize>> {
        match self {
            TargetRule::Random { seed, allowed } => {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(purpose_seed(
                    *seed,
                    &format!("ensemble-random/epoch-{epoch}/step-{step}"),
                ));
                Some(
                    rows.iter()
                        .map(|&row| match allowed.as_ref().map(|masks| masks[row]).filter(|&mask| mask != 0) {
                            Some(mask) => {
                                let nth = rng.gen_range(0..mask.count_ones() as usize);
                                (0..teachers).filter(|k| mask & (1 << k) != 0).nth(nth).expect("a set bit")
                            }
                            None => rng.gen_range(0..teachers),
                        })
                        .collect(),
                )
            }
            TargetRule::Assigned(assigned) => Some(rows.iter().map(|&row| assigned[row]).collect()),
            TargetRule::One | TargetRule::Combined(_) | TargetRule::Weighted(_) | TargetRule::Mixed => None,
        }
    }

    /// One loss's value on a batch: `inputs` without a teacher, `teachers` the K teachers' logits
    /// `[B, C]`, `picks` from [`TargetRule::picks`].
    pub fn loss(
        &self,
        config: &LossConfig,
        inputs: &LossInputs,
        teachers: &[Tensor],
        picks: Option<&[usize]>,
    ) -> Result<Tensor, LossError> {
        let with = |teacher: &Tensor| config.compute(&LossInputs { teacher: Some(teacher), ..*inputs });
        if config.teacher_free() || teachers.is_empty() {
            return config.compute(inputs);
        }
        match (self, picks) {
            (TargetRule::One, _) => with(&teachers[0]),
            (TargetRule::Combined(kind), _) => {
                ensemble::compute(config, *kind, inputs.student, teachers, inputs.targets, inputs.per_row, with)
            }
            (TargetRule::Weighted(weights), _) => {
                let temperature = ensemble::temperature_of(config).ok_or_else(|| LossError::Input {
                    loss: config.name(),
                    detail: "reads no teacher logits, so it has nothing to ensemble".into(),
                })?;
                with(&ensemble::weighted_target(teachers, weights, temperature)?)
            }
            (TargetRule::Random { .. } | TargetRule::Assigned(_), Some(picks)) => with(&picked_rows(teachers, picks)?),
            (TargetRule::Mixed, _) => mixed_kd(config, inputs, teachers),
            (TargetRule::Random { .. } | TargetRule::Assigned(_), None) => {
                unreachable!("the per-row rules always pick")
            }
        }
    }

    /// The ensemble's log-probabilities at T = 1 on evaluation rows (see the module note);
    /// `teachers` are flat `[N × classes]` logits, `labels` the rows' labels.
    pub fn evaluation_logits(
        &self,
        teachers: &[&[f32]],
        labels: &[i64],
        classes: usize,
    ) -> Result<Vec<f32>, tch::TchError> {
        let tensors: Vec<Tensor> = teachers.iter().map(|t| Tensor::from_slice(t).view([-1, classes as i64])).collect();
        let k = tensors.len();
        let weights = match self {
            TargetRule::One => return Ok(teachers[0].to_vec()),
            TargetRule::Combined(kind @ (Ensemble::Camkd | Ensemble::Ebkd)) => {
                let targets = Targets::plain(Tensor::from_slice(labels), classes as i64);
                let w = ensemble::weights(*kind, &tensors, &targets)?;
                let total = w.f_sum_dim_intlist(0, true, Kind::Float)?;
                w / total
            }
            TargetRule::Weighted(weights) => Tensor::from_slice(weights)
                .to_kind(Kind::Float)
                .view([k as i64, 1])
                .expand([k as i64, labels.len() as i64], false),
            TargetRule::Combined(Ensemble::Mean)
            | TargetRule::Random { .. }
            | TargetRule::Assigned(_)
            | TargetRule::Mixed => {
                Tensor::full([k as i64, labels.len() as i64], 1.0 / k as f64, (Kind::Float, tch::Device::Cpu))
            }
        };
        tch::no_grad(|| {
            let probabilities = Tensor::f_stack(&tensors, 0)?.f_softmax(-1, Kind::Float)?;
            let mixture = (probabilities * weights.unsqueeze(-1)).f_sum_dim_intlist(0, false, Kind::Float)?;
            Vec::<f32>::try_from(mixture.f_log()?.flatten(0, -1))
        })
    }
}

/// AMAL's loss: `(1/B) Σ_b [λ_b0·CE_b + Σ_m λ_b,m+1·T²·KL(p_t,m ‖ p_s)_b]` at kd's temperature.
fn mixed_kd(config: &LossConfig, inputs: &LossInputs, teachers: &[Tensor]) -> Result<Tensor, LossError> {
    let input = |detail: &str| LossError::Input { loss: config.name(), detail: detail.into() };
    let LossConfig::Kd(kd) = config else {
        return Err(input("--ensemble amal weighs CE and each teacher's KD: use --loss kd"));
    };
    let mixing = inputs.mixing.ok_or_else(|| input("--ensemble amal needs its per-sample weights"))?;
    let mut rows = crate::losses::ce::ce_rows(inputs.student, inputs.targets)? * mixing.select(1, 0);
    for (m, teacher) in teachers.iter().enumerate() {
        rows += crate::losses::kd::kd_rows(inputs.student, teacher, kd.temperature)? * mixing.select(1, m as i64 + 1);
    }
    Ok(if inputs.per_row { rows } else { crate::losses::batch_mean(&rows) })
}

/// Row b of teacher `picks[b]`, for every row: `[B, C]`.
fn picked_rows(teachers: &[Tensor], picks: &[usize]) -> Result<Tensor, tch::TchError> {
    let stacked = Tensor::f_stack(teachers, 0)?;
    let (b, c) = (stacked.size()[1], stacked.size()[2]);
    let index = Tensor::from_slice(&picks.iter().map(|&k| k as i64).collect::<Vec<_>>())
        .to_device(stacked.device())
        .view([1, b, 1])
        .expand([1, b, c], false);
    stacked.f_gather(0, &index, false)?.f_squeeze_dim(0)
}

/// CES-KD's assignment, our construction (the paper publishes no code): the selected views, each
/// `keyed` by (difficulty, view id) in selection order, are ranked by difficulty (ascending; ties
/// by view id) and cut into K strata of equal size (the
/// first `N mod K` one view larger); stratum s is taught by `by_size[s]`, the teachers ordered
/// from the smallest to the largest, so the easiest views learn from the smallest teacher.
pub fn curriculum(keyed: &[(f64, i64)], by_size: &[usize]) -> Vec<usize> {
    let mut ranked: Vec<(f64, i64, usize)> =
        keyed.iter().enumerate().map(|(index, &(value, view_id))| (value, view_id, index)).collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (n, k) = (ranked.len(), by_size.len());
    let mut assigned = vec![0; n];
    for (rank, &(_, _, index)) in ranked.iter().enumerate() {
        assigned[index] = by_size[stratum(rank, n, k)];
    }
    assigned
}

/// The stratum of the view at `rank` among `n` cut into `k` near-equal strata.
fn stratum(rank: usize, n: usize, k: usize) -> usize {
    let (size, larger) = (n / k, n % k);
    let boundary = larger * (size + 1);
    if rank < boundary {
        rank / (size + 1)
    } else {
        larger + (rank - boundary) / size.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strata_are_near_equal_and_cover_every_rank() {
        let counts = |n: usize, k: usize| {
            let mut counts = vec![0; k];
            (0..n).for_each(|rank| counts[stratum(rank, n, k)] += 1);
            counts
        };
        assert_eq!(counts(10, 3), [4, 3, 3]);
        assert_eq!(counts(9, 3), [3, 3, 3]);
        assert_eq!(counts(2, 3), [1, 1, 0]);
        assert!((0..100).all(|r| stratum(r, 100, 4) == r / 25));
    }

    #[test]
    fn the_easiest_views_go_to_the_smallest_teacher() {
        // Teacher 1 is the smallest, then 0; views 3 and 5 tie and go by view id.
        let keyed = [(0.9, 0), (0.1, 1), (0.5, 2), (0.2, 3), (0.7, 4), (0.2, 5)];
        assert_eq!(curriculum(&keyed, &[1, 0]), [0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn random_picks_come_from_the_steps_own_seed() {
        let rule = TargetRule::Random { seed: 5, allowed: None };
        let rows: Vec<usize> = (0..64).collect();
        let first = rule.picks(3, &rows, 2, 7).unwrap();
        assert_eq!(Some(first.clone()), rule.picks(3, &rows, 2, 7));
        assert_ne!(Some(first.clone()), rule.picks(3, &rows, 2, 8));
        assert!((0..3).all(|k| first.contains(&k)) && first.iter().all(|&k| k < 3));
        assert_eq!(TargetRule::Combined(Ensemble::Mean).picks(3, &rows, 1, 1), None);
        // Row r may draw teacher 2 only when r is even, and any teacher when its mask is 0.
        let masks: Vec<u64> = rows.iter().map(|r| if r % 2 == 0 { 0b100 } else { 0 }).collect();
        let unseen = TargetRule::Random { seed: 5, allowed: Some(masks) }.picks(3, &rows, 2, 7).unwrap();
        assert!(unseen.iter().step_by(2).all(|&k| k == 2), "{unseen:?}");
        assert!(unseen.iter().skip(1).step_by(2).any(|&k| k != 2), "{unseen:?}");
    }

    #[test]
    fn picked_rows_take_each_row_from_its_teacher() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
        let b = Tensor::from_slice(&[5.0f32, 6.0, 7.0, 8.0]).view([2, 2]);
        let picked = picked_rows(&[a, b], &[1, 0]).unwrap();
        assert_eq!(Vec::<f32>::try_from(picked.flatten(0, -1)).unwrap(), [5.0, 6.0, 3.0, 4.0]);
    }

    #[test]
    fn evaluation_mixes_probabilities_by_the_rules_weights() {
        let a = [2.0f32, 0.0, 0.0, 2.0];
        let b = [0.0f32, 2.0, 0.0, 2.0];
        let p = |z: [f32; 2]| {
            let e = [z[0].exp(), z[1].exp()];
            [e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1])]
        };
        let (pa, pb) = (p([2.0, 0.0]), p([0.0, 2.0]));
        let mean = TargetRule::Combined(Ensemble::Mean).evaluation_logits(&[&a, &b], &[0, 1], 2).unwrap();
        assert!((mean[0].exp() - (pa[0] + pb[0]) / 2.0).abs() < 1e-6 && (mean[0].exp() - 0.5).abs() < 1e-6);
        let weighted = TargetRule::Weighted(vec![0.75, 0.25]).evaluation_logits(&[&a, &b], &[0, 1], 2).unwrap();
        assert!((weighted[0].exp() - (0.75 * pa[0] + 0.25 * pb[0])).abs() < 1e-6);
        let camkd = TargetRule::Combined(Ensemble::Camkd).evaluation_logits(&[&a, &b], &[0, 1], 2).unwrap();
        let total: f32 = camkd[..2].iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6, "the weighted mixture is a distribution: {camkd:?}");
        assert!(camkd[0].exp() > 0.5, "teacher a is right on row 0 and gets the larger weight: {camkd:?}");
        assert_eq!(TargetRule::One.evaluation_logits(&[&a, &b], &[0, 1], 2).unwrap(), a);
    }
}
