//! Builds the store's tables as Polars frames and writes them as Parquet files, atomically:
//! a file is written under a temporary name, synced, then renamed to its final, content-keyed name.

use std::fs;
use std::path::Path;

use polars::prelude::*;

use super::columns as c;
use super::topk::{self, TopK, TopKValues};
use super::{DataFile, Split, StoreError};
use crate::augment::{param_columns, DrawnParams, ParamColumn, ParamKind, ParamValue};
use crate::source::image_folder::FileRef;

/// Element type used for stored logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogitsDtype {
    #[default]
    F32,
    F16,
}

impl LogitsDtype {
    pub fn as_str(self) -> &'static str {
        match self {
            LogitsDtype::F32 => "f32",
            LogitsDtype::F16 => "f16",
        }
    }
}

/// How a teacher's logits part stores its rows: every logit, or the top k (see [`super::topk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsFormat {
    Dense(LogitsDtype),
    TopK(TopK),
}

/// Rows of the `samples` table, column by column.
pub struct SampleRows<'a> {
    pub splits: &'a [Split],
    pub labels: &'a [i64],
    pub groups: Option<&'a [i64]>,
    pub inputs: SampleInputs<'a>,
    pub sample_shape: &'a [usize],
}

/// What the `samples` table holds of each input: the values, or (an image folder) the file.
#[derive(Clone, Copy)]
pub enum SampleInputs<'a> {
    Values(&'a [f32]),
    Files(&'a [FileRef]),
}

/// One row of the `views` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewRow {
    pub view_id: i64,
    pub sample_id: i64,
    pub recipe: String,
    pub replica: u32,
    /// `augment::seed::view_seed` of the identifiers above: not stored, derived again on reading.
    pub seed: u64,
    pub partner_id: Option<i64>,
    pub lam: Option<f32>,
    /// What the ops drew, one typed column each (see `augment::params`).
    pub params: DrawnParams,
    pub input_hash: u64,
}

/// One row of a `logits` partition.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitsRow {
    pub view_id: i64,
    pub logits: Vec<f32>,
    pub teacher_pred: i64,
    pub teacher_loss: f32,
    pub p_label: f32,
    pub entropy: f32,
    pub margin: f32,
    pub teacher_correct: bool,
}

fn list_f32(name: &str, rows: usize, flat: &[f32], width: usize) -> Series {
    list_of::<Float32Type>(name, rows, flat, width)
}

/// A list column of `rows` rows of `width` values each, from the values row after row.
fn list_of<T: PolarsNumericType>(name: &str, rows: usize, flat: &[T::Native], width: usize) -> Series {
    let mut builder = ListPrimitiveChunkedBuilder::<T>::new(name.into(), rows, flat.len(), T::get_static_dtype());
    for row in flat.chunks(width.max(1)).take(rows) {
        builder.append_slice(row);
    }
    builder.finish().into_series()
}

pub(crate) fn samples_frame(rows: &SampleRows) -> PolarsResult<DataFrame> {
    let n = rows.labels.len();
    let width: usize = rows.sample_shape.iter().product();
    let ids: Vec<i64> = (0..n as i64).collect();
    let splits: Vec<&str> = rows.splits.iter().map(|s| s.as_str()).collect();
    let groups: Vec<Option<i64>> = match rows.groups {
        Some(g) => g.iter().map(|&g| Some(g)).collect(),
        None => vec![None; n],
    };
    let shape: Vec<i64> = rows.sample_shape.iter().map(|&d| d as i64).collect();
    let mut shape_builder =
        ListPrimitiveChunkedBuilder::<Int64Type>::new(c::SHAPE.into(), n, n * shape.len(), DataType::Int64);
    for _ in 0..n {
        shape_builder.append_slice(&shape);
    }
    let mut columns = vec![
        Column::new(c::SAMPLE_ID.into(), ids),
        Column::new(c::SPLIT.into(), splits),
        Column::new(c::LABEL.into(), rows.labels.to_vec()),
        Column::new(c::GROUP.into(), groups),
    ];
    match rows.inputs {
        SampleInputs::Values(values) => columns.push(list_f32(c::INPUT, n, values, width).into_column()),
        SampleInputs::Files(files) => columns.extend([
            Column::new(c::PATH.into(), files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>()),
            Column::new(c::FILE_SIZE.into(), files.iter().map(|f| f.size).collect::<Vec<_>>()),
            Column::new(c::FILE_HASH.into(), files.iter().map(|f| f.hash).collect::<Vec<_>>()),
        ]),
    }
    columns
        .extend([shape_builder.finish().into_series().into_column(), Column::new(c::DTYPE.into(), vec!["float32"; n])]);
    DataFrame::new(n, columns)
}

