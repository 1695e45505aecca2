//! `kdstore export` on real data: every op's views, exported in a fresh process, are rebuilt
//! independently by tests/python/check_export.py (numpy, scipy and torch following the reference
//! algorithms; xxhash for input_hash; DuckDB filtering the typed parameter columns).

use std::path::Path;
use std::process::Command;

use crate::common::*;

fn check_export(export: &Path, store: &Path, pipeline: &Path) -> String {
    let output = Command::new(python())
        .arg(repo().join("tests/python/check_export.py"))
        .args([export, store, pipeline])
        .output()
        .expect("the venv's python runs");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "check_export.py:\n{report}");
    report
}

#[test]
fn every_series_op_replays_after_a_restart_and_matches_the_reference() {
    let dir = tempdir();
    let store = basicmotions_store();
    let out = dir.path().join("export");
    let output = run_ok(&["export", path_str(store), "--out", path_str(&out)]);
    assert!(stderr(&output).contains("exported 828 views of teacher cnn1d"), "{}", stderr(&output));
    let report = check_export(&out, store, &repo().join("pipelines/basicmotions.toml"));
    for recipe in [
        "identity",
        "jitter",
        "scaling",
        "mixup",
        "cutmix",
        "rotation",
        "permutation",
        "magnitude_warp",
        "time_warp",
        "window_slice",
        "window_warp",
    ] {
        assert!(
            report.contains(&format!("\n{recipe}: ")) || report.starts_with(&format!("{recipe}: ")),
            "{recipe} missing:\n{report}"
        );
    }
}

#[test]
fn every_image_op_matches_the_reference_and_flips_half_the_time() {
    let dir = tempdir();
    let (store, pipeline) = fashion_mnist_ops_store(dir.path());
    let out = dir.path().join("export");
    run_ok(&["export", path_str(&store), "--out", path_str(&out)]);
    let report = check_export(&out, &store, &pipeline);
    for recipe in ["identity", "crop_flip", "resized_crop", "cutout", "color", "mixup", "flip_cutmix"] {
        assert!(report.contains(&format!("{recipe}: ")), "{recipe} missing:\n{report}");
    }
    // horizontal_flip has p = 0.5 by default: 4 × 288 views drew it.
    let flips = stdout(&run_ok(&[
        "query",
        path_str(&store),
        "SELECT COUNT(*) AS n FROM views WHERE horizontal_flip",
        "--format",
        "csv",
    ]));
    let flipped: f64 = flips.lines().nth(1).unwrap().parse().unwrap();
    assert!((flipped / 1152.0 - 0.5).abs() < 0.05, "{flipped} of 1152 views flipped");
}

#[test]
fn a_selection_exports_normalised_inputs_in_rows_order() {
    let dir = tempdir();
    let store = basicmotions_store();
    let raw = dir.path().join("raw");
    let normalised = dir.path().join("normalised");
    let condition = "recipe = 'cutmix' AND lam < 0.8 AND split = 'train'";
    run_ok(&["export", path_str(store), "--where", condition, "--out", path_str(&raw)]);
    run_ok(&["export", path_str(store), "--where", condition, "--out", path_str(&normalised), "--normalized"]);
    let raw_inputs = read_f32_npy(&raw.join("inputs.npy"));
    let normalised_inputs = read_f32_npy(&normalised.join("inputs.npy"));
    let normalization = &manifest(store)["dataset"]["normalization"];
    let (mean, std) = (normalization["mean"].as_array().unwrap(), normalization["std"].as_array().unwrap());
    assert!(!raw_inputs.is_empty() && raw_inputs.len().is_multiple_of(600));
    for (i, (&x, &n)) in raw_inputs.iter().zip(&normalised_inputs).enumerate() {
        let channel = (i % 600) / 100;
        let expected = (x - mean[channel].as_f64().unwrap() as f32) / std[channel].as_f64().unwrap() as f32;
        assert_eq!(n, expected, "element {i}");
    }
    let described: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(raw.join("export.json")).unwrap()).unwrap();
    assert_eq!(described["rows"].as_u64().unwrap() as usize, raw_inputs.len() / 600);
    assert_eq!(described["where"], condition);
}

#[test]
fn bad_selections_are_user_errors_that_write_nothing() {
    let dir = tempdir();
    let store = basicmotions_store();
    let out = dir.path().join("export");
    let output = run(&["export", path_str(store), "--where", "recipe = 'nope'", "--out", path_str(&out)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no views of teacher cnn1d match --where recipe = 'nope'"), "{}", stderr(&output));
    let output = run(&["export", path_str(store), "--where", "no_such_column > 1", "--out", path_str(&out)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no_such_column"), "{}", stderr(&output));
    assert!(!out.exists());
}

/// The float32 values of a little-endian `.npy` file (header skipped).
fn read_f32_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    bytes[10 + header..].chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}
