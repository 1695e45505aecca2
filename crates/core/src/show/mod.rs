//! `kdstore show`: a PNG of selected views next to the samples they were made from. Series get one
//! panel per channel with the sample (grey) and the view (blue) overlaid; images get a grid of
//! (sample | view) pairs. Captions name the view, recipe, label, the mix partner and λ, and the
//! teacher's top classes. Views are replayed and checked against their hashes like everywhere else.

pub mod canvas;

use std::path::Path;

use canvas::{Canvas, Rgb, CHAR_WIDTH, LINE_HEIGHT};

use crate::select::{select_some, Replayer, SelectedView, ViewsError};
use crate::store::Store;

const SAMPLE_COLOR: Rgb = [170, 170, 170];
const VIEW_COLOR: Rgb = [31, 119, 180];
const TEXT_COLOR: Rgb = [20, 20, 20];
const FRAME_COLOR: Rgb = [210, 210, 210];
const MARGIN: u32 = 8;

/// What to draw.
pub struct ShowRequest<'a> {
    pub teacher: &'a str,
    pub condition: &'a str,
    /// Most views drawn (the first ones in `view_id` order).
    pub limit: usize,
    /// Teacher classes listed per view.
    pub top: usize,
}

/// One view to draw: the sample, the replayed view, and its caption lines.
struct Shown {
    sample: Vec<f32>,
    view: Vec<f32>,
    caption: Vec<String>,
}

/// Draws the selected views into `out` (PNG) and returns how many were drawn.
pub fn show(store: &Store, request: &ShowRequest, out: &Path) -> Result<usize, ViewsError> {
    let (samples, selection) = select_some(store, request.teacher, Some(request.condition))?;
    let replayer = Replayer::new(store, &samples)?;
    let names = &store.manifest.dataset.class_names;
    let mut shown = Vec::new();
    for view in selection.views.iter().take(request.limit) {
        let replayed = replayer.replay_verified(view)?;
        shown.push(Shown {
            sample: samples.input(view.sample_id as usize).to_vec(),
            view: replayed.input,
            caption: caption(view, names, request.teacher, request.top),
        });
    }
    let canvas = match samples.sample_shape.as_slice() {
        [channels, length] => series_figure(&shown, *channels, *length),
        shape => image_figure(&shown, shape),
    };
    canvas.save_png(out).map_err(|detail| ViewsError::Write { path: out.to_path_buf(), detail })?;
    Ok(shown.len())
}

fn class_name(names: &[String], class: i64) -> String {
    names.get(class as usize).cloned().unwrap_or_else(|| class.to_string())
}

/// view and recipe; label (and the partner with λ); the teacher's top classes with probabilities.
fn caption(view: &SelectedView, names: &[String], teacher: &str, top: usize) -> Vec<String> {
    let mut lines = vec![format!("view {} | {}", view.view_id, view.recipe)];
    let own = format!("sample {}: {}", view.sample_id, class_name(names, view.label));
    lines.push(match view.partner_id {
        Some(partner) => format!("{own} | lam {:.3} + {partner}: {}", view.lam, class_name(names, view.partner_label)),
        None => own,
    });
    let peak = view.teacher_logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = view.teacher_logits.iter().map(|&z| ((z - peak) as f64).exp()).collect();
    let total: f64 = exp.iter().sum();
    let mut order: Vec<usize> = (0..exp.len()).collect();
    order.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]));
    let best: Vec<String> =
        order.iter().take(top).map(|&k| format!("{} {:.2}", class_name(names, k as i64), exp[k] / total)).collect();
    lines.push(format!("{teacher}: {}", best.join(", ")));
    lines
}

