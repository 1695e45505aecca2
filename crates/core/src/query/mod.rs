//! SQL over a store with Polars: registers `samples`, `views`, `logits` and the joined `labels` view
//! of the current version and runs one statement on Polars' streaming engine, so that a grouped
//! query over a large store reads its files in batches instead of loading the tables. Unaliased
//! expressions get DuckDB's names ([`names`]). Queries only read: nothing here writes to the store.
//! Results can be written as CSV, JSON or Parquet (the table format is drawn by the CLI).

pub mod names;
pub mod prune;

use std::io::Write;

use polars::prelude::*;
use polars::sql::SQLContext;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::store::columns as c;
use crate::store::writer::portable_arrow_schema;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sql: {0}")]
    Sql(String),
    #[error("cannot write the result: {0}")]
    Write(String),
}

/// Runs `sql` against the store's current version.
pub fn run(store: &Store, sql: &str) -> Result<DataFrame, QueryError> {
    let (mut context, sql, read) = registered(store, sql)?;
    // Polars panics on some malformed Parquet (see `Store::without_panics`): such a panic, in
    // planning or in either engine, is an error about the tables the query reads.
    store.without_panics(&read, || Ok(execute(&mut context, &sql))).map_err(QueryError::Store)?
}

/// Runs `sql` and hands its result to `each` a batch at a time, as Polars' streaming engine makes
/// them, so that a selection of ten million rows is never whole in memory. A statement that the
/// streaming engine cannot run (it panics before the first batch) runs in memory instead, its
/// result handed over a part file's rows at a time. The first error of `each` stops the query.
pub fn for_each_batch<E: From<QueryError>>(
    store: &Store,
    sql: &str,
    mut each: impl FnMut(DataFrame) -> Result<(), E>,
) -> Result<(), E> {
    let (mut context, sql, read) = registered(store, sql)?;
    let frame =
        store.without_panics(&read, || Ok(context.execute(&sql))).map_err(QueryError::Store)?.map_err(one_line)?;
    let in_memory = frame.clone();
    let (sender, receiver) = std::sync::mpsc::sync_channel::<DataFrame>(1);
    let mut handed = 0;
    let (outcome, produced) = std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // The callback's `true` stops the query: the receiver is gone after an error.
                let stop = PlanCallback::new(move |batch: DataFrame| Ok(sender.send(batch).is_err()));
                frame.sink_batches(stop, true, None)?.collect_with_engine(Engine::Streaming).map(|_| ())
            }))
        });
        let mut outcome = Ok(());
        for batch in receiver {
            handed += 1;
            if let Err(e) = each(batch) {
                outcome = Err(e);
                break;
            }
        }
        (outcome, producer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    outcome?;
    match produced {
        Ok(result) => result.map_err(|e| one_line(e).into()),
        Err(_) if handed == 0 => {
            let mut frame = store
                .without_panics(&read, || Ok(in_memory.collect()))
                .map_err(QueryError::Store)?
                .map_err(one_line)?;
            let chunks: Vec<DataFrame> = frame.split_chunks().collect();
            chunks.into_iter().try_for_each(each)
        }
        Err(panic) => Err(QueryError::Store(StoreError::Malformed {
            path: store.root.clone(),
            table: read,
            detail: crate::store::reader::panic_message(&*panic),
        })
        .into()),
    }
}

/// A SQL context with the tables `sql` reads registered, the statement as Polars runs it, and the
/// names of the tables read (for errors).
fn registered(store: &Store, sql: &str) -> Result<(SQLContext, String, String), QueryError> {
    let prepared = prepare(sql)?;
    let read: std::collections::BTreeSet<&str> =
        prepared.tables.iter().copied().chain(prepared.pruned.iter().map(|part| part.table)).collect();
    let read = read.into_iter().collect::<Vec<_>>().join(", ");
    let context = SQLContext::new();
    for table in prepared.tables {
        let frame = if table == c::LABELS { store.labels()? } else { store.scan(table)? };
        context.register(table, frame);
    }
    for part in prepared.pruned {
        let frame = if part.table == c::LABELS {
            store.labels_of_parts(&part.filter)?
        } else {
            store.scan_parts(part.table, &part.filter)?
        };
        context.register(&part.name, frame);
    }
    Ok((context, prepared.sql, read))
}

fn execute(context: &mut SQLContext, sql: &str) -> Result<DataFrame, QueryError> {
    let frame = context.execute(sql).map_err(one_line)?;
    // The streaming engine lowers a few expressions only with Polars features this build leaves
    // out, and panics on them; such a query runs on the in-memory engine instead.
    let streaming = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        frame.clone().collect_with_engine(Engine::Streaming).map(|result| result.unwrap_single())
    }));
    match streaming {
        Ok(result) => result.map_err(one_line),
        Err(_) => frame.collect().map_err(one_line),
    }
}

/// A statement ready for Polars: rewritten, with the tables to register.
struct Prepared {
    sql: String,
    tables: std::collections::BTreeSet<&'static str>,
    pruned: Vec<prune::PrunedTable>,
}

