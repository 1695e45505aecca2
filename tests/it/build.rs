//! Building stores: content, incremental re-runs, interruption and thread independence.

use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn basicmotions_store_has_every_view_labelled() {
    let store = basicmotions_store();
    let manifest = manifest(store);
    let counts = &manifest["dataset"]["split_counts"];
    assert_eq!(counts["train"].as_u64().unwrap() + counts["val"].as_u64().unwrap(), 40);
    assert_eq!(counts["test"].as_u64().unwrap(), 40);
    let train = counts["train"].as_u64().unwrap();
    let rows = |table: &str| -> u64 {
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["table"] == table)
            .map(|f| f["rows"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(rows("samples"), 80);
    // identity for all 80 series; 3 recipes × 4 replicas and 6 recipes × 1 for the training series
    assert_eq!(rows("views"), 80 + 22 * train);
    assert_eq!(rows("logits"), rows("views"));
    let teacher = &manifest["teachers"][0];
    assert_eq!(teacher["name"], "cnn1d");
    for split in ["train", "val", "test"] {
        let accuracy = teacher["accuracy"][split].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{split}: {accuracy}");
    }
    assert!(teacher["accuracy"]["train"].as_f64().unwrap() > 0.9, "the teacher should fit BasicMotions: {teacher}");
}

#[test]
fn rebuilding_an_up_to_date_store_does_nothing() {
    let dir = tempdir();
    let pipeline = synthetic_pipeline(dir.path(), 300, "");
    run_ok(&["build", path_str(&pipeline)]);
    let before = content(&dir.path().join("store"));
    let version = manifest(&dir.path().join("store"))["version"].as_u64().unwrap();
    let again = run_ok(&["build", path_str(&pipeline)]);
    assert!(stderr(&again).contains(&format!("up to date at version {version} (nothing to do)")), "{}", stderr(&again));
    assert_eq!(content(&dir.path().join("store")), before);
}

#[test]
fn adding_a_recipe_or_a_teacher_computes_only_what_is_new() {
    let dir = tempdir();
    let pipeline = synthetic_pipeline(dir.path(), 300, "");
    run_ok(&["build", path_str(&pipeline)]);
    let store = dir.path().join("store");
    let first = content(&store);

    let text = std::fs::read_to_string(&pipeline).unwrap();
    let with_recipe = text.replace(
        "[[teacher]]",
        "[[recipe]]\nname = \"scale\"\nreplicas = 1\nops = [{ op = \"scaling\", sigma = 0.2 }]\n\n[[teacher]]",
    );
    std::fs::write(&pipeline, &with_recipe).unwrap();
    let output = run_ok(&["build", path_str(&pipeline)]);
    let steps: Vec<String> =
        stderr(&output).lines().filter(|l| l.starts_with("  ")).map(|l| l.trim().to_string()).collect();
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(steps[0].starts_with("pipeline changed: kept"), "{steps:?}");
    assert!(steps[1].starts_with("views scale replica 0"), "{steps:?}");
    assert!(steps[2].starts_with("logits small on scale replica 0"), "{steps:?}");
    let second = content(&store);
    assert!(first.iter().all(|f| second.contains(f)), "earlier parts must be kept as they were");
    assert_eq!(second.len(), first.len() + 2);

    let with_teacher = format!("{with_recipe}\n[[teacher]]\nkind = \"builtin\"\nname = \"mlp\"\narch = \"mlp\"\nwidth = 16\ndepth = 1\nepochs = 1\nlogits_dtype = \"f16\"\n");
    std::fs::write(&pipeline, with_teacher).unwrap();
    let output = run_ok(&["build", path_str(&pipeline)]);
    let steps: Vec<String> =
        stderr(&output).lines().filter(|l| l.starts_with("  ")).map(|l| l.trim().to_string()).collect();
    assert!(steps.iter().all(|s| !s.starts_with("views")), "no views are recomputed: {steps:?}");
    assert!(steps.iter().any(|s| s.starts_with("teacher mlp")), "{steps:?}");
    assert_eq!(steps.iter().filter(|s| s.starts_with("logits mlp")).count(), 5, "{steps:?}");
    assert!(steps.iter().all(|s| !s.starts_with("logits small")), "{steps:?}");
    let third = content(&store);
    assert!(second.iter().all(|f| third.contains(f)));

    // f32 and f16 teachers read side by side, as float32.
    let counts = stdout(&run_ok(&["query", path_str(&store), "SELECT COUNT(*) AS n FROM logits", "--format", "csv"]));
    let views = stdout(&run_ok(&["query", path_str(&store), "SELECT COUNT(*) AS n FROM views", "--format", "csv"]));
    let views: u64 = views.lines().nth(1).unwrap().parse().unwrap();
    assert_eq!(counts, format!("n\n{}\n", 2 * views));
    let both = stdout(&run_ok(&[
        "query",
        path_str(&store),
        "SELECT a.logits AS small, b.logits AS mlp FROM logits a JOIN logits b USING (view_id) WHERE a.teacher = 'small' AND b.teacher = 'mlp' LIMIT 1",
        "--format",
        "json",
    ]));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&both).unwrap();
    for logit in rows[0]["mlp"].as_array().unwrap() {
        let value = logit.as_f64().unwrap() as f32;
        assert_eq!(half::f16::from_f32(value).to_f32(), value, "f16 logits are read back exactly");
    }
}

#[test]
fn a_killed_build_resumes_to_the_same_content() {
    let dir = tempdir();
    let pipeline = synthetic_pipeline(dir.path(), 3000, "");
    let reference = dir.path().join("reference");
    run_ok(&["build", path_str(&pipeline), "--store", path_str(&reference)]);

    let interrupted = dir.path().join("interrupted");
    let mut child =
        kdstore().args(["build", path_str(&pipeline), "--store", path_str(&interrupted), "--quiet"]).spawn().unwrap();
    let started = Instant::now();
    // Kill it once a few versions are committed (samples and some views), before it finishes.
    loop {
        let committed = std::fs::read_dir(interrupted.join("_manifest"))
            .map(|d| d.flatten().filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count())
            .unwrap_or(0);
        if committed >= 3 || started.elapsed() > Duration::from_secs(120) {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            panic!("the build finished before it could be interrupted; make the fixture larger");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = content(&interrupted);
    assert!(partial.len() < content(&reference).len(), "the kill came too late to test anything");
    // The store is readable at its last committed version.
    let count = run_ok(&["query", path_str(&interrupted), "SELECT COUNT(*) AS n FROM samples", "--format", "csv"]);
    assert_eq!(stdout(&count), "n\n3000\n");

    run_ok(&["build", path_str(&pipeline), "--store", path_str(&interrupted)]);
    assert_eq!(content(&interrupted), content(&reference));
    let leftovers: Vec<_> =
        snapshot(&interrupted).into_iter().filter(|(path, _, _)| path.to_string_lossy().contains(".tmp")).collect();
    assert!(leftovers.is_empty(), "temporary files of the killed build remain: {leftovers:?}");
    let teachers = |store| manifest(store)["teachers"].clone();
    assert_eq!(teachers(&interrupted), teachers(&reference));
}

#[test]
fn the_thread_count_does_not_change_the_content() {
    let dir = tempdir();
    let pipeline = synthetic_pipeline(dir.path(), 1500, "");
    let one = dir.path().join("one");
    let two = dir.path().join("two");
    run_ok(&["build", path_str(&pipeline), "--store", path_str(&one), "--threads", "1"]);
    run_ok(&["build", path_str(&pipeline), "--store", path_str(&two), "--threads", "3"]);
    assert_eq!(content(&one), content(&two));
    assert_eq!(manifest(&one)["teachers"], manifest(&two)["teachers"]);
}

#[test]
fn content_keys_stay_the_same_across_kdstore_versions() {
    // A store built by an earlier kdstore must find its parts again: the keys hash the pipeline's
    // serialised settings, so a change in how they serialise (field order, defaults) would make
    // every build recompute everything. These are the values kdstore has always given.
    let plan = kdstore_core::pipeline::load(&repo().join("pipelines/hapt.toml")).unwrap();
    assert_eq!(&plan.pipeline_hash[..16], "8d72eff6463c6e82");
    let store = basicmotions_store();
    let parts = kdstore_core::pipeline::parts::Parts::of(
        &kdstore_core::pipeline::load(&repo().join("pipelines/basicmotions.toml")).unwrap(),
        manifest(store)["dataset"]["samples_key"].as_str().unwrap(),
    )
    .unwrap();
    let stored: Vec<String> =
        manifest(store)["files"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap().to_string()).collect();
    for part in &parts.views {
        assert!(stored.contains(&part.key), "views part {} r{} keyed anew", part.recipe.name, part.replica);
    }
}

#[test]
fn many_replicas_share_parts_and_make_the_same_views() {
    // The same recipe of 10 replicas, one part per replica and 4 replicas per part.
    let recipe = |per_part: &str| {
        format!("\n[[recipe]]\nname = \"many\"\nreplicas = 10\n{per_part}ops = [{{ op = \"jitter\", sigma = 0.3 }}]\n")
    };
    let (apart, together) = (tempdir(), tempdir());
    run_ok(&["build", path_str(&synthetic_pipeline(apart.path(), 60, &recipe("")))]);
    let output =
        run_ok(&["build", path_str(&synthetic_pipeline(together.path(), 60, &recipe("replicas_per_part = 4\n")))]);
    assert!(stderr(&output).contains("views many replicas 0-3: "), "{}", stderr(&output));
    assert!(stderr(&output).contains("views many replicas 8-9: "), "{}", stderr(&output));
    let parts = |store: &std::path::Path| {
        manifest(store)["files"].as_array().unwrap().iter().filter(|f| f["recipe"] == "many").count()
    };
    assert_eq!((parts(&apart.path().join("store")), parts(&together.path().join("store"))), (10, 3));
    let rows = |store: &std::path::Path| {
        let sql = "SELECT v.view_id, v.replica, v.input_hash, l.logits FROM views v JOIN labels l USING (view_id) WHERE v.recipe = 'many' ORDER BY v.view_id";
        stdout(&run_ok(&["query", path_str(store), sql, "--format", "csv"]))
    };
    let (a, b) = (rows(&apart.path().join("store")), rows(&together.path().join("store")));
    let per_replica = (a.lines().count() - 1) / 10;
    assert_eq!(a.lines().count(), 1 + 10 * per_replica, "a header and 10 replicas of the training samples");
    assert!(per_replica > 20, "{per_replica}");
    assert_eq!(a, b, "grouping replicas into parts changes no view and no logit");
    // Queries by replica still find the grouped views.
    let one = "SELECT COUNT(*) AS n FROM views WHERE recipe = 'many' AND replica = 9";
    let counted = stdout(&run_ok(&["query", path_str(&together.path().join("store")), one, "--format", "csv"]));
    assert_eq!(counted, format!("n\n{per_replica}\n"));
}
