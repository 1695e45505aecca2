"""Times `kdstore query` against the DuckDB command-line program on the same store (docs/benchmarks.md).

Both engines are timed as the processes users run, from start to exit, on exactly the Parquet files
the store's current manifest lists: DuckDB reads them through views saved in a database file
(`samples`, `views`, `logits` and `labels` = views JOIN samples JOIN logits, as kdstore defines it),
so that each `duckdb` run, like each `kdstore query` run, starts by reading a small catalogue and
then the data. Each query runs --runs times per engine (interleaved); the best and the median wall
time count, with the peak resident memory of the best run (ru_maxrss from wait4). Both print CSV
to a pipe, and the script checks that they agree on the answer before timing it. It also times the
start-up commands: `kdstore --version`, `kdstore info` and a small query.

usage: bench-query.py KDSTORE_BINARY DUCKDB_BINARY STORE [--runs N]
"""

import argparse
import csv
import io
import json
import math
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

QUERIES = [
    (
        "grouped aggregate over labels",
        "SELECT recipe, split, COUNT(*), AVG(entropy), AVG(CAST(teacher_correct AS DOUBLE)) FROM labels GROUP BY recipe, split ORDER BY recipe, split",
    ),
    (
        "filtered aggregate",
        "SELECT COUNT(*), AVG(teacher_loss), MAX(entropy) FROM labels WHERE NOT teacher_correct AND p_label < 0.5",
    ),
    (
        "top-N by a statistic",
        "SELECT view_id, recipe, replica, teacher_loss FROM labels ORDER BY teacher_loss DESC, view_id LIMIT 100",
    ),
    (
        "filter on a drawn parameter",
        "SELECT COUNT(*), AVG(p_label) FROM labels WHERE recipe = 'scaling' AND scaling_factors[1] > 1.1",
    ),
    (
        "views JOIN samples grouped by group",
        'SELECT s."group", COUNT(*), AVG(s.label) FROM views v JOIN samples s ON v.sample_id = s.sample_id GROUP BY s."group" ORDER BY 1',
    ),
]


def timed(argv):
    """One run with wait4: (seconds, peak RSS MiB, stdout)."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        err = process.stderr.read().decode()
        process.stderr.close()
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} ... failed: {err[-400:]}")
        out.seek(0)
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def rows_of(text):
    return list(csv.reader(io.StringIO(text)))


def same_answer(ours, theirs):
    a, b = rows_of(ours), rows_of(theirs)
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} lines"
    for row_a, row_b in zip(a[1:], b[1:]):
        for x, y in zip(row_a, row_b):
            try:
                if not math.isclose(float(x), float(y), rel_tol=1e-4, abs_tol=1e-6):
                    return f"{row_a} vs {row_b}"
            except ValueError:
                if x != y:
                    return f"{row_a} vs {row_b}"
    return None


def duckdb_catalogue(duckdb, store, directory):
    manifests = sorted(p for p in (store / "_manifest").glob("*.json") if not p.name.startswith("."))
    manifest = json.loads(manifests[-1].read_text())
    files = {}
    for f in manifest["files"]:
        files.setdefault(f["table"], []).append(str((store / f["path"]).resolve()))
    statements = [
        f"CREATE VIEW {table} AS SELECT * FROM read_parquet({files[table]!r});"
        for table in ("samples", "views", "logits")
    ]
    statements.append(
        'CREATE VIEW labels AS SELECT * FROM views JOIN (SELECT sample_id, split, label, "group" FROM samples) '
        "USING (sample_id) JOIN logits USING (view_id);"
    )
    script = directory / "views.sql"
    script.write_text("\n".join(statements) + "\n")
    database = directory / "store.duckdb"
    subprocess.run([duckdb, str(database), "-c", f".read {script}"], check=True)
    rows = sum(f["rows"] for f in manifest["files"] if f["table"] == "logits")
    return database, rows, len(manifest["files"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kdstore")
    parser.add_argument("duckdb")
    parser.add_argument("store", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    version = subprocess.run([args.duckdb, "--version"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        database, rows, files = duckdb_catalogue(args.duckdb, args.store, Path(tmp))
        print(f"store {args.store}: {rows:,} (view, teacher) rows in {files} files; DuckDB CLI {version}; {os.cpu_count()} cores; best of {args.runs}")
        print()
        print("| command | median | best | peak memory |")
        print("| --- | --- | --- | --- |")
        for title, argv in [
            ("kdstore --version", [args.kdstore, "--version"]),
            ("kdstore info STORE", [args.kdstore, "info", str(args.store)]),
            ("kdstore query STORE \"SELECT COUNT(*) FROM samples\"", [args.kdstore, "query", str(args.store), "SELECT COUNT(*) FROM samples", "--format", "csv"]),
            ("duckdb -c \"SELECT 1\"", [args.duckdb, "-c", "SELECT 1"]),
        ]:
            runs = [timed(argv) for _ in range(max(args.runs, 10))]
            times = [r[0] for r in runs]
            print(f"| `{title}` | {statistics.median(times) * 1000:.1f} ms | {min(times) * 1000:.1f} ms | {max(r[1] for r in runs):.0f} MiB |")
        print()
        print("| query shape | kdstore best (median) | DuckDB best (median) | kdstore / DuckDB | peak memory kdstore / DuckDB |")
        print("| --- | --- | --- | --- | --- |")
        for title, sql in QUERIES:
            ours_argv = [args.kdstore, "query", str(args.store), sql, "--format", "csv"]
            theirs_argv = [args.duckdb, "-readonly", "-csv", str(database), "-c", sql]
            ours, theirs = [], []
            for _ in range(args.runs):
                ours.append(timed(ours_argv))
                theirs.append(timed(theirs_argv))
            problem = same_answer(ours[0][2], theirs[0][2])
            if problem:
                raise SystemExit(f"{title}: the engines disagree: {problem}")
            best_ours, best_theirs = min(ours), min(theirs)
            print(
                f"| {title} | {best_ours[0]:.2f} s ({statistics.median(r[0] for r in ours):.2f}) "
                f"| {best_theirs[0]:.2f} s ({statistics.median(r[0] for r in theirs):.2f}) "
                f"| {best_ours[0] / best_theirs[0]:.2f}x | {best_ours[1]:.0f} / {best_theirs[1]:.0f} MiB |"
            )
        print()
        for title, sql in QUERIES:
            print(f"- {title}: `{sql}`")


if __name__ == "__main__":
    main()
