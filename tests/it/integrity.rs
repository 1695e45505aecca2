//! A store that never hands out damaged data: a damaged file in each table, a damaged manifest,
//! time travel and gc, repair, and the faults of a build (kills, a reader meanwhile, a full disk).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

/// A small synthetic store with embeddings (every table has files), built once per test.
fn small_store(dir: &Path, samples: usize) -> (PathBuf, PathBuf) {
    let pipeline = synthetic_pipeline(dir, samples, "embeddings = \"f32\"");
    let store = dir.join("store");
    run_ok(&["build", path_str(&pipeline), "--store", path_str(&store), "--quiet"]);
    (pipeline, store)
}

fn copy_store(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp").arg("-r").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

/// The first file of `table` in the current manifest.
fn first_file(store: &Path, table: &str) -> PathBuf {
    let manifest = manifest(store);
    let file = manifest["files"].as_array().unwrap().iter().find(|f| f["table"] == table).unwrap();
    store.join(file["path"].as_str().unwrap())
}

fn flip_bytes(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 64] {
        *byte ^= 0x5a;
    }
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() * 2 / 3]).unwrap();
}

fn remove(path: &Path) {
    std::fs::remove_file(path).unwrap();
}

/// Runs kdstore and requires exit code 1 with one `error:` line that holds every one of `parts`.
fn fails_with(args: &[&str], parts: &[&str]) {
    let output = run(args);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "kdstore {args:?}: {text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "kdstore {args:?}: {text}");
    for part in parts {
        assert!(errors[0].contains(part), "kdstore {args:?} does not say {part:?}: {text}");
    }
}

/// A table, what is done to one of its files, and what the error says the file has instead.
type Damage = (&'static str, fn(&Path), &'static str);

#[test]
fn a_damaged_file_in_any_table_is_never_read_and_repair_restores_it() {
    let dir = tempdir();
    let (pipeline, reference) = small_store(dir.path(), 300);
    let expected = content(&reference);
    let damages: [Damage; 5] = [
        ("samples", flip_bytes, "other content"),
        ("views", truncate, "bytes"),
        ("logits", flip_bytes, "other content"),
        ("embeddings", remove, "no such file"),
        ("model", flip_bytes, "sha256"),
    ];
    for (index, (table, damage, found)) in damages.into_iter().enumerate() {
        let store = dir.path().join(format!("damaged-{index}"));
        copy_store(&reference, &store);
        let file = if table == "model" {
            store.join(manifest(&store)["teachers"][0]["model_path"].as_str().unwrap())
        } else {
            first_file(&store, table)
        };
        damage(&file);
        let named = path_str(&file);
        let out = dir.path().join(format!("out-{index}"));
        let count_table = format!("SELECT COUNT(*) FROM {table}");
        let reads: Vec<Vec<&str>> = match table {
            // A model is only read to label views again (bench, repair) or for an online teacher.
            "model" => vec![vec!["bench", path_str(&store)]],
            "embeddings" => vec![
                vec!["query", path_str(&store), "SELECT COUNT(*) FROM embeddings"],
                vec!["train", path_str(&store), "--loss", "sp", "--epochs", "1", "--out", path_str(&out)],
            ],
            _ => vec![
                vec!["query", path_str(&store), "SELECT COUNT(*) FROM labels"],
                vec!["query", path_str(&store), &count_table],
                vec!["export", path_str(&store), "--out", path_str(&out)],
                vec!["train", path_str(&store), "--loss", "kd", "--epochs", "1", "--out", path_str(&out)],
            ],
        };
        for args in &reads {
            fails_with(args, &[named, found]);
        }
        assert!(!out.join("results.json").exists(), "nothing is trained from a damaged {table} file");

        let verify = run(&["verify", path_str(&store)]);
        assert_eq!(verify.status.code(), Some(1), "{}", stderr(&verify));
        assert!(stderr(&verify).contains(named), "verify names {named}: {}", stderr(&verify));

        let repaired = run_ok(&["build", path_str(&pipeline), "--store", path_str(&store), "--repair"]);
        assert!(stderr(&repaired).contains("damaged"), "{}", stderr(&repaired));
        assert_eq!(content(&store), expected, "repairing {table} gives the undamaged content");
        run_ok(&["verify", path_str(&store), "--deep"]);
        for args in &reads {
            if args[0] != "train" {
                run_ok(args);
            }
        }
    }
}

