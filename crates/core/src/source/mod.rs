//! Dataset sources: reading datasets from their files into memory as a [`Dataset`].
//!
//! This module owns parsing and validating the on-disk formats only. It never normalises
//! values and never carves out validation parts; a split is recorded only where the source
//! itself defines one (separate train and test files).

use std::path::{Path, PathBuf};

use inputs::Inputs;

pub mod hapt;
pub mod idx;
pub mod image_folder;
pub mod inputs;
pub mod npy;
pub mod ts;

/// A split that the source itself defines (separate train/test files, an image folder's `val/`).
/// Where a source gives no validation part, the pipeline carves one out later, never here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GivenSplit {
    Train,
    Val,
    Test,
}

/// A dataset: every sample has the same `sample_shape` (channels × time for series, channels ×
/// height × width for images), inputs are f32 in row-major order, held in memory or (a large image
/// folder) decoded from the files on each use.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub sample_shape: Vec<usize>,
    /// `len()` samples of `sample_len()` values.
    pub inputs: Inputs,
    /// 0-based class indices into `class_names`.
    pub labels: Vec<i64>,
    /// E.g. the subject, one per sample.
    pub groups: Option<Vec<i64>>,
    pub given_split: Option<Vec<GivenSplit>>,
    /// Index = label.
    pub class_names: Vec<String>,
    /// Names of the channels (the first axis of `sample_shape`), where the source or the pipeline
    /// gives them; empty otherwise.
    pub channel_names: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of values in one sample: the product of `sample_shape`.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The values of sample `index` of a dataset that holds its inputs.
    #[cfg(test)]
    pub fn sample(&self, index: usize) -> &[f32] {
        let Inputs::Held(values) = &self.inputs else { panic!("the inputs are decoded on use") };
        let len = self.sample_len();
        &values[index * len..(index + 1) * len]
    }

    /// Checks lengths agree, labels are in `0..class_names.len()` and inputs are finite;
    /// the error names `origin` and the sample at fault.
    pub fn check(&self, origin: &Path) -> Result<(), SourceError> {
        let bad = |detail: String| Err(SourceError::malformed(origin, detail));
        let n = self.len();
        let len = self.sample_len();
        match &self.inputs {
            Inputs::Held(values) if n.checked_mul(len) != Some(values.len()) => {
                return bad(format!("{} input values for {n} samples of shape {:?}", values.len(), self.sample_shape));
            }
            Inputs::Decoded(folder) if folder.files.len() != n => {
                return bad(format!("{} image files for {n} samples", folder.files.len()));
            }
            _ => {}
        }
        if let Some(groups) = &self.groups {
            if groups.len() != n {
                return bad(format!("{} groups for {n} samples", groups.len()));
            }
        }
        if let Some(split) = &self.given_split {
            if split.len() != n {
                return bad(format!("{} split marks for {n} samples", split.len()));
            }
        }
        let channels = self.sample_shape.first().copied().unwrap_or(1);
        if !self.channel_names.is_empty() && self.channel_names.len() != channels {
            return bad(format!("{} channel names for samples of {channels} channels", self.channel_names.len()));
        }
        let classes = self.class_names.len();
        for (i, &label) in self.labels.iter().enumerate() {
            if usize::try_from(label).map_or(true, |l| l >= classes) {
                return bad(format!("sample {i}: label {label} is outside 0..{classes}"));
            }
        }
        // Decoded images are bytes / 255: finite by construction.
        if let Inputs::Held(values) = &self.inputs {
            for (i, sample) in values.chunks(len.max(1)).enumerate() {
                if let Some((j, v)) = sample.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return bad(format!("sample {i}: value {j} is not finite ({v})"));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Malformed { path: PathBuf, detail: String },
    #[error("{name}: {detail}")]
    Setting { name: String, detail: String },
}

impl SourceError {
    fn malformed(path: &Path, detail: impl Into<String>) -> Self {
        SourceError::Malformed { path: path.to_path_buf(), detail: detail.into() }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        SourceError::Io { path: path.to_path_buf(), source }
    }
}

/// Whether `bytes` start with the gzip magic 1f 8b.
fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Reads a whole file.
fn read_file(path: &Path) -> Result<Vec<u8>, SourceError> {
    std::fs::read(path).map_err(|e| SourceError::io(path, e))
}

/// Reads a whole file, decompressing it if it starts with the gzip magic.
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, SourceError> {
    let raw = read_file(path)?;
    if !is_gzip(&raw) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut out)
        .map_err(|e| SourceError::malformed(path, format!("corrupt gzip data: {e}")))?;
    Ok(out)
}

/// Concatenates a train and a test part read from separate files (an array source's, which holds
/// its inputs), marking each sample's given split; both parts must agree on the sample shape and
/// the class names.
fn concat_given_splits(
    train: Dataset,
    test: Dataset,
    train_path: &Path,
    test_path: &Path,
) -> Result<Dataset, SourceError> {
    if train.sample_shape != test.sample_shape {
        return Err(SourceError::malformed(
            test_path,
            format!(
                "sample shape {:?} differs from {:?} in {}",
                test.sample_shape,
                train.sample_shape,
                train_path.display()
            ),
        ));
    }
    if train.class_names != test.class_names {
        return Err(SourceError::malformed(
            test_path,
            format!("classes {:?} differ from {:?} in {}", test.class_names, train.class_names, train_path.display()),
        ));
    }
    let mut given_split = vec![GivenSplit::Train; train.len()];
    given_split.resize(train.len() + test.len(), GivenSplit::Test);
    let groups = match (train.groups, test.groups) {
        (Some(a), Some(b)) => Some([a, b].concat()),
        _ => None,
    };
    Ok(Dataset {
        sample_shape: train.sample_shape,
        inputs: match (train.inputs, test.inputs) {
            (Inputs::Held(train), Inputs::Held(test)) => Inputs::Held([train, test].concat()),
            _ => unreachable!("array sources hold their inputs"),
        },
        labels: [train.labels, test.labels].concat(),
        groups,
        given_split: Some(given_split),
        class_names: train.class_names,
        channel_names: train.channel_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        Dataset {
            sample_shape: vec![2, 2],
            inputs: Inputs::Held(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
            labels: vec![0, 1],
            groups: Some(vec![7, 7]),
            given_split: None,
            class_names: vec!["a".into(), "b".into()],
            channel_names: Vec::new(),
        }
    }

    #[test]
    fn accessors() {
        let d = tiny();
        assert_eq!((d.len(), d.is_empty(), d.sample_len()), (2, false, 4));
        assert_eq!(d.sample(1), &[5.0, 6.0, 7.0, 8.0]);
        d.check(Path::new("x")).unwrap();
    }

    #[test]
    fn check_names_the_sample() {
        let mut d = tiny();
        d.labels[1] = 2;
        let e = d.check(Path::new("data/x")).unwrap_err().to_string();
        assert_eq!(e, "data/x: sample 1: label 2 is outside 0..2");
        let mut d = tiny();
        let Inputs::Held(values) = &mut d.inputs else { unreachable!() };
        values[6] = f32::NAN;
        let e = d.check(Path::new("data/x")).unwrap_err().to_string();
        assert_eq!(e, "data/x: sample 1: value 2 is not finite (NaN)");
        let mut d = tiny();
        let Inputs::Held(values) = &mut d.inputs else { unreachable!() };
        values.pop();
        let e = d.check(Path::new("data/x")).unwrap_err().to_string();
        assert_eq!(e, "data/x: 7 input values for 2 samples of shape [2, 2]");
        let mut d = tiny();
        d.groups = Some(vec![1]);
        let e = d.check(Path::new("data/x")).unwrap_err().to_string();
        assert_eq!(e, "data/x: 1 groups for 2 samples");
    }

    #[test]
    fn concat_marks_splits_and_checks_agreement() {
        let d = concat_given_splits(tiny(), tiny(), Path::new("tr"), Path::new("te")).unwrap();
        assert_eq!(d.len(), 4);
        assert_eq!(
            d.given_split.as_deref(),
            Some(&[GivenSplit::Train, GivenSplit::Train, GivenSplit::Test, GivenSplit::Test][..])
        );
        assert_eq!(d.groups, Some(vec![7, 7, 7, 7]));
        assert_eq!(d.sample(2), &[1.0, 2.0, 3.0, 4.0]);
        let mut other = tiny();
        other.class_names[1] = "c".into();
        let e = concat_given_splits(tiny(), other, Path::new("tr"), Path::new("te")).unwrap_err().to_string();
        assert_eq!(e, r#"te: classes ["a", "c"] differ from ["a", "b"] in tr"#);
    }
}
