//! `kdstore pacing` against the official pacing functions (tests/python/check_pacing.py:
//! google-research/understanding-curricula and GuyHacohen/curriculum_learning, transcribed), and
//! its errors.

use std::process::Command;

use crate::common::*;

#[test]
fn pacing_schedules_equal_the_official_codes() {
    let output = Command::new(python())
        .arg(repo().join("tests/python/check_pacing.py"))
        .arg(env!("CARGO_BIN_EXE_kdstore"))
        .output()
        .expect("the venv's python runs");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "check_pacing.py:\n{report}");
    assert_eq!(report.lines().filter(|l| l.starts_with("ok: ")).count(), 44, "{report}");
}

#[test]
fn a_pacing_prints_one_count_per_step_and_refuses_what_it_does_not_know() {
    let output = run_ok(&["pacing", "baby-steps", "--samples", "10", "--steps", "8", "--set", "buckets=4"]);
    assert_eq!(stdout(&output), "3\n3\n5\n5\n8\n8\n10\n10\n");
    for (args, expected) in [
        (vec!["pacing", "cosine", "--samples", "3", "--steps", "3"], "unknown pacing cosine; expected one of linear"),
        (
            vec!["pacing", "linear", "--samples", "3", "--steps", "3", "--set", "start=1"],
            "--set start=1: pacing linear has no such key",
        ),
        (vec!["pacing", "linear", "--samples", "0", "--steps", "3"], "--samples and --steps must be at least 1"),
    ] {
        let output = run(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(stderr(&output).contains(expected), "{args:?}: {}", stderr(&output));
    }
}
