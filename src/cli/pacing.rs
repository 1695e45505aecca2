//! `kdstore pacing NAME --samples N --steps T [--set KEY=VALUE …]`: a curriculum's schedule
//! before any compute is spent on it, one line per step t = 0 … T−1 with the number of the easiest
//! samples admitted at t (as the official codes compute it; see `kdstore_core::pacing`).

use kdstore_core::pacing::{Pacing, NAMES};

use super::{print_stdout, UserError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// linear, quad, root, step, exp, log (Wu et al. 2021: --set a=…, b=…), exponential (Hacohen &
    /// Weinshall 2019: start, factor, step_length) or baby-steps (buckets).
    name: String,
    /// Training samples in the ordered set (N).
    #[arg(long)]
    samples: usize,
    /// Training steps (T).
    #[arg(long)]
    steps: usize,
    /// A setting of the pacing, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !NAMES.contains(&args.name.as_str()) {
        return Err(UserError::msg(format!("unknown pacing {}; expected one of {}", args.name, NAMES.join(", "))));
    }
    if args.samples == 0 || args.steps == 0 {
        return Err(UserError::msg("--samples and --steps must be at least 1".into()));
    }
    let pacing = Pacing::parse(&args.name, &args.settings).map_err(UserError::msg)?;
    let mut out = String::with_capacity(args.steps * 8);
    for step in 0..args.steps {
        out.push_str(&pacing.admitted(step, args.steps, args.samples).to_string());
        out.push('\n');
    }
    print_stdout(&out)
}
