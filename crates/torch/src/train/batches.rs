//! An epoch's batches: which views go together (a pure function of the epoch's seed), and their
//! inputs and teacher targets, prepared on a CPU thread while the model trains on the batch before
//! (one batch ahead), so that replay and the GPU work at the same time; or, when libtorch's threads
//! fill every core, on libtorch's own team between two steps ([`Preparation`]).

use std::collections::HashMap;
use std::sync::mpsc;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::data::TrainData;
use super::group_batches::GroupMix;
use super::{TrainError, ViewsPerEpoch};
use crate::openmp::Team;
use kdstore_core::augment::seed::purpose_seed;
use kdstore_core::select::{Replayer, SelectedView};
use kdstore_core::view_file::Rows;

/// The views of one batch, as indices into the selected views, in order.
pub type BatchPlan = Vec<usize>;

/// An epoch's batches. Each epoch draws from its own seed (the run's seed and the epoch), so an
/// epoch's batches do not depend on the epochs before it and a resumed run draws what an
/// uninterrupted one would. With `group` = Some(k), each sample brings k views next to each other,
/// its identity view first (DLKD's layout), and `batch_size` counts samples. With `mix`, every
/// batch holds several groups (subjects) of samples.
pub fn epoch_plan(
    by_sample: &[SampleViews],
    views: ViewsPerEpoch,
    group: Option<usize>,
    mix: Option<&GroupMix>,
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<BatchPlan> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(purpose_seed(seed, &format!("batches/epoch-{epoch}")));
    let mut units: Vec<Vec<usize>> = match (group, views) {
        (Some(k), _) => by_sample
            .iter()
            .map(|sample| {
                let identity = sample.identity.expect("grouped plans need every sample's identity view");
                let mut others: Vec<usize> =
                    sample.others.choose_multiple(&mut rng, k - 1).map(|&i| i as usize).collect();
                others.shuffle(&mut rng);
                std::iter::once(identity).chain(others).collect()
            })
            .collect(),
        (None, ViewsPerEpoch::All) => by_sample.iter().flat_map(|s| s.all()).map(|v| vec![v]).collect(),
        (None, ViewsPerEpoch::OnePerSample) => by_sample
            .iter()
            .map(|s| vec![*s.all().collect::<Vec<_>>().choose(&mut rng).expect("samples have views")])
            .collect(),
    };
    units.shuffle(&mut rng);
    match mix {
        Some(mix) => mix.batches(units, batch_size, &mut rng),
        None => units.chunks(batch_size.max(1)).map(|chunk| chunk.concat()).collect(),
    }
}

/// The selected views of one training sample.
#[derive(Debug, Clone, Default)]
pub struct SampleViews {
    pub identity: Option<usize>,
    /// As `u32`: half the memory of a ten-million-view selection's index.
    pub others: Vec<u32>,
}

impl SampleViews {
    pub(super) fn all(&self) -> impl Iterator<Item = usize> + '_ {
        self.identity.iter().copied().chain(self.others.iter().map(|&i| i as usize))
    }
}

/// The views of each sample, samples in id order, views in selection order.
#[cfg(test)]
pub fn group_by_sample(views: &[SelectedView]) -> Vec<SampleViews> {
    let mut grouping = SampleGrouping::default();
    for (index, view) in views.iter().enumerate() {
        grouping.add(index, view);
    }
    grouping.finish()
}

/// [`group_by_sample`] a view at a time (the views need not be in memory together).
#[derive(Default)]
pub struct SampleGrouping {
    groups: std::collections::BTreeMap<i64, SampleViews>,
}

impl SampleGrouping {
    /// Adds the selected view at `index`; views come in selection order.
    pub fn add(&mut self, index: usize, view: &SelectedView) {
        let group = self.groups.entry(view.sample_id).or_default();
        if &*view.recipe == "identity" && group.identity.is_none() {
            group.identity = Some(index);
        } else {
            group
                .others
                .push(u32::try_from(index).expect("selections hold fewer than 2^32 views (checked on loading)"));
        }
    }

    pub fn finish(self) -> Vec<SampleViews> {
        let mut groups: Vec<SampleViews> = self.groups.into_values().collect();
        groups.iter_mut().for_each(|group| group.others.shrink_to_fit());
        groups
    }
}

/// One batch, ready for the model: normalised inputs, and the stored teacher logits (flat, one
/// vector per teacher of the run) and features (absent when the teachers run online).
pub struct Batch {
    pub views: BatchPlan,
    /// The views of `views`, read from the selection.
    pub selected: Vec<SelectedView>,
    pub inputs: Vec<f32>,
    pub teacher_logits: Option<Vec<Vec<f32>>>,
    pub teacher_features: Option<Vec<f32>>,
}

/// Where a batch's rows come from.
pub struct BatchSource<'a> {
    pub data: &'a TrainData,
    pub replayer: &'a Replayer<'a>,
    /// Every view rendered once (`--preload`), in selection order.
    pub preloaded: Option<&'a [f32]>,
    /// Whether the batch carries the stored teacher logits (not with `--online` or `--co-train`).
    pub stored_logits: bool,
    pub stored_features: Option<&'a HashMap<i64, Vec<f32>>>,
    /// Where batches are prepared: on a worker thread, one ahead, or on libtorch's team.
    pub preparation: Preparation,
}

/// Where a run's batches are prepared.
#[derive(Clone, Copy)]
pub enum Preparation {
    /// On a worker thread, one batch ahead of the model: replay runs beside the step on a core that
    /// libtorch leaves free, or while the step waits for the GPU.
    Ahead,
    /// Just before each step, on libtorch's OpenMP team of `threads` (libtorch's threads fill every
    /// core, so a worker thread would take its CPU from a team member in mid-operation).
    OnTeam { team: Team, threads: usize },
}

