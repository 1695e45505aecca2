//! The study report's plots, drawn with plotters' SVG backend (text is left to the browser, so no
//! fonts are needed and the output is byte-stable): each cell's seeds with its interval, the paired
//! differences against the baseline, the metric against each numeric axis, heatmaps of two axes,
//! reliability diagrams of the baseline and the best cell, accuracy against ECE, and learning
//! curves. Every plot is a pure function of the plan, the rows and the statistics.

use std::collections::BTreeMap;
use std::ops::Range;

use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::file::{Metric, Setting};
use super::plan::Study;
use super::report::ranked;
use super::tables::{CellStats, RunRow};
use crate::calibration;
use crate::figure::{self, span, Drawn, COLORS, FAINT, FONT, LIGHT};

/// One drawn plot: its file name under `report/plots/`, a caption and the SVG.
#[derive(Debug, Clone)]
pub struct Plot {
    pub name: String,
    pub caption: String,
    pub svg: String,
}

const WIDTH: u32 = 760;
const BASELINE: RGBColor = COLORS[1];
const CELL: RGBColor = COLORS[0];
/// Cells drawn in colour (with a legend) in the learning curves; the rest are grey.
const CURVES_IN_COLOUR: usize = 6;

/// What every plot reads.
struct Plotting<'a> {
    study: &'a Study,
    rows: &'a [RunRow<'a>],
    cells: &'a [CellStats],
    /// The cells with at least one finished run, best first.
    finished: Vec<usize>,
    metric: Metric,
}

impl Plotting<'_> {
    /// A value of the metric as plotted: percent, or NLL as is.
    fn shown(&self, value: f64) -> f64 {
        match self.metric {
            Metric::TestNll => value,
            _ => value * 100.0,
        }
    }

    fn metric_axis(&self) -> String {
        match self.metric {
            Metric::TestNll => self.metric.name().to_string(),
            _ => format!("{} (%)", self.metric.name()),
        }
    }

    fn label(&self, cell: usize) -> String {
        let label = &self.study.cells[cell].label;
        let label = if label.is_empty() { "the cell" } else { label.as_str() };
        match self.study.baseline == Some(cell) {
            true => format!("{label} (baseline)"),
            false => label.to_string(),
        }
    }

    fn runs_of(&self, cell: usize) -> impl Iterator<Item = &RunRow<'_>> {
        self.rows.iter().filter(move |row| row.run.cell == cell && row.metrics.is_some())
    }
}

/// Every plot the study's finished runs allow, in the report's order.
pub fn draw(study: &Study, rows: &[RunRow], cells: &[CellStats]) -> Result<Vec<Plot>, String> {
    let finished = ranked(study, cells).into_iter().filter(|&c| !cells[c].values.is_empty()).collect();
    let p = Plotting { study, rows, cells, finished, metric: study.file.study.metric };
    if p.finished.is_empty() {
        return Ok(Vec::new());
    }
    let rows = p.finished.len();
    let mut plots = vec![plot(
        "cells",
        "Each cell's seeds (dots), mean (cross) and 95% t-interval, best first",
        rows_height(rows),
        |root| seeds_plot(&p, root),
    )?];
    if p.study.baseline.is_some() && rows > 1 {
        plots.push(plot(
            "differences",
            "Paired differences against the baseline: each seed (dots), the mean (cross) and its 95% t-interval",
            rows_height(rows - 1),
            |root| differences_plot(&p, root),
        )?);
    }
    for axis in numeric_axes(study) {
        plots.push(plot(
            &format!("by-{}", file_name(&axis)),
            &format!("{} against {axis}: mean and 95% t-interval of each setting of the other keys", p.metric_axis()),
            460,
            |root| axis_plot(&p, &axis, root),
        )?);
    }
    for (index, (fixed, title)) in heatmap_slices(study).into_iter().enumerate() {
        let (x, y) = (&study.axes[0], &study.axes[1]);
        plots.push(plot(
            &format!("heatmap-{}", index + 1),
            &format!("Mean {} by {x} and {y}{title}", p.metric_axis()),
            380,
            |root| heatmap(&p, &fixed, root),
        )?);
    }
    let mut diagrams: Vec<usize> = study.baseline.into_iter().collect();
    diagrams.extend(p.finished.first().filter(|&&best| Some(best) != study.baseline));
    for cell in diagrams {
        let bins: Vec<&[calibration::ReliabilityBin]> =
            p.runs_of(cell).filter_map(|row| row.metrics.as_ref()).map(|m| m.reliability.as_slice()).collect();
        if bins.iter().all(|b| b.is_empty()) {
            continue;
        }
        let pooled = calibration::pool(&bins);
        let which = if study.baseline == Some(cell) { "baseline" } else { "best" };
        plots.push(plot(
            &format!("reliability-{which}"),
            &format!(
                "Reliability of the {which} cell, {}: the test samples of its {} runs pooled",
                study.cells[cell].label,
                bins.len()
            ),
            420,
            |root| reliability(&p.label(cell), &pooled, root),
        )?);
    }
    plots.push(plot(
        "accuracy-ece",
        "Test accuracy against test ECE: each run (grey) and each cell's mean; the baseline and the three best cells named",
        420,
        |root| accuracy_against_ece(&p, root),
    )?);
    if p.rows.iter().filter_map(|row| row.metrics.as_ref()).any(|m| !m.val_accuracy.is_empty()) {
        plots.push(plot(
            "learning-curves",
            &format!(
                "Validation accuracy per epoch, mean over seeds: the baseline and the best cells in colour ({CURVES_IN_COLOUR} in all), the others grey"
            ),
            460,
            |root| learning_curves(&p, root),
        )?);
    }
    Ok(plots)
}

