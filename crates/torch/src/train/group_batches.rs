//! Batches that mix groups (`kdstore train --groups-per-batch G`, the subjects of HAPT): every
//! batch holds G groups with about `batch / G` samples each, so that a loss across groups (`mmd`)
//! sees several in every step. Within an epoch each group's samples come in the epoch's shuffled
//! order; each batch draws its G groups at random among those with samples left (fewer when fewer
//! are left, so the epoch's last batches may hold one group) and takes `batch / G` from each (the
//! first `batch mod G` take one more), all from the epoch's seed. Every sample is used once per
//! epoch, as in plain batches.

use std::collections::{BTreeMap, VecDeque};

use rand::seq::SliceRandom;

use super::batches::BatchPlan;
use kdstore_core::select::SelectedView;

/// The group of every selected view and the groups per batch.
#[derive(Debug, Clone)]
pub struct GroupMix {
    pub per_batch: usize,
    /// By the view's index in the selection.
    group_of_view: Vec<i64>,
}

impl GroupMix {
    /// Batches of `per_batch` groups, `group_of_view` the group of each selected view
    /// ([`group_of`]).
    pub fn new(group_of_view: Vec<i64>, per_batch: usize) -> Result<GroupMix, String> {
        if per_batch < 2 {
            return Err(format!(
                "--groups-per-batch {per_batch}: batches of one group have nothing to align; use at least 2"
            ));
        }
        let mut distinct = group_of_view.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 2 {
            return Err(format!(
                "the training views come from {} group, and batches that mix groups need at least 2",
                distinct.len()
            ));
        }
        Ok(GroupMix { per_batch, group_of_view })
    }

    /// The group of a selected view.
    pub fn group(&self, view: usize) -> i64 {
        self.group_of_view[view]
    }

    /// An epoch's batches from its units (each a sample's views, already in the epoch's order).
    pub fn batches(&self, units: Vec<Vec<usize>>, batch_size: usize, rng: &mut impl rand::Rng) -> Vec<BatchPlan> {
        let mut by_group: BTreeMap<i64, VecDeque<Vec<usize>>> = BTreeMap::new();
        for unit in units {
            by_group.entry(self.group(unit[0])).or_default().push_back(unit);
        }
        let mut plans = Vec::new();
        loop {
            let live: Vec<i64> = by_group.iter().filter(|(_, left)| !left.is_empty()).map(|(&g, _)| g).collect();
            if live.is_empty() {
                return plans;
            }
            let chosen: Vec<i64> = live.choose_multiple(rng, self.per_batch.min(live.len())).copied().collect();
            let (quota, extra) = (batch_size.max(1) / chosen.len(), batch_size.max(1) % chosen.len());
            let mut plan = Vec::with_capacity(batch_size);
            for (k, group) in chosen.iter().enumerate() {
                let left = by_group.get_mut(group).expect("a live group");
                for _ in 0..(quota + usize::from(k < extra)).max(1) {
                    match left.pop_front() {
                        Some(unit) => plan.extend(unit),
                        None => break,
                    }
                }
            }
            plans.push(plan);
        }
    }
}

/// The group of a view's sample; `groups[sample_id]` is the group of each sample of the store
/// (`None`: the source has none).
pub fn group_of(view: &SelectedView, groups: &[Option<i64>]) -> Result<i64, String> {
    groups.get(view.sample_id as usize).copied().flatten().ok_or_else(|| {
        format!(
            "sample {} has no group: batches mix the groups of a source that has them (HAPT's subjects, a groups file)",
            view.sample_id
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::test_view;
    use rand::SeedableRng;

    #[test]
    fn every_batch_mixes_the_groups_and_every_sample_comes_once() {
        // 24 samples in 4 groups of 6 (sample s in group s % 4).
        let views: Vec<SelectedView> = (0..24).map(|s| test_view(s, s, "identity")).collect();
        let groups: Vec<Option<i64>> = (0..24).map(|s| Some(s % 4)).collect();
        let mix = GroupMix::new(views.iter().map(|v| group_of(v, &groups).unwrap()).collect(), 2).unwrap();
        let units: Vec<Vec<usize>> = (0..24).map(|v| vec![v]).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let plans = mix.batches(units, 6, &mut rng);
        let mut seen: Vec<usize> = plans.concat();
        seen.sort_unstable();
        assert_eq!(seen, (0..24).collect::<Vec<_>>());
        let two_groups = plans.iter().filter(|p| {
            let mut g: Vec<i64> = p.iter().map(|&v| mix.group(v)).collect();
            g.dedup();
            g.len() == 2
        });
        assert!(two_groups.count() >= 3, "{plans:?}");
        assert!(plans.iter().all(|p| p.len() <= 6));
    }

    #[test]
    fn one_group_or_none_is_refused() {
        let views: Vec<SelectedView> = (0..4).map(|s| test_view(s, s, "identity")).collect();
        let one = GroupMix::new(vec![3; 4], 2).unwrap_err();
        assert!(one.contains("from 1 group"), "{one}");
        let none = group_of(&views[0], &[None; 4]).unwrap_err();
        assert!(none.contains("sample 0 has no group"), "{none}");
        assert!(GroupMix::new(vec![1, 2, 1, 2], 1).unwrap_err().contains("batches of one group"));
    }
}
