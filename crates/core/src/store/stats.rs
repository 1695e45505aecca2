//! Per-(view, teacher) statistics stored beside the logits: teacher loss on the label, probability
//! of the label, entropy, margin and correctness. Plain f64 arithmetic, no tensors.
//!
//! For a mixed view (input = λ·a + (1−λ)·b) the loss and the label probability are the λ-weighted
//! mixture over the two labels (the mixup loss), and the target of `margin`/`teacher_correct` is
//! the label of the sample with the larger weight (a when λ ≥ 0.5).

use super::writer::LogitsRow;

/// The label(s) a view carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewTarget {
    pub label: i64,
    /// Partner label and the weight λ of `label` for a mixed view.
    pub mix: Option<(i64, f32)>,
}

impl ViewTarget {
    fn dominant(&self) -> i64 {
        match self.mix {
            Some((partner, lam)) if lam < 0.5 => partner,
            _ => self.label,
        }
    }
}

/// Computes the statistics of one row of raw logits.
pub fn logits_row(view_id: i64, logits: Vec<f32>, target: ViewTarget) -> LogitsRow {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&z| (z as f64 - max).exp()).sum();
    let log_z = max + sum.ln();
    let log_p = |k: i64| logits[k as usize] as f64 - log_z;
    let probs: Vec<f64> = logits.iter().map(|&z| (z as f64 - log_z).exp()).collect();
    let entropy = -probs.iter().filter(|&&p| p > 0.0).map(|&p| p * p.ln()).sum::<f64>();
    let (loss, p_label) = match target.mix {
        None => (-log_p(target.label), probs[target.label as usize]),
        Some((partner, lam)) => {
            let lam = lam as f64;
            (
                -(lam * log_p(target.label) + (1.0 - lam) * log_p(partner)),
                lam * probs[target.label as usize] + (1.0 - lam) * probs[partner as usize],
            )
        }
    };
    let pred = argmax(&logits);
    let dominant = target.dominant();
    let best_other =
        probs.iter().enumerate().filter(|&(k, _)| k as i64 != dominant).map(|(_, &p)| p).fold(0.0, f64::max);
    LogitsRow {
        view_id,
        teacher_pred: pred as i64,
        teacher_loss: loss as f32,
        p_label: p_label as f32,
        entropy: entropy as f32,
        margin: (probs[dominant as usize] - best_other) as f32,
        teacher_correct: pred as i64 == dominant,
        logits,
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (k, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = k;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_view_statistics() {
        let row = logits_row(1, vec![2.0, 0.0, 0.0], ViewTarget { label: 0, mix: None });
        let z = 2f64.exp() + 2.0;
        let p0 = 2f64.exp() / z;
        let p1 = 1.0 / z;
        assert!((row.p_label as f64 - p0).abs() < 1e-6);
        assert!((row.teacher_loss as f64 + p0.ln()).abs() < 1e-6);
        assert!((row.entropy as f64 + p0 * p0.ln() + 2.0 * p1 * p1.ln()).abs() < 1e-6);
        assert!((row.margin as f64 - (p0 - p1)).abs() < 1e-6);
        assert!(row.teacher_correct);
        let wrong = logits_row(1, vec![2.0, 0.0, 0.0], ViewTarget { label: 1, mix: None });
        assert!(!wrong.teacher_correct);
        assert!((wrong.margin as f64 - (p1 - p0)).abs() < 1e-6);
    }

    #[test]
    fn mixed_view_statistics_weigh_both_labels() {
        let logits = vec![1.0, 0.5, -1.0];
        let row = logits_row(1, logits.clone(), ViewTarget { label: 0, mix: Some((1, 0.25)) });
        let a = logits_row(1, logits.clone(), ViewTarget { label: 0, mix: None });
        let b = logits_row(1, logits, ViewTarget { label: 1, mix: None });
        assert!((row.teacher_loss - (0.25 * a.teacher_loss + 0.75 * b.teacher_loss)).abs() < 1e-6);
        assert!((row.p_label - (0.25 * a.p_label + 0.75 * b.p_label)).abs() < 1e-6);
        // λ < 0.5: the partner's label is the target of margin and correctness.
        assert_eq!(row.margin, b.margin);
        assert!(!row.teacher_correct);
    }
}
