//! `kdstore train`: students from the store, with and without distillation, and view selection.

use polars::prelude::SerReader;

use crate::common::*;

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
    assert_eq!(
        r["config"]["losses"],
        serde_json::json!([{"weight": 1.0, "loss": "kd", "temperature": 4.0, "ce_weight": 0.1, "kd_weight": 0.9}])
    );
    assert_eq!(r["replayed_and_verified"], r["train_views"], "--verify-replay checks every view");
    let accuracy = r["test_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.5, "a KD student should beat chance (0.25) clearly on BasicMotions: {accuracy}");
    for file in ["student.safetensors", "last.safetensors", "student.json", "metrics.parquet"] {
        assert!(kd.join(file).is_file(), "{file}");
    }
    // Test metrics of the best-on-validation weights, against the teacher's identity-view logits.
    let best = r["best_epoch"].as_u64().unwrap() as usize;
    let best_val = r["epochs"][best - 1]["val"]["accuracy"].as_f64().unwrap();
    assert!(r["epochs"].as_array().unwrap().iter().all(|e| e["val"]["accuracy"].as_f64().unwrap() <= best_val));
    let test = &r["test"];
    assert_eq!(test["accuracy"], r["test_accuracy"]);
    for key in ["ece", "teacher_agreement"] {
        assert!((0.0..=1.0).contains(&test[key].as_f64().unwrap()), "{key}: {test}");
    }
    assert!(test["kl_to_teacher"].as_f64().unwrap() >= 0.0 && test["nll"].as_f64().unwrap() > 0.0);
    let metrics =
        polars::prelude::ParquetReader::new(std::fs::File::open(kd.join("metrics.parquet")).unwrap()).finish().unwrap();
    assert_eq!(metrics.height(), 15);
    assert_eq!(metrics.column("val_accuracy").unwrap().f64().unwrap().get(best - 1), Some(best_val));

    let ce = dir.path().join("ce");
    run_ok(&["train", path_str(store), "--loss", "ce", "--epochs", "2", "--out", path_str(&ce)]);
    let r = results(&ce);
    assert_eq!(r["config"]["losses"], serde_json::json!([{"weight": 1.0, "loss": "ce"}]));
}

