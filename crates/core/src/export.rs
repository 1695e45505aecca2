//! `kdstore export`: the views a SQL condition selects, replayed and checked against their stored
//! hashes, written as files any tool reads: `inputs.npy` (float32, one row per view, in the order of
//! `rows.parquet`), `rows.parquet` (the view's `labels` row without the logits: ids, recipe, split,
//! label, partner, λ, every drawn parameter of the selected recipes, the teacher's statistics),
//! `teacher_logits.npy` and `export.json` (what was exported and how to normalise the inputs).
//! Every file is written under a temporary name and renamed, so an interrupted export leaves the
//! previous files or none, never a truncated one. The rows come in `view_id` order: the query's
//! result is streamed through a distribution sort on disk ([`crate::sorted_frames`]) and each
//! range of ids is replayed and appended to all three files, so an export larger than memory can
//! be written; a first, counting pass says how many rows there are and which drawn-parameter
//! columns the selected views use.

use std::path::{Path, PathBuf};

use polars::io::parquet::write::BatchedWriter;
use polars::prelude::*;

use crate::augment::param_columns;
use crate::query;
use crate::select::{labelled_sql, typed_views, ReplayError, Replayer, SelectError, SelectedView, ViewsError};
use crate::sorted_frames::SortedFrames;
use crate::source::npy;
use crate::store::columns as c;
use crate::store::writer::portable_arrow_schema;
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
    let samples = store.load_samples()?;
    let replayer = Replayer::new(store, &samples)?;
    let (n, sorted) = sorted_rows(store, request)?;
    let created = !out.exists();
    std::fs::create_dir_all(out).map_err(|e| ViewsError::Write { path: out.to_path_buf(), detail: e.to_string() })?;
    let classes = store.manifest.dataset.class_names.len();
    let mut shape = vec![n];
    shape.extend_from_slice(&samples.sample_shape);
    let staged = Staged::new(out, &["inputs.npy", "teacher_logits.npy", "rows.parquet"]);
    let written = staged.write(|paths| {
        let mut files = ExportFiles {
            out,
            inputs: npy::F32Writer::create(&paths[0], &shape).map_err(write_error(out, "inputs.npy"))?,
            logits: npy::F32Writer::create(&paths[1], &[n, classes]).map_err(write_error(out, "teacher_logits.npy"))?,
            rows_path: &paths[2],
            rows: None,
            written: 0,
        };
        sorted
            .for_each_sorted(|frame| -> Result<(), Sorted> {
                let selection = typed_views(store, &samples, &frame)?;
                for view in &selection.views {
                    let mut rendered = replayer.replay_verified(view)?;
                    if request.normalized {
                        replayer.context.normalizer.apply(&mut rendered.input);
                    }
                    files.inputs.write(&rendered.input).map_err(write_error(out, "inputs.npy"))?;
                }
                files.logits.write(&selection.logits).map_err(write_error(out, "teacher_logits.npy"))?;
                files.append_rows(rows_frame(frame, &selection.views))?;
                Ok(())
            })
            .map_err(ViewsError::from)?;
        files.finish(n)
    });
    let mut files = match written {
        Ok(files) => files,
        Err(error) => {
            if created {
                let _ = std::fs::remove_dir(out);
            }
            return Err(error);
        }
    };
    let description = description(store, request, &shape);
    let json = Staged::new(out, &["export.json"]).write(|paths| {
        let text = serde_json::to_string_pretty(&description).expect("json serialises") + "\n";
        std::fs::write(&paths[0], text).map_err(write_error(out, "export.json"))
    })?;
    files.extend(json);
    Ok(ExportSummary { rows: n, files })
}

/// The selected rows (every column that `rows.parquet` will have, and the logits), how many, on
/// their way into `view_id` order; none is an error.
fn sorted_rows(store: &Store, request: &ExportRequest) -> Result<(usize, SortedFrames), ViewsError> {
    let counted = count(store, request)?;
    if counted.rows == 0 {
        return Err(ViewsError::empty(request.teacher, request.condition));
    }
    let mut sorted = SortedFrames::new(c::VIEW_ID, counted.rows);
    let read = counted.columns.iter().map(|name| quoted(name)).collect::<Vec<_>>().join(", ");
    let sql = labelled_sql(&read, request.teacher, request.condition);
    query::for_each_batch(store, &sql, |batch| sorted.push(batch).map_err(sorting_error))?;
    Ok((counted.rows, sorted))
}

