//! Top-k logits (`logits_format = { top_k = K, values = "f16" | "q8" }`): instead of all C logits,
//! a teacher's K most probable classes, their log-probabilities, and the log-sum-exp of all C
//! logits. Everything that reads a teacher distribution sees dense logits again, rebuilt by
//! [`fill_dense`]:
//!
//! - a stored class k gets the logit `lse + log p_k`, its exact logit up to the stored rounding;
//! - the C − K other classes share the tail mass m = 1 − Σ p_k equally: each gets the logit
//!   `lse + ln(max(m, TAIL_FLOOR) / (C − K))`, so that the softmax at temperature 1 gives each of
//!   them m / (C − K) and the stored classes their stored probabilities. (Rounding can push Σ p_k
//!   to 1 or over; the floor keeps the tail finite, and the softmax then renormalises.) Losses at
//!   another temperature take softmax(z / T) of these logits, as they do of dense ones.
//!
//! `q8` stores each log-probability as one byte, `round(−log p / Q8_STEP)` clamped to 0..=255
//! (steps of 1/16 nat: at most 1/32 nat off, i.e. within 3.2% of the probability, down to
//! p = e^−15.97); `f16` stores it as a half float (relative error 2⁻¹¹ of log p).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Nats per step of a `q8` log-probability.
pub const Q8_STEP: f64 = 1.0 / 16.0;

/// The least tail mass the dense logits give the classes outside the top k.
pub const TAIL_FLOOR: f64 = 1e-9;

/// Keep only a teacher's `top_k` most probable classes per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopK {
    /// How many classes to keep per row (the most probable, in descending order).
    pub top_k: usize,
    /// How their log-probabilities are stored: `f16` (half floats) or `q8` (one byte each, steps
    /// of 1/16 nat).
    pub values: TopKValues,
}

/// Element type of the stored top-k log-probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TopKValues {
    F16,
    Q8,
}

impl TopKValues {
    pub fn as_str(self) -> &'static str {
        match self {
            TopKValues::F16 => "f16",
            TopKValues::Q8 => "q8",
        }
    }

    /// The log-probability a stored value stands for: itself (`f16`), or a `q8` byte's.
    pub fn logprob(self, stored: f64) -> f64 {
        match self {
            TopKValues::F16 => stored,
            TopKValues::Q8 => dequantise_q8(stored as u8),
        }
    }
}

impl TopK {
    /// `top10-q8`: how `kdstore info` and the scan groups name the format.
    pub fn describe(&self) -> String {
        format!("top{}-{}", self.top_k, self.values.as_str())
    }
}

/// The narrowest unsigned integer width (8, 16 or 32 bits) that holds every class index.
pub fn index_bits(classes: usize) -> u32 {
    match classes {
        0..=256 => 8,
        257..=65_536 => 16,
        _ => 32,
    }
}

/// One row's top k: classes by descending logit (ties to the lower class, so the first is the
/// argmax as the statistics take it), their log-probabilities, and the log-sum-exp of all logits.
pub fn top_k(logits: &[f32], k: usize) -> (Vec<u32>, Vec<f64>, f64) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max + logits.iter().map(|&z| (z as f64 - max).exp()).sum::<f64>().ln();
    let order = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b));
    let mut classes: Vec<u32> = (0..logits.len() as u32).collect();
    let k = k.min(classes.len());
    if k < classes.len() {
        classes.select_nth_unstable_by(k, order);
        classes.truncate(k);
    }
    classes.sort_unstable_by(order);
    let logprobs = classes.iter().map(|&class| logits[class as usize] as f64 - lse).collect();
    (classes, logprobs, lse)
}

/// A log-probability as a `q8` byte.
pub fn quantise_q8(logprob: f64) -> u8 {
    (-logprob / Q8_STEP).round().clamp(0.0, 255.0) as u8
}

/// The log-probability a `q8` byte stands for.
pub fn dequantise_q8(code: u8) -> f64 {
    -(code as f64) * Q8_STEP
}

