//! Stores that an older kdstore wrote (schema 4: every view's seed stored in `views`) are read
//! as today's, with the seed derived again, and a build into one keeps their files beside new
//! ones without the column.

use std::fs::File;
use std::path::Path;

use kdstore_core::augment::seed::view_seed;
use kdstore_core::store::{integrity, manifest};
use polars::prelude::*;

use crate::common::*;

/// Rewrites the current version as schema 4 wrote it: each views file gets the `seed` column
/// (under a new path, so that earlier versions stay intact), committed as a new version.
fn as_schema_4(store: &Path) {
    let latest = *manifest::versions(store).unwrap().last().unwrap();
    let mut m = manifest::read(store, latest).unwrap();
    let pipeline_seed = m.seed;
    for file in m.files.iter_mut().filter(|f| f.table == "views") {
        let path = store.join(&file.path);
        let mut frame = ParquetReader::new(File::open(&path).unwrap()).finish().unwrap();
        let column = |name| frame.column(name).unwrap().as_materialized_series().clone();
        let (samples, recipes, replicas) = (column("sample_id"), column("recipe"), column("replica"));
        let seeds: Vec<u64> = (samples.i64().unwrap().into_no_null_iter())
            .zip(recipes.str().unwrap().iter().map(Option::unwrap))
            .zip(replicas.i64().unwrap().into_no_null_iter())
            .map(|((sample, recipe), replica)| view_seed(pipeline_seed, sample, recipe, replica as u32))
            .collect();
        frame.insert_column(4, Column::new("seed".into(), seeds)).unwrap();
        file.path = file.path.replace(".parquet", "-schema4.parquet");
        ParquetWriter::new(File::create(store.join(&file.path)).unwrap()).finish(&mut frame).unwrap();
        let digests = integrity::digests(&store.join(&file.path)).unwrap();
        (file.bytes, file.sha256, file.xxh3) = (digests.bytes, digests.sha256, Some(digests.xxh3));
    }
    m.schema_version = 4;
    manifest::commit(store, &mut m).unwrap();
}

fn query_csv(store: &Path, sql: &str) -> String {
    stdout(&run_ok(&["query", path_str(store), sql, "--format", "csv"]))
}

#[test]
fn a_schema_4_store_with_stored_seeds_reads_replays_trains_and_grows_as_today() {
    let dir = tempdir();
    let pipeline = synthetic_pipeline(dir.path(), 90, "");
    let store = dir.path().join("store");
    run_ok(&["build", path_str(&pipeline)]);
    let views_sql = "SELECT * FROM views ORDER BY view_id";
    let views_before = query_csv(&store, views_sql);
    assert!(!views_before.lines().next().unwrap().split(',').any(|c| c == "seed"), "{views_before}");
    let train = |out: &Path| {
        let out = path_str(out);
        run_ok(&["train", path_str(&store), "--loss", "kd", "--epochs", "2", "--out", out, "-q"]);
    };
    train(&dir.path().join("today"));

    as_schema_4(&store);
    let old_parts = manifest(&store)["files"].as_array().unwrap().iter().filter(|f| f["table"] == "views").count();
    let recipes = query_csv(&store, "SELECT DISTINCT recipe FROM views").lines().count() - 1;
    let old_file = manifest(&store)["files"].as_array().unwrap().iter().find(|f| f["table"] == "views").cloned();
    let old_file = store.join(old_file.unwrap()["path"].as_str().unwrap());
    let old_frame = ParquetReader::new(File::open(&old_file).unwrap()).finish().unwrap();
    assert!(old_frame.column("seed").is_ok(), "{old_frame:?}");
    assert_eq!(manifest(&store)["schema_version"], 4);

    // Read as today's table, replayed with derived seeds, trained from bit for bit alike.
    assert_eq!(query_csv(&store, views_sql), views_before);
    let verified = run_ok(&["verify", path_str(&store), "--deep"]);
    assert!(
        stderr(&verified).contains("intact") && stderr(&verified).contains("views replayed"),
        "{}",
        stderr(&verified)
    );
    train(&dir.path().join("schema4"));
    assert_same_training(&dir.path().join("today"), &dir.path().join("schema4"));

    // A build that adds a recipe keeps the old files and writes the new one without the column.
    let grown = synthetic_pipeline(
        dir.path(),
        90,
        "\n[[recipe]]\nname = \"more\"\nreplicas = 1\nops = [{ op = \"jitter\", sigma = 0.2 }]\n",
    );
    let built = run_ok(&["build", path_str(&grown)]);
    let m = manifest(&store);
    assert_eq!(m["schema_version"], 5, "{}", stderr(&built));
    let paths: Vec<&str> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["table"] == "views")
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.iter().filter(|p| p.ends_with("-schema4.parquet")).count(), old_parts, "{paths:?}");
    assert_eq!(paths.len(), old_parts + 1, "{paths:?}");
    let counts = query_csv(&store, "SELECT recipe, COUNT(*) AS n FROM labels GROUP BY recipe ORDER BY recipe");
    let views = table_rows(&store, "views");
    let total: u64 = counts.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!((counts.lines().count() - 1, total), (recipes + 1, views), "{counts}");
    let verified = run_ok(&["verify", path_str(&store), "--deep"]);
    assert!(stderr(&verified).contains("intact"), "{}", stderr(&verified));
}
