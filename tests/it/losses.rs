//! `kdstore loss` against the official implementations' formulas (tests/python/check_losses.py,
//! PyTorch float64), and its errors.

use std::process::Command;

use crate::common::*;

#[test]
fn every_loss_matches_its_official_formula() {
    let output = Command::new(python())
        .arg(repo().join("tests/python/check_losses.py"))
        .arg(env!("CARGO_BIN_EXE_kdstore"))
        .output()
        .expect("the venv's python runs");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "check_losses.py:\n{report}");
    let checked = report.lines().filter(|l| l.starts_with("ok: ")).count();
    // Per trial: 28 logit cases on a dense teacher and on a top-k one, an ensemble of two top-k
    // teachers, 3 mixed, 1 warm-up, 4 self-paced weightings and 7 ensembles of three and of two
    // teachers.
    // Then 3 feature-loss shapes (sp, and sk on 2 of them), 4 mmd batches, 2 dlkd and 4 official values.
    assert_eq!(checked, 3 * (2 * 28 + 1 + 3 + 1 + 4 + 2 * 7) + 3 + 2 + 4 + 2 + 4, "{report}");
    for format in ["top-4 f16", "top-2 q8", "top-10 q8"] {
        assert!(report.contains(&format!("{format} teacher")), "{format} unchecked:\n{report}");
    }
    for ensemble in ["camkd", "ebkd", "mean"] {
        assert!(report.contains(&format!("ok: kd --ensemble {ensemble} ")), "{ensemble} unchecked:\n{report}");
    }
    for name in [
        "ce",
        "kd",
        "reverse-kl",
        "jsd",
        "dist",
        "dkd",
        "mixkd",
        "sp",
        "sk",
        "dlkd",
        "tfkd",
        "tfkd-self",
        "pskd",
        "bdkd",
        "mmd",
    ] {
        assert!(report.contains(&format!("ok: {name} ")), "{name} unchecked:\n{report}");
    }
}

#[test]
fn an_ensemble_needs_two_teachers_and_a_loss_it_can_weight() {
    let dir = tempdir();
    let npy = |name: &str, values: &[f32]| {
        let path = dir.path().join(name);
        kdstore_core::source::npy::write_f32(&path, &[2, 3], values).unwrap();
        path_str(&path).to_string()
    };
    let (s, t1, t2) = (
        npy("s.npy", &[1., 2., 3., 0., 1., 0.]),
        npy("t1.npy", &[3., 1., 0., 1., 1., 2.]),
        npy("t2.npy", &[0., 0., 1., 2., 0., 1.]),
    );
    let labels = dir.path().join("y.npy");
    kdstore_core::source::npy::write_i64(&labels, &[2], &[1, 2]).unwrap();
    let y = path_str(&labels);
    let cases: [(&[&str], &str); 4] = [
        (
            &["kd", "--student", &s, "--teacher", &t1, "--teacher", &t2, "--labels", y],
            "2 teachers need --ensemble (mean, camkd, ebkd)",
        ),
        (
            &["kd", "--student", &s, "--teacher", &t1, "--labels", y, "--ensemble", "camkd"],
            "--ensemble camkd: an ensemble needs at least two --teacher files, got 1",
        ),
        (
            &["kd", "--student", &s, "--teacher", &t1, "--teacher", &t2, "--labels", y, "--ensemble", "vote"],
            "unknown ensemble vote; expected one of mean, camkd, ebkd",
        ),
        (
            &["dist", "--student", &s, "--teacher", &t1, "--teacher", &t2, "--ensemble", "ebkd"],
            "use --ensemble mean with dist",
        ),
    ];
    for (args, message) in cases {
        let output = run(&[&["loss"], args].concat());
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(message), "{args:?}: {}", stderr(&output));
    }
    let mean = run_ok(&["loss", "dist", "--student", &s, "--teacher", &t1, "--teacher", &t2, "--ensemble", "mean"]);
    assert!(stdout(&mean).trim().parse::<f64>().unwrap().is_finite());
}

#[test]
fn unknown_losses_and_keys_are_user_errors_naming_the_choices() {
    let output = run(&["loss", "kl-forward", "--student", "x.npy"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unknown loss kl-forward; expected one of ce, kd, reverse-kl"),
        "{}",
        stderr(&output)
    );
    let output = run(&["loss", "dkd", "--set", "gama=2", "--student", "x.npy"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unknown field `gama`, expected one of `alpha`, `beta`, `temperature`, `warmup`"),
        "{}",
        stderr(&output)
    );
    let output = run(&["loss", "kd", "--set", "temperature=0", "--student", "x.npy"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("temperature must be > 0, got 0"), "{}", stderr(&output));
    let help = stdout(&run_ok(&["loss", "--help"]));
    assert!(help.contains("dkd") && help.contains("warmup [20.0]"), "{help}");
}

#[test]
fn dlkd_needs_its_heads_with_the_right_shapes() {
    let dir = tempdir();
    let save = |name: &str, shape: &[usize], values: Vec<f32>| {
        let path = dir.path().join(name);
        kdstore_core::source::npy::write_f32(&path, shape, &values).unwrap();
        path
    };
    let student = save("s.npy", &[8, 3], (0..24).map(|v| v as f32 / 7.0).collect());
    let features = save("f.npy", &[8, 2], (0..16).map(|v| (v as f32).sin()).collect());
    let labels = dir.path().join("y.npy");
    kdstore_core::source::npy::write_i64(&labels, &[8], &[0, 0, 0, 0, 1, 1, 1, 1]).unwrap();
    let args = ["loss", "dlkd", "--student", path_str(&student), "--labels", path_str(&labels)];
    let features = ["--student-features", path_str(&features), "--teacher-features", path_str(&features)];
    let output = run(&[&args[..], &features[..]].concat());
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("loss dlkd: needs --heads"), "{}", stderr(&output));
    let heads = dir.path().join("heads.npz");
    std::fs::write(&heads, b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0").unwrap();
    let output = run(&[&args[..], &features[..], &["--heads", path_str(&heads)]].concat());
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("missing align.0.bias [32]"), "{}", stderr(&output));
}
