//! The command line both binaries share: argument definitions, settings resolution, printing
//! and exit codes. Only this module (and the `kdstore-torch` binary built on it) prints; data
//! (query results, `--json`) goes to stdout, everything else to stderr.
//!
//! `kdstore` knows the store-side commands fully and runs them without libtorch. The commands that
//! need tensors (`build`, `train`, `loss`, `bench`, `study`) are listed here for `--help` only: `kdstore`
//! hands the whole command line to the `kdstore-torch` binary found beside it ([`torch`]), which
//! parses and runs them. Exit codes: 0 success (or a closed output pipe), 1 the input was wrong,
//! 2 an unexpected failure.

mod export;
mod gc;
mod info;
mod pacing;
pub mod progress;
mod query;
mod show;
mod stats;
pub mod torch;
mod verify;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// kdstore: run a teacher once under many augmentations, store its raw logits in a queryable
/// Parquet store, and train students from it.
#[derive(Debug, Parser)]
#[command(name = "kdstore", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    globals: Globals,
}

/// The flags every command takes, before or after its name.
#[derive(Debug, Clone, clap::Args)]
pub struct Globals {
    /// More log output (-v, -vv); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress output.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The arguments of a command that `kdstore-torch` parses (`kdstore COMMAND --help` shows them).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
struct ForTorch {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a pipeline file and report every problem at once.
    Validate { pipeline: PathBuf },
    /// Run a pipeline's stages into its store, computing only what is missing.
    Build(ForTorch),
    /// Run SQL over a store's tables (samples, views, logits) and the joined `labels` view.
    Query(query::Args),
    /// Describe a store: versions, tables, teachers, size.
    Info(info::Args),
    /// Train a student from a store's views and teacher logits.
    Train(ForTorch),
    /// Replay the views a SQL condition selects into .npy and Parquet files for other tools.
    Export(export::Args),
    /// Draw views next to their samples as an SVG, with the teacher's top classes.
    Show(show::Args),
    /// Check every file against the manifest (and with --deep every view and value); exit 1 on a problem.
    Verify(verify::Args),
    /// Keep the newest N versions and remove the files only older versions use.
    Gc(gc::Args),
    /// Print a distillation loss for given logits (and features), to check parity with other code.
    Loss(ForTorch),
    /// Time the labelling stage against the teacher's bare forward passes (reads the store only).
    Bench(ForTorch),
    /// Print a curriculum pacing's admitted samples at every step, before spending compute on it.
    Pacing(pacing::Args),
    /// Run a study file: a grid of trainings from one store, resumable and in parallel, with a report.
    Study(ForTorch),
    /// Print a study's statistics for given numbers (JSON), to check them against other code.
    Stats(stats::Args),
}

/// Runs `kdstore` with the process's arguments and returns its exit code.
pub fn main() -> i32 {
    guarded(run)
}

/// Set to make a command panic at its start (for the test that panics are reported, not shown).
pub const PANIC_FOR_TESTS: &str = "KDSTORE_INTERNAL_PANIC_FOR_TESTS";

/// Runs a command and gives its exit code (see [`exit_code_of`]); a panic anywhere in it is
/// reported as an internal error with the command line (exit code 2), never as a backtrace.
pub fn guarded(command: fn() -> anyhow::Result<()>) -> i32 {
    static PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    std::panic::set_hook(Box::new(|info| {
        let message = kdstore_core::panics::payload_text(info.payload());
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        *PANIC.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{message}{place}"));
    }));
    // The test suite sets this to check that a panic never reaches the user as a backtrace.
    let command = move || {
        if std::env::var_os(PANIC_FOR_TESTS).is_some() {
            panic!("{PANIC_FOR_TESTS} is set");
        }
        command()
    };
    match std::panic::catch_unwind(command) {
        Ok(result) => exit_code_of(result),
        Err(_) => {
            let panic = PANIC.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
            let line: Vec<String> = std::env::args().collect();
            eprintln!(
                "error: internal error in `{}`: {panic}\nThis is a bug in kdstore; please report it with the command above.",
                line.join(" ")
            );
            2
        }
    }
}

fn run() -> anyhow::Result<()> {
    let Some(cli) = parse::<Cli>()? else { return Ok(()) };
    init_logging(cli.globals.verbose);
    match cli.command {
        Command::Validate { pipeline } => validate(&pipeline),
        Command::Query(args) => query::run(args),
        Command::Info(args) => info::run(args),
        Command::Export(args) => export::run(args),
        Command::Show(args) => show::run(args),
        Command::Verify(args) => verify::run(args, &progress::Bars::new(cli.globals.quiet)),
        Command::Gc(args) => gc::run(args),
        Command::Pacing(args) => pacing::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Build(_) | Command::Train(_) | Command::Loss(_) | Command::Bench(_) | Command::Study(_) => {
            torch::run_beside()
        }
    }
}

fn validate(pipeline: &std::path::Path) -> anyhow::Result<()> {
    let plan = kdstore_core::pipeline::load(pipeline).map_err(UserError::from_error)?;
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

/// Parses the process's arguments as `T`. `--help` and `--version` print and give `None`; a usage
/// error is the user's input being wrong (exit code 1).
pub fn parse<T: Parser>() -> anyhow::Result<Option<T>> {
    match T::try_parse() {
        Ok(parsed) => Ok(Some(parsed)),
        Err(e) if !e.use_stderr() => {
            e.print()?;
            Ok(None)
        }
        Err(e) => {
            let message = e.render().to_string();
            Err(UserError::msg(message.trim_start_matches("error: ").trim_end().to_string()))
        }
    }
}

/// Prints a failed command's error with its causes and gives the exit code: 0 on success or a
/// closed output pipe, 1 for the user's errors, 2 otherwise.
pub fn exit_code_of(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(error) if is_broken_pipe(&error) => 0,
        Err(error) => {
            eprintln!("error: {}", render(&error));
            exit_code(&error)
        }
    }
}

/// An error and its causes on one line, each cause once: a cause whose text the message already
/// holds (many messages quote their cause) is not repeated.
pub fn render(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Logs to stderr at the level `-v`/`-vv` asks for, unless `RUST_LOG` says otherwise.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,kdstore=debug,kdstore_core=debug,kdstore_torch=debug",
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
        f.write_str(&render(&self.0))
    }
}

