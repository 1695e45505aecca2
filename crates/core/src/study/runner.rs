//! Runs a study's pending runs as `kdstore train` child processes, `jobs` at a time, each with its
//! share of the cores as libtorch threads (and, with GPUs, its device as `CUDA_VISIBLE_DEVICES`).
//! Every run is claimed before it starts ([`super::claim`]) and re-read after the claim; an
//! interrupted one resumes with `--resume`; a failure is recorded and retried at the end of the
//! queue until the study's `max_attempts`, and never stops the others. Children die with this
//! process (`PR_SET_PDEATHSIG`), so a killed study never leaves a training running unclaimed.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::claim::{self, Claim};
use super::plan::{Run, Study};
use super::state::{self, Attempt};
use super::{StudyError, Trainer};
use crate::interrupt;

/// The file in a run's folder that says where it ran ([`super::report::Placement`]).
pub const PLACEMENT: &str = "run.json";

/// Which of the study's runs this process takes on (the rest are other processes' share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    All,
    /// Runs whose position in the plan is `index` modulo `count` (`--shard index/count`).
    Shard {
        index: usize,
        count: usize,
    },
    /// The one run at this position (`--index`, one cluster task per run).
    Index(usize),
}

impl Share {
    pub fn includes(self, position: usize) -> bool {
        match self {
            Share::All => true,
            Share::Shard { index, count } => position % count == index,
            Share::Index(index) => position == index,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: usize,
    /// Cores to divide between the jobs.
    pub cores: usize,
    /// `cuda` to train on GPUs, spread over `gpus` (indices as CUDA_VISIBLE_DEVICES names them).
    pub device: Option<String>,
    pub gpus: Vec<String>,
    pub claim_timeout: Duration,
    pub share: Share,
}

impl Options {
    pub fn threads_per_job(&self) -> usize {
        (self.cores / self.jobs.max(1)).max(1)
    }
}

/// What one `kdstore study` process did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub finished: usize,
    /// Runs in this share that another live process holds.
    pub held_elsewhere: usize,
    /// The signal that stopped this process (its trainings were passed it and stopped too).
    pub interrupted: Option<i32>,
}

struct Active {
    position: usize,
    child: Child,
    claim: Claim,
    started: Instant,
    log_start: u64,
}

/// Runs the pending runs of `study` in this process's share; `say` hears one line per event.
pub fn run(
    study: &Study,
    trainer: &dyn Trainer,
    options: &Options,
    say: &mut dyn FnMut(String),
) -> Result<Outcome, StudyError> {
    let max_attempts = study.file.study.max_attempts;
    let has_checkpoint = |dir: &Path| trainer.has_checkpoint(dir);
    let mut queue: VecDeque<usize> = (0..study.runs.len())
        .filter(|&position| options.share.includes(position))
        .filter(|&position| {
            state::read(&study.run_dir(&study.runs[position]), max_attempts, options.claim_timeout, &has_checkpoint)
                .status
                .pending()
        })
        .collect();
    let total = queue.len();
    let mut slots: Vec<Option<Active>> = (0..options.jobs.max(1)).map(|_| None).collect();
    let mut outcome = Outcome::default();
    let beat_every = options.claim_timeout / 4;
    let mut last_beat = Instant::now();
    loop {
        if let Some(signal) = interrupt::received().filter(|_| outcome.interrupted.is_none()) {
            // Stop: no new runs; the running trainings stop at their next step, resumable.
            outcome.interrupted = Some(signal);
            queue.clear();
            for current in slots.iter().flatten() {
                // SAFETY: signalling a child this process started and has not reaped yet.
                unsafe {
                    libc::kill(current.child.id() as libc::pid_t, signal);
                }
            }
            say(format!("{}: stopping the running trainings", interrupt::name(signal)));
        }
        for (slot, active) in slots.iter_mut().enumerate() {
            while active.is_none() {
                let Some(position) = queue.pop_front() else { break };
                let run = &study.runs[position];
                let dir = study.run_dir(run);
                let Some(claim) = claim::try_claim(&dir, options.claim_timeout).map_err(|e| io(&dir, e))? else {
                    outcome.held_elsewhere += 1;
                    continue;
                };
                // Another process may have finished or given up on it since the queue was made.
                if state::settled(&dir, max_attempts) {
                    claim.release();
                    continue;
                }
                let resume = trainer.has_checkpoint(&dir);
                let (child, log_start) = spawn(study, trainer, run, &dir, options, slot, resume)?;
                say(format!(
                    "{} {} seed {}{}",
                    if resume { "resuming" } else { "starting" },
                    display_label(&study.cells[run.cell].label),
                    run.seed,
                    gpu_note(options, slot)
                ));
                *active = Some(Active { position, child, claim, started: Instant::now(), log_start });
            }
        }
        if slots.iter().all(Option::is_none) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let beat = last_beat.elapsed() >= beat_every;
        if beat {
            last_beat = Instant::now();
        }
        for active in slots.iter_mut() {
            let Some(current) = active.as_mut() else { continue };
            if beat && !current.claim.beat() {
                // Taken over (this process was too slow to beat): the new holder runs it.
                let _ = current.child.kill();
                let _ = current.child.wait();
                say(format!(
                    "lost the claim on {}; another process runs it",
                    study.run_dir(&study.runs[current.position]).display()
                ));
                *active = None;
                continue;
            }
            let Some(exit) =
                current.child.try_wait().map_err(|e| StudyError::Run(format!("waiting for a training: {e}")))?
            else {
                continue;
            };
            let Active { position, claim, started, log_start, .. } = active.take().expect("active");
            let run = &study.runs[position];
            let dir = study.run_dir(run);
            let seconds = started.elapsed().as_secs_f64();
            let results = state::read_results(&dir);
            let label = display_label(&study.cells[run.cell].label);
            if exit.code() == Some(interrupt::EXIT_INTERRUPTED) || (outcome.interrupted.is_some() && !exit.success()) {
                // Stopped by a signal, not failed: its checkpoint resumes it on the next run.
                say(format!("stopped {label} seed {} ({seconds:.0} s); it resumes from its checkpoint", run.seed));
            } else if exit.success() && results.is_some() {
                outcome.finished += 1;
                let metric = study.file.study.metric;
                let value = results.as_ref().and_then(|r| r["test"][metric.results_key()].as_f64());
                say(format!(
                    "[{}/{total}] done {label} seed {}: {} {} ({seconds:.0} s)",
                    outcome.finished,
                    run.seed,
                    metric.name(),
                    value.map_or("?".into(), |v| format!("{v:.4}"))
                ));
            } else {
                let attempt =
                    Attempt { exit: describe_exit(exit), error: last_error(&dir.join(state::LOG), log_start) };
                let attempts = state::record_failure(&dir, attempt.clone()).map_err(|e| io(&dir, e))?;
                let again = attempts < max_attempts as usize;
                say(format!(
                    "failed {label} seed {} (attempt {attempts} of {max_attempts}, {}): {}{}",
                    run.seed,
                    attempt.exit,
                    attempt.error,
                    if again { "; it will be retried" } else { "" }
                ));
                if again {
                    queue.push_back(position);
                }
            }
            claim.release();
        }
    }
    Ok(outcome)
}

fn display_label(label: &str) -> &str {
    if label.is_empty() {
        "the cell"
    } else {
        label
    }
}

fn gpu_note(options: &Options, slot: usize) -> String {
    match gpu_of(options, slot) {
        Some(gpu) => format!(" on GPU {gpu}"),
        None => String::new(),
    }
}

fn gpu_of(options: &Options, slot: usize) -> Option<&str> {
    match (&options.device, options.gpus.is_empty()) {
        (Some(device), false) if device == "cuda" => Some(&options.gpus[slot % options.gpus.len()]),
        _ => None,
    }
}

fn io(path: &Path, source: std::io::Error) -> StudyError {
    StudyError::Io { path: path.to_path_buf(), source }
}

/// Starts one training: train's own command line, its log appended to `train.log`.
fn spawn(
    study: &Study,
    trainer: &dyn Trainer,
    run: &Run,
    dir: &Path,
    options: &Options,
    slot: usize,
    resume: bool,
) -> Result<(Child, u64), StudyError> {
    let log_path = dir.join(state::LOG);
    let log = OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| io(&log_path, e))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let placement = super::report::Placement {
        host: claim::host_name(),
        device: match gpu_of(options, slot) {
            Some(gpu) => format!("cuda (GPU {gpu})"),
            None => options.device.clone().unwrap_or_else(|| "cpu".into()),
        },
        threads: options.threads_per_job(),
    };
    let placement_path = dir.join(PLACEMENT);
    state::write_atomically(
        &placement_path,
        serde_json::to_string(&placement).expect("placement serialises").as_bytes(),
    )
    .map_err(|e| io(&placement_path, e))?;
    let mut command = trainer.train_command();
    command
        .arg(&study.store.root)
        .args(["--at-version", &study.store.manifest.version.to_string()])
        .args(&study.cells[run.cell].args)
        .args(["--seed", &run.seed.to_string()])
        .arg("--out")
        .arg(dir)
        .args(["--threads", &options.threads_per_job().to_string(), "--quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if resume {
        command.arg("--resume");
    }
    if let Some(device) = &options.device {
        command.args(["--device", device]);
    }
    if let Some(gpu) = gpu_of(options, slot) {
        command.env("CUDA_VISIBLE_DEVICES", gpu);
    }
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| StudyError::Run(format!("starting `kdstore train`: {e}")))?;
    Ok((child, log_start))
}

fn describe_exit(exit: std::process::ExitStatus) -> String {
    match (exit.code(), exit.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended".into(),
    }
}

/// The attempt's last `error:` line in the log (from `start`), or its last line.
fn last_error(log: &Path, start: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(log) {
        let _ = file.seek(SeekFrom::Start(start));
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let found = lines.iter().rev().find(|l| l.starts_with("error:")).or(lines.last());
    found.map_or("no output".into(), |line| line.trim_start_matches("error:").trim().to_string())
}
