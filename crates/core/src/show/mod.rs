//! `kdstore show`: an SVG of selected views next to the samples they were made from, drawn with
//! plotters like the study report. Series get one panel per channel (named, with its value axis)
//! with the sample (grey) and the view (blue) overlaid over a time-step axis; images get a grid of
//! (sample | view) pairs on pixel axes. Captions name the view, recipe, label, the mix partner and
//! λ, and the teacher's top classes. Views are replayed and checked against their hashes like
//! everywhere else.

mod images;
mod series;

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::figure::{Drawn, FONT};

use crate::select::{select_some, ReplayError, Replayer, SelectedView, ViewsError};
use crate::store::Store;

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

/// Pixels per caption line, and the caption font's size and average character width.
const LINE_HEIGHT: u32 = 16;
const TEXT_SIZE: u32 = 13;
const CHAR_WIDTH: u32 = 7;
const MARGIN: u32 = 8;

/// Draws the selected views into `out` (SVG) and returns how many were drawn.
pub fn show(store: &Store, request: &ShowRequest, out: &Path) -> Result<usize, ViewsError> {
    let (samples, selection) = select_some(store, request.teacher, Some(request.condition))?;
    let replayer = Replayer::new(store, &samples)?;
    let dataset = &store.manifest.dataset;
    let mut shown = Vec::new();
    for (index, view) in selection.views.iter().enumerate().take(request.limit) {
        let replayed = replayer.replay_verified(view)?;
        shown.push(Shown {
            sample: samples
                .input(view.sample_id as usize)
                .map_err(|source| ReplayError::Input { view_id: view.view_id, sample_id: view.sample_id, source })?
                .into_owned(),
            view: replayed.input,
            caption: caption(view, selection.logits_of(index), &dataset.class_names, request.teacher, request.top),
        });
    }
    let write_error = |detail: String| ViewsError::Write { path: out.to_path_buf(), detail };
    let svg = match samples.sample_shape.as_slice() {
        [channels, length] => {
            let names: Vec<String> = match dataset.channel_names.len() == *channels {
                true => dataset.channel_names.clone(),
                false => (0..*channels).map(|c| format!("channel {c}")).collect(),
            };
            series::figure(&shown, &names, *length)
        }
        shape => images::figure(&shown, shape),
    }
    .map_err(write_error)?;
    std::fs::write(out, svg).map_err(|e| write_error(e.to_string()))?;
    Ok(shown.len())
}

fn class_name(names: &[String], class: i64) -> String {
    names.get(class as usize).cloned().unwrap_or_else(|| class.to_string())
}

/// view and recipe; label (and the partner with λ); the teacher's top classes with probabilities.
fn caption(view: &SelectedView, logits: &[f32], names: &[String], teacher: &str, top: usize) -> Vec<String> {
    let mut lines = vec![format!("view {} | {}", view.view_id, view.recipe)];
    let own = format!("sample {}: {}", view.sample_id, class_name(names, view.label));
    lines.push(match view.partner_id {
        Some(partner) => format!("{own} | λ {:.3} + {partner}: {}", view.lam, class_name(names, view.partner_label)),
        None => own,
    });
    let peak = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&z| ((z - peak) as f64).exp()).collect();
    let total: f64 = exp.iter().sum();
    let mut order: Vec<usize> = (0..exp.len()).collect();
    order.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]));
    let best: Vec<String> =
        order.iter().take(top).map(|&k| format!("{} {:.2}", class_name(names, k as i64), exp[k] / total)).collect();
    lines.push(format!("{teacher}: {}", best.join(", ")));
    lines
}

/// Caption lines broken at spaces so that none is longer than `max_chars` (a longer word stays whole).
fn wrap(lines: &[String], max_chars: usize) -> Vec<String> {
    let mut wrapped = Vec::new();
    for line in lines {
        let mut current = String::new();
        for word in line.split(' ') {
            if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > max_chars {
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

/// Draws `lines` from (x, y) down, one per [`LINE_HEIGHT`].
fn draw_caption(area: &DrawingArea<SVGBackend, Shift>, (x, y): (i32, i32), lines: &[String]) -> Drawn {
    let style = TextStyle::from((FONT, TEXT_SIZE)).color(&BLACK);
    for (index, line) in lines.iter().enumerate() {
        area.draw_text(line, &style, (x, y + (index as u32 * LINE_HEIGHT) as i32))?;
    }
    Ok(())
}

/// The smallest and largest value of a sample and its view together.
fn value_range(sample: &[f32], view: &[f32]) -> (f32, f32) {
    let values = || sample.iter().chain(view).copied();
    (values().fold(f32::INFINITY, f32::min), values().fold(f32::NEG_INFINITY, f32::max))
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
