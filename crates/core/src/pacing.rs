//! Pacing functions for curricula: how many of the easiest training samples are admitted at
//! training step t of T, as pure functions of the step, computed as the official codes compute them.
//!
//! - Wu, Dyer & Neyshabur 2021 (google-research/understanding-curricula, `get_pacing_function`):
//!   `linear`, `quad`, `root`, `step`, `exp`, `log`; `a` is the fraction of the T steps at which the
//!   full set is reached, `b` the fraction admitted at step 0. g(t) is float64 arithmetic truncated
//!   by Python's `int()` (towards zero), `step` uses Python's float floor division, `exp` returns N
//!   once `exp` overflows, and `exp`/`log` use that code's c = 10.
//! - Hacohen & Weinshall 2019 (GuyHacohen/curriculum_learning, `exponent_data_function_generator`):
//!   `exponential`: `start` of the data at batch 0, multiplied by `factor` (capped at 1) every
//!   `step_length` batches, the fraction kept as the code keeps it (one multiplication per
//!   increase) and admitted as `ceil(N · fraction)`.
//! - `baby-steps` (Bengio et al.'s cumulative buckets): the ordered set cut into `buckets` equal
//!   buckets, one more admitted every T / buckets steps.
//!
//! The official code slices its ordered set with g(t), so what is admitted is g(t) clamped to
//! [0, N]; that is what [`Pacing::admitted`] gives.

use serde::Serialize;

/// A pacing function and its settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Pacing {
    Linear { a: f64, b: f64 },
    Quad { a: f64, b: f64 },
    Root { a: f64, b: f64 },
    Step { a: f64, b: f64 },
    Exp { a: f64, b: f64 },
    Log { a: f64, b: f64 },
    Exponential { start: f64, factor: f64, step_length: usize },
    BabySteps { buckets: usize },
}

/// Every pacing's name, as `--pacing` and `kdstore pacing` take them.
pub const NAMES: &[&str] = &["linear", "quad", "root", "step", "exp", "log", "exponential", "baby-steps"];

/// Wu et al.'s c of `exp` and `log`.
const C: f64 = 10.0;

impl Pacing {
    /// The pacing `name` with `settings` (`KEY=VALUE`, keys as the official codes name them:
    /// `a`, `b`; `start`, `factor`, `step_length`; `buckets`). Defaults: a = 0.8, b = 0.2 (the
    /// paper's middle of the road); Hacohen's start 0.04, factor 1.9, step_length 100; 5 buckets.
    pub fn parse(name: &str, settings: &[String]) -> Result<Pacing, String> {
        let mut values = std::collections::BTreeMap::new();
        for setting in settings {
            let (key, value) = setting.split_once('=').ok_or_else(|| format!("--set {setting}: expected KEY=VALUE"))?;
            let key = key.trim().trim_start_matches("pacing.");
            let number: f64 = value.trim().parse().map_err(|_| format!("--set {setting}: {value} is not a number"))?;
            values.insert(key.to_string(), (setting.clone(), number));
        }
        let mut take = |key: &str, default: f64| values.remove(key).map_or(default, |(_, v)| v);
        let pacing = match name {
            "linear" | "quad" | "root" | "step" | "exp" | "log" => {
                let (a, b) = (take("a", 0.8), take("b", 0.2));
                if !(a.is_finite() && a > 0.0 && (0.0..=1.0).contains(&b)) {
                    return Err(format!("pacing {name}: a must be > 0 and b in [0, 1], got a = {a}, b = {b}"));
                }
                match name {
                    "linear" => Pacing::Linear { a, b },
                    "quad" => Pacing::Quad { a, b },
                    "root" => Pacing::Root { a, b },
                    "step" => Pacing::Step { a, b },
                    "exp" => Pacing::Exp { a, b },
                    _ => Pacing::Log { a, b },
                }
            }
            "exponential" => {
                let (start, factor, step_length) =
                    (take("start", 0.04), take("factor", 1.9), take("step_length", 100.0));
                if !(start > 0.0 && start <= 1.0 && factor.is_finite() && factor >= 1.0) || step_length < 1.0 {
                    return Err(format!(
                        "pacing exponential: start must be in (0, 1], factor >= 1 and step_length >= 1, got {start}, {factor}, {step_length}"
                    ));
                }
                Pacing::Exponential { start, factor, step_length: step_length as usize }
            }
            "baby-steps" => {
                let buckets = take("buckets", 5.0);
                if buckets < 1.0 || buckets.fract() != 0.0 {
                    return Err(format!("pacing baby-steps: buckets must be a whole number >= 1, got {buckets}"));
                }
                Pacing::BabySteps { buckets: buckets as usize }
            }
            other => return Err(format!("unknown pacing {other}; expected one of {}", NAMES.join(", "))),
        };
        if let Some((_, (setting, _))) = values.into_iter().next() {
            return Err(format!("--set {setting}: pacing {name} has no such key"));
        }
        Ok(pacing)
    }

