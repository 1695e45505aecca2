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
use crate::source::image_folder::ImageDecode;

/// The store layout this code writes. Schema 3 adds each file's xxh3-128 and each version's commit
/// time and change; schema 4 each teacher's provenance (what it learnt from, its subset, epoch,
/// channels and parameters) and the `subsets` table; schema 5 no longer stores each view's `seed`
/// (a pure function of the pipeline seed, sample id, recipe and replica: 8 bytes a view) and
/// adds top-k teachers. It reads schema 2 to 4 stores as well (checking schema 2 files by sha256,
/// ignoring the seed column of their views) and upgrades them on their next build, which keeps
/// their files and writes new ones in today's layout.
pub const SCHEMA_VERSION: u32 = 5;
/// The oldest store layout this code reads.
pub const OLDEST_SCHEMA_VERSION: u32 = 2;
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
    /// When the version was committed (UTC, RFC 3339; schema 3 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_at: Option<String>,
    /// What the version changed, in words (`views jitter replica 0: 6311 rows`; schema 3 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// xxh3-64 of this manifest's JSON written without the checksum (schema 3 on), so that a
    /// changed byte that still parses is caught as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl Manifest {
    /// The checksum of the manifest as it would be written without one.
    fn content_checksum(&self) -> String {
        let mut plain = self.clone();
        plain.checksum = None;
        let text = serde_json::to_string_pretty(&plain).expect("manifest serialises");
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }
}

/// What the samples are: shape, classes, how the splits were made and the input normalisation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatasetInfo {
    /// Key of the samples stage (hash of the source files, source, split and normalisation config).
    pub samples_key: String,
    pub sample_shape: Vec<usize>,
    pub class_names: Vec<String>,
    /// Names of the channels where the source or pipeline gives them (empty: unnamed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channel_names: Vec<String>,
    pub split_counts: BTreeMap<String, usize>,
    /// How the splits were made, in words (e.g. `test groups [2, 4, ...]; val groups [...]`).
    pub split_rule: String,
    pub normalization: Normalization,
    /// An image folder store's files: where they are and how they decode. Absent when the
    /// `samples` table holds the inputs themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FolderInputs>,
}

/// The folder a store's samples are read from by reference (see `source::image_folder`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FolderInputs {
    /// Absolute; the `samples` table's paths are relative to it.
    pub root: PathBuf,
    pub decode: ImageDecode,
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
    /// xxh3-128 of the file, what reads check (schema 3 on; older stores have only the sha256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xxh3: Option<String>,
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
    /// `f32` or `f16` (dense logits), or for a top-k teacher the type of its log-probabilities.
    pub logits_dtype: String,
    /// Set for a teacher that stores only its top-k classes per row (see `store::topk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logits_format: Option<super::topk::TopK>,
    /// The built-in architecture (`kind`, `width`, `depth`, `input_shape`, `classes`); null for TorchScript.
    #[serde(default)]
    pub arch_spec: serde_json::Value,
    /// Accuracy on the identity views of each split, filled in once those logits are committed.
    #[serde(default)]
    pub accuracy: BTreeMap<String, f64>,
    /// Training record of a builtin teacher (epochs, final loss); empty for TorchScript teachers.
    #[serde(default)]
    pub training: serde_json::Value,
    /// Trainable parameters of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<i64>,
    /// The teacher whose stored logits it learnt from (None: the labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distilled_from: Option<String>,
    /// The subset of the training samples it learnt from (`NAME#k`; its samples are in `subsets`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<usize>,
    /// The epoch after which its weights were taken (`NAME@eN`); None for the kept weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<usize>,
    /// The input channels it sees (None: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_channels: Option<Vec<usize>>,
}

impl TeacherInfo {
    /// How its logits files are laid out: `f32`, `f16` or a top-k format such as `top10-q8`.
    pub fn logits_layout(&self) -> String {
        match &self.logits_format {
            Some(top) => top.describe(),
            None => self.logits_dtype.clone(),
        }
    }

