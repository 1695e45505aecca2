//! Curriculum batches (`kdstore train --curriculum EXPR --pacing NAME`): the training samples
//! ordered by a stored difficulty — EXPR, SQL over `labels`, on each sample's identity view for the
//! run's first teacher — easiest first (`--anti-curriculum`: hardest first); at every step the
//! pacing function admits the easiest prefix of that order, and the step's batch is drawn from the
//! prefix (without replacement, at least a batch's worth of samples) and one of each drawn
//! sample's selected views, all from the step's own seed. An epoch keeps the number of steps of
//! plain training (⌈samples / batch⌉), so runs with and without a curriculum compare at equal
//! steps, and a resumed run draws what an uninterrupted one would.

use std::collections::HashMap;

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
    pub pacing: Pacing,
}

/// The samples in curriculum order and the pacing that admits them.
pub struct Curriculum {
    /// Indices into the run's samples (`group_by_sample`'s order), easiest first.
    order: Vec<usize>,
    pacing: Pacing,
    steps_per_epoch: usize,
    total_steps: usize,
}

impl Curriculum {
    /// Orders `by_sample` by the difficulty of each sample's identity view (`difficulty`, by view
    /// id); ties go by sample id.
    pub fn new(
        config: &CurriculumConfig,
        by_sample: &[SampleViews],
        views: &[SelectedView],
        difficulty: &HashMap<i64, f64>,
        batch_size: usize,
        epochs: usize,
    ) -> Result<Curriculum, String> {
        let mut keyed = Vec::with_capacity(by_sample.len());
        for (index, sample) in by_sample.iter().enumerate() {
            let view = sample.identity.map(|i| &views[i]).ok_or_else(|| {
                let any = sample.others.first().map_or(-1, |&i| views[i].sample_id);
                format!("sample {any} has no identity view among the selected views, and its difficulty is its identity view's: select the identity views too")
            })?;
            let value =
                *difficulty.get(&view.view_id).ok_or_else(|| format!("view {} has no difficulty", view.view_id))?;
            if !value.is_finite() {
                return Err(format!("sample {} has a difficulty of {value}", view.sample_id));
            }
            keyed.push((if config.anti { -value } else { value }, view.sample_id, index));
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let steps_per_epoch = by_sample.len().div_ceil(batch_size.max(1));
        Ok(Curriculum {
            order: keyed.into_iter().map(|(_, _, index)| index).collect(),
            pacing: config.pacing.clone(),
            steps_per_epoch,
            total_steps: steps_per_epoch * epochs,
        })
    }

    /// The batches of `epoch` (1-based).
    pub fn epoch_plan(&self, by_sample: &[SampleViews], batch_size: usize, seed: u64, epoch: usize) -> Vec<BatchPlan> {
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
                    .map(|&sample| {
                        let views: Vec<usize> = by_sample[sample].all().collect();
                        *views.choose(&mut rng).expect("samples have views")
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(view_id: i64, sample_id: i64, recipe: &str) -> SelectedView {
        SelectedView {
            view_id,
            sample_id,
            recipe: recipe.into(),
            seed: 0,
            input_hash: 0,
            label: 0,
            partner_id: None,
            partner_label: 0,
            lam: 1.0,
            teacher_logits: vec![],
        }
    }

    /// 20 samples, each an identity view (id 2s) and a jitter view (2s + 1); difficulty = s.
    fn fixture() -> (Vec<SelectedView>, Vec<SampleViews>, HashMap<i64, f64>) {
        let views: Vec<SelectedView> =
            (0..20).flat_map(|s| [view(2 * s, s, "identity"), view(2 * s + 1, s, "jitter")]).collect();
        let by_sample = super::super::batches::group_by_sample(&views);
        let difficulty = (0..20).map(|s| (2 * s, s as f64)).collect();
        (views, by_sample, difficulty)
    }

    #[test]
    fn early_steps_draw_only_the_easiest_samples_and_the_last_all() {
        let (views, by_sample, difficulty) = fixture();
        let config = CurriculumConfig {
            difficulty: "teacher_loss".into(),
            anti: false,
            pacing: Pacing::parse("linear", &["a=0.5".into(), "b=0.2".into()]).unwrap(),
        };
        let curriculum = Curriculum::new(&config, &by_sample, &views, &difficulty, 4, 2).unwrap();
        let first = curriculum.epoch_plan(&by_sample, 4, 1, 1);
        assert_eq!(first.len(), 5, "⌈20 / 4⌉ steps per epoch");
        let samples = |plan: &BatchPlan| plan.iter().map(|&v| views[v].sample_id).collect::<Vec<_>>();
        assert!(samples(&first[0]).iter().all(|&s| s < 4), "step 0 admits b·N = 4: {:?}", samples(&first[0]));
        let mut distinct = samples(&first[0]);
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "drawn without replacement");
        assert_eq!(first, curriculum.epoch_plan(&by_sample, 4, 1, 1), "from the steps' own seeds");
        let anti =
            Curriculum::new(&CurriculumConfig { anti: true, ..config }, &by_sample, &views, &difficulty, 4, 2).unwrap();
        assert!(samples(&anti.epoch_plan(&by_sample, 4, 1, 1)[0]).iter().all(|&s| s >= 16));
    }

    #[test]
    fn every_sample_needs_its_identity_view() {
        let (views, _, difficulty) = fixture();
        let jitter_only: Vec<SelectedView> = views.into_iter().filter(|v| v.recipe == "jitter").collect();
        let by_sample = super::super::batches::group_by_sample(&jitter_only);
        let config =
            CurriculumConfig { difficulty: "x".into(), anti: false, pacing: Pacing::parse("root", &[]).unwrap() };
        let error = Curriculum::new(&config, &by_sample, &jitter_only, &difficulty, 4, 1).err().unwrap();
        assert!(error.contains("sample 0 has no identity view"), "{error}");
    }
}