impl std::error::Error for UserError {}

/// Marks a run stopped by a scheduler's signal (exit code 75, `interrupt::EXIT_INTERRUPTED`): not
/// a failure, to be run again.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// 75 when a signal stopped the run, 1 when the error is the user's (or the machine's: a full
/// disk), 2 otherwise.
fn exit_code(error: &anyhow::Error) -> i32 {
    if error.chain().any(|cause| cause.is::<Interrupted>()) {
        kdstore_core::interrupt::EXIT_INTERRUPTED
    } else if error.chain().any(|cause| cause.is::<UserError>()) || is_disk_full(error) {
        1
    } else {
        2
    }
}

/// A write that failed for want of space (Polars passes the I/O error on only as text).
fn is_disk_full(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>();
        io.is_some_and(|e| matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded))
            || ["No space left on device", "Disk quota exceeded"].iter().any(|text| cause.to_string().contains(text))
    })
}

/// The store a command reads, at its newest version or at `--at-version N` (time travel).
#[derive(Debug, Clone, clap::Args)]
pub struct StoreAt {
    /// The store directory.
    pub store: PathBuf,
    /// Read this committed version instead of the newest (`kdstore info STORE --versions` lists them).
    #[arg(long, value_name = "N")]
    pub at_version: Option<u64>,
}

impl StoreAt {
    pub fn open(&self) -> anyhow::Result<kdstore_core::store::Store> {
        kdstore_core::store::Store::open_at(&self.store, self.at_version).map_err(classify_store)
    }
}

/// The teacher a command works with: the one named, or else the store's first.
pub fn teacher_or_first(store: &kdstore_core::store::Store, named: Option<&str>) -> anyhow::Result<String> {
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

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Classifies library errors: problems with what the user gave us are user errors.
pub fn classify_store(error: kdstore_core::store::StoreError) -> anyhow::Error {
    use kdstore_core::store::StoreError as E;
    match error {
        E::NotAStore { .. }
        | E::UnsupportedSchema { .. }
        | E::Locked { .. }
        | E::Damaged { .. }
        | E::DamagedManifest { .. }
        | E::NoSuchVersion { .. }
        | E::Corrupt { .. }
        | E::Input { .. }
        | E::Malformed { .. } => UserError::from_error(error),
        E::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => UserError::from_error(error),
        other => anyhow::Error::new(other),
    }
}

/// Classifies the errors of `export` and `show`: a bad selection or output path is the user's.
pub fn classify_views(error: kdstore_core::select::ViewsError) -> anyhow::Error {
    use kdstore_core::select::{ReplayError, SelectError, ViewsError as E};
    match error {
        E::Store(s) | E::Select(SelectError::Store(s)) => classify_store(s),
        E::Select(_) | E::Empty { .. } | E::Write { .. } | E::Replay(ReplayError::Input { .. }) => {
            UserError::from_error(error)
        }
        other => anyhow::Error::new(other),
    }
}