fn file_name(axis: &str) -> String {
    axis.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// The height of a plot with one row per cell.
fn rows_height(rows: usize) -> u32 {
    90 + 24 * rows as u32
}

/// Draws one plot, `height` pixels tall.
fn plot(
    name: &str,
    caption: &str,
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Drawn,
) -> Result<Plot, String> {
    let svg = figure::svg((WIDTH, height), draw).map_err(|e| format!("plot {name}: {e}"))?;
    Ok(Plot { name: name.to_string(), caption: caption.to_string(), svg })
}

/// A chart of numbers against numbers.
type NumberChart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// What a [`number_chart`] shows: its caption, ranges and axis names, and the x ticks' decimals
/// (None: as the numbers print; the y ticks have one).
struct Frame<'t> {
    caption: &'t str,
    xs: Range<f64>,
    ys: Range<f64>,
    x: &'t str,
    y: &'t str,
    x_decimals: Option<usize>,
}

fn number_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    frame: Frame,
) -> Result<NumberChart<'a, 'b>, Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(root)
        .caption(frame.caption, (FONT, 16))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(56)
        .build_cartesian_2d(frame.xs, frame.ys)?;
    let x_tick = |x: &f64| match frame.x_decimals {
        Some(decimals) => format!("{x:.decimals$}"),
        None => format!("{x}"),
    };
    chart
        .configure_mesh()
        .x_desc(frame.x)
        .y_desc(frame.y)
        .x_label_formatter(&x_tick)
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style((FONT, 12))
        .light_line_style(LIGHT)
        .draw()?;
    Ok(chart)
}

/// The chart's legend of its labelled series.
fn legend<'a, 'b: 'a>(chart: &mut NumberChart<'a, 'b>, position: SeriesLabelPosition) -> Drawn {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 11))
        .draw()?;
    Ok(())
}

/// Pixels a y-axis of these labels needs.
fn label_width(labels: &[String]) -> u32 {
    (labels.iter().map(|l| l.chars().count()).max().unwrap_or(4) as u32 * 7 + 16).min(WIDTH / 2)
}

/// A row of a [`RowsChart`]: the seeds' values, the mean, its interval and the colour.
type Row = (Vec<f64>, f64, Option<(f64, f64)>, RGBColor);

/// One row per cell (best at the top) with dots, a mean and an interval, over a numeric x axis.
struct RowsChart<'a> {
    labels: Vec<String>,
    x_desc: String,
    rows: Vec<Row>,
    /// An x drawn as a vertical line (zero difference).
    reference: Option<f64>,
    title: &'a str,
}

