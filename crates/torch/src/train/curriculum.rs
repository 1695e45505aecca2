//! Curriculum batches (`kdstore train --curriculum EXPR --pacing NAME`): the training samples
//! ordered by a stored difficulty — EXPR, SQL over `labels`, on each sample's identity view for the
//! run's first teacher; with `--curriculum-per-view`, every selected view by its own value — easiest first, optionally with the classes interleaved (`--class-balanced`,
//! [`balance`]), and `--anti-curriculum` reversing the result, in that order as Wu et al.'s
//! `main_wo_test.py` does; at every step the
//! pacing function admits the easiest prefix of that order, and the step's batch is drawn from the
//! prefix (without replacement, at least a batch's worth of samples) and one of each drawn
//! sample's selected views (per view: the drawn views themselves), all from the step's own seed. An epoch keeps the number of steps of
//! plain training (⌈samples / batch⌉), so runs with and without a curriculum compare at equal
//! steps, and a resumed run draws what an uninterrupted one would.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use super::batches::{BatchPlan, SampleViews};
use kdstore_core::augment::seed::purpose_seed;
use kdstore_core::pacing::Pacing;
use kdstore_core::select::SelectedView;

/// A curriculum as `train` takes it (recorded in results.json).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurriculumConfig {
    /// The difficulty: an SQL expression over `labels`.
    pub difficulty: String,
    /// Hardest first.
    pub anti: bool,
    /// Interleave the classes, easiest of each first.
    pub class_balanced: bool,
    /// Order and admit the views by their own difficulty instead of the samples by their identity
    /// view's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub per_view: bool,
    pub pacing: Pacing,
}

/// The samples (or views) in curriculum order and the pacing that admits them.
pub struct Curriculum {
    /// What the pacing admits, easiest first: each a range of `views`, a sample's selected views,
    /// or one view with `per_view`.
    order: Vec<(u32, u32)>,
    /// The units' views (indices into the selection), unit after unit in `order`.
    views: Vec<u32>,
    pacing: Pacing,
    steps_per_epoch: usize,
    total_steps: usize,
}

/// Views read at a time while a curriculum sets up.
const READ_CHUNK: usize = 4096;

