//! Checks against other tools, run with the project's Python (torch, duckdb, pyarrow): a TorchScript
//! teacher exported from PyTorch, and the store read by DuckDB and pyarrow.

use std::process::Command;

use crate::common::*;

#[test]
fn torchscript_teacher_and_other_engines_agree_with_kdstore() {
    let dir = tempdir();
    let teacher = dir.path().join("teacher.pt");
    let status = Command::new(python())
        .arg(repo().join("tests/python/make_teacher.py"))
        .arg(&teacher)
        .status()
        .expect("the venv's python runs");
    assert!(status.success(), "make_teacher.py failed");
    let pipeline = pipeline_copy("basicmotions.toml", dir.path(), |text| {
        format!("{text}\n[[teacher]]\nkind = \"torchscript\"\nname = \"scripted\"\npath = \"{}\"\n", path_str(&teacher))
    });
    let store = dir.path().join("store");
    run_ok(&["build", path_str(&pipeline), "--store", path_str(&store)]);
    let output = Command::new(python())
        .arg(repo().join("tests/python/check_store.py"))
        .args([env!("CARGO_BIN_EXE_kdstore"), path_str(&store), "scripted", path_str(&teacher)])
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "check_store.py:\n{report}");
    assert_eq!(report.lines().filter(|l| l.starts_with("ok: ")).count(), 6, "{report}");
}
