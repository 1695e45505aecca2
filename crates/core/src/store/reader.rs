//! Reads a committed store version: lazy scans over exactly the files its manifest lists (never a
//! directory glob, so files of an interrupted build are invisible), and typed loads of the samples
//! and views that building and training need in memory.

use std::borrow::Cow;
use std::sync::Arc;

use polars::prelude::*;

use polars_buffer::Buffer;

use super::columns as c;
use super::parts::views_by_key;
use super::topk::{self, TopKValues};
use super::writer::{self, LogitsDtype, LogitsFormat, SampleInputs, SampleRows, ViewRow};
use super::{DataFile, PartFilter, Split, Store, StoreError};
use crate::augment::seed::view_seed;
use crate::augment::{param_columns, DrawnParams, ParamKind, ParamValue};
use crate::source::image_folder::{FileRef, FolderFiles};
use crate::source::inputs::{self, Inputs};
use crate::source::SourceError;

impl Store {
    /// A lazy scan of one table (`samples`, `views` or `logits`) at this version: one scan over
    /// exactly the files the manifest lists. Logits are read as float32 whatever the teacher's
    /// stored dtype, so f16 and f32 teachers mix; a table with no files yet (an interrupted first
    /// build) is an empty frame with the table's columns.
    pub fn scan(&self, table: &str) -> Result<LazyFrame, StoreError> {
        self.scan_parts(table, &PartFilter::default())
    }

    /// [`Store::scan`] of only the files `filter` keeps (see [`PartFilter`]).
    pub fn scan_parts(&self, table: &str, filter: &PartFilter) -> Result<LazyFrame, StoreError> {
        let groups = self.scan_groups(table, filter);
        if groups.is_empty() {
            return Ok(empty_table(table, &self.manifest.dataset.sample_shape)
                .map_err(|source| self.parquet_error(table, source))?
                .lazy());
        }
        let mut scans = groups.iter().map(|group| self.scan_group(table, group)).collect::<Result<Vec<_>, _>>()?;
        if scans.len() == 1 {
            return Ok(scans.pop().expect("one scan"));
        }
        concat(scans, UnionArgs::default()).map_err(|source| self.parquet_error(table, source))
    }

    /// The files of `table` in the order [`Store::scan`] reads them: in groups of one layout (the
    /// logits and embeddings of f32 teachers, then of f16 ones, then each top-k format), each in
    /// manifest order.
    fn scan_groups<'a>(&'a self, table: &'a str, filter: &PartFilter) -> Vec<Vec<&'a DataFile>> {
        let by_key = views_by_key(&self.manifest);
        let files: Vec<&DataFile> = self.manifest.files_of(table).filter(|f| filter.keeps(&by_key, f)).collect();
        if !matches!(table, c::LOGITS | c::EMBEDDINGS) {
            return if files.is_empty() { vec![] } else { vec![files] };
        }
        let layout_of = |file: &DataFile| -> String {
            let teacher = file.teacher.as_deref().unwrap_or_default();
            let layout = if table == c::EMBEDDINGS {
                self.manifest.embeddings_dtype(teacher).map(str::to_string)
            } else {
                self.manifest.teacher(teacher).map(|t| t.logits_layout())
            };
            layout.unwrap_or_else(|| "f32".into())
        };
        let mut groups: Vec<(String, Vec<&DataFile>)> = Vec::new();
        for file in files {
            let layout = layout_of(file);
            match groups.iter_mut().find(|(l, _)| *l == layout) {
                Some((_, group)) => group.push(file),
                None => groups.push((layout, vec![file])),
            }
        }
        groups.sort_by_key(|(layout, _)| ["f32", "f16"].iter().position(|l| l == layout).unwrap_or(2));
        groups.into_iter().map(|(_, group)| group).collect()
    }