    /// How many of the `n` ordered samples are admitted at step `step` (0-based) of `steps`.
    pub fn admitted(&self, step: usize, steps: usize, n: usize) -> usize {
        let g = match *self {
            Pacing::Exponential { start, factor, step_length } => {
                // The official state machine: the fraction changes only at multiples of
                // step_length, by one multiplication each time.
                let mut fraction = start;
                for _ in 0..step / step_length {
                    fraction = (fraction * factor).min(1.0);
                }
                return ((n as f64 * fraction).ceil() as usize).min(n);
            }
            Pacing::BabySteps { buckets } => {
                let bucket = (step * buckets / steps.max(1)).min(buckets - 1);
                return (n * (bucket + 1)).div_ceil(buckets);
            }
            Pacing::Linear { a, b } => {
                let start = b * n as f64;
                let rate = (n as f64 - start) / (a * steps as f64);
                trunc(rate * step as f64 + start)
            }
            Pacing::Quad { a, b } => {
                let start = b * n as f64;
                let rate = (n as f64 - start) / (a * steps as f64).powi(2);
                trunc(rate * (step as f64).powi(2) + start)
            }
            Pacing::Root { a, b } => {
                let start = b * n as f64;
                let rate = (n as f64 - start) / (a * steps as f64).powf(0.5);
                trunc(rate * (step as f64).powf(0.5) + start)
            }
            Pacing::Step { a, b } => {
                let threshold = a * steps as f64;
                trunc(n as f64 * python_floor_div(step as f64, threshold) + b * n as f64)
            }
            Pacing::Exp { a, b } => {
                let (start, tilde_a) = (b * n as f64, a * steps as f64);
                let rate = (n as f64 - start) / (C.exp() - 1.0);
                let grown = (step as f64 * (C / tilde_a)).exp();
                if grown.is_infinite() {
                    n as i64
                } else {
                    trunc(rate * (grown - 1.0) + start)
                }
            }
            Pacing::Log { a, b } => {
                let (start, tilde_a) = (b * n as f64, a * steps as f64);
                let n_b = n as f64 - start;
                trunc(n_b * (1.0 + (1.0 / C) * (step as f64 / tilde_a + (-C).exp()).ln()) + start)
            }
        };
        g.clamp(0, n as i64) as usize
    }
}

/// Python's `int()` of a float: towards zero (saturating; NaN gives 0).
fn trunc(value: f64) -> i64 {
    value as i64
}

/// Python's `a // b` for floats (CPython's `float_floor_div`: from `fmod`, not `floor(a / b)`).
fn python_floor_div(a: f64, b: f64) -> f64 {
    let modulo = a % b;
    let mut div = (a - modulo) / b;
    if modulo != 0.0 && (b < 0.0) != (modulo < 0.0) {
        div -= 1.0;
    }
    if div != 0.0 {
        let floor = div.floor();
        if div - floor > 0.5 {
            floor + 1.0
        } else {
            floor
        }
    } else {
        0.0f64.copysign(a / b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(pacing: &Pacing, steps: usize, n: usize) -> Vec<usize> {
        (0..steps).map(|t| pacing.admitted(t, steps, n)).collect()
    }

    #[test]
    fn wu_et_al_pacings_start_at_b_and_reach_every_sample_at_a() {
        let linear = Pacing::parse("linear", &["a=0.5".into(), "b=0.1".into()]).unwrap();
        let got = schedule(&linear, 10, 100);
        assert_eq!(got, [10, 28, 46, 64, 82, 100, 100, 100, 100, 100]);
        let step = Pacing::parse("step", &["a=0.3".into(), "b=0.2".into()]).unwrap();
        // int(100 * (t // 3.0) + 20): 20 until t = 3, then everything.
        assert_eq!(schedule(&step, 10, 100), [20, 20, 20, 100, 100, 100, 100, 100, 100, 100]);
        let log = Pacing::parse("log", &[]).unwrap();
        let got = schedule(&log, 50, 1000);
        assert_eq!(got[0], 200, "log starts at b·N (ln e^-c = -c)");
        assert!(got.windows(2).all(|w| w[0] <= w[1]) && got[49] == 1000, "{got:?}");
        let exp = Pacing::parse("exp", &["a=0.5".into(), "b=0.0".into()]).unwrap();
        let got = schedule(&exp, 20, 1000);
        assert_eq!((got[0], got[10]), (0, 1000));
        assert!(got[5] < 10, "exp stays low for most of its ramp: {got:?}");
    }

    #[test]
    fn hacohen_exponential_multiplies_every_step_length_batches() {
        let pacing = Pacing::parse("exponential", &["step_length=2".into()]).unwrap();
        // ceil(1000 * 0.04 * 1.9^k): 40, 76, 145 (0.1444 → 144.4), 275, 522, 991, 1000.
        assert_eq!(schedule(&pacing, 14, 1000), [40, 40, 76, 76, 145, 145, 275, 275, 522, 522, 991, 991, 1000, 1000]);
    }

    #[test]
    fn baby_steps_admit_one_more_bucket_at_a_time() {
        let pacing = Pacing::parse("baby-steps", &["buckets=4".into()]).unwrap();
        assert_eq!(schedule(&pacing, 8, 10), [3, 3, 5, 5, 8, 8, 10, 10]);
    }

    #[test]
    fn settings_are_checked_by_name() {
        assert!(Pacing::parse("linear", &["c=1".into()])
            .unwrap_err()
            .contains("--set c=1: pacing linear has no such key"));
        assert!(Pacing::parse("cosine", &[]).unwrap_err().contains("unknown pacing cosine"));
        assert!(Pacing::parse("quad", &["pacing.b=2".into()]).unwrap_err().contains("b in [0, 1]"));
        assert_eq!(python_floor_div(1.0, 0.1), 9.0, "Python: 1 // 0.1 == 9.0, where floor(1 / 0.1) is 10");
        assert_eq!(python_floor_div(7.0, 2.0), 3.0);
    }
}
