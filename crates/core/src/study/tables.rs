//! The study's tables, rebuilt from the run folders every time (so they can never disagree with
//! them): `results.parquet`, one row per planned run (every varied key as a column named as in the
//! study file, `seed`, `status`, the final test metrics, timings), and `summary.parquet`, one row
//! per cell with its statistics and its comparison with the baseline.

use std::path::Path;
use std::time::Duration;

use super::file::{Metric, Setting};
use super::plan::{Run, Study};
use super::state::{self, Status};
use super::stats::{self, Paired, Summary};
use super::StudyError;
use crate::calibration::ReliabilityBin;
use crate::query::{self, Format, Values};

/// One planned run as its folder tells it.
#[derive(Debug, Clone)]
pub struct RunRow<'a> {
    pub run: &'a Run,
    pub status: Status,
    pub attempts: usize,
    /// The last failed attempt's error.
    pub error: Option<String>,
    pub metrics: Option<RunMetrics>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunMetrics {
    pub test_accuracy: f64,
    pub test_nll: f64,
    pub test_ece: f64,
    pub test_agreement: Option<f64>,
    pub train_seconds: f64,
    pub train_views_per_second: f64,
    pub best_epoch: i64,
    pub student_parameters: i64,
    /// Validation accuracy after each epoch (the learning curve).
    pub val_accuracy: Vec<f64>,
    /// The test split's reliability bins (empty from a training that did not record them).
    pub reliability: Vec<ReliabilityBin>,
}

impl RunMetrics {
    fn from_results(results: &serde_json::Value) -> Option<RunMetrics> {
        let test = &results["test"];
        Some(RunMetrics {
            test_accuracy: test["accuracy"].as_f64()?,
            test_nll: test["nll"].as_f64()?,
            test_ece: test["ece"].as_f64()?,
            test_agreement: test["teacher_agreement"].as_f64(),
            train_seconds: results["train_seconds"].as_f64().unwrap_or(0.0),
            train_views_per_second: results["train_views_per_second"].as_f64().unwrap_or(0.0),
            best_epoch: results["best_epoch"].as_i64().unwrap_or(0),
            student_parameters: results["student_parameters"].as_i64().unwrap_or(0),
            val_accuracy: results["epochs"]
                .as_array()
                .map(|epochs| epochs.iter().filter_map(|e| e["val"]["accuracy"].as_f64()).collect())
                .unwrap_or_default(),
            reliability: serde_json::from_value(results["test_reliability"].clone()).unwrap_or_default(),
        })
    }

    pub fn value(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::TestAccuracy => Some(self.test_accuracy),
            Metric::TestNll => Some(self.test_nll),
            Metric::TestEce => Some(self.test_ece),
            Metric::TestAgreement => self.test_agreement,
        }
    }
}

/// Every planned run's row, in plan order.
pub fn collect<'a>(
    study: &'a Study,
    claim_timeout: Duration,
    has_checkpoint: &dyn Fn(&Path) -> bool,
) -> Vec<RunRow<'a>> {
    study
        .runs
        .iter()
        .map(|run| {
            let found = state::read(&study.run_dir(run), study.file.study.max_attempts, claim_timeout, has_checkpoint);
            RunRow {
                run,
                status: found.status,
                attempts: found.attempts.len(),
                error: found.attempts.last().map(|a| format!("{}: {}", a.exit, a.error)),
                metrics: found.results.as_ref().and_then(RunMetrics::from_results),
            }
        })
        .collect()
}

/// A cell's statistics on the study's metric.
#[derive(Debug, Clone)]
pub struct CellStats {
    pub cell: usize,
    pub planned: usize,
    /// (seed, value) of the finished runs, in seed order.
    pub values: Vec<(u64, f64)>,
    pub summary: Summary,
    pub against_baseline: Option<Paired>,
    /// Holm-adjusted over every cell compared with the baseline.
    pub p_holm: Option<f64>,
}

/// Statistics of every cell, in plan order; each cell's bootstrap is seeded by its id.
pub fn statistics(study: &Study, rows: &[RunRow]) -> Vec<CellStats> {
    let metric = study.file.study.metric;
    let values: Vec<Vec<(u64, f64)>> = (0..study.cells.len())
        .map(|cell| {
            let mut values: Vec<(u64, f64)> = rows
                .iter()
                .filter(|row| row.run.cell == cell)
                .filter_map(|row| Some((row.run.seed, row.metrics.as_ref()?.value(metric)?)))
                .collect();
            values.sort_by_key(|(seed, _)| *seed);
            values
        })
        .collect();
    let seeds: Vec<u64> = study.cells.iter().map(|c| u64::from_str_radix(&c.id[..16], 16).unwrap_or(0)).collect();
    let compared =
        stats::compare(&values, study.baseline, metric.maximise(), study.file.study.bootstrap_resamples, &seeds);
    values
        .into_iter()
        .zip(compared)
        .enumerate()
        .map(|(cell, (values, c))| CellStats {
            cell,
            planned: study.file.study.seeds.len(),
            values,
            summary: c.summary,
            against_baseline: c.against_baseline,
            p_holm: c.p_holm,
        })
        .collect()
}

/// A varied key's column: numbers when every cell that has it has a number, else text.
fn axis_column(study: &Study, axis: &str, cell_of_row: &[usize]) -> Values {
    let value = |cell: usize| study.cells[cell].coordinates.get(axis);
    let numeric = study.cells.iter().filter_map(|c| c.coordinates.get(axis)).all(|v| v.number().is_some());
    match numeric {
        true => Values::Float(cell_of_row.iter().map(|&c| value(c).and_then(Setting::number)).collect()),
        false => Values::Text(cell_of_row.iter().map(|&c| value(c).map(ToString::to_string)).collect()),
    }
}