/// One parameter column over all rows; null where a row's recipe did not draw it.
fn param_series(column: &ParamColumn, rows: &[ViewRow]) -> Series {
    let name: PlSmallStr = column.name.into();
    let values = || rows.iter().map(|r| r.params.get(column.name));
    match column.kind {
        ParamKind::Bool => Series::new(name, values().map(|v| v.and_then(ParamValue::as_bool)).collect::<Vec<_>>()),
        ParamKind::Int => Series::new(name, values().map(|v| v.and_then(ParamValue::as_int)).collect::<Vec<_>>()),
        ParamKind::Float => Series::new(name, values().map(|v| v.and_then(ParamValue::as_float)).collect::<Vec<_>>()),
        ParamKind::IntList => {
            let mut builder = ListPrimitiveChunkedBuilder::<Int64Type>::new(name, rows.len(), 0, DataType::Int64);
            for value in values() {
                match value.and_then(ParamValue::as_ints) {
                    Some(list) => builder.append_slice(list),
                    None => builder.append_null(),
                }
            }
            builder.finish().into_series()
        }
        ParamKind::FloatList => {
            let mut builder = ListPrimitiveChunkedBuilder::<Float64Type>::new(name, rows.len(), 0, DataType::Float64);
            for value in values() {
                match value.and_then(ParamValue::as_floats) {
                    Some(list) => builder.append_slice(list),
                    None => builder.append_null(),
                }
            }
            builder.finish().into_series()
        }
    }
}

pub(crate) fn views_frame(rows: &[ViewRow]) -> PolarsResult<DataFrame> {
    let params = param_columns().iter().map(|column| param_series(column, rows).into_column()).collect::<Vec<_>>();
    DataFrame::new(
        rows.len(),
        [
            vec![
                Column::new(c::VIEW_ID.into(), rows.iter().map(|r| r.view_id).collect::<Vec<_>>()),
                Column::new(c::SAMPLE_ID.into(), rows.iter().map(|r| r.sample_id).collect::<Vec<_>>()),
                Column::new(c::RECIPE.into(), rows.iter().map(|r| r.recipe.as_str()).collect::<Vec<_>>()),
                Column::new(c::REPLICA.into(), rows.iter().map(|r| r.replica as i64).collect::<Vec<_>>()),
                Column::new(c::PARTNER_ID.into(), rows.iter().map(|r| r.partner_id).collect::<Vec<_>>()),
                Column::new(c::LAM.into(), rows.iter().map(|r| r.lam).collect::<Vec<_>>()),
                Column::new(c::INPUT_HASH.into(), rows.iter().map(|r| r.input_hash).collect::<Vec<_>>()),
            ],
            params,
        ]
        .concat(),
    )
}

pub(crate) fn logits_frame(teacher: &str, rows: &[LogitsRow], format: LogitsFormat) -> PolarsResult<DataFrame> {
    let dtype = match format {
        LogitsFormat::Dense(dtype) => dtype,
        LogitsFormat::TopK(top) => return topk_logits_frame(teacher, rows, top),
    };
    let n = rows.len();
    let width = rows.first().map_or(0, |r| r.logits.len());
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.logits.iter().copied()).collect();
    let mut logits = list_f32(c::LOGITS_COLUMN, n, &flat, width);
    if dtype == LogitsDtype::F16 {
        logits = logits.cast(&DataType::List(Box::new(DataType::Float16)))?;
    }
    let mut columns = vec![
        Column::new(c::VIEW_ID.into(), rows.iter().map(|r| r.view_id).collect::<Vec<_>>()),
        Column::new(c::TEACHER.into(), vec![teacher; n]),
        logits.into_column(),
        Column::new(c::TEACHER_PRED.into(), rows.iter().map(|r| r.teacher_pred).collect::<Vec<_>>()),
    ];
    columns.extend(statistics_columns(rows));
    DataFrame::new(n, columns)
}

