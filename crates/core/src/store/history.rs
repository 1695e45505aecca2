//! The versions of a store, one line each: when each was committed and what it changed. Schema 3
//! manifests record both; for older ones the commit time is the manifest file's modification time
//! and the change is worked out from the version before (parts added and removed).

use std::path::Path;

use serde::Serialize;

use super::columns as c;
use super::manifest::{self, rfc3339, Manifest};
use super::StoreError;

/// One committed version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionEntry {
    pub version: u64,
    /// UTC, RFC 3339.
    pub committed_at: String,
    /// What the version changed; for a manifest that cannot be read, why.
    pub change: String,
    pub files: usize,
    /// (view, teacher) rows of the version.
    pub logits_rows: usize,
    /// Whether the manifest could be read.
    pub readable: bool,
}

/// Every committed version of the store at `root`, oldest first.
pub fn history(root: &Path) -> Result<Vec<VersionEntry>, StoreError> {
    let mut entries = Vec::new();
    let mut previous: Option<Manifest> = None;
    for version in manifest::versions(root)? {
        let path = manifest::path_of(root, version);
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        match manifest::read(root, version) {
            Ok(current) => {
                let change = current.change.clone().unwrap_or_else(|| difference(previous.as_ref(), &current));
                entries.push(VersionEntry {
                    version,
                    committed_at: current.committed_at.clone().unwrap_or_else(|| rfc3339(modified)),
                    change,
                    files: current.files.len(),
                    logits_rows: current.files_of(c::LOGITS).map(|f| f.rows).sum(),
                    readable: true,
                });
                previous = Some(current);
            }
            Err(error) => entries.push(VersionEntry {
                version,
                committed_at: rfc3339(modified),
                change: format!("unreadable: {error}"),
                files: 0,
                logits_rows: 0,
                readable: false,
            }),
        }
    }
    Ok(entries)
}

/// What `current` added to and removed from `previous`, by table.
fn difference(previous: Option<&Manifest>, current: &Manifest) -> String {
    let keys = |m: Option<&Manifest>| -> Vec<(String, String)> {
        m.map_or_else(Vec::new, |m| m.files.iter().map(|f| (f.table.clone(), f.key.clone())).collect())
    };
    let (before, after) = (keys(previous), keys(Some(current)));
    let count = |from: &[(String, String)], not_in: &[(String, String)]| {
        let mut by_table: Vec<(String, usize)> = Vec::new();
        for (table, _) in from.iter().filter(|f| !not_in.contains(f)) {
            match by_table.iter_mut().find(|(t, _)| t == table) {
                Some((_, n)) => *n += 1,
                None => by_table.push((table.clone(), 1)),
            }
        }
        by_table.iter().map(|(t, n)| format!("{n} {t}")).collect::<Vec<_>>().join(", ")
    };
    let (added, removed) = (count(&after, &before), count(&before, &after));
    match (added.is_empty(), removed.is_empty()) {
        (true, true) => "pipeline or teachers changed, no parts".into(),
        (false, true) => format!("added {added}"),
        (true, false) => format!("removed {removed}"),
        (false, false) => format!("added {added}; removed {removed}"),
    }
}
