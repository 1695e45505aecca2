//! One training step's objectives: the student's forward pass on a batch, the teacher's logits and
//! features for it (stored, from the frozen teacher run online, or from the co-trained teacher), and
//! the weighted sum of the configured losses; with `--co-train`, the teacher's own objective too.

use tch::{Device, Tensor};

use super::batches::Batch;
use super::co_train::{teacher_objective, CoTeacher};
use super::data::TrainData;
use super::student::Student;
use super::{TrainConfig, TrainError};
use crate::losses::{dlkd, LossInputs, Targets};
use crate::teacher::Classifier;
use kdstore_core::select::SelectedView;

/// What a training step needs besides the networks and the batch.
pub struct Step<'a> {
    pub config: &'a TrainConfig,
    pub data: &'a TrainData,
    pub online_teacher: Option<&'a Classifier>,
    pub needs_features: bool,
    pub heads: Option<&'a dlkd::Heads>,
    pub device: Device,
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
        epoch: usize,
    ) -> Result<Objectives, TrainError> {
        let rows = batch.views.len() as i64;
        let views: Vec<&SelectedView> = batch.views.iter().map(|&i| &self.data.views[i]).collect();
        let targets = self.targets(&views);
        let inputs = Tensor::from_slice(&batch.inputs).to_device(self.device);
        let (student_features, student) = net.forward_with_features(&inputs, true, self.needs_features)?;
        let (teacher, teacher_features, teacher_loss) = match (co_teacher, self.online_teacher) {
            (Some(co), _) => {
                let (features, logits) = co.net.forward_with_features(&inputs, true)?;
                let loss = teacher_objective(&logits, &student, &targets)?;
                (logits.detach(), self.needs_features.then(|| features.detach()), Some(loss))
            }
            (None, Some(model)) => {
                let inference = tch::no_grad(|| {
                    model.infer(&batch.inputs, &self.data.samples.sample_shape, self.device, self.needs_features)
                })
                .map_err(|e| TrainError::Config(format!("--online: {e}")))?;
                let features = self.needs_features.then(|| self.tensor(&inference.features, rows));
                (self.tensor(&inference.logits, rows), features, None)
            }
            (None, None) => {
                let stored = batch.teacher_logits.as_ref().expect("batches carry the stored logits");
                (self.tensor(stored, rows), batch.teacher_features.as_ref().map(|f| self.tensor(f, rows)), None)
            }
        };
        let loss_inputs = LossInputs {
            student: &student,
            teacher: Some(&teacher),
            targets: &targets,
            student_features: student_features.as_ref(),
            teacher_features: teacher_features.as_ref(),
            epoch: Some(epoch),
            heads: self.heads,
        };
        let mut terms = Vec::with_capacity(self.config.losses.len());
        for term in &self.config.losses {
            let value = term.config.compute(&loss_inputs).map_err(|e| TrainError::Config(e.to_string()))? * term.weight;
            terms.push((term.config.name().to_string(), value));
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
