//! `kdstore study STUDY.toml`: a grid of `kdstore train` runs from one store, resumable, in
//! parallel, in shares for a cluster, ending in `results.parquet`, `summary.parquet` and a report.
//! The study itself is in `kdstore_core::study`; this command gives it train's own parser and
//! checks (every cell is resolved as `kdstore train` would resolve it) and starts the children.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use kdstore_core::store::{columns as c, Store};
use kdstore_core::study::{self, runner, state::Status, tables, Resolved, StudyError, Trainer};
use kdstore_torch::losses::takes_setting;
use kdstore_torch::train::{self as training, checkpoint};

use kdstore::cli::{print_stdout, worker_threads, Interrupted, UserError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The study file (`schemas/study.json` is its JSON Schema).
    study: PathBuf,
    /// Print the cells × seeds with each run's state (done, running, failed, new, …), and stop.
    #[arg(long, conflicts_with = "report")]
    plan: bool,
    /// Rebuild results.parquet, summary.parquet and the report from the finished runs, and stop.
    #[arg(long)]
    report: bool,
    /// Print a Slurm job-array script (one task of --threads cores per run, requeued on
    /// preemption or at its time limit), create the folder of its logs, and stop.
    #[arg(long, conflicts_with_all = ["plan", "report", "shard", "index", "jobs"])]
    slurm: bool,
    /// Trainings at once, as child processes; the cores are split between them.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Cores to split between the jobs (default: all).
    #[arg(long)]
    threads: Option<usize>,
    /// cpu or cuda: where every run trains (not part of a run's identity).
    #[arg(long)]
    device: Option<String>,
    /// With --device cuda: the GPUs to spread the jobs over, as CUDA_VISIBLE_DEVICES names them
    /// (default: every GPU libtorch sees); several jobs may share one.
    #[arg(long, value_delimiter = ',', value_name = "ID,ID,…")]
    gpus: Vec<String>,
    /// Run only this share of the study: the runs whose position in the plan is I modulo N
    /// (0 <= I < N), e.g. one share per cluster task.
    #[arg(long, value_name = "I/N", conflicts_with = "index")]
    shard: Option<String>,
    /// Run only the run at this position of the plan (0-based; a Kubernetes Indexed Job's
    /// JOB_COMPLETION_INDEX).
    #[arg(long, value_name = "K")]
    index: Option<usize>,
    /// Seconds without a heartbeat after which another process's claim on a run counts as dead.
    #[arg(long, default_value_t = 120)]
    claim_timeout: u64,
}

/// `kdstore train`, parsed on its own (a cell's arguments).
#[derive(Debug, Parser)]
#[command(name = "train")]
struct TrainOnly {
    #[command(flatten)]
    args: super::train::Args,
}

/// Train's parser and checks, and the binary that runs it.
struct TrainBeside {
    program: PathBuf,
    store: RefCell<Option<Store>>,
    /// Filters already counted: a study's cells share a few.
    filters: RefCell<HashMap<String, Result<(), String>>>,
}

impl TrainBeside {
    fn check_filter(&self, store: &Store, teacher: Option<&str>, filter: &str) -> Result<(), String> {
        if let Some(known) = self.filters.borrow().get(filter) {
            return known.clone();
        }
        let teacher_condition =
            teacher.map(|t| format!(" AND {} = '{}'", c::TEACHER, t.replace('\'', "''"))).unwrap_or_default();
        let table = if teacher.is_some() { c::LABELS } else { c::VIEWS };
        let sql = match teacher {
            Some(_) => format!(
                "SELECT COUNT(*) AS n FROM {table} WHERE {} = 'train'{teacher_condition} AND ({filter})",
                c::SPLIT
            ),
            None => format!("SELECT COUNT(*) AS n FROM {table} WHERE ({filter})"),
        };
        let outcome = match kdstore_core::run_query(store, &sql) {
            Err(e) => Err(format!("--where {filter}: {e}")),
            Ok(frame) => {
                let count = frame.column("n").ok().and_then(|n| n.get(0).ok()).and_then(|v| v.extract::<u64>());
                match count {
                    Some(0) => Err(format!("--where {filter}: selects no training views")),
                    _ => Ok(()),
                }
            }
        };
        self.filters.borrow_mut().insert(filter.to_string(), outcome.clone());
        outcome
    }
}