/// The environment variable that overrides [`Preparation::for_run`]'s choice: `ahead` or `team`.
pub const PREPARATION_VARIABLE: &str = "KDSTORE_PREPARE_BATCHES";

impl Preparation {
    /// The run's choice: on the team when training on the CPU with a libtorch thread per core (and
    /// the team is found), otherwise ahead; `KDSTORE_PREPARE_BATCHES` = `ahead` or `team` says.
    pub fn for_run(device: tch::Device) -> Result<Preparation, TrainError> {
        let threads = tch::get_num_threads().max(1) as usize;
        let setting = |detail: String| TrainError::Config(format!("{PREPARATION_VARIABLE}: {detail}"));
        match std::env::var(PREPARATION_VARIABLE).as_deref() {
            Ok("ahead") => Ok(Preparation::Ahead),
            Ok("team") => Team::find()
                .map(|team| Preparation::OnTeam { team, threads })
                .ok_or_else(|| setting("libtorch's OpenMP runtime (libgomp) is not loaded in this process".into())),
            Ok(other) => Err(setting(format!("'{other}' is neither 'ahead' nor 'team' (unset: chosen per run)"))),
            Err(_) => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                Ok(match Team::find() {
                    Some(team) if device == tch::Device::Cpu && threads >= cores => {
                        Preparation::OnTeam { team, threads }
                    }
                    _ => Preparation::Ahead,
                })
            }
        }
    }

    /// Replays a batch's views where this preparation says: on the calling thread, or shared
    /// over the team.
    fn render(&self, data: &TrainData, replayer: &Replayer, views: &[&SelectedView]) -> Result<Vec<f32>, TrainError> {
        match *self {
            Preparation::Ahead => data.render(replayer, views),
            Preparation::OnTeam { team, threads } => data.render_on_team(replayer, views, &team, threads),
        }
    }
}

impl BatchSource<'_> {
    pub fn batch(&self, plan: BatchPlan) -> Result<Batch, TrainError> {
        let sample_len = self.data.samples.sample_len;
        let Rows { views: selected, logits } = self.data.rows(&plan)?;
        let views: Vec<&SelectedView> = selected.iter().collect();
        let inputs = match self.preloaded {
            Some(all) => plan.iter().flat_map(|&i| &all[i * sample_len..(i + 1) * sample_len]).copied().collect(),
            None => self.preparation.render(self.data, self.replayer, &views)?,
        };
        let teacher_logits = self.stored_logits.then_some(logits);
        let teacher_features =
            self.stored_features.map(|stored| views.iter().flat_map(|v| stored[&v.view_id].iter().copied()).collect());
        Ok(Batch { views: plan, selected, inputs, teacher_logits, teacher_features })
    }

    /// Prepares the planned batches as `preparation` says and hands each to `train` in order. The
    /// first error, from either side, stops both and is returned.
    pub fn run(
        &self,
        plans: Vec<BatchPlan>,
        mut train: impl FnMut(Batch) -> Result<(), TrainError>,
    ) -> Result<(), TrainError> {
        if let Preparation::OnTeam { .. } = self.preparation {
            return plans.into_iter().try_for_each(|plan| train(self.batch(plan)?));
        }
        std::thread::scope(|scope| {
            let (sender, receiver) = mpsc::sync_channel::<Result<Batch, TrainError>>(1);
            scope.spawn(move || {
                for plan in plans {
                    let batch = self.batch(plan);
                    let failed = batch.is_err();
                    if sender.send(batch).is_err() || failed {
                        return;
                    }
                }
            });
            for batch in receiver {
                train(batch?)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<SampleViews> {
        (0..10)
            .map(|s| SampleViews { identity: Some(s * 5), others: (1..5).map(|k| (s * 5 + k) as u32).collect() })
            .collect()
    }

    #[test]
    fn one_view_per_sample_each_epoch_from_the_epochs_own_seed() {
        let by_sample = samples();
        let plan = epoch_plan(&by_sample, ViewsPerEpoch::OnePerSample, None, None, 4, 7, 3);
        assert_eq!(plan.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let mut samples_seen: Vec<usize> = plan.concat().iter().map(|v| v / 5).collect();
        samples_seen.sort();
        assert_eq!(samples_seen, (0..10).collect::<Vec<_>>());
        assert_eq!(plan, epoch_plan(&by_sample, ViewsPerEpoch::OnePerSample, None, None, 4, 7, 3));
        assert_ne!(plan, epoch_plan(&by_sample, ViewsPerEpoch::OnePerSample, None, None, 4, 7, 4));
        let all = epoch_plan(&by_sample, ViewsPerEpoch::All, None, None, 8, 7, 3).concat();
        assert_eq!(all.len(), 50);
    }

    #[test]
    fn grouped_plans_put_the_identity_view_first_and_count_samples() {
        let plan = epoch_plan(&samples(), ViewsPerEpoch::OnePerSample, Some(4), None, 3, 1, 1);
        assert_eq!(plan.iter().map(Vec::len).collect::<Vec<_>>(), [12, 12, 12, 4]);
        for group in plan.concat().chunks(4) {
            let sample = group[0] / 5;
            assert_eq!(group[0], sample * 5, "identity first: {group:?}");
            assert!(group[1..].iter().all(|v| v / 5 == sample && v % 5 != 0), "{group:?}");
            let mut distinct = group.to_vec();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 4, "distinct views: {group:?}");
        }
    }
}
