"""Times `kdstore query` against DuckDB on the same store files (docs/benchmarks.md).

DuckDB reads exactly the Parquet files the store's current manifest lists, through views defined
like kdstore's (`labels` = views ⋈ samples ⋈ logits). Each query runs three times and the best wall
time counts. kdstore is timed as the command a user runs (process start, manifest, plan, scan,
print as CSV); DuckDB in process, without its start-up, which favours DuckDB.

usage: bench-query.py KDSTORE_BINARY STORE
"""

import glob
import json
import os
import subprocess
import sys
import time

import duckdb

QUERIES = [
    "SELECT recipe, COUNT(*) AS n, AVG(entropy) AS mean_entropy FROM labels GROUP BY recipe ORDER BY recipe",
    "SELECT split, AVG(CAST(teacher_correct AS DOUBLE)) AS accuracy FROM labels WHERE recipe = 'identity' GROUP BY split ORDER BY split",
    "SELECT view_id, teacher_loss FROM labels WHERE NOT teacher_correct ORDER BY teacher_loss DESC LIMIT 100",
    "SELECT COUNT(*) AS n FROM views WHERE lam < 0.5",
]


def best_of(runs, action):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main(binary, store):
    manifest = json.load(open(sorted(glob.glob(os.path.join(store, "_manifest", "*.json")))[-1]))
    files = {}
    for f in manifest["files"]:
        files.setdefault(f["table"], []).append(os.path.join(store, f["path"]))
    con = duckdb.connect()
    for table in ("samples", "views", "logits"):
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({files[table]!r}, union_by_name = true)")
    con.execute(
        'CREATE VIEW labels AS SELECT * FROM views JOIN (SELECT sample_id, split, label, "group" FROM samples) USING (sample_id) JOIN logits USING (view_id)'
    )
    startup = best_of(3, lambda: subprocess.run([binary, "query", store, "SELECT 1 AS one", "--format", "csv"], capture_output=True, check=True))
    print(f"kdstore start-up (SELECT 1): {startup * 1000:.0f} ms")
    print("| query | kdstore query | DuckDB | kdstore / DuckDB |")
    print("| --- | --- | --- | --- |")
    for sql in QUERIES:
        ours = best_of(3, lambda: subprocess.run([binary, "query", store, sql, "--format", "csv"], capture_output=True, check=True))
        theirs = best_of(3, lambda: con.execute(sql).fetchall())
        print(f"| `{sql}` | {ours * 1000:.0f} ms | {theirs * 1000:.0f} ms | {ours / theirs:.1f}x |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