impl Trainer for TrainBeside {
    fn known_settings(&self) -> Vec<String> {
        TrainOnly::command()
            .get_arguments()
            .filter_map(|argument| argument.get_long())
            .filter(|long| *long != "help")
            .map(|long| long.replace('-', "_"))
            .collect()
    }

    fn resolve(&self, store_path: &Path, version: u64, args: &[String]) -> Result<Resolved, String> {
        let args = applicable(args);
        let mut argv: Vec<String> =
            vec!["train".into(), store_path.display().to_string(), "--at-version".into(), version.to_string()];
        argv.extend(args.iter().cloned());
        let parsed = TrainOnly::try_parse_from(&argv).map_err(|e| {
            let text = e.render().to_string();
            text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string()
        })?;
        if self.store.borrow().as_ref().is_none_or(|s| s.manifest.version != version || s.root != store_path) {
            *self.store.borrow_mut() = Some(Store::open_at(store_path, Some(version)).map_err(|e| e.to_string())?);
        }
        let store = self.store.borrow();
        let store = store.as_ref().expect("opened above");
        let config = super::train::resolve(&parsed.args, store).map_err(|e| format!("{e:#}"))?;
        let teachers = training::check(store, &config).map_err(|e| e.to_string())?;
        if let Some(filter) = &config.filter {
            self.check_filter(store, teachers.first().map(String::as_str), filter)?;
        }
        Ok(Resolved { config: serde_json::to_value(&config).expect("config serialises"), args })
    }

    fn has_checkpoint(&self, dir: &Path) -> bool {
        checkpoint::latest(dir).ok().flatten().is_some()
    }

    fn train_command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.arg("train");
        command
    }
}

/// `args` without the `--set` loss settings that none of its losses take (`--set temperature=2`
/// in a `ce` cell of a losses × temperatures grid); pacing, spl and amal settings stay.
fn applicable(args: &[String]) -> Vec<String> {
    let mut losses: Vec<String> =
        args.windows(2).filter(|pair| pair[0] == "--loss").map(|pair| pair[1].clone()).collect();
    if losses.is_empty() {
        losses.push("kd".into());
    }
    let mut kept = Vec::with_capacity(args.len());
    let mut index = 0;
    while index < args.len() {
        if args[index] == "--set" && index + 1 < args.len() {
            let key = args[index + 1].split_once('=').map_or(args[index + 1].as_str(), |(key, _)| key);
            let other = ["pacing.", "spl.", "amal."].iter().any(|prefix| key.starts_with(prefix));
            if other || takes_setting(&losses, key) {
                kept.extend_from_slice(&args[index..index + 2]);
            }
            index += 2;
        } else {
            kept.push(args[index].clone());
            index += 1;
        }
    }
    kept
}

fn share(args: &Args) -> anyhow::Result<runner::Share> {
    if let Some(index) = args.index {
        return Ok(runner::Share::Index(index));
    }
    let Some(shard) = &args.shard else { return Ok(runner::Share::All) };
    let parsed = shard
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?)));
    match parsed {
        Some((index, count)) if count > 0 && index < count => Ok(runner::Share::Shard { index, count }),
        _ => Err(UserError::msg(format!("--shard {shard}: expected I/N with 0 <= I < N, e.g. 0/4"))),
    }
}

fn gpus(args: &Args) -> Vec<String> {
    if !args.gpus.is_empty() || args.device.as_deref() != Some("cuda") {
        return args.gpus.clone();
    }
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(visible) if !visible.trim().is_empty() => visible.split(',').map(|g| g.trim().to_string()).collect(),
        _ => (0..kdstore_torch::cuda_devices()).map(|g| g.to_string()).collect(),
    }
}

