//! `kdstore verify`: checks a store end to end without trusting any record of earlier checks.
//!
//! - Every data file of the version (or of every version) is hashed in full against the manifest,
//!   its Parquet footer must hold the manifest's row count, and the teachers' model files must
//!   have their recorded sha256. An image folder store's files must have the size and content
//!   hash its `samples` table recorded.
//! - `deep` also reads the data: every view is replayed from its seed and must hash to its stored
//!   `input_hash`; every logit, statistic and feature must be finite; and every logits and
//!   embeddings file must list the views of its views part in the same order (what the `labels`
//!   view relies on).
//!
//! Problems are collected, not raised: the report lists each once with the file it concerns.

use std::collections::BTreeSet;
use std::path::Path;

use polars::prelude::*;

use crate::pipeline::parallel::parallel_chunks;
use crate::pipeline::plan::manifest_recipes;
use crate::pipeline::views::RenderContext;
use crate::progress::Progress;
use crate::source::image_folder;
use crate::store::columns as c;
use crate::store::integrity::check_file;
use crate::store::manifest::{self, Manifest};
use crate::store::parts::views_by_key;
use crate::store::{DataFile, Store, StoreError};

/// What to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Replay the views and read every value.
    pub deep: bool,
    /// Every committed version, not only the newest.
    pub all_versions: bool,
    /// Worker threads for the replay.
    pub threads: usize,
}

/// What was checked and what was wrong.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    pub versions: Vec<u64>,
    pub files: usize,
    pub bytes: u64,
    pub models: usize,
    /// An image folder store's files, checked against the sizes and hashes the store recorded.
    pub source_files: usize,
    pub views_replayed: usize,
    pub values_checked: usize,
    pub problems: Vec<String>,
}

/// Checks the store at `root` as `options` say.
pub fn verify(root: &Path, options: &VerifyOptions, progress: &dyn Progress) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let mut manifests: Vec<Manifest> = Vec::new();
    let versions = manifest::versions(root)?;
    if versions.is_empty() {
        return Err(StoreError::NotAStore { path: root.to_path_buf() });
    }
    let chosen: Vec<u64> = if options.all_versions { versions } else { versions.last().copied().into_iter().collect() };
    for version in chosen {
        match manifest::read(root, version) {
            Ok(m) => manifests.push(m),
            Err(error) => report.problems.push(format!("version {version}: {error}")),
        }
        report.versions.push(version);
    }
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut damaged: BTreeSet<String> = BTreeSet::new();
    for m in &manifests {
        let files: Vec<&DataFile> =
            m.files.iter().filter(|f| seen.insert((f.path.clone(), f.sha256.clone()))).collect();
        let task = progress.task(&format!("hashing version {}", m.version), files.len() as u64);
        for file in files {
            report.files += 1;
            report.bytes += file.bytes;
            match check_file(root, file).and_then(|()| check_rows(root, file)) {
                Ok(()) => {}
                Err(error) => {
                    damaged.insert(file.path.clone());
                    report.problems.push(error.to_string());
                }
            }
            task.advance(1);
        }
        task.finish();
        for teacher in &m.teachers {
            let path = teacher.model_file(root);
            if seen.insert((path.display().to_string(), teacher.model_sha256.clone())) {
                report.models += 1;
                if let Err(error) = check_model(&teacher.name, &path, &teacher.model_sha256) {
                    report.problems.push(error.to_string());
                }
            }
        }
    }
    check_source_files(root, &manifests, &damaged, &mut report);
    if options.deep {
        for m in &manifests {
            let store = Store { root: root.to_path_buf(), manifest: m.clone() };
            deep(&store, &damaged, options.threads, progress, &mut report)?;
        }
    }
    Ok(report)
}

/// An image folder store's files (once per samples stage) must be as the store recorded them.
fn check_source_files(root: &Path, manifests: &[Manifest], damaged: &BTreeSet<String>, report: &mut VerifyReport) {
    let mut seen = BTreeSet::new();
    for m in manifests {
        let Some(folder) = &m.dataset.files else { continue };
        if !seen.insert(m.dataset.samples_key.clone()) || m.files_of(c::SAMPLES).any(|f| damaged.contains(&f.path)) {
            continue;
        }
        let store = Store { root: root.to_path_buf(), manifest: m.clone() };
        match store.sample_files() {
            Ok(files) => {
                report.source_files += files.len();
                for error in image_folder::changed_files(&folder.root, &files) {
                    report.problems.push(format!("version {}: the samples' files: {error}", m.version));
                }
            }
            Err(error) => report.problems.push(format!("version {}: {error}", m.version)),
        }
    }
}

