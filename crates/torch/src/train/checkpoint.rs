//! Checkpoints of a training run, one per finished epoch, so that an interrupted `kdstore train`
//! resumes where it stopped and ends with the same weights, bit for bit, as a run that was never
//! interrupted. A checkpoint is a folder `OUT/checkpoints/epoch-NNNN` holding the current weights,
//! the best-on-validation weights, the optimiser's state and `state.json` (the run's configuration,
//! the epochs' metrics and the kept epoch). It is written into a temporary folder and renamed into
//! place, so a checkpoint that exists is complete; older ones are removed after the rename.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::EpochMetrics;

/// What a run has done so far, besides its weights.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs finished.
    pub epochs_done: usize,
    pub epochs: Vec<EpochMetrics>,
    /// The kept epoch (1-based) and its validation accuracy, if any epoch was kept yet.
    pub best: Option<(usize, Option<f64>)>,
    pub train_seconds: f64,
    pub trained_views: usize,
    /// Training steps done, over all epochs (self-paced weights' λ moves with them).
    #[serde(default)]
    pub steps_done: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    /// The run's configuration, without the settings that may change on resume.
    config: serde_json::Value,
    state: RunState,
}

/// The settings that may differ between a run and its resumption: they do not change the result.
const FREE_ON_RESUME: &[&str] = &["threads", "verify_replay", "device"];

fn comparable(config: &serde_json::Value) -> serde_json::Value {
    let mut config = config.clone();
    if let Some(object) = config.as_object_mut() {
        for key in FREE_ON_RESUME {
            object.remove(*key);
        }
    }
    config
}

/// The checkpoints folder of an output folder.
pub fn folder(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// A complete checkpoint on disk.
#[derive(Debug)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub state: RunState,
    config: serde_json::Value,
}

impl Checkpoint {
    /// Fails, naming every setting that differs, unless `config` is the configuration this
    /// checkpoint was written with (up to the settings that do not change the result).
    pub fn check_config(&self, config: &serde_json::Value) -> Result<(), String> {
        let (stored, given) = (comparable(&self.config), comparable(config));
        if stored == given {
            return Ok(());
        }
        let keys: std::collections::BTreeSet<&String> =
            stored.as_object().into_iter().chain(given.as_object()).flat_map(|o| o.keys()).collect();
        let differing: Vec<String> = keys
            .into_iter()
            .filter(|k| stored.get(k.as_str()) != given.get(k.as_str()))
            .map(|k| {
                format!(
                    "{k}: {} then, {} now",
                    stored.get(k.as_str()).unwrap_or(&serde_json::Value::Null),
                    given.get(k.as_str()).unwrap_or(&serde_json::Value::Null)
                )
            })
            .collect();
        Err(format!("the interrupted run was started with other settings ({})", differing.join("; ")))
    }
}

/// The file of a checkpoint folder's current weights, with the student's extension (`safetensors`
/// or `pt`).
pub fn last_weights(dir: &Path, extension: &str) -> PathBuf {
    dir.join(format!("last.{extension}"))
}

/// The file of a checkpoint folder's best-on-validation weights.
pub fn best_weights(dir: &Path, extension: &str) -> PathBuf {
    dir.join(format!("best.{extension}"))
}

/// The file of a checkpoint folder's optimiser state.
pub fn optimizer_state(dir: &Path) -> PathBuf {
    dir.join("optimizer.safetensors")
}

/// The file of a checkpoint folder's weights of heads that losses train with the student (`dlkd`).
pub fn heads_weights(dir: &Path) -> PathBuf {
    dir.join("heads.safetensors")
}

/// The newest complete checkpoint under `out`, if any.
pub fn latest(out: &Path) -> Result<Option<Checkpoint>, String> {
    let folder = folder(out);
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", folder.display())),
    };
    let mut newest: Option<(usize, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(epoch) = name.strip_prefix("epoch-").and_then(|n| n.parse::<usize>().ok()) {
            if newest.as_ref().is_none_or(|(e, _)| epoch > *e) {
                newest = Some((epoch, entry.path()));
            }
        }
    }
    let Some((_, dir)) = newest else { return Ok(None) };
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: StateFile = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(Checkpoint { dir, state: file.state, config: file.config }))
}

/// Writes the checkpoint of `state.epochs_done` and returns its folder: `write_files` puts the
/// weights and optimiser state into the folder it is given (named as [`last_weights`],
/// [`best_weights`], [`optimizer_state`] and [`heads_weights`] name them); then the folder is
/// renamed into place and older checkpoints are removed.
pub fn write(
    out: &Path,
    config: &serde_json::Value,
    state: &RunState,
    write_files: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let folder = folder(out);
    let name = format!("epoch-{:04}", state.epochs_done);
    let temporary = folder.join(format!(".{name}.tmp"));
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |e: std::io::Error| format!("{path}: {e}")
    };
    if temporary.exists() {
        std::fs::remove_dir_all(&temporary).map_err(io(&temporary))?;
    }
    std::fs::create_dir_all(&temporary).map_err(io(&temporary))?;
    write_files(&temporary)?;
    let state_path = temporary.join("state.json");
    let file = StateFile { config: config.clone(), state: state.clone() };
    std::fs::write(&state_path, serde_json::to_string_pretty(&file).expect("state serialises"))
        .map_err(io(&state_path))?;
    let target = folder.join(&name);
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(io(&target))?;
    }
    std::fs::rename(&temporary, &target).map_err(io(&target))?;
    for entry in std::fs::read_dir(&folder).map_err(io(&folder))?.flatten() {
        let other = entry.file_name().to_string_lossy().to_string();
        if other != name && other.starts_with("epoch-") {
            std::fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(epochs_done: usize) -> RunState {
        RunState { epochs_done, best: Some((1, Some(0.5))), ..Default::default() }
    }

    #[test]
    fn the_newest_complete_checkpoint_is_found_and_older_ones_go() {
        let out = tempfile::tempdir().unwrap();
        let config = serde_json::json!({"epochs": 5, "threads": 2});
        assert!(latest(out.path()).unwrap().is_none());
        for epoch in 1..=3 {
            write(out.path(), &config, &state(epoch), |dir| {
                std::fs::write(dir.join("last.safetensors"), [epoch as u8]).map_err(|e| e.to_string())
            })
            .unwrap();
        }
        // A checkpoint that was being written when the run died is not a checkpoint.
        std::fs::create_dir_all(folder(out.path()).join(".epoch-0004.tmp")).unwrap();
        let found = latest(out.path()).unwrap().unwrap();
        assert_eq!(found.state.epochs_done, 3);
        assert_eq!(std::fs::read(last_weights(&found.dir, "safetensors")).unwrap(), [3]);
        let kept: Vec<_> = std::fs::read_dir(folder(out.path())).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(kept.iter().filter(|n| n.to_string_lossy().starts_with("epoch-")).count(), 1);
    }

    #[test]
    fn resuming_needs_the_same_settings_but_threads_and_device() {
        let out = tempfile::tempdir().unwrap();
        let config = serde_json::json!({"epochs": 5, "seed": 1, "threads": 2, "device": "cpu"});
        write(out.path(), &config, &state(2), |_| Ok(())).unwrap();
        let found = latest(out.path()).unwrap().unwrap();
        found.check_config(&serde_json::json!({"epochs": 5, "seed": 1, "threads": 8, "device": "cuda"})).unwrap();
        let err = found.check_config(&serde_json::json!({"epochs": 6, "seed": 1})).unwrap_err();
        assert_eq!(err, "the interrupted run was started with other settings (epochs: 5 then, 6 now)");
    }
}