fn classify(error: StudyError) -> anyhow::Error {
    match error {
        StudyError::File(_) => UserError::from_error(error),
        other => anyhow::Error::new(other),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let trainer = TrainBeside {
        program: std::env::current_exe()?,
        store: RefCell::new(None),
        filters: RefCell::new(HashMap::new()),
    };
    let share = share(&args)?;
    if args.jobs == 0 {
        return Err(UserError::msg("--jobs must be >= 1".into()));
    }
    if let Some(device) = args.device.as_deref().filter(|d| !matches!(*d, "cpu" | "cuda")) {
        return Err(UserError::msg(format!("--device {device}: expected cpu or cuda")));
    }
    let study = study::load(&args.study, &trainer).map_err(classify)?;
    if let runner::Share::Index(index) = share {
        if index >= study.runs.len() {
            return Err(UserError::msg(format!(
                "--index {index}: the study has {} runs (0 to {})",
                study.runs.len(),
                study.runs.len() - 1
            )));
        }
    }
    let timeout = Duration::from_secs(args.claim_timeout.max(1));
    let has_checkpoint = |dir: &Path| trainer.has_checkpoint(dir);
    if args.plan {
        return print_stdout(&study::plan_text(&study, timeout, &has_checkpoint));
    }
    if args.slurm {
        let kdstore = trainer.program.with_file_name("kdstore");
        let workdir = std::env::current_dir()?;
        let script =
            study::slurm::job_array(&study, &kdstore, &workdir.join(&args.study), &workdir, args.threads.unwrap_or(1));
        // Slurm opens a task's log before the script runs: its folder must exist.
        let logs = workdir.join(study.out()).join(study::slurm::LOGS);
        std::fs::create_dir_all(&logs).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", logs.display()))?;
        return print_stdout(&script);
    }
    let report_path = study.out().join("report").join("report.md");
    if !args.report {
        let options = runner::Options {
            jobs: args.jobs,
            cores: worker_threads(args.threads),
            device: args.device.clone(),
            gpus: gpus(&args),
            claim_timeout: timeout,
            share,
        };
        let threads = options.threads_per_job();
        eprintln!(
            "{}: {} runs planned; this process takes {} at a time with {threads} thread{} each",
            args.study.display(),
            study.runs.len(),
            options.jobs,
            if threads == 1 { "" } else { "s" }
        );
        kdstore_core::interrupt::install();
        let outcome = runner::run(&study, &trainer, &options, &mut |line| eprintln!("{line}")).map_err(classify)?;
        if outcome.held_elsewhere > 0 {
            eprintln!("{} runs of this share are held by other study processes", outcome.held_elsewhere);
        }
        let left = |position: usize, row: &tables::RunRow| share.includes(position) && row.status.pending();
        let stopped = outcome.interrupted.filter(|_| {
            tables::collect(&study, timeout, &has_checkpoint)
                .iter()
                .enumerate()
                .any(|(position, row)| left(position, row))
        });
        if let Some(signal) = stopped {
            let line = study::write_outputs(&study, timeout, &has_checkpoint).map_err(classify)?;
            return Err(anyhow::Error::new(Interrupted(format!(
                "stopped by {} ({line}); run the same command again to resume",
                kdstore_core::interrupt::name(signal)
            ))));
        }
    }
    let line = study::write_outputs(&study, timeout, &has_checkpoint).map_err(classify)?;
    eprintln!("{line}: {} and {}", study.out().join("results.parquet").display(), report_path.display());
    let rows = tables::collect(&study, timeout, &has_checkpoint);
    let failed = rows
        .iter()
        .enumerate()
        .filter(|(position, row)| share.includes(*position) && matches!(row.status, Status::Failed | Status::Retry))
        .count();
    match (failed, args.report) {
        (0, _) | (_, true) => Ok(()),
        (n, false) => Err(UserError::msg(format!(
            "{n} run{} failed (their errors are in {} and in each run's train.log); run the study again to retry those with attempts left",
            if n == 1 { "" } else { "s" },
            report_path.display()
        ))),
    }
}