/// `export.json`: what was exported, from where, and how to read it.
fn description(store: &Store, request: &ExportRequest, shape: &[usize]) -> serde_json::Value {
    let (n, classes) = (shape[0], store.manifest.dataset.class_names.len());
    let normalization = &store.manifest.dataset.normalization;
    serde_json::json!({
        "store": store.root.display().to_string(),
        "version": store.manifest.version,
        "teacher": request.teacher,
        "where": request.condition,
        "rows": n,
        "sample_shape": &shape[1..],
        "class_names": store.manifest.dataset.class_names,
        "inputs": if request.normalized { "normalized: (x - mean[c]) / std[c], what the teacher saw" } else { "raw: the views in the units of the samples table, before normalisation; their xxh3-64 is input_hash" },
        "normalization": { "mean": normalization.mean, "std": normalization.std },
        "files": {
            "inputs.npy": format!("float32 {shape:?}, row i is rows.parquet row i"),
            "teacher_logits.npy": format!("float32 [{n}, {classes}], raw logits of teacher {}", request.teacher),
            "rows.parquet": "view_id, sample_id, split, label, recipe, replica, partner_id, partner_label, lam, input_hash, the drawn parameters, the teacher's statistics, in view_id order",
        },
    })
}

/// What the counting pass found: the selected rows, and the columns of `labels` to export (every
/// one but the drawn-parameter columns that no selected view drew).
struct Counted {
    rows: usize,
    columns: Vec<String>,
}

fn count(store: &Store, request: &ExportRequest) -> Result<Counted, SelectError> {
    let all = query::run(store, &format!("SELECT * FROM {} LIMIT 0", c::LABELS))?;
    let names: Vec<String> = all.get_column_names().iter().map(|name| name.to_string()).collect();
    let params: Vec<&str> =
        param_columns().into_iter().map(|column| column.name).filter(|name| names.iter().any(|n| n == name)).collect();
    let counts: Vec<String> = std::iter::once(format!("count(*) AS {}", quoted(ROWS)))
        .chain(params.iter().map(|name| format!("count({0}) AS {0}", quoted(name))))
        .collect();
    let counted = query::run(store, &labelled_sql(&counts.join(", "), request.teacher, request.condition))?;
    let count_of = |name: &str| -> Result<usize, SelectError> {
        let column = |e: PolarsError| SelectError::Column { column: name.to_string(), detail: e.to_string() };
        let value = counted.column(name).map_err(column)?.cast(&DataType::UInt64).map_err(column)?;
        Ok(value.u64().map_err(column)?.get(0).unwrap_or(0) as usize)
    };
    let mut unused = Vec::new();
    for name in &params {
        if count_of(name)? == 0 {
            unused.push(*name);
        }
    }
    Ok(Counted {
        rows: count_of(ROWS)?,
        columns: names.into_iter().filter(|name| !unused.contains(&name.as_str())).collect(),
    })
}

/// The counting pass's name for the number of rows.
const ROWS: &str = "__rows";

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The three files of the rows, being written range by range.
struct ExportFiles<'a> {
    out: &'a Path,
    inputs: npy::F32Writer,
    logits: npy::F32Writer,
    rows_path: &'a Path,
    /// Opened with the first range, whose columns it takes.
    rows: Option<BatchedWriter<std::fs::File>>,
    written: usize,
}

