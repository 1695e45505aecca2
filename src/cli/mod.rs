//! Command-line interface: argument definitions, settings resolution, printing and exit codes.
//! Only this module prints; data (query results, `--json`) goes to stdout, everything else to stderr.

mod bench;
mod build;
mod export;
mod info;
mod loss;
mod progress;
mod query;
mod show;
mod train;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// kdstore: run a teacher once under many augmentations, store its raw logits in a queryable
/// Parquet store, and train students from it.
#[derive(Debug, Parser)]
#[command(name = "kdstore", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (-v, -vv); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress output.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a pipeline file and report every problem at once.
    Validate { pipeline: PathBuf },
    /// Run a pipeline's stages into its store, computing only what is missing.
    Build(build::Args),
    /// Run SQL over a store's tables (samples, views, logits) and the joined `labels` view.
    Query(query::Args),
    /// Describe a store: versions, tables, teachers, size.
    Info(info::Args),
    /// Train a student from a store's views and teacher logits.
    Train(train::Args),
    /// Replay the views a SQL condition selects into .npy and Parquet files for other tools.
    Export(export::Args),
    /// Draw views next to their samples as a PNG, with the teacher's top classes.
    Show(show::Args),
    /// Print a distillation loss for given logits (and features), to check parity with other code.
    Loss(loss::Args),
    /// Time the labelling stage against the teacher's bare forward passes (reads the store only).
    Bench(bench::Args),
}

pub fn run() -> anyhow::Result<()> {
    // A usage error is the user's input being wrong (exit code 1); --help and --version succeed.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            e.print()?;
            return Ok(());
        }
        Err(e) => {
            let message = e.render().to_string();
            return Err(UserError::msg(message.trim_start_matches("error: ").trim_end().to_string()));
        }
    };
    init_logging(cli.verbose);
    let bars = progress::Bars::new(cli.quiet);
    match cli.command {
        Command::Validate { pipeline } => {
            let plan = kdstore::pipeline::load(&pipeline).map_err(UserError::from_error)?;
            let count = |n: usize, noun: &str| format!("{n} {noun}{}", if n == 1 { "" } else { "s" });
            eprintln!(
                "{}: ok ({} incl. identity, {}, store {})",
                pipeline.display(),
                count(plan.recipes.len(), "recipe"),
                count(plan.file.teachers.len(), "teacher"),
                plan.file.store.display()
            );
            Ok(())
        }
        Command::Build(args) => build::run(args, &bars),
        Command::Query(args) => query::run(args),
        Command::Info(args) => info::run(args),
        Command::Train(args) => train::run(args, &bars),
        Command::Bench(args) => bench::run(args, &bars),
        Command::Export(args) => export::run(args),
        Command::Show(args) => show::run(args),
        Command::Loss(args) => loss::run(args),
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,kdstore=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

/// Marks an error as the user's (exit code 1): a bad pipeline, SQL, argument or missing file.
#[derive(Debug)]
pub struct UserError(anyhow::Error);

impl UserError {
    pub fn from_error<E: std::error::Error + Send + Sync + 'static>(error: E) -> anyhow::Error {
        anyhow::Error::new(UserError(anyhow::Error::new(error)))
    }

    pub fn msg(message: String) -> anyhow::Error {
        anyhow::Error::new(UserError(anyhow::anyhow!(message)))
    }
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for UserError {}

/// 1 when the error is the user's, 2 otherwise.
pub fn exit_code(error: &anyhow::Error) -> i32 {
    if error.chain().any(|cause| cause.is::<UserError>()) {
        1
    } else {
        2
    }
}

/// The teacher a command works with: the one named, or else the store's first.
pub fn teacher_or_first(store: &kdstore::store::Store, named: Option<&str>) -> anyhow::Result<String> {
    match named.map(str::to_string).or_else(|| store.manifest.teachers.first().map(|t| t.name.clone())) {
        Some(teacher) => Ok(teacher),
        None => Err(UserError::msg(format!("{}: the store has no teacher", store.root.display()))),
    }
}

/// Worker threads: as asked, or one per core.
pub fn worker_threads(asked: Option<usize>) -> usize {
    asked.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}

/// Writes data to stdout; a closed pipe (`kdstore … | head`) surfaces as an io error that `main`
/// turns into exit code 0 instead of a panic.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Classifies library errors: problems with what the user gave us are user errors.
pub fn classify_store(error: kdstore::store::StoreError) -> anyhow::Error {
    use kdstore::store::StoreError as E;
    match error {
        E::NotAStore { .. } | E::UnsupportedSchema { .. } | E::Locked { .. } => UserError::from_error(error),
        E::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => UserError::from_error(error),
        other => anyhow::Error::new(other),
    }
}

/// Classifies the errors of `export` and `show`: a bad selection or output path is the user's.
pub fn classify_views(error: kdstore::select::ViewsError) -> anyhow::Error {
    use kdstore::select::{SelectError, ViewsError as E};
    match error {
        E::Store(s) | E::Select(SelectError::Store(s)) => classify_store(s),
        E::Select(_) | E::Empty { .. } | E::Write { .. } => UserError::from_error(error),
        other => anyhow::Error::new(other),
    }
}
