//! One training step's objectives: the student's forward pass on a batch, the teachers' logits and
//! features for it (stored, from the frozen teachers run online, or from the co-trained teacher),
//! and the weighted sum of the configured losses on the target that the run's rule makes of the
//! teachers (`target`); with `--co-train`, the teacher's own objective too. With per-sample weights
//! (`sample_weights`) every term is a weighted mean of its per-sample values; with `pskd` the
//! student's previous-epoch logits come from and go to the run's memory (`previous`).

use std::cell::RefCell;

use tch::{Device, Tensor};

use super::amal::MixingWeights;
use super::batches::Batch;
use super::co_train::{teacher_objective, CoTeacher};
use super::data::TrainData;
use super::previous::PreviousPredictions;
use super::sample_weights::{weighted_mean, SampleWeighting};
use super::student::Student;
use super::target::TargetRule;
use super::{TrainConfig, TrainError};
use crate::losses::{dlkd, LossInputs, Targets};
use crate::teacher::Classifier;
use kdstore_core::select::SelectedView;

/// What a training step needs besides the networks and the batch.
pub struct Step<'a> {
    pub config: &'a TrainConfig,
    pub data: &'a TrainData,
    /// The frozen teachers run on every batch (`--online`); empty when the logits are stored.
    pub online_teachers: &'a [Classifier],
    pub rule: &'a TargetRule,
    /// Whether the losses read the student's features, and the teacher's.
    pub needs_features: bool,
    pub needs_teacher_features: bool,
    pub heads: Option<&'a dlkd::Heads>,
    pub weighting: Option<&'a SampleWeighting>,
    /// `pskd`'s memory of the student's previous-epoch logits.
    pub memory: Option<&'a RefCell<PreviousPredictions>>,
    /// AMAL's per-sample weights.
    pub mixing: Option<&'a RefCell<MixingWeights>>,
    pub device: Device,
}

/// Where a batch is in the run: the 1-based epoch and step within it, and the run's 0-based
/// iteration over all epochs.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    pub epoch: usize,
    pub step: usize,
    pub iteration: usize,
}

/// A batch's weighted loss terms, named, and the co-trained teacher's loss.
pub type Objectives = (Vec<(String, Tensor)>, Option<Tensor>);

impl Step<'_> {
    /// The student's objective on a batch (each weighted term, named) and, with a co-trained
    /// teacher, the teacher's; both networks in training mode.
    pub fn objectives(
        &self,
        net: &mut Student,
        co_teacher: Option<&CoTeacher>,
        batch: &Batch,
        at: Position,
    ) -> Result<Objectives, TrainError> {
        let rows = batch.views.len() as i64;
        let views: Vec<&SelectedView> = batch.selected.iter().collect();
        let targets = self.targets(&views);
        let inputs = Tensor::from_slice(&self.data.student_inputs(&batch.inputs)).to_device(self.device);
        let previous = self.memory.map(|memory| memory.borrow().batch(&views, self.device));
        let mixing = self.mixing.map(|weights| weights.borrow().batch(&views, self.device));
        let (student_features, student) = net.forward_with_features(&inputs, true, self.needs_features)?;
        if let Some(memory) = self.memory {
            memory.borrow_mut().record(&views, &student)?;
        }
        let (teachers, teacher_features, teacher_loss) = match (co_teacher, self.online_teachers) {
            (Some(co), _) => {
                let (features, logits) = co.net.forward_with_features(&inputs, true)?;
                let loss = teacher_objective(&self.config.losses, &logits, &student, &targets)?;
                (vec![logits.detach()], self.needs_teacher_features.then(|| features.detach()), Some(loss))
            }
            (None, [_, ..]) => {
                let mut teachers = Vec::with_capacity(self.online_teachers.len());
                let mut features = None;
                for (k, model) in self.online_teachers.iter().enumerate() {
                    let with_features = self.needs_teacher_features && k == 0;
                    let inference = tch::no_grad(|| {
                        model.infer(&batch.inputs, &self.data.samples.sample_shape, self.device, with_features)
                    })
                    .map_err(|e| TrainError::Config(format!("--online: {e}")))?;
                    if with_features {
                        features = Some(self.tensor(&inference.features, rows));
                    }
                    teachers.push(self.tensor(&inference.logits, rows));
                }
                (teachers, features, None)
            }
            (None, []) => {
                let stored = batch.teacher_logits.as_ref().expect("batches carry the stored logits");
                let teachers = stored.iter().map(|logits| self.tensor(logits, rows)).collect();
                (teachers, batch.teacher_features.as_ref().map(|f| self.tensor(f, rows)), None)
            }
        };
        let groups: Option<Vec<i64>> = self.config.losses.iter().any(|t| t.config.needs_groups()).then(|| {
            views.iter().map(|v| self.data.samples.groups[v.sample_id as usize].unwrap_or(i64::MIN)).collect()
        });
        let loss_inputs = LossInputs {
            student_features: student_features.as_ref(),
            teacher_features: teacher_features.as_ref(),
            epoch: Some(at.epoch),
            heads: self.heads,
            previous: previous.as_ref(),
            epochs: Some(self.config.epochs),
            per_row: self.weighting.is_some(),
            groups: groups.as_deref(),
            mixing: mixing.as_ref(),
            ..LossInputs::new(&student, &targets)
        };
        let picks = self.rule.picks(teachers.len(), &batch.views, at.epoch, at.step);
        let mut terms = Vec::with_capacity(self.config.losses.len());
        for term in &self.config.losses {
            let value = self
                .rule
                .loss(&term.config, &loss_inputs, &teachers, picks.as_deref())
                .map_err(|e| TrainError::Config(e.to_string()))?
                * term.weight;
            terms.push((term.config.name().to_string(), value));
        }
        if let Some(weighting) = self.weighting {
            let total = terms.iter().map(|(_, rows)| rows.shallow_clone()).reduce(|a, b| a + b).expect("a loss");
            let weights = weighting.weights(&total, &batch.views, at.iteration);
            terms = terms.into_iter().map(|(name, rows)| (name, weighted_mean(&weights, &rows))).collect();
        }
        Ok((terms, teacher_loss))
    }

    /// `[rows, -1]` float32 on the training device.
    fn tensor(&self, values: &[f32], rows: i64) -> Tensor {
        Tensor::from_slice(values).view([rows, -1]).to_device(self.device)
    }

    fn targets(&self, views: &[&SelectedView]) -> Targets {
        let labels: Vec<i64> = views.iter().map(|v| v.label).collect();
        let partners: Vec<i64> = views.iter().map(|v| v.partner_label).collect();
        let lam: Vec<f32> = views.iter().map(|v| v.lam).collect();
        Targets::of_rows(&labels, &partners, &lam, self.data.classes, self.device)
    }
}
