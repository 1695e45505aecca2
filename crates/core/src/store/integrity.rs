//! Every data file is checked against the manifest before its data is used: its size and its
//! content hash (xxh3-128, recorded at build time beside the sha256; stores built before it have
//! only the sha256, which is checked instead). Hashing a large store on every command would cost
//! more than the query, so a file that passed is remembered, outside the store, by what the file
//! system says about it — device, inode, size, modification and change time. Writing to a file, or
//! setting its times back, changes its change time, which no user can set, so a file that was
//! touched in any way is hashed again before it is read. A store copied elsewhere is hashed once
//! more, as are all files whose record is missing or unreadable.
//!
//! The record lives in `$KDSTORE_CACHE_DIR` (default `$XDG_CACHE_HOME/kdstore`, else
//! `~/.cache/kdstore`) under `verified/`, one JSON file per store directory; when it cannot be
//! written every read simply hashes again. Files this process wrote or checked are remembered in
//! memory as well. `kdstore verify` ignores both records and hashes everything.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::Xxh3;

use super::{DataFile, StoreError};

/// The digest a data file must have: xxh3-128 when the manifest records one, else sha256.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expected {
    Xxh3(String),
    Sha256(String),
}

impl Expected {
    pub fn of(file: &DataFile) -> Expected {
        match &file.xxh3 {
            Some(xxh3) => Expected::Xxh3(xxh3.clone()),
            None => Expected::Sha256(file.sha256.clone()),
        }
    }

    fn label(&self) -> String {
        match self {
            Expected::Xxh3(hex) => format!("xxh3 {hex}"),
            Expected::Sha256(hex) => format!("sha256 {hex}"),
        }
    }
}

/// Size, SHA-256 and xxh3-128 of a file, in one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub bytes: u64,
    pub sha256: String,
    pub xxh3: String,
}

/// Reads `path` once and computes both digests.
pub fn digests(path: &Path) -> Result<Digests, std::io::Error> {
    hash_file(path, true).map(|(bytes, xxh3, sha256)| Digests { bytes, sha256: sha256.unwrap_or_default(), xxh3 })
}

/// `(size, xxh3-128 hex, sha256 hex when asked)`.
fn hash_file(path: &Path, with_sha256: bool) -> Result<(u64, String, Option<String>), std::io::Error> {
    let mut file = fs::File::open(path)?;
    let mut xxh3 = Xxh3::new();
    let mut sha = with_sha256.then(Sha256::new);
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        xxh3.update(&buffer[..read]);
        if let Some(sha) = sha.as_mut() {
            sha.update(&buffer[..read]);
        }
    }
    Ok((bytes, format!("{:032x}", xxh3.digest128()), sha.map(|s| format!("{:x}", s.finalize()))))
}

/// Checks one file against what the manifest expects, hashing it in full: `Ok(())` or the
/// mismatch as an error naming the file, its table and the expectation.
pub fn check_file(root: &Path, file: &DataFile) -> Result<(), StoreError> {
    let path = root.join(&file.path);
    let damaged = |found: String| StoreError::Damaged {
        path: path.clone(),
        table: file.table.clone(),
        expected: format!("{} bytes, {}", file.bytes, Expected::of(file).label()),
        found,
    };
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(damaged("there is no such file".into())),
        Err(source) => return Err(StoreError::Io { path, source }),
    };
    if meta.len() != file.bytes {
        return Err(damaged(format!("the file has {} bytes", meta.len())));
    }
    let expected = Expected::of(file);
    let (_, xxh3, sha256) = hash_file(&path, matches!(expected, Expected::Sha256(_)))
        .map_err(|source| StoreError::Io { path: path.clone(), source })?;
    let found = match &expected {
        Expected::Xxh3(_) => Expected::Xxh3(xxh3),
        Expected::Sha256(_) => Expected::Sha256(sha256.unwrap_or_default()),
    };
    if found != expected {
        return Err(damaged(format!("the file has other content ({})", found.label())));
    }
    Ok(())
}

/// What the file system says about a file: if any of it changes, the file is checked again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Identity {
    fn of(path: &Path) -> Option<Identity> {
        let meta = fs::metadata(path).ok()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(Identity {
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
                mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
                ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            None
        }
    }
}

/// One verified file in the record: its identity and the digest it matched.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Verified {
    identity: Identity,
    digest: String,
}

/// The on-disk record of one store's verified files, by path relative to the store.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    files: BTreeMap<String, Verified>,
}

/// Files checked or written by this process: (absolute path, expected digest) → the identity the
/// file had then, so that a file changed since is checked again even within one process.
type Checked = HashMap<(PathBuf, Expected), Identity>;
static CHECKED: Mutex<Option<Checked>> = Mutex::new(None);

fn remembered(path: &Path, expected: &Expected, identity: Option<&Identity>) -> bool {
    let checked = CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    let known = checked.as_ref().and_then(|map| map.get(&(path.to_path_buf(), expected.clone())));
    matches!((known, identity), (Some(known), Some(now)) if known == now)
}

fn remember(path: &Path, expected: Expected, identity: Option<Identity>) {
    let Some(identity) = identity else { return };
    CHECKED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert((path.to_path_buf(), expected), identity);
}

/// Records that this process just wrote `file` with these contents, so reading it back needs no hash.
pub fn written(root: &Path, file: &DataFile) {
    let path = root.join(&file.path);
    let identity = Identity::of(&path);
    remember(&path, Expected::of(file), identity);
}

