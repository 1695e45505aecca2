//! `kdstore build PIPELINE [--store DIR] [--threads N] [--repair]`.

use std::path::PathBuf;

use kdstore_core::pipeline::{self, BuildError};
use kdstore_torch::build::{build, BuildOptions};

use kdstore::cli::progress::Bars;
use kdstore::cli::{classify_store, worker_threads, UserError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pipeline: PathBuf,
    /// Write the store here instead of the pipeline's `store`.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Worker threads (default: all cores). The store's content does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Check every file of the store first and compute the damaged or missing ones again; commits
    /// one version, with the undamaged content.
    #[arg(long)]
    repair: bool,
}

pub fn run(args: Args, bars: &Bars) -> anyhow::Result<()> {
    let plan = pipeline::load(&args.pipeline).map_err(UserError::from_error)?;
    let store = args.store.unwrap_or_else(|| plan.file.store.clone());
    let threads = worker_threads(args.threads);
    let started = std::time::Instant::now();
    let options = BuildOptions { store: store.clone(), threads, repair: args.repair };
    let report = build(&plan, &options, bars).map_err(classify)?;
    if report.steps.is_empty() {
        let nothing = if args.repair { "every file matches the manifest, nothing to repair" } else { "nothing to do" };
        eprintln!("{}: up to date at version {} ({nothing})", store.display(), report.version.unwrap_or(0));
    } else {
        for step in &report.steps {
            eprintln!("  {step}");
        }
        eprintln!(
            "{}: {} version {} in {:.1}s ({} step{})",
            store.display(),
            if args.repair { "repaired into" } else { "built" },
            report.version.unwrap_or(0),
            started.elapsed().as_secs_f64(),
            report.steps.len(),
            if report.steps.len() == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn classify(error: BuildError) -> anyhow::Error {
    match error {
        BuildError::Store(store) => classify_store(store),
        BuildError::Training { .. } | BuildError::Teacher { .. } | BuildError::Replay { .. } => {
            anyhow::Error::new(error)
        }
        user => UserError::from_error(user),
    }
}