    /// The weights file: a built-in teacher's lives in the store, a TorchScript one where it was given.
    pub fn model_file(&self, store: &Path) -> PathBuf {
        if self.kind == "builtin" {
            store.join(&self.model_path)
        } else {
            PathBuf::from(&self.model_path)
        }
    }
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

    /// The teachers that `patterns` name, each a name or a glob (`ta*`, `big@e?`), in the order
    /// given (a glob's matches in manifest order), each once. A name or glob that matches no
    /// teacher is an error naming it and the teachers there are.
    pub fn resolve_teachers(&self, patterns: &[String]) -> Result<Vec<String>, String> {
        let known = || self.teachers.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
        let mut names: Vec<String> = Vec::new();
        for pattern in patterns {
            let matched: Vec<&str> = if self.teacher(pattern).is_some() {
                vec![pattern.as_str()]
            } else {
                let glob = glob::Pattern::new(pattern).map_err(|e| format!("--teacher {pattern}: {e}"))?;
                self.teachers.iter().map(|t| t.name.as_str()).filter(|name| glob.matches(name)).collect()
            };
            if matched.is_empty() {
                return Err(format!("--teacher {pattern}: the store has no such teacher (it has: {})", known()));
            }
            for name in matched {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
        Ok(names)
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

/// The manifest file of `version`.
pub fn path_of(store: &Path, version: u64) -> PathBuf {
    store.join(MANIFEST_DIR).join(manifest_name(version))
}

/// Reads one version's manifest, refusing unknown formats and schema versions.
pub fn read(store: &Path, version: u64) -> Result<Manifest, StoreError> {
    let path = path_of(store, version);
    let bytes = fs::read(&path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::Corrupt { path: path.clone(), detail: e.to_string() })?;
    if let Some(checksum) = &manifest.checksum {
        let found = manifest.content_checksum();
        if &found != checksum {
            return Err(StoreError::Corrupt {
                path,
                detail: format!("its checksum is {checksum} but its content hashes to {found}"),
            });
        }
    }
    if manifest.version != version {
        return Err(StoreError::Corrupt { path, detail: format!("it says it is version {}", manifest.version) });
    }
    if manifest.format != "kdstore" {
        return Err(StoreError::Corrupt {
            path,
            detail: format!("format is '{}', expected 'kdstore'", manifest.format),
        });
    }
    if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&manifest.schema_version) {
        return Err(StoreError::UnsupportedSchema { path, found: manifest.schema_version, supported: SCHEMA_VERSION });
    }
    if manifest.schema_version >= 3 && manifest.checksum.is_none() {
        return Err(StoreError::Corrupt { path, detail: "it has no checksum, which schema 3 manifests carry".into() });
    }
    Ok(manifest)
}

/// Reads the current (newest) version, or `None` when nothing was ever committed. A newest
/// manifest that cannot be read is an error naming it and the newest version that can be.
pub fn read_latest(store: &Path) -> Result<Option<Manifest>, StoreError> {
    let versions = versions(store)?;
    let Some(&newest) = versions.last() else { return Ok(None) };
    match read(store, newest) {
        Ok(manifest) => Ok(Some(manifest)),
        Err(StoreError::Corrupt { path, detail }) => {
            let readable = versions.iter().rev().skip(1).copied().find(|&v| read(store, v).is_ok());
            Err(StoreError::DamagedManifest { path, detail, readable })
        }
        Err(other) => Err(other),
    }
}

/// Reads version `version`, or the newest one when `None`; a version that is not there is an error
/// listing those that are.
pub fn read_version(store: &Path, version: Option<u64>) -> Result<Manifest, StoreError> {
    let Some(version) = version else {
        return read_latest(store)?.ok_or_else(|| StoreError::NotAStore { path: store.to_path_buf() });
    };
    let versions = versions(store)?;
    if versions.is_empty() {
        return Err(StoreError::NotAStore { path: store.to_path_buf() });
    }
    if !versions.contains(&version) {
        return Err(StoreError::NoSuchVersion {
            path: store.to_path_buf(),
            version,
            kept: describe_versions(&versions),
        });
    }
    read(store, version)
}

/// `1-16` or `3, 7-9`: the versions a store holds, in ranges.
fn describe_versions(versions: &[u64]) -> String {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &v in versions {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == v => *end = v,
            _ => ranges.push((v, v)),
        }
    }
    ranges.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect::<Vec<_>>().join(", ")
}

/// The current time as RFC 3339 UTC, `2026-12-01T10:22:03Z`.
pub fn now_rfc3339() -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc3339(seconds)
}

/// Seconds since the Unix epoch as RFC 3339 UTC (the civil-from-days algorithm of H. Hinnant).
pub fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let time = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", time / 3600, time % 3600 / 60, time % 60)
}

