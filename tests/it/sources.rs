//! The real datasets read as documented (files fetched by `make test` into data/).

use kdstore_core::source::{self, GivenSplit};

use crate::common::repo;

#[test]
fn hapt_gives_10411_windows_and_the_uci_test_subjects_hold_29_percent() {
    let dataset = source::hapt::read(&repo().join("data/hapt/HAPT.pkl.gz"), 128, 64).unwrap();
    assert_eq!(dataset.len(), 10_411);
    assert_eq!(dataset.sample_shape, vec![6, 128]);
    assert_eq!(dataset.class_names.len(), 6);
    let groups = dataset.groups.as_ref().unwrap();
    assert_eq!(*groups.iter().min().unwrap(), 1);
    assert_eq!(*groups.iter().max().unwrap(), 30);
    let test = groups.iter().filter(|g| [2, 4, 9, 10, 12, 13, 18, 20, 24].contains(*g)).count();
    assert_eq!(test, 2_996);
    let mut per_class = [0usize; 6];
    for &label in &dataset.labels {
        per_class[label as usize] += 1;
    }
    assert_eq!(per_class, [1722, 1544, 1407, 1801, 1979, 1958]);
    // Gravity: the accelerometer (in g) has a mean magnitude near 1 on a resting subject.
    let laying = dataset.labels.iter().position(|&l| l == 5).unwrap();
    let sample = dataset.inputs.sample(laying, dataset.sample_len()).unwrap();
    let norm =
        (0..128).map(|t| (0..3).map(|c| (sample[c * 128 + t] as f64).powi(2)).sum::<f64>().sqrt()).sum::<f64>() / 128.0;
    assert!((norm - 1.0).abs() < 0.1, "accelerometer magnitude {norm}");
}

#[test]
fn fashion_mnist_has_its_given_split_and_balanced_classes() {
    let dir = repo().join("data/fashion-mnist");
    let dataset = source::idx::read_train_test(
        &dir.join("train-images-idx3-ubyte.gz"),
        &dir.join("train-labels-idx1-ubyte.gz"),
        &dir.join("t10k-images-idx3-ubyte.gz"),
        &dir.join("t10k-labels-idx1-ubyte.gz"),
        None,
    )
    .unwrap();
    assert_eq!(dataset.len(), 70_000);
    assert_eq!(dataset.sample_shape, vec![1, 28, 28]);
    let split = dataset.given_split.as_ref().unwrap();
    assert_eq!(split.iter().filter(|s| **s == GivenSplit::Test).count(), 10_000);
    let train_zero = (0..60_000).filter(|&i| dataset.labels[i] == 0).count();
    assert_eq!(train_zero, 6_000);
    let source::inputs::Inputs::Held(values) = &dataset.inputs else { panic!("an IDX source holds its inputs") };
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn basicmotions_reads_80_series_of_6_by_100() {
    let dir = repo().join("data/basicmotions");
    let dataset =
        source::ts::read_train_test(&dir.join("BasicMotions_TRAIN.ts"), &dir.join("BasicMotions_TEST.ts")).unwrap();
    assert_eq!(dataset.len(), 80);
    assert_eq!(dataset.sample_shape, vec![6, 100]);
    assert_eq!(dataset.class_names, vec!["Standing", "Running", "Walking", "Badminton"]);
}