/// Parses `sql` once, rewrites it ([`names`], [`prune`]) and finds the tables it reads. SQL that
/// does not parse goes to Polars as it is, with every table, for Polars' own error.
fn prepare(sql: &str) -> Result<Prepared, QueryError> {
    let Ok(mut statements) = Parser::parse_sql(&GenericDialect, sql) else {
        return Ok(Prepared { sql: sql.to_string(), tables: prune::TABLES.into(), pruned: vec![] });
    };
    names::rewrite(&mut statements, sql, &c::float_columns()).map_err(QueryError::Sql)?;
    let pruned = prune::prune(&mut statements);
    let tables = prune::referenced_tables(&statements);
    let sql = statements.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    Ok(Prepared { sql, tables, pruned })
}

/// Polars errors can span lines and append the query plan; the user needs the first sentence.
fn one_line(error: PolarsError) -> QueryError {
    let text = error.to_string();
    let text = text.split("Resolved plan until failure").next().unwrap_or_default();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    QueryError::Sql(lines.join("; ").trim_end_matches([';', ' ']).to_string())
}

/// Output formats other than the terminal table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Parquet,
}

/// One column of a small table made outside the store (training metrics, study results).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Int(Vec<i64>),
    Float(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

/// Writes a table of named columns of equal length in `format`.
pub fn write_table(columns: Vec<(&str, Values)>, format: Format, out: &mut dyn Write) -> Result<(), QueryError> {
    let height = columns.first().map_or(0, |(_, values)| match values {
        Values::Int(v) => v.len(),
        Values::Float(v) => v.len(),
        Values::Text(v) => v.len(),
    });
    let columns = columns
        .into_iter()
        .map(|(name, values)| match values {
            Values::Int(v) => Column::new(name.into(), v),
            Values::Float(v) => Column::new(name.into(), v),
            Values::Text(v) => Column::new(name.into(), v),
        })
        .collect();
    let mut frame = DataFrame::new(height, columns).map_err(|e| QueryError::Write(e.to_string()))?;
    write(&mut frame, format, out)
}

/// Writes `frame` in `format`.
pub fn write(frame: &mut DataFrame, format: Format, out: &mut dyn Write) -> Result<(), QueryError> {
    let write_error = |e: std::io::Error| QueryError::Write(e.to_string());
    match format {
        Format::Parquet => {
            ParquetWriter::new(out)
                .with_key_value_metadata(Some(portable_arrow_schema(frame)))
                .finish(frame)
                .map_err(|e| QueryError::Write(e.to_string()))?;
        }
        Format::Csv => {
            let names: Vec<String> = frame.get_column_names().iter().map(|n| csv_field(n.as_str())).collect();
            writeln!(out, "{}", names.join(",")).map_err(write_error)?;
            for row in 0..frame.height() {
                let fields: Vec<String> = frame
                    .columns()
                    .iter()
                    .map(|col| csv_field(&json_value(col.get(row).unwrap_or(AnyValue::Null)).to_string_plain()))
                    .collect();
                writeln!(out, "{}", fields.join(",")).map_err(write_error)?;
            }
        }
        Format::Json => {
            // Written field by field so that the keys keep the columns' order (a JSON map would
            // sort them).
            let names: Vec<String> =
                frame.get_column_names().iter().map(|n| serde_json::Value::from(n.as_str()).to_string()).collect();
            write!(out, "[").map_err(write_error)?;
            for row in 0..frame.height() {
                let fields: Vec<String> = names
                    .iter()
                    .zip(frame.columns())
                    .map(|(name, col)| format!("    {name}: {}", json_value(col.get(row).unwrap_or(AnyValue::Null))))
                    .collect();
                let separator = if row == 0 { "" } else { "," };
                write!(out, "{separator}\n  {{\n{}\n  }}", fields.join(",\n")).map_err(write_error)?;
            }
            writeln!(out, "{}]", if frame.height() == 0 { "" } else { "\n" }).map_err(write_error)?;
        }
    }
    Ok(())
}

trait PlainText {
    fn to_string_plain(&self) -> String;
}

impl PlainText for serde_json::Value {
    /// Strings without quotes, nulls as empty fields, everything else as JSON.
    fn to_string_plain(&self) -> String {
        match self {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        }
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// One cell as JSON: numbers, strings, booleans, null, and lists as arrays.
pub fn json_value(value: AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        AnyValue::Null => J::Null,
        AnyValue::Boolean(b) => J::Bool(b),
        AnyValue::String(s) => J::String(s.to_string()),
        AnyValue::StringOwned(s) => J::String(s.to_string()),
        AnyValue::UInt8(v) => v.into(),
        AnyValue::UInt16(v) => v.into(),
        AnyValue::UInt32(v) => v.into(),
        AnyValue::UInt64(v) => v.into(),
        AnyValue::Int8(v) => v.into(),
        AnyValue::Int16(v) => v.into(),
        AnyValue::Int32(v) => v.into(),
        AnyValue::Int64(v) => v.into(),
        AnyValue::Float16(v) => float(f32::from(v) as f64),
        AnyValue::Float32(v) => float(v as f64),
        AnyValue::Float64(v) => float(v),
        AnyValue::List(series) => J::Array(series.iter().map(json_value).collect()),
        other => J::String(other.to_string()),
    }
}

fn float(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
