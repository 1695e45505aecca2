//! Bad input: clear messages that name the file, stage, line or column, and exit code 1.

use crate::common::*;

#[test]
fn validate_reports_every_problem_with_its_location() {
    let dir = tempdir();
    let pipeline = pipeline_copy("basicmotions.toml", dir.path(), |text| {
        text.replace("sigma = 0.05", "sigma = -0.05")
            .replace("replicas = 4\nops = [{ op = \"scaling\"", "replicas = 0\nops = [{ op = \"scaling\"")
            .replace("epochs = 40", "epochs = 0")
    });
    let output = run(&["validate", path_str(&pipeline)]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    for expected in [
        "3 problems",
        "recipe 1 ('jitter'): op 1 (jitter): sigma must be > 0",
        "recipe 2 ('scaling'): replicas must be >= 1",
        "teacher 1 ('cnn1d'): epochs must be >= 1",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
}

#[test]
fn every_repository_pipeline_validates() {
    for entry in std::fs::read_dir(repo().join("pipelines")).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            continue; // pipelines/studies: tests/it/study.rs
        }
        let output = run_ok(&["validate", path_str(&path)]);
        assert!(stderr(&output).contains(": ok"), "{}", stderr(&output));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with('#'),
            "{} must open with a comment on what it produces and how long it takes",
            path.display()
        );
    }
}

#[test]
fn a_malformed_source_file_names_the_file_and_line() {
    let dir = tempdir();
    let train = dir.path().join("bad_TRAIN.ts");
    let good = std::fs::read_to_string(repo().join("data/basicmotions/BasicMotions_TRAIN.ts")).unwrap();
    // Drop the last value of the first series' first channel: unequal lengths.
    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
    let data_line = lines.iter().position(|l| l.trim().eq_ignore_ascii_case("@data")).unwrap() + 1;
    let first_channel_end = lines[data_line].find(':').unwrap();
    let shortened = lines[data_line][..first_channel_end].rsplit_once(',').unwrap().0.to_string();
    lines[data_line] = format!("{shortened}{}", &lines[data_line][first_channel_end..]);
    std::fs::write(&train, lines.join("\n")).unwrap();
    let pipeline = pipeline_copy("basicmotions.toml", dir.path(), |text| {
        text.replace("data/basicmotions/BasicMotions_TRAIN.ts", path_str(&train))
    });
    let store = dir.path().join("store");
    let output = run(&["build", path_str(&pipeline), "--store", path_str(&store)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    let line = format!("line {}", data_line + 1);
    assert!(err.contains("bad_TRAIN.ts") && err.contains(&line), "{err}");
    assert_eq!(err.matches(&line).count(), 1, "each cause is printed once: {err}");
    assert!(!store.join("_manifest").exists(), "nothing is committed for a failed samples stage");
}

#[test]
fn a_missing_store_is_a_user_error() {
    for args in [vec!["info", "no/such/store"], vec!["query", "no/such/store", "SELECT 1"]] {
        let output = run(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("no/such/store"), "{}", stderr(&output));
    }
}

#[test]
fn an_op_that_does_not_fit_the_samples_is_a_views_stage_error() {
    let dir = tempdir();
    // The synthetic series have 3 channels; the default rotation sensor names channels 0-5.
    let pipeline = synthetic_pipeline(dir.path(), 60, "\n[[recipe]]\nname = \"rot\"\nops = [{ op = \"rotation\" }]\n");
    let output = run(&["build", path_str(&pipeline)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("stage views: recipe rot: op 1 (rotation): channel 3 does not exist: the samples have 3 channels"),
        "{err}"
    );
}
