//! Learning-rate schedules as pure functions of the epoch (0-based): an optional linear warm-up
//! over the first epochs (epoch e < warmup runs at base·(e + 1)/warmup), then a constant rate, a
//! cosine decay to 0 over the remaining epochs, or a step decay (×gamma every `step` epochs).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    Constant,
    Cosine,
    Step { step: usize, gamma: f64 },
}

/// The learning rate of `epoch` (0-based) out of `epochs`.
pub fn learning_rate(schedule: Schedule, base: f64, warmup: usize, epoch: usize, epochs: usize) -> f64 {
    if epoch < warmup {
        return base * (epoch + 1) as f64 / warmup as f64;
    }
    let (done, left) = (epoch - warmup, epochs.saturating_sub(warmup).max(1));
    match schedule {
        Schedule::Constant => base,
        Schedule::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * done as f64 / left as f64).cos()),
        Schedule::Step { step, gamma } => base * gamma.powi((done / step.max(1)) as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_starts_at_base_and_decays() {
        assert_eq!(learning_rate(Schedule::Cosine, 0.1, 0, 0, 10), 0.1);
        assert!((learning_rate(Schedule::Cosine, 0.1, 0, 5, 10) - 0.05).abs() < 1e-12);
        assert!(learning_rate(Schedule::Cosine, 0.1, 0, 9, 10) < 0.01);
    }

    #[test]
    fn warm_up_then_steps() {
        let step = Schedule::Step { step: 3, gamma: 0.1 };
        let rates: Vec<f64> = (0..8).map(|e| learning_rate(step, 1.0, 2, e, 8)).collect();
        let expected = [0.5, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1];
        for (got, want) in rates.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{rates:?}");
        }
        // After the warm-up, cosine starts again from the base rate.
        assert_eq!(learning_rate(Schedule::Cosine, 1.0, 2, 2, 8), 1.0);
        assert_eq!(learning_rate(Schedule::Constant, 0.3, 0, 7, 8), 0.3);
    }
}
