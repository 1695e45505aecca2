//! `kdstore verify STORE [--deep] [--all-versions] [--json]`: every file hashed against the
//! manifest (and with `--deep`, every view replayed and every value read); a summary on stderr
//! (or the report as JSON on stdout) and exit code 1 when anything is wrong.

use std::path::PathBuf;

use kdstore_core::verify::{verify, VerifyOptions};

use super::progress::Bars;
use super::{classify_store, print_stdout, worker_threads, UserError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory.
    store: PathBuf,
    /// Also replay every view against its input hash and check that every stored value is finite.
    #[arg(long)]
    deep: bool,
    /// Check every committed version, not only the newest.
    #[arg(long)]
    all_versions: bool,
    /// Worker threads for --deep's replay (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, bars: &Bars) -> anyhow::Result<()> {
    let options =
        VerifyOptions { deep: args.deep, all_versions: args.all_versions, threads: worker_threads(args.threads) };
    let report = verify(&args.store, &options, bars).map_err(classify_store)?;
    if args.json {
        print_stdout(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    }
    let versions = match report.versions.as_slice() {
        [one] => format!("version {one}"),
        many => format!("{} versions", many.len()),
    };
    let mut checked = format!(
        "{} files ({:.1} MiB) and {} teacher model{} hashed",
        report.files,
        report.bytes as f64 / (1 << 20) as f64,
        report.models,
        if report.models == 1 { "" } else { "s" }
    );
    if report.source_files > 0 {
        checked.push_str(&format!(", {} image files checked", report.source_files));
    }
    if args.deep {
        checked.push_str(&format!(
            ", {} views replayed, {} stored values read",
            report.views_replayed, report.values_checked
        ));
    }
    if report.problems.is_empty() {
        let verb = if report.versions.len() == 1 { "is" } else { "are" };
        eprintln!("{}: {versions} {verb} intact: {checked}", args.store.display());
        return Ok(());
    }
    for problem in &report.problems {
        eprintln!("  {problem}");
    }
    Err(UserError::msg(format!(
        "{}: {versions}: {} problem{} ({checked})",
        args.store.display(),
        report.problems.len(),
        if report.problems.len() == 1 { "" } else { "s" }
    )))
}