#[test]
fn every_version_stays_readable_and_a_damaged_newest_manifest_names_the_last_good_one() {
    let dir = tempdir();
    let (pipeline, store) = small_store(dir.path(), 300);
    let newest = manifest(&store)["version"].as_u64().unwrap();
    let versions = stdout(&run_ok(&["info", path_str(&store), "--versions"]));
    assert!(versions.contains("samples: 300 rows"), "{versions}");
    assert!(versions.lines().filter(|l| l.contains("20")).count() as u64 >= newest, "{versions}");

    // Version 2 holds the samples and the first views part only.
    let at = |version: &str, sql: &str| {
        stdout(&run_ok(&["query", path_str(&store), sql, "--at-version", version, "--format", "csv"]))
    };
    assert_eq!(at("1", "SELECT COUNT(*) AS n FROM samples"), "n\n300\n");
    assert_eq!(at("1", "SELECT COUNT(*) AS n FROM views"), "n\n0\n");
    assert_ne!(at("2", "SELECT COUNT(*) AS n FROM views"), "n\n0\n");
    fails_with(&["query", path_str(&store), "SELECT 1", "--at-version", "999"], &["no version 999", "1-"]);

    // A changed value in the newest manifest: an error that names it and the version before.
    let path = store.join("_manifest").join(format!("{newest:08}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"rows\": 300", "\"rows\": 301", 1)).unwrap();
    let before = (newest - 1).to_string();
    let suggestion = format!("--at-version {before}");
    fails_with(&["query", path_str(&store), "SELECT 1"], &[path_str(&path), "checksum", &suggestion]);
    fails_with(&["info", path_str(&store)], &[path_str(&path), &suggestion]);
    run_ok(&["info", path_str(&store), "--at-version", &before]);
    let repaired = run_ok(&["build", path_str(&pipeline), "--store", path_str(&store), "--repair"]);
    assert!(stderr(&repaired).contains("damaged"), "{}", stderr(&repaired));
    assert_eq!(manifest(&store)["version"].as_u64().unwrap(), newest + 1);
    run_ok(&["verify", path_str(&store), "--deep"]);

    // gc refuses while a version it would keep is damaged (it could list any file), and with
    // --keep 1 removes the damaged version and every file only older versions use.
    fails_with(&["gc", path_str(&store), "--keep", "2"], &[path_str(&path), "checksum"]);
    let files_before = snapshot(&store).len();
    let gc = stderr(&run_ok(&["gc", path_str(&store), "--keep", "1"]));
    assert!(gc.contains("removed"), "{gc}");
    assert!(snapshot(&store).len() < files_before);
    fails_with(&["query", path_str(&store), "SELECT 1", "--at-version", "1"], &["no version 1"]);
    run_ok(&["verify", path_str(&store), "--all-versions"]);
    run_ok(&["query", path_str(&store), "SELECT COUNT(*) FROM labels"]);
}

