//! Evaluation metrics as pure functions of a split's logits: accuracy, negative log-likelihood,
//! expected calibration error and its reliability bins (`kdstore_core::calibration`), top-1
//! agreement with the teacher and KL(teacher ‖ student) at T = 1.

use kdstore_core::calibration::{expected_calibration_error, reliability_bins, ReliabilityBin, ECE_BINS};
use serde::{Deserialize, Serialize};

/// Metrics of one split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    pub accuracy: f64,
    pub nll: f64,
    pub ece: f64,
    /// Fraction of samples where the student's top class is the teacher's (null without a teacher).
    pub teacher_agreement: Option<f64>,
    /// Mean KL(softmax(teacher) ‖ softmax(student)) in nats.
    pub kl_to_teacher: Option<f64>,
}

pub(crate) fn log_softmax(z: &[f32]) -> Vec<f64> {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max + z.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
    z.iter().map(|&v| v as f64 - lse).collect()
}

pub(crate) fn argmax(z: &[f32]) -> usize {
    z.iter().enumerate().fold(0, |best, (i, &v)| if v > z[best] { i } else { best })
}

/// The fraction of rows where `student` and `teacher` (logits or log-probabilities) have the same
/// top class.
pub fn agreement(student: &[f32], teacher: &[f32], classes: usize) -> f64 {
    let rows = student.len() / classes.max(1);
    let agree = student.chunks(classes).zip(teacher.chunks(classes)).filter(|(s, t)| argmax(s) == argmax(t)).count();
    agree as f64 / rows.max(1) as f64
}

/// Metrics of `student` logits (row-major, `classes` per row) against `labels` and, when given,
/// the teacher's logits for the same samples.
pub fn split_metrics(student: &[f32], labels: &[i64], teacher: Option<&[f32]>, classes: usize) -> SplitMetrics {
    let n = labels.len();
    let (mut nll, mut kl) = (0.0, 0.0);
    for (row, &label) in student.chunks(classes).zip(labels) {
        nll -= log_softmax(row)[label as usize];
    }
    let (confidences, hits) = confidences_and_hits(student, labels, classes);
    let correct = hits.iter().filter(|&&hit| hit).count();
    if let Some(teacher) = teacher {
        for (s, t) in student.chunks(classes).zip(teacher.chunks(classes)) {
            let (log_s, log_t) = (log_softmax(s), log_softmax(t));
            kl += log_t.iter().zip(&log_s).map(|(lt, ls)| lt.exp() * (lt - ls)).sum::<f64>();
        }
    }
    let count = n.max(1) as f64;
    SplitMetrics {
        accuracy: correct as f64 / count,
        nll: nll / count,
        ece: expected_calibration_error(&confidences, &hits, ECE_BINS),
        teacher_agreement: teacher.map(|teacher| agreement(student, teacher, classes)),
        kl_to_teacher: teacher.map(|_| kl / count),
    }
}

/// The reliability bins of `student` logits against `labels` (ECE_BINS of them).
pub fn split_reliability(student: &[f32], labels: &[i64], classes: usize) -> Vec<ReliabilityBin> {
    let (confidences, hits) = confidences_and_hits(student, labels, classes);
    reliability_bins(&confidences, &hits, ECE_BINS)
}

fn confidences_and_hits(student: &[f32], labels: &[i64], classes: usize) -> (Vec<f64>, Vec<bool>) {
    student
        .chunks(classes)
        .zip(labels)
        .map(|(row, &label)| {
            let top = argmax(row);
            (log_softmax(row)[top].exp(), top as i64 == label)
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_metrics_count_hits_agreement_and_kl() {
        let student = [2.0f32, 0.0, 0.0, 3.0, 1.0, 0.0];
        let teacher = [2.0f32, 0.0, 0.0, 0.0, 3.0, 1.0];
        // Student tops: 0, 1, 0; teacher tops ([2,0], [0,0] (a tie goes to the first), [3,1]): 0, 0, 0.
        let m = split_metrics(&student, &[0, 1, 1], Some(&teacher), 2);
        assert_eq!(m.teacher_agreement, Some(2.0 / 3.0));
        assert!(m.kl_to_teacher.unwrap() > 0.0);
        let nll = -(log_softmax(&[2.0, 0.0])[0] + log_softmax(&[0.0, 3.0])[1] + log_softmax(&[1.0, 0.0])[1]) / 3.0;
        let m = split_metrics(&student, &[0, 1, 1], None, 2);
        assert!((m.nll - nll).abs() < 1e-12);
        assert!((m.accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.teacher_agreement, None);
    }
}