fn rows_chart(chart: RowsChart, root: &DrawingArea<SVGBackend, Shift>) -> Drawn {
    let n = chart.labels.len();
    let xs = chart.rows.iter().flat_map(|(values, mean, interval, _)| {
        values.iter().copied().chain([*mean]).chain(interval.iter().flat_map(|&(l, h)| [l, h]))
    });
    let range = span(xs.chain(chart.reference));
    let top = n as f64 - 0.5;
    let mut plot = ChartBuilder::on(root)
        .caption(chart.title, (FONT, 16))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(label_width(&chart.labels))
        .build_cartesian_2d(range, -0.5..top)?;
    let labels = &chart.labels;
    let row_label = |y: &f64| {
        let index = y.round();
        match (index - y).abs() < 1e-6 && index >= 0.0 && (index as usize) < n {
            true => labels[n - 1 - index as usize].clone(),
            false => String::new(),
        }
    };
    plot.configure_mesh()
        .y_labels(n.max(2))
        .y_label_formatter(&row_label)
        .x_label_formatter(&|x| format!("{x:.1}"))
        .x_desc(chart.x_desc.as_str())
        .label_style((FONT, 12))
        .light_line_style(LIGHT)
        .draw()?;
    if let Some(x) = chart.reference {
        plot.draw_series(LineSeries::new([(x, -0.5), (x, top)], BLACK.mix(0.6).stroke_width(1)))?;
    }
    for (row, (values, mean, interval, color)) in chart.rows.iter().enumerate() {
        let y = (n - 1 - row) as f64;
        if let Some((low, high)) = interval {
            plot.draw_series([ErrorBar::new_horizontal(y, *low, *mean, *high, color.stroke_width(2), 10)])?;
        }
        plot.draw_series([Cross::new((*mean, y), 5, color.stroke_width(2))])?;
        plot.draw_series(values.iter().map(|&v| Circle::new((v, y), 3, color.mix(0.6).filled())))?;
    }
    Ok(())
}

fn seeds_plot(p: &Plotting, root: &DrawingArea<SVGBackend, Shift>) -> Drawn {
    let order = &p.finished;
    let rows = order
        .iter()
        .map(|&c| {
            let stats = &p.cells[c];
            let color = if p.study.baseline == Some(c) { BASELINE } else { CELL };
            let values: Vec<f64> = stats.values.iter().map(|&(_, v)| p.shown(v)).collect();
            let interval = stats.summary.t_interval.map(|(l, h)| (p.shown(l), p.shown(h)));
            (values, p.shown(stats.summary.mean.unwrap_or(0.0)), interval, color)
        })
        .collect();
    rows_chart(
        RowsChart {
            labels: order.iter().map(|&c| p.label(c)).collect(),
            x_desc: p.metric_axis(),
            rows,
            reference: None,
            title: &format!("{} per cell", p.metric.name()),
        },
        root,
    )
}

fn differences_plot(p: &Plotting, root: &DrawingArea<SVGBackend, Shift>) -> Drawn {
    let Some(baseline) = p.study.baseline else { return Ok(()) };
    let base: BTreeMap<u64, f64> = p.cells[baseline].values.iter().copied().collect();
    let order: Vec<usize> =
        p.finished.iter().copied().filter(|&c| c != baseline && p.cells[c].against_baseline.is_some()).collect();
    let rows = order
        .iter()
        .map(|&c| {
            let paired = p.cells[c].against_baseline.as_ref().expect("filtered");
            let values: Vec<f64> =
                p.cells[c].values.iter().filter_map(|(seed, v)| Some(p.shown(v - base.get(seed)?))).collect();
            let interval = paired.t_interval.map(|(l, h)| (p.shown(l), p.shown(h)));
            (values, p.shown(paired.mean_difference), interval, CELL)
        })
        .collect();
    let unit = if p.metric == Metric::TestNll { "" } else { " (points)" };
    rows_chart(
        RowsChart {
            labels: order.iter().map(|&c| p.label(c)).collect(),
            x_desc: format!("{} − baseline{unit}", p.metric.name()),
            rows,
            reference: Some(0.0),
            title: &format!("Against the baseline, {}", p.label(baseline)),
        },
        root,
    )
}

