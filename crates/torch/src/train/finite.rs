//! A training that diverged must never look like a result. Every step's loss terms and, after the
//! backward pass, the global gradient norm of every network that learns are checked; the first
//! value that is not finite stops the training with [`Diverged`], which names the epoch, the step
//! and what was not finite. Nothing of the failing epoch is written, so the checkpoint of the last
//! finished epoch stays as it was and `--resume` can start from it.

use tch::Tensor;

use super::metrics::SplitMetrics;

/// Where and what diverged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("training diverged at epoch {epoch}, step {step}: {what} not finite; the last finished epoch's checkpoint is kept (lower --lr or add --clip-grad-norm)")]
pub struct Diverged {
    /// 1-based.
    pub epoch: usize,
    /// 1-based, within the epoch.
    pub step: usize,
    pub what: String,
}

/// Checks the weighted loss terms of one step (`(name, value)`), then their sum.
pub fn check_terms(terms: &[(String, Tensor)], epoch: usize, step: usize) -> Result<(), Diverged> {
    let bad: Vec<String> = terms
        .iter()
        .filter(|(_, value)| !value.double_value(&[]).is_finite())
        .map(|(name, value)| format!("{name} = {}", value.double_value(&[])))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(Diverged {
        epoch,
        step,
        what: format!("loss term{} {} was", if bad.len() == 1 { "" } else { "s" }, bad.join(", ")),
    })
}

/// Checks that a network's gradients are finite, from their global L2 norm (one reduction,
/// `Stepper::gradient_norm`).
pub fn check_gradients(norm: f64, network: &str, epoch: usize, step: usize) -> Result<(), Diverged> {
    if norm.is_finite() {
        return Ok(());
    }
    Err(Diverged { epoch, step, what: format!("the {network}'s gradient (global norm {norm}) was") })
}

/// Checks the metrics of a split that are about to be reported (after `epoch`'s steps).
pub fn check_metrics(metrics: &SplitMetrics, split: &str, epoch: usize, steps: usize) -> Result<(), Diverged> {
    let values = [
        ("accuracy", Some(metrics.accuracy)),
        ("nll", Some(metrics.nll)),
        ("ece", Some(metrics.ece)),
        ("teacher_agreement", metrics.teacher_agreement),
        ("kl_to_teacher", metrics.kl_to_teacher),
    ];
    let bad: Vec<String> = values
        .iter()
        .filter_map(|(name, value)| value.filter(|v| !v.is_finite()).map(|v| format!("{split} {name} = {v}")))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(Diverged { epoch, step: steps, what: format!("the metrics {} were", bad.join(", ")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_term_is_named_with_its_value() {
        let terms = vec![("ce".to_string(), Tensor::from(0.5f64)), ("kd".to_string(), Tensor::from(f64::NAN))];
        let error = check_terms(&terms, 3, 17).unwrap_err();
        assert_eq!((error.epoch, error.step), (3, 17));
        assert!(error.to_string().contains("loss term kd = NaN was not finite"), "{error}");
        assert!(check_terms(&terms[..1], 1, 1).is_ok());
    }
}
