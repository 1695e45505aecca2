//! Studies: a grid of `kdstore train` runs from one store, run resumably and in parallel, ending in
//! tables and a report. The pieces, each with one job:
//!
//! - [`file`]: the study file's wire types and its settings (train flags without dashes);
//! - [`plan`]: the validated study — cells, runs, their ids and folders — from the file;
//! - [`claim`] and [`state`]: who runs a run, and what its folder says about it;
//! - [`runner`]: the pending runs as child processes, `jobs` at a time, in a share of the study;
//! - [`slurm`]: the study as a Slurm job array (`--slurm`);
//! - [`stats`], [`tables`], [`plots`], [`report`] and [`html`]: the statistics,
//!   `results.parquet`/`summary.parquet`, the plots, `report/report.md` and `report/index.html`, all
//!   rebuilt from the run folders.
//!
//! A study never trains by itself: every run is exactly a `kdstore train` run, which a [`Trainer`]
//! (the `kdstore-torch` binary) resolves and starts. Nothing here links libtorch or prints.

pub mod claim;
pub mod file;
pub mod html;
pub mod plan;
pub mod plots;
pub mod report;
pub mod runner;
pub mod slurm;
pub mod state;
pub mod stats;
pub mod tables;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::pipeline::FileError;
pub use file::{study_schema, Metric, Setting, StudyFile};
pub use plan::{load, parse, Cell, Run, Study};

/// What a study needs from the training side.
pub trait Trainer {
    /// The settings `kdstore train` takes (flag names without dashes, `-` as `_`).
    fn known_settings(&self) -> Vec<String>;
    /// Resolves a run's train arguments (those after the store; no seed or output folder) as train
    /// would; the error is train's message.
    fn resolve(&self, store: &Path, version: u64, args: &[String]) -> Result<Resolved, String>;
    /// Whether train left a checkpoint of an interrupted run in `dir`.
    fn has_checkpoint(&self, dir: &Path) -> bool;
    /// The command that starts `kdstore train`, before its store argument.
    fn train_command(&self) -> Command;
}

/// A cell's arguments as train takes them.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The resolved configuration (what the cell's id hashes).
    pub config: serde_json::Value,
    /// The arguments the runs get: the cell's, less the loss settings its losses do not take.
    pub args: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// The study file itself (exit code 1).
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Run(String),
}

/// Where each run ran, from the `run.json` the runner leaves in its folder.
pub fn placements(study: &Study) -> Vec<report::Placement> {
    let mut found: Vec<report::Placement> = study
        .runs
        .iter()
        .filter_map(|run| std::fs::read_to_string(study.run_dir(run).join(runner::PLACEMENT)).ok())
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Rebuilds `results.parquet`, `summary.parquet` and `report/report.md` from the run folders and
/// gives the report's first line.
pub fn write_outputs(
    study: &Study,
    claim_timeout: Duration,
    has_checkpoint: &dyn Fn(&Path) -> bool,
) -> Result<String, StudyError> {
    let rows = tables::collect(study, claim_timeout, has_checkpoint);
    let cells = tables::statistics(study, &rows);
    let folder = study.out().join("report");
    std::fs::create_dir_all(folder.join(report::PLOTS))
        .map_err(|source| StudyError::Io { path: folder.join(report::PLOTS), source })?;
    tables::write_results(study, &rows)?;
    tables::write_summary(study, &cells)?;
    let plots = plots::draw(study, &rows, &cells).map_err(StudyError::Run)?;
    let write = |name: &str, bytes: &[u8]| {
        let path = folder.join(name);
        state::write_atomically(&path, bytes).map_err(|source| StudyError::Io { path, source })
    };
    for plot in &plots {
        write(&format!("{}/{}.svg", report::PLOTS, plot.name), plot.svg.as_bytes())?;
    }
    let markdown = report::markdown(study, &rows, &cells, &placements(study), &plots);
    write("report.md", markdown.as_bytes())?;
    write("index.html", html::page(&study.title(), &markdown, &plots).as_bytes())?;
    Ok(report::progress_line(&rows))
}

/// `--plan`: the cells × seeds with each run's state, and the counts.
pub fn plan_text(study: &Study, claim_timeout: Duration, has_checkpoint: &dyn Fn(&Path) -> bool) -> String {
    let rows = tables::collect(study, claim_timeout, has_checkpoint);
    let mut out = format!(
        "{}: {} cells × {} seeds = {} runs from {} (version {}), into {}\n",
        study.path.display(),
        study.cells.len(),
        study.file.study.seeds.len(),
        study.runs.len(),
        study.file.study.store.display(),
        study.store.manifest.version,
        study.out().display()
    );
    let width = study.cells.iter().map(|c| c.label.len()).max().unwrap_or(0).max(4);
    let header = format!(
        "  {:<width$}  {}",
        "cell",
        study.file.study.seeds.iter().map(|s| format!("seed {s:<7}")).collect::<String>()
    );
    out.push_str(header.trim_end());
    out.push('\n');
    for (index, cell) in study.cells.iter().enumerate() {
        let states: String = study
            .file
            .study
            .seeds
            .iter()
            .map(|&seed| {
                let row = rows.iter().find(|r| r.run.cell == index && r.run.seed == seed).expect("every run has a row");
                format!("{:<12}", row.status.name())
            })
            .collect();
        let marker = if study.baseline == Some(index) { " (baseline)" } else { "" };
        let label = if cell.label.is_empty() { "(the cell)" } else { &cell.label };
        out.push_str(&format!("  {label:<width$}  {}{marker}\n", states.trim_end()));
    }
    let count = |name: &str| rows.iter().filter(|r| r.status.name() == name).count();
    out.push_str(&format!(
        "{} done, {} running, {} failed, {} to retry, {} interrupted, {} new\n",
        count("done"),
        count("running"),
        count("failed"),
        count("retry"),
        count("interrupted"),
        count("new")
    ));
    out
}
