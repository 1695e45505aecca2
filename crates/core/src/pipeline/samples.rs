//! The samples stage: read the source, assign every sample to train/val/test, and compute the
//! per-channel normalisation from the training split. Its key hashes the source files' bytes and
//! the source, split and normalisation settings, so any change to them is seen.
//! [`write_samples`] runs the stage into a store and records the dataset in the manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use xxhash_rust::xxh3::Xxh3;

use super::config::*;
use super::parts::short;
use super::plan::Plan;
use super::BuildError;
use crate::augment::seed::purpose_seed;
use crate::source::image_folder::{self, FileRef, ImageDecode};
use crate::source::inputs::Inputs;
use crate::source::{self, Dataset, GivenSplit};
use crate::store::manifest::FolderInputs;
use crate::store::reader::SampleTable;
use crate::store::writer::{self, SampleInputs, SampleRows};
use crate::store::{DatasetInfo, Manifest, Normalization, Split};

/// Samples ready to be written: the dataset (and for an image folder, each sample's file), each
/// sample's split and the normalisation.
pub struct PreparedSamples {
    pub dataset: Dataset,
    pub files: Option<Vec<FileRef>>,
    pub splits: Vec<Split>,
    pub split_rule: String,
    pub normalization: Normalization,
}

fn source_files(config: &SourceConfig) -> Result<Vec<PathBuf>, source::SourceError> {
    Ok(match config {
        SourceConfig::Hapt { path, .. } => vec![path.clone()],
        SourceConfig::Idx { train_images, train_labels, test_images, test_labels, .. } => {
            vec![train_images.clone(), train_labels.clone(), test_images.clone(), test_labels.clone()]
        }
        SourceConfig::Ts { train, test, .. } => vec![train.clone(), test.clone()],
        SourceConfig::Npy { inputs, labels, groups, .. } => {
            let mut files = vec![inputs.clone(), labels.clone()];
            files.extend(groups.clone());
            files
        }
        SourceConfig::ImageFolder { root, .. } => {
            image_folder::list(root)?.0.into_iter().map(|file| root.join(file.path)).collect()
        }
    })
}

