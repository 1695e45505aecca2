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

/// The synthetic pipeline with a chain: `small` (with a checkpoint) → `ta` → `ta2`, and subsets.
fn chain_pipeline(dir: &Path, n: usize, ta_epochs: usize) -> PathBuf {
    let extra = format!(
        r#"checkpoints = [1]

[[teacher]]
kind = "builtin"
name = "ta"
arch = "cnn1d"
width = 6
depth = 2
epochs = {ta_epochs}
batch_size = 32
distill_from = "small"
settings = {{ temperature = 2.0 }}

[[teacher]]
kind = "builtin"
name = "ta2"
arch = "mlp"
width = 8
depth = 1
epochs = 2
batch_size = 32
distill_from = "ta"
augment = true
optimizer = "sgd"
schedule = "constant"
learning_rate = 0.01

[[teacher]]
kind = "builtin"
name = "sub"
arch = "mlp"
width = 8
depth = 1
epochs = 2
batch_size = 32
subsets = {{ count = 2, fraction = 0.5 }}
input_channels = [0, 2]
"#
    );
    synthetic_pipeline(dir, n, &extra)
}

#[test]
fn a_chain_of_teachers_builds_in_order_and_a_killed_build_resumes_mid_training() {
    let dir = tempdir();
    let pipeline = chain_pipeline(dir.path(), 3000, 6);
    let reference = dir.path().join("reference");
    let output = run_ok(&["build", path_str(&pipeline), "--store", path_str(&reference)]);
    let steps = stderr(&output);
    // The report's lines (not the progress bars' "train teacher …" lines).
    let position =
        |needle: &str| steps.find(&format!("\n  {needle}")).unwrap_or_else(|| panic!("no {needle:?} in\n{steps}"));
    assert!(position("teacher small@e1") < position("teacher small:"));
    assert!(
        position("logits small on mix") < position("teacher ta:"),
        "ta learns from small's stored logits:\n{steps}"
    );
    assert!(position("logits ta on mix") < position("teacher ta2:"));
    let teachers = manifest(&reference)["teachers"].clone();
    let names: Vec<&str> = teachers.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["small@e1", "small", "ta", "ta2", "sub#0", "sub#1"]);
    let by_name = |name: &str| teachers.as_array().unwrap().iter().find(|t| t["name"] == name).unwrap().clone();
    assert_eq!(by_name("ta")["distilled_from"], "small");
    let ta2 = &by_name("ta2")["training"];
    assert_eq!(ta2["data"], "the train split, one view of any recipe per sample per epoch");
    assert_eq!(ta2["config"]["optimizer"]["kind"], "sgd");
    assert_eq!(ta2["config"]["teachers"], serde_json::json!(["ta"]));
    assert_eq!(by_name("small")["training"]["data"], "the train split, identity views");
    assert_eq!(by_name("small@e1")["epoch"], 1);
    assert_eq!(by_name("sub#1")["subset"], 1);
    assert_eq!(by_name("sub#1")["input_channels"], serde_json::json!([0, 2]));
    assert_eq!(by_name("sub#1")["arch_spec"]["input_shape"], serde_json::json!([2, 32]));
    assert!(by_name("small@e1")["model_sha256"] != by_name("small")["model_sha256"]);
    // Each subset teacher learnt from its own half of the training samples, recorded in SQL.
    let subsets = run_ok(&[
        "query",
        path_str(&reference),
        "SELECT teacher, COUNT(*) AS n FROM subsets GROUP BY teacher ORDER BY teacher",
        "--format",
        "csv",
    ]);
    let train = run_ok(&[
        "query",
        path_str(&reference),
        "SELECT COUNT(*) AS n FROM samples WHERE split = 'train'",
        "--format",
        "csv",
    ]);
    let train: usize = stdout(&train).lines().nth(1).unwrap().parse().unwrap();
    let half = (train as f64 * 0.5).round() as usize;
    assert_eq!(stdout(&subsets), format!("teacher,n\nsub#0,{half}\nsub#1,{half}\n"));
    let info = stdout(&run_ok(&["info", path_str(&reference)]));
    for line in ["teacher small", "labels, epoch 1", "labels, subset 1 (", "channels 0,2"] {
        assert!(info.contains(line), "kdstore info lacks {line:?}:\n{info}");
    }

    // Killed while `ta` trains (after one of its epochs), the build resumes from that epoch.
    let interrupted = dir.path().join("interrupted");
    let mut child =
        kdstore().args(["build", path_str(&pipeline), "--store", path_str(&interrupted), "--quiet"]).spawn().unwrap();
    let started = std::time::Instant::now();
    loop {
        let training = interrupted.join("_training");
        let checkpointed = std::fs::read_dir(&training)
            .map(|d| {
                d.flatten().any(|e| {
                    e.file_name().to_string_lossy().starts_with("ta-") && e.path().join("checkpoints").exists()
                })
            })
            .unwrap_or(false);
        if checkpointed || started.elapsed() > std::time::Duration::from_secs(180) {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            panic!("the build finished before ta's training could be interrupted; give ta more epochs");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(manifest(&interrupted)["teachers"].as_array().unwrap().iter().all(|t| t["name"] != "ta"));
    let resumed = run_ok(&["build", path_str(&pipeline), "--store", path_str(&interrupted)]);
    assert!(!stderr(&resumed).contains("teacher small:"), "small was committed before the kill");
    assert_eq!(content(&interrupted), content(&reference));
    assert_eq!(manifest(&interrupted)["teachers"], manifest(&reference)["teachers"]);
    assert!(!interrupted.join("_training").exists(), "the finished build cleans its training folder");
}

#[test]
fn adding_an_assistant_trains_and_labels_only_the_assistant() {
    let dir = tempdir();
    let without = synthetic_pipeline(dir.path(), 600, "");
    let store = dir.path().join("store");
    run_ok(&["build", path_str(&without), "--store", path_str(&store)]);
    let before = content(&store);
    let with = dir.path().join("with.toml");
    let text = std::fs::read_to_string(&without).unwrap()
        + "\n[[teacher]]\nkind = \"builtin\"\nname = \"ta\"\narch = \"mlp\"\nwidth = 8\ndepth = 1\nepochs = 2\ndistill_from = \"small\"\n";
    std::fs::write(&with, text).unwrap();
    let output = run_ok(&["build", path_str(&with), "--store", path_str(&store)]);
    let steps: Vec<String> = stderr(&output)
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.starts_with("pipeline changed"))
        .collect();
    assert!(
        !steps.is_empty() && steps.iter().all(|s| s.starts_with("teacher ta:") || s.starts_with("logits ta ")),
        "{steps:?}"
    );
    let after = content(&store);
    assert!(before.iter().all(|file| after.contains(file)), "every part of the store before is kept as it was");
}

