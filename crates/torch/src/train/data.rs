//! Training data from a store: the selected training views with their stored teacher logits, the
//! replayer that rebuilds them batch by batch, and the evaluation splits.

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::TrainError;
use kdstore_core::select::{select, Replayer, SelectedView};
use kdstore_core::store::reader::SampleTable;
use kdstore_core::store::{Split, Store};

/// Everything a training run reads from the store.
pub struct TrainData {
    pub samples: SampleTable,
    pub views: Vec<SelectedView>,
    pub classes: usize,
    /// The teacher's logits on the identity view of each validation and test sample.
    pub evaluation_logits: HashMap<i64, Vec<f32>>,
}

/// A split's normalised identity inputs, labels and, where the teacher labelled them all, its logits.
pub struct SplitData {
    pub inputs: Vec<f32>,
    pub labels: Vec<i64>,
    pub teacher_logits: Option<Vec<f32>>,
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
    let evaluation = select(store, &samples, teacher, Some("recipe = 'identity' AND split <> 'train'"))
        .map_err(|e| TrainError::Selection(e.to_string()))?;
    let evaluation_logits = evaluation.views.into_iter().map(|v| (v.sample_id, v.teacher_logits)).collect();
    Ok(TrainData { samples, views: selection.views, classes: selection.classes, evaluation_logits })
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

    /// Every selected view replayed and normalised once, in `views` order (`--preload`).
    pub fn render_all(&self, replayer: &Replayer) -> Result<Vec<f32>, TrainError> {
        let views: Vec<&SelectedView> = self.views.iter().collect();
        self.render(replayer, &views)
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

    /// A split's identity views, normalised, with labels and the teacher's logits.
    pub fn split(&self, replayer: &Replayer, split: Split) -> SplitData {
        let ids = self.samples.ids_in(split);
        let mut inputs = Vec::with_capacity(ids.len() * self.samples.sample_len);
        for &i in &ids {
            let start = inputs.len();
            inputs.extend_from_slice(self.samples.input(i));
            replayer.context.normalizer.apply(&mut inputs[start..]);
        }
        let teacher_logits: Option<Vec<Vec<f32>>> =
            ids.iter().map(|&i| self.evaluation_logits.get(&(i as i64)).cloned()).collect();
        SplitData {
            inputs,
            labels: ids.iter().map(|&i| self.samples.labels[i]).collect(),
            teacher_logits: teacher_logits.map(|rows| rows.concat()),
        }
    }
}
