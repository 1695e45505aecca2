//! `kdstore study`: a grid of trainings on the real BasicMotions store — planned, run in parallel,
//! rerun (nothing redone), extended, killed and resumed, run by two processes at once and in
//! shares, with failures recorded — and its tables checked against the runs' own results.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use polars::prelude::*;

use crate::common::*;

/// A study file over the shared BasicMotions store, into `dir/out`.
pub(crate) fn study_file(dir: &Path, extra_study: &str, rest: &str) -> PathBuf {
    let text = format!(
        r#"[study]
store = "{store}"
out = "{out}"
seeds = [1, 2]
baseline = {{ loss = "ce" }}
{extra_study}
[base]
student = "cnn1d"
width = 8
epochs = 3
batch-size = 16
{rest}"#,
        store = path_str(basicmotions_store()),
        out = path_str(&dir.join("out")),
    );
    let path = dir.join("study.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub(crate) const GRID: &str = r#"
[grid]
loss = ["ce", "kd"]
set.temperature = [2, 4]
[[exclude]]
loss = "ce"
"set.temperature" = 4
"#;

pub(crate) fn read_parquet(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

fn column_f64(frame: &DataFrame, name: &str) -> Vec<Option<f64>> {
    frame.column(name).unwrap().f64().unwrap().iter().collect()
}

pub(crate) fn column_str(frame: &DataFrame, name: &str) -> Vec<String> {
    frame.column(name).unwrap().str().unwrap().iter().map(|v| v.unwrap_or("").to_string()).collect()
}

/// Every run folder under the study's `out/runs`.
fn run_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .flatten()
        .flat_map(|cell| std::fs::read_dir(cell.path()).unwrap().flatten().map(|run| run.path()))
        .collect();
    dirs.sort();
    dirs
}

/// How many times a run's training finished, from its log.
fn finished_trainings(run: &Path) -> usize {
    std::fs::read_to_string(run.join("train.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("trained "))
        .count()
}

/// The metrics of results.parquet, by run id (what must not change whatever happened on the way).
fn metrics_by_run(out: &Path) -> Vec<(String, Vec<Option<f64>>)> {
    let frame = read_parquet(&out.join("results.parquet"));
    let ids = column_str(&frame, "run_id");
    let columns: Vec<Vec<Option<f64>>> = ["test_accuracy", "test_nll", "test_ece", "test_agreement", "best_epoch"]
        .iter()
        .map(|c| column_f64(&frame, c))
        .collect();
    let mut rows: Vec<(String, Vec<Option<f64>>)> =
        ids.into_iter().enumerate().map(|(i, id)| (id, columns.iter().map(|c| c[i]).collect())).collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[test]
fn a_study_runs_in_parallel_reruns_nothing_and_grows_with_its_grid() {
    let dir = tempdir();
    let study = study_file(dir.path(), "", GRID);
    let out = dir.path().join("out");
    let plan = stdout(&run_ok(&["study", path_str(&study), "--plan"]));
    assert!(plan.contains("3 cells × 2 seeds = 6 runs"), "{plan}");
    assert!(plan.contains("0 done, 0 running, 0 failed, 0 to retry, 0 interrupted, 6 new"), "{plan}");
    assert!(!out.exists(), "--plan runs nothing");

    let ran = run_ok(&["study", path_str(&study), "--jobs", "2", "--threads", "2"]);
    assert!(stderr(&ran).contains("6 of 6 runs done"), "{}", stderr(&ran));
    let results = read_parquet(&out.join("results.parquet"));
    assert_eq!(results.height(), 6);
    assert!(column_str(&results, "status").iter().all(|s| s == "done"));
    // Seed-major: every cell's seed 1 before any seed 2.
    let seeds: Vec<i64> = results.column("seed").unwrap().i64().unwrap().iter().flatten().collect();
    assert_eq!(seeds, [1, 1, 1, 2, 2, 2]);
    // The varied keys are columns named as in the study file; a number axis is numeric.
    assert_eq!(column_str(&results, "loss"), ["ce", "kd", "kd", "ce", "kd", "kd"]);
    assert_eq!(column_f64(&results, "set.temperature")[2], Some(4.0));
    // Every row is its run folder's results.json, and the ce cell trains without the temperature.
    let folders = column_str(&results, "folder");
    let accuracy = column_f64(&results, "test_accuracy");
    for (folder, accuracy) in folders.iter().zip(&accuracy) {
        let run = results_of(Path::new(folder));
        assert_eq!(run["test"]["accuracy"].as_f64(), *accuracy, "{folder}");
        assert_eq!(finished_trainings(Path::new(folder)), 1);
        let placed: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(Path::new(folder).join("run.json")).unwrap()).unwrap();
        assert_eq!(placed["threads"], 1, "two jobs share two cores");
        // The kept test predictions give the test accuracy; the reliability bins hold every sample.
        let predictions = read_parquet(&Path::new(folder).join("predictions.parquet"));
        let labels = predictions.column("label").unwrap().i64().unwrap();
        let predicted = predictions.column("prediction").unwrap().i64().unwrap();
        let right = labels.iter().zip(predicted.iter()).filter(|(l, p)| l == p).count();
        assert_eq!(Some(right as f64 / predictions.height() as f64), *accuracy, "{folder}");
        let binned: u64 =
            run["test_reliability"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
        assert_eq!(binned as usize, predictions.height());
    }
    let ce = results_of(Path::new(&folders[0]));
    assert_eq!(ce["config"]["losses"][0]["loss"], "ce");

    // summary.parquet and the report agree with the rows.
    let summary = read_parquet(&out.join("summary.parquet"));
    assert_eq!(summary.height(), 3);
    let means = column_f64(&summary, "mean");
    let kd_t4 = (accuracy[2].unwrap() + accuracy[5].unwrap()) / 2.0;
    assert!((means[2].unwrap() - kd_t4).abs() < 1e-12);
    assert_eq!(column_f64(&summary, "p_floor")[1], Some(0.5), "two seeds: 2/2²");
    let report = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(report.contains("6 of 6 runs done") && report.contains("loss=ce,set.temperature=2 (baseline)"), "{report}");

    // A cell is exactly the `kdstore train` command the report gives for it.
    let command = column_str(&summary, "command")[1].clone();
    let mut words: Vec<String> = command.split(' ').skip(1).map(|w| w.trim_matches('\'').to_string()).collect();
    let direct = dir.path().join("direct");
    words.extend(["--out".into(), path_str(&direct).into(), "--threads".into(), "1".into()]);
    run_ok(&words.iter().map(String::as_str).collect::<Vec<_>>());
    let kd_t2_seed1 = Path::new(&folders[1]);
    assert_same_training(kd_t2_seed1, &direct);

    // Rerunning starts nothing and changes nothing.
    let before = snapshot(&out.join("runs"));
    let again = run_ok(&["study", path_str(&study)]);
    assert!(!stderr(&again).contains("starting"), "{}", stderr(&again));
    assert_eq!(snapshot(&out.join("runs")), before);

    // A new temperature adds its runs; a changed base makes new runs, never reuses the old ones.
    let grown = study_file(dir.path(), "", &GRID.replace("[2, 4]", "[2, 4, 8]").replace("= 4\n", "= [4, 8]\n"));
    let plan = stdout(&run_ok(&["study", path_str(&grown), "--plan"]));
    assert!(plan.contains("6 done") && plan.contains("2 new"), "{plan}");
    let changed = study_file(dir.path(), "", &format!("weight_decay = 0.01\n{GRID}"));
    let plan = stdout(&run_ok(&["study", path_str(&changed), "--plan"]));
    assert!(plan.contains("0 done") && plan.contains("6 new"), "{plan}");
}

fn results_of(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap()
}

#[test]
fn bad_study_files_are_one_error_each_all_at_once() {
    let dir = tempdir();
    let study = study_file(
        dir.path(),
        "",
        r#"
colour = "blue"
seed = 3
[grid]
loss = ["ce", "kd"]
depth = []
[[exclude]]
loss = "nope"
"#,
    );
    let output = run(&["study", path_str(&study)]);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    for expected in [
        "base.colour: not a `kdstore train` setting",
        "base.seed: the study sets `seed` itself",
        "grid.depth: the list is empty",
        "exclude[0]: matches no cell of the grid",
    ] {
        assert!(error.contains(expected), "missing {expected:?} in:\n{error}");
    }
    assert!(!dir.path().join("out").exists(), "nothing ran");

    // Values train rejects, a baseline that is no cell, a store that does not exist.
    let rejected = study_file(
        dir.path(),
        "",
        r#"
[grid]
loss = ["kd", "dist"]
set.tau = [0]
lr = [-1]
"#,
    );
    let text = std::fs::read_to_string(&rejected)
        .unwrap()
        .replace(r#"baseline = { loss = "ce" }"#, r#"baseline = { loss = "mse" }"#);
    std::fs::write(&rejected, text).unwrap();
    let error = stderr(&run(&["study", path_str(&rejected)]));
    assert!(error.contains("study.baseline: loss=mse is not a cell of the study"), "{error}");
    assert!(error.contains("`kdstore train` rejects it: --lr must be > 0, got -1"), "{error}");
    let missing =
        std::fs::read_to_string(&rejected).unwrap().replace(path_str(basicmotions_store()), "/nonexistent/store");
    std::fs::write(&rejected, missing).unwrap();
    let error = stderr(&run(&["study", path_str(&rejected)]));
    assert!(error.contains("study.store:") && error.contains("/nonexistent/store"), "{error}");
    // An unknown key in [study] is a parse error with its line.
    let typo = study_file(dir.path(), "sedes = [1]", GRID);
    let error = stderr(&run(&["study", path_str(&typo)]));
    assert!(error.contains("unknown field `sedes`") && error.contains("line"), "{error}");
}

#[test]
fn a_diverging_cell_fails_its_attempts_and_the_others_finish() {
    let dir = tempdir();
    let study = study_file(
        dir.path(),
        "max_attempts = 2",
        r#"
[grid]
loss = ["ce"]
lr = [0.003, 1000000]
"#,
    );
    let text =
        std::fs::read_to_string(&study).unwrap().replace(r#"baseline = { loss = "ce" }"#, "baseline = { lr = 0.003 }");
    std::fs::write(&study, text).unwrap();
    let output = run(&["study", path_str(&study)]);
    assert_eq!(output.status.code(), Some(1), "failures remain: {}", stderr(&output));
    assert!(stderr(&output).contains("2 runs failed"), "{}", stderr(&output));
    let out = dir.path().join("out");
    let results = read_parquet(&out.join("results.parquet"));
    assert_eq!(column_str(&results, "status"), ["done", "failed", "done", "failed"]);
    let errors = column_str(&results, "error");
    assert!(errors[1].contains("training diverged"), "{errors:?}");
    let attempts: Vec<i64> = results.column("attempts_failed").unwrap().i64().unwrap().iter().flatten().collect();
    assert_eq!(attempts, [0, 2, 0, 2]);
    let report = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(report.contains("2 of 4 runs done, 2 failed") && report.contains("## Failures"), "{report}");
    // A rerun does not try an exhausted run again.
    let again = run(&["study", path_str(&study)]);
    assert!(!stderr(&again).contains("starting"), "{}", stderr(&again));
}

fn start_study(study: &Path, extra: &[&str]) -> Child {
    kdstore().args(["study", path_str(study)]).args(extra).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn kill(pid: u32) {
    signal(pid, "KILL");
}

fn signal(pid: u32, name: &str) {
    std::process::Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().unwrap();
}

/// A training of the study that has run for a moment (past its start-up, into its epochs).
fn wait_for_a_training(study: &Child) -> u32 {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(&training) = children_of(study.id()).first() {
            std::thread::sleep(Duration::from_millis(700));
            return training;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the study started no training in 60 s");
}

#[test]
fn a_study_killed_at_random_moments_ends_with_the_results_of_an_uninterrupted_one() {
    let reference_dir = tempdir();
    let reference = study_file(reference_dir.path(), "", GRID);
    let text = std::fs::read_to_string(&reference).unwrap().replace("epochs = 3", "epochs = 6");
    std::fs::write(&reference, text).unwrap();
    run_ok(&["study", path_str(&reference), "--jobs", "2", "--threads", "2"]);

    let dir = tempdir();
    let study = dir.path().join("study.toml");
    let text = std::fs::read_to_string(&reference)
        .unwrap()
        .replace(path_str(&reference_dir.path().join("out")), path_str(&dir.path().join("out")));
    std::fs::write(&study, text).unwrap();
    let out = dir.path().join("out");
    // Kill the study (its children die with it) at moments drawn from a fixed seed, once one of its
    // trainings alone, and stop it and one training with a scheduler's signals; then let it finish.
    let mut state = 0x2545_f491_u64;
    let mut next_delay = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Duration::from_millis(400 + state % 1500)
    };
    for round in 0..5 {
        let mut child = start_study(&study, &["--jobs", "2", "--threads", "2"]);
        if round == 0 {
            // A scheduler's warning (Slurm's --signal): the study stops its trainings and exits 75.
            wait_for_a_training(&child);
            signal(child.id(), "USR1");
            let output = child.wait_with_output().unwrap();
            let error = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(75), "{error}");
            assert!(error.contains("stopped by SIGUSR1") && !error.contains("failed "), "{error}");
            continue;
        }
        if round == 1 {
            // SIGTERM to one training: it stops (exit 75), is not counted as failed, and resumes later.
            signal(wait_for_a_training(&child), "TERM");
            std::thread::sleep(Duration::from_millis(500));
        }
        let started = Instant::now();
        let delay = next_delay();
        while started.elapsed() < delay {
            std::thread::sleep(Duration::from_millis(20));
            if round == 3 {
                if let Some(&training) = children_of(child.id()).first() {
                    std::thread::sleep(Duration::from_millis(300));
                    kill(training);
                    break;
                }
            }
        }
        kill(child.id());
        child.wait().unwrap();
    }
    let finished = run_ok(&["study", path_str(&study), "--jobs", "2", "--threads", "2"]);
    assert!(stderr(&finished).contains("6 of 6 runs done"), "{}", stderr(&finished));
    assert_eq!(metrics_by_run(&out), metrics_by_run(&reference_dir.path().join("out")));
    for (a, b) in run_dirs(&out).iter().zip(run_dirs(&reference_dir.path().join("out"))) {
        assert_eq!(a.file_name(), b.file_name());
        assert_same_training(a, &b);
    }
}

#[test]
fn two_processes_and_shards_run_every_run_exactly_once() {
    let dir = tempdir();
    let study = study_file(dir.path(), "", GRID);
    let out = dir.path().join("out");
    let (a, b) = (start_study(&study, &["--threads", "1"]), start_study(&study, &["--threads", "1"]));
    for child in [a, b] {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let runs = run_dirs(&out);
    assert_eq!(runs.len(), 6);
    for run in &runs {
        assert_eq!(finished_trainings(run), 1, "{} trained once", run.display());
        assert!(!run.join("attempts.json").exists());
    }

    // Two shares as separate processes: together every run, each once.
    let sharded = tempdir();
    let study = study_file(sharded.path(), "", GRID);
    let shares: Vec<Child> =
        ["0/2", "1/2"].iter().map(|share| start_study(&study, &["--shard", share, "--threads", "1"])).collect();
    for child in shares {
        assert!(child.wait_with_output().unwrap().status.success());
    }
    let runs = run_dirs(&sharded.path().join("out"));
    assert_eq!(runs.len(), 6);
    assert!(runs.iter().all(|run| finished_trainings(run) == 1));

    // --index K runs the K-th run of the plan only.
    let single = tempdir();
    let study = study_file(single.path(), "", GRID);
    run_ok(&["study", path_str(&study), "--index", "4"]);
    let results = read_parquet(&single.path().join("out/results.parquet"));
    assert_eq!(column_str(&results, "status"), ["new", "new", "new", "new", "done", "new"]);
    let error = stderr(&run(&["study", path_str(&study), "--shard", "2/2"]));
    assert!(error.contains("--shard 2/2: expected I/N with 0 <= I < N"), "{error}");
}

#[test]
fn the_repository_series_studies_plan_on_a_store_with_their_recipes() {
    // BasicMotions' pipeline has every series recipe the HAPT studies name, so their cells resolve
    // as they will on the HAPT stores.
    let dir = tempdir();
    let names =
        ["hapt-kd-vs-scratch", "hapt-augmentations", "hapt-losses-temperature", "hapt-losses", "basicmotions-quick"];
    for name in names {
        let text = std::fs::read_to_string(repo().join("pipelines/studies").join(format!("{name}.toml"))).unwrap();
        assert!(text.starts_with('#'), "{name} opens with what it studies and how to run it");
        let store = format!("\"{}\"", path_str(basicmotions_store()));
        let text = text
            .replace("\"runs/hapt-augmentations\"", &store)
            .replace("\"runs/hapt-embeddings\"", &store)
            .replace("\"runs/hapt\"", &store)
            .replace("\"runs/basicmotions\"", &store)
            .replace("runs/studies", path_str(dir.path()));
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let plan = stdout(&run_ok(&["study", path_str(&path), "--plan"]));
        assert!(plan.contains("(baseline)") && plan.contains(" new"), "{name}:\n{plan}");
    }
    let expected =
        [("hapt-kd-vs-scratch", 24), ("hapt-augmentations", 39), ("hapt-losses-temperature", 102), ("hapt-losses", 18)];
    for (name, runs) in expected {
        let plan = stdout(&run_ok(&["study", path_str(&dir.path().join(format!("{name}.toml"))), "--plan"]));
        assert!(plan.contains(&format!("= {runs} runs")), "{name}:\n{plan}");
    }
}

#[test]
fn slurm_prints_a_job_array_of_one_task_per_run_that_requeues_on_the_warning() {
    let dir = tempdir();
    let study = study_file(dir.path(), "", GRID);
    let script = stdout(&run_ok(&["study", path_str(&study), "--slurm", "--threads", "2"]));
    for expected in [
        "#!/bin/bash",
        "#SBATCH --array=0-5",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --requeue",
        "#SBATCH --signal=B:USR1@120",
        "--index \"$SLURM_ARRAY_TASK_ID\"",
        "scontrol requeue",
    ] {
        assert!(script.contains(expected), "missing {expected:?} in:\n{script}");
    }
    assert!(script.contains(&format!("'{}'", path_str(&study))), "the study by its absolute path:\n{script}");
    let file = dir.path().join("study.sbatch");
    std::fs::write(&file, &script).unwrap();
    let syntax = std::process::Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    assert!(dir.path().join("out/slurm").is_dir(), "the logs' folder exists before a task opens its log");
    assert!(!dir.path().join("out/runs").exists(), "--slurm runs nothing");
}
