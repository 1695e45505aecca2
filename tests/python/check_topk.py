"""Checks a store's top-k teachers against a dense teacher that computed the same logits (the same
TorchScript module stored three ways), reading the Parquet files with pyarrow:

1. Each top-k file holds what the README documents: the k classes of the largest dense logits
   (ties to the lower class) as the narrowest unsigned type, their log-probabilities (float16, or
   q8 bytes round(-log p * 16)), the log-sum-exp as float32, the statistics of the full logits as
   float16, and no view_id.
2. `kdstore query` reads the top-k teacher as dense logits rebuilt with the documented tail
   treatment, with the view ids of the dense teacher's rows and teacher_pred = the first class.
3. `kdstore export --teacher` writes the same rebuilt logits to teacher_logits.npy.

Usage: check_topk.py KDSTORE_BIN STORE DENSE_TEACHER TOPK_TEACHER...
Prints one line per check (and the bytes per row of each teacher) and exits 1 on a disagreement.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow.parquet as pq

binary, store, dense_name, topk_names = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4:]
manifests = sorted(p for p in (store / "_manifest").glob("*.json") if not p.name.startswith("."))
manifest = json.loads(manifests[-1].read_text())
teachers = {t["name"]: t for t in manifest["teachers"]}
TAIL_FLOOR = 1e-9
STATS = ["teacher_loss", "p_label", "entropy", "margin"]


def fail(message):
    print("FAIL:", message)
    sys.exit(1)


def ok(message):
    print("ok:", message)


def logits_files(teacher):
    return {f["views_key"]: f for f in manifest["files"] if f["table"] == "logits" and f["teacher"] == teacher}


def lists(table, column):
    return np.array(table.column(column).to_pylist())


def dense_from_top_k(index, logprob, lse, classes):
    k = index.shape[1]
    tail = np.maximum(1 - np.exp(logprob).sum(1), TAIL_FLOOR)
    z = np.repeat((lse + np.log(tail / (classes - k)))[:, None], classes, 1) if k < classes else np.zeros((len(lse), classes))
    np.put_along_axis(z, index.astype(np.int64), lse[:, None] + logprob, 1)
    return z


def query(sql):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "q.parquet")
        subprocess.run([binary, "query", str(store), sql, "--format", "parquet", "--output", out], check=True)
        return pq.read_table(out)


dense_files = logits_files(dense_name)
classes = len(teachers[dense_name]["label_space"])
for name in topk_names:
    fmt = teachers[name]["logits_format"]
    k, values = fmt["top_k"], fmt["values"]
    files = logits_files(name)
    if set(files) != set(dense_files):
        fail(f"{name}: labels other views parts than {dense_name}")
    all_dense, all_rebuilt, all_first = [], [], []
    for views_key, file in sorted(files.items()):
        table = pq.read_table(store / file["path"])
        expected = ["teacher", "topk_index", "topk_logprob", "lse", *STATS, "teacher_correct"]
        if table.column_names != expected:
            fail(f"{file['path']}: columns {table.column_names}, expected {expected}")
        index_type = str(table.schema.field("topk_index").type.value_type)
        if index_type != ("uint8" if classes <= 256 else "uint16"):
            fail(f"{file['path']}: topk_index is {index_type} for {classes} classes")
        dense = pq.read_table(store / dense_files[views_key]["path"])
        z = lists(dense, "logits").astype(np.float64)
        lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
        want_index = np.argsort(-z, axis=1, kind="stable")[:, :k]
        if not np.array_equal(lists(table, "topk_index"), want_index):
            fail(f"{file['path']}: topk_index differs from the classes of the {k} largest dense logits")
        want_logprob = np.take_along_axis(z, want_index, 1) - lse[:, None]
        stored = lists(table, "topk_logprob")
        if values == "q8":
            codes = -want_logprob * 16
            off = np.abs(stored - np.clip(np.round(codes), 0, 255))
            # Rust rounds half away from zero, numpy half to even: only exact halves may differ.
            if np.any((off > 0) & (np.abs(codes - np.floor(codes) - 0.5) > 1e-6)) or np.any(off > 1):
                fail(f"{file['path']}: q8 codes differ from round(-log p * 16)")
            logprob = -stored.astype(np.float64) / 16
        else:
            half = want_logprob.astype(np.float16).astype(np.float64)
            if not np.allclose(stored, half, rtol=2**-10, atol=0):
                fail(f"{file['path']}: f16 log-probabilities differ from the dense ones")
            logprob = stored.astype(np.float64)
        stored_lse = np.array(table.column("lse").to_pylist())
        if table.schema.field("lse").type != "float" or not np.allclose(stored_lse, lse, rtol=1e-6, atol=1e-6):
            fail(f"{file['path']}: lse is not the float32 log-sum-exp of the dense logits")
        for stat in STATS:
            want = np.array(dense.column(stat).to_pylist(), dtype=np.float32).astype(np.float16).astype(np.float64)
            got = np.array(table.column(stat).to_pylist(), dtype=np.float64)
            if str(table.schema.field(stat).type) != "halffloat" or not np.allclose(got, want, rtol=2**-10, atol=1e-7):
                fail(f"{file['path']}: {stat} is not the dense row's statistic as float16")
        if table.column("teacher_correct").to_pylist() != dense.column("teacher_correct").to_pylist():
            fail(f"{file['path']}: teacher_correct differs")
        all_dense.append((dense.column("view_id").to_pylist(), z))
        all_first.append(want_index[:, 0])
        all_rebuilt.append(dense_from_top_k(want_index, logprob, stored_lse.astype(np.float64), classes))
    ok(f"{name}: {len(files)} top-{k} {values} parts hold the dense teacher's top {k} classes, lse and statistics")

    ids = [i for part, _ in all_dense for i in part]
    rebuilt = dict(zip(ids, np.concatenate(all_rebuilt)))
    first = dict(zip(ids, np.concatenate(all_first).tolist()))
    read = query(f"SELECT view_id, logits, teacher_pred FROM logits WHERE teacher = '{name}'")
    read_ids = read.column("view_id").to_pylist()
    if sorted(read_ids) != sorted(ids):
        fail(f"{name}: kdstore query gives other view ids than the dense teacher's rows")
    got = lists(read, "logits").astype(np.float64)
    want = np.stack([rebuilt[i] for i in read_ids])
    if not np.allclose(got, want, rtol=1e-6, atol=1e-5):
        worst = np.abs(got - want).max()
        fail(f"{name}: the logits kdstore reads differ from the documented reconstruction (max {worst:.3g})")
    # The first stored class, which is the dense argmax even where q8 rounding tied two classes.
    if read.column("teacher_pred").to_pylist() != [first[i] for i in read_ids]:
        fail(f"{name}: teacher_pred is not the first stored class")
    ok(f"{name}: kdstore query reads {len(read_ids)} rows of dense logits rebuilt with the even tail")

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([binary, "export", str(store), "--teacher", name, "--out", tmp, "-q"], check=True)
        exported = np.load(os.path.join(tmp, "teacher_logits.npy")).astype(np.float64)
        exported_ids = pq.read_table(os.path.join(tmp, "rows.parquet")).column("view_id").to_pylist()
    if sorted(exported_ids) != sorted(ids):
        fail(f"{name}: kdstore export gives other view ids than the dense teacher's rows")
    want = np.stack([rebuilt[i] for i in exported_ids])
    if not np.allclose(exported, want, rtol=1e-6, atol=1e-5):
        fail(f"{name}: teacher_logits.npy differs from the documented reconstruction (max {np.abs(exported - want).max():.3g})")
    ok(f"{name}: kdstore export writes the rebuilt logits of {len(exported_ids)} views")

for name in [dense_name, *topk_names]:
    files = logits_files(name).values()
    per_row = sum(f["bytes"] for f in files) / sum(f["rows"] for f in files)
    print(f"bytes: {name} {per_row:.1f} per row")
