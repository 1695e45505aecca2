//! Reader for IDX image/label files (MNIST, Fashion-MNIST), gzipped or plain.
//!
//! An IDX file is a big-endian magic (0x00000803 for u8 images N×H×W, 0x00000801 for u8
//! labels N), one big-endian u32 per dimension, then the u8 data.

use std::path::Path;

use super::inputs::Inputs;
use super::{concat_given_splits, read_maybe_gzip, Dataset, SourceError};

/// Fashion-MNIST's class names, index = label.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

const IMAGES_MAGIC: u32 = 0x0803;
const LABELS_MAGIC: u32 = 0x0801;

/// Reads an image file and its label file; inputs are byte / 255 with sample shape
/// `[1, H, W]`. Class names default to "0" up to the largest label.
pub fn read(images: &Path, labels: &Path, class_names: Option<Vec<String>>) -> Result<Dataset, SourceError> {
    let mut data = read_pair(images, labels)?;
    data.class_names = class_names.unwrap_or_else(|| default_class_names(&data.labels));
    data.check(images)?;
    Ok(data)
}

/// Reads the train pair and the test pair and concatenates them (train first) with the
/// given split marked.
pub fn read_train_test(
    train_images: &Path,
    train_labels: &Path,
    test_images: &Path,
    test_labels: &Path,
    class_names: Option<Vec<String>>,
) -> Result<Dataset, SourceError> {
    let train = read_pair(train_images, train_labels)?;
    let test = read_pair(test_images, test_labels)?;
    let mut data = concat_given_splits(train, test, train_images, test_images)?;
    data.class_names = class_names.unwrap_or_else(|| default_class_names(&data.labels));
    data.check(train_images)?;
    Ok(data)
}

/// Reads images and labels into a dataset without class names.
fn read_pair(images: &Path, labels: &Path) -> Result<Dataset, SourceError> {
    let (image_dims, pixels) = read_idx(images, IMAGES_MAGIC)?;
    let (label_dims, label_bytes) = read_idx(labels, LABELS_MAGIC)?;
    let (n, height, width) = (image_dims[0], image_dims[1], image_dims[2]);
    if label_dims[0] != n {
        return Err(SourceError::malformed(
            labels,
            format!("{} labels but {} holds {n} images", label_dims[0], images.display()),
        ));
    }
    Ok(Dataset {
        sample_shape: vec![1, height, width],
        inputs: Inputs::Held(pixels.iter().map(|&b| f32::from(b) / 255.0).collect()),
        labels: label_bytes.iter().map(|&b| i64::from(b)).collect(),
        groups: None,
        given_split: None,
        class_names: Vec::new(),
        channel_names: Vec::new(),
    })
}

/// "0", "1", … up to the largest label.
fn default_class_names(labels: &[i64]) -> Vec<String> {
    let count = labels.iter().max().map_or(0, |&max| max + 1);
    (0..count).map(|c| c.to_string()).collect()
}

