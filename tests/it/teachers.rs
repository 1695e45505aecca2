//! Several teachers in one store, and students that learn from them (`--teacher A --teacher B`,
//! globs, `--ensemble`): the ensembles train and report what they resolved, the stored logits
//! and the teachers run online give the same training, and what cannot work is refused by name.

use std::path::{Path, PathBuf};

use crate::common::*;

/// BasicMotions with three built-in teachers of very different sizes, built once per test run.
fn three_teacher_store() -> &'static Path {
    static STORE: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, path) = STORE.get_or_init(|| {
        let dir = tempdir();
        let extra = r#"
[[teacher]]
kind = "builtin"
name = "mlp"
arch = "mlp"
width = 64
depth = 2
epochs = 40
batch_size = 8
learning_rate = 0.003

[[teacher]]
kind = "builtin"
name = "tiny"
arch = "cnn1d"
width = 4
depth = 1
epochs = 40
batch_size = 8
learning_rate = 0.003
"#;
        let pipeline = pipeline_copy("basicmotions.toml", dir.path(), |text| text + extra);
        let store = dir.path().join("three");
        run_ok(&["build", path_str(&pipeline), "--store", path_str(&store)]);
        (dir, store)
    });
    path
}

fn train(out: &Path, extra: &[&str]) -> serde_json::Value {
    let store = three_teacher_store();
    let common = ["train", path_str(store), "--epochs", "3", "--batch-size", "16", "--seed", "2"];
    run_ok(&[&common[..], extra, &["--out", path_str(out)]].concat());
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

fn train_losses(r: &serde_json::Value) -> Vec<f64> {
    r["epochs"].as_array().unwrap().iter().map(|e| e["train_loss"].as_f64().unwrap()).collect()
}

#[test]
fn every_ensemble_trains_and_reports_the_teachers_it_combined() {
    let dir = tempdir();
    for ensemble in ["mean", "camkd", "ebkd", "de", "random", "curriculum"] {
        let r = train(&dir.path().join(ensemble), &["--teacher", "*", "--ensemble", ensemble]);
        assert_eq!(r["teachers"], serde_json::json!(["cnn1d", "mlp", "tiny"]), "{ensemble}");
        let report = &r["ensemble"];
        assert_eq!(report["kind"], ensemble);
        let ensemble_accuracy = report["test_accuracy"].as_f64().unwrap();
        assert!(ensemble_accuracy > 0.5, "{ensemble}: the teachers together beat chance (0.25): {report}");
        let agreement = r["test_agreement_with"].as_object().unwrap();
        assert_eq!(agreement.keys().collect::<Vec<_>>(), ["cnn1d", "mlp", "tiny"], "{ensemble}");
        assert!(agreement.values().all(|a| (0.0..=1.0).contains(&a.as_f64().unwrap())));
        assert!(r["epochs"][0]["val_agreement_with"].as_object().unwrap().len() == 3, "{ensemble}");
        assert!(train_losses(&r).iter().all(|l| l.is_finite()), "{ensemble}");
        match ensemble {
            "de" => {
                let de = &report["de"];
                let weights: Vec<f64> = de["weights"].as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).collect();
                assert_eq!(weights.len(), 3);
                assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{de}");
                assert!(
                    de["validation_accuracy"].as_f64().unwrap()
                        >= de["equal_weight_validation_accuracy"].as_f64().unwrap(),
                    "{de}"
                );
            }
            "curriculum" => {
                let parameters: Vec<i64> =
                    report["parameters"].as_array().unwrap().iter().map(|p| p.as_i64().unwrap()).collect();
                assert!(parameters[2] < parameters[1] && parameters[1] < parameters[0], "{parameters:?}");
                let strata = &report["curriculum"];
                assert_eq!(strata["ranked_by"], "cnn1d", "the largest teacher's difficulty ranks the views");
                let views: u64 = strata["views"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
                assert_eq!(views, r["train_views"].as_u64().unwrap());
            }
            _ => {}
        }
    }
}

#[test]
fn several_stored_teachers_train_as_the_same_teachers_run_online() {
    let dir = tempdir();
    let teachers = ["--teacher", "cnn1d", "--teacher", "tiny", "--ensemble", "mean", "--loss", "dkd"];
    let stored = train(&dir.path().join("stored"), &teachers);
    let online = train(&dir.path().join("online"), &[&teachers[..], &["--online"]].concat());
    for (a, b) in train_losses(&stored).iter().zip(train_losses(&online)) {
        assert!((a - b).abs() <= 1e-5 * a.abs(), "{a} vs {b}");
    }
    assert_eq!(stored["teachers"], serde_json::json!(["cnn1d", "tiny"]));
    // The random teacher per row comes from the step's seed: the same run twice is the same run.
    let once = train(&dir.path().join("random-1"), &["--teacher", "*", "--ensemble", "random"]);
    let again = train(&dir.path().join("random-2"), &["--teacher", "*", "--ensemble", "random"]);
    assert_eq!(train_losses(&once), train_losses(&again));
    assert_ne!(
        train_losses(&once),
        train_losses(&train(&dir.path().join("mean"), &["--teacher", "*", "--ensemble", "mean"]))
    );
}

#[test]
fn what_several_teachers_cannot_do_is_refused_by_name() {
    let store = three_teacher_store();
    let dir = tempdir();
    let out = dir.path().join("out");
    let refused = |extra: &[&str], expected: &str| {
        let common = ["train", path_str(store), "--epochs", "1", "--out", path_str(&out)];
        let output = run(&[&common[..], extra].concat());
        assert_eq!(output.status.code(), Some(1), "{extra:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{extra:?}: expected {expected:?} in\n{}", stderr(&output));
        assert!(!out.join("results.json").exists());
    };
    refused(
        &["--teacher", "cnn*", "--ensemble", "mean"],
        "--ensemble mean needs at least two teachers, and --teacher cnn* names only cnn1d",
    );
    refused(&["--teacher", "cnn1d", "--teacher", "mlp"], "say how they teach with --ensemble mean|camkd|ebkd|de");
    refused(
        &["--teacher", "cnn1d", "--teacher", "big*", "--ensemble", "mean"],
        "--teacher big*: the store has no such teacher (it has: cnn1d, mlp, tiny)",
    );
    refused(
        &["--teacher", "*", "--ensemble", "camkd", "--loss", "dist"],
        "use --ensemble mean, de, random or curriculum with dist",
    );
    refused(&["--teacher", "*", "--ensemble", "mean", "--loss", "sp"], "--loss sp reads the teacher's features");
    refused(&["--teacher", "*", "--ensemble", "mean", "--co-train"], "--co-train trains one teacher with the student");
    refused(
        &["--teacher", "*", "--ensemble", "curriculum", "--ensemble-difficulty", "no_such_column"],
        "--ensemble-difficulty no_such_column",
    );
}