/// The per-row statistics, from `teacher_loss` to `teacher_correct`.
fn statistics_columns(rows: &[LogitsRow]) -> [Column; 5] {
    [
        Column::new(c::TEACHER_LOSS.into(), rows.iter().map(|r| r.teacher_loss).collect::<Vec<_>>()),
        Column::new(c::P_LABEL.into(), rows.iter().map(|r| r.p_label).collect::<Vec<_>>()),
        Column::new(c::ENTROPY.into(), rows.iter().map(|r| r.entropy).collect::<Vec<_>>()),
        Column::new(c::MARGIN.into(), rows.iter().map(|r| r.margin).collect::<Vec<_>>()),
        Column::new(c::TEACHER_CORRECT.into(), rows.iter().map(|r| r.teacher_correct).collect::<Vec<_>>()),
    ]
}

/// A top-k logits part (columns in `columns::TOPK_LOGITS_COLUMNS`), from rows of full logits.
fn topk_logits_frame(teacher: &str, rows: &[LogitsRow], top: TopK) -> PolarsResult<DataFrame> {
    let n = rows.len();
    let classes = rows.first().map_or(0, |r| r.logits.len());
    let k = top.top_k.min(classes);
    let mut indices = Vec::with_capacity(n * k);
    let mut logprobs = Vec::with_capacity(n * k);
    let mut lses = Vec::with_capacity(n);
    for row in rows {
        let (kept, row_logprobs, lse) = topk::top_k(&row.logits, k);
        indices.extend(kept);
        logprobs.extend(row_logprobs);
        lses.push(lse as f32);
    }
    let index = match topk::index_bits(classes) {
        8 => {
            let narrow: Vec<u8> = indices.iter().map(|&i| i as u8).collect();
            list_of::<UInt8Type>(c::TOPK_INDEX, n, &narrow, k)
        }
        16 => {
            let narrow: Vec<u16> = indices.iter().map(|&i| i as u16).collect();
            list_of::<UInt16Type>(c::TOPK_INDEX, n, &narrow, k)
        }
        _ => list_of::<UInt32Type>(c::TOPK_INDEX, n, &indices, k),
    };
    let values = match top.values {
        TopKValues::F16 => {
            let values: Vec<f32> = logprobs.iter().map(|&v| v as f32).collect();
            list_f32(c::TOPK_LOGPROB, n, &values, k).cast(&DataType::List(Box::new(DataType::Float16)))?
        }
        TopKValues::Q8 => {
            let codes: Vec<u8> = logprobs.iter().map(|&v| topk::quantise_q8(v)).collect();
            list_of::<UInt8Type>(c::TOPK_LOGPROB, n, &codes, k)
        }
    };
    let mut columns = vec![
        Column::new(c::TEACHER.into(), vec![teacher; n]),
        index.into_column(),
        values.into_column(),
        Column::new(c::LSE.into(), lses),
    ];
    for column in statistics_columns(rows) {
        columns.push(match column.dtype() {
            DataType::Float32 => column.cast(&DataType::Float16)?,
            _ => column,
        });
    }
    DataFrame::new(n, columns)
}