/// The varied keys whose every value is a number and that take two values or more.
fn numeric_axes(study: &Study) -> Vec<String> {
    study
        .axes
        .iter()
        .filter(|axis| {
            let values: Vec<f64> =
                study.cells.iter().filter_map(|c| c.coordinates.get(*axis)).filter_map(Setting::number).collect();
            let all_numeric = study.cells.iter().filter_map(|c| c.coordinates.get(*axis)).count() == values.len();
            let mut distinct = values.clone();
            distinct.sort_by(f64::total_cmp);
            distinct.dedup();
            all_numeric && distinct.len() >= 2
        })
        .cloned()
        .collect()
}

/// The other keys of a cell, as a series name.
fn others(study: &Study, cell: usize, without: &[&str]) -> String {
    let coordinates = &study.cells[cell].coordinates;
    let parts: Vec<String> = study
        .axes
        .iter()
        .filter(|axis| !without.contains(&axis.as_str()))
        .filter_map(|axis| Some(format!("{axis}={}", coordinates.get(axis)?)))
        .collect();
    if parts.is_empty() {
        "all cells".into()
    } else {
        parts.join(", ")
    }
}

fn axis_plot(p: &Plotting, axis: &str, root: &DrawingArea<SVGBackend, Shift>) -> Drawn {
    // Series: the cells that share every other key, ordered by the axis.
    let mut series: BTreeMap<String, Vec<(f64, &CellStats)>> = BTreeMap::new();
    for &cell in &p.finished {
        let Some(x) = p.study.cells[cell].coordinates.get(axis).and_then(Setting::number) else { continue };
        series.entry(others(p.study, cell, &[axis])).or_default().push((x, &p.cells[cell]));
    }
    for points in series.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let xs = span(series.values().flatten().map(|(x, _)| *x));
    let ys = span(series.values().flatten().flat_map(|(_, s)| {
        let interval = s.summary.t_interval.map(|(l, h)| [l, h]).unwrap_or([s.summary.mean.unwrap_or(0.0); 2]);
        interval.map(|v| p.shown(v))
    }));
    let caption = format!("{} against {axis}", p.metric.name());
    let y = p.metric_axis();
    let mut chart = number_chart(root, Frame { caption: &caption, xs, ys, x: axis, y: &y, x_decimals: None })?;
    for (index, (name, points)) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let line: Vec<(f64, f64)> = points.iter().map(|(x, s)| (*x, p.shown(s.summary.mean.unwrap_or(0.0)))).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().filter_map(|(x, s)| {
            let (low, high) = s.summary.t_interval?;
            Some(ErrorBar::new_vertical(
                *x,
                p.shown(low),
                p.shown(s.summary.mean?),
                p.shown(high),
                color.stroke_width(1),
                8,
            ))
        }))?;
        chart.draw_series(line.iter().map(|&point| Circle::new(point, 3, color.filled())))?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// With two varied keys or more: the grid of the first two, once for each combination of the
/// others (at most six), each with its title.
fn heatmap_slices(study: &Study) -> Vec<(BTreeMap<String, String>, String)> {
    if study.axes.len() < 2 {
        return Vec::new();
    }
    let mut slices: Vec<BTreeMap<String, String>> = Vec::new();
    for cell in &study.cells {
        let fixed: BTreeMap<String, String> = study.axes[2..]
            .iter()
            .filter_map(|axis| Some((axis.clone(), cell.coordinates.get(axis)?.to_string())))
            .collect();
        if !slices.contains(&fixed) {
            slices.push(fixed);
        }
    }
    slices.truncate(6);
    slices
        .into_iter()
        .map(|fixed| {
            let title = match fixed.is_empty() {
                true => String::new(),
                false => format!(" ({})", fixed.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")),
            };
            (fixed, title)
        })
        .collect()
}

/// The distinct values of `axis` among `cells`, in plan order.
fn values_of(study: &Study, axis: &str, cells: &[usize]) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    for &cell in cells {
        if let Some(value) = study.cells[cell].coordinates.get(axis) {
            let value = value.to_string();
            if !values.contains(&value) {
                values.push(value);
            }
        }
    }
    values
}