/// Sets the manifest's checksum to that of its content (the last thing done before writing it).
pub fn seal(manifest: &mut Manifest) {
    manifest.checksum = Some(manifest.content_checksum());
}

/// Commits `manifest` as the next version: write to a temporary file, fsync, rename.
pub fn commit(store: &Path, manifest: &mut Manifest) -> Result<u64, StoreError> {
    let dir = store.join(MANIFEST_DIR);
    fs::create_dir_all(&dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
    let next = versions(store)?.last().map_or(1, |v| v + 1);
    manifest.version = next;
    manifest.committed_at = Some(now_rfc3339());
    seal(manifest);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates_are_right_across_leap_years() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_122_923), "2026-12-01T11:02:03Z");
    }

    #[test]
    fn teachers_resolve_by_name_and_glob_in_order_each_once() {
        let mut manifest = Manifest::default();
        for name in ["big", "ta1", "ta2", "big@e2", "small"] {
            manifest.teachers.push(TeacherInfo { name: name.into(), ..Default::default() });
        }
        let resolve =
            |patterns: &[&str]| manifest.resolve_teachers(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        assert_eq!(resolve(&["small", "ta*"]).unwrap(), ["small", "ta1", "ta2"]);
        assert_eq!(resolve(&["big@e?", "big", "big*"]).unwrap(), ["big@e2", "big"]);
        let error = resolve(&["ta*", "huge"]).unwrap_err();
        assert!(error.contains("--teacher huge: the store has no such teacher (it has: big, ta1"), "{error}");
        assert!(resolve(&["x*"]).unwrap_err().contains("--teacher x*"));
    }

    #[test]
    fn a_changed_value_that_still_parses_fails_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = Manifest { format: "kdstore".into(), schema_version: SCHEMA_VERSION, ..Default::default() };
        manifest.dataset.normalization.mean = vec![0.1, 1.0 / 3.0];
        assert_eq!(commit(dir.path(), &mut manifest).unwrap(), 1);
        assert_eq!(read(dir.path(), 1).unwrap(), manifest);
        let path = path_of(dir.path(), 1);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("\"format\": \"kdstore\"", "\"format\":  \"kdstore\"")).unwrap();
        assert!(read(dir.path(), 1).is_ok(), "white space is not content");
        fs::write(&path, text.replace("0.1", "0.2")).unwrap();
        let error = read(dir.path(), 1).unwrap_err().to_string();
        assert!(error.contains("checksum"), "{error}");
        fs::write(&path, &text.as_bytes()[..text.len() / 2]).unwrap();
        assert!(matches!(read(dir.path(), 1), Err(StoreError::Corrupt { .. })));
        assert!(matches!(read_latest(dir.path()), Err(StoreError::DamagedManifest { readable: None, .. })));
    }

    #[test]
    fn versions_are_described_in_ranges() {
        assert_eq!(describe_versions(&[1, 2, 3, 7, 9, 10]), "1-3, 7, 9-10");
    }
}