/// The `embeddings` rows of one part: each view's features, stored as `dtype`.
pub(crate) fn embeddings_frame(
    teacher: &str,
    view_ids: &[i64],
    features: &[Vec<f32>],
    dtype: LogitsDtype,
) -> PolarsResult<DataFrame> {
    let n = view_ids.len();
    let width = features.first().map_or(0, Vec::len);
    let flat: Vec<f32> = features.concat();
    let mut column = list_f32(c::FEATURES, n, &flat, width);
    if dtype == LogitsDtype::F16 {
        column = column.cast(&DataType::List(Box::new(DataType::Float16)))?;
    }
    DataFrame::new(
        n,
        vec![
            Column::new(c::VIEW_ID.into(), view_ids.to_vec()),
            Column::new(c::TEACHER.into(), vec![teacher; n]),
            column.into_column(),
        ],
    )
}

pub(crate) fn subsets_frame(teacher: &str, sample_ids: &[i64]) -> PolarsResult<DataFrame> {
    let n = sample_ids.len();
    DataFrame::new(
        n,
        vec![Column::new(c::TEACHER.into(), vec![teacher; n]), Column::new(c::SAMPLE_ID.into(), sample_ids.to_vec())],
    )
}

/// Writes the `subsets` rows of one subset teacher: the training samples it learnt from.
pub fn write_subset(
    store: &Path,
    relative: &str,
    key: &str,
    teacher: &str,
    sample_ids: &[i64],
) -> Result<DataFile, StoreError> {
    let frame = subsets_frame(teacher, sample_ids).map_err(|source| frame_error(store, c::SUBSETS, source))?;
    let mut file = write_parquet(store, relative, c::SUBSETS, key, frame, DEFAULT_ZSTD)?;
    file.teacher = Some(teacher.to_string());
    Ok(file)
}

/// Writes the samples table's file `store/relative`, keyed `key`.
pub fn write_samples(store: &Path, relative: &str, key: &str, rows: &SampleRows) -> Result<DataFile, StoreError> {
    let frame = samples_frame(rows).map_err(|source| frame_error(store, c::SAMPLES, source))?;
    write_parquet(store, relative, c::SAMPLES, key, frame, DEFAULT_ZSTD)
}

/// Writes one views part.
pub fn write_views(store: &Path, relative: &str, key: &str, rows: &[ViewRow]) -> Result<DataFile, StoreError> {
    let frame = views_frame(rows).map_err(|source| frame_error(store, c::VIEWS, source))?;
    write_parquet(store, relative, c::VIEWS, key, frame, DEFAULT_ZSTD)
}

/// Writes one logits part of `teacher`, its logits stored in `format`.
pub fn write_logits(
    store: &Path,
    relative: &str,
    key: &str,
    teacher: &str,
    rows: &[LogitsRow],
    format: LogitsFormat,
) -> Result<DataFile, StoreError> {
    let frame = logits_frame(teacher, rows, format).map_err(|source| frame_error(store, c::LOGITS, source))?;
    let zstd = match format {
        LogitsFormat::Dense(_) => DEFAULT_ZSTD,
        LogitsFormat::TopK { .. } => TOPK_ZSTD,
    };
    let mut file = write_parquet(store, relative, c::LOGITS, key, frame, zstd)?;
    file.teacher = Some(teacher.to_string());
    Ok(file)
}

/// Writes one embeddings part of `teacher`: each view's features, stored as `dtype`.
pub fn write_embeddings(
    store: &Path,
    relative: &str,
    key: &str,
    teacher: &str,
    view_ids: &[i64],
    features: &[Vec<f32>],
    dtype: LogitsDtype,
) -> Result<DataFile, StoreError> {
    let frame = embeddings_frame(teacher, view_ids, features, dtype)
        .map_err(|source| frame_error(store, c::EMBEDDINGS, source))?;
    let mut file = write_parquet(store, relative, c::EMBEDDINGS, key, frame, DEFAULT_ZSTD)?;
    file.teacher = Some(teacher.to_string());
    Ok(file)
}

fn frame_error(store: &Path, table: &str, source: PolarsError) -> StoreError {
    StoreError::Parquet { path: store.to_path_buf(), table: table.to_string(), source }
}

/// A writer that keeps the first I/O error it passed on.
struct FirstIoError<W> {
    inner: W,
    error: Option<std::io::Error>,
}