#[test]
fn losses_combine_by_weight_and_feature_losses_need_embeddings() {
    let store = basicmotions_store();
    let dir = tempdir();
    let out = dir.path().join("dist");
    let args = ["--loss", "ce", "--loss", "dist=2", "--loss", "dkd=0.5", "--set", "tau=4", "--set", "dkd.warmup=2"];
    let output = run_ok(&[&["train", path_str(store), "--epochs", "3", "--out", path_str(&out)], &args[..]].concat());
    assert!(stderr(&output).contains("with ce+dist=2+dkd=0.5"), "{}", stderr(&output));
    let losses = &results(&out)["config"]["losses"];
    assert_eq!(losses[1], serde_json::json!({"weight": 2.0, "loss": "dist", "beta": 1.0, "gamma": 1.0, "tau": 4.0}));
    assert_eq!(losses[2]["warmup"], 2.0);
    let output = run(&["train", path_str(store), "--loss", "sp", "--epochs", "1", "--out", path_str(&out)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("need the teacher's penultimate features, and the store holds none"),
        "{}",
        stderr(&output)
    );
    let output = run(&["train", path_str(store), "--loss", "kd", "--set", "tau=2", "--out", path_str(&out)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no selected loss has the key tau"), "{}", stderr(&output));
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
    if std::path::Path::new("/dev/nvidiactl").exists() {
        return; // a machine with an NVIDIA driver may well have a CUDA device
    }
    let store = basicmotions_store();
    let dir = tempdir();
    let output = run(&["train", path_str(store), "--device", "cuda", "--epochs", "1", "--out", path_str(dir.path())]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no CUDA device"), "{}", stderr(&output));
}

#[test]
fn images_from_npy_go_through_a_cnn2d_teacher_and_student() {
    // 240 grey 8 × 8 images whose class (0, 1, 2) is which third of the image is bright.
    let dir = tempdir();
    let n = 240;
    let mut inputs = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 3) as i64;
        for r in 0..8 {
            for c in 0..8 {
                let bright = (c / 3) as i64 == class;
                inputs.push(if bright { 0.8 } else { 0.1 } + ((i * 7 + r * 3 + c) % 5) as f32 * 0.02);
            }
        }
        labels.push(class);
    }
    let (x, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    kdstore_core::source::npy::write_f32(&x, &[n, 8, 8], &inputs).unwrap();
    kdstore_core::source::npy::write_i64(&y, &[n], &labels).unwrap();
    let pipeline = dir.path().join("images.toml");
    std::fs::write(
        &pipeline,
        format!(
            "version = 1\nname = \"images\"\nseed = 3\nstore = \"{}\"\n\n[source]\nkind = \"npy\"\ninputs = \"{}\"\nlabels = \"{}\"\nlayout = \"image\"\n\n\
             [[recipe]]\nname = \"mix\"\nops = [{{ op = \"mixup\" }}]\n\n\
             [[teacher]]\nkind = \"builtin\"\nname = \"cnn\"\narch = \"cnn2d\"\nwidth = 8\ndepth = 2\nepochs = 30\nbatch_size = 16\nlogits_dtype = \"f16\"\n",
            path_str(&dir.path().join("store")),
            path_str(&x),
            path_str(&y)
        ),
    )
    .unwrap();
    run_ok(&["build", path_str(&pipeline)]);
    let store = dir.path().join("store");
    let manifest = manifest(&store);
    assert_eq!(manifest["dataset"]["sample_shape"], serde_json::json!([1, 8, 8]));
    assert!(manifest["teachers"][0]["accuracy"]["test"].as_f64().unwrap() > 0.5, "{}", manifest["teachers"]);
    let out = dir.path().join("student");
    run_ok(&[
        "train",
        path_str(&store),
        "--student",
        "cnn2d",
        "--width",
        "4",
        "--epochs",
        "30",
        "--batch-size",
        "16",
        "--out",
        path_str(&out),
        "--verify-replay",
    ]);
    let r = results(&out);
    assert_eq!(r["config"]["student"], "cnn2d");
    assert_eq!(r["replayed_and_verified"], r["train_views"]);
    assert!(r["test_accuracy"].as_f64().unwrap() > 0.5, "an easy image task beats chance (1/3): {r}");
}

#[test]
fn online_teacher_and_preloaded_views_give_the_same_training() {
    let store = basicmotions_store();
    let dir = tempdir();
    let train = |mode: &[&str], name: &str| {
        let out = dir.path().join(name);
        let common = ["train", path_str(store), "--loss", "kd", "--epochs", "4", "--batch-size", "16", "--seed", "3"];
        run_ok(&[&common[..], mode, &["--out", path_str(&out)]].concat());
        results(&out)
    };
    let losses = |r: &serde_json::Value| -> Vec<f64> {
        r["epochs"].as_array().unwrap().iter().map(|e| e["train_loss"].as_f64().unwrap()).collect()
    };
    let stored = train(&[], "stored");
    let online = train(&["--online"], "online");
    let preloaded = train(&["--preload"], "preloaded");
    // The online teacher sees the same inputs in other batch shapes: equal up to float rounding.
    for (a, b) in losses(&stored).iter().zip(losses(&online)) {
        assert!((a - b).abs() <= 1e-6 * a.abs(), "{a} vs {b}");
    }
    assert_eq!(stored["test_accuracy"], online["test_accuracy"]);
    assert_eq!(losses(&stored), losses(&preloaded), "preloading changes where inputs come from, not what they are");
    assert_eq!(stored["test"], preloaded["test"]);
}

#[test]
fn batches_prepared_ahead_or_on_libtorchs_team_and_alternating_feeds_train_alike() {
    let store = basicmotions_store();
    let dir = tempdir();
    let train = |preparation: &str, extra: &[&str], name: &str| {
        let out = dir.path().join(name);
        let common = ["train", path_str(store), "--loss", "kd", "--epochs", "4", "--batch-size", "16", "--seed", "3"];
        let output = kdstore()
            .env("KDSTORE_PREPARE_BATCHES", preparation)
            .args([&common[..], &["--threads", "2"], extra, &["--out", path_str(&out)]].concat())
            .output()
            .unwrap();
        (output, out)
    };
    let epochs = |out: &std::path::Path| results(out)["epochs"].as_array().unwrap().clone();
    let losses =
        |out: &std::path::Path| -> Vec<f64> { epochs(out).iter().map(|e| e["train_loss"].as_f64().unwrap()).collect() };
    let (output, ahead) = train("ahead", &[], "ahead");
    assert!(output.status.success(), "{}", stderr(&output));
    let (output, team) = train("team", &[], "team");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(losses(&ahead), losses(&team), "where a batch is prepared does not change it");
    assert_eq!(results(&ahead)["test"], results(&team)["test"]);
    let (output, alternating) = train("team", &["--alternate-feed"], "alternating");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(losses(&alternating), losses(&ahead), "memory and store epochs give the same batches");
    let fed: Vec<_> = epochs(&alternating).iter().map(|e| e["fed_from"].as_str().unwrap().to_string()).collect();
    assert_eq!(fed, ["memory", "store", "memory", "store"]);
    for epoch in epochs(&alternating) {
        let (steps, all) = (epoch["train_seconds"].as_f64().unwrap(), epoch["seconds"].as_f64().unwrap());
        assert!(steps > 0.0 && steps <= all, "{epoch}");
    }
    assert!(epochs(&ahead)[0].get("fed_from").is_none());
    let (output, _) = train("sideways", &[], "bad");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("KDSTORE_PREPARE_BATCHES: 'sideways' is neither 'ahead' nor 'team'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_resnet_student_trains_on_series_and_bad_depths_are_refused() {
    let store = basicmotions_store();
    let dir = tempdir();
    let out = dir.path().join("resnet");
    let args = ["--student", "resnet", "--depth", "8", "--width", "8", "--epochs", "2", "--batch-size", "16"];
    run_ok(&[&["train", path_str(store), "--out", path_str(&out)], &args[..]].concat());
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("student.json")).unwrap()).unwrap();
    assert_eq!((spec["kind"].as_str(), spec["depth"].as_i64()), (Some("resnet"), Some(8)));
    assert!(results(&out)["student_parameters"].as_i64().unwrap() > 5_000);
    let output = run(&["train", path_str(store), "--student", "resnet", "--depth", "10", "--out", path_str(&out)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("resnet depth must be 6n + 2"), "{}", stderr(&output));
}

#[test]
fn sgd_with_warm_up_step_decay_and_clipping() {
    let store = basicmotions_store();
    let dir = tempdir();
    let out = dir.path().join("sgd");
    let args = [
        "--optimizer",
        "sgd",
        "--momentum",
        "0.9",
        "--nesterov",
        "--lr",
        "0.05",
        "--schedule",
        "step",
        "--step-size",
        "2",
        "--step-gamma",
        "0.5",
        "--warmup-epochs",
        "2",
        "--clip-grad-norm",
        "1.0",
        "--epochs",
        "6",
    ];
    run_ok(&[&["train", path_str(store), "--out", path_str(&out)], &args[..]].concat());
    let r = results(&out);
    assert_eq!(r["config"]["optimizer"], serde_json::json!({"kind": "sgd", "momentum": 0.9, "nesterov": true}));
    assert_eq!(r["config"]["clip_grad_norm"], 1.0);
    let rates: Vec<f64> =
        r["epochs"].as_array().unwrap().iter().map(|e| e["learning_rate"].as_f64().unwrap()).collect();
    assert_eq!(rates, vec![0.025, 0.05, 0.05, 0.05, 0.025, 0.025]);
    assert!(r["epochs"].as_array().unwrap().iter().all(|e| e["train_loss"].as_f64().unwrap().is_finite()));
    let output = run(&["train", path_str(store), "--momentum", "1.5", "--out", path_str(&out)]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn stored_teacher_features_train_feature_losses_like_the_online_teacher() {
    let dir = tempdir();
    let pipeline = pipeline_copy("basicmotions.toml", dir.path(), |text| text);
    let store = dir.path().join("store");
    run_ok(&["build", path_str(&pipeline), "--store", path_str(&store)]);
    let models = snapshot(&store.join("models"));
    // Asking for embeddings later computes only them: the teacher is not trained again.
    std::fs::write(&pipeline, std::fs::read_to_string(&pipeline).unwrap() + "embeddings = \"f32\"\n").unwrap();
    let output = run_ok(&["build", path_str(&pipeline), "--store", path_str(&store)]);
    assert!(stderr(&output).contains("embeddings cnn1d on identity replica 0: 80 rows of 128"), "{}", stderr(&output));
    assert_eq!(snapshot(&store.join("models")), models);
    let counts = stdout(&run_ok(&[
        "query",
        path_str(&store),
        "SELECT COUNT(*) AS n, MIN(ARRAY_LENGTH(features)) AS dim FROM embeddings",
        "--format",
        "csv",
    ]));
    assert_eq!(counts.lines().nth(1), Some("828,128"));
    let train = |mode: &[&str], name: &str| {
        let out = dir.path().join(name);
        let common =
            ["train", path_str(&store), "--loss", "kd", "--loss", "sp=100", "--loss", "sk=10", "--epochs", "2"];
        run_ok(&[&common[..], mode, &["--batch-size", "16", "--out", path_str(&out)]].concat());
        let r = results(&out);
        r["epochs"].as_array().unwrap().iter().map(|e| e["train_loss"].as_f64().unwrap()).collect::<Vec<_>>()
    };
    let stored = train(&[], "stored");
    let online = train(&["--online"], "online");
    for (a, b) in stored.iter().zip(&online) {
        assert!((a - b).abs() <= 1e-5 * a.abs(), "{a} vs {b}");
    }

    // DLKD: each sample's identity view and three of its jitter views in a batch, with heads.
    let dlkd = |mode: &[&str], name: &str| {
        let out = dir.path().join(name);
        let common = ["train", path_str(&store), "--loss", "dlkd", "--where", "recipe IN ('identity', 'jitter')"];
        run_ok(&[&common[..], mode, &["--epochs", "3", "--batch-size", "4", "--out", path_str(&out)]].concat());
        results(&out)
    };
    let stored = dlkd(&[], "dlkd-stored");
    let online = dlkd(&["--online"], "dlkd-online");
    assert_eq!(stored["config"]["losses"][0]["views"], 4.0);
    for (a, b) in stored["epochs"].as_array().unwrap().iter().zip(online["epochs"].as_array().unwrap()) {
        let (a, b) = (a["train_loss"].as_f64().unwrap(), b["train_loss"].as_f64().unwrap());
        assert!(a.is_finite() && (a - b).abs() <= 1e-5 * a.abs(), "{a} vs {b}");
    }
    // Rows per epoch: every training sample with four views.
    let samples = stored["train_samples"].as_f64().unwrap();
    let rows_per_epoch =
        stored["train_views_per_second"].as_f64().unwrap() * stored["train_seconds"].as_f64().unwrap() / 3.0;
    assert!(
        (rows_per_epoch - samples * 4.0).abs() < 1e-6 * rows_per_epoch,
        "{rows_per_epoch} rows for {samples} samples"
    );
    let out = dir.path().join("dlkd-short");
    let short = run(&[
        "train",
        path_str(&store),
        "--loss",
        "dlkd",
        "--where",
        "recipe IN ('identity', 'rotation')",
        "--out",
        path_str(&out),
    ]);
    assert_eq!(short.status.code(), Some(1));
    assert!(stderr(&short).contains("with 3 other views of it, and"), "{}", stderr(&short));
    let all = run(&["train", path_str(&store), "--loss", "dlkd", "--views", "all", "--out", path_str(&out)]);
    assert_eq!(all.status.code(), Some(1));
    assert!(stderr(&all).contains("--views all: dlkd draws"), "{}", stderr(&all));
}

#[test]
fn an_interrupted_training_resumes_to_the_same_weights() {
    let store = basicmotions_store();
    let dir = tempdir();
    let args = |out: &std::path::Path| -> Vec<String> {
        let args = ["train", path_str(store), "--loss", "kd", "--epochs", "40", "--batch-size", "8", "--seed", "5"];
        let more = ["--optimizer", "sgd", "--nesterov", "--lr", "0.02", "--out", path_str(out)];
        args.iter().chain(&more).map(|s| s.to_string()).collect()
    };
    let straight = dir.path().join("straight");
    run_ok(&args(&straight).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!straight.join("checkpoints").exists(), "a finished run leaves no checkpoints");

    // Kill a run as soon as its first checkpoint is on disk.
    let out = dir.path().join("interrupted");
    interrupt_at_first_checkpoint(&args(&out), &out);

    let again = run(&args(&out).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("holds an interrupted training"), "{}", stderr(&again));
    let changed: Vec<String> = args(&out).into_iter().map(|a| if a == "0.02" { "0.03".into() } else { a }).collect();
    let changed = run(&[changed.iter().map(String::as_str).collect::<Vec<_>>(), vec!["--resume"]].concat());
    assert_eq!(changed.status.code(), Some(1));
    assert!(stderr(&changed).contains("learning_rate: 0.02 then, 0.03 now"), "{}", stderr(&changed));

    run_ok(&[args(&out).iter().map(String::as_str).collect::<Vec<_>>(), vec!["--resume"]].concat());
    assert_same_training(&straight, &out);
    let nothing = run(&[args(&out).iter().map(String::as_str).collect::<Vec<_>>(), vec!["--resume"]].concat());
    assert_eq!(nothing.status.code(), Some(1));
    assert!(stderr(&nothing).contains("holds no checkpoint"), "{}", stderr(&nothing));
}

#[test]
fn a_co_trained_teacher_learns_with_the_student() {
    let store = basicmotions_store();
    let dir = tempdir();
    let out = dir.path().join("dml");
    let args = ["train", path_str(store), "--co-train", "--loss", "ce", "--loss", "kd", "--set", "temperature=1"];
    let output = run_ok(&[&args[..], &["--epochs", "12", "--batch-size", "8", "--out", path_str(&out)]].concat());
    assert!(stderr(&output).contains("(co-trained teacher "), "{}", stderr(&output));
    let r = results(&out);
    let teacher = r["co_trained_teacher"]["accuracy"].as_f64().unwrap();
    assert!(teacher > 0.5, "the co-trained teacher beats chance (0.25): {teacher}");
    assert!(r["test_accuracy"].as_f64().unwrap() > 0.5, "{r}");
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("teacher.json")).unwrap()).unwrap();
    assert_eq!(
        (spec["kind"].as_str(), spec["width"].as_i64()),
        (Some("cnn1d"), Some(32)),
        "the store teacher's architecture"
    );
    assert!(out.join("teacher.safetensors").is_file());
    let output = run(&[&args[..], &["--online", "--out", path_str(&dir.path().join("x"))]].concat());
    assert_eq!(output.status.code(), Some(1), "--online and --co-train exclude each other: {}", stderr(&output));
    assert!(stderr(&output).contains("cannot be used with"), "{}", stderr(&output));
}
