//! `kdstore query` and `kdstore info`: formats, the labels view, errors, and that queries never write.

use crate::common::*;

#[test]
fn labels_view_joins_views_samples_and_logits() {
    let store = basicmotions_store();
    let output = run_ok(&[
        "query",
        path_str(store),
        "SELECT recipe, split, COUNT(*) AS n, MIN(lam) AS min_lam, MAX(lam) AS max_lam FROM labels GROUP BY recipe, split ORDER BY recipe, split",
        "--format",
        "json",
    ]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&output)).unwrap();
    let manifest = manifest(store);
    let train = manifest["dataset"]["split_counts"]["train"].as_u64().unwrap();
    let find = |recipe: &str, split: &str| rows.iter().find(|r| r["recipe"] == recipe && r["split"] == split).cloned();
    assert_eq!(find("identity", "test").unwrap()["n"], 40);
    assert_eq!(find("jitter", "train").unwrap()["n"], 4 * train);
    assert!(find("jitter", "test").is_none(), "augmented views are made for the training split only");
    let mixup = find("mixup", "train").unwrap();
    assert!(mixup["min_lam"].as_f64().unwrap() >= 0.0 && mixup["max_lam"].as_f64().unwrap() <= 1.0);
    assert!(find("identity", "train").unwrap()["min_lam"].is_null(), "unmixed views have no lambda");
}

#[test]
fn csv_and_parquet_outputs_hold_the_same_rows() {
    let store = basicmotions_store();
    let sql = "SELECT view_id, teacher_correct, entropy FROM labels WHERE recipe = 'identity' ORDER BY view_id LIMIT 5";
    let csv = stdout(&run_ok(&["query", path_str(store), sql, "--format", "csv"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "view_id,teacher_correct,entropy");
    assert_eq!(lines.len(), 6);
    let dir = tempdir();
    let out = dir.path().join("result.parquet");
    run_ok(&["query", path_str(store), sql, "--format", "parquet", "--output", path_str(&out)]);
    let again = stdout(&run_ok(&["query", path_str(store), sql, "--format", "csv"]));
    assert_eq!(csv, again, "queries are repeatable");
    assert!(std::fs::metadata(&out).unwrap().len() > 0);
}

#[test]
fn table_output_and_info_describe_the_store() {
    let store = basicmotions_store();
    let table = stdout(&run_ok(&["query", path_str(store), "SELECT COUNT(*) AS views FROM views"]));
    assert!(table.contains("views"), "{table}");
    let info = stdout(&run_ok(&["info", path_str(store)]));
    for expected in
        ["version", "samples   80 rows", "teachers", "cnn1d", "accuracy: test", "bytes per (view, teacher) row"]
    {
        assert!(info.contains(expected), "missing {expected:?} in:\n{info}");
    }
    let json: serde_json::Value = serde_json::from_str(&stdout(&run_ok(&["info", path_str(store), "--json"]))).unwrap();
    assert_eq!(json["tables"]["samples"]["rows"], 80);
    assert!(json["bytes_per_view_teacher_row"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_sql_and_unknown_columns_are_one_line_user_errors_and_change_nothing() {
    let store = basicmotions_store();
    let before = snapshot(store);
    for (sql, expected) in [
        ("SELECT no_such_column FROM labels", "no_such_column"),
        ("SELEC * FROM views", "sql"),
        ("SELECT * FROM no_such_table", "no_such_table"),
    ] {
        let output = run(&["query", path_str(store), sql]);
        assert_eq!(output.status.code(), Some(1), "{sql}: {}", stderr(&output));
        let err = stderr(&output);
        assert_eq!(err.trim_end().lines().count(), 1, "one line for {sql}: {err}");
        assert!(err.starts_with("error: ") && err.contains(expected), "{sql}: {err}");
    }
    assert_eq!(snapshot(store), before, "queries must not modify the store");
}

#[test]
fn bench_times_labelling_and_replay_without_writing() {
    let store = basicmotions_store();
    let before = snapshot(store);
    let output = run_ok(&["bench", path_str(store), "--threads", "1", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let result = &json["labelling"];
    let views = manifest(store)["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["table"] == "views")
        .map(|f| f["rows"].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(result["views"], views);
    assert_eq!(result["teacher"], "cnn1d");
    assert!(result["bare_forward_seconds"].as_f64().unwrap() > 0.0);
    assert!(result["labelling_seconds"].as_f64().unwrap() > 0.0);
    // Every recipe's views were replayed, identity included.
    let replay = json["replay"].as_array().unwrap();
    assert_eq!(replay.len(), 11, "{replay:?}");
    assert_eq!(replay.iter().map(|r| r["views"].as_u64().unwrap()).sum::<u64>(), views);
    assert_eq!(snapshot(store), before, "bench only reads the store");
}
