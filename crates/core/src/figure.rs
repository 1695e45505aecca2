//! What every kdstore figure shares: plotters' SVG backend drawing into a string (text is left to
//! the viewer, so no fonts are needed and the output is byte-stable), one font family, matplotlib's
//! tab10 colours and padded axis ranges. The study report's plots and `kdstore show` use it.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;

/// What a drawing step returns; plotters' errors are boxed.
pub type Drawn = Result<(), Box<dyn std::error::Error>>;

pub const FONT: &str = "sans-serif";
/// Matplotlib's tab10, the colours readers of KD papers know.
pub const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
pub const FAINT: RGBColor = RGBColor(200, 200, 200);
/// The minor grid lines.
pub const LIGHT: RGBColor = RGBColor(240, 240, 240);

/// An SVG of `size` pixels on white, drawn by `draw`.
pub fn svg(size: (u32, u32), draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Drawn) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// A padded range covering `values` (0..1 when there are none).
pub fn span(values: impl IntoIterator<Item = f64>) -> Range<f64> {
    let (low, high) = values.into_iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !low.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((high - low) * 0.08).max(1e-3 * high.abs().max(1.0));
    (low - pad)..(high + pad)
}

/// A tick label: at most two decimals, without trailing zeros (`2`, `0.5`, `-1.25`).
pub fn tick(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match text {
        "-0" | "" => "0".to_string(),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_drop_trailing_zeros() {
        let ticks: Vec<String> = [2.0, 0.5, -1.25, -0.001, 10.0, 0.30000000000000004].map(tick).to_vec();
        assert_eq!(ticks, ["2", "0.5", "-1.25", "0", "10", "0.3"]);
    }
}