/// A teacher's model file must have the sha256 the manifest recorded.
pub fn check_model(teacher: &str, path: &Path, sha256: &str) -> Result<(), StoreError> {
    let found = match crate::store::writer::file_digest(path) {
        Ok((_, found)) => found,
        Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => "no such file".into(),
        Err(other) => return Err(other),
    };
    if found == sha256 {
        return Ok(());
    }
    Err(StoreError::Damaged {
        path: path.to_path_buf(),
        table: format!("model of teacher {teacher}"),
        expected: format!("sha256 {sha256}"),
        found: if found == "no such file" {
            "there is no such file".into()
        } else {
            format!("the file has sha256 {found}")
        },
    })
}

/// The Parquet footer's row count must be the manifest's.
fn check_rows(root: &Path, file: &DataFile) -> Result<(), StoreError> {
    let path = root.join(&file.path);
    let mut handle = std::fs::File::open(&path).map_err(|source| StoreError::Io { path: path.clone(), source })?;
    let metadata = polars_parquet::parquet::read::read_metadata(&mut handle).map_err(|e| StoreError::Damaged {
        path: path.clone(),
        table: file.table.clone(),
        expected: "a Parquet footer".into(),
        found: format!("it does not parse ({e})"),
    })?;
    if metadata.num_rows != file.rows {
        return Err(StoreError::Damaged {
            path,
            table: file.table.clone(),
            expected: format!("{} rows", file.rows),
            found: format!("the file has {} rows", metadata.num_rows),
        });
    }
    Ok(())
}

/// A file's data, or `None` with the error recorded as a problem of that file: a file that matches
/// its hash but does not decode is one problem, not the end of the verification.
fn or_problem<T>(read: Result<T, StoreError>, file: &DataFile, report: &mut VerifyReport) -> Option<T> {
    read.map_err(|error| report.problems.push(format!("{}: {error}", file.path))).ok()
}

