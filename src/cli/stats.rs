//! `kdstore stats [FILE]`: a study's statistics for given numbers, to check them against other
//! code (tests/python/check_stats.py compares them with scipy). The input is JSON, from FILE or
//! stdin: `{"baseline": "ce", "cells": {"ce": {"1": 0.81, "2": 0.84}, "kd": {"1": 0.85, …}}}`
//! (values by seed); the output is every cell's summary, its comparison with the baseline and
//! the Holm-adjusted p-value, as `kdstore study` computes them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use kdstore_core::study::stats;

use super::{print_stdout, UserError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The JSON input (default: stdin).
    input: Option<PathBuf>,
    /// The metric is better when lower (NLL, ECE): changes which seeds count as won.
    #[arg(long)]
    lower_is_better: bool,
    /// Bootstrap resamples per cell.
    #[arg(long, default_value_t = 10_000)]
    resamples: usize,
    /// Seed of every cell's bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (name, text) = match &args.input {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .map_err(|e| UserError::msg(format!("cannot read {}: {e}", path.display())))?,
        ),
        None => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            ("stdin".to_string(), text)
        }
    };
    let input: serde_json::Value = serde_json::from_str(&text).map_err(|e| UserError::msg(format!("{name}: {e}")))?;
    let bad = |what: String| UserError::msg(format!("{name}: {what}"));
    if let Some(key) = input.as_object().and_then(|o| o.keys().find(|k| !matches!(k.as_str(), "baseline" | "cells"))) {
        return Err(bad(format!("unknown key {key}; expected baseline and cells")));
    }
    let Some(given) = input["cells"].as_object() else { return Err(bad("cells: expected an object of cells".into())) };
    let names: Vec<&String> = given.keys().collect();
    let mut cells = Vec::with_capacity(names.len());
    for (cell, values) in given {
        let Some(values) = values.as_object() else {
            return Err(bad(format!("cells.{cell}: expected values by seed")));
        };
        let mut seeded = Vec::with_capacity(values.len());
        for (seed, value) in values {
            let seed_number: u64 =
                seed.parse().map_err(|_| bad(format!("cells.{cell}: seed {seed:?} is not a whole number")))?;
            match value.as_f64() {
                Some(value) if value.is_finite() => seeded.push((seed_number, value)),
                _ => return Err(bad(format!("cells.{cell}.{seed}: {value} is not a finite number"))),
            }
        }
        seeded.sort_by_key(|(seed, _)| *seed);
        cells.push(seeded);
    }
    let wanted = match &input["baseline"] {
        serde_json::Value::Null => None,
        serde_json::Value::String(wanted) => Some(wanted.clone()),
        other => return Err(bad(format!("baseline: expected a cell's name, got {other}"))),
    };
    let baseline = match &wanted {
        Some(wanted) => Some(
            names
                .iter()
                .position(|n| *n == wanted)
                .ok_or_else(|| bad(format!("baseline {wanted} is not one of the cells")))?,
        ),
        None => None,
    };
    let seeds = vec![args.seed; cells.len()];
    let compared = stats::compare(&cells, baseline, !args.lower_is_better, args.resamples, &seeds);
    let output: BTreeMap<&String, &stats::Comparison> = names.into_iter().zip(&compared).collect();
    print_stdout(&(serde_json::to_string_pretty(&serde_json::json!({ "cells": output }))? + "\n"))
}
