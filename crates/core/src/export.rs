//! `kdstore export`: the views a SQL condition selects, replayed and checked against their stored
//! hashes, written as files any tool reads: `inputs.npy` (float32, one row per view, in the order of
//! `rows.parquet`), `rows.parquet` (the view's `labels` row without the logits: ids, recipe, split,
//! label, partner, λ, every drawn parameter of the selected recipes, the teacher's statistics),
//! `teacher_logits.npy` and `export.json` (what was exported and how to normalise the inputs).
//! Every file is written under a temporary name and renamed, so an interrupted export leaves the
//! previous files or none, never a truncated one. `inputs.npy` is written view by view as the views
//! are replayed, so that an export larger than memory can be written.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::augment::param_columns;
use crate::query::{self, Format};
use crate::select::{select_some, Columns, Replayer, ViewsError};
use crate::source::npy;
use crate::store::columns as c;
use crate::store::Store;

/// What to export.
pub struct ExportRequest<'a> {
    pub teacher: &'a str,
    /// SQL condition over `labels`; all of the teacher's views when absent.
    pub condition: Option<&'a str>,
    /// Write what the teacher saw (normalised) instead of the views in raw units.
    pub normalized: bool,
}

/// The files written and the number of views in them.
#[derive(Debug)]
pub struct ExportSummary {
    pub rows: usize,
    pub files: Vec<PathBuf>,
}

/// Column added to `rows.parquet`: the partner's label (null when the view is not mixed).
pub const PARTNER_LABEL: &str = "partner_label";

pub fn export(store: &Store, request: &ExportRequest, out: &Path) -> Result<ExportSummary, ViewsError> {
    let (samples, frame, selection) = select_some(store, request.teacher, request.condition, Columns::All)?;
    let replayer = Replayer::new(store, &samples)?;
    let partner_labels: Vec<Option<i64>> =
        selection.views.iter().map(|v| v.partner_id.map(|_| v.partner_label)).collect();
    let mut rows = rows_frame(frame, partner_labels)
        .map_err(|e| ViewsError::Write { path: out.join("rows.parquet"), detail: e.to_string() })?;

    let created = !out.exists();
    std::fs::create_dir_all(out).map_err(|e| ViewsError::Write { path: out.to_path_buf(), detail: e.to_string() })?;
    let n = selection.views.len();
    let mut shape = vec![n];
    shape.extend_from_slice(&samples.sample_shape);
    let normalization = &store.manifest.dataset.normalization;
    let description = serde_json::json!({
        "store": store.root.display().to_string(),
        "version": store.manifest.version,
        "teacher": request.teacher,
        "where": request.condition,
        "rows": n,
        "sample_shape": samples.sample_shape,
        "class_names": store.manifest.dataset.class_names,
        "inputs": if request.normalized { "normalized: (x - mean[c]) / std[c], what the teacher saw" } else { "raw: the views in the units of the samples table, before normalisation; their xxh3-64 is input_hash" },
        "normalization": { "mean": normalization.mean, "std": normalization.std },
        "files": {
            "inputs.npy": format!("float32 {shape:?}, row i is rows.parquet row i"),
            "teacher_logits.npy": format!("float32 [{n}, {}], raw logits of teacher {}", selection.classes, request.teacher),
            "rows.parquet": "view_id, sample_id, split, label, recipe, replica, seed, partner_id, partner_label, lam, input_hash, the drawn parameters, the teacher's statistics",
        },
    });
    let written_inputs = write_atomically(out, "inputs.npy", |path| {
        let failed = |e: std::io::Error| ViewsError::Write { path: out.join("inputs.npy"), detail: e.to_string() };
        let mut inputs = npy::F32Writer::create(path, &shape).map_err(failed)?;
        for view in &selection.views {
            let mut rendered = replayer.replay_verified(view)?;
            if request.normalized {
                replayer.context.normalizer.apply(&mut rendered.input);
            }
            inputs.write(&rendered.input).map_err(failed)?;
        }
        inputs.finish().map_err(failed)
    });
    let written_inputs = match written_inputs {
        Ok(path) => path,
        Err(error) => {
            if created {
                let _ = std::fs::remove_dir(out);
            }
            return Err(error);
        }
    };
    let written = vec![
        written_inputs,
        write_atomically(out, "teacher_logits.npy", |path| {
            npy::write_f32(path, &[n, selection.classes], &selection.logits)
                .map_err(write_error(out, "teacher_logits.npy"))
        })?,
        write_atomically(out, "rows.parquet", |path| {
            let mut file = std::fs::File::create(path).map_err(write_error(out, "rows.parquet"))?;
            query::write(&mut rows, Format::Parquet, &mut file).map_err(write_error(out, "rows.parquet"))
        })?,
        write_atomically(out, "export.json", |path| {
            let text = serde_json::to_string_pretty(&description).expect("json serialises") + "\n";
            std::fs::write(path, text).map_err(write_error(out, "export.json"))
        })?,
    ];
    Ok(ExportSummary { rows: n, files: written })
}

/// The selected `labels` rows without the logits list, with the partner's label, and without the
/// parameter columns that no selected view drew.
fn rows_frame(frame: DataFrame, partner_labels: Vec<Option<i64>>) -> PolarsResult<DataFrame> {
    let mut frame = frame.drop(c::LOGITS_COLUMN)?;
    let at = frame.get_column_index(c::LAM).unwrap_or(frame.width());
    frame.insert_column(at, Column::new(PARTNER_LABEL.into(), partner_labels))?;
    for column in param_columns() {
        if frame.column(column.name).is_ok_and(|data| data.null_count() == data.len()) {
            frame = frame.drop(column.name)?;
        }
    }
    Ok(frame)
}

/// An error writing `dir/name`, whatever its cause.
fn write_error<E: std::fmt::Display>(dir: &Path, name: &str) -> impl Fn(E) -> ViewsError {
    let path = dir.join(name);
    move |e| ViewsError::Write { path: path.clone(), detail: e.to_string() }
}

/// Runs `write` on a temporary file beside `dir/name` and renames it into place; on failure the
/// temporary file goes and the previous `dir/name`, if any, stays.
fn write_atomically(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&Path) -> Result<(), ViewsError>,
) -> Result<PathBuf, ViewsError> {
    let final_path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    if let Err(error) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(error);
    }
    std::fs::rename(&tmp, &final_path)
        .map_err(|e| ViewsError::Write { path: final_path.clone(), detail: e.to_string() })?;
    Ok(final_path)
}
