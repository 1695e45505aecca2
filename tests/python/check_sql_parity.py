"""DuckDB parity of `kdstore query` on queries written without aliases.

Every query runs through `kdstore query --format json` and through DuckDB over exactly the files the
store's current manifest lists (with `labels` = views JOIN samples JOIN logits, as kdstore defines
it). Both must give the same column names, in the same order, and the same rows (floats within
1e-6 relative). Also checks that kdstore's copy of DuckDB's keyword list (which decides what DuckDB
quotes in names) is the installed DuckDB's.

Usage: check_sql_parity.py KDSTORE_BIN STORE REPOSITORY
Prints one line per query and exits non-zero if any disagrees.
"""
import json
import math
import pathlib
import re
import subprocess
import sys

import duckdb

QUERIES = [
    # aggregates without aliases
    "SELECT MIN(teacher_loss), MAX(teacher_loss) FROM logits",
    "SELECT recipe, COUNT(*), AVG(entropy) FROM labels GROUP BY recipe ORDER BY recipe",
    "SELECT ROUND(AVG(teacher_loss), 4), MAX(margin) - MIN(margin), SUM(p_label) FROM logits",
    "SELECT recipe, SUM(lam), AVG(lam), COUNT(lam) FROM views WHERE lam IS NOT NULL GROUP BY recipe ORDER BY recipe",
    "SELECT MIN(scaling_factors[1]), MAX(scaling_factors[1]) FROM views WHERE recipe = 'scaling'",
    "SELECT COUNT(*) FROM samples",
    "SELECT 100.0 * AVG(CAST(teacher_correct AS DOUBLE)) FROM labels WHERE recipe = 'identity'",
    # COUNT(DISTINCT)
    "SELECT COUNT(DISTINCT sample_id), COUNT(DISTINCT recipe) FROM views",
    "SELECT split, COUNT(DISTINCT label) FROM samples GROUP BY split ORDER BY split",
    # CASE
    "SELECT split, SUM(CASE WHEN teacher_correct THEN 1 ELSE 0 END), COUNT(*) FROM labels GROUP BY split ORDER BY split",
    "SELECT CASE WHEN lam IS NULL THEN 'plain' ELSE 'mixed' END, COUNT(*) FROM views GROUP BY 1 ORDER BY 1",
    "SELECT SUM(CASE WHEN margin < 0 THEN 1 END), COUNT(*) FROM labels",
    # window functions
    "SELECT view_id, ROW_NUMBER() OVER (PARTITION BY recipe ORDER BY view_id) FROM labels ORDER BY view_id LIMIT 25",
    "SELECT view_id, recipe, COUNT(*) OVER (PARTITION BY recipe) FROM views ORDER BY view_id LIMIT 10",
    "SELECT view_id, SUM(lam) OVER (PARTITION BY sample_id) FROM views ORDER BY view_id LIMIT 10",
    "SELECT view_id, AVG(entropy) OVER (PARTITION BY recipe) FROM labels ORDER BY view_id LIMIT 10",
    # LIKE and IN-lists
    "SELECT recipe, COUNT(*) FROM views WHERE recipe LIKE 'mix%' OR recipe LIKE '%cut%' GROUP BY recipe ORDER BY recipe",
    "SELECT COUNT(*) FROM labels WHERE recipe IN ('identity', 'jitter') AND split = 'train'",
    "SELECT recipe, COUNT(*) FROM views WHERE recipe NOT IN ('identity') AND recipe NOT LIKE 'j%' GROUP BY recipe ORDER BY recipe",
    "SELECT recipe LIKE 'mix%', COUNT(*) FROM views GROUP BY 1 ORDER BY 1",
    # ORDER BY position
    "SELECT recipe, AVG(p_label) FROM labels GROUP BY recipe ORDER BY 2 DESC, 1",
    "SELECT teacher_pred, label, COUNT(*) FROM labels WHERE recipe = 'identity' GROUP BY teacher_pred, label ORDER BY 1, 2",
    "SELECT recipe, COUNT(*) FROM labels GROUP BY recipe HAVING COUNT(*) > 40 ORDER BY 2 DESC, 1",
    # joins between tables
    "SELECT s.split, COUNT(*) FROM views v JOIN samples s ON v.sample_id = s.sample_id GROUP BY s.split ORDER BY 1",
    "SELECT v.recipe, AVG(l.margin), MAX(l.entropy) FROM views v JOIN logits l ON v.view_id = l.view_id GROUP BY v.recipe ORDER BY v.recipe",
    "SELECT s.label, COUNT(*), AVG(l.p_label) FROM logits l JOIN views v USING (view_id) JOIN samples s USING (sample_id) WHERE s.split = 'test' GROUP BY s.label ORDER BY s.label",
    # plain expressions
    "SELECT view_id, teacher_loss * 2, -margin, p_label > 0.5 FROM logits ORDER BY view_id LIMIT 5",
    "SELECT view_id, COALESCE(lam, 1.0), partner_id IS NULL FROM views ORDER BY view_id LIMIT 5",
    "SELECT UPPER(recipe), LENGTH(recipe), COUNT(*) FROM views GROUP BY recipe ORDER BY 1",
    "SELECT recipe, COUNT(*) FROM (SELECT * FROM labels WHERE entropy < 0.5) GROUP BY recipe ORDER BY recipe",
]


