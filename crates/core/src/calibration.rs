//! Calibration of a classifier's top-class confidences: the reliability bins (15 equal-width
//! confidence bins, a sample in bin (lower, upper], as Guo et al. 2017's code bins them) and the
//! expected calibration error they give. Training computes them; a study's report pools and draws
//! them.

use serde::{Deserialize, Serialize};

pub const ECE_BINS: usize = 15;

/// One confidence bin of a reliability diagram: samples whose top probability lies in
/// (lower, upper], how many there are, how many of them are right, and their mean confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// Fraction right (0 when empty).
    pub accuracy: f64,
    /// Mean top probability (0 when empty).
    pub confidence: f64,
}

/// The `bins` equal-width confidence bins of `confidences` (top probabilities) and `hits`
/// (whether each top class was right).
pub fn reliability_bins(confidences: &[f64], hits: &[bool], bins: usize) -> Vec<ReliabilityBin> {
    (0..bins)
        .map(|bin| {
            let (lower, upper) = (bin as f64 / bins as f64, (bin + 1) as f64 / bins as f64);
            let members: Vec<usize> =
                (0..confidences.len()).filter(|&i| confidences[i] > lower && confidences[i] <= upper).collect();
            let size = members.len() as f64;
            let (accuracy, confidence) = match members.is_empty() {
                true => (0.0, 0.0),
                false => (
                    members.iter().filter(|&&i| hits[i]).count() as f64 / size,
                    members.iter().map(|&i| confidences[i]).sum::<f64>() / size,
                ),
            };
            ReliabilityBin { lower, upper, count: members.len(), accuracy, confidence }
        })
        .collect()
}

/// Σ over bins of |accuracy − mean confidence| weighted by the bin's share of the samples.
pub fn expected_calibration_error(confidences: &[f64], hits: &[bool], bins: usize) -> f64 {
    bins_ece(&reliability_bins(confidences, hits, bins))
}

/// Several runs' bins (the same bin edges) pooled as if their samples were one set.
pub fn pool(runs: &[&[ReliabilityBin]]) -> Vec<ReliabilityBin> {
    let Some(first) = runs.first() else { return Vec::new() };
    (0..first.len())
        .map(|bin| {
            let members: Vec<&ReliabilityBin> = runs.iter().filter_map(|run| run.get(bin)).collect();
            let count: usize = members.iter().map(|b| b.count).sum();
            let weighted = |f: fn(&ReliabilityBin) -> f64| match count {
                0 => 0.0,
                _ => members.iter().map(|b| f(b) * b.count as f64).sum::<f64>() / count as f64,
            };
            ReliabilityBin {
                lower: first[bin].lower,
                upper: first[bin].upper,
                count,
                accuracy: weighted(|b| b.accuracy),
                confidence: weighted(|b| b.confidence),
            }
        })
        .collect()
}

/// The expected calibration error that `bins` give.
pub fn bins_ece(bins: &[ReliabilityBin]) -> f64 {
    let n = bins.iter().map(|b| b.count).sum::<usize>().max(1) as f64;
    bins.iter().map(|bin| (bin.accuracy - bin.confidence).abs() * bin.count as f64 / n).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ece_of_a_worked_example() {
        // Bin (0.6, 0.667]: 0.65, 0.62 with one hit → |0.5 − 0.635| · 2/4; bin (0.933, 1]: 0.95, 0.99
        // both hits → |1 − 0.97| · 2/4.
        let ece = expected_calibration_error(&[0.65, 0.62, 0.95, 0.99], &[true, false, true, true], 15);
        assert!((ece - (0.135 * 0.5 + 0.03 * 0.5)).abs() < 1e-12, "{ece}");
        assert_eq!(expected_calibration_error(&[1.0, 1.0], &[true, true], 15), 0.0);
    }

    #[test]
    fn reliability_bins_count_every_sample_once() {
        let bins = reliability_bins(&[0.65, 0.62, 0.95, 0.99, 0.05], &[true, false, true, true, false], 15);
        assert_eq!(bins.len(), 15);
        assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), 5);
        let bin = bins.iter().find(|b| b.count == 2 && b.lower < 0.65 && b.upper >= 0.65).unwrap();
        assert!((bin.accuracy - 0.5).abs() < 1e-12 && (bin.confidence - 0.635).abs() < 1e-12);
        assert_eq!((bins[0].count, bins[0].accuracy), (1, 0.0));
        assert_eq!((bins[14].count, bins[14].accuracy), (2, 1.0));
        assert!(bins.iter().filter(|b| b.count == 0).all(|b| b.accuracy.to_bits() == 0 && b.confidence.to_bits() == 0));
    }

    #[test]
    fn pooled_bins_are_the_bins_of_the_pooled_samples() {
        let (a, a_hits) = ([0.65, 0.62, 0.95], [true, false, true]);
        let (b, b_hits) = ([0.99, 0.05, 0.64], [true, false, true]);
        let pooled = pool(&[&reliability_bins(&a, &a_hits, 15), &reliability_bins(&b, &b_hits, 15)]);
        let all: Vec<f64> = a.iter().chain(&b).copied().collect();
        let all_hits: Vec<bool> = a_hits.iter().chain(&b_hits).copied().collect();
        let direct = reliability_bins(&all, &all_hits, 15);
        for (p, d) in pooled.iter().zip(&direct) {
            assert_eq!(p.count, d.count);
            assert!((p.accuracy - d.accuracy).abs() < 1e-12 && (p.confidence - d.confidence).abs() < 1e-12);
        }
        assert!((bins_ece(&pooled) - expected_calibration_error(&all, &all_hits, 15)).abs() < 1e-12);
    }
}
