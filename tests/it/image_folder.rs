//! The `image_folder` source on a real folder tree: Fashion-MNIST images written as PNG files by
//! class (scripts/fashion-mnist-png.py) build, label and train exactly like an IDX store of the same
//! images in the same order, whether the decoded samples are held or every file is decoded on each
//! use (a folder larger than memory); the samples table holds files, not pixels; a changed file is
//! named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

/// 900 training and 300 test Fashion-MNIST images as a PNG tree under `dir/png` and as IDX files
/// in the folder's order under `dir/idx`.
fn png_tree_and_idx(dir: &Path) -> (PathBuf, PathBuf) {
    let status = Command::new(python())
        .arg(repo().join("scripts/fashion-mnist-png.py"))
        .args([repo().join("data/fashion-mnist"), dir.join("png")])
        .args(["--train", "900", "--test", "300", "--idx"])
        .arg(dir.join("idx"))
        .status()
        .unwrap();
    assert!(status.success(), "fashion-mnist-png.py failed");
    (dir.join("png"), dir.join("idx"))
}

fn pipeline(dir: &Path, name: &str, source: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        r#"version = 1
name = "{name}"
seed = 3
store = "{store}"

[source]
{source}

[split]
val_fraction = 0.1

[[recipe]]
name = "crop_flip"
ops = [{{ op = "random_crop", padding = 2 }}, {{ op = "horizontal_flip" }}]

[[recipe]]
name = "cutmix"
ops = [{{ op = "cutmix", alpha = 1.0 }}]

[[teacher]]
kind = "builtin"
name = "cnn2d"
arch = "cnn2d"
width = 8
depth = 2
epochs = 2
batch_size = 64
"#,
        store = path_str(&dir.join(name)),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs kdstore with no decoded sample held: every image file is read, checked and decoded on each
/// use, as for a folder larger than `KDSTORE_DECODED_LIMIT_MB`.
fn run_decoding_on_use(args: &[&str]) -> Output {
    kdstore().env("KDSTORE_DECODED_LIMIT_MB", "0").args(args).output().unwrap()
}

fn run_decoding_on_use_ok(args: &[&str]) -> Output {
    let output = run_decoding_on_use(args);
    assert!(output.status.success(), "kdstore {args:?} failed:\n{}", stderr(&output));
    output
}

fn query_csv(store: &Path, sql: &str) -> String {
    stdout(&run_ok(&["query", path_str(store), sql, "--format", "csv"]))
}

#[test]
fn a_png_folder_builds_labels_and_trains_like_the_idx_files_of_its_images() {
    let dir = tempdir();
    let (png, idx) = png_tree_and_idx(dir.path());
    let folder_source = format!("kind = \"image_folder\"\nroot = \"{}\"\ncolor = \"gray\"", path_str(&png));
    let folder = pipeline(dir.path(), "folder", &folder_source);
    let files = |split: &str, kind: &str| {
        path_str(&idx.join(format!("{split}-{kind}-idx{}-ubyte", if kind == "images" { 3 } else { 1 }))).to_string()
    };
    let idx_source = format!(
        "kind = \"idx\"\ntrain_images = \"{}\"\ntrain_labels = \"{}\"\ntest_images = \"{}\"\ntest_labels = \"{}\"",
        files("train", "images"),
        files("train", "labels"),
        files("t10k", "images"),
        files("t10k", "labels")
    );
    let arrays = pipeline(dir.path(), "idx", &idx_source);
    run_ok(&["build", path_str(&folder)]);
    run_ok(&["build", path_str(&arrays)]);
    let (folder_store, idx_store) = (dir.path().join("folder"), dir.path().join("idx"));

    // The samples table names each file instead of holding its pixels.
    let samples = query_csv(&folder_store, "SELECT * FROM samples ORDER BY sample_id LIMIT 2");
    let header = samples.lines().next().unwrap();
    assert_eq!(header, "sample_id,split,label,group,path,file_size,file_hash,shape,dtype");
    let first = samples.lines().nth(1).unwrap();
    assert!(first.contains(",0,,train/0-t-shirt-top/"), "{first}");
    let m = manifest(&folder_store);
    assert_eq!(m["dataset"]["class_names"][9], "9-ankle-boot");
    assert_eq!(m["dataset"]["sample_shape"], serde_json::json!([1, 28, 28]));
    assert_eq!(m["dataset"]["files"]["root"], path_str(&std::fs::canonicalize(&png).unwrap()));
    assert_eq!(m["dataset"]["split_counts"], manifest(&idx_store)["dataset"]["split_counts"]);

    // Same pixels, same views, same teacher: the same labels, view for view.
    let sql = "SELECT view_id, sample_id, split, label, recipe, input_hash, logits FROM labels ORDER BY view_id";
    assert_eq!(query_csv(&folder_store, sql), query_csv(&idx_store, sql));

    // And the same student, trained from either store.
    let train = |store: &Path, out: &str, decoding_on_use: bool| {
        let out = dir.path().join(out);
        let run = if decoding_on_use { run_decoding_on_use_ok } else { run_ok };
        run(&[
            "train",
            path_str(store),
            "--loss",
            "kd",
            "--epochs",
            "2",
            "--student",
            "cnn2d",
            "--width",
            "8",
            "--out",
            path_str(&out),
        ]);
        out
    };
    let from_folder = train(&folder_store, "from-folder", false);
    assert_same_training(&from_folder, &train(&idx_store, "from-idx", false));
    let export = |run: fn(&[&str]) -> Output, out: &str| {
        let out = dir.path().join(out);
        run(&["export", path_str(&folder_store), "--where", "recipe = 'cutmix'", "--out", path_str(&out)]);
        std::fs::read(out.join("inputs.npy")).unwrap()
    };
    let exported = export(run_ok, "export");

    // Decoding every file on each use instead of holding the decoded samples changes nothing: the
    // same normalisation and views at build time, the same student, the same exported inputs.
    let streamed = pipeline(dir.path(), "streamed", &folder_source);
    run_decoding_on_use_ok(&["build", path_str(&streamed)]);
    let streamed_store = dir.path().join("streamed");
    assert_eq!(query_csv(&streamed_store, sql), query_csv(&folder_store, sql));
    assert_eq!(manifest(&streamed_store)["dataset"]["normalization"], m["dataset"]["normalization"]);
    assert_same_training(&train(&folder_store, "decoded-on-use", true), &from_folder);
    assert_eq!(export(run_decoding_on_use_ok, "export-decoded-on-use"), exported);
    let output = kdstore()
        .env("KDSTORE_DECODED_LIMIT_MB", "lots")
        .args([
            "show",
            path_str(&folder_store),
            "--where",
            "sample_id = 0",
            "--out",
            path_str(&dir.path().join("shown.svg")),
        ])
        .output();
    let output = output.unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("KDSTORE_DECODED_LIMIT_MB: 'lots' is not a whole number of MiB"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_truncated_or_missing_image_is_named_at_build_and_at_training() {
    let dir = tempdir();
    let (png, _) = png_tree_and_idx(dir.path());
    let folder = pipeline(
        dir.path(),
        "folder",
        &format!("kind = \"image_folder\"\nroot = \"{}\"\ncolor = \"gray\"", path_str(&png)),
    );
    run_ok(&["build", path_str(&folder)]);
    let store = dir.path().join("folder");
    let victim = std::fs::canonicalize(png.join("train/3-dress/003.png")).unwrap();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() - 40]).unwrap();

    // Exit code 1 and `expected` in the error (or, for verify, the report).
    let fails_with = |args: &[&str], expected: &str| {
        let output = run(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr(&output));
        let said = format!("{}{}", stdout(&output), stderr(&output));
        assert!(said.contains(expected), "{args:?} should say {expected}: {said}");
    };
    let out = dir.path().join("student");
    let train =
        ["train", path_str(&store), "--loss", "ce", "--epochs", "1", "--student", "cnn2d", "--out", path_str(&out)];
    let expected = format!("{}: {} bytes, the store recorded {}", victim.display(), bytes.len() - 40, bytes.len());
    fails_with(&train, &expected);
    fails_with(&["export", path_str(&store), "--out", path_str(&dir.path().join("export"))], &expected);
    fails_with(&["verify", path_str(&store)], &expected);
    fails_with(&["verify", path_str(&store), "--deep"], "the samples' files changed, so no view can be replayed");

    // The build hashes every file: into this store, the changed file means other samples; a new
    // store decodes every file and the truncated PNG does not decode. Neither writes anything.
    let before = content(&store);
    fails_with(&["build", path_str(&folder)], "was built from other samples");
    assert_eq!(content(&store), before);
    let fresh = dir.path().join("fresh");
    let relative = png.join("train/3-dress/003.png");
    fails_with(
        &["build", path_str(&folder), "--store", path_str(&fresh)],
        &format!("{}: cannot decode the image", relative.display()),
    );
    assert!(!fresh.join("_manifest").exists() || std::fs::read_dir(fresh.join("_manifest")).unwrap().next().is_none());

    // Decoded on each use, the run starts and stops at the first batch or evaluation that needs
    // the file, naming it; verify --deep names it for the views it cannot replay.
    let output = run_decoding_on_use(&train);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains(&expected), "{}", stderr(&output));
    // An export streams its inputs.npy view by view: stopped by the file, it leaves nothing.
    let streamed_export = dir.path().join("streamed-export");
    let output = run_decoding_on_use(&["export", path_str(&store), "--out", path_str(&streamed_export)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains(&expected), "{}", stderr(&output));
    assert!(!streamed_export.exists(), "a failed export leaves no folder, no temporary file");
    let output = run_decoding_on_use(&["verify", path_str(&store), "--deep"]);
    assert_eq!(output.status.code(), Some(1));
    let said = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        said.contains("views cannot be replayed, their samples' files unreadable") && said.contains(&expected),
        "{said}"
    );

    std::fs::remove_file(&victim).unwrap();
    fails_with(&train, &format!("cannot read {}", victim.display()));
    let output = run_decoding_on_use(&train);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(&format!("cannot read {}", victim.display())), "{}", stderr(&output));
}
