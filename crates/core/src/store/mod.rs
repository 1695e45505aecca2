//! The soft-label store: a directory of Parquet tables (`samples`, `views`, `logits` partitioned by
//! teacher) plus a versioned manifest. Only this module and `query` touch Parquet. Writers put each
//! data file in place under a name derived from its content key before the manifest that lists it
//! is committed, so a reader sees either the old version or the new one, never a half-written file.

pub mod columns;
pub mod gc;
pub mod history;
pub mod integrity;
pub mod manifest;
pub mod parts;
pub mod reader;
pub mod stats;
pub mod topk;
pub mod writer;

use std::fs;
use std::path::{Path, PathBuf};

pub use manifest::{DataFile, DatasetInfo, Manifest, Normalization, TeacherInfo};
pub use parts::PartFilter;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store {path}: reading its samples: {source}")]
    Input {
        path: PathBuf,
        #[source]
        source: crate::source::SourceError,
    },
    #[error("{path} is not a kdstore store (no committed version under _manifest/)")]
    NotAStore { path: PathBuf },
    #[error("{path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: store schema version {found} is not supported by this kdstore (it reads version {supported})")]
    UnsupportedSchema { path: PathBuf, found: u32, supported: u32 },
    #[error("{path}: table {table}: {source}")]
    Parquet {
        path: PathBuf,
        table: String,
        #[source]
        source: polars::error::PolarsError,
    },
    #[error("{path}: table {table}: a Parquet file does not decode ({detail}) although it matches the manifest's checksums, so it was written wrongly; `kdstore verify {path} --deep` names the file")]
    Malformed { path: PathBuf, table: String, detail: String },
    #[error("store {path} is locked by another build ({lock}); wait for it to finish")]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("{path}: column {column}: {detail}")]
    Column { path: PathBuf, column: String, detail: String },
    #[error("{path} is damaged ({detail}); the newest readable version is {}", match readable { Some(v) => format!("{v}: add --at-version {v} to read it, or `kdstore build PIPELINE --repair` to commit a new version"), None => "none".to_string() })]
    DamagedManifest { path: PathBuf, detail: String, readable: Option<u64> },
    #[error("{path} has no version {version} (it holds versions {kept})")]
    NoSuchVersion { path: PathBuf, version: u64, kept: String },
    #[error("{path} (table {table}) is damaged or was changed: the manifest expects {expected}, but {found}; nothing was read from it (`kdstore build PIPELINE --repair` recomputes it)")]
    Damaged { path: PathBuf, table: String, expected: String, found: String },
}

/// The three splits every store knows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Split> {
        Split::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A store directory opened for reading at one committed version.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
    pub manifest: Manifest,
}

impl Store {
    /// Opens the newest committed version.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Store::open_at(root, None)
    }

    /// Opens version `version` (time travel), or the newest when `None`.
    pub fn open_at(root: &Path, version: Option<u64>) -> Result<Store, StoreError> {
        if !root.is_dir() {
            return Err(StoreError::Io {
                path: root.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            });
        }
        let manifest = manifest::read_version(root, version)?;
        Ok(Store { root: root.to_path_buf(), manifest })
    }
}

/// An exclusive lock on a store for the duration of a build; released when dropped or when the
/// process dies (it is an OS file lock, so a killed build never leaves a stale lock behind).
#[derive(Debug)]
pub struct WriteLock {
    _file: fs::File,
}

impl WriteLock {
    pub fn acquire(root: &Path) -> Result<WriteLock, StoreError> {
        fs::create_dir_all(root).map_err(|source| StoreError::Io { path: root.to_path_buf(), source })?;
        let lock = root.join("_lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|source| StoreError::Io { path: lock.clone(), source })?;
        match file.try_lock() {
            Ok(()) => Ok(WriteLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path: root.to_path_buf(), lock }),
            Err(fs::TryLockError::Error(source)) => Err(StoreError::Io { path: lock, source }),
        }
    }
}
