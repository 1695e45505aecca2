//! Shared helpers: run the binary, make temporary stores, read manifests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn kdstore() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kdstore"));
    command.current_dir(repo());
    command
}

/// Runs kdstore with `args` and returns its output (whatever the exit code).
pub fn run(args: &[&str]) -> Output {
    kdstore().args(args).output().expect("kdstore runs")
}

/// Runs kdstore and fails the test unless it exits 0.
pub fn run_ok(args: &[&str]) -> Output {
    let output = run(args);
    assert!(
        output.status.success(),
        "kdstore {args:?} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("kdstore-it-").tempdir().expect("temporary directory")
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The current manifest of a store as JSON.
pub fn manifest(store: &Path) -> serde_json::Value {
    let dir = store.join("_manifest");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("manifest dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
        .collect();
    names.sort();
    let text = std::fs::read_to_string(dir.join(names.last().expect("a committed version"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// How many rows the current version's `table` holds, from its manifest.
pub fn table_rows(store: &Path, table: &str) -> u64 {
    let manifest = manifest(store);
    let files = manifest["files"].as_array().expect("files");
    files.iter().filter(|f| f["table"] == table).map(|f| f["rows"].as_u64().unwrap()).sum()
}

/// The data files of the current version: (path, rows, sha256), sorted by path.
pub fn content(store: &Path) -> Vec<(String, u64, String)> {
    let manifest = manifest(store);
    let mut files: Vec<(String, u64, String)> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["rows"].as_u64().unwrap(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Writes a copy of a repository pipeline with `edit` applied to its text.
pub fn pipeline_copy(name: &str, dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("pipelines").join(name)).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// Writes a small synthetic `.npy` series dataset (n samples of 3 × 32, 3 classes, 10 groups)
/// whose class is visible in the signal, for tests that need more rows than BasicMotions has.
pub fn synthetic_npy(dir: &Path, n: usize) -> (PathBuf, PathBuf, PathBuf) {
    let (channels, length) = (3usize, 32usize);
    let mut inputs = Vec::with_capacity(n * channels * length);
    let mut labels = Vec::with_capacity(n);
    let mut groups = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 3) as i64;
        for c in 0..channels {
            for t in 0..length {
                let phase = (i * 7 + c * 3) as f32 * 0.1;
                inputs.push(
                    ((t as f32) * 0.2 * (class as f32 + 1.0) + phase).sin()
                        + 0.1 * ((i * 31 + t * 17 + c) % 13) as f32 / 13.0,
                );
            }
        }
        labels.push(class);
        groups.push((i % 10) as i64);
    }
    let paths = (dir.join("inputs.npy"), dir.join("labels.npy"), dir.join("groups.npy"));
    kdstore_core::source::npy::write_f32(&paths.0, &[n, channels, length], &inputs).unwrap();
    kdstore_core::source::npy::write_i64(&paths.1, &[n], &labels).unwrap();
    kdstore_core::source::npy::write_i64(&paths.2, &[n], &groups).unwrap();
    paths
}

/// A pipeline over [`synthetic_npy`] data with a fast built-in teacher.
pub fn synthetic_pipeline(dir: &Path, n: usize, extra: &str) -> PathBuf {
    let (inputs, labels, groups) = synthetic_npy(dir, n);
    let text = format!(
        r#"version = 1
name = "synthetic"
seed = 5
store = "{store}"

[source]
kind = "npy"
inputs = "{inputs}"
labels = "{labels}"
groups = "{groups}"
layout = "series"

[split]
test_groups = [0, 1]
val_fraction = 0.2

[[recipe]]
name = "jitter"
replicas = 2
ops = [{{ op = "jitter", sigma = 0.1 }}]

[[recipe]]
name = "mix"
replicas = 1
ops = [{{ op = "scaling" }}, {{ op = "mixup", alpha = 0.4 }}]

[[teacher]]
kind = "builtin"
name = "small"
arch = "cnn1d"
width = 8
depth = 2
epochs = 2
batch_size = 32
{extra}"#,
        store = path_str(&dir.join("store")),
        inputs = path_str(&inputs),
        labels = path_str(&labels),
        groups = path_str(&groups),
    );
    let path = dir.join("synthetic.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A BasicMotions store built once per test run and shared by the tests that only read it.
pub fn basicmotions_store() -> &'static Path {
    static STORE: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, path) = STORE.get_or_init(|| {
        let dir = tempdir();
        let store = dir.path().join("basicmotions");
        run_ok(&["build", "pipelines/basicmotions.toml", "--store", path_str(&store)]);
        (dir, store)
    });
    path
}

/// The Python of the project's virtual environment (torch, numpy, pyarrow, duckdb).
pub fn python() -> PathBuf {
    match std::env::var_os("PYTHON") {
        Some(python) => PathBuf::from(python),
        None => repo().join(".venv/bin/python"),
    }
}

/// Every file under `dir` with its size and modification time, to show nothing changed.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((entry.path(), meta.len(), meta.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// 400 real Fashion-MNIST images and a recipe for every image op, mixup and cutmix.
pub fn fashion_mnist_ops_store(dir: &Path) -> (PathBuf, PathBuf) {
    let status = Command::new(python())
        .arg(repo().join("tests/python/fmnist_subset.py"))
        .args([repo().join("data/fashion-mnist"), dir.to_path_buf()])
        .arg("400")
        .status()
        .unwrap();
    assert!(status.success(), "fmnist_subset.py failed");
    let store = dir.join("store");
    let pipeline = dir.join("fmnist-ops.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"version = 1
name = "fmnist-ops"
seed = 17
store = "{store}"

[source]
kind = "npy"
inputs = "{inputs}"
labels = "{labels}"
layout = "image"

[split]
val_fraction = 0.1
test_fraction = 0.2

[[recipe]]
name = "crop_flip"
replicas = 2
ops = [{{ op = "random_crop", padding = 4 }}, {{ op = "horizontal_flip" }}]

[[recipe]]
name = "resized_crop"
replicas = 2
ops = [{{ op = "random_resized_crop", scale = [0.35, 1.0] }}]

[[recipe]]
name = "cutout"
replicas = 1
ops = [{{ op = "cutout", size = 8 }}]

[[recipe]]
name = "color"
replicas = 1
ops = [{{ op = "color_jitter", brightness = 0.4, contrast = 0.4 }}]

[[recipe]]
name = "mixup"
replicas = 1
ops = [{{ op = "mixup", alpha = 1.0 }}]

[[recipe]]
name = "flip_cutmix"
replicas = 2
ops = [{{ op = "horizontal_flip" }}, {{ op = "cutmix", alpha = 1.0 }}]

[[teacher]]
kind = "builtin"
name = "cnn2d"
arch = "cnn2d"
width = 8
depth = 2
epochs = 2
batch_size = 64
"#,
            store = path_str(&store),
            inputs = path_str(&dir.join("inputs.npy")),
            labels = path_str(&dir.join("labels.npy")),
        ),
    )
    .unwrap();
    run_ok(&["build", path_str(&pipeline)]);
    (store, pipeline)
}

/// A training's `results.json`.
pub fn results(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

/// Starts `kdstore ARGS` (a training into `out`) and kills it as soon as its first checkpoint is
/// on disk, leaving an interrupted run.
pub fn interrupt_at_first_checkpoint(args: &[String], out: &Path) {
    let mut child = kdstore().args(args).stderr(std::process::Stdio::null()).spawn().unwrap();
    let started = std::time::Instant::now();
    let checkpointed = || {
        std::fs::read_dir(out.join("checkpoints"))
            .is_ok_and(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("epoch-")))
    };
    while !checkpointed() {
        assert!(started.elapsed().as_secs() < 120, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.join("results.json").exists(), "the run was interrupted before its end");
}

/// Asserts that two finished trainings ended with the same weights, losses and test metrics.
pub fn assert_same_training(a: &Path, b: &Path) {
    for file in ["student.safetensors", "last.safetensors"] {
        assert_eq!(std::fs::read(a.join(file)).unwrap(), std::fs::read(b.join(file)).unwrap(), "{file}");
    }
    let (a, b) = (results(a), results(b));
    let losses = |r: &serde_json::Value| -> Vec<serde_json::Value> {
        r["epochs"].as_array().unwrap().iter().map(|e| e["train_loss"].clone()).collect()
    };
    assert_eq!(losses(&a), losses(&b));
    assert_eq!((&a["test"], &a["best_epoch"]), (&b["test"], &b["best_epoch"]));
}

/// Fails with the differing lines unless `path` holds `generated`; with `update` set in the
/// environment, writes it instead.
pub fn check_snapshot(path: &Path, generated: &str, update: &str) {
    if std::env::var_os(update).is_some() {
        std::fs::write(path, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed != generated {
        let diff: Vec<String> = committed
            .lines()
            .zip(generated.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}:\n  - {a}\n  + {b}", i + 1))
            .collect();
        panic!(
            "{} drifted from the code ({} vs {} lines); run {update}=1 cargo test\n{}",
            path.display(),
            committed.lines().count(),
            generated.lines().count(),
            diff.join("\n")
        );
    }
}