    /// One scan over files of `table` of one layout, read as the table's documented columns:
    /// logits and features as float32 lists, top-k logits rebuilt dense (see [`super::topk`]).
    pub fn scan_group(&self, table: &str, files: &[&DataFile]) -> Result<LazyFrame, StoreError> {
        let scan = self.scan_files(table, files)?;
        let as_f32_list = |name: &str| col(name).cast(DataType::List(Box::new(DataType::Float32)));
        match table {
            c::EMBEDDINGS => Ok(scan.with_column(as_f32_list(c::FEATURES))),
            c::LOGITS => {
                let teacher = files.first().and_then(|f| self.manifest.teacher(f.teacher.as_deref()?));
                match teacher.and_then(|t| Some((t.logits_format?, t.label_space.len()))) {
                    Some((top, classes)) => self.dense_from_top_k(files, scan, top.values, classes),
                    None => Ok(scan.with_column(as_f32_list(c::LOGITS_COLUMN))),
                }
            }
            _ => Ok(scan),
        }
    }

    /// A scan of top-k logits files as the `logits` table: each row's view id from the views
    /// part it labels (row for row), dense logits, the argmax, statistics as float32.
    fn dense_from_top_k(
        &self,
        files: &[&DataFile],
        scan: LazyFrame,
        values: TopKValues,
        classes: usize,
    ) -> Result<LazyFrame, StoreError> {
        let by_key = views_by_key(&self.manifest);
        let views = files
            .iter()
            .map(|file| {
                let views = file.views_key.as_deref().and_then(|key| by_key.get(key)).filter(|v| v.rows == file.rows);
                views.copied().ok_or_else(|| StoreError::Corrupt {
                    path: self.root.join(&file.path),
                    detail: "a top-k logits part takes its view ids from the views part it labels, and the manifest lists no views part with its key and number of rows".into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ids = self.scan_files(c::VIEWS, &views)?.select([col(c::VIEW_ID)]);
        let as_f32 = |name: &str| col(name).cast(DataType::Float32);
        let decoded = scan.select([
            col(c::TEACHER),
            topk_dense_logits(values, classes),
            col(c::TOPK_INDEX).list().first().cast(DataType::Int64).alias(c::TEACHER_PRED),
            as_f32(c::TEACHER_LOSS),
            as_f32(c::P_LABEL),
            as_f32(c::ENTROPY),
            as_f32(c::MARGIN),
            col(c::TEACHER_CORRECT),
        ]);
        let options = HConcatOptions { strict: true, ..Default::default() };
        concat_lf_horizontal([ids, decoded], options).map_err(|source| self.parquet_error(c::LOGITS, source))
    }

    /// One scan over the given files of `table` (all of one schema), each checked against the
    /// manifest first (see [`super::integrity`]). Views files are read as the documented columns
    /// whichever kdstore wrote them: the `seed` column of schema 4 and older is left out (the
    /// seed is derived), and a parameter column an older file lacks reads as nulls.
    pub fn scan_files(&self, table: &str, files: &[&DataFile]) -> Result<LazyFrame, StoreError> {
        super::integrity::check_before_reading(&self.root, files)?;
        let paths: Vec<PlRefPath> = files
            .iter()
            .map(|file| PlRefPath::new(self.manifest.file_path(&self.root, file).to_string_lossy().as_ref()))
            .collect();
        let views = table == c::VIEWS;
        let args = match views {
            true => ScanArgsParquet {
                schema: Some(views_file_schema().map_err(|source| self.parquet_error(table, source))?),
                allow_missing_columns: true,
                ..Default::default()
            },
            false => ScanArgsParquet::default(),
        };
        let scan = self.without_panics(table, || {
            LazyFrame::scan_parquet_files(Buffer::from_iter(paths), args)
                .map_err(|source| self.parquet_error(table, source))
        })?;
        Ok(match views {
            true => scan.select(c::views_columns().iter().map(|column| col(column.name)).collect::<Vec<_>>()),
            false => scan,
        })
    }

    /// Runs a Polars read of `table`. Polars panics on some malformed Parquet (a footer that does
    /// not parse, a page shorter than it says) instead of returning an error; here such a panic is
    /// [`StoreError::Malformed`], naming the store and the table.
    pub fn without_panics<T>(
        &self,
        table: &str,
        read: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|panic| {
            Err(StoreError::Malformed {
                path: self.root.clone(),
                table: table.to_string(),
                detail: panic_message(&*panic),
            })
        })
    }

    fn parquet_error(&self, table: &str, source: PolarsError) -> StoreError {
        StoreError::Parquet { path: self.root.clone(), table: table.to_string(), source }
    }

    /// The `labels` view: views ⋈ samples (without the input) ⋈ logits, one row per (view, teacher),
    /// with the columns in that order.
    ///
    /// The build writes every logits part in the row order of the views part it labels (its
    /// `views_key`), so the views of all logits rows are one scan of those views files in the logits
    /// scan's order, put side by side with the logits: no join over millions of rows, which is most
    /// of a query's cost otherwise. Polars checks that both sides have the same number of rows; a
    /// store whose parts do not line up (a logits part without its views part) is joined on
    /// `view_id` instead.
    pub fn labels(&self) -> Result<LazyFrame, StoreError> {
        self.labels_of_parts(&PartFilter::default())
    }

    /// The `labels` view over only the parts `filter` keeps.
    pub fn labels_of_parts(&self, filter: &PartFilter) -> Result<LazyFrame, StoreError> {
        let samples = self.scan(c::SAMPLES)?.select([col(c::SAMPLE_ID), col(c::SPLIT), col(c::LABEL), col(c::GROUP)]);
        let logits = self.scan_parts(c::LOGITS, filter)?;
        let by_view = match self.views_in_logits_order(filter) {
            Some(views) if !views.is_empty() => {
                let views = self.scan_files(c::VIEWS, &views)?;
                let options = HConcatOptions { strict: true, ..Default::default() };
                concat_lf_horizontal([views, logits.drop(by_name([c::VIEW_ID], true, false))], options)
                    .map_err(|source| self.parquet_error(c::LABELS, source))?
            }
            _ => self.scan_parts(c::VIEWS, filter)?.join(
                logits,
                [col(c::VIEW_ID)],
                [col(c::VIEW_ID)],
                JoinArgs::new(JoinType::Inner),
            ),
        };
        let mut labelled =
            by_view.join(samples, [col(c::SAMPLE_ID)], [col(c::SAMPLE_ID)], JoinArgs::new(JoinType::Inner));
        let schema = self.without_panics(c::LABELS, || {
            labelled.collect_schema().map_err(|source| self.parquet_error(c::LABELS, source))
        })?;
        let logits_columns: Vec<&str> = c::LOGITS_COLUMNS.iter().map(|column| column.name).collect();
        let sample_columns = [c::SPLIT, c::LABEL, c::GROUP];
        let views_columns = schema
            .iter_names()
            .map(|n| n.as_str())
            .filter(|n| *n == c::VIEW_ID || !(logits_columns.contains(n) || sample_columns.contains(n)));
        let order: Vec<Expr> = views_columns
            .chain(sample_columns)
            .chain(logits_columns.iter().copied().filter(|n| *n != c::VIEW_ID))
            .map(col)
            .collect();
        Ok(labelled.select(order))
    }

    /// For each logits file in scan order, the views file it labels, if every one is in the
    /// manifest with the same number of rows.
    fn views_in_logits_order(&self, filter: &PartFilter) -> Option<Vec<&DataFile>> {
        let views = views_by_key(&self.manifest);
        self.scan_groups(c::LOGITS, filter)
            .into_iter()
            .flatten()
            .map(|logits| {
                let view = views.get(logits.views_key.as_deref()?)?;
                (view.rows == logits.rows).then_some(*view)
            })
            .collect()
    }

    /// Loads the whole samples table.
    pub fn load_samples(&self) -> Result<SampleTable, StoreError> {
        let frame = self.collect(c::SAMPLES, self.scan(c::SAMPLES)?.sort([c::SAMPLE_ID], Default::default()))?;
        let sample_len: usize = self.manifest.dataset.sample_shape.iter().product();
        let column_error = |column: &str, detail: String| StoreError::Column {
            path: self.root.clone(),
            column: column.to_string(),
            detail,
        };
        let ids = i64_column(&frame, c::SAMPLE_ID).map_err(|e| column_error(c::SAMPLE_ID, e.to_string()))?;
        for (position, id) in ids.iter().enumerate() {
            if *id != position as i64 {
                return Err(column_error(
                    c::SAMPLE_ID,
                    format!("expected dense ids 0..n, found {id} at row {position}"),
                ));
            }
        }
        let labels = i64_column(&frame, c::LABEL).map_err(|e| column_error(c::LABEL, e.to_string()))?;
        let groups = opt_i64_column(&frame, c::GROUP).map_err(|e| column_error(c::GROUP, e.to_string()))?;
        let splits = str_column(&frame, c::SPLIT)
            .map_err(|e| column_error(c::SPLIT, e.to_string()))?
            .iter()
            .enumerate()
            .map(|(row, s)| {
                Split::parse(s)
                    .ok_or_else(|| column_error(c::SPLIT, format!("row {row}: '{s}' is not one of train, val, test")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let inputs = match &self.manifest.dataset.files {
            None => Inputs::Held(
                flat_f32_list(&frame, c::INPUT, sample_len).map_err(|detail| column_error(c::INPUT, detail))?,
            ),
            Some(folder) => {
                let input_error = |source| StoreError::Input { path: self.root.clone(), source };
                let folder = FolderFiles {
                    root: folder.root.clone(),
                    files: file_refs(&frame).map_err(|(column, e)| column_error(column, e.to_string()))?,
                    decode: folder.decode,
                    shape: self.manifest.dataset.sample_shape.clone(),
                };
                if inputs::hold_decoded(folder.files.len(), sample_len).map_err(input_error)? {
                    Inputs::Held(folder.decode_all().map_err(input_error)?)
                } else {
                    Inputs::Decoded(Arc::new(folder))
                }
            }
        };
        Ok(SampleTable {
            splits,
            labels,
            groups,
            inputs,
            sample_len,
            sample_shape: self.manifest.dataset.sample_shape.clone(),
        })
    }

    /// An image folder store's files as its `samples` table records them, in sample order.
    pub fn sample_files(&self) -> Result<Vec<FileRef>, StoreError> {
        let scan = self.scan(c::SAMPLES)?.sort([c::SAMPLE_ID], Default::default());
        let frame = self.collect(c::SAMPLES, scan.select([col(c::PATH), col(c::FILE_SIZE), col(c::FILE_HASH)]))?;
        file_refs(&frame).map_err(|(column, e)| StoreError::Column {
            path: self.root.clone(),
            column: column.to_string(),
            detail: e.to_string(),
        })
    }

    /// Collects a views frame (a scan of some views files) into rows.
    pub fn load_views(&self, frame: LazyFrame) -> Result<Vec<ViewRow>, StoreError> {
        let frame = self.collect(c::VIEWS, frame)?;
        views_from_frame(&frame, self.manifest.seed).map_err(|(column, detail)| StoreError::Column {
            path: self.root.clone(),
            column,
            detail,
        })
    }

    pub fn collect(&self, table: &str, frame: LazyFrame) -> Result<DataFrame, StoreError> {
        self.without_panics(table, || frame.collect().map_err(|source| self.parquet_error(table, source)))
    }
}

/// The text of a panic's payload, shortened to its first line (Polars nests its workers' panics).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = crate::panics::payload_text(payload);
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 240 {
        format!("{}…", line.chars().take(240).collect::<String>())
    } else {
        line.to_string()
    }
}

/// A table with its columns and no rows.
fn empty_table(table: &str, sample_shape: &[usize]) -> PolarsResult<DataFrame> {
    match table {
        c::SAMPLES => writer::samples_frame(&SampleRows {
            splits: &[],
            labels: &[],
            groups: None,
            inputs: SampleInputs::Values(&[]),
            sample_shape,
        }),
        c::VIEWS => writer::views_frame(&[]),
        c::EMBEDDINGS => writer::embeddings_frame("", &[], &[], LogitsDtype::F32),
        c::SUBSETS => writer::subsets_frame("", &[]),
        _ => writer::logits_frame("", &[], LogitsFormat::Dense(LogitsDtype::F32)),
    }
}

/// The `logits` column rebuilt from a top-k part's `topk_index`, `topk_logprob` and `lse`.
fn topk_dense_logits(values: TopKValues, classes: usize) -> Expr {
    let output =
        |_: &Schema, _: &[Field]| Ok(Field::new(c::LOGITS_COLUMN.into(), DataType::List(Box::new(DataType::Float32))));
    col(c::TOPK_INDEX)
        .map_many(
            move |columns| dense_rows(columns, values, classes).map(|s| s.into_column()),
            &[col(c::TOPK_LOGPROB), col(c::LSE)],
            output,
        )
        .alias(c::LOGITS_COLUMN)
}

fn dense_rows(columns: &mut [Column], values: TopKValues, classes: usize) -> PolarsResult<Series> {
    let index = columns[0].cast(&DataType::List(Box::new(DataType::UInt32)))?;
    let logprob = columns[1].cast(&DataType::List(Box::new(DataType::Float64)))?;
    let lse = columns[2].cast(&DataType::Float64)?;
    let (index, logprob, lse) = (index.list()?, logprob.list()?, lse.f64()?);
    let n = index.len();
    let mut builder =
        ListPrimitiveChunkedBuilder::<Float32Type>::new(c::LOGITS_COLUMN.into(), n, n * classes, DataType::Float32);
    let (mut kept, mut logprobs, mut dense, mut row) = (Vec::new(), Vec::new(), vec![0.0; classes], Vec::new());
    let null = || polars_err!(ComputeError: "a top-k logits row holds a null");
    for ((classes_of_row, logprobs_of_row), lse) in index.amortized_iter().zip(logprob.amortized_iter()).zip(lse.iter())
    {
        let (classes_of_row, logprobs_of_row, lse) =
            (classes_of_row.ok_or_else(null)?, logprobs_of_row.ok_or_else(null)?, lse.ok_or_else(null)?);
        kept.clear();
        for class in classes_of_row.as_ref().u32()?.iter() {
            kept.push(class.ok_or_else(null)?);
        }
        logprobs.clear();
        for value in logprobs_of_row.as_ref().f64()?.iter() {
            logprobs.push(values.logprob(value.ok_or_else(null)?));
        }
        topk::fill_dense(&kept, &logprobs, lse, &mut dense)
            .map_err(|detail| polars_err!(ComputeError: "a top-k logits row: {detail}"))?;
        row.clear();
        row.extend(dense.iter().map(|&v| v as f32));
        builder.append_slice(&row);
    }
    Ok(builder.finish().into_series())
}

/// The samples table in memory (an image folder's inputs perhaps decoded on use, see
/// `source::inputs`). `sample_id` is the row index.
#[derive(Debug, Clone)]
pub struct SampleTable {
    pub splits: Vec<Split>,
    pub labels: Vec<i64>,
    pub groups: Vec<Option<i64>>,
    pub inputs: Inputs,
    pub sample_len: usize,
    pub sample_shape: Vec<usize>,
}

impl SampleTable {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// A sample's raw input values (decoded from its file if the inputs are not held).
    pub fn input(&self, sample_id: usize) -> Result<Cow<'_, [f32]>, SourceError> {
        self.inputs.sample(sample_id, self.sample_len)
    }

    /// The raw inputs of `ids`, one after the other.
    pub fn inputs_of(&self, ids: &[usize]) -> Result<Vec<f32>, SourceError> {
        self.inputs.gather(ids, self.sample_len)
    }

    /// Sample ids of one split, ascending.
    pub fn ids_in(&self, split: Split) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.splits[i] == split).collect()
    }
}

/// The files of an image folder store's `samples` frame, row by row.
fn file_refs(frame: &DataFrame) -> Result<Vec<FileRef>, (&'static str, PolarsError)> {
    let paths = str_column(frame, c::PATH).map_err(|e| (c::PATH, e))?;
    let sizes = u64_column(frame, c::FILE_SIZE).map_err(|e| (c::FILE_SIZE, e))?;
    let hashes = u64_column(frame, c::FILE_HASH).map_err(|e| (c::FILE_HASH, e))?;
    Ok(paths.into_iter().zip(sizes).zip(hashes).map(|((path, size), hash)| FileRef { path, size, hash }).collect())
}

/// A non-null integer column, widened to i64.
pub fn i64_column(frame: &DataFrame, name: &str) -> PolarsResult<Vec<i64>> {
    opt_i64_column(frame, name)?
        .into_iter()
        .enumerate()
        .map(|(row, v)| v.ok_or_else(|| polars_err!(ComputeError: "row {row} is null")))
        .collect()
}

/// A nullable integer column, widened to i64.
pub fn opt_i64_column(frame: &DataFrame, name: &str) -> PolarsResult<Vec<Option<i64>>> {
    let column = frame.column(name)?.cast(&DataType::Int64)?;
    Ok(column.i64()?.iter().collect())
}

/// A non-null unsigned 64-bit column (seeds, hashes).
pub fn u64_column(frame: &DataFrame, name: &str) -> PolarsResult<Vec<u64>> {
    let column = frame.column(name)?.cast(&DataType::UInt64)?;
    column
        .u64()?
        .iter()
        .enumerate()
        .map(|(row, v)| v.ok_or_else(|| polars_err!(ComputeError: "row {row} is null")))
        .collect()
}

/// A nullable float column, as f32.
pub fn opt_f32_column(frame: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f32>>> {
    let column = frame.column(name)?.cast(&DataType::Float32)?;
    Ok(column.f32()?.iter().collect())
}

/// A non-null string column.
pub fn str_column(frame: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    let column = frame.column(name)?;
    column
        .str()?
        .iter()
        .enumerate()
        .map(|(row, v)| v.map(str::to_string).ok_or_else(|| polars_err!(ComputeError: "row {row} is null")))
        .collect()
}

/// A non-null string column with each distinct value allocated once (a recipe name per view of
/// ten million views costs a pointer, not a string).
pub fn interned_str_column(frame: &DataFrame, name: &str) -> PolarsResult<Vec<std::sync::Arc<str>>> {
    let mut distinct: std::collections::HashMap<&str, std::sync::Arc<str>> = std::collections::HashMap::new();
    let column = frame.column(name)?.str()?;
    column
        .iter()
        .enumerate()
        .map(|(row, v)| {
            let v = v.ok_or_else(|| polars_err!(ComputeError: "row {row} is null"))?;
            Ok(distinct.entry(v).or_insert_with(|| v.into()).clone())
        })
        .collect()
}

/// Flattens a `list<float>` column whose rows all have `width` values.
pub fn flat_f32_list(frame: &DataFrame, name: &str, width: usize) -> Result<Vec<f32>, String> {
    let column = frame.column(name).map_err(|e| e.to_string())?;
    let column = column.cast(&DataType::List(Box::new(DataType::Float32))).map_err(|e| e.to_string())?;
    let list = column.list().map_err(|e| e.to_string())?;
    let mut flat = Vec::with_capacity(list.len() * width);
    for (row, value) in list.amortized_iter().enumerate() {
        let value = value.ok_or_else(|| format!("row {row} is null"))?;
        let series = value.as_ref();
        if series.len() != width {
            return Err(format!("row {row} has {} values, expected {width}", series.len()));
        }
        for v in series.f32().map_err(|e| e.to_string())?.iter() {
            flat.push(v.ok_or_else(|| format!("row {row} holds a null value"))?);
        }
    }
    Ok(flat)
}

/// Every column a views file of any schema version may hold: today's, and the `seed` that schema
/// 4 and older wrote.
fn views_file_schema() -> PolarsResult<SchemaRef> {
    let mut schema = writer::views_frame(&[])?.schema().as_ref().clone();
    schema.with_column(c::SEED.into(), DataType::UInt64);
    Ok(std::sync::Arc::new(schema))
}

/// The typed rows of a views frame, each view's seed derived from its identifiers under the
/// pipeline seed (the store does not keep it).
fn views_from_frame(frame: &DataFrame, pipeline_seed: u64) -> Result<Vec<ViewRow>, (String, String)> {
    let err = |column: &'static str| move |e: PolarsError| (column.to_string(), e.to_string());
    let view_ids = i64_column(frame, c::VIEW_ID).map_err(err(c::VIEW_ID))?;
    let sample_ids = i64_column(frame, c::SAMPLE_ID).map_err(err(c::SAMPLE_ID))?;
    let replicas = i64_column(frame, c::REPLICA).map_err(err(c::REPLICA))?;
    let recipes = str_column(frame, c::RECIPE).map_err(err(c::RECIPE))?;
    let hashes = u64_column(frame, c::INPUT_HASH).map_err(err(c::INPUT_HASH))?;
    let partners = opt_i64_column(frame, c::PARTNER_ID).map_err(err(c::PARTNER_ID))?;
    let lams = opt_f32_column(frame, c::LAM).map_err(err(c::LAM))?;
    let mut params = params_from_frame(frame)?.into_iter();
    Ok((0..frame.height())
        .map(|i| ViewRow {
            view_id: view_ids[i],
            sample_id: sample_ids[i],
            recipe: recipes[i].clone(),
            replica: replicas[i] as u32,
            seed: view_seed(pipeline_seed, sample_ids[i], &recipes[i], replicas[i] as u32),
            partner_id: partners[i],
            lam: lams[i],
            params: params.next().expect("one per row"),
            input_hash: hashes[i],
        })
        .collect())
}

/// The typed parameter columns of a views frame, row by row.
fn params_from_frame(frame: &DataFrame) -> Result<Vec<DrawnParams>, (String, String)> {
    let mut rows = vec![DrawnParams::default(); frame.height()];
    for column in param_columns() {
        let err = |e: PolarsError| (column.name.to_string(), e.to_string());
        let data = frame.column(column.name).map_err(err)?;
        let mut put = |row: usize, value| rows[row].insert(column.name, value);
        match column.kind {
            ParamKind::Bool => {
                for (row, v) in data.bool().map_err(err)?.iter().enumerate() {
                    if let Some(v) = v {
                        put(row, ParamValue::Bool(v));
                    }
                }
            }
            ParamKind::Int => {
                for (row, v) in data.cast(&DataType::Int64).map_err(err)?.i64().map_err(err)?.iter().enumerate() {
                    if let Some(v) = v {
                        put(row, ParamValue::Int(v));
                    }
                }
            }
            ParamKind::Float => {
                for (row, v) in data.cast(&DataType::Float64).map_err(err)?.f64().map_err(err)?.iter().enumerate() {
                    if let Some(v) = v {
                        put(row, ParamValue::Float(v));
                    }
                }
            }
            ParamKind::IntList | ParamKind::FloatList => {
                let inner = if column.kind == ParamKind::IntList { DataType::Int64 } else { DataType::Float64 };
                let data = data.cast(&DataType::List(Box::new(inner))).map_err(err)?;
                for (row, list) in data.list().map_err(err)?.amortized_iter().enumerate() {
                    let Some(list) = list else { continue };
                    let list = list.as_ref();
                    let value = if column.kind == ParamKind::IntList {
                        ParamValue::IntList(list.i64().map_err(err)?.into_no_null_iter().collect())
                    } else {
                        ParamValue::FloatList(list.f64().map_err(err)?.into_no_null_iter().collect())
                    };
                    put(row, value);
                }
            }
        }
    }
    Ok(rows)
}
