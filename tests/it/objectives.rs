//! `kdstore train` with the objectives that learn from the student itself or weigh its samples:
//! teacher-free KD, progressive self-KD, per-sample weights (self-paced and stored), BD-KD with a
//! co-trained teacher, per-view curricula; their resumption and their errors.

use crate::common::*;

/// `kdstore train` on the store with `extra` (6 epochs unless it says otherwise).
fn train_args(store: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let epochs: &[&str] = if extra.contains(&"--epochs") { &[] } else { &["--epochs", "6"] };
    let common = ["train", path_str(store), "--batch-size", "8", "--seed", "3"];
    common.iter().chain(epochs).chain(extra).chain(&["--out", path_str(out)]).map(|s| s.to_string()).collect()
}

fn strings(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn teacher_free_and_self_distilling_students_learn() {
    let store = basicmotions_store();
    let dir = tempdir();
    for (name, extra) in [
        ("tfkd", vec!["--loss", "tfkd"]),
        ("pskd", vec!["--loss", "pskd"]),
        ("tfkd-self", vec!["--loss", "tfkd-self", "--set", "multiplier=1"]),
        ("bdkd", vec!["--loss", "bdkd", "--set", "scale=0"]),
    ] {
        let out = dir.path().join(name);
        run_ok(&strings(&train_args(store, &out, &extra)));
        let r = results(&out);
        assert_eq!(r["config"]["losses"][0]["loss"], name);
        let accuracy = r["test_accuracy"].as_f64().unwrap();
        assert!(accuracy > 0.4, "{name}: better than chance (0.25): {accuracy}");
    }
}

#[test]
fn self_distillation_weights_and_pacing_resume_bit_exactly() {
    let store = basicmotions_store();
    let dir = tempdir();
    // pskd's predictions, the self-paced λ and the curriculum's position are all part of the state.
    let extra = [
        "--loss",
        "pskd",
        "--loss",
        "kd=0.5",
        "--sample-weight",
        "spl",
        "--set",
        "spl.lambda_0=0.5",
        "--set",
        "spl.alpha=0.01",
        "--curriculum",
        "teacher_loss",
        "--curriculum-per-view",
        "--pacing",
        "root",
        "--epochs",
        "30",
    ];
    let straight = dir.path().join("straight");
    run_ok(&strings(&train_args(store, &straight, &extra)));
    let r = results(&straight);
    assert_eq!(
        r["config"]["sample_weight"],
        serde_json::json!({"kind": "self_paced", "variant": "log", "lambda_0": 0.5, "alpha": 0.01})
    );
    assert_eq!(r["config"]["curriculum"]["per_view"], true);
    let out = dir.path().join("interrupted");
    interrupt_at_first_checkpoint(&train_args(store, &out, &extra), &out);
    run_ok(&[strings(&train_args(store, &out, &extra)), vec!["--resume"]].concat());
    assert_same_training(&straight, &out);
    // The memory and the weights change the run.
    let plain = dir.path().join("plain");
    run_ok(&strings(&train_args(store, &plain, &["--loss", "kd=0.5", "--epochs", "30"])));
    assert_ne!(results(&plain)["epochs"][3]["train_loss"], r["epochs"][3]["train_loss"]);
}

#[test]
fn stored_weights_and_a_bdkd_co_trained_teacher() {
    let store = basicmotions_store();
    let dir = tempdir();
    let weighted = dir.path().join("weighted");
    run_ok(&strings(&train_args(store, &weighted, &["--loss", "kd", "--sample-weight", "p_label"])));
    let unweighted = dir.path().join("unweighted");
    run_ok(&strings(&train_args(store, &unweighted, &["--loss", "kd"])));
    // Each view's loss is scaled by its teacher probability of the label (< 1): the loss is smaller.
    let first = |out: &std::path::Path| results(out)["epochs"][0]["train_loss"].as_f64().unwrap();
    assert!(first(&weighted) < first(&unweighted), "{} vs {}", first(&weighted), first(&unweighted));

    let co = dir.path().join("co");
    let output = run_ok(&strings(&train_args(store, &co, &["--co-train", "--loss", "bdkd", "--epochs", "10"])));
    assert!(stderr(&output).contains("(co-trained teacher "), "{}", stderr(&output));
    assert!(results(&co)["co_trained_teacher"]["accuracy"].as_f64().unwrap() > 0.4);
}

#[test]
fn bad_objective_settings_are_refused_before_training() {
    let store = basicmotions_store();
    let dir = tempdir();
    let out = dir.path().join("refused");
    for (extra, expected) in [
        (vec!["--loss", "dist", "--sample-weight", "spl"], "--loss dist is not a mean of per-sample terms"),
        (vec!["--set", "spl.lambda_0=2"], "self-paced settings go with --sample-weight spl"),
        (vec!["--sample-weight", "spl-soft", "--set", "spl.lambda_0=-1"], "spl.lambda_0 must be > 0"),
        (vec!["--sample-weight", "spl", "--set", "spl.lamda=1"], "unknown key lamda"),
        (vec!["--sample-weight", "p_label - 2"], "has a weight of"),
        (vec!["--sample-weight", "recipe"], "--sample-weight recipe"),
        (vec!["--loss", "tfkd", "--set", "alpha=1.5"], "alpha must be in [0, 1]"),
        (vec!["--loss", "pskd", "--set", "alpha=-0.1"], "alpha must be in [0, 1]"),
        (vec!["--loss", "bdkd", "--set", "scale=-1"], "scale must be >= 0"),
        (vec!["--curriculum", "recipe"], "--curriculum recipe"),
        (vec!["--curriculum-per-view"], "--curriculum"),
    ] {
        let output = run(&strings(&train_args(store, &out, &extra)));
        assert_eq!(output.status.code(), Some(1), "{extra:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{extra:?}: {}", stderr(&output));
        assert!(!out.join("checkpoints").exists(), "{extra:?}: refused before training");
    }
}

#[test]
fn a_transformer_student_aligns_subjects_with_mmd() {
    let dir = tempdir();
    let pipeline = synthetic_pipeline(dir.path(), 240, "");
    run_ok(&["build", path_str(&pipeline)]);
    let store = dir.path().join("store");
    let transformer =
        ["--student", "transformer", "--width", "16", "--depth", "1", "--heads", "2", "--patch", "4", "--lr", "0.003"];
    let aligned = dir.path().join("aligned");
    let extra = [&transformer[..], &["--loss", "ce", "--loss", "mmd=0.5", "--groups-per-batch", "3", "--epochs", "20"]]
        .concat();
    run_ok(&strings(&train_args(&store, &aligned, &extra)));
    let r = results(&aligned);
    assert_eq!(r["config"]["groups_per_batch"], 3);
    assert_eq!(r["config"]["patch"], 4);
    assert!(r["test_accuracy"].as_f64().unwrap() > 0.5, "{}", r["test_accuracy"]);
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(aligned.join("student.json")).unwrap()).unwrap();
    assert_eq!(
        (spec["kind"].as_str(), spec["heads"].as_i64(), spec["patch"].as_i64()),
        (Some("transformer"), Some(2), Some(4))
    );
    // mmd defaults to 4 groups per batch; one group per batch, or a store without groups, is refused.
    let default = dir.path().join("default");
    run_ok(&strings(&train_args(&store, &default, &[&transformer[..], &["--loss", "mmd", "--loss", "ce"]].concat())));
    assert_eq!(results(&default)["config"]["groups_per_batch"], 4);
    for (store, extra, expected) in [
        (
            store.as_path(),
            vec!["--loss", "mmd", "--groups-per-batch", "1"],
            "batches of one group have nothing to align",
        ),
        (basicmotions_store(), vec!["--loss", "kd", "--loss", "mmd"], "has no group"),
        (
            store.as_path(),
            vec!["--student", "transformer", "--width", "6", "--heads", "4"],
            "not a multiple of its 4 heads",
        ),
        (store.as_path(), vec!["--student", "transformer", "--patch", "5"], "patch 5 does not divide"),
        (store.as_path(), vec!["--patch", "2"], "heads and patch are transformer settings"),
    ] {
        let out = dir.path().join("refused");
        let output = run(&strings(&train_args(store, &out, &extra)));
        assert_eq!(output.status.code(), Some(1), "{extra:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{extra:?}: {}", stderr(&output));
    }
}

