//! The `de` ensemble's fixed teacher weights (Ganta et al., "Knowledge distillation via weighted
//! ensemble of teaching assistants"): before training, differential evolution
//! (`metaheuristics-nature`'s DE, best/1 with continuous crossover) searches weights in [0, 1]^K
//! that maximise the validation accuracy of the weighted average of the teachers' probabilities,
//! read from their stored identity-view logits. The search starts from a seeded population that
//! contains the equal weights, and DE keeps the best point it has seen, so the weights found are
//! never worse on validation than the plain mean. The weights are reported normalised to sum 1
//! (the average's argmax does not change with their scale).

use metaheuristics_nature::{Bounded, De, ObjFunc, Pool, Solver};
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Population size and generations of the search: K ≤ 10 weights converge long before.
const POPULATION: usize = 40;
const GENERATIONS: u64 = 100;

/// The weights found and how the weighted average does on validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeWeights {
    /// One weight per teacher, in the run's teacher order, summing to 1.
    pub weights: Vec<f64>,
    /// Validation accuracy of the weighted probability average.
    pub validation_accuracy: f64,
    /// Validation accuracy of the equal-weight average, for comparison.
    pub equal_weight_validation_accuracy: f64,
    pub generations: u64,
    pub population: usize,
}

/// The validation accuracy of weighted probability averages.
struct Accuracy {
    /// Per teacher, each sample's softmax probabilities, row-major.
    probabilities: Vec<Vec<f64>>,
    labels: Vec<i64>,
    classes: usize,
    bounds: Vec<[f64; 2]>,
}

impl Accuracy {
    fn new(teachers: &[&[f32]], labels: &[i64], classes: usize) -> Accuracy {
        let probabilities = teachers
            .iter()
            .map(|logits| {
                logits
                    .chunks(classes)
                    .flat_map(|row| {
                        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                        let exp: Vec<f64> = row.iter().map(|&z| (z as f64 - max).exp()).collect();
                        let total: f64 = exp.iter().sum();
                        exp.into_iter().map(move |e| e / total)
                    })
                    .collect()
            })
            .collect();
        Accuracy { probabilities, labels: labels.to_vec(), classes, bounds: vec![[0.0, 1.0]; teachers.len()] }
    }

    fn of(&self, weights: &[f64]) -> f64 {
        let mut correct = 0usize;
        let mut row = vec![0.0; self.classes];
        for (i, &label) in self.labels.iter().enumerate() {
            row.iter_mut().for_each(|v| *v = 0.0);
            for (p, &w) in self.probabilities.iter().zip(weights) {
                for (sum, &value) in row.iter_mut().zip(&p[i * self.classes..(i + 1) * self.classes]) {
                    *sum += w * value;
                }
            }
            let top = row.iter().enumerate().fold(0, |best, (c, &v)| if v > row[best] { c } else { best });
            correct += usize::from(top as i64 == label);
        }
        correct as f64 / self.labels.len().max(1) as f64
    }
}

impl Bounded for Accuracy {
    fn bound(&self) -> &[[f64; 2]] {
        &self.bounds
    }
}

impl ObjFunc for Accuracy {
    type Ys = f64;

    /// Minimised: the validation error.
    fn fitness(&self, weights: &[f64]) -> f64 {
        1.0 - self.of(weights)
    }
}

/// Searches the weights of `teachers` (each the flat `[samples × classes]` validation logits) that
/// maximise the weighted average's accuracy on `labels`, reproducibly from `seed`.
pub fn search(teachers: &[&[f32]], labels: &[i64], classes: usize, seed: u64) -> DeWeights {
    let k = teachers.len();
    let objective = Accuracy::new(teachers, labels, classes);
    let equal = vec![1.0 / k as f64; k];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let pool: Vec<Vec<f64>> = std::iter::once(equal.clone())
        .chain((1..POPULATION).map(|_| (0..k).map(|_| rng.gen::<f64>()).collect()))
        .collect();
    let pool_y = pool.iter().map(|w| objective.fitness(w)).collect();
    let solver = Solver::build(De::default(), objective)
        .seed(seed)
        .pop_num(POPULATION)
        .init_pool(Pool::Ready { pool, pool_y })
        .task(|ctx| ctx.gen >= GENERATIONS)
        .solve();
    let objective = solver.func();
    let best = solver.as_best_xs();
    let total: f64 = best.iter().sum();
    let weights: Vec<f64> = if total > 0.0 { best.iter().map(|w| w / total).collect() } else { equal.clone() };
    DeWeights {
        validation_accuracy: objective.of(&weights),
        equal_weight_validation_accuracy: objective.of(&equal),
        weights,
        generations: GENERATIONS,
        population: POPULATION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three teachers on 4 classes: teacher 0 right on the first half, teacher 1 on the second (each
    /// less sure when wrong), teacher 2 confidently wrong everywhere, so the equal mean is worse than leaving 2 out.
    fn teachers() -> (Vec<Vec<f32>>, Vec<i64>) {
        let n = 200;
        let labels: Vec<i64> = (0..n).map(|i| (i % 4) as i64).collect();
        let row = |class: i64, confidence: f32| {
            (0..4).map(move |c| if c == class { confidence } else { 0.0 }).collect::<Vec<f32>>()
        };
        let mut logits = vec![Vec::new(), Vec::new(), Vec::new()];
        for (i, &y) in labels.iter().enumerate() {
            let wrong = (y + 1) % 4;
            let first_half = i < n / 2;
            logits[0].extend(if first_half { row(y, 2.0) } else { row(wrong, 1.0) });
            logits[1].extend(if first_half { row((y + 2) % 4, 1.0) } else { row(y, 2.0) });
            logits[2].extend(row(wrong, 6.0));
        }
        (logits, labels)
    }

    #[test]
    fn the_weights_beat_the_equal_mean_and_are_reproducible() {
        let (logits, labels) = teachers();
        let views: Vec<&[f32]> = logits.iter().map(Vec::as_slice).collect();
        let found = search(&views, &labels, 4, 7);
        assert!(found.equal_weight_validation_accuracy < 0.6, "{found:?}");
        assert!(found.validation_accuracy > 0.95, "{found:?}");
        assert!((found.weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(found.weights[2] < found.weights[0].min(found.weights[1]), "{found:?}");
        assert_eq!(found, search(&views, &labels, 4, 7));
    }

    #[test]
    fn never_worse_than_equal_weights_even_when_they_are_best() {
        // Identical teachers: every weighting gives the same accuracy as the mean.
        let (logits, labels) = teachers();
        let views: Vec<&[f32]> = vec![&logits[0], &logits[0]];
        let found = search(&views, &labels, 4, 1);
        assert_eq!(found.validation_accuracy, found.equal_weight_validation_accuracy);
    }
}
