//! `pskd`'s memory: the student's own logits of each training sample in the previous epoch, from
//! its training forward pass (train mode, the view it saw), as PS-KD's `all_predictions` buffer
//! keeps them (the official code stores their softmax; softmax of the stored logits is the same).
//! Rows are read from the previous epoch's copy and written into the current one, so that a sample
//! seen twice in an epoch (`--views all`) still learns from the previous epoch, and a sample not yet
//! seen (the first epoch, or not admitted by a curriculum) learns from its label alone: its
//! "previous logits" are log(target), whose softmax is the target. The memory is part of the run's
//! checkpoint, so `--resume` continues bit for bit.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::sample_rows::SampleRows;
use kdstore_core::select::SelectedView;

/// Per-sample logits of the previous and the current epoch.
pub struct PreviousPredictions {
    rows: SampleRows,
    classes: usize,
    previous: Vec<f32>,
    previous_seen: Vec<u8>,
    current: Vec<f32>,
    current_seen: Vec<u8>,
}

const FILE: &str = "pskd-predictions.safetensors";

impl PreviousPredictions {
    /// An empty memory for the samples of `rows`.
    pub fn new(rows: SampleRows, classes: usize) -> PreviousPredictions {
        let n = rows.len();
        PreviousPredictions {
            rows,
            classes,
            previous: vec![0.0; n * classes],
            previous_seen: vec![0; n],
            current: vec![0.0; n * classes],
            current_seen: vec![0; n],
        }
    }

    /// The previous epoch's logits of a batch's rows `[B, classes]` on `device`; a row whose
    /// sample has none yet gets log of its target (λ-mixed label).
    pub fn batch(&self, views: &[&SelectedView], device: Device) -> Tensor {
        let c = self.classes;
        let mut values = Vec::with_capacity(views.len() * c);
        for view in views {
            let row = self.rows.row(view.sample_id);
            if self.previous_seen[row] == 1 {
                values.extend_from_slice(&self.previous[row * c..(row + 1) * c]);
            } else {
                let mut target = vec![0.0f32; c];
                target[view.label as usize] += view.lam;
                target[view.partner_label as usize] += 1.0 - view.lam;
                values.extend(target.into_iter().map(f32::ln));
            }
        }
        Tensor::from_slice(&values).view([views.len() as i64, c as i64]).to_device(device)
    }

    /// Keeps a batch's logits (the student's training forward) for the next epoch.
    pub fn record(&mut self, views: &[&SelectedView], logits: &Tensor) -> Result<(), tch::TchError> {
        let c = self.classes;
        let values = Vec::<f32>::try_from(logits.detach().to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))?;
        for (view, row_values) in views.iter().zip(values.chunks(c)) {
            let row = self.rows.row(view.sample_id);
            self.current[row * c..(row + 1) * c].copy_from_slice(row_values);
            self.current_seen[row] = 1;
        }
        Ok(())
    }

    /// At the end of an epoch: what it recorded becomes the previous epoch's.
    pub fn end_epoch(&mut self) {
        self.previous.copy_from_slice(&self.current);
        self.previous_seen.copy_from_slice(&self.current_seen);
    }

    /// Writes the memory (as of an epoch's end) into a checkpoint's folder.
    pub fn save(&self, dir: &Path) -> Result<(), tch::TchError> {
        let (n, c) = (self.rows.len() as i64, self.classes as i64);
        let logits = Tensor::from_slice(&self.previous).view([n, c]);
        self.rows.save(&dir.join(FILE), &[("logits", logits), ("seen", Tensor::from_slice(&self.previous_seen))])
    }

    /// Reads the memory a checkpoint holds; it must be of the same samples.
    pub fn load(&mut self, dir: &Path) -> Result<(), String> {
        let [logits, seen] = <[Tensor; 2]>::try_from(self.rows.load(&dir.join(FILE), &["logits", "seen"])?)
            .map_err(|_| "two tensors".to_string())?;
        self.previous = Vec::<f32>::try_from(logits.flatten(0, -1)).map_err(|e| e.to_string())?;
        self.previous_seen = Vec::<u8>::try_from(seen).map_err(|e| e.to_string())?;
        self.current.copy_from_slice(&self.previous);
        self.current_seen.copy_from_slice(&self.previous_seen);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::test_view;

    #[test]
    fn reads_the_previous_epoch_and_survives_a_checkpoint() {
        let views = [test_view(10, 1, "identity"), test_view(11, 1, "jitter"), test_view(20, 2, "identity")];
        let mut memory = PreviousPredictions::new(SampleRows::new(views.iter().map(|v| v.sample_id)), 3);
        let first = memory.batch(&[&views[0]], Device::Cpu);
        // Label 0 with λ = 1: log(1, 0, 0).
        assert_eq!(Vec::<f32>::try_from(first.flatten(0, -1)).unwrap(), [0.0, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        let logits = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).view([1, 3]);
        memory.record(&[&views[1]], &logits).unwrap();
        let same_epoch = memory.batch(&[&views[0]], Device::Cpu);
        assert_eq!(Vec::<f32>::try_from(same_epoch.flatten(0, -1)).unwrap()[0], 0.0, "not before the epoch ends");
        memory.end_epoch();
        let next = memory.batch(&[&views[0], &views[2]], Device::Cpu);
        assert_eq!(Vec::<f32>::try_from(next.narrow(0, 0, 1).flatten(0, -1)).unwrap(), [1.0, 2.0, 3.0]);
        let dir = tempfile::tempdir().unwrap();
        memory.save(dir.path()).unwrap();
        let mut restored = PreviousPredictions::new(SampleRows::new(views.iter().map(|v| v.sample_id)), 3);
        restored.load(dir.path()).unwrap();
        assert!(restored.batch(&[&views[0], &views[2]], Device::Cpu).equal(&next));
    }
}