fn heatmap(p: &Plotting, fixed: &BTreeMap<String, String>, root: &DrawingArea<SVGBackend, Shift>) -> Drawn {
    let (x_axis, y_axis) = (&p.study.axes[0], &p.study.axes[1]);
    let cells: Vec<usize> = (0..p.study.cells.len())
        .filter(|&c| {
            let coordinates = &p.study.cells[c].coordinates;
            fixed.iter().all(|(k, v)| coordinates.get(k).map(ToString::to_string).as_ref() == Some(v))
                && p.study.axes[2..].iter().all(|axis| fixed.contains_key(axis) || !coordinates.contains_key(axis))
        })
        .collect();
    let (xs, ys) = (values_of(p.study, x_axis, &cells), values_of(p.study, y_axis, &cells));
    let mean_at = |x: &str, y: &str| {
        cells.iter().find_map(|&c| {
            let coordinates = &p.study.cells[c].coordinates;
            let here = coordinates.get(x_axis)?.to_string() == x && coordinates.get(y_axis)?.to_string() == y;
            here.then(|| p.cells[c].summary.mean.map(|m| p.shown(m)))?
        })
    };
    let means: Vec<f64> = xs.iter().flat_map(|x| ys.iter().filter_map(|y| mean_at(x, y))).collect();
    let (low, high) = means.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    // 0 for the worst mean, 1 for the best.
    let goodness = |v: f64| {
        let t = if high > low { (v - low) / (high - low) } else { 1.0 };
        if p.metric.maximise() {
            t
        } else {
            1.0 - t
        }
    };
    let shade = |v: f64| {
        let better = goodness(v);
        let mix = |from: u8, to: u8| (from as f64 + (to as f64 - from as f64) * better).round() as u8;
        RGBColor(mix(247, 8), mix(251, 69), mix(255, 148))
    };
    let (nx, ny) = (xs.len(), ys.len());
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(label_width(&ys))
        .build_cartesian_2d(-0.5..nx as f64 - 0.5, -0.5..ny as f64 - 0.5)?;
    let pick = |values: &[String], v: &f64| {
        let index = v.round();
        match (index - v).abs() < 1e-6 && index >= 0.0 && (index as usize) < values.len() {
            true => values[index as usize].clone(),
            false => String::new(),
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(nx.max(2))
        .y_labels(ny.max(2))
        .x_label_formatter(&|v| pick(&xs, v))
        .y_label_formatter(&|v| pick(&ys, v))
        .x_desc(x_axis.as_str())
        .y_desc(y_axis.as_str())
        .label_style((FONT, 12))
        .light_line_style(LIGHT)
        .draw()?;
    for (i, x) in xs.iter().enumerate() {
        for (j, y) in ys.iter().enumerate() {
            let Some(mean) = mean_at(x, y) else { continue };
            let (cx, cy) = (i as f64, j as f64);
            chart.draw_series([Rectangle::new([(cx - 0.5, cy - 0.5), (cx + 0.5, cy + 0.5)], shade(mean).filled())])?;
            let ink = if goodness(mean) > 0.6 { WHITE } else { BLACK };
            let text = match p.metric {
                Metric::TestNll => format!("{mean:.3}"),
                _ => format!("{mean:.1}"),
            };
            let style = TextStyle::from((FONT, 13)).color(&ink).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ));
            chart.draw_series([Text::new(text, (cx, cy), style)])?;
        }
    }
    Ok(())
}