impl Curriculum {
    /// Orders `by_sample` by the difficulty of each sample's identity view, or with `per_view` the
    /// views by their own; ties go by sample id, then view id. `difficulty` is each selected view's
    /// value (in selection order) and `read` gives the selected views at some indices: a sample's
    /// identity view each, or with `per_view` every view, a chunk at a time.
    pub fn new(
        config: &CurriculumConfig,
        by_sample: &[SampleViews],
        read: impl Fn(&[usize]) -> Result<Vec<SelectedView>, String>,
        difficulty: &[Option<f64>],
        batch_size: usize,
        epochs: usize,
    ) -> Result<Curriculum, String> {
        // The view whose difficulty each unit takes.
        let keys: Vec<usize> = match config.per_view {
            true => {
                let mut indices: Vec<usize> = by_sample.iter().flat_map(SampleViews::all).collect();
                indices.sort_unstable();
                indices
            }
            false => {
                if let Some(sample) = by_sample.iter().find(|s| s.identity.is_none()) {
                    let any = match sample.others.first() {
                        Some(&i) => read(&[i as usize])?[0].sample_id,
                        None => -1,
                    };
                    return Err(format!("sample {any} has no identity view among the selected views, and its difficulty is its identity view's: select the identity views too, or order by each view's own difficulty (--curriculum-per-view)"));
                }
                by_sample.iter().filter_map(|s| s.identity).collect()
            }
        };
        let mut keyed = Vec::with_capacity(keys.len());
        for (chunk_index, chunk) in keys.chunks(READ_CHUNK).enumerate() {
            for (offset, view) in read(chunk)?.into_iter().enumerate() {
                let value = difficulty_of(&view, difficulty[chunk[offset]])?;
                keyed.push((value, (view.sample_id, view.view_id), chunk_index * READ_CHUNK + offset, view.label));
            }
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let labels: Vec<i64> = keyed.iter().map(|k| k.3).collect();
        let mut positions: Vec<usize> = keyed.into_iter().map(|(_, _, index, _)| index).collect();
        if config.class_balanced {
            positions = balance(&positions, &labels);
        }
        if config.anti {
            positions.reverse();
        }
        let mut order = Vec::with_capacity(positions.len());
        let mut views = Vec::with_capacity(if config.per_view { positions.len() } else { keys.len() });
        for unit in positions {
            let start = views.len() as u32;
            match config.per_view {
                true => views.push(keys[unit] as u32),
                false => views.extend(by_sample[unit].all().map(|i| i as u32)),
            }
            order.push((start, views.len() as u32));
        }
        let steps_per_epoch = by_sample.len().div_ceil(batch_size.max(1));
        Ok(Curriculum {
            order,
            views,
            pacing: config.pacing.clone(),
            steps_per_epoch,
            total_steps: steps_per_epoch * epochs,
        })
    }

    /// The batches of `epoch` (1-based).
    pub fn epoch_plan(&self, batch_size: usize, seed: u64, epoch: usize) -> Vec<BatchPlan> {
        let n = self.order.len();
        let batch = batch_size.max(1).min(n);
        (0..self.steps_per_epoch)
            .map(|k| {
                let step = (epoch - 1) * self.steps_per_epoch + k;
                let admitted = self.pacing.admitted(step, self.total_steps, n).max(batch);
                let mut rng =
                    rand_chacha::ChaCha8Rng::seed_from_u64(purpose_seed(seed, &format!("curriculum/step-{step}")));
                self.order[..admitted]
                    .choose_multiple(&mut rng, batch)
                    .map(|&(start, end)| {
                        *self.views[start as usize..end as usize].choose(&mut rng).expect("samples have views") as usize
                    })
                    .collect()
            })
            .collect()
    }
}

/// A view's stored difficulty (`value`, None when it has none), which must be finite.
pub fn difficulty_of(view: &SelectedView, value: Option<f64>) -> Result<f64, String> {
    match value {
        Some(value) if value.is_finite() => Ok(value),
        Some(value) => Err(format!(
            "view {} (sample {}, recipe {}) has a difficulty of {value}",
            view.view_id, view.sample_id, view.recipe
        )),
        None => {
            Err(format!("view {} (sample {}, recipe {}) has no difficulty", view.view_id, view.sample_id, view.recipe))
        }
    }
}

/// Hacohen & Weinshall's `balance_order`, in Wu et al.'s version that also takes classes of
/// unequal size: round g takes the g-th easiest item of every class that has one, in their order
/// of difficulty, so that every prefix holds the classes nearly equally. `labels[i]` is the class
/// of `order[i]`.
pub fn balance(order: &[usize], labels: &[i64]) -> Vec<usize> {
    let mut by_class: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (position, &label) in labels.iter().enumerate() {
        by_class.entry(label).or_default().push(position);
    }
    let rounds = by_class.values().map(Vec::len).max().unwrap_or(0);
    let mut balanced = Vec::with_capacity(order.len());
    for round in 0..rounds {
        let mut group: Vec<usize> = by_class.values().filter_map(|positions| positions.get(round).copied()).collect();
        group.sort_unstable();
        balanced.extend(group.into_iter().map(|position| order[position]));
    }
    balanced
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::test_view as view;

    /// Reads views by index from `views`, as the selection file does.
    fn reader(views: &[SelectedView]) -> impl Fn(&[usize]) -> Result<Vec<SelectedView>, String> + '_ {
        |indices| Ok(indices.iter().map(|&i| views[i].clone()).collect())
    }

    /// 20 samples, each an identity view (id 2s) and a jitter view (2s + 1); the identity views'
    /// difficulty is s, the jitter views have none.
    fn fixture() -> (Vec<SelectedView>, Vec<SampleViews>, Vec<Option<f64>>) {
        let views: Vec<SelectedView> =
            (0..20).flat_map(|s| [view(2 * s, s, "identity"), view(2 * s + 1, s, "jitter")]).collect();
        let by_sample = super::super::batches::group_by_sample(&views);
        let difficulty = views.iter().map(|v| (&*v.recipe == "identity").then_some(v.sample_id as f64)).collect();
        (views, by_sample, difficulty)
    }

