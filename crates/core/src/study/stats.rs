//! A study's statistics as pure functions of the seeds' values: per cell the mean, the sample
//! standard deviation, a 95% Student-t interval and a seeded percentile bootstrap interval; against
//! the baseline, paired by seed, the mean difference with its t-interval, the exact sign-flip
//! (permutation) p-value with its floor 2/2ⁿ, the seeds won, and Holm's adjustment over the cells.
//! Each one is computed the way scipy computes it (tests/python/check_stats.py compares them).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The confidence level of every interval.
pub const LEVEL: f64 = 0.95;

/// Beyond this many pairs the sign-flip p-value is estimated from random sign vectors.
const EXACT_SIGN_FLIPS_UP_TO: usize = 20;
const RANDOM_SIGN_FLIPS: usize = 1 << 20;

/// One cell's values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub mean: Option<f64>,
    /// Sample standard deviation (n − 1 in the denominator).
    pub std: Option<f64>,
    /// mean ± t(0.975, n − 1) · std / √n, as `scipy.stats.t.interval(0.95, n - 1, mean, sem)`.
    pub t_interval: Option<(f64, f64)>,
    /// Percentile bootstrap of the mean, as `scipy.stats.bootstrap(method="percentile")`.
    pub bootstrap_interval: Option<(f64, f64)>,
}

/// A cell against the baseline on the seeds both have.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paired {
    pub n: usize,
    /// Mean of (cell − baseline).
    pub mean_difference: f64,
    pub t_interval: Option<(f64, f64)>,
    /// Two-sided exact sign-flip p-value of the mean difference.
    pub p_value: f64,
    /// The smallest p-value n pairs can give: 2/2ⁿ.
    pub p_floor: f64,
    /// Seeds where the cell is better than the baseline (higher, or lower for a metric to minimise).
    pub won: usize,
}

pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

pub fn std(values: &[f64]) -> Option<f64> {
    let mean = mean(values)?;
    (values.len() > 1)
        .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt())
}

/// The 95% Student-t interval of the mean (none below two values).
pub fn t_interval(values: &[f64]) -> Option<(f64, f64)> {
    let (mean, std) = (mean(values)?, std(values)?);
    let n = values.len() as f64;
    let half = student_t_quantile(0.5 + LEVEL / 2.0, n - 1.0) * std / n.sqrt();
    Some((mean - half, mean + half))
}

/// The 95% percentile bootstrap interval of the mean from `resamples` resamples drawn from `seed`
/// (none below two values): the 2.5th and 97.5th percentiles, linearly interpolated as
/// `numpy.percentile`, of the resampled means.
pub fn bootstrap_interval(values: &[f64], resamples: usize, seed: u64) -> Option<(f64, f64)> {
    if values.len() < 2 || resamples == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = values.len();
    let mut means: Vec<f64> =
        (0..resamples).map(|_| (0..n).map(|_| values[rng.gen_range(0..n)]).sum::<f64>() / n as f64).collect();
    means.sort_by(f64::total_cmp);
    let alpha = (1.0 - LEVEL) / 2.0;
    Some((percentile(&means, alpha), percentile(&means, 1.0 - alpha)))
}

/// The `q` quantile of sorted values, interpolated linearly between the two nearest ranks.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

pub fn summarise(values: &[f64], resamples: usize, seed: u64) -> Summary {
    Summary {
        n: values.len(),
        mean: mean(values),
        std: std(values),
        t_interval: t_interval(values),
        bootstrap_interval: bootstrap_interval(values, resamples, seed),
    }
}

/// `cell` against `baseline`, both as (seed, value); only seeds both have are paired. `maximise`
/// says which direction wins. None without a common seed.
pub fn paired(cell: &[(u64, f64)], baseline: &[(u64, f64)], maximise: bool) -> Option<Paired> {
    let differences: Vec<f64> = cell
        .iter()
        .filter_map(|(seed, value)| baseline.iter().find(|(s, _)| s == seed).map(|(_, base)| value - base))
        .collect();
    let n = differences.len();
    let mean_difference = mean(&differences)?;
    Some(Paired {
        n,
        mean_difference,
        t_interval: t_interval(&differences),
        p_value: sign_flip_p_value(&differences),
        p_floor: sign_flip_floor(n),
        won: differences.iter().filter(|&&d| if maximise { d > 0.0 } else { d < 0.0 }).count(),
    })
}

/// One cell's statistics within a study.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub summary: Summary,
    /// Against the baseline (none for the baseline itself, or without one).
    pub against_baseline: Option<Paired>,
    /// The sign-flip p-value, Holm-adjusted over every cell compared with the baseline.
    pub p_holm: Option<f64>,
}

/// Every cell's statistics: `cells[i]` is cell i's (seed, value) list, `bootstrap_seeds[i]` the
/// seed of its bootstrap.
pub fn compare(
    cells: &[Vec<(u64, f64)>],
    baseline: Option<usize>,
    maximise: bool,
    resamples: usize,
    bootstrap_seeds: &[u64],
) -> Vec<Comparison> {
    let mut compared: Vec<Comparison> = cells
        .iter()
        .enumerate()
        .map(|(index, values)| {
            let plain: Vec<f64> = values.iter().map(|(_, v)| *v).collect();
            Comparison {
                summary: summarise(&plain, resamples, bootstrap_seeds[index]),
                against_baseline: match baseline {
                    Some(base) if base != index => paired(values, &cells[base], maximise),
                    _ => None,
                },
                p_holm: None,
            }
        })
        .collect();
    let tested: Vec<usize> = (0..compared.len()).filter(|&i| compared[i].against_baseline.is_some()).collect();
    let p_values: Vec<f64> =
        tested.iter().map(|&i| compared[i].against_baseline.as_ref().expect("tested").p_value).collect();
    for (&i, adjusted) in tested.iter().zip(holm(&p_values)) {
        compared[i].p_holm = Some(adjusted);
    }
    compared
}