impl<W: std::io::Write> std::io::Write for FirstIoError<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| self.note(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|e| self.note(e))
    }
}

impl<W> FirstIoError<W> {
    fn note(&mut self, error: &std::io::Error) {
        if self.error.is_none() {
            self.error = Some(std::io::Error::new(error.kind(), error.to_string()));
        }
    }
}

/// Every table's files are zstd-compressed at zstd's default level (3)...
const DEFAULT_ZSTD: Option<i32> = None;
/// ...but top-k logits files at level 9: small by design, they are written at 0.5 M rows/s there
/// (far above labelling's pace), and a top-10 row takes 1.5-1.8 bytes less (docs/benchmarks.md).
const TOPK_ZSTD: Option<i32> = Some(9);

/// Writes `frame` to `store/relative` atomically, zstd at `zstd_level`, and describes the file for
/// the manifest.
fn write_parquet(
    store: &Path,
    relative: &str,
    table: &str,
    key: &str,
    mut frame: DataFrame,
    zstd_level: Option<i32>,
) -> Result<DataFile, StoreError> {
    let final_path = store.join(relative);
    let dir = final_path.parent().expect("data files live in a table directory").to_path_buf();
    fs::create_dir_all(&dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
    let tmp_path =
        dir.join(format!(".{}.tmp-{}", final_path.file_name().unwrap().to_string_lossy(), std::process::id()));
    let io = |source| StoreError::Io { path: tmp_path.clone(), source };
    let file = fs::File::create(&tmp_path).map_err(io)?;
    let mut writer = FirstIoError { inner: &file, error: None };
    let written = ParquetWriter::new(&mut writer)
        .with_compression(ParquetCompression::Zstd(
            zstd_level.map(|level| polars_parquet::write::ZstdLevel::try_new(level).expect("a zstd level in 1..=22")),
        ))
        .with_key_value_metadata(Some(portable_arrow_schema(&frame)))
        .finish(&mut frame);
    // Polars words a failed write as a Parquet error ("transport error"); the I/O error under it
    // (a full disk, most often) is the one to report. The partial file goes either way.
    let written = match (written, writer.error.take()) {
        (Ok(_), _) => file.sync_all().map_err(io),
        (Err(_), Some(source)) => Err(io(source)),
        (Err(source), None) => Err(StoreError::Parquet { path: tmp_path.clone(), table: table.to_string(), source }),
    };
    drop(file);
    if let Err(error) = written {
        let _ = fs::remove_file(&tmp_path);
        return Err(error);
    }
    fs::rename(&tmp_path, &final_path).map_err(|source| StoreError::Io { path: final_path.clone(), source })?;
    super::manifest::sync_dir(&dir);
    let digests =
        super::integrity::digests(&final_path).map_err(|source| StoreError::Io { path: final_path.clone(), source })?;
    let file = DataFile {
        table: table.to_string(),
        path: relative.to_string(),
        key: key.to_string(),
        rows: frame.height(),
        bytes: digests.bytes,
        sha256: digests.sha256,
        xxh3: Some(digests.xxh3),
        recipe: None,
        replica: None,
        teacher: None,
        views_key: None,
    };
    super::integrity::written(store, &file);
    Ok(file)
}

/// The Arrow schema stored in the file's metadata, at Polars' oldest compatibility level: strings
/// as `large_string` rather than `string_view`, which pyarrow, pandas and older readers handle
/// everywhere (pyarrow cannot sort or group `string_view` columns in every version).
pub fn portable_arrow_schema(frame: &DataFrame) -> KeyValueMetadata {
    let schema = frame.schema().to_arrow(CompatLevel::oldest());
    KeyValueMetadata::Static(vec![polars_parquet::write::schema_to_metadata_key(&schema)])
}

/// Size and SHA-256 of a file.
pub fn file_digest(path: &Path) -> Result<(u64, String), StoreError> {
    let digests =
        super::integrity::digests(path).map_err(|source| StoreError::Io { path: path.to_path_buf(), source })?;
    Ok((digests.bytes, digests.sha256))
}
