//! The study's report as Markdown (`report/report.md`): provenance, the teacher and every cell
//! sorted by the primary metric with its statistics and every seed's value, the comparisons with
//! the baseline, the plots (files in `report/plots/`), each cell's `kdstore train` command and the
//! failures. A partial report says how
//! many of the planned runs it covers. It is a pure function of the plan and the run folders' rows.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::file::Metric;
use super::plan::Study;
use super::plots::Plot;
use super::state::Status;
use super::tables::{CellStats, RunRow};

/// The report's folder of plots (beside report.md).
pub const PLOTS: &str = "plots";

/// Where a run ran (`run.json` beside its training).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    pub host: String,
    pub device: String,
    pub threads: usize,
}

/// The counts the report's first line gives.
pub fn progress_line(rows: &[RunRow]) -> String {
    let count = |status: &str| rows.iter().filter(|row| row.status.name() == status).count();
    let mut line = format!("{} of {} runs done", count("done"), rows.len());
    for (status, noun) in
        [("failed", "failed"), ("running", "running"), ("retry", "to retry"), ("interrupted", "interrupted")]
    {
        let n = count(status);
        if n > 0 {
            let _ = write!(line, ", {n} {noun}");
        }
    }
    line
}

fn format_value(metric: Metric, value: f64) -> String {
    match metric {
        Metric::TestNll => format!("{value:.4}"),
        _ => format!("{:.2}", value * 100.0),
    }
}

fn format_difference(metric: Metric, value: f64) -> String {
    match metric {
        Metric::TestNll => format!("{value:+.4}"),
        _ => format!("{:+.2}", value * 100.0),
    }
}

fn interval(metric: Metric, bounds: Option<(f64, f64)>, difference: bool) -> String {
    let show = |v: f64| if difference { format_difference(metric, v) } else { format_value(metric, v) };
    bounds.map_or("–".into(), |(low, high)| format!("[{}, {}]", show(low), show(high)))
}

/// Cells sorted best first by their mean (cells without a finished run last, in plan order).
pub fn ranked(study: &Study, cells: &[CellStats]) -> Vec<usize> {
    let metric = study.file.study.metric;
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by(|&a, &b| match (cells[a].summary.mean, cells[b].summary.mean) {
        (Some(x), Some(y)) if metric.maximise() => y.total_cmp(&x),
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(&b),
    });
    order
}

