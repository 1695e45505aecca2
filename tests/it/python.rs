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

#[test]
fn a_torchscript_student_trains_here_and_loads_in_pytorch() {
    let dir = tempdir();
    let module = dir.path().join("student.pt");
    let status = Command::new(python()).arg(repo().join("tests/python/make_teacher.py")).arg(&module).status().unwrap();
    assert!(status.success());
    let out = dir.path().join("trained");
    let store = basicmotions_store();
    let output = run_ok(&[
        "train",
        path_str(store),
        "--student-torchscript",
        path_str(&module),
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--out",
        path_str(&out),
    ]);
    assert!(stderr(&output).contains("trained the torchscript student (564 parameters)"), "{}", stderr(&output));
    // PyTorch loads the trained module, and its weights moved away from the exported ones.
    let check = Command::new(python())
        .args([
            "-c",
            "import sys, torch; a = torch.jit.load(sys.argv[1]); b = torch.jit.load(sys.argv[2]); \
             print(a(torch.zeros(2, 6, 100)).shape == (2, 4), not torch.equal(a.head.weight, b.head.weight))",
        ])
        .args([out.join("student.pt"), module])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "True True",
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn alias_free_queries_answer_and_name_their_columns_as_duckdb_does() {
    let store = basicmotions_store();
    let output = Command::new(python())
        .arg(repo().join("tests/python/check_sql_parity.py"))
        .args([env!("CARGO_BIN_EXE_kdstore"), path_str(store), path_str(&repo())])
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "check_sql_parity.py:\n{report}");
    assert!(report.lines().filter(|l| l.starts_with("ok: ")).count() >= 30, "{report}");
}

#[test]
fn study_statistics_agree_with_scipy() {
    let output = Command::new(python())
        .arg(repo().join("tests/python/check_stats.py"))
        .arg(env!("CARGO_BIN_EXE_kdstore"))
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "check_stats.py:\n{report}");
    assert!(report.contains("12 studies agree with scipy"), "{report}");
}
