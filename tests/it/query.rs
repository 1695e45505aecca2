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
    let views = table_rows(store, "views");
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

#[test]
fn labels_puts_every_view_beside_its_own_logits_for_every_teacher() {
    // Two teachers with different logits dtypes: the labels view lines each logits file up with
    // the views file it labels; any misalignment shows as a row whose statistics differ from the
    // logits table's row for the same (view, teacher).
    let dir = tempdir();
    let pipeline = pipeline_copy("basicmotions.toml", dir.path(), |text| {
        format!("{text}\n[[teacher]]\nkind = \"builtin\"\nname = \"small\"\narch = \"mlp\"\nwidth = 8\ndepth = 1\nepochs = 2\nlogits_dtype = \"f16\"\n")
    });
    let store = dir.path().join("store");
    run_ok(&["build", path_str(&pipeline), "--store", path_str(&store)]);
    let count = |sql: &str| -> u64 {
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&stdout(&run_ok(&["query", path_str(&store), sql, "--format", "json"]))).unwrap();
        rows[0]["n"].as_u64().unwrap()
    };
    let logits_rows = count("SELECT COUNT(*) AS n FROM logits");
    assert_eq!(count("SELECT COUNT(*) AS n FROM labels"), logits_rows);
    let matching = count(
        "SELECT COUNT(*) AS n FROM labels l JOIN logits g ON l.view_id = g.view_id AND l.teacher = g.teacher \
         WHERE l.entropy = g.entropy AND l.teacher_loss = g.teacher_loss AND l.teacher_pred = g.teacher_pred",
    );
    assert_eq!(matching, logits_rows, "every labels row carries its own view's logits");
    let with_samples = count(
        "SELECT COUNT(*) AS n FROM labels l JOIN samples s ON l.sample_id = s.sample_id WHERE l.label = s.label AND l.split = s.split",
    );
    assert_eq!(with_samples, logits_rows);
    assert_eq!(count("SELECT COUNT(DISTINCT teacher) AS n FROM labels"), 2);
}

#[test]
fn conditions_on_parts_read_fewer_files_and_answer_the_same() {
    let store = basicmotions_store();
    let query = |sql: &str| stdout(&run_ok(&["query", path_str(store), sql, "--format", "csv"]));
    // `recipe || ''` hides the condition from partition pruning, so both sides must agree.
    for (pruned, whole) in [
        (
            "SELECT recipe, COUNT(*), AVG(entropy) FROM labels WHERE recipe IN ('jitter', 'mixup') AND teacher = 'cnn1d' GROUP BY recipe ORDER BY recipe",
            "SELECT recipe, COUNT(*), AVG(entropy) FROM labels WHERE recipe || '' IN ('jitter', 'mixup') AND teacher || '' = 'cnn1d' GROUP BY recipe ORDER BY recipe",
        ),
        (
            "SELECT COUNT(*) FROM views v WHERE v.recipe = 'scaling' AND v.replica = 2",
            "SELECT COUNT(*) FROM views v WHERE v.recipe || '' = 'scaling' AND v.replica + 0 = 2",
        ),
        ("SELECT COUNT(*) FROM labels WHERE recipe = 'no such recipe'", "SELECT COUNT(*) FROM labels WHERE recipe || '' = 'no such recipe'"),
    ] {
        let (a, b) = (query(pruned), query(whole));
        assert_eq!(a.lines().skip(1).collect::<Vec<_>>(), b.lines().skip(1).collect::<Vec<_>>(), "{pruned}");
        assert!(a.lines().count() >= 2, "{a}");
    }
    assert_eq!(query("SELECT COUNT(*) AS n FROM views v WHERE v.recipe = 'scaling' AND v.replica = 2"), "n\n34\n");
}

#[test]
fn a_query_handed_over_in_batches_gives_the_rows_of_the_whole_result_and_stops_at_an_error() {
    let store = kdstore_core::Store::open(basicmotions_store()).unwrap();
    let sql = "SELECT view_id, logits FROM labels WHERE split = 'train' AND recipe <> 'identity'";
    let whole = kdstore_core::query::run(&store, sql).unwrap();
    let ids = |frame: &polars::prelude::DataFrame| -> Vec<i64> {
        frame.column("view_id").unwrap().i64().unwrap().into_no_null_iter().collect()
    };
    let mut expected = ids(&whole);
    expected.sort_unstable();
    let mut batched = Vec::new();
    kdstore_core::query::for_each_batch(&store, sql, |batch| {
        assert_eq!(batch.get_column_names(), whole.get_column_names());
        batched.extend(ids(&batch));
        Ok::<(), kdstore_core::QueryError>(())
    })
    .unwrap();
    batched.sort_unstable();
    assert!(expected.len() > 100);
    assert_eq!(batched, expected);

    let mut calls = 0;
    let stopped = kdstore_core::query::for_each_batch(&store, sql, |_| {
        calls += 1;
        Err(kdstore_core::QueryError::Write("stop here".into()))
    });
    assert_eq!(calls, 1);
    assert!(matches!(stopped, Err(kdstore_core::QueryError::Write(m)) if m == "stop here"));
    let bad = kdstore_core::query::for_each_batch(&store, "SELECT nope FROM labels", |_| {
        Ok::<(), kdstore_core::QueryError>(())
    });
    assert!(matches!(bad, Err(kdstore_core::QueryError::Sql(_))), "{bad:?}");
}