/// Reads one IDX file with the given magic; returns its dimensions and its u8 data.
fn read_idx(path: &Path, magic: u32) -> Result<(Vec<usize>, Vec<u8>), SourceError> {
    let bytes = read_maybe_gzip(path)?;
    let bad = |detail: String| SourceError::malformed(path, detail);
    let word = |i: usize| -> Option<u32> {
        let b = bytes.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let found =
        word(0).ok_or_else(|| bad(format!("truncated header: expected at least 4 bytes, found {}", bytes.len())))?;
    if found != magic {
        return Err(bad(format!("bad idx magic 0x{found:08x}, expected 0x{magic:08x}")));
    }
    let ndim = (magic & 0xff) as usize;
    let header = 4 * (1 + ndim);
    let dims: Vec<usize> = (1..=ndim)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| bad(format!("truncated header: expected {header} bytes, found {}", bytes.len())))?;
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} are too large")))?;
    let found = bytes.len() - header;
    if found != expected {
        let what = if found < expected { "truncated data" } else { "trailing data" };
        return Err(bad(format!("{what}: dimensions {dims:?} need {expected} bytes after the header, found {found}")));
    }
    Ok((dims, bytes[header..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::GivenSplit;
    use std::io::Write;

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend(d.to_be_bytes());
        }
        out.extend(data);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn put(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_plain_and_gzipped() {
        let dir = tempfile::tempdir().unwrap();
        let images = put(&dir, "i.gz", &gzip(&idx(0x803, &[2, 2, 3], &[0, 51, 255, 0, 0, 0, 1, 2, 3, 4, 5, 6])));
        let labels = put(&dir, "l", &idx(0x801, &[2], &[3, 1]));
        let d = read(&images, &labels, None).unwrap();
        assert_eq!(d.sample_shape, vec![1, 2, 3]);
        assert_eq!(d.sample(0), &[0.0, 0.2, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(d.sample(1)[5], 6.0 / 255.0);
        assert_eq!(d.labels, vec![3, 1]);
        assert_eq!(d.class_names, vec!["0", "1", "2", "3"]);
        let names: Vec<String> = FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect();
        assert_eq!(read(&images, &labels, Some(names)).unwrap().class_names[3], "Dress");
        let e = read(&images, &labels, Some(vec!["a".into()])).unwrap_err().to_string();
        assert!(e.ends_with("i.gz: sample 0: label 3 is outside 0..1"), "{e}");
    }

    #[test]
    fn train_test_marks_splits() {
        let dir = tempfile::tempdir().unwrap();
        let tr_i = put(&dir, "tri", &idx(0x803, &[1, 1, 2], &[0, 255]));
        let tr_l = put(&dir, "trl", &idx(0x801, &[1], &[0]));
        let te_i = put(&dir, "tei", &idx(0x803, &[2, 1, 2], &[255, 255, 0, 0]));
        let te_l = put(&dir, "tel", &idx(0x801, &[2], &[2, 1]));
        let d = read_train_test(&tr_i, &tr_l, &te_i, &te_l, None).unwrap();
        assert_eq!([d.sample(0), d.sample(1), d.sample(2)].concat(), vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(d.labels, vec![0, 2, 1]);
        assert_eq!(d.class_names.len(), 3);
        assert_eq!(d.given_split, Some(vec![GivenSplit::Train, GivenSplit::Test, GivenSplit::Test]));
        let odd = put(&dir, "odd", &idx(0x803, &[1, 2, 1], &[0, 0]));
        let e = read_train_test(&tr_i, &tr_l, &odd, &tr_l, None).unwrap_err().to_string();
        assert!(e.contains("odd: sample shape [1, 2, 1] differs from [1, 1, 2] in"), "{e}");
    }

    #[test]
    fn errors() {
        let dir = tempfile::tempdir().unwrap();
        let images = put(&dir, "i", &idx(0x803, &[2, 2, 2], &[0; 8]));
        let labels = put(&dir, "l", &idx(0x801, &[3], &[0; 3]));
        let message = |images: &Path, labels: &Path| {
            let e = read(images, labels, None).unwrap_err().to_string();
            e.replace(&dir.path().display().to_string(), "D")
        };
        assert_eq!(message(&images, &labels), "D/l: 3 labels but D/i holds 2 images");
        assert_eq!(message(&labels, &labels), "D/l: bad idx magic 0x00000801, expected 0x00000803");
        let short = put(&dir, "s", &idx(0x803, &[2, 2, 2], &[0; 7]));
        assert_eq!(
            message(&short, &labels),
            "D/s: truncated data: dimensions [2, 2, 2] need 8 bytes after the header, found 7"
        );
        let long = put(&dir, "g", &idx(0x803, &[2, 2, 2], &[0; 9]));
        assert_eq!(
            message(&long, &labels),
            "D/g: trailing data: dimensions [2, 2, 2] need 8 bytes after the header, found 9"
        );
        let stub = put(&dir, "h", &idx(0x803, &[2], &[]));
        assert_eq!(message(&stub, &labels), "D/h: truncated header: expected 16 bytes, found 8");
        let corrupt = put(&dir, "c", &[0x1f, 0x8b, 1, 2, 3]);
        assert!(message(&corrupt, &labels).starts_with("D/c: corrupt gzip data: "));
    }
}