/// The whole Markdown report; `plots` are shown as images from `plots/` (the HTML page inlines them).
pub fn markdown(
    study: &Study,
    rows: &[RunRow],
    cells: &[CellStats],
    placements: &[Placement],
    plots: &[Plot],
) -> String {
    let metric = study.file.study.metric;
    let unit = if metric == Metric::TestNll { "" } else { " (%)" };
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", study.title());
    let _ = writeln!(
        out,
        "{}. Metric: {} of the best-on-validation weights ({} is better).\n",
        progress_line(rows),
        metric.name(),
        if metric.maximise() { "higher" } else { "lower" }
    );

    let manifest = &study.store.manifest;
    let _ = writeln!(out, "## Provenance\n\n| | |\n|---|---|");
    let _ = writeln!(out, "| study | `{}` |", study.path.display());
    let _ = writeln!(
        out,
        "| store | `{}`, version {}, pipeline `{}` |",
        study.file.study.store.display(),
        manifest.version,
        &manifest.pipeline_hash[..manifest.pipeline_hash.len().min(16)]
    );
    for teacher in &manifest.teachers {
        let accuracy = teacher.accuracy.get("test").map_or("?".into(), |a| format!("{:.2}%", a * 100.0));
        let _ = writeln!(
            out,
            "| teacher {} | {} ({}), test accuracy {accuracy} |",
            teacher.name, teacher.architecture, teacher.kind
        );
    }
    let _ = writeln!(out, "| kdstore | {} |", env!("CARGO_PKG_VERSION"));
    let hosts: BTreeSet<&str> = placements.iter().map(|p| p.host.as_str()).collect();
    let devices: BTreeSet<String> = placements
        .iter()
        .map(|p| format!("{}, {} thread{}", p.device, p.threads, if p.threads == 1 { "" } else { "s" }))
        .collect();
    let join = |set: Vec<String>| if set.is_empty() { "–".to_string() } else { set.join("; ") };
    let _ = writeln!(out, "| machine | {} |", join(hosts.iter().map(|h| h.to_string()).collect()));
    let _ = writeln!(out, "| device | {} |\n", join(devices.into_iter().collect()));

    let seeds = &study.file.study.seeds;
    let _ = writeln!(out, "## Cells by {}\n", metric.name());
    let mut header = format!("| # | cell | runs | mean{unit} | sd | 95% t-interval | bootstrap 95% | Δ vs baseline | Δ 95% | p (floor) | Holm p | won |");
    let mut rule = "|---|---|---|---|---|---|---|---|---|---|---|---|".to_string();
    for seed in seeds {
        let _ = write!(header, " seed {seed} |");
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    if metric == Metric::TestAccuracy {
        if let Some(teacher) = manifest.teachers.first() {
            if let Some(accuracy) = teacher.accuracy.get("test") {
                let _ = write!(
                    out,
                    "| | teacher {} | | {} | | | | | | | | |",
                    teacher.name,
                    format_value(metric, *accuracy)
                );
                let _ = writeln!(out, "{}", " |".repeat(seeds.len()));
            }
        }
    }
    for (rank, &index) in ranked(study, cells).iter().enumerate() {
        let stats = &cells[index];
        let cell = &study.cells[stats.cell];
        let baseline = study.baseline == Some(stats.cell);
        let name = match (cell.label.is_empty(), baseline) {
            (true, true) => "(baseline)".to_string(),
            (true, false) => "(the cell)".to_string(),
            (false, true) => format!("{} (baseline)", cell.label),
            (false, false) => cell.label.clone(),
        };
        let s = &stats.summary;
        let paired = stats.against_baseline.as_ref();
        let _ = write!(
            out,
            "| {} | {name} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            rank + 1,
            stats.values.len(),
            stats.planned,
            s.mean.map_or("–".into(), |m| format_value(metric, m)),
            s.std.map_or("–".into(), |v| format_value(metric, v)),
            interval(metric, s.t_interval, false),
            interval(metric, s.bootstrap_interval, false),
            paired.map_or("–".into(), |p| format_difference(metric, p.mean_difference)),
            interval(metric, paired.and_then(|p| p.t_interval), true),
            paired.map_or("–".into(), |p| format!("{:.3} ({:.3})", p.p_value, p.p_floor)),
            stats.p_holm.map_or("–".into(), |p| format!("{p:.3}")),
            paired.map_or("–".into(), |p| format!("{}/{}", p.won, p.n)),
        );
        for seed in seeds {
            let value = stats.values.iter().find(|(s, _)| s == seed).map(|(_, v)| format_value(metric, *v));
            let _ = write!(out, " {} |", value.unwrap_or_else(|| "–".into()));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\nIntervals are 95%; Δ is the cell minus the baseline on the seeds both finished, its interval a t-interval of \
         the paired differences. p is the two-sided exact sign-flip p-value of the mean difference; with n pairs it \
         cannot go below its floor 2/2ⁿ. Holm adjusts p over the compared cells; won counts the seeds where the cell \
         is better.\n"
    );

    if !plots.is_empty() {
        let _ = writeln!(out, "## Plots\n");
        for plot in plots {
            let _ = writeln!(out, "{}\n\n![{}]({PLOTS}/{}.svg)\n", plot.caption, plot.name, plot.name);
        }
    }

    let _ = writeln!(out, "## Commands\n\nEach cell is this `kdstore train` run, once per seed (`--seed`):\n");
    for cell in &study.cells {
        let _ = writeln!(
            out,
            "- {}: `{}`",
            if cell.label.is_empty() { "the cell" } else { &cell.label },
            study.command(cell, seeds[0])
        );
    }

    let failures: Vec<&RunRow> = rows.iter().filter(|row| row.status != Status::Done && row.attempts > 0).collect();
    if !failures.is_empty() {
        let _ = writeln!(
            out,
            "\n## Failures\n\n| cell | seed | status | failed attempts | last error |\n|---|---|---|---|---|"
        );
        for row in failures {
            let error = row.error.clone().unwrap_or_default().replace('|', "\\|");
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {error} |",
                study.cells[row.run.cell].label,
                row.run.seed,
                row.status.name(),
                row.attempts
            );
        }
    }
    out
}
