"""Cross-checks a kdstore store with other engines and with PyTorch.

1. The same questions asked through `kdstore query`, DuckDB and pyarrow give the same answers.
2. A TorchScript teacher's stored logits equal PyTorch's on the identity views' inputs
   (raw sample inputs normalised with the manifest's per-channel mean and std).

Usage: check_store.py KDSTORE_BIN STORE TEACHER_NAME TEACHER.pt
Prints one line per check and exits non-zero on the first disagreement.
"""
import json
import pathlib
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

binary, store, teacher_name, teacher_path = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
manifests = sorted(p for p in (store / "_manifest").glob("*.json") if not p.name.startswith("."))
manifest = json.loads(manifests[-1].read_text())
files = {t: [str(store / f["path"]) for f in manifest["files"] if f["table"] == t] for t in ("samples", "views", "logits")}


def kdstore(sql):
    out = subprocess.run([binary, "query", str(store), sql, "--format", "json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def fail(message):
    print("FAIL:", message)
    sys.exit(1)


con = duckdb.connect()
for table, paths in files.items():
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({paths!r}, union_by_name=true)")
con.execute(
    'CREATE VIEW labels AS SELECT v.*, s.split, s.label, s."group", l.* EXCLUDE (view_id) '
    "FROM views v JOIN samples s USING (sample_id) JOIN logits l USING (view_id)"
)

# 1. Same answers from three engines.
questions = [
    ("views per recipe", "SELECT recipe, COUNT(*) AS n FROM views GROUP BY recipe ORDER BY recipe"),
    ("teacher accuracy per split", "SELECT teacher, split, AVG(CAST(teacher_correct AS DOUBLE)) AS acc FROM labels WHERE recipe = 'identity' GROUP BY teacher, split ORDER BY teacher, split"),
    ("mean entropy of confident views", "SELECT teacher, COUNT(*) AS n, AVG(entropy) AS h FROM labels WHERE p_label > 0.5 GROUP BY teacher ORDER BY teacher"),
    ("mixed views", "SELECT COUNT(*) AS n, SUM(lam) AS lam_sum FROM views WHERE partner_id IS NOT NULL"),
]
for title, sql in questions:
    ours = kdstore(sql)
    theirs = [dict(zip([d[0] for d in con.description], row)) for row in con.execute(sql).fetchall()]
    if len(ours) != len(theirs):
        fail(f"{title}: kdstore gave {len(ours)} rows, duckdb {len(theirs)}")
    for a, b in zip(ours, theirs):
        for key, value in b.items():
            if isinstance(value, float) or isinstance(a[key], float):
                if not np.isclose(a[key], value, rtol=1e-5, atol=1e-6):
                    fail(f"{title}: {key} kdstore {a[key]} vs duckdb {value}")
            elif a[key] != value:
                fail(f"{title}: {key} kdstore {a[key]} vs duckdb {value}")
    print(f"ok: {title}: kdstore == duckdb ({len(ours)} rows)")

views = pq.read_table(files["views"])
recipes = views.group_by("recipe").aggregate([("view_id", "count")]).sort_by("recipe").to_pylist()
ours = kdstore("SELECT recipe, COUNT(*) AS view_id_count FROM views GROUP BY recipe ORDER BY recipe")
if recipes != ours:
    fail(f"views per recipe: pyarrow {recipes} vs kdstore {ours}")
mixed = views.filter(pc.is_valid(views["partner_id"]))
if mixed.num_rows != kdstore("SELECT COUNT(*) AS n FROM views WHERE partner_id IS NOT NULL")[0]["n"]:
    fail("mixed views: pyarrow disagrees")
print(f"ok: views per recipe and mixed views: kdstore == pyarrow ({views.num_rows} views)")

# 2. TorchScript logits in the store equal PyTorch's on identity inputs.
samples = pq.read_table(files["samples"]).sort_by("sample_id")
shape = manifest["dataset"]["sample_shape"]
inputs = np.stack([np.asarray(x, dtype=np.float32) for x in samples["input"].to_pylist()]).reshape([-1] + shape)
norm = manifest["dataset"]["normalization"]
mean = np.asarray(norm["mean"], dtype=np.float32).reshape([1, -1] + [1] * (len(shape) - 1))
std = np.asarray(norm["std"], dtype=np.float32).reshape([1, -1] + [1] * (len(shape) - 1))
normalised = (inputs - mean) / std
identity = views.filter(pc.equal(views["recipe"], "identity")).select(["view_id", "sample_id"]).to_pylist()
logits_tables = [pq.read_table(p) for p in files["logits"]]
stored = {}
for table in logits_tables:
    for row in table.filter(pc.equal(table["teacher"], teacher_name)).select(["view_id", "logits"]).to_pylist():
        stored[row["view_id"]] = row["logits"]
module = torch.jit.load(teacher_path).eval()
with torch.no_grad():
    expected = module(torch.from_numpy(normalised)).numpy()
worst = 0.0
for row in identity:
    got = np.asarray(stored[row["view_id"]], dtype=np.float32)
    worst = max(worst, float(np.abs(got - expected[row["sample_id"]]).max()))
if worst > 1e-4:
    fail(f"torchscript logits differ from PyTorch's by up to {worst}")
print(f"ok: {len(identity)} identity views: stored logits == PyTorch's (max abs diff {worst:.2e})")
