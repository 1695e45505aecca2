//! `kdstore export STORE [--where SQL] --out DIR [--teacher NAME] [--normalized]`.

use std::path::PathBuf;

use kdstore_core::export::{self, ExportRequest};

use super::{classify_views, teacher_or_first, StoreAt};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreAt,
    /// SQL condition over the `labels` view choosing the views (default: all of them).
    #[arg(long = "where")]
    filter: Option<String>,
    /// Directory for inputs.npy, rows.parquet, teacher_logits.npy and export.json.
    #[arg(long)]
    out: PathBuf,
    /// Teacher whose logits and statistics are exported (default: the store's first).
    #[arg(long)]
    teacher: Option<String>,
    /// Write the normalised inputs the teacher saw instead of the views in raw units.
    #[arg(long)]
    normalized: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let store = args.store.open()?;
    let teacher = teacher_or_first(&store, args.teacher.as_deref())?;
    let request = ExportRequest { teacher: &teacher, condition: args.filter.as_deref(), normalized: args.normalized };
    let summary = export::export(&store, &request, &args.out).map_err(classify_views)?;
    eprintln!(
        "{}: exported {} view{} of teacher {teacher}, every one replayed and checked against its input_hash, to {}",
        args.store.store.display(),
        summary.rows,
        if summary.rows == 1 { "" } else { "s" },
        args.out.display()
    );
    Ok(())
}
