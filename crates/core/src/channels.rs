//! Channel subsets: a model that sees only some sensors (a teacher's `input_channels`, a
//! student's `--student-channels`) gets those channels of the same replayed view, in the order
//! named. Inputs are flat row-major `[batch, channels, ...]`.

/// The sample shape a model with `channels` sees.
pub fn shape_with(sample_shape: &[usize], channels: Option<&[usize]>) -> Vec<usize> {
    let mut shape = sample_shape.to_vec();
    if let (Some(channels), Some(first)) = (channels, shape.first_mut()) {
        *first = channels.len();
    }
    shape
}

/// `inputs` (flat, samples of `sample_shape`) reduced to `channels`.
pub fn select(inputs: &[f32], sample_shape: &[usize], channels: &[usize]) -> Vec<f32> {
    let per_channel: usize = sample_shape[1..].iter().product();
    let per_sample = per_channel * sample_shape[0];
    let mut out = Vec::with_capacity(inputs.len() / per_sample.max(1) * channels.len() * per_channel);
    for sample in inputs.chunks(per_sample) {
        for &c in channels {
            out.extend_from_slice(&sample[c * per_channel..(c + 1) * per_channel]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_taken_in_the_order_named_from_every_sample() {
        // Two samples of 3 channels × 2 steps.
        let inputs: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(select(&inputs, &[3, 2], &[2, 0]), [4.0, 5.0, 0.0, 1.0, 10.0, 11.0, 6.0, 7.0]);
        assert_eq!(shape_with(&[3, 2], Some(&[2, 0])), [2, 2]);
        assert_eq!(shape_with(&[1, 4, 4], None), [1, 4, 4]);
    }
}