/// 2/2ⁿ, capped at 1.
pub fn sign_flip_floor(n: usize) -> f64 {
    (2.0 / 2f64.powi(n as i32)).min(1.0)
}

/// The two-sided p-value of the mean of `differences` under random signs: the share of the 2ⁿ
/// sign vectors whose mean is at least as far from zero as the observed one (exact up to 20 pairs,
/// else from 2²⁰ random sign vectors). Ties within scipy's relative tolerance (100 ulp of 1) count.
pub fn sign_flip_p_value(differences: &[f64]) -> f64 {
    let n = differences.len();
    if n == 0 {
        return 1.0;
    }
    let observed = differences.iter().sum::<f64>().abs();
    let threshold = observed - (100.0 * f64::EPSILON * observed).abs();
    let as_extreme = |signs: u64| {
        let sum: f64 = differences.iter().enumerate().map(|(i, d)| if signs >> i & 1 == 1 { -d } else { *d }).sum();
        sum.abs() >= threshold
    };
    if n <= EXACT_SIGN_FLIPS_UP_TO {
        let total = 1u64 << n;
        (0..total).filter(|&signs| as_extreme(signs)).count() as f64 / total as f64
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
        let hits = (0..RANDOM_SIGN_FLIPS).filter(|_| as_extreme(rng.gen::<u64>())).count();
        (hits + 1) as f64 / (RANDOM_SIGN_FLIPS + 1) as f64
    }
}

/// Holm's step-down adjustment: sorted ascending, p₍ᵢ₎ · (m − i) made monotone and capped at 1,
/// returned in the input's order.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &index) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[index]).min(1.0));
        adjusted[index] = running;
    }
    adjusted
}

/// The `p` quantile of Student's t with `df` degrees of freedom (bisection on the CDF).
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, df);
    }
    let (mut low, mut high) = (0.0f64, 1.0f64);
    while student_t_cdf(high, df) < p {
        high *= 2.0;
    }
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if middle == low || middle == high {
            break;
        }
        if student_t_cdf(middle, df) < p {
            low = middle;
        } else {
            high = middle;
        }
    }
    0.5 * (low + high)
}

/// Student's t CDF: 1 − I_{df/(df+t²)}(df/2, 1/2) / 2 for t ≥ 0.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * regularized_incomplete_beta(df / (df + t * t), df / 2.0, 0.5);
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// I_x(a, b) by its continued fraction (Lentz's method), on the side where it converges fast.
fn regularized_incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_continued_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_continued_fraction(1.0 - x, b, a) / b
    }
}

fn beta_continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    d = if d.abs() < TINY { TINY } else { d }.recip();
    let mut fraction = d;
    for m in 1..1000 {
        let m = m as f64;
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            d = if d.abs() < TINY { TINY } else { d }.recip();
            c = 1.0 + numerator / c;
            c = if c.abs() < TINY { TINY } else { c };
            fraction *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-16 {
            break;
        }
    }
    fraction
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine coefficients: about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let series =
        COEFFICIENTS[1..].iter().enumerate().fold(COEFFICIENTS[0], |sum, (i, c)| sum + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_tables() {
        // scipy.stats.t.ppf(0.975, df) for df = 1, 2, 4, 30.
        for (df, expected) in
            [(1.0, 12.706204736174698), (2.0, 4.302652729749464), (4.0, 2.7764451051977934), (30.0, 2.0422724563012373)]
        {
            let got = student_t_quantile(0.975, df);
            assert!((got - expected).abs() < 1e-9 * expected, "df {df}: {got} vs {expected}");
        }
    }

    #[test]
    fn sign_flips_of_three_seeds_cannot_go_below_a_quarter() {
        assert_eq!(sign_flip_p_value(&[1.0, 2.0, 3.0]), 0.25);
        assert_eq!(sign_flip_floor(3), 0.25);
        // Signs (+,+,-) of (1, 2, 3) sum to 0: every sign vector is at least as extreme.
        assert_eq!(sign_flip_p_value(&[1.0, 2.0, -3.0]), 1.0);
        assert_eq!(sign_flip_p_value(&[0.5, -0.25, 1.0, 2.0]), 0.25);
    }

    #[test]
    fn holm_is_monotone_and_capped() {
        assert_eq!(holm(&[0.01, 0.04, 0.03]), vec![0.03, 0.06, 0.06]);
        assert_eq!(holm(&[0.5, 0.9]), vec![1.0, 1.0]);
    }

    #[test]
    fn bootstrap_is_seeded_and_inside_the_range() {
        let values = [0.81, 0.84, 0.79, 0.88];
        let a = bootstrap_interval(&values, 2000, 7).unwrap();
        assert_eq!(a, bootstrap_interval(&values, 2000, 7).unwrap());
        assert!(0.79 <= a.0 && a.0 < a.1 && a.1 <= 0.88, "{a:?}");
        assert_eq!(bootstrap_interval(&[1.0], 100, 1), None);
    }

    #[test]
    fn pairs_only_common_seeds_and_counts_wins_in_the_metric_direction() {
        let cell = [(1, 0.9), (2, 0.8), (3, 0.7)];
        let baseline = [(1, 0.85), (3, 0.75), (4, 0.1)];
        let up = paired(&cell, &baseline, true).unwrap();
        assert_eq!((up.n, up.won), (2, 1));
        assert!(up.mean_difference.abs() < 1e-15);
        assert_eq!(paired(&cell, &baseline, false).unwrap().won, 1);
        assert_eq!(paired(&cell, &[(9, 0.0)], true), None);
    }
}