def kdstore(binary, store, sql):
    out = subprocess.run([binary, "query", str(store), sql, "--format", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    rows = json.loads(out.stdout, object_pairs_hook=list)
    return rows


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def main(binary, store, repository):
    store = pathlib.Path(store)
    manifests = sorted(p for p in (store / "_manifest").glob("*.json") if not p.name.startswith("."))
    manifest = json.loads(manifests[-1].read_text())
    files = {t: [str(store / f["path"]) for f in manifest["files"] if f["table"] == t] for t in ("samples", "views", "logits")}
    con = duckdb.connect()
    for table, paths in files.items():
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({paths!r}, union_by_name=true)")
    con.execute(
        'CREATE VIEW labels AS SELECT * FROM views JOIN (SELECT sample_id, split, label, "group" FROM samples) '
        "USING (sample_id) JOIN logits USING (view_id)"
    )
    failures = 0
    for sql in QUERIES:
        result = con.execute(sql)
        names = [d[0] for d in result.description]
        expected = result.fetchall()
        try:
            rows = kdstore(binary, store, sql)
        except RuntimeError as error:
            print(f"FAIL: {sql}\n  kdstore: {error}")
            failures += 1
            continue
        got_names = [name for name, _ in rows[0]] if rows else names
        problem = None
        if got_names != names:
            problem = f"names {got_names} vs duckdb {names}"
        elif len(rows) != len(expected):
            problem = f"{len(rows)} rows vs duckdb {len(expected)}"
        else:
            for i, (row, theirs) in enumerate(zip(rows, expected)):
                values = [value for _, value in row]
                if not all(same(a, b) for a, b in zip(values, theirs)):
                    problem = f"row {i}: {values} vs duckdb {list(theirs)}"
                    break
        if problem:
            print(f"FAIL: {sql}\n  {problem}")
            failures += 1
        else:
            print(f"ok: {sql} -> {names}")

    source = (pathlib.Path(repository) / "crates/core/src/query/names.rs").read_text()
    listed = re.search(r"DUCKDB_KEYWORDS: &\[&str\] = &\[(.*?)\];", source, re.S).group(1)
    ours = re.findall(r'"([^"]+)"', listed)
    theirs = sorted({r[0] for r in con.execute("SELECT keyword_name FROM duckdb_keywords()").fetchall()})
    if ours != theirs:
        print(f"FAIL: DUCKDB_KEYWORDS differs from duckdb_keywords(): {sorted(set(ours) ^ set(theirs))[:10]}")
        failures += 1
    else:
        print(f"ok: {len(ours)} DuckDB keywords")
    if failures:
        print(f"{failures} disagreement(s)")
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:4])
