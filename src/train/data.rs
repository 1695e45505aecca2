//! Training data from a store: the selected training views with their stored teacher logits, the
//! replayer that rebuilds them batch by batch, and the evaluation splits.

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::TrainError;
use crate::select::{select, Replayer, SelectedView};
use crate::store::reader::SampleTable;
use crate::store::{Split, Store};

/// Everything a training run reads from the store.
pub struct TrainData {
    pub samples: SampleTable,
    pub views: Vec<SelectedView>,
    pub classes: usize,
}

/// Loads the training views of `teacher` selected by `filter` (a SQL condition over `labels`).
pub fn load(store: &Store, teacher: &str, filter: Option<&str>) -> Result<TrainData, TrainError> {
    let samples = store.load_samples()?;
    let condition = match filter {
        Some(filter) => format!("split = 'train' AND ({filter})"),
        None => "split = 'train'".to_string(),
    };
    let selection =
        select(store, &samples, teacher, Some(&condition)).map_err(|e| TrainError::Selection(e.to_string()))?;
    if selection.views.is_empty() {
        return Err(TrainError::Selection(format!(
            "no training views of teacher {teacher} match{}",
            filter.map(|f| format!(" --where {f}")).unwrap_or_default()
        )));
    }
    Ok(TrainData { samples, views: selection.views, classes: selection.classes })
}

impl TrainData {
    /// Replays views into one flat, normalised input buffer (`verify_replay` checks them against
    /// their hashes).
    pub fn render(&self, replayer: &Replayer, views: &[&SelectedView]) -> Result<Vec<f32>, TrainError> {
        let mut inputs = Vec::with_capacity(views.len() * self.samples.sample_len);
        for view in views {
            let start = inputs.len();
            inputs.extend_from_slice(&replayer.replay(view)?.input);
            replayer.context.normalizer.apply(&mut inputs[start..]);
        }
        Ok(inputs)
    }

    /// Replays `count` views chosen at random (all when `count` ≥ the number of views) and fails on
    /// the first whose input differs from what the teacher saw.
    pub fn verify_replay(&self, replayer: &Replayer, count: usize, seed: u64) -> Result<usize, TrainError> {
        let mut chosen: Vec<&SelectedView> = self.views.iter().collect();
        if count < chosen.len() {
            chosen.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            chosen.truncate(count);
        }
        for view in &chosen {
            replayer.replay_verified(view)?;
        }
        Ok(chosen.len())
    }

    /// Normalised inputs and labels of a split (identity views).
    pub fn split(&self, replayer: &Replayer, split: Split) -> (Vec<f32>, Vec<i64>) {
        let ids = self.samples.ids_in(split);
        let mut inputs = Vec::with_capacity(ids.len() * self.samples.sample_len);
        for &i in &ids {
            let start = inputs.len();
            inputs.extend_from_slice(self.samples.input(i));
            replayer.context.normalizer.apply(&mut inputs[start..]);
        }
        (inputs, ids.iter().map(|&i| self.samples.labels[i]).collect())
    }
}
