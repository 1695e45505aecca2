//! `--co-train`: online distillation in the manner of Deep Mutual Learning (Zhang et al., CVPR 2018),
//! where the teacher is not read from the store but trained together with the student, from scratch,
//! on the same batches. The teacher is a fresh copy of the store teacher's built-in architecture. The
//! student minimises its configured objective against the teacher's current logits (held fixed); the
//! teacher minimises `CE(z_t, y) + KL(softmax(z_s) ‖ softmax(z_t))` at temperature 1, batch-mean, the
//! student's prediction held fixed (DML's loss for two networks). With `--loss bdkd` the teacher
//! minimises bdkd's teacher-side objective instead, `CE + beta·T²·KL(p_t ‖ p_s)` (kdstore's
//! documented construction of BD-KD, `losses::bdkd`).

use std::path::Path;

use tch::{nn, Device, Tensor};

use super::optimizer::Stepper;
use super::{TrainConfig, TrainError};
use crate::losses::kd::kd_term;
use crate::losses::{cross_entropy, LossConfig, LossTerm, Targets};
use crate::teacher::arch::{ArchSpec, Net};
use kdstore_core::augment::seed::purpose_seed;
use kdstore_core::store::manifest::TeacherInfo;

/// The teacher trained alongside the student, with its own optimiser (same settings).
pub struct CoTeacher {
    pub vs: nn::VarStore,
    pub net: Net,
    pub spec: ArchSpec,
    pub stepper: Stepper,
}

impl CoTeacher {
    /// Writes the trained teacher into a run's output folder: `teacher.safetensors` (its last
    /// weights) and `teacher.json` (its architecture).
    pub fn write(&self, out: &Path) -> Result<(), TrainError> {
        self.vs.save(out.join("teacher.safetensors"))?;
        let spec_path = out.join("teacher.json");
        std::fs::write(&spec_path, serde_json::to_string_pretty(&self.spec).expect("spec serialises"))
            .map_err(|source| TrainError::Write { path: spec_path, source })
    }

    /// A fresh teacher of `info`'s architecture, or the one saved in a checkpoint's folder.
    pub fn new(
        info: &TeacherInfo,
        config: &TrainConfig,
        device: Device,
        checkpoint: Option<&Path>,
    ) -> Result<CoTeacher, TrainError> {
        let spec: ArchSpec = serde_json::from_value(info.arch_spec.clone()).map_err(|_| {
            TrainError::Config(format!(
                "--co-train trains a fresh copy of the store teacher's built-in architecture, and teacher {} is {} ({}) with none",
                info.name, info.kind, info.architecture
            ))
        })?;
        let mut vs = nn::VarStore::new(device);
        let net = Net::seeded(&vs.root(), &spec, purpose_seed(config.seed, "co-trained teacher"));
        let mut stepper = Stepper::new(&[&vs], config.optimizer, config.weight_decay);
        if let Some(dir) = checkpoint {
            vs.load(dir.join(WEIGHTS))?;
            stepper.load(&dir.join(OPTIMIZER))?;
        }
        Ok(CoTeacher { vs, net, spec, stepper })
    }

    /// Writes the teacher's weights and optimiser state into a checkpoint's folder.
    pub fn save(&self, dir: &Path) -> Result<(), tch::TchError> {
        self.vs.save(dir.join(WEIGHTS))?;
        self.stepper.save(&dir.join(OPTIMIZER))
    }
}

const WEIGHTS: &str = "co-teacher.safetensors";
const OPTIMIZER: &str = "co-teacher-optimizer.safetensors";

/// The teacher's objective: cross-entropy with the targets plus KL(student ‖ teacher) at T = 1,
/// the student's logits held fixed; with a `bdkd` term among the student's losses, bdkd's.
pub fn teacher_objective(
    losses: &[LossTerm],
    teacher: &Tensor,
    student: &Tensor,
    targets: &Targets,
) -> Result<Tensor, tch::TchError> {
    match losses.iter().find_map(|term| match &term.config {
        LossConfig::Bdkd(bdkd) => Some(bdkd),
        _ => None,
    }) {
        Some(bdkd) => bdkd.teacher_objective(teacher, student, targets),
        None => Ok(cross_entropy(teacher, targets)? + kd_term(teacher, &student.detach(), 1.0)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{matrix, value};

    #[test]
    fn the_teacher_objective_is_ce_plus_kl_from_the_student() {
        let teacher = matrix(&[&[2.0, 0.0, -1.0], &[0.5, 0.5, 0.0]]);
        let student = matrix(&[&[1.0, 1.0, 0.0], &[0.0, 2.0, 0.0]]);
        let targets = Targets::plain(Tensor::from_slice(&[0i64, 1]), 3);
        let log_softmax = |row: &[f64]| {
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            row.iter().map(|v| v - lse).collect::<Vec<_>>()
        };
        let rows = [([2.0, 0.0, -1.0], [1.0, 1.0, 0.0], 0), ([0.5, 0.5, 0.0], [0.0, 2.0, 0.0], 1)];
        let want: f64 = rows
            .iter()
            .map(|(t, s, y)| {
                let (lt, ls) = (log_softmax(t), log_softmax(s));
                -lt[*y] + ls.iter().zip(&lt).map(|(a, b)| a.exp() * (a - b)).sum::<f64>()
            })
            .sum::<f64>()
            / 2.0;
        let got = value(&teacher_objective(&[], &teacher, &student, &targets).unwrap());
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
}