/// Forgets what this process has checked, so that every file is hashed again (for a process that
/// rewrites files faster than the file system's clock ticks, such as the fuzz tests).
pub fn forget_checked() {
    CHECKED.lock().unwrap_or_else(|p| p.into_inner()).take();
}

/// The directory of verification records.
fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KDSTORE_CACHE_DIR") {
        return Some(PathBuf::from(dir).join("verified"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("kdstore").join("verified"))
}

fn record_path(root: &Path) -> Option<PathBuf> {
    let canonical = fs::canonicalize(root).ok()?;
    let name = format!("{:016x}.json", xxhash_rust::xxh3::xxh3_64(canonical.to_string_lossy().as_bytes()));
    Some(cache_dir()?.join(name))
}

/// Checks `files` of the store at `root` before they are read, hashing only those this process
/// and the record have not seen unchanged since they last passed. The first mismatch is the error.
pub fn check_before_reading(root: &Path, files: &[&DataFile]) -> Result<(), StoreError> {
    let record_path = record_path(root);
    let mut record: Option<Record> = None;
    let mut updated = false;
    for file in files {
        let path = root.join(&file.path);
        let expected = Expected::of(file);
        let identity = Identity::of(&path);
        if remembered(&path, &expected, identity.as_ref()) {
            continue;
        }
        let record = record.get_or_insert_with(|| {
            record_path
                .as_ref()
                .and_then(|p| fs::read_to_string(p).ok())
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default()
        });
        let digest = expected.label();
        let known =
            record.files.get(&file.path).is_some_and(|v| Some(&v.identity) == identity.as_ref() && v.digest == digest);
        if !known {
            check_file(root, file)?;
            if let Some(identity) = &identity {
                record.files.insert(file.path.clone(), Verified { identity: identity.clone(), digest });
                updated = true;
            }
        }
        remember(&path, expected, identity);
    }
    if let (true, Some(path), Some(record)) = (updated, record_path, record) {
        save(&path, &record);
    }
    Ok(())
}

/// Writes the record atomically; a record that cannot be written only costs hashing next time.
fn save(path: &Path, record: &Record) {
    let Some(dir) = path.parent() else { return };
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp =
        dir.join(format!(".{}.{}.tmp", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    let Ok(text) = serde_json::to_string(record) else { return };
    if fs::write(&tmp, text).is_ok() && fs::rename(&tmp, path).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

/// For `kdstore verify`: every file checked in full, ignoring every record; the problems found.
pub fn check_all(root: &Path, files: &[&DataFile]) -> Vec<StoreError> {
    files.iter().filter_map(|file| check_file(root, file).err()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_file(dir: &Path, name: &str, content: &[u8]) -> DataFile {
        fs::write(dir.join(name), content).unwrap();
        let d = digests(&dir.join(name)).unwrap();
        DataFile {
            table: "views".into(),
            path: name.into(),
            key: "k".into(),
            rows: 1,
            bytes: d.bytes,
            sha256: d.sha256,
            xxh3: Some(d.xxh3),
            recipe: None,
            replica: None,
            teacher: None,
            views_key: None,
        }
    }

    #[test]
    fn a_changed_truncated_or_missing_file_is_caught_and_an_intact_one_passes() {
        let dir = tempfile::tempdir().unwrap();
        let file = data_file(dir.path(), "a.parquet", b"some bytes of a part");
        check_file(dir.path(), &file).unwrap();
        fs::write(dir.path().join("a.parquet"), b"some bytes of b part").unwrap();
        let error = check_file(dir.path(), &file).unwrap_err().to_string();
        assert!(error.contains("a.parquet") && error.contains("table views") && error.contains("xxh3"), "{error}");
        fs::write(dir.path().join("a.parquet"), b"some bytes").unwrap();
        assert!(check_file(dir.path(), &file).unwrap_err().to_string().contains("10 bytes"));
        fs::remove_file(dir.path().join("a.parquet")).unwrap();
        assert!(check_file(dir.path(), &file).unwrap_err().to_string().contains("no such file"));
    }

    #[test]
    fn old_manifests_are_checked_by_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = data_file(dir.path(), "b.parquet", b"old store");
        file.xxh3 = None;
        check_file(dir.path(), &file).unwrap();
        file.sha256 = "0".repeat(64);
        assert!(check_file(dir.path(), &file).unwrap_err().to_string().contains("sha256"));
    }

    #[test]
    fn a_file_rewritten_after_it_passed_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        std::env::set_var("KDSTORE_CACHE_DIR", cache.path());
        let file = data_file(dir.path(), "c.parquet", b"content one");
        check_before_reading(dir.path(), &[&file]).unwrap();
        // Forget this process's memory: only the record remains.
        forget_checked();
        check_before_reading(dir.path(), &[&file]).unwrap();
        // Same size, same modification time: only the change time tells (a clock tick later: file
        // system times are only as fine as the kernel's coarse clock).
        std::thread::sleep(std::time::Duration::from_millis(20));
        let path = dir.path().join("c.parquet");
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        fs::write(&path, b"content two").unwrap();
        fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
        let error = check_before_reading(dir.path(), &[&file]).unwrap_err();
        assert!(matches!(error, StoreError::Damaged { .. }), "{error}");
    }
}
