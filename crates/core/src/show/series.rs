//! Series views: per view its caption, then one panel per channel — the channel's name and value
//! axis on the left, the sample in grey and the view in blue over the time steps, the time axis
//! under the last panel.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{caption_lines, draw_caption, value_range, wrap, Shown, CHAR_WIDTH, LINE_HEIGHT, MARGIN, TEXT_SIZE};
use crate::figure::{self, span, Drawn, COLORS, FONT, LIGHT};

const WIDTH: u32 = 760;
const PANEL_HEIGHT: u32 = 84;
/// Room under the last panel for the time axis.
const TIME_AXIS: u32 = 36;
const VALUE_AXIS: u32 = 72;
const SAMPLE: RGBColor = RGBColor(150, 150, 150);
const VIEW: RGBColor = COLORS[0];

/// The SVG of `shown` series views of `length` steps with channels `names`.
pub(super) fn figure(shown: &[Shown], names: &[String], length: usize) -> Result<String, String> {
    let max_chars = ((WIDTH - 2 * MARGIN) / CHAR_WIDTH) as usize;
    let captions = caption_lines(shown, max_chars) * LINE_HEIGHT;
    let block = captions + names.len() as u32 * PANEL_HEIGHT + TIME_AXIS + 2 * MARGIN;
    let height = LINE_HEIGHT + MARGIN + block * shown.len() as u32;
    figure::svg((WIDTH, height), |root| {
        legend(root)?;
        let (_, below) = root.split_vertically(LINE_HEIGHT + MARGIN);
        for (index, item) in shown.iter().enumerate() {
            let (_, rest) = below.split_vertically(index as u32 * block);
            let (area, _) = rest.split_vertically(block);
            draw_caption(&area, (MARGIN as i32, MARGIN as i32), &wrap(&item.caption, max_chars))?;
            let (_, panels) = area.split_vertically(MARGIN + captions);
            view_panels(&panels, item, names, length)?;
        }
        Ok(())
    })
}

/// "grey: the sample, blue: the view" drawn as two short lines and their names.
fn legend(root: &DrawingArea<SVGBackend, Shift>) -> Drawn {
    let style = TextStyle::from((FONT, TEXT_SIZE)).color(&BLACK);
    let y = (MARGIN + LINE_HEIGHT / 2) as i32;
    let mut x = MARGIN as i32;
    for (name, color) in [("the sample", SAMPLE), ("the view", VIEW)] {
        root.draw(&PathElement::new([(x, y), (x + 24, y)], color.stroke_width(2)))?;
        root.draw_text(name, &style.pos(Pos::new(HPos::Left, VPos::Center)), (x + 30, y))?;
        x += 30 + (name.len() as u32 * CHAR_WIDTH) as i32 + 24;
    }
    Ok(())
}

/// One panel per channel of one view; the last one carries the time axis.
fn view_panels(area: &DrawingArea<SVGBackend, Shift>, item: &Shown, names: &[String], length: usize) -> Drawn {
    for (channel, name) in names.iter().enumerate() {
        let last = channel + 1 == names.len();
        let (_, rest) = area.split_vertically(channel as u32 * PANEL_HEIGHT);
        let (panel, _) = rest.split_vertically(PANEL_HEIGHT + if last { TIME_AXIS } else { 0 });
        let range = channel * length..(channel + 1) * length;
        let (sample, view) = (&item.sample[range.clone()], &item.view[range]);
        let (low, high) = value_range(sample, view);
        let mut chart = ChartBuilder::on(&panel)
            .margin_left(MARGIN)
            .margin_right(MARGIN * 2)
            .margin_top(4)
            .margin_bottom(4)
            .x_label_area_size(if last { TIME_AXIS } else { 0 })
            .y_label_area_size(VALUE_AXIS)
            .build_cartesian_2d(0.0..(length.max(2) - 1) as f64, span([low as f64, high as f64]))?;
        let mut mesh = chart.configure_mesh();
        mesh.y_desc(name.as_str())
            .y_labels(6)
            .y_label_formatter(&|v| figure::tick(*v))
            .x_labels(11)
            .x_label_formatter(&|t| format!("{t:.0}"))
            .label_style((FONT, 11))
            .axis_desc_style((FONT, 12))
            .light_line_style(LIGHT)
            .x_max_light_lines(1)
            .y_max_light_lines(1);
        if last {
            mesh.x_desc("time step");
        }
        mesh.draw()?;
        for (values, color) in [(sample, SAMPLE), (view, VIEW)] {
            let points = values.iter().enumerate().map(|(t, &v)| (t as f64, v as f64));
            chart.draw_series(LineSeries::new(points, color.stroke_width(1)))?;
        }
    }
    Ok(())
}
