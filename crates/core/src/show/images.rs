//! Image views: a grid of cells, each with its caption and the sample and the view side by side on
//! pixel axes (row 0 at the top). plotters draws the frames, axes and text; the pixels go in as
//! PNG `<image>` elements placed over the plotting areas afterwards, at their native resolution
//! and drawn pixelated, so that the SVG holds exactly the replayed pixels.

use base64::Engine;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{caption_lines, draw_caption, value_range, wrap, Shown, CHAR_WIDTH, LINE_HEIGHT, MARGIN, TEXT_SIZE};
use crate::figure::{self, FONT};

/// Pixels on the screen for the longer side of an image.
const IMAGE_SIDE: usize = 112;
const X_AXIS: u32 = 22;
const Y_AXIS: u32 = 30;
const COLUMNS: usize = 4;

/// A picture to place over a plotting area: its top-left corner, size on screen, and the PNG.
struct Raster {
    at: (i32, i32),
    size: (i32, i32),
    png: Vec<u8>,
}

/// The SVG of `shown` image views of `shape` (channels × height × width, or height × width).
pub(super) fn figure(shown: &[Shown], shape: &[usize]) -> Result<String, String> {
    let (channels, height, width) = match *shape {
        [c, h, w] => (c, h, w),
        _ => (1, shape.first().copied().unwrap_or(1), shape.iter().skip(1).product()),
    };
    let scale = (IMAGE_SIDE / height.max(width)).max(1) as u32;
    let (image_w, image_h) = (width as u32 * scale, height as u32 * scale);
    let panel_w = Y_AXIS + image_w + MARGIN;
    let cell_w = (2 * panel_w).max(36 * CHAR_WIDTH) + 2 * MARGIN;
    let max_chars = ((cell_w - 2 * MARGIN) / CHAR_WIDTH) as usize;
    let captions = caption_lines(shown, max_chars) * LINE_HEIGHT;
    let cell_h = captions + LINE_HEIGHT + image_h + X_AXIS + 2 * MARGIN;
    let columns = shown.len().clamp(1, COLUMNS) as u32;
    let rows = (shown.len() as u32).div_ceil(columns);
    let mut rasters = Vec::new();
    let svg = figure::svg((columns * cell_w, rows * cell_h), |root| {
        for (index, item) in shown.iter().enumerate() {
            let (column, row) = (index as u32 % columns, index as u32 / columns);
            let cell = root.clone().shrink((column * cell_w, row * cell_h), (cell_w, cell_h));
            draw_caption(&cell, (MARGIN as i32, MARGIN as i32), &wrap(&item.caption, max_chars))?;
            let (low, high) = display_range(&item.sample, &item.view);
            for (side, (title, pixels)) in [("sample", &item.sample), ("view", &item.view)].into_iter().enumerate() {
                let top = MARGIN + captions;
                let panel = cell
                    .clone()
                    .shrink((MARGIN + side as u32 * panel_w, top), (panel_w, LINE_HEIGHT + image_h + X_AXIS));
                let rgb = to_rgb(pixels, channels, (low, high));
                rasters.push(image_panel(&panel, title, (width, height), &rgb)?);
            }
        }
        Ok(())
    })?;
    Ok(with_rasters(svg, &rasters))
}

/// The panel's title, the pixel axes of a `width` × `height` image, and where its pixels go.
fn image_panel(
    panel: &DrawingArea<SVGBackend, Shift>,
    title: &str,
    (width, height): (usize, usize),
    rgb: &[u8],
) -> Result<Raster, Box<dyn std::error::Error>> {
    let style = TextStyle::from((FONT, TEXT_SIZE)).color(&BLACK);
    panel.draw_text(title, &style, (Y_AXIS as i32, 0))?;
    let (_, below) = panel.split_vertically(LINE_HEIGHT);
    let mut chart = ChartBuilder::on(&below)
        .margin_right(MARGIN)
        .x_label_area_size(X_AXIS)
        .y_label_area_size(Y_AXIS)
        .build_cartesian_2d(0.0..width as f64, -(height as f64)..0.0)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(4)
        .y_labels(4)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| figure::tick(-y))
        .label_style((FONT, 10))
        .draw()?;
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    Ok(Raster { at: (xs.start, ys.start), size: (xs.end - xs.start, ys.end - ys.start), png: png(rgb, width, height)? })
}

/// `svg` with the rasters' `<image>` elements added last (over the empty plotting areas).
fn with_rasters(svg: String, rasters: &[Raster]) -> String {
    let end = svg.rfind("</svg>").unwrap_or(svg.len());
    let mut out = svg[..end].to_string();
    for raster in rasters {
        let data = base64::engine::general_purpose::STANDARD.encode(&raster.png);
        out.push_str(&format!(
            "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{data}\"/>\n",
            raster.at.0, raster.at.1, raster.size.0, raster.size.1
        ));
    }
    out.push_str(&svg[end..]);
    out
}

/// 8-bit RGB pixels of a (channels × height × width) image, `range` mapped to black..white.
fn to_rgb(pixels: &[f32], channels: usize, (low, high): (f32, f32)) -> Vec<u8> {
    let plane = pixels.len() / channels.max(1);
    let level = |value: f32| (((value - low) / (high - low)).clamp(0.0, 1.0) * 255.0).round() as u8;
    (0..plane)
        .flat_map(|at| match channels {
            3 => [level(pixels[at]), level(pixels[plane + at]), level(pixels[2 * plane + at])],
            _ => [level(pixels[at]); 3],
        })
        .collect()
}

fn png(rgb: &[u8], width: usize, height: usize) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width as u32, height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(rgb)?;
    }
    Ok(bytes)
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
    fn rgb_images_keep_their_channels_and_grey_ones_repeat_theirs() {
        // 2 pixels, 3 channels: red then green.
        let rgb = to_rgb(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0], 3, (0.0, 1.0));
        assert_eq!(rgb, vec![255, 0, 0, 0, 255, 0]);
        assert_eq!(to_rgb(&[0.5, -1.0], 1, (0.0, 1.0)), vec![128, 128, 128, 0, 0, 0]);
    }
}