/// Writes the dense logits of one top-k row into `out` (one value per class), as the module
/// documentation describes. Refuses a row whose classes fall outside `out` or that keeps more
/// classes than there are.
pub fn fill_dense(classes: &[u32], logprobs: &[f64], lse: f64, out: &mut [f64]) -> Result<(), String> {
    let (k, total) = (classes.len(), out.len());
    if k != logprobs.len() {
        return Err(format!("{k} classes but {} log-probabilities", logprobs.len()));
    }
    if k > total {
        return Err(format!("{k} classes kept of a {total}-class space"));
    }
    if k < total {
        let tail = 1.0 - logprobs.iter().map(|lp| lp.exp()).sum::<f64>();
        out.fill(lse + (tail.max(TAIL_FLOOR) / (total - k) as f64).ln());
    }
    for (&class, &logprob) in classes.iter().zip(logprobs) {
        let slot =
            out.get_mut(class as usize).ok_or_else(|| format!("class {class} is outside the {total}-class space"))?;
        *slot = lse + logprob;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn softmax(z: &[f64]) -> Vec<f64> {
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
        z.iter().map(|v| (v - max).exp() / sum).collect()
    }

    #[test]
    fn top_k_orders_by_logit_and_breaks_ties_to_the_lower_class() {
        let logits = [0.5f32, 3.0, -1.0, 3.0, 2.0];
        let (classes, logprobs, lse) = top_k(&logits, 3);
        assert_eq!(classes, vec![1, 3, 4]);
        let want = logits.iter().map(|&z| (z as f64).exp()).sum::<f64>().ln();
        assert!((lse - want).abs() < 1e-12);
        assert!((logprobs[2] - (2.0 - want)).abs() < 1e-12);
        assert_eq!(top_k(&logits, 9).0, vec![1, 3, 4, 0, 2], "k beyond the classes keeps them all");
    }

    #[test]
    fn dense_logits_keep_the_stored_probabilities_and_spread_the_tail_evenly() {
        let logits: Vec<f32> = (0..12).map(|k| ((k * 7 % 12) as f32 - 5.0) * 0.6).collect();
        let (classes, logprobs, lse) = top_k(&logits, 4);
        let mut dense = vec![0.0; 12];
        fill_dense(&classes, &logprobs, lse, &mut dense).unwrap();
        let p = softmax(&dense);
        let exact = softmax(&logits.iter().map(|&z| z as f64).collect::<Vec<_>>());
        for &class in &classes {
            assert!((p[class as usize] - exact[class as usize]).abs() < 1e-12);
            assert!((dense[class as usize] - logits[class as usize] as f64).abs() < 1e-6);
        }
        let tail: f64 = (0..12).filter(|k| !classes.contains(&(*k as u32))).map(|k| exact[k]).sum();
        for k in (0..12).filter(|k| !classes.contains(&(*k as u32))) {
            assert!((p[k] - tail / 8.0).abs() < 1e-12, "class {k}");
        }
    }

    #[test]
    fn a_tail_that_rounding_emptied_gets_the_floor_and_a_full_top_k_has_none() {
        let mut dense = vec![0.0; 3];
        fill_dense(&[2, 0], &[-0.1, -1.0], 5.0, &mut dense).unwrap();
        assert!((dense[1] - (5.0 + TAIL_FLOOR.ln())).abs() < 1e-12, "{dense:?}");
        fill_dense(&[1, 0, 2], &[-0.5, -1.5, -2.0], 1.0, &mut dense).unwrap();
        assert_eq!(dense, vec![-0.5, 0.5, -1.0]);
    }

    #[test]
    fn damaged_rows_are_refused() {
        let mut dense = vec![0.0; 3];
        assert_eq!(
            fill_dense(&[0, 3], &[-1.0, -2.0], 0.0, &mut dense).unwrap_err(),
            "class 3 is outside the 3-class space"
        );
        assert_eq!(
            fill_dense(&[0, 1, 2, 0], &[-1.0; 4], 0.0, &mut dense).unwrap_err(),
            "4 classes kept of a 3-class space"
        );
        assert_eq!(fill_dense(&[0], &[-1.0, -2.0], 0.0, &mut dense).unwrap_err(), "1 classes but 2 log-probabilities");
    }

    #[test]
    fn q8_is_within_half_a_step_down_to_its_range() {
        for i in 0..4000 {
            let logprob = -(i as f64) * 0.004;
            let back = dequantise_q8(quantise_q8(logprob));
            if logprob >= -255.0 * Q8_STEP {
                assert!((back - logprob).abs() <= Q8_STEP / 2.0 + 1e-12, "{logprob} -> {back}");
            } else {
                assert_eq!(back, -255.0 * Q8_STEP);
            }
        }
        assert_eq!(quantise_q8(0.0), 0);
        assert_eq!(quantise_q8(-1.0), 16);
    }

    #[test]
    fn indices_take_the_narrowest_width() {
        assert_eq!(index_bits(10), 8);
        assert_eq!(index_bits(256), 8);
        assert_eq!(index_bits(1000), 16);
        assert_eq!(index_bits(70_000), 32);
    }
}