#[test]
fn a_teacher_that_returns_nan_is_refused_before_its_logits_are_committed() {
    let dir = tempdir();
    let teacher = dir.path().join("nan-teacher.pt");
    let made = std::process::Command::new(python())
        .arg(repo().join("tests/python/make_teacher.py"))
        .arg(&teacher)
        .arg("--nan-when-first-value-above")
        .arg("0.0")
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let pipeline = pipeline_copy("basicmotions.toml", dir.path(), |text| {
        let start = text.find("[[teacher]]").unwrap();
        format!(
            "{}[[teacher]]\nkind = \"torchscript\"\nname = \"nanny\"\npath = \"{}\"\n",
            &text[..start],
            path_str(&teacher)
        )
    });
    let store = dir.path().join("store");
    let output = run(&["build", path_str(&pipeline), "--store", path_str(&store)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    for part in ["stage logits.nanny", "not finite", "view ids", "nothing of this part was committed"] {
        assert!(text.contains(part), "{part}: {text}");
    }
    let committed = manifest(&store);
    assert!(committed["files"].as_array().unwrap().iter().all(|f| f["table"] != "logits"), "no logits committed");
}

#[test]
fn a_diverging_training_stops_at_the_first_non_finite_step_and_stays_resumable() {
    let dir = tempdir();
    let (_, store) = small_store(dir.path(), 300);
    let out = dir.path().join("diverged");
    let args = ["train", path_str(&store), "--loss", "kd", "--epochs", "3", "--optimizer", "sgd", "--lr", "1e30"];
    let output = run(&[&args[..], &["--out", path_str(&out)]].concat());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    for part in ["diverged", "epoch 1", "step", "kd", "not finite"] {
        assert!(text.contains(part), "{part}: {text}");
    }
    assert!(!out.join("results.json").exists(), "a diverged run writes no results");
}

#[test]
fn results_never_hold_null_metrics() {
    let dir = tempdir();
    let (_, store) = small_store(dir.path(), 300);
    let out = dir.path().join("run");
    run_ok(&["train", path_str(&store), "--loss", "kd", "--epochs", "2", "--out", path_str(&out)]);
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let numbers = |metrics: &serde_json::Value| {
        let metrics = metrics.as_object().unwrap();
        assert!(!metrics.is_empty() && metrics.values().all(|v| v.as_f64().is_some_and(f64::is_finite)), "{metrics:?}");
    };
    for epoch in results["epochs"].as_array().unwrap() {
        assert!(epoch["train_loss"].as_f64().is_some_and(f64::is_finite), "{epoch}");
        numbers(&epoch["val"]);
    }
    numbers(&results["test"]);
    assert!(results["test_accuracy"].as_f64().is_some());
}

/// Deterministic moments in `0..limit`, for kills that land all over a run.
fn moments(count: usize, limit: Duration, seed: u64) -> Vec<Duration> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            limit.mul_f64((state >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

/// Starts kdstore with `args`, SIGKILLs it after `after` (unless it ended first) and says whether
/// the kill interrupted it.
fn kill_after(args: &[&str], after: Duration) -> bool {
    let mut child = kdstore().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while started.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

/// The store answers a query at its current version (or has no version yet).
fn readable(store: &Path) {
    if !store.join("_manifest").exists() {
        return;
    }
    let committed = std::fs::read_dir(store.join("_manifest")).unwrap().flatten().any(|e| {
        let name = e.file_name().to_string_lossy().to_string();
        name.ends_with(".json") && !name.starts_with('.')
    });
    if committed {
        run_ok(&["query", path_str(store), "SELECT COUNT(*) FROM labels"]);
        run_ok(&["verify", path_str(store)]);
    }
}

/// Runs `attempt` at moment after moment (in `0..limit`) until 20 of its runs were SIGKILLed;
/// `attempt` returns whether its run was killed (rather than ending first).
fn twenty_kills(limit: Duration, seed: u64, mut attempt: impl FnMut(Duration) -> bool) {
    let mut kills = 0;
    for moment in moments(400, limit, seed) {
        kills += usize::from(attempt(moment));
        if kills == 20 {
            return;
        }
    }
    panic!("only {kills} of 400 runs were killed before they ended");
}

#[test]
fn twenty_kills_of_a_build_and_of_a_repair_each_leave_a_readable_store_that_completes_identically() {
    let dir = tempdir();
    let started = Instant::now();
    let (pipeline, reference) = small_store(dir.path(), 600);
    let full = started.elapsed();
    let expected = content(&reference);

    let store = dir.path().join("killed");
    let build = ["build", path_str(&pipeline), "--store", path_str(&store), "--quiet"];
    twenty_kills(full, 11, |moment| {
        let killed = kill_after(&build, moment);
        readable(&store);
        if !killed {
            // It finished: the content is the reference's, and the next kills start over.
            assert_eq!(content(&store), expected);
            std::fs::remove_dir_all(&store).unwrap();
        }
        killed
    });
    run_ok(&build);
    assert_eq!(content(&store), expected);

    // A repair of three damaged parts, killed 20 times: it commits once, at its end.
    let damage = || {
        flip_bytes(&first_file(&store, "views"));
        flip_bytes(&first_file(&store, "logits"));
        remove(&first_file(&store, "embeddings"));
    };
    damage();
    let repair = ["build", path_str(&pipeline), "--store", path_str(&store), "--quiet", "--repair"];
    twenty_kills(full / 2, 12, |moment| {
        let killed = kill_after(&repair, moment);
        if !killed {
            assert_eq!(content(&store), expected);
            run_ok(&["verify", path_str(&store)]);
            damage();
        }
        killed
    });
    run_ok(&repair);
    assert_eq!(content(&store), expected);
    run_ok(&["verify", path_str(&store), "--deep"]);
}

#[test]
fn twenty_kills_of_a_training_each_resume_to_the_same_weights() {
    let dir = tempdir();
    let (_, store) = small_store(dir.path(), 300);
    let args = |out: &Path| -> Vec<String> {
        let args = ["train", path_str(&store), "--loss", "kd", "--epochs", "30", "--batch-size", "16", "--seed", "3"];
        args.iter().map(|s| s.to_string()).chain(["--out".to_string(), path_str(out).to_string()]).collect()
    };
    let straight = dir.path().join("straight");
    let started = Instant::now();
    run_ok(&args(&straight).iter().map(String::as_str).collect::<Vec<_>>());
    let full = started.elapsed();
    let same_weights = |out: &Path| {
        for file in ["student.safetensors", "last.safetensors"] {
            assert_eq!(std::fs::read(straight.join(file)).unwrap(), std::fs::read(out.join(file)).unwrap(), "{file}");
        }
    };

    let out = dir.path().join("killed");
    let attempt = |out: &Path| -> Vec<String> {
        let mut attempt = args(out);
        if out.join("checkpoints").exists() {
            attempt.push("--resume".into());
        } else {
            // Killed before its first checkpoint: nothing to resume from.
            let _ = std::fs::remove_dir_all(out);
        }
        attempt
    };
    twenty_kills(full / 2, 13, |moment| {
        let killed = kill_after(&attempt(&out).iter().map(String::as_str).collect::<Vec<_>>(), moment);
        if out.join("results.json").exists() {
            same_weights(&out);
            std::fs::remove_dir_all(&out).unwrap();
        }
        killed
    });
    run_ok(&attempt(&out).iter().map(String::as_str).collect::<Vec<_>>());
    same_weights(&out);
}

#[test]
fn readers_during_a_build_always_see_a_whole_version_and_versions_only_grow() {
    let dir = tempdir();
    let pipeline = synthetic_pipeline(dir.path(), 1500, "embeddings = \"f32\"");
    let store = dir.path().join("store");
    let mut child = kdstore()
        .args(["build", path_str(&pipeline), "--store", path_str(&store), "--quiet"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen: Vec<u64> = Vec::new();
    let mut queries = 0;
    loop {
        let done = child.try_wait().unwrap().is_some();
        let info = run(&["info", path_str(&store), "--json"]);
        if info.status.success() {
            let version =
                serde_json::from_slice::<serde_json::Value>(&info.stdout).unwrap()["version"].as_u64().unwrap();
            assert!(seen.last().is_none_or(|&last| version >= last), "version {version} after {seen:?}");
            seen.push(version);
            let counted = run(&["query", path_str(&store), "SELECT COUNT(*) AS n FROM labels", "--format", "csv"]);
            assert!(counted.status.success(), "a query during the build failed: {}", stderr(&counted));
            queries += 1;
        } else {
            assert!(seen.is_empty(), "the store stopped being readable: {}", stderr(&info));
        }
        if done {
            break;
        }
    }
    assert!(child.wait().unwrap().success());
    seen.dedup();
    assert!(seen.len() >= 3 && queries >= 5, "the readers saw versions {seen:?} in {queries} queries");
}

#[test]
fn a_full_disk_stops_the_build_with_a_clear_error_and_a_rerun_with_space_completes() {
    let dir = tempdir();
    let (pipeline, reference) = small_store(dir.path(), 300);
    let bytes: u64 = snapshot(&reference).iter().map(|(_, len, _)| len).sum();
    // A private tmpfs of half the store's size, in a user and mount namespace of its own; the
    // store is copied out before the namespace (and the tmpfs) goes away.
    let small = dir.path().join("small");
    let rescued = dir.path().join("rescued");
    std::fs::create_dir_all(&small).unwrap();
    let kdstore_bin = env!("CARGO_BIN_EXE_kdstore");
    let script = format!(
        "mount -t tmpfs -o size={size} tmpfs {small} || exit 77\n\
         {bin} build {pipeline} --store {small}/store --quiet 2> {dir}/err; echo $? > {dir}/code\n\
         cp -r {small}/store {rescued}",
        size = bytes / 2,
        small = path_str(&small),
        bin = kdstore_bin,
        pipeline = path_str(&pipeline),
        dir = path_str(dir.path()),
        rescued = path_str(&rescued),
    );
    let status = std::process::Command::new("unshare").args(["-rm", "sh", "-c", &script]).current_dir(repo()).status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("skipped: this machine allows no private tmpfs (unshare -rm + mount): {status:?}");
        return;
    }
    let code = std::fs::read_to_string(dir.path().join("code")).unwrap();
    let err = std::fs::read_to_string(dir.path().join("err")).unwrap();
    assert_eq!(code.trim(), "1", "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1, "{err}");
    readable(&rescued);
    run_ok(&["build", path_str(&pipeline), "--store", path_str(&rescued), "--quiet"]);
    assert_eq!(content(&rescued), content(&reference));
}