impl ExportFiles<'_> {
    fn append_rows(&mut self, rows: PolarsResult<DataFrame>) -> Result<(), ViewsError> {
        let failed = write_error(self.out, "rows.parquet");
        let rows = rows.map_err(&failed)?;
        if self.rows.is_none() {
            let file = std::fs::File::create(self.rows_path).map_err(write_error(self.out, "rows.parquet"))?;
            let writer = ParquetWriter::new(file)
                .with_key_value_metadata(Some(portable_arrow_schema(&rows)))
                .batched(rows.schema())
                .map_err(&failed)?;
            self.rows = Some(writer);
        }
        self.rows.as_mut().expect("opened").write_batch(&rows).map_err(&failed)?;
        self.written += rows.height();
        Ok(())
    }

    /// Ends the three files, which must hold the `rows` the counting pass found.
    fn finish(self, rows: usize) -> Result<(), ViewsError> {
        if self.written != rows {
            return Err(ViewsError::Write {
                path: self.rows_path.to_path_buf(),
                detail: format!("{} rows selected where the count found {rows}: did the store change?", self.written),
            });
        }
        self.inputs.finish().map_err(write_error(self.out, "inputs.npy"))?;
        self.logits.finish().map_err(write_error(self.out, "teacher_logits.npy"))?;
        if let Some(writer) = self.rows {
            writer.finish().map_err(write_error(self.out, "rows.parquet"))?;
        }
        Ok(())
    }
}

/// An error of a range of the sorted rows: reading it back, or exporting it.
enum Sorted {
    Sort(PolarsError),
    Export(ViewsError),
}

impl From<PolarsError> for Sorted {
    fn from(error: PolarsError) -> Sorted {
        Sorted::Sort(error)
    }
}

impl From<ViewsError> for Sorted {
    fn from(error: ViewsError) -> Sorted {
        Sorted::Export(error)
    }
}

impl From<SelectError> for Sorted {
    fn from(error: SelectError) -> Sorted {
        Sorted::Export(error.into())
    }
}

impl From<ReplayError> for Sorted {
    fn from(error: ReplayError) -> Sorted {
        Sorted::Export(error.into())
    }
}

impl From<Sorted> for ViewsError {
    fn from(error: Sorted) -> ViewsError {
        match error {
            Sorted::Sort(error) => sorting_error(error).into(),
            Sorted::Export(error) => error,
        }
    }
}

fn sorting_error(error: PolarsError) -> SelectError {
    SelectError::Query(format!("sorting the selection by view id on disk (TMPDIR): {error}"))
}

/// A range's `labels` rows as `rows.parquet` has them: without the logits list, with the partner's
/// label before `lam`.
fn rows_frame(frame: DataFrame, views: &[SelectedView]) -> PolarsResult<DataFrame> {
    let mut frame = frame.drop(c::LOGITS_COLUMN)?;
    let at = frame.get_column_index(c::LAM).unwrap_or(frame.width());
    let partner_labels: Vec<Option<i64>> = views.iter().map(|v| v.partner_id.map(|_| v.partner_label)).collect();
    frame.insert_column(at, Column::new(PARTNER_LABEL.into(), partner_labels))?;
    Ok(frame)
}

/// An error writing `dir/name`, whatever its cause.
fn write_error<E: std::fmt::Display>(dir: &Path, name: &str) -> impl Fn(E) -> ViewsError {
    let path = dir.join(name);
    move |e| ViewsError::Write { path: path.clone(), detail: e.to_string() }
}

/// Files written under temporary names beside `dir/name` and renamed into place together once
/// all are written; on failure the temporary files go and the previous files, if any, stay.
struct Staged {
    temporary: Vec<PathBuf>,
    final_paths: Vec<PathBuf>,
}

impl Staged {
    fn new(dir: &Path, names: &[&str]) -> Staged {
        Staged {
            temporary: names.iter().map(|name| dir.join(format!(".{name}.tmp-{}", std::process::id()))).collect(),
            final_paths: names.iter().map(|name| dir.join(name)).collect(),
        }
    }

    /// Runs `write` on the temporary paths, then renames them into place.
    fn write(self, write: impl FnOnce(&[PathBuf]) -> Result<(), ViewsError>) -> Result<Vec<PathBuf>, ViewsError> {
        let written = write(&self.temporary);
        if let Err(error) = written {
            for path in &self.temporary {
                let _ = std::fs::remove_file(path);
            }
            return Err(error);
        }
        for (tmp, path) in self.temporary.iter().zip(&self.final_paths) {
            std::fs::rename(tmp, path).map_err(|e| ViewsError::Write { path: path.clone(), detail: e.to_string() })?;
        }
        Ok(self.final_paths)
    }
}