    #[test]
    fn early_steps_draw_only_the_easiest_samples_and_the_last_all() {
        let (views, by_sample, difficulty) = fixture();
        let config = CurriculumConfig {
            difficulty: "teacher_loss".into(),
            anti: false,
            class_balanced: false,
            per_view: false,
            pacing: Pacing::parse("linear", &["a=0.5".into(), "b=0.2".into()]).unwrap(),
        };
        let curriculum = Curriculum::new(&config, &by_sample, reader(&views), &difficulty, 4, 2).unwrap();
        let first = curriculum.epoch_plan(4, 1, 1);
        assert_eq!(first.len(), 5, "⌈20 / 4⌉ steps per epoch");
        let samples = |plan: &BatchPlan| plan.iter().map(|&v| views[v].sample_id).collect::<Vec<_>>();
        assert!(samples(&first[0]).iter().all(|&s| s < 4), "step 0 admits b·N = 4: {:?}", samples(&first[0]));
        let mut distinct = samples(&first[0]);
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "drawn without replacement");
        assert_eq!(first, curriculum.epoch_plan(4, 1, 1), "from the steps' own seeds");
        let anti =
            Curriculum::new(&CurriculumConfig { anti: true, ..config }, &by_sample, reader(&views), &difficulty, 4, 2)
                .unwrap();
        assert!(samples(&anti.epoch_plan(4, 1, 1)[0]).iter().all(|&s| s >= 16));
    }

    #[test]
    fn class_balancing_interleaves_the_classes_easiest_first() {
        // Difficulty order of items 10..17 with classes a a a b a c b c (as positions 0..7).
        let order = [10, 11, 12, 13, 14, 15, 16, 17];
        let labels = [0, 0, 0, 1, 0, 2, 1, 2];
        // Round 0: first of each class (positions 0, 3, 5), round 1: (1, 6, 7), then (2), then (4).
        assert_eq!(balance(&order, &labels), [10, 13, 15, 11, 16, 17, 12, 14]);
    }

    #[test]
    fn every_sample_needs_its_identity_view() {
        let (views, _, difficulty) = fixture();
        let jitter_only: Vec<SelectedView> = views.into_iter().filter(|v| &*v.recipe == "jitter").collect();
        let by_sample = super::super::batches::group_by_sample(&jitter_only);
        let config = CurriculumConfig {
            difficulty: "x".into(),
            anti: false,
            class_balanced: false,
            per_view: false,
            pacing: Pacing::parse("root", &[]).unwrap(),
        };
        let error = Curriculum::new(&config, &by_sample, reader(&jitter_only), &difficulty, 4, 1).err().unwrap();
        assert!(error.contains("sample 0 has no identity view"), "{error}");
    }

    #[test]
    fn a_view_without_a_finite_difficulty_is_named() {
        let view = view(7, 3, "jitter");
        assert_eq!(difficulty_of(&view, Some(0.5)), Ok(0.5));
        assert_eq!(difficulty_of(&view, None).unwrap_err(), "view 7 (sample 3, recipe jitter) has no difficulty");
        assert!(difficulty_of(&view, Some(f64::NAN)).unwrap_err().contains("has a difficulty of NaN"));
    }

    #[test]
    fn per_view_orders_every_view_by_its_own_difficulty() {
        let (views, by_sample, _) = fixture();
        // The jitter views (odd ids) are the easiest: difficulty −id for them, id for identity views.
        let difficulty: Vec<Option<f64>> = views
            .iter()
            .map(|v| Some(if v.view_id % 2 == 1 { -(v.view_id as f64) } else { v.view_id as f64 }))
            .collect();
        let config = CurriculumConfig {
            difficulty: "x".into(),
            anti: false,
            class_balanced: false,
            per_view: true,
            pacing: Pacing::parse("linear", &["a=0.5".into(), "b=0.1".into()]).unwrap(),
        };
        let curriculum = Curriculum::new(&config, &by_sample, reader(&views), &difficulty, 4, 2).unwrap();
        let first = &curriculum.epoch_plan(4, 1, 1)[0];
        // b·N = 4 of the 40 views: the jitter views of samples 16..19.
        assert!(first.iter().all(|&v| &*views[v].recipe == "jitter" && views[v].sample_id >= 16), "{first:?}");
        assert_eq!(curriculum.epoch_plan(4, 1, 1).len(), 5, "still ⌈samples / batch⌉ steps");
    }
}
