//! `kdstore gc STORE --keep N`: keep the newest N versions and remove the files only older ones use.

use std::path::PathBuf;

use kdstore_core::store::gc::gc;

use super::{classify_store, UserError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory.
    store: PathBuf,
    /// How many of the newest versions to keep (at least 1; the current one is always kept).
    #[arg(long)]
    keep: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.keep == 0 {
        return Err(UserError::msg("--keep must be at least 1: the current version is always kept".into()));
    }
    let report = gc(&args.store, args.keep).map_err(classify_store)?;
    let kept = match (report.kept.first(), report.kept.last()) {
        (Some(first), Some(last)) if first != last => format!("versions {first}-{last}"),
        (Some(only), _) => format!("version {only}"),
        _ => "no version".into(),
    };
    eprintln!(
        "{}: kept {kept}; removed {} older version{} and {} file{} in all ({:.1} MiB)",
        args.store.display(),
        report.removed_versions.len(),
        if report.removed_versions.len() == 1 { "" } else { "s" },
        report.removed_files,
        if report.removed_files == 1 { "" } else { "s" },
        report.freed_bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}