/// Key of the samples stage.
pub fn samples_key(file: &PipelineFile) -> Result<String, BuildError> {
    let mut hasher = Xxh3::new();
    let settings = serde_json::json!({
        "source": file.source, "split": file.split, "normalize": file.normalize, "seed": file.seed,
    });
    hasher.update(settings.to_string().as_bytes());
    for path in source_files(&file.source)? {
        let bytes = std::fs::read(&path).map_err(|source| BuildError::Io { path: path.clone(), source })?;
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(format!("{:032x}", hasher.digest128()))
}

/// The dataset a source describes and, for an image folder, each sample's file.
fn read_source(config: &SourceConfig) -> Result<(Dataset, Option<Vec<FileRef>>), source::SourceError> {
    let dataset = match config {
        SourceConfig::Hapt { path, window, step } => source::hapt::read(path, *window, *step),
        SourceConfig::Idx { train_images, train_labels, test_images, test_labels, class_names } => {
            let names = match class_names {
                None => None,
                Some(ClassNames::Names(names)) => Some(names.clone()),
                Some(ClassNames::Preset(_)) => {
                    Some(source::idx::FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect())
                }
            };
            source::idx::read_train_test(train_images, train_labels, test_images, test_labels, names)
        }
        SourceConfig::Ts { train, test, channel_names } => {
            named(source::ts::read_train_test(train, test), channel_names)
        }
        SourceConfig::Npy { inputs, labels, groups, layout, channel_names } => {
            let layout = match layout {
                NpyLayoutConfig::Series => source::npy::NpyLayout::Series,
                NpyLayoutConfig::Image => source::npy::NpyLayout::Image,
            };
            named(source::npy::read(inputs, labels, groups.as_deref(), layout), channel_names)
        }
        &SourceConfig::ImageFolder { ref root, color, resize, center_crop } => {
            let (dataset, files) = image_folder::read(root, &ImageDecode { color, resize, center_crop })?;
            return Ok((dataset, Some(files)));
        }
    }?;
    Ok((dataset, None))
}

/// Where an image folder source's files are and how they decode, as the manifest records it;
/// `None` for the other sources.
fn folder_inputs(config: &SourceConfig) -> Result<Option<FolderInputs>, source::SourceError> {
    match config {
        &SourceConfig::ImageFolder { ref root, color, resize, center_crop } => Ok(Some(FolderInputs {
            root: image_folder::absolute_root(root)?,
            decode: ImageDecode { color, resize, center_crop },
        })),
        _ => Ok(None),
    }
}

/// The dataset with the pipeline's channel names, where it gives them.
fn named(
    dataset: Result<Dataset, source::SourceError>,
    names: &Option<Vec<String>>,
) -> Result<Dataset, source::SourceError> {
    let mut dataset = dataset?;
    if let Some(names) = names {
        dataset.channel_names = names.clone();
    }
    Ok(dataset)
}

/// Reads and splits the source and computes the normalisation.
pub fn prepare(file: &PipelineFile, origin: &Path) -> Result<PreparedSamples, BuildError> {
    let (dataset, files) = read_source(&file.source)?;
    dataset.check(origin)?;
    let (splits, split_rule) = assign_splits(&dataset, &file.split, file.seed)?;
    if !splits.contains(&Split::Train) {
        return Err(BuildError::Split("the training split is empty".into()));
    }
    let normalization = normalization(&dataset, &splits, file.normalize.mode)?;
    Ok(PreparedSamples { dataset, files, splits, split_rule, normalization })
}

/// Runs the samples stage into the store at `root`: writes the samples part, adds it to `manifest`
/// with the dataset's description, and returns the samples for the stages that follow.
pub fn write_samples(
    plan: &Plan,
    root: &Path,
    samples_key: &str,
    manifest: &mut Manifest,
) -> Result<SampleTable, BuildError> {
    let prepared = prepare(&plan.file, &plan.path)?;
    let dataset = &prepared.dataset;
    let rows = SampleRows {
        splits: &prepared.splits,
        labels: &dataset.labels,
        groups: dataset.groups.as_deref(),
        inputs: match (&prepared.files, &dataset.inputs) {
            (Some(files), _) => SampleInputs::Files(files),
            (None, Inputs::Held(values)) => SampleInputs::Values(values),
            (None, Inputs::Decoded(folder)) => SampleInputs::Files(&folder.files),
        },
        sample_shape: &dataset.sample_shape,
    };
    let path = format!("samples/part-{}.parquet", short(samples_key));
    manifest.files.push(writer::write_samples(root, &path, samples_key, &rows)?);
    let mut split_counts = BTreeMap::new();
    for split in &prepared.splits {
        *split_counts.entry(split.as_str().to_string()).or_insert(0) += 1;
    }
    manifest.dataset = DatasetInfo {
        samples_key: samples_key.into(),
        sample_shape: dataset.sample_shape.clone(),
        class_names: dataset.class_names.clone(),
        channel_names: dataset.channel_names.clone(),
        split_counts,
        split_rule: prepared.split_rule.clone(),
        normalization: prepared.normalization.clone(),
        files: folder_inputs(&plan.file.source)?,
    };
    let count = prepared.splits.len();
    Ok(SampleTable {
        splits: prepared.splits,
        labels: prepared.dataset.labels,
        groups: prepared.dataset.groups.map_or_else(|| vec![None; count], |g| g.into_iter().map(Some).collect()),
        sample_len: prepared.dataset.sample_shape.iter().product(),
        inputs: prepared.dataset.inputs,
        sample_shape: prepared.dataset.sample_shape,
    })
}

fn assign_splits(dataset: &Dataset, config: &SplitConfig, seed: u64) -> Result<(Vec<Split>, String), BuildError> {
    let n = dataset.len();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(purpose_seed(seed, "split"));
    let (mut splits, mut rule) = if let Some(given) = &dataset.given_split {
        let splits = given
            .iter()
            .map(|g| match g {
                GivenSplit::Train => Split::Train,
                GivenSplit::Val => Split::Val,
                GivenSplit::Test => Split::Test,
            })
            .collect();
        (splits, "test: the source's own test files".to_string())
    } else if !config.test_groups.is_empty() {
        let groups = dataset
            .groups
            .as_ref()
            .ok_or_else(|| BuildError::Split("split.test_groups is set but the source has no groups".into()))?;
        let present: BTreeSet<i64> = groups.iter().copied().collect();
        if let Some(missing) = config.test_groups.iter().find(|g| !present.contains(g)) {
            return Err(BuildError::Split(format!("split.test_groups: group {missing} does not occur in the source")));
        }
        let splits =
            groups.iter().map(|g| if config.test_groups.contains(g) { Split::Test } else { Split::Train }).collect();
        (splits, format!("test: groups {:?}", config.test_groups))
    } else {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let test_count = (config.test_fraction * n as f64).round() as usize;
        let mut splits = vec![Split::Train; n];
        for &i in &order[..test_count] {
            splits[i] = Split::Test;
        }
        (splits, format!("test: {test_count} samples drawn at random ({})", config.test_fraction))
    };
    let given_val = dataset.given_split.iter().flatten().any(|g| *g == GivenSplit::Val);
    if given_val {
        rule.push_str("; val: the source's own val files");
    } else if config.val_fraction > 0.0 {
        if let Some(groups) = &dataset.groups {
            let mut train_groups: Vec<i64> = (0..n)
                .filter(|&i| splits[i] == Split::Train)
                .map(|i| groups[i])
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            train_groups.shuffle(&mut rng);
            let count = ((config.val_fraction * train_groups.len() as f64).round() as usize)
                .clamp(1, train_groups.len().saturating_sub(1).max(1));
            let mut val_groups: Vec<i64> = train_groups[..count.min(train_groups.len())].to_vec();
            val_groups.sort_unstable();
            for i in 0..n {
                if splits[i] == Split::Train && val_groups.contains(&groups[i]) {
                    splits[i] = Split::Val;
                }
            }
            rule.push_str(&format!("; val: groups {val_groups:?}"));
        } else {
            let mut train: Vec<usize> = (0..n).filter(|&i| splits[i] == Split::Train).collect();
            train.shuffle(&mut rng);
            let count = (config.val_fraction * train.len() as f64).round() as usize;
            for &i in &train[..count] {
                splits[i] = Split::Val;
            }
            rule.push_str(&format!("; val: {count} training samples drawn at random ({})", config.val_fraction));
        }
    }
    Ok((splits, rule))
}

/// The training split's per-channel mean and standard deviation, summed sample by sample in id
/// order (the same sums whether the inputs are held or decoded on use).
fn normalization(
    dataset: &Dataset,
    splits: &[Split],
    mode: NormalizeMode,
) -> Result<Normalization, source::SourceError> {
    let channels = dataset.sample_shape[0];
    if mode == NormalizeMode::None {
        return Ok(Normalization { mode: "none".into(), mean: vec![0.0; channels], std: vec![1.0; channels] });
    }
    let per_channel = dataset.sample_len() / channels;
    let mut sum = vec![0.0f64; channels];
    let mut sum_sq = vec![0.0f64; channels];
    let mut count = 0usize;
    let train: Vec<usize> = (0..dataset.len()).filter(|&i| splits[i] == Split::Train).collect();
    dataset.inputs.for_each(&train, dataset.sample_len(), |sample| {
        for (c, chunk) in sample.chunks(per_channel).enumerate() {
            for &v in chunk {
                sum[c] += v as f64;
                sum_sq[c] += (v as f64) * (v as f64);
            }
        }
        count += per_channel;
    })?;
    let mean: Vec<f64> = sum.iter().map(|s| s / count as f64).collect();
    let std: Vec<f32> = sum_sq
        .iter()
        .zip(&mean)
        .map(|(sq, m)| {
            let var = (sq / count as f64 - m * m).max(0.0);
            if var.sqrt() < 1e-6 {
                1.0
            } else {
                var.sqrt() as f32
            }
        })
        .collect();
    Ok(Normalization { mode: "per_channel".into(), mean: mean.iter().map(|&m| m as f32).collect(), std })
}
