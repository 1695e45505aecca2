//! Helpers shared by the image ops: the shape check (images are channels × height × width,
//! row-major) and bilinear resampling with PyTorch's `align_corners=False` convention, which is
//! what torchvision's `resize` does when it enlarges (a resized crop is never larger than the image,
//! so antialiasing, which only matters when shrinking, never applies).

/// The (channels, height, width) of an image sample, or why the shape is not an image.
pub fn image_dims(shape: &[usize]) -> Result<(usize, usize, usize), String> {
    match shape {
        [c, h, w] if *c > 0 && *h > 0 && *w > 0 => Ok((*c, *h, *w)),
        _ => Err(format!("needs images (channels × height × width), got shape {shape:?}")),
    }
}

/// Source coordinate and weights along one axis for each output index, PyTorch's
/// `area_pixel_compute_source_index` with `align_corners=False`.
fn axis_weights(input: usize, output: usize) -> Vec<(usize, usize, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|o| {
            let source = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
            let low = (source as usize).min(input - 1);
            let high = (low + 1).min(input - 1);
            (low, high, source - low as f32)
        })
        .collect()
}

/// Bilinearly resizes the `crop_h × crop_w` window at (`top`, `left`) of each channel of a
/// `height × width` image to the full `height × width`, in place.
pub fn resize_crop(input: &mut [f32], dims: (usize, usize, usize), top: usize, left: usize, crop: (usize, usize)) {
    let (_, height, width) = dims;
    let rows = axis_weights(crop.0, height);
    let columns = axis_weights(crop.1, width);
    for channel in input.chunks_mut(height * width) {
        let source = channel.to_vec();
        let at = |y: usize, x: usize| source[(top + y) * width + left + x];
        for (y, &(y0, y1, wy)) in rows.iter().enumerate() {
            for (x, &(x0, x1, wx)) in columns.iter().enumerate() {
                let upper = (1.0 - wx) * at(y0, x0) + wx * at(y0, x1);
                let lower = (1.0 - wx) * at(y1, x0) + wx * at(y1, x1);
                channel[y * width + x] = (1.0 - wy) * upper + wy * lower;
            }
        }
    }
}

/// Sets the box rows `y0..y1`, columns `x0..x1` of every channel to `value(channel, index)`.
pub fn fill_box(
    input: &mut [f32],
    dims: (usize, usize, usize),
    (y0, y1): (usize, usize),
    (x0, x1): (usize, usize),
    value: impl Fn(usize) -> f32,
) {
    let (_, height, width) = dims;
    for (c, channel) in input.chunks_mut(height * width).enumerate() {
        for y in y0..y1 {
            for x in x0..x1 {
                channel[y * width + x] = value(c * height * width + y * width + x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizing_the_whole_image_is_the_identity() {
        let original: Vec<f32> = (0..2 * 5 * 7).map(|i| (i * 37 % 11) as f32).collect();
        let mut x = original.clone();
        resize_crop(&mut x, (2, 5, 7), 0, 0, (5, 7));
        assert_eq!(x, original);
    }

    #[test]
    fn doubling_interpolates_between_neighbours() {
        // 1 × 1 × 2 crop [0, 4] enlarged to width 4: sources -0.25→0, 0.25, 0.75, 1.25→clamped.
        let mut x = vec![0.0, 4.0, 9.0, 9.0];
        resize_crop(&mut x, (1, 1, 4), 0, 0, (1, 2));
        assert_eq!(x, vec![0.0, 1.0, 3.0, 4.0]);
    }

    #[test]
    fn rejects_series() {
        assert!(image_dims(&[3, 100]).is_err());
        assert_eq!(image_dims(&[1, 28, 28]), Ok((1, 28, 28)));
    }
}
