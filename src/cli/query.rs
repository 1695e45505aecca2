//! `kdstore query STORE SQL [--format table|csv|json|parquet] [--output FILE]`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use kdstore_core::query::{self, Format, QueryError};

use super::{classify_store, StoreAt, UserError};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreAt,
    /// One SQL statement over samples, views, logits and labels.
    sql: String,
    /// Output format (parquet needs --output).
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Write the result to this file instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Rows shown by the table format (all rows go to the other formats).
    #[arg(long, default_value_t = 20)]
    max_rows: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let store = args.store.open()?;
    let mut frame = query::run(&store, &args.sql).map_err(|e| match e {
        QueryError::Store(s) => classify_store(s),
        other => UserError::from_error(other),
    })?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| UserError::msg(format!("cannot create {}: {e}", path.display())))?,
        )),
        None => {
            if matches!(args.format, OutputFormat::Parquet) {
                return Err(UserError::msg("--format parquet needs --output FILE".into()));
            }
            Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
        }
    };
    let format = match args.format {
        OutputFormat::Table => {
            // Polars reads its table layout from the environment.
            std::env::set_var("POLARS_FMT_MAX_ROWS", args.max_rows.to_string());
            std::env::set_var("POLARS_FMT_MAX_COLS", "30");
            std::env::set_var("POLARS_FMT_STR_LEN", "40");
            std::env::set_var("POLARS_FMT_TABLE_ROUNDED_CORNERS", "1");
            if !std::io::stdout().is_terminal() && std::env::var_os("POLARS_TABLE_WIDTH").is_none() {
                std::env::set_var("POLARS_TABLE_WIDTH", "200");
            }
            writeln!(out, "{frame}")?;
            out.flush()?;
            return Ok(());
        }
        OutputFormat::Csv => Format::Csv,
        OutputFormat::Json => Format::Json,
        OutputFormat::Parquet => Format::Parquet,
    };
    query::write(&mut frame, format, &mut out).map_err(|e| match e {
        QueryError::Write(message) if message.contains("Broken pipe") => {
            anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        other => anyhow::Error::new(other),
    })?;
    out.flush()?;
    Ok(())
}