/// Replays every view, reads every value, and checks that labels line up with their views.
fn deep(
    store: &Store,
    damaged: &BTreeSet<String>,
    threads: usize,
    progress: &dyn Progress,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    let version = store.manifest.version;
    let intact = |f: &&DataFile| !damaged.contains(&f.path);
    if store.manifest.files_of(c::SAMPLES).any(|f| damaged.contains(&f.path)) {
        report.problems.push(format!("version {version}: the samples are damaged, so no view can be replayed"));
        return Ok(());
    }
    let samples = match store.load_samples() {
        Err(StoreError::Input { .. }) => {
            report.problems.push(format!("version {version}: the samples' files changed, so no view can be replayed"));
            return Ok(());
        }
        read => read?,
    };
    let context = RenderContext::new(&samples, &store.manifest);
    let recipes = match manifest_recipes(&store.manifest) {
        Ok(recipes) => recipes,
        Err(detail) => {
            report.problems.push(format!("version {version}: {detail}"));
            return Ok(());
        }
    };
    let views_files: Vec<&DataFile> = store.manifest.files_of(c::VIEWS).filter(intact).collect();
    let total: usize = views_files.iter().map(|f| f.rows).sum();
    let task = progress.task(&format!("replaying version {version}"), total as u64);
    let mut view_ids: std::collections::HashMap<&str, Vec<i64>> = std::collections::HashMap::new();
    for file in &views_files {
        let read = store.scan_files(c::VIEWS, &[file]).and_then(|frame| store.load_views(frame));
        let Some(views) = or_problem(read, file, report) else { continue };
        let Some(ops) = views.first().and_then(|v| recipes.get(&v.recipe)) else {
            if let Some(view) = views.first() {
                report.problems.push(format!("{}: recipe {} is not in the pipeline", file.path, view.recipe));
            }
            continue;
        };
        // Per chunk: the views that replay to another hash, and those whose sample's file cannot be
        // read (an image folder decoded on use), with the first such error.
        let chunks: Vec<(Vec<i64>, Vec<i64>, Option<String>)> =
            parallel_chunks(views.len(), threads, task.as_ref(), &|| Ok::<(), StoreError>(()), &|_, range| {
                let (mut bad, mut unreadable, mut first_error) = (Vec::new(), Vec::new(), None);
                for view in &views[range] {
                    match context.render(ops, view.seed, view.sample_id) {
                        Ok(rendered) if rendered.input_hash == view.input_hash => {}
                        Ok(_) => bad.push(view.view_id),
                        Err(error) => {
                            unreadable.push(view.view_id);
                            first_error.get_or_insert_with(|| error.to_string());
                        }
                    }
                }
                Ok(vec![(bad, unreadable, first_error)])
            })?;
        let bad: Vec<i64> = chunks.iter().flat_map(|c| c.0.iter().copied()).collect();
        let unreadable: Vec<i64> = chunks.iter().flat_map(|c| c.1.iter().copied()).collect();
        if let Some(error) = chunks.iter().find_map(|c| c.2.as_deref()) {
            report.problems.push(format!(
                "{}: {} views cannot be replayed, their samples' files unreadable (view ids {}; first: {error})",
                file.path,
                unreadable.len(),
                few(&unreadable)
            ));
        }
        if !bad.is_empty() {
            report.problems.push(format!(
                "{}: {} views do not replay to their input_hash (view ids {})",
                file.path,
                bad.len(),
                few(&bad)
            ));
        }
        report.views_replayed += views.len();
        view_ids.insert(file.key.as_str(), views.iter().map(|v| v.view_id).collect());
    }
    task.finish();
    let by_key = views_by_key(&store.manifest);
    for file in
        store.manifest.files.iter().filter(|f| matches!(f.table.as_str(), c::LOGITS | c::EMBEDDINGS)).filter(intact)
    {
        let read = store.scan_group(&file.table, &[file]).and_then(|frame| store.collect(&file.table, frame));
        let Some(frame) = or_problem(read, file, report) else { continue };
        let list = if file.table == c::LOGITS { c::LOGITS_COLUMN } else { c::FEATURES };
        let mut columns = vec![list];
        if file.table == c::LOGITS {
            columns.extend([c::TEACHER_LOSS, c::P_LABEL, c::ENTROPY, c::MARGIN]);
        }
        let (checked, not_finite) = non_finite_rows(&frame, &columns).map_err(|detail| StoreError::Column {
            path: store.root.join(&file.path),
            column: list.into(),
            detail,
        })?;
        report.values_checked += checked;
        if !not_finite.is_empty() {
            report.problems.push(format!(
                "{}: {} rows hold values that are not finite (view ids {})",
                file.path,
                not_finite.len(),
                few(&not_finite)
            ));
        }
        let ids = crate::store::reader::i64_column(&frame, c::VIEW_ID).unwrap_or_default();
        let expected = file.views_key.as_deref().and_then(|key| view_ids.get(key));
        match (expected, file.views_key.as_deref().and_then(|key| by_key.get(key))) {
            (Some(expected), _) if *expected != ids => report.problems.push(format!(
                "{}: its rows do not list the views of {} in the same order",
                file.path,
                by_key.get(file.views_key.as_deref().unwrap_or_default()).map_or("its views part", |v| v.path.as_str())
            )),
            (None, None) => {
                report.problems.push(format!("{}: labels a views part that is not in the version", file.path))
            }
            _ => {}
        }
    }
    Ok(())
}

/// How many values the columns hold, and the view ids of the rows where one is not finite.
fn non_finite_rows(frame: &DataFrame, columns: &[&str]) -> Result<(usize, Vec<i64>), String> {
    let ids = crate::store::reader::i64_column(frame, c::VIEW_ID).map_err(|e| e.to_string())?;
    let mut bad = vec![false; frame.height()];
    let mut checked = 0;
    for name in columns {
        let column = frame.column(name).map_err(|e| e.to_string())?;
        if let DataType::List(_) = column.dtype() {
            let column = column.cast(&DataType::List(Box::new(DataType::Float32))).map_err(|e| e.to_string())?;
            for (row, value) in column.list().map_err(|e| e.to_string())?.amortized_iter().enumerate() {
                let Some(value) = value else { continue };
                let values = value.as_ref().f32().map_err(|e| e.to_string())?.clone();
                checked += values.len();
                bad[row] |= values.iter().any(|v| !v.is_some_and(f32::is_finite));
            }
        } else {
            let values = column.cast(&DataType::Float32).map_err(|e| e.to_string())?;
            for (row, v) in values.f32().map_err(|e| e.to_string())?.iter().enumerate() {
                checked += 1;
                bad[row] |= !v.is_some_and(f32::is_finite);
            }
        }
    }
    Ok((checked, ids.into_iter().zip(bad).filter(|(_, b)| *b).map(|(id, _)| id).collect()))
}

/// Up to five ids, and how many more.
fn few(ids: &[i64]) -> String {
    let shown: Vec<String> = ids.iter().take(5).map(i64::to_string).collect();
    if ids.len() > 5 {
        format!("{} and {} more", shown.join(", "), ids.len() - 5)
    } else {
        shown.join(", ")
    }
}
