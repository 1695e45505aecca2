//! `sk`: the similarity-keeping loss of SK-KD for low-density EEG (Huang et al. 2023), as the
//! official `SK` class computes it (CECNL/EEG-KD, `losses/SK.py`): features `[B, C, H, T]` are
//! centred and L2-normalised over time (eps 1e-12), flattened, `G = f·fᵀ / C`, and the loss is the
//! mean squared difference of the student's and teacher's `B × B` matrices. Features `[B, C, T]`
//! are read as `[B, C, 1, T]`; penultimate vectors `[B, D]` as `[B, 1, 1, D]` (so G holds the Pearson
//! correlations between samples across the features: our adaptation, since the official code takes
//! only 4-D maps).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::LossError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SkConfig {}

const EPS: f64 = 1e-12;

fn as_4d(features: &Tensor) -> Result<Tensor, LossError> {
    let size = features.size();
    let shape = match size.as_slice() {
        [b, d] => vec![*b, 1, 1, *d],
        [b, c, t] => vec![*b, *c, 1, *t],
        [b, c, h, t] => vec![*b, *c, *h, *t],
        other => {
            return Err(LossError::Input {
                loss: "sk",
                detail: format!("features must have 2 to 4 dimensions, got {other:?}"),
            })
        }
    };
    Ok(features.f_reshape(shape)?)
}

fn similarity(features: &Tensor) -> Result<Tensor, LossError> {
    let f = as_4d(features)?;
    let kind = f.kind();
    let (batch, channels) = (f.size()[0], f.size()[1]);
    let centred = &f - f.f_mean_dim(&[3i64][..], true, kind)?;
    let norms = centred.f_norm_scalaropt_dim(2, &[3i64][..], true)?.f_clamp_min(EPS)?;
    let flat = (centred / norms).f_reshape([batch, -1])?;
    Ok(flat.f_mm(&flat.tr())? / channels as f64)
}

pub fn sk_loss(student: &Tensor, teacher: &Tensor) -> Result<Tensor, LossError> {
    let diff = similarity(teacher)? - similarity(student)?;
    Ok((&diff * &diff).mean(diff.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::losses::{matrix, value};

    #[test]
    fn shift_and_scale_of_a_series_do_not_matter() {
        let s = matrix(&[&[1.0, 0.0, 2.0, 3.0], &[0.5, -1.0, 0.0, 1.0], &[0.0, 1.0, 1.0, -2.0]]);
        let shifted = &s * 2.5 + 7.0;
        assert!(value(&sk_loss(&s, &shifted).unwrap()).abs() < 1e-12);
        let t = matrix(&[&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0], &[0.0, 0.0, 1.0]]);
        assert!(value(&sk_loss(&s, &t).unwrap()) > 0.0);
    }
}