#[test]
fn amal_learns_per_sample_weights_and_resumes_bit_exactly() {
    let store = basicmotions_store();
    let dir = tempdir();
    let extra = [
        "--loss",
        "kd",
        "--ensemble",
        "amal",
        "--set",
        "amal.select_every=2",
        "--set",
        "amal.grad_fit=2",
        "--set",
        "amal.val_batch=4",
        "--epochs",
        "8",
    ];
    let straight = dir.path().join("straight");
    run_ok(&strings(&train_args(store, &straight, &extra)));
    let r = results(&straight);
    assert_eq!(r["config"]["ensemble"]["kind"], "amal");
    assert_eq!(r["config"]["ensemble"]["select_every"], 2);
    let weights = r["amal_weights"].as_array().unwrap();
    assert_eq!(weights.len(), 2, "CE and the one teacher's KD: {weights:?}");
    let (low, high) = (weights[1]["min"].as_f64().unwrap(), weights[1]["max"].as_f64().unwrap());
    assert!(low < high && low >= 1e-7 && high <= 2.0, "the KD weights moved apart within the clamp: {weights:?}");
    let out = dir.path().join("interrupted");
    interrupt_at_first_checkpoint(&train_args(store, &out, &extra), &out);
    run_ok(&[strings(&train_args(store, &out, &extra)), vec!["--resume"]].concat());
    assert_same_training(&straight, &out);
    // With weights that never move (the first update would come after the last epoch), AMAL is kd.
    let frozen = dir.path().join("frozen");
    let never = ["--loss", "kd", "--ensemble", "amal", "--set", "amal.select_every=100", "--epochs", "8"];
    run_ok(&strings(&train_args(store, &frozen, &never)));
    let kd = dir.path().join("kd");
    run_ok(&strings(&train_args(store, &kd, &["--loss", "kd", "--epochs", "8"])));
    let losses = |out: &std::path::Path| -> Vec<f64> {
        results(out)["epochs"].as_array().unwrap().iter().map(|e| e["train_loss"].as_f64().unwrap()).collect()
    };
    for (a, b) in losses(&frozen).iter().zip(losses(&kd)) {
        assert!((a - b).abs() < 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
    assert_ne!(losses(&straight)[7], losses(&kd)[7], "the learnt weights change the run");
    for (extra, expected) in [
        (vec!["--loss", "dist", "--ensemble", "amal"], "use --loss kd, not dist"),
        (vec!["--ensemble", "amal", "--set", "amal.steps=3"], "unknown key steps"),
        (vec!["--set", "amal.grad_fit=2"], "AMAL's settings go with --ensemble amal"),
    ] {
        let out = dir.path().join("refused");
        let output = run(&strings(&train_args(store, &out, &extra)));
        assert_eq!(output.status.code(), Some(1), "{extra:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{extra:?}: {}", stderr(&output));
    }
}
