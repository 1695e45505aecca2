//! A white RGB canvas for `kdstore show`: embedded-graphics draws lines and text on it, images are
//! blitted pixel by pixel, and it saves itself as an 8-bit RGB PNG.

use std::convert::Infallible;
use std::path::Path;

use embedded_graphics::mono_font::{ascii::FONT_6X10, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Line, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

/// Width and height of a character of the caption font, in pixels.
pub const CHAR_WIDTH: u32 = 6;
pub const LINE_HEIGHT: u32 = 12;

pub type Rgb = [u8; 3];

pub struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<Rgb>,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas { width, height, pixels: vec![[255, 255, 255]; (width * height) as usize] }
    }

    pub fn set(&mut self, x: u32, y: u32, color: Rgb) {
        if x < self.width && y < self.height {
            self.pixels[(y * self.width + x) as usize] = color;
        }
    }

    pub fn get(&self, x: u32, y: u32) -> Rgb {
        self.pixels[(y * self.width + x) as usize]
    }

    pub fn line(&mut self, from: (i32, i32), to: (i32, i32), color: Rgb) {
        let style = PrimitiveStyle::with_stroke(rgb888(color), 1);
        let _ = Line::new(Point::new(from.0, from.1), Point::new(to.0, to.1)).into_styled(style).draw(self);
    }

    pub fn frame(&mut self, left: i32, top: i32, width: u32, height: u32, color: Rgb) {
        let style = PrimitiveStyle::with_stroke(rgb888(color), 1);
        let _ = Rectangle::new(Point::new(left, top), Size::new(width, height)).into_styled(style).draw(self);
    }

    /// Draws `text` with its top-left corner at (x, y), cut to `max_chars` characters.
    pub fn text(&mut self, x: i32, y: i32, text: &str, max_chars: usize, color: Rgb) {
        let shown: String = text.chars().map(|c| if c.is_ascii() { c } else { '?' }).take(max_chars).collect();
        let style = MonoTextStyle::new(&FONT_6X10, rgb888(color));
        let _ = Text::with_baseline(&shown, Point::new(x, y), style, Baseline::Top).draw(self);
    }

    pub fn save_png(&self, path: &Path) -> Result<(), String> {
        let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        let bytes: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        writer.write_image_data(&bytes).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())
    }
}

fn rgb888([r, g, b]: Rgb) -> Rgb888 {
    Rgb888::new(r, g, b)
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(&mut self, pixels: I) -> Result<(), Infallible> {
        for Pixel(point, color) in pixels {
            if point.x >= 0 && point.y >= 0 {
                self.set(point.x as u32, point.y as u32, [color.r(), color.g(), color.b()]);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_lines_and_text_and_round_trips_through_png() {
        let mut canvas = Canvas::new(40, 20);
        canvas.line((0, 0), (39, 0), [255, 0, 0]);
        canvas.text(1, 5, "Hi", 10, [0, 0, 0]);
        assert_eq!(canvas.get(20, 0), [255, 0, 0]);
        assert!((0..12).any(|x| (5..15).any(|y| canvas.get(x, y) == [0, 0, 0])), "text drew nothing");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        canvas.save_png(&path).unwrap();
        let decoder = png::Decoder::new(std::fs::File::open(&path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut buffer = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buffer).unwrap();
        assert_eq!((info.width, info.height), (40, 20));
        assert_eq!(&buffer[20 * 3..20 * 3 + 3], &[255, 0, 0]);
    }
}