/// Caption lines broken at spaces so that none is longer than `max_chars` (a longer word is cut).
fn wrap(lines: &[String], max_chars: usize) -> Vec<String> {
    let mut wrapped = Vec::new();
    for line in lines {
        let mut current = String::new();
        for word in line.split(' ') {
            if !current.is_empty() && current.len() + 1 + word.len() > max_chars {
                wrapped.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        wrapped.push(current);
    }
    wrapped
}

/// The most caption lines any view needs at `max_chars` per line.
fn caption_lines(shown: &[Shown], max_chars: usize) -> u32 {
    shown.iter().map(|item| wrap(&item.caption, max_chars).len() as u32).max().unwrap_or(0)
}

fn series_figure(shown: &[Shown], channels: usize, length: usize) -> Canvas {
    const WIDTH: u32 = 760;
    const PLOT_HEIGHT: u32 = 56;
    const LABEL_WIDTH: u32 = 36;
    let max_chars = ((WIDTH - 2 * MARGIN) / CHAR_WIDTH) as usize;
    let captions = caption_lines(shown, max_chars);
    let block = captions * LINE_HEIGHT + channels as u32 * (PLOT_HEIGHT + 4) + 2 * MARGIN;
    let mut canvas = Canvas::new(WIDTH, LINE_HEIGHT + MARGIN + block * shown.len() as u32);
    canvas.text(MARGIN as i32, 2, "grey: the sample, blue: the view", max_chars, TEXT_COLOR);
    let plot_width = WIDTH - 2 * MARGIN - LABEL_WIDTH;
    for (index, item) in shown.iter().enumerate() {
        let top = LINE_HEIGHT + MARGIN + index as u32 * block;
        for (line, text) in wrap(&item.caption, max_chars).iter().enumerate() {
            canvas.text(MARGIN as i32, (top + line as u32 * LINE_HEIGHT) as i32, text, max_chars, TEXT_COLOR);
        }
        for channel in 0..channels {
            let plot_top = top + captions * LINE_HEIGHT + channel as u32 * (PLOT_HEIGHT + 4);
            let left = MARGIN + LABEL_WIDTH;
            canvas.frame(left as i32, plot_top as i32, plot_width, PLOT_HEIGHT, FRAME_COLOR);
            canvas.text(
                MARGIN as i32,
                (plot_top + PLOT_HEIGHT / 2 - 5) as i32,
                &format!("ch {channel}"),
                5,
                TEXT_COLOR,
            );
            let range = channel * length..(channel + 1) * length;
            let (sample, view) = (&item.sample[range.clone()], &item.view[range]);
            let (low, high) = value_range(sample, view);
            let span = if high > low { high - low } else { 1.0 };
            let to_point = |t: usize, v: f32| {
                let x = left as f32 + 1.0 + t as f32 * (plot_width - 3) as f32 / (length.max(2) - 1) as f32;
                let y = plot_top as f32 + 2.0 + (high - v) / span * (PLOT_HEIGHT - 5) as f32;
                (x.round() as i32, y.round() as i32)
            };
            for (series, color) in [(sample, SAMPLE_COLOR), (view, VIEW_COLOR)] {
                for t in 1..length {
                    canvas.line(to_point(t - 1, series[t - 1]), to_point(t, series[t]), color);
                }
            }
        }
    }
    canvas
}

fn image_figure(shown: &[Shown], shape: &[usize]) -> Canvas {
    let (channels, height, width) = match *shape {
        [c, h, w] => (c, h, w),
        _ => (1, shape.first().copied().unwrap_or(1), shape.iter().skip(1).product()),
    };
    let scale = (112 / height.max(width)).max(1) as u32;
    let (image_w, image_h) = (width as u32 * scale, height as u32 * scale);
    let cell_w = (2 * image_w + MARGIN).max(40 * CHAR_WIDTH) + 2 * MARGIN;
    let max_chars = ((cell_w - 2 * MARGIN) / CHAR_WIDTH) as usize;
    let cell_h = image_h + caption_lines(shown, max_chars) * LINE_HEIGHT + 3 * MARGIN;
    let columns = shown.len().clamp(1, 4) as u32;
    let rows = (shown.len() as u32).div_ceil(columns);
    let mut canvas = Canvas::new(columns * cell_w, LINE_HEIGHT + MARGIN + rows * cell_h);
    canvas.text(MARGIN as i32, 2, "left: the sample, right: the view", 80, TEXT_COLOR);
    for (index, item) in shown.iter().enumerate() {
        let (column, row) = (index as u32 % columns, index as u32 / columns);
        let (left, top) = (column * cell_w + MARGIN, LINE_HEIGHT + MARGIN + row * cell_h);
        let (low, high) = display_range(&item.sample, &item.view);
        for (offset, pixels) in [(0, &item.sample), (image_w + MARGIN, &item.view)] {
            for y in 0..image_h {
                for x in 0..image_w {
                    let at = |c: usize| {
                        let value = pixels[c * height * width + (y / scale) as usize * width + (x / scale) as usize];
                        (((value - low) / (high - low)).clamp(0.0, 1.0) * 255.0).round() as u8
                    };
                    let color = if channels == 3 { [at(0), at(1), at(2)] } else { [at(0); 3] };
                    canvas.set(left + offset + x, top + y, color);
                }
            }
        }
        for (line, text) in wrap(&item.caption, max_chars).iter().enumerate() {
            let y = top + image_h + MARGIN / 2 + line as u32 * LINE_HEIGHT;
            canvas.text(left as i32, y as i32, text, max_chars, TEXT_COLOR);
        }
    }
    canvas
}

/// The smallest and largest value of a sample and its view together.
fn value_range(sample: &[f32], view: &[f32]) -> (f32, f32) {
    let values = || sample.iter().chain(view).copied();
    (values().fold(f32::INFINITY, f32::min), values().fold(f32::NEG_INFINITY, f32::max))
}

/// Pixel values shown black and white: [0, 1] for images already in it, else the pair's range.
fn display_range(sample: &[f32], view: &[f32]) -> (f32, f32) {
    let (low, high) = value_range(sample, view);
    if low >= 0.0 && high <= 1.0 {
        (0.0, 1.0)
    } else if high > low {
        (low, high)
    } else {
        (low, low + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_wrap_at_spaces() {
        let lines = vec!["cnn2d: Sneaker 0.52, Sandal 0.36, Bag 0.12".to_string(), "short".to_string()];
        assert_eq!(wrap(&lines, 20), vec!["cnn2d: Sneaker 0.52,", "Sandal 0.36, Bag", "0.12", "short"]);
    }
}
