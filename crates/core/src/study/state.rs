//! A run's state, read from its folder and nothing else (so that `--plan`, the report and the
//! tables can never disagree with the runs): `results.json` that parses means done; a live claim
//! means running; `attempts.json` lists the failed attempts; a checkpoint means an interrupted
//! training that `--resume` continues.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::claim::{self, Holder};

pub const RESULTS: &str = "results.json";
pub const ATTEMPTS: &str = "attempts.json";
pub const LOG: &str = "train.log";

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Done,
    Running(Holder),
    /// Failed as many times as the study allows: a rerun does not retry it.
    Failed,
    /// Failed before, will be tried again.
    Retry,
    /// Stopped after a checkpoint: resumes from it.
    Interrupted,
    New,
}

impl Status {
    pub fn name(&self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Running(_) => "running",
            Status::Failed => "failed",
            Status::Retry => "retry",
            Status::Interrupted => "interrupted",
            Status::New => "new",
        }
    }

    /// Whether a study process would start (or resume) it.
    pub fn pending(&self) -> bool {
        matches!(self, Status::Retry | Status::Interrupted | Status::New)
    }
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// `exit code 1`, `killed by signal 9`, …
    pub exit: String,
    /// The training's last `error:` line, or the end of its log.
    pub error: String,
}

#[derive(Debug, Clone)]
pub struct RunState {
    pub status: Status,
    pub attempts: Vec<Attempt>,
    /// The training's `results.json`, when done.
    pub results: Option<serde_json::Value>,
}

/// Reads a run's state from `dir`. `has_checkpoint` says whether train left a checkpoint there.
pub fn read(
    dir: &Path,
    max_attempts: u32,
    claim_timeout: Duration,
    has_checkpoint: &dyn Fn(&Path) -> bool,
) -> RunState {
    let results = read_results(dir);
    let attempts = read_attempts(dir);
    let status = if results.is_some() {
        Status::Done
    } else if let Some(holder) = claim::live_holder(dir, claim_timeout).ok().flatten() {
        Status::Running(holder)
    } else if attempts.len() >= max_attempts as usize {
        Status::Failed
    } else if has_checkpoint(dir) {
        Status::Interrupted
    } else if !attempts.is_empty() {
        Status::Retry
    } else {
        Status::New
    };
    RunState { status, attempts, results }
}

/// Whether the run is settled whoever holds its claim: done, or failed as often as allowed.
pub fn settled(dir: &Path, max_attempts: u32) -> bool {
    read_results(dir).is_some() || read_attempts(dir).len() >= max_attempts as usize
}

pub fn read_results(dir: &Path) -> Option<serde_json::Value> {
    std::fs::read_to_string(dir.join(RESULTS)).ok().and_then(|text| serde_json::from_str(&text).ok())
}

pub fn read_attempts(dir: &Path) -> Vec<Attempt> {
    std::fs::read_to_string(dir.join(ATTEMPTS))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Adds a failed attempt to `attempts.json` (written whole to a temporary file, then renamed).
pub fn record_failure(dir: &Path, attempt: Attempt) -> std::io::Result<usize> {
    let mut attempts = read_attempts(dir);
    attempts.push(attempt);
    write_atomically(
        &dir.join(ATTEMPTS),
        serde_json::to_string_pretty(&attempts).expect("attempts serialise").as_bytes(),
    )?;
    Ok(attempts.len())
}

/// Writes `path` so that readers see the old content or the new, never a part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}
