//! The `kdstore-torch` binary: the commands that need tensors — `build`, `train`, `loss`,
//! `bench` and `study` — which `kdstore` hands over with its whole command line. It presents itself as
//! `kdstore` (usage lines, `--version`) and shares the CLI library's flags, printing and exit codes.

mod bench;
mod build;
mod loss;
mod study;
mod train;

use clap::{Parser, Subcommand};
use kdstore::cli::progress::Bars;
use kdstore::cli::{guarded, init_logging, parse, Globals};

/// kdstore's commands that run models (run them as `kdstore COMMAND`).
#[derive(Debug, Parser)]
#[command(name = "kdstore", bin_name = "kdstore", version, about, long_about = None)]
struct TorchCli {
    #[command(subcommand)]
    command: TorchCommand,
    #[command(flatten)]
    globals: Globals,
}

#[derive(Debug, Subcommand)]
enum TorchCommand {
    /// Run a pipeline's stages into its store, computing only what is missing.
    Build(build::Args),
    /// Train a student from a store's views and teacher logits.
    Train(train::Args),
    /// Print a distillation loss for given logits (and features), to check parity with other code.
    Loss(loss::Args),
    /// Time the labelling stage against the teacher's bare forward passes (reads the store only).
    Bench(bench::Args),
    /// Run a study file: a grid of trainings from one store, resumable and in parallel, with a report.
    Study(study::Args),
}

fn main() {
    // Training's activation buffers are reused from the heap instead of mapped and faulted in again
    // every step (docs/benchmarks.md, "The allocator"); elsewhere glibc's defaults stand.
    kdstore_core::heap::keep_large_buffers();
    std::process::exit(guarded(run));
}

fn run() -> anyhow::Result<()> {
    let Some(cli) = parse::<TorchCli>()? else { return Ok(()) };
    init_logging(cli.globals.verbose);
    let bars = Bars::new(cli.globals.quiet);
    match cli.command {
        TorchCommand::Build(args) => build::run(args, &bars),
        TorchCommand::Train(args) => train::run(args, &bars),
        TorchCommand::Loss(args) => loss::run(args),
        TorchCommand::Bench(args) => bench::run(args, &bars),
        TorchCommand::Study(args) => study::run(args),
    }
}