#[test]
fn validate_reports_every_problem_of_the_teachers() {
    let dir = tempdir();
    let extra = r#"
[[teacher]]
kind = "builtin"
name = "a"
arch = "cnn1d"
distill_from = "b"
input_channels = [0, 6]

[[teacher]]
kind = "builtin"
name = "b"
arch = "cnn1d"
epochs = 4
distill_from = "a"
checkpoints = [4]

[[teacher]]
kind = "builtin"
name = "c"
arch = "cnn1d"
distill_from = "nobody"
loss = ["kd"]
subsets = { count = 1, fraction = 1.5 }
"#;
    let pipeline = pipeline_copy("hapt.toml", dir.path(), |text| text + extra);
    let output = run(&["validate", path_str(&pipeline)]);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    for expected in [
        "teacher 2 ('a'): input_channels names channel 6, outside the input's 6 channels (0-5)",
        "teacher 3 ('b'): checkpoints: epoch 4 is not before the last epoch (4)",
        "teacher 4 ('c'): subsets.count must be >= 2, got 1",
        "teacher 4 ('c'): subsets.fraction must be in (0, 1], got 1.5",
        "distill_from forms a cycle: a → b → a",
    ] {
        assert!(error.contains(expected), "missing {expected:?} in\n{error}");
    }
    let dangling = pipeline_copy("hapt.toml", dir.path(), |text| {
        text + "\n[[teacher]]\nkind = \"builtin\"\nname = \"c\"\narch = \"cnn1d\"\ndistill_from = \"nobody\"\n"
    });
    let error = stderr(&run(&["validate", path_str(&dangling)]));
    assert!(
        error.contains("teacher 'c': distill_from = 'nobody' names no teacher of this pipeline (it has: cnn1d, c)"),
        "{error}"
    );
    // An .npy source's channels are known once it is read: the build refuses before anything trains.
    let npy = synthetic_pipeline(dir.path(), 200, "input_channels = [1, 3]\n");
    run_ok(&["validate", path_str(&npy)]);
    let store = dir.path().join("npy-store");
    let output = run(&["build", path_str(&npy), "--store", path_str(&store)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .contains("teacher 1 ('small'): input_channels names channel 3, outside the input's 3 channels (0-2)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(manifest(&store)["teachers"], serde_json::json!([]));
}

#[test]
fn a_student_on_some_channels_learns_from_a_teacher_on_all() {
    let store = three_teacher_store();
    let dir = tempdir();
    let out = dir.path().join("acc");
    let r = train(&out, &["--teacher", "cnn1d", "--student-channels", "0,1,2"]);
    assert_eq!(r["config"]["student_channels"], serde_json::json!([0, 1, 2]));
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("student.json")).unwrap()).unwrap();
    assert_eq!(spec["input_shape"], serde_json::json!([3, 100]));
    let online = train(&dir.path().join("online"), &["--teacher", "cnn1d", "--student-channels", "0,1,2", "--online"]);
    for (a, b) in train_losses(&r).iter().zip(train_losses(&online)) {
        assert!((a - b).abs() <= 1e-5 * a.abs(), "the online teacher sees all six channels too: {a} vs {b}");
    }
    let output =
        run(&["train", path_str(store), "--student-channels", "1,6", "--out", path_str(&dir.path().join("bad"))]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output)
            .contains("--student-channels: input_channels names channel 6, outside the input's 6 channels (0-5)"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_random_teacher_can_be_one_that_did_not_see_the_sample() {
    let dir = tempdir();
    let pipeline = chain_pipeline(dir.path(), 600, 2);
    let store = dir.path().join("store");
    run_ok(&["build", path_str(&pipeline), "--store", path_str(&store)]);
    let out = dir.path().join("unseen");
    run_ok(&[
        "train",
        path_str(&store),
        "--teacher",
        "sub#*",
        "--ensemble",
        "random",
        "--random-unseen",
        "--epochs",
        "2",
        "--out",
        path_str(&out),
    ]);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["config"]["ensemble"], serde_json::json!({"kind": "random", "unseen": true}));
    let output = run(&[
        "train",
        path_str(&store),
        "--teacher",
        "small",
        "--teacher",
        "ta",
        "--ensemble",
        "random",
        "--random-unseen",
        "--out",
        path_str(&dir.path().join("none")),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("none of the teachers (small, ta) trained on a subset"), "{}", stderr(&output));
}
