//! `kdstore gc STORE --keep N`: keeps the newest N committed versions and removes every file that
//! only older versions use — their manifests, then data and model files no kept version lists
//! (parts the pipeline no longer names, files of builds that were interrupted). It holds the
//! store's write lock, so no build runs meanwhile, and it never removes a file of a kept version.
//! Removing the old manifests first means that an interrupted gc leaves only unlisted files, which
//! the next gc removes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::columns as c;
use super::manifest::{self, MANIFEST_DIR};
use super::{StoreError, WriteLock};

/// What a gc removed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct GcReport {
    pub kept: Vec<u64>,
    pub removed_versions: Vec<u64>,
    pub removed_files: usize,
    pub freed_bytes: u64,
}

/// The directories that hold data and model files.
const DATA_DIRS: [&str; 6] = [c::SAMPLES, c::VIEWS, c::LOGITS, c::EMBEDDINGS, c::SUBSETS, "models"];

/// Keeps the newest `keep` (at least 1) versions of the store at `root`.
pub fn gc(root: &Path, keep: usize) -> Result<GcReport, StoreError> {
    let keep = keep.max(1);
    let _lock = WriteLock::acquire(root)?;
    let versions = manifest::versions(root)?;
    if versions.is_empty() {
        return Err(StoreError::NotAStore { path: root.to_path_buf() });
    }
    let split = versions.len().saturating_sub(keep);
    let (old, kept) = versions.split_at(split);
    let mut referenced: BTreeSet<PathBuf> = BTreeSet::new();
    for &version in kept {
        // A kept manifest that cannot be read could list any file: remove nothing.
        let m = manifest::read(root, version)?;
        referenced.extend(m.files.iter().map(|f| root.join(&f.path)));
        referenced.extend(m.teachers.iter().filter(|t| t.kind == "builtin").map(|t| root.join(&t.model_path)));
    }
    let mut report = GcReport { kept: kept.to_vec(), ..Default::default() };
    let remove = |path: &Path, report: &mut GcReport| -> Result<(), StoreError> {
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        std::fs::remove_file(path).map_err(|source| StoreError::Io { path: path.to_path_buf(), source })?;
        report.removed_files += 1;
        report.freed_bytes += bytes;
        Ok(())
    };
    for &version in old {
        remove(&manifest::path_of(root, version), &mut report)?;
        report.removed_versions.push(version);
    }
    manifest::sync_dir(&root.join(MANIFEST_DIR));
    for dir in DATA_DIRS {
        let mut stack = vec![root.join(dir)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path);
                } else if !referenced.contains(&path) {
                    remove(&path, &mut report)?;
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DataFile, Manifest};

    fn file(path: &str) -> DataFile {
        DataFile {
            table: c::VIEWS.into(),
            path: path.into(),
            key: path.into(),
            rows: 1,
            bytes: 1,
            sha256: String::new(),
            xxh3: None,
            recipe: None,
            replica: None,
            teacher: None,
            views_key: None,
        }
    }

    #[test]
    fn files_only_old_versions_list_go_and_the_kept_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("views")).unwrap();
        for name in ["a", "b", "c", "orphan"] {
            std::fs::write(root.join(format!("views/{name}.parquet")), b"x").unwrap();
        }
        let mut m =
            Manifest { format: "kdstore".into(), schema_version: manifest::SCHEMA_VERSION, ..Default::default() };
        for files in [
            vec!["views/a.parquet"],
            vec!["views/a.parquet", "views/b.parquet"],
            vec!["views/b.parquet", "views/c.parquet"],
        ] {
            m.files = files.into_iter().map(file).collect();
            manifest::commit(root, &mut m).unwrap();
        }
        let report = gc(root, 2).unwrap();
        assert_eq!(report.kept, [2, 3]);
        assert_eq!(report.removed_versions, [1]);
        assert_eq!(report.removed_files, 2, "version 1's manifest and the orphan; a.parquet is still in version 2");
        assert!(root.join("views/a.parquet").exists() && !root.join("views/orphan.parquet").exists());
        let report = gc(root, 1).unwrap();
        assert_eq!((report.kept, report.removed_versions, report.removed_files), (vec![3], vec![2], 2));
        assert!(!root.join("views/a.parquet").exists() && root.join("views/b.parquet").exists());
        assert_eq!(manifest::read_latest(root).unwrap().unwrap().version, 3);
    }
}