fn write_parquet(path: &Path, columns: Vec<(&str, Values)>) -> Result<(), StudyError> {
    let mut bytes = Vec::new();
    query::write_table(columns, Format::Parquet, &mut bytes)
        .map_err(|e| StudyError::Run(format!("{}: {e}", path.display())))?;
    state::write_atomically(path, &bytes).map_err(|source| StudyError::Io { path: path.to_path_buf(), source })
}

/// Writes `results.parquet` (one row per planned run) into the study's folder.
pub fn write_results(study: &Study, rows: &[RunRow]) -> Result<(), StudyError> {
    let cells: Vec<usize> = rows.iter().map(|row| row.run.cell).collect();
    let metric = |f: fn(&RunMetrics) -> Option<f64>| {
        Values::Float(rows.iter().map(|row| row.metrics.as_ref().and_then(f)).collect())
    };
    let text = |f: &dyn Fn(&RunRow) -> Option<String>| Values::Text(rows.iter().map(f).collect());
    let mut columns: Vec<(&str, Values)> = vec![
        ("run_id", text(&|row| Some(row.run.id.clone()))),
        ("cell_id", text(&|row| Some(study.cells[row.run.cell].id.clone()))),
        ("cell", text(&|row| Some(study.cells[row.run.cell].label.clone()))),
    ];
    for axis in &study.axes {
        columns.push((axis.as_str(), axis_column(study, axis, &cells)));
    }
    columns.extend([
        ("seed", Values::Int(rows.iter().map(|row| row.run.seed as i64).collect())),
        ("status", text(&|row| Some(row.status.name().to_string()))),
        ("attempts_failed", Values::Int(rows.iter().map(|row| row.attempts as i64).collect())),
        ("error", text(&|row| if row.status == Status::Done { None } else { row.error.clone() })),
        ("test_accuracy", metric(|m| Some(m.test_accuracy))),
        ("test_nll", metric(|m| Some(m.test_nll))),
        ("test_ece", metric(|m| Some(m.test_ece))),
        ("test_agreement", metric(|m| m.test_agreement)),
        ("best_epoch", metric(|m| Some(m.best_epoch as f64))),
        ("student_parameters", metric(|m| Some(m.student_parameters as f64))),
        ("train_seconds", metric(|m| Some(m.train_seconds))),
        ("train_views_per_second", metric(|m| Some(m.train_views_per_second))),
        ("folder", text(&|row| Some(study.run_dir(row.run).display().to_string()))),
    ]);
    write_parquet(&study.out().join("results.parquet"), columns)
}

/// Writes `summary.parquet` (one row per cell, with its statistics) into the study's folder.
pub fn write_summary(study: &Study, cells: &[CellStats]) -> Result<(), StudyError> {
    let order: Vec<usize> = cells.iter().map(|c| c.cell).collect();
    let float = |f: &dyn Fn(&CellStats) -> Option<f64>| Values::Float(cells.iter().map(f).collect());
    let metric = study.file.study.metric.name();
    let mut columns: Vec<(&str, Values)> = vec![
        ("cell_id", Values::Text(order.iter().map(|&c| Some(study.cells[c].id.clone())).collect())),
        ("cell", Values::Text(order.iter().map(|&c| Some(study.cells[c].label.clone())).collect())),
    ];
    for axis in &study.axes {
        columns.push((axis.as_str(), axis_column(study, axis, &order)));
    }
    columns.extend([
        ("metric", Values::Text(cells.iter().map(|_| Some(metric.to_string())).collect())),
        ("baseline", Values::Int(order.iter().map(|&c| i64::from(study.baseline == Some(c))).collect())),
        ("runs_planned", Values::Int(cells.iter().map(|c| c.planned as i64).collect())),
        ("runs_done", Values::Int(cells.iter().map(|c| c.values.len() as i64).collect())),
        ("mean", float(&|c| c.summary.mean)),
        ("std", float(&|c| c.summary.std)),
        ("t_low", float(&|c| c.summary.t_interval.map(|i| i.0))),
        ("t_high", float(&|c| c.summary.t_interval.map(|i| i.1))),
        ("bootstrap_low", float(&|c| c.summary.bootstrap_interval.map(|i| i.0))),
        ("bootstrap_high", float(&|c| c.summary.bootstrap_interval.map(|i| i.1))),
        ("difference", float(&|c| c.against_baseline.as_ref().map(|p| p.mean_difference))),
        ("difference_low", float(&|c| c.against_baseline.as_ref().and_then(|p| p.t_interval).map(|i| i.0))),
        ("difference_high", float(&|c| c.against_baseline.as_ref().and_then(|p| p.t_interval).map(|i| i.1))),
        ("p_value", float(&|c| c.against_baseline.as_ref().map(|p| p.p_value))),
        ("p_floor", float(&|c| c.against_baseline.as_ref().map(|p| p.p_floor))),
        ("p_holm", float(&|c| c.p_holm)),
        ("seeds_paired", float(&|c| c.against_baseline.as_ref().map(|p| p.n as f64))),
        ("seeds_won", float(&|c| c.against_baseline.as_ref().map(|p| p.won as f64))),
        (
            "command",
            Values::Text(
                order.iter().map(|&c| Some(study.command(&study.cells[c], study.file.study.seeds[0]))).collect(),
            ),
        ),
    ]);
    write_parquet(&study.out().join("summary.parquet"), columns)
}
