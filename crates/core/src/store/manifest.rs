//! The versioned manifest: one JSON file per committed version under `_manifest/`, named by a
//! zero-padded version number. A commit writes the whole manifest to a temporary file, syncs it and
//! renames it into place, so readers only ever see complete versions; the current version is the
//! highest-numbered file. Readers refuse a schema version they do not understand.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StoreError;

/// The store layout this code reads and writes.
pub const SCHEMA_VERSION: u32 = 2;
pub const MANIFEST_DIR: &str = "_manifest";

/// One committed version of a store.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub schema_version: u32,
    pub version: u64,
    pub tool_version: String,
    /// The pipeline as resolved (defaults filled in) and the hash of that resolved form.
    pub pipeline: serde_json::Value,
    pub pipeline_hash: String,
    pub seed: u64,
    pub dataset: DatasetInfo,
    pub files: Vec<DataFile>,
    pub teachers: Vec<TeacherInfo>,
}

/// What the samples are: shape, classes, how the splits were made and the input normalisation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatasetInfo {
    /// Key of the samples stage (hash of the source files, source, split and normalisation config).
    pub samples_key: String,
    pub sample_shape: Vec<usize>,
    pub class_names: Vec<String>,
    pub split_counts: BTreeMap<String, usize>,
    /// How the splits were made, in words (e.g. `test groups [2, 4, ...]; val groups [...]`).
    pub split_rule: String,
    pub normalization: Normalization,
}

/// Per-channel affine normalisation `(x - mean[c]) / std[c]` applied to every view before the
/// teacher sees it (and before a student does). `mode = "none"` stores mean 0, std 1.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    pub mode: String,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// A Parquet file that belongs to the version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    pub table: String,
    /// Relative to the store directory.
    pub path: String,
    /// Content key of the stage output (hash of its resolved config and inputs).
    pub key: String,
    pub rows: usize,
    pub bytes: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<String>,
    /// For logits: the key of the views part they label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views_key: Option<String>,
}

/// Provenance of one teacher.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TeacherInfo {
    pub name: String,
    pub key: String,
    /// `builtin` or `torchscript`.
    pub kind: String,
    pub architecture: String,
    /// Model file relative to the store (builtin teachers) or as given in the pipeline.
    pub model_path: String,
    pub model_sha256: String,
    pub label_space: Vec<String>,
    pub input_layout: String,
    pub logits_dtype: String,
    /// The built-in architecture (`kind`, `width`, `depth`, `input_shape`, `classes`); null for TorchScript.
    #[serde(default)]
    pub arch_spec: serde_json::Value,
    /// Accuracy on the identity views of each split, filled in once those logits are committed.
    #[serde(default)]
    pub accuracy: BTreeMap<String, f64>,
    /// Training record of a builtin teacher (epochs, final loss); empty for TorchScript teachers.
    #[serde(default)]
    pub training: serde_json::Value,
}

impl Manifest {
    /// The dtype a teacher's `embeddings` are stored in, from the resolved pipeline (the embeddings
    /// files' keys include it, so the files always match the current pipeline).
    pub fn embeddings_dtype(&self, teacher: &str) -> Option<&str> {
        self.pipeline["teacher"]
            .as_array()?
            .iter()
            .find(|t| t["name"].as_str() == Some(teacher))
            .and_then(|t| t["embeddings"].as_str())
    }

    pub fn file_path(&self, store: &Path, file: &DataFile) -> PathBuf {
        store.join(&file.path)
    }

    pub fn files_of<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a DataFile> + 'a {
        self.files.iter().filter(move |f| f.table == table)
    }

    pub fn teacher(&self, name: &str) -> Option<&TeacherInfo> {
        self.teachers.iter().find(|t| t.name == name)
    }
}

fn manifest_name(version: u64) -> String {
    format!("{version:08}.json")
}

/// Lists the committed versions of a store, oldest first.
pub fn versions(store: &Path) -> Result<Vec<u64>, StoreError> {
    let dir = store.join(MANIFEST_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StoreError::Io { path: dir, source }),
    };
    let mut versions = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(number) = name.strip_suffix(".json").and_then(|n| n.parse::<u64>().ok()) {
            versions.push(number);
        }
    }
    versions.sort_unstable();
    Ok(versions)
}

/// Reads one version's manifest, refusing unknown formats and schema versions.
pub fn read(store: &Path, version: u64) -> Result<Manifest, StoreError> {
    let path = store.join(MANIFEST_DIR).join(manifest_name(version));
    let text = fs::read_to_string(&path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt { path: path.clone(), detail: e.to_string() })?;
    if manifest.format != "kdstore" {
        return Err(StoreError::Corrupt {
            path,
            detail: format!("format is '{}', expected 'kdstore'", manifest.format),
        });
    }
    if manifest.schema_version != SCHEMA_VERSION {
        return Err(StoreError::UnsupportedSchema { path, found: manifest.schema_version, supported: SCHEMA_VERSION });
    }
    Ok(manifest)
}

/// Reads the current (newest) version, or `None` when nothing was ever committed.
pub fn read_latest(store: &Path) -> Result<Option<Manifest>, StoreError> {
    match versions(store)?.last() {
        Some(&version) => read(store, version).map(Some),
        None => Ok(None),
    }
}

/// Commits `manifest` as the next version: write to a temporary file, fsync, rename.
pub fn commit(store: &Path, manifest: &mut Manifest) -> Result<u64, StoreError> {
    let dir = store.join(MANIFEST_DIR);
    fs::create_dir_all(&dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
    let next = versions(store)?.last().map_or(1, |v| v + 1);
    manifest.version = next;
    let text = serde_json::to_string_pretty(manifest).expect("manifest serialises");
    let final_path = dir.join(manifest_name(next));
    let tmp_path = dir.join(format!(".{}.tmp", manifest_name(next)));
    let io = |source| StoreError::Io { path: tmp_path.clone(), source };
    let mut file = fs::File::create(&tmp_path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp_path, &final_path).map_err(|source| StoreError::Io { path: final_path.clone(), source })?;
    sync_dir(&dir);
    Ok(next)
}

/// Makes a rename durable; best effort, since not every file system supports syncing a directory.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}
