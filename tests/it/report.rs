//! A study's report as a person reads it: runs with known results (written into the planned run
//! folders) give a Markdown report equal to the committed snapshot (tests/it/snapshots/), plots
//! as SVG files, and an HTML page that holds every plot inline and needs nothing else.
//! `KDSTORE_UPDATE_SNAPSHOTS=1 cargo test` rewrites the snapshot.

use std::path::Path;

use crate::common::*;
use crate::study::{column_str, read_parquet, study_file, GRID};

/// A finished run's results.json with metrics made from its cell and seed.
fn fake_results(cell: usize, seed: i64) -> serde_json::Value {
    let accuracy = 0.5 + 0.125 * cell as f64 + 0.0625 * seed as f64;
    let bins: Vec<serde_json::Value> = (0..15)
        .map(|b| {
            let count = if b >= 8 { 2 * (b - 7) + cell } else { 0 };
            serde_json::json!({
                "lower": b as f64 / 15.0, "upper": (b + 1) as f64 / 15.0, "count": count,
                "accuracy": if count > 0 { accuracy } else { 0.0 },
                "confidence": if count > 0 { (b as f64 + 0.5) / 15.0 } else { 0.0 },
            })
        })
        .collect();
    let epochs: Vec<serde_json::Value> =
        (1..=3).map(|e| serde_json::json!({ "epoch": e, "val": { "accuracy": accuracy * e as f64 / 3.0 } })).collect();
    serde_json::json!({
        "test": { "accuracy": accuracy, "nll": 1.0 - accuracy / 2.0, "ece": 0.03125 * (cell + 1) as f64,
                  "teacher_agreement": accuracy, "kl_to_teacher": 0.25 },
        "test_reliability": bins,
        "epochs": epochs,
        "best_epoch": 3,
        "student_parameters": 1000 + cell,
        "train_seconds": 2.0,
        "train_views_per_second": 500.0,
    })
}

#[test]
fn the_report_of_known_runs_is_its_snapshot_and_its_page_holds_every_plot() {
    let dir = tempdir();
    let study = study_file(dir.path(), "", GRID);
    let out = dir.path().join("out");
    let empty = run_ok(&["study", path_str(&study), "--report"]);
    assert!(stderr(&empty).contains("0 of 6 runs done"), "{}", stderr(&empty));
    let planned = read_parquet(&out.join("results.parquet"));
    let cells = column_str(&planned, "cell");
    let labels: Vec<&String> = cells.iter().fold(Vec::new(), |mut seen, c| {
        if !seen.contains(&c) {
            seen.push(c);
        }
        seen
    });
    let seeds: Vec<i64> = planned.column("seed").unwrap().i64().unwrap().iter().flatten().collect();
    for ((folder, cell), seed) in column_str(&planned, "folder").iter().zip(&cells).zip(&seeds) {
        let index = labels.iter().position(|l| *l == cell).unwrap();
        std::fs::create_dir_all(folder).unwrap();
        std::fs::write(Path::new(folder).join("results.json"), fake_results(index, *seed).to_string()).unwrap();
    }
    let done = run_ok(&["study", path_str(&study), "--report"]);
    assert!(stderr(&done).contains("6 of 6 runs done"), "{}", stderr(&done));

    let report = out.join("report");
    let markdown = std::fs::read_to_string(report.join("report.md")).unwrap();
    // What depends on where the test runs (paths, the fixture store's teacher and hash) is named.
    let manifest = kdstore_core::Store::open(basicmotions_store()).unwrap().manifest;
    let hash = &manifest.pipeline_hash;
    let teacher = manifest.teachers[0].accuracy["test"] * 100.0;
    let normalised = markdown
        .replace(path_str(basicmotions_store()), "<store>")
        .replace(path_str(dir.path()), "<dir>")
        .replace(&hash[..16], "<pipeline hash>")
        .replace(&format!("version {}", manifest.version), "version <v>")
        .replace(&format!("--at-version {}", manifest.version), "--at-version <v>")
        .replace(&format!("{teacher:.2}"), "<teacher accuracy>")
        .replace(env!("CARGO_PKG_VERSION"), "<kdstore version>");
    check_snapshot(&repo().join("tests/it/snapshots/study-report.md"), &normalised, "KDSTORE_UPDATE_SNAPSHOTS");

    let plots: Vec<String> = std::fs::read_dir(report.join("plots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "cells.svg",
        "differences.svg",
        "by-set-temperature.svg",
        "heatmap-1.svg",
        "reliability-baseline.svg",
        "reliability-best.svg",
        "accuracy-ece.svg",
        "learning-curves.svg",
    ] {
        assert!(plots.contains(&expected.to_string()), "no {expected} in {plots:?}");
    }
    let page = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert_eq!(page.matches("<svg ").count(), plots.len(), "every plot inline once");
    for plot in &plots {
        let svg = std::fs::read_to_string(report.join("plots").join(plot)).unwrap();
        assert!(page.contains(svg.trim()), "{plot} is inline as written");
    }
    assert!(page.contains("<table>") && page.contains("loss=kd,set.temperature=4"));
    assert!(
        !page.contains("<script")
            && !page.contains("<img")
            && !page.contains("src=\"http")
            && !page.contains("href=\"http")
    );

    // Rebuilt from the same runs, the report is the same bytes.
    run_ok(&["study", path_str(&study), "--report"]);
    assert_eq!(std::fs::read_to_string(report.join("index.html")).unwrap(), page);
}