fn reliability(label: &str, bins: &[calibration::ReliabilityBin], root: &DrawingArea<SVGBackend, Shift>) -> Drawn {
    let caption = format!("{label}: ECE {:.2}%", calibration::bins_ece(bins) * 100.0);
    let frame = Frame {
        caption: &caption,
        xs: 0.0..1.0,
        ys: 0.0..1.0,
        x: "confidence (top probability)",
        y: "accuracy",
        x_decimals: Some(1),
    };
    let mut chart = number_chart(root, frame)?;
    let filled: Vec<&calibration::ReliabilityBin> = bins.iter().filter(|b| b.count > 0).collect();
    chart
        .draw_series(
            filled.iter().map(|b| Rectangle::new([(b.lower, 0.0), (b.upper, b.accuracy)], CELL.mix(0.8).filled())),
        )?
        .label("accuracy")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], CELL.mix(0.8).filled()));
    chart
        .draw_series(
            filled
                .iter()
                .map(|b| Rectangle::new([(b.lower, b.accuracy), (b.upper, b.confidence)], COLORS[3].mix(0.3).filled())),
        )?
        .label("gap to confidence")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], COLORS[3].mix(0.3).filled()));
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.5).stroke_width(1)))?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], BLACK.mix(0.5)));
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn accuracy_against_ece(p: &Plotting, root: &DrawingArea<SVGBackend, Shift>) -> Drawn {
    let runs: Vec<(usize, f64, f64)> = p
        .rows
        .iter()
        .filter_map(|row| {
            Some((row.run.cell, row.metrics.as_ref()?.test_ece * 100.0, row.metrics.as_ref()?.test_accuracy * 100.0))
        })
        .collect();
    let mean_of = |cell: usize| {
        let mine: Vec<&(usize, f64, f64)> = runs.iter().filter(|r| r.0 == cell).collect();
        let n = mine.len() as f64;
        (mine.iter().map(|r| r.1).sum::<f64>() / n, mine.iter().map(|r| r.2).sum::<f64>() / n)
    };
    let frame = Frame {
        caption: "Accuracy against calibration (test split)",
        xs: span(runs.iter().map(|r| r.1)),
        ys: span(runs.iter().map(|r| r.2)),
        x: "test ECE (%)",
        y: "test accuracy (%)",
        x_decimals: Some(1),
    };
    let mut chart = number_chart(root, frame)?;
    chart.draw_series(runs.iter().map(|r| Circle::new((r.1, r.2), 2, FAINT.filled())))?;
    let finished = &p.finished;
    // The baseline and the three best cells are named.
    let named: Vec<usize> = p.study.baseline.into_iter().chain(finished.iter().copied().take(3)).collect();
    for &cell in finished {
        let color = if p.study.baseline == Some(cell) { BASELINE } else { CELL };
        let (x, y) = mean_of(cell);
        chart.draw_series([Circle::new((x, y), 4, color.filled())])?;
        if named.contains(&cell) {
            chart.draw_series([Text::new(p.label(cell), (x, y), (FONT, 11).into_font().color(&color))])?;
        }
    }
    Ok(())
}

fn learning_curves(p: &Plotting, root: &DrawingArea<SVGBackend, Shift>) -> Drawn {
    // Each cell's mean validation accuracy per epoch, over the runs that have that epoch.
    let curve = |cell: usize| -> Vec<(f64, f64)> {
        let runs: Vec<&Vec<f64>> =
            p.runs_of(cell).filter_map(|row| row.metrics.as_ref()).map(|m| &m.val_accuracy).collect();
        let epochs = runs.iter().map(|r| r.len()).max().unwrap_or(0);
        (0..epochs)
            .filter_map(|e| {
                let values: Vec<f64> = runs.iter().filter_map(|r| r.get(e).copied()).collect();
                (!values.is_empty()).then(|| ((e + 1) as f64, values.iter().sum::<f64>() / values.len() as f64 * 100.0))
            })
            .collect()
    };
    let finished = &p.finished;
    let curves: Vec<(usize, Vec<(f64, f64)>)> = finished.iter().map(|&c| (c, curve(c))).collect();
    let mut coloured: Vec<usize> = p.study.baseline.into_iter().filter(|b| finished.contains(b)).collect();
    coloured.extend(
        finished.iter().copied().filter(|c| Some(*c) != p.study.baseline).take(CURVES_IN_COLOUR - coloured.len()),
    );
    let points = curves.iter().flat_map(|(_, c)| c.iter().copied());
    let xs = span(points.clone().map(|(x, _)| x));
    let ys = span(points.map(|(_, y)| y));
    let frame =
        Frame { caption: "Learning curves", xs, ys, x: "epoch", y: "validation accuracy (%)", x_decimals: Some(0) };
    let mut chart = number_chart(root, frame)?;
    for (_, points) in curves.iter().filter(|(c, _)| !coloured.contains(c)) {
        chart.draw_series(LineSeries::new(points.clone(), FAINT.stroke_width(1)))?;
    }
    // The baseline's orange is kept for the baseline.
    let others: Vec<RGBColor> = COLORS.iter().copied().filter(|&c| c != BASELINE).collect();
    for (index, &cell) in coloured.iter().enumerate() {
        let color = if p.study.baseline == Some(cell) { BASELINE } else { others[index % others.len()] };
        let points = curves.iter().find(|(c, _)| *c == cell).map(|(_, points)| points.clone()).unwrap_or_default();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(p.label(cell))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}
