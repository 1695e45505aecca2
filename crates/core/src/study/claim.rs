//! Claims: how several `kdstore study` processes (two terminals, or cluster tasks on a shared
//! disk) never run the same run at once. A run is claimed by creating `claim.<generation>` in its
//! folder with `create_new` (atomic, also over NFS); the holder keeps its modification time fresh
//! (the heartbeat). A claim whose heartbeat is older than the timeout — or whose process on this
//! host is gone — is dead, and is taken over by creating the next generation, which again only one
//! process can do. After claiming, the caller re-reads the run's state: a run finished by the
//! previous holder is done, not redone.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const PREFIX: &str = "claim.";

/// A claim this process holds.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
}

/// Who holds a claim (its file's content).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
}

impl Holder {
    pub fn this_process() -> Holder {
        Holder { host: host_name(), pid: std::process::id() }
    }

    fn is_gone(&self) -> bool {
        self.host == host_name() && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The newest claim file in `dir` and its generation.
fn newest(dir: &Path) -> std::io::Result<Option<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(generation) = name.strip_prefix(PREFIX).and_then(|g| g.parse::<u64>().ok()) {
            if best.as_ref().is_none_or(|(b, _)| generation > *b) {
                best = Some((generation, entry.path()));
            }
        }
    }
    Ok(best)
}

/// The live holder of `dir`'s run, if any: the newest claim, unless its heartbeat is older than
/// `timeout` or its process on this host has ended.
pub fn live_holder(dir: &Path, timeout: Duration) -> std::io::Result<Option<Holder>> {
    let Some((_, path)) = newest(dir)? else { return Ok(None) };
    Ok(read_live(&path, timeout))
}

fn read_live(path: &Path, timeout: Duration) -> Option<Holder> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    let age = SystemTime::now().duration_since(modified).unwrap_or_default();
    let holder: Holder = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    (age <= timeout && !holder.is_gone()).then_some(holder)
}

/// Claims `dir`'s run for this process, or gives None when a live process holds it (or wins the
/// race to take over a dead claim).
pub fn try_claim(dir: &Path, timeout: Duration) -> std::io::Result<Option<Claim>> {
    std::fs::create_dir_all(dir)?;
    let generation = match newest(dir)? {
        None => 1,
        Some((_, path)) if read_live(&path, timeout).is_some() => return Ok(None),
        Some((generation, _)) => generation + 1,
    };
    let path = dir.join(format!("{PREFIX}{generation}"));
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(e),
    };
    file.write_all(serde_json::to_string(&Holder::this_process()).expect("holder serialises").as_bytes())?;
    file.sync_all()?;
    // The older generations are dead; removing them keeps the folder readable.
    for older in 1..generation {
        let _ = std::fs::remove_file(dir.join(format!("{PREFIX}{older}")));
    }
    Ok(Some(Claim { path }))
}

impl Claim {
    /// Refreshes the heartbeat; false when the claim was taken over (a newer generation exists or
    /// the file is gone), and the holder must stop.
    pub fn beat(&self) -> bool {
        let still_newest =
            self.path.parent().and_then(|dir| newest(dir).ok().flatten()).is_some_and(|(_, p)| p == self.path);
        still_newest
            && File::options().write(true).open(&self.path).and_then(|f| f.set_modified(SystemTime::now())).is_ok()
    }

    /// Gives the run up (after its outcome is written).
    pub fn release(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_at_a_time_and_a_dead_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let long = Duration::from_secs(60);
        let first = try_claim(&run, long).unwrap().expect("free run");
        assert!(try_claim(&run, long).unwrap().is_none(), "held by a live process");
        assert_eq!(live_holder(&run, long).unwrap(), Some(Holder::this_process()));
        // A claim whose heartbeat is older than the timeout is dead: the next generation wins.
        std::thread::sleep(Duration::from_millis(30));
        let second = try_claim(&run, Duration::from_millis(10)).unwrap().expect("stale claim");
        assert!(!first.beat(), "the old holder learns that it lost the run");
        assert!(second.beat());
        assert!(run.join("claim.2").exists() && !run.join("claim.1").exists());
        second.release();
        assert_eq!(live_holder(&run, long).unwrap(), None);
    }

    #[test]
    fn a_claim_of_a_process_that_ended_is_dead_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let gone = Holder { host: host_name(), pid: u32::MAX - 1 };
        std::fs::write(dir.path().join("claim.4"), serde_json::to_string(&gone).unwrap()).unwrap();
        let claim = try_claim(dir.path(), Duration::from_secs(3600)).unwrap().expect("dead holder");
        assert!(dir.path().join("claim.5").exists());
        claim.release();
    }
}
