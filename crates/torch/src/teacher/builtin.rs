//! Trains a built-in teacher with cross-entropy on the training split's un-augmented, normalised
//! inputs (Adam, fixed epochs, seeded initialisation and shuffling). With one intra-op thread, as
//! the build runs it, the trained weights are the same bits on every run.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use super::arch::{ArchSpec, Net};

/// Optimisation settings of a built-in teacher.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherTraining {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub seed: u64,
}

/// What happened in each epoch.
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
}

/// Trains a network on `inputs` (row-major, `labels.len()` samples) and returns its variables.
pub fn train(
    spec: &ArchSpec,
    inputs: &[f32],
    labels: &[i64],
    settings: &TeacherTraining,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<(nn::VarStore, Vec<EpochRecord>), tch::TchError> {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Net::seeded(&vs.root(), spec, settings.seed);
    let mut optimizer =
        nn::Adam { wd: settings.weight_decay, ..Default::default() }.build(&vs, settings.learning_rate)?;
    let n = labels.len();
    let per_sample = inputs.len() / n.max(1);
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(settings.seed);
    let mut records = Vec::with_capacity(settings.epochs);
    let mut batch_inputs = Vec::with_capacity(settings.batch_size * per_sample);
    let mut batch_labels = Vec::with_capacity(settings.batch_size);
    for epoch in 0..settings.epochs {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut correct) = (0.0f64, 0i64);
        for batch in order.chunks(settings.batch_size) {
            batch_inputs.clear();
            batch_labels.clear();
            for &i in batch {
                batch_inputs.extend_from_slice(&inputs[i * per_sample..(i + 1) * per_sample]);
                batch_labels.push(labels[i]);
            }
            let x = Tensor::from_slice(&batch_inputs);
            let y = Tensor::from_slice(&batch_labels);
            let logits = net.forward(&x, true)?;
            let loss = logits.cross_entropy_for_logits(&y);
            optimizer.backward_step(&loss);
            loss_sum += loss.double_value(&[]) * batch.len() as f64;
            correct += logits.argmax(-1, false).eq_tensor(&y).to_kind(Kind::Int64).sum(Kind::Int64).int64_value(&[]);
        }
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: loss_sum / n as f64,
            train_accuracy: correct as f64 / n as f64,
        };
        on_epoch(&record);
        records.push(record);
    }
    Ok((vs, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teacher::arch::ArchKind;

    #[test]
    fn learns_a_separable_problem_and_is_reproducible() {
        // As the build runs it: one intra-op thread, so reductions always add in the same order.
        tch::set_num_threads(1);
        // Two classes: the sign of the first channel's mean.
        let mut inputs = Vec::new();
        let mut labels = Vec::new();
        for i in 0..64 {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            for t in 0..16 {
                inputs.push(sign * (1.0 + (t as f32 * 0.1 + i as f32).sin() * 0.2));
                inputs.push(((i * t) as f32).cos());
            }
            labels.push(i64::from(i % 2 == 0));
        }
        let spec = ArchSpec { kind: ArchKind::Mlp, width: 16, depth: 1, input_shape: vec![2, 16], classes: 2 };
        let settings = TeacherTraining { epochs: 30, batch_size: 16, learning_rate: 0.01, weight_decay: 0.0, seed: 3 };
        let (_, first) = train(&spec, &inputs, &labels, &settings, &mut |_| {}).unwrap();
        assert!(first.last().unwrap().train_accuracy > 0.95, "{first:?}");
        let (_, second) = train(&spec, &inputs, &labels, &settings, &mut |_| {}).unwrap();
        assert_eq!(first.last().unwrap().train_loss, second.last().unwrap().train_loss);
    }
}
