//! Top-k teachers (`logits_format`): one TorchScript teacher stored dense, top-2 q8 and top-3 f16
//! on real BasicMotions; the files and what every reader sees checked with pyarrow
//! (tests/python/check_topk.py: files, SQL and export), then verified, trained from, and the format's errors.

use std::process::Command;

use crate::common::*;

fn scripted_teacher(dir: &std::path::Path) -> std::path::PathBuf {
    let teacher = dir.join("teacher.pt");
    let status =
        Command::new(python()).arg(repo().join("tests/python/make_teacher.py")).arg(&teacher).status().unwrap();
    assert!(status.success(), "make_teacher.py failed");
    teacher
}

fn with_teachers(dir: &std::path::Path, teachers: &[(&str, &str)]) -> std::path::PathBuf {
    let teacher = scripted_teacher(dir);
    pipeline_copy("basicmotions.toml", dir, |text| {
        let mut text = text;
        for (name, extra) in teachers {
            text.push_str(&format!(
                "\n[[teacher]]\nkind = \"torchscript\"\nname = \"{name}\"\npath = \"{}\"\n{extra}\n",
                path_str(&teacher)
            ));
        }
        text
    })
}

#[test]
fn top_k_teachers_store_their_top_classes_and_read_as_dense_logits() {
    let dir = tempdir();
    let pipeline = with_teachers(
        dir.path(),
        &[
            ("dense", ""),
            ("q8", "logits_format = { top_k = 2, values = \"q8\" }"),
            ("half", "logits_format = { top_k = 3, values = \"f16\" }"),
        ],
    );
    let store = dir.path().join("store");
    run_ok(&["build", path_str(&pipeline), "--store", path_str(&store)]);
    let output = Command::new(python())
        .arg(repo().join("tests/python/check_topk.py"))
        .args([env!("CARGO_BIN_EXE_kdstore"), path_str(&store), "dense", "q8", "half"])
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "check_topk.py:\n{report}");
    assert_eq!(report.lines().filter(|l| l.starts_with("ok: ")).count(), 6, "{report}");

    let info = stdout(&run_ok(&["info", path_str(&store)]));
    assert!(info.contains(" top2-q8 ") && info.contains(" top3-f16 "), "{info}");
    let verified = run_ok(&["verify", path_str(&store), "--deep"]);
    assert!(stderr(&verified).contains("is intact"), "{}", stderr(&verified));

    // Same teacher, so the top-1 agrees everywhere, and the identity views keep its accuracy.
    let agree = run_ok(&[
        "query",
        path_str(&store),
        "SELECT COUNT(*) AS n FROM logits a JOIN logits b USING (view_id) \
         WHERE a.teacher = 'dense' AND b.teacher = 'q8' AND a.teacher_pred = b.teacher_pred",
        "--format",
        "csv",
    ]);
    assert_eq!(stdout(&agree).lines().nth(1).unwrap().parse::<u64>().unwrap(), table_rows(&store, "views"));

    let out = dir.path().join("student");
    let trained = run_ok(&[
        "train",
        path_str(&store),
        "--teacher",
        "q8",
        "--loss",
        "kd",
        "--epochs",
        "2",
        "--out",
        path_str(&out),
    ]);
    let results = results(&out);
    let loss = results["epochs"].as_array().and_then(|e| e.last()).map(|e| e["train_loss"].as_f64().unwrap());
    assert!(loss.is_some_and(f64::is_finite), "{}\n{results}", stderr(&trained));
}

#[test]
fn a_top_k_larger_than_the_classes_or_beside_a_logits_dtype_is_refused() {
    let dir = tempdir();
    let pipeline = with_teachers(dir.path(), &[("wide", "logits_format = { top_k = 5, values = \"q8\" }")]);
    let output = run(&["build", path_str(&pipeline), "--store", path_str(&dir.path().join("store"))]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("logits_format.top_k = 5 is more than the 4 classes"), "{}", stderr(&output));

    let both = with_teachers(
        dir.path(),
        &[("both", "logits_dtype = \"f16\"\nlogits_format = { top_k = 2, values = \"f16\" }")],
    );
    let output = run(&["build", path_str(&both), "--store", path_str(&dir.path().join("store2"))]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .contains("logits_format stores top-k log-probabilities in its own `values` type; remove logits_dtype"),
        "{}",
        stderr(&output)
    );
}
