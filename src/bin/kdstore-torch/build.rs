//! `kdstore build PIPELINE [--store DIR] [--threads N]`.

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
}

pub fn run(args: Args, bars: &Bars) -> anyhow::Result<()> {
    let plan = pipeline::load(&args.pipeline).map_err(UserError::from_error)?;
    let store = args.store.unwrap_or_else(|| plan.file.store.clone());
    let threads = worker_threads(args.threads);
    let started = std::time::Instant::now();
    let report = build(&plan, &BuildOptions { store: store.clone(), threads }, bars).map_err(classify)?;
    if report.steps.is_empty() {
        eprintln!("{}: up to date at version {} (nothing to do)", store.display(), report.version.unwrap_or(0));
    } else {
        for step in &report.steps {
            eprintln!("  {step}");
        }
        eprintln!(
            "{}: built version {} in {:.1}s ({} step{})",
            store.display(),
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
