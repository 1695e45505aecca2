#!/usr/bin/env bash
# The end-to-end demo (`make demo`): build the HAPT soft-label store, ask it one question with SQL,
# draw two of its views, train the same small student four ways from the store (no teacher runs
# after the build), and print what each reached on the held-out test subjects. One seed each: a
# demonstration, not a study.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${KDSTORE_BIN:-target/release/kdstore}
STORE=runs/hapt
STUDENT=(--student cnn1d --width 8 --depth 2 --epochs 30 --batch-size 64 --lr 0.003 --seed 1 --quiet)

echo "== kdstore validate pipelines/hapt.toml" >&2
"$BIN" validate pipelines/hapt.toml
echo "== kdstore build pipelines/hapt.toml" >&2
"$BIN" build pipelines/hapt.toml --store "$STORE"
echo "== kdstore verify $STORE (every file against the manifest)" >&2
"$BIN" verify "$STORE"
echo "== kdstore info $STORE" >&2
"$BIN" info "$STORE"

SQL="SELECT recipe, COUNT(*) AS views, ROUND(AVG(entropy), 3) AS mean_entropy, ROUND(AVG(CAST(teacher_correct AS DOUBLE)), 3) AS teacher_acc FROM labels WHERE split = 'train' GROUP BY recipe ORDER BY mean_entropy DESC"
echo "== which training views does the teacher find hardest?" >&2
echo "   kdstore query $STORE \"$SQL\"" >&2
"$BIN" query "$STORE" "$SQL"

echo "== a picture of two mixed views and what the teacher said: runs/hapt-views.svg" >&2
"$BIN" show "$STORE" --where "recipe = 'mixup' AND split = 'train'" --limit 2 --out runs/hapt-views.svg

echo "== students from the store" >&2
"$BIN" train "$STORE" --loss ce --where "recipe = 'identity'" --out runs/hapt-student-ce-identity "${STUDENT[@]}"
"$BIN" train "$STORE" --loss kd --where "recipe = 'identity'" --out runs/hapt-student-kd-identity "${STUDENT[@]}"
"$BIN" train "$STORE" --loss ce --out runs/hapt-student-ce-all "${STUDENT[@]}"
"$BIN" train "$STORE" --loss kd --out runs/hapt-student-kd-all "${STUDENT[@]}"

"${PYTHON:-python3}" - "$STORE" <<'PY'
import json, pathlib, sys
store = pathlib.Path(sys.argv[1])
manifest = json.loads(sorted((store / "_manifest").glob("0*.json"))[-1].read_text())
teacher = manifest["teachers"][0]
rows = [(f"teacher {teacher['name']}, {teacher['architecture']}", teacher["accuracy"]["test"], None)]
for name, title in [
    ("ce-identity", "student, CE on identity views"),
    ("kd-identity", "student, CE + KD(T=4) on identity views"),
    ("ce-all", "student, CE on all stored views"),
    ("kd-all", "student, CE + KD(T=4) on all stored views"),
]:
    r = json.loads(pathlib.Path(f"runs/hapt-student-{name}/results.json").read_text())
    rows.append((title, r["test_accuracy"], r["student_parameters"]))
size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
views = sum(f["rows"] for f in manifest["files"] if f["table"] == "logits")
print()
print(f"{'model (HAPT, test subjects)':<46} {'test accuracy':>13} {'parameters':>11}")
for title, acc, params in rows:
    print(f"{title:<46} {acc * 100:>12.2f}% {params if params is not None else '':>11}")
print(f"store {store}: {size / 2**20:.1f} MiB on disk, {views} (view, teacher) rows")
PY
