//! `kdstore train`: students from the store, with and without distillation, and view selection.

use crate::common::*;

fn results(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

#[test]
fn students_train_from_the_store_and_report_their_results() {
    let store = basicmotions_store();
    let dir = tempdir();
    let kd = dir.path().join("kd");
    run_ok(&[
        "train",
        path_str(store),
        "--loss",
        "kd",
        "--epochs",
        "15",
        "--batch-size",
        "16",
        "--out",
        path_str(&kd),
        "--verify-replay",
    ]);
    let r = results(&kd);
    assert_eq!(r["epochs"].as_array().unwrap().len(), 15);
    assert_eq!(r["config"]["kd_weight"], 0.9);
    assert_eq!(r["replayed_and_verified"], r["train_views"], "--verify-replay checks every view");
    let accuracy = r["test_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.5, "a KD student should beat chance (0.25) clearly on BasicMotions: {accuracy}");
    assert!(kd.join("student.safetensors").is_file() && kd.join("student.json").is_file());

    let ce = dir.path().join("ce");
    run_ok(&["train", path_str(store), "--loss", "ce", "--epochs", "2", "--out", path_str(&ce)]);
    let r = results(&ce);
    assert_eq!(r["config"]["kd_weight"], 0.0);
    assert_eq!(r["config"]["ce_weight"], 1.0);
}

#[test]
fn where_selects_the_training_views() {
    let store = basicmotions_store();
    let dir = tempdir();
    let out = dir.path().join("identity");
    run_ok(&["train", path_str(store), "--where", "recipe = 'identity'", "--epochs", "1", "--out", path_str(&out)]);
    let r = results(&out);
    let train = manifest(store)["dataset"]["split_counts"]["train"].as_u64().unwrap();
    assert_eq!(r["train_views"].as_u64().unwrap(), train);
    assert_eq!(r["config"]["filter"], "recipe = 'identity'");

    let bad =
        run(&["train", path_str(store), "--where", "no_such_column > 1", "--epochs", "1", "--out", path_str(&out)]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("no_such_column"), "{}", stderr(&bad));

    let none =
        run(&["train", path_str(store), "--where", "recipe = 'nothing'", "--epochs", "1", "--out", path_str(&out)]);
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains("no training views"), "{}", stderr(&none));
}

#[test]
fn cuda_without_a_gpu_is_a_clear_error() {
    if tch::Cuda::is_available() {
        return;
    }
    let store = basicmotions_store();
    let dir = tempdir();
    let output = run(&["train", path_str(store), "--device", "cuda", "--epochs", "1", "--out", path_str(dir.path())]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no CUDA device"), "{}", stderr(&output));
}
