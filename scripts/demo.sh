#!/usr/bin/env bash
# The end-to-end demo (`make demo`): build the HAPT soft-label store, ask it one question with SQL,
# train a small student three ways from the store, and print what each reached on the test subjects.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${KDSTORE_BIN:-target/release/kdstore}
STORE=runs/hapt
STUDENT=(--student cnn1d --width 8 --depth 2 --epochs 15 --batch-size 64 --lr 0.003 --seed 1)

echo "== kdstore validate pipelines/hapt.toml" >&2
"$BIN" validate pipelines/hapt.toml
echo "== kdstore build pipelines/hapt.toml" >&2
"$BIN" build pipelines/hapt.toml --store "$STORE"
echo "== kdstore info $STORE" >&2
"$BIN" info "$STORE"

echo "== which training views does the teacher find hardest? (kdstore query)" >&2
SQL="SELECT recipe, COUNT(*) AS views, ROUND(AVG(entropy), 3) AS mean_entropy, ROUND(AVG(CAST(teacher_correct AS DOUBLE)), 3) AS teacher_acc FROM labels WHERE split = 'train' GROUP BY recipe ORDER BY mean_entropy DESC"
echo "   $SQL" >&2
"$BIN" query "$STORE" "$SQL"

echo "== students from the store (no teacher runs from here on)" >&2
"$BIN" train "$STORE" --loss ce --where "recipe = 'identity'" --out runs/hapt-student-scratch "${STUDENT[@]}"
"$BIN" train "$STORE" --loss ce --out runs/hapt-student-augmented "${STUDENT[@]}"
"$BIN" train "$STORE" --loss kd --temperature 4 --kd-weight 0.9 --ce-weight 0.1 --out runs/hapt-student-kd "${STUDENT[@]}"

"${PYTHON:-python3}" - "$STORE" <<'PY'
import json, pathlib, sys
store = pathlib.Path(sys.argv[1])
info = json.loads(sorted((store / "_manifest").glob("0*.json"))[-1].read_text())
teacher = info["teachers"][0]
rows = [(f"teacher {teacher['name']} ({teacher['architecture']})", teacher["accuracy"]["test"], None)]
for name, title in [("scratch", "student, CE on identity views"), ("augmented", "student, CE on all stored views"), ("kd", "student, CE + KD(T=4) on all stored views")]:
    r = json.loads(pathlib.Path(f"runs/hapt-student-{name}/results.json").read_text())
    rows.append((title, r["test_accuracy"], r["student_parameters"]))
size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
print()
print(f"{'model':<48} {'test accuracy':>13} {'parameters':>11}")
for title, acc, params in rows:
    print(f"{title:<48} {acc * 100:>12.2f}% {params if params is not None else '':>11}")
print(f"store {store}: {size / 2**20:.1f} MiB on disk, {sum(f['rows'] for f in info['files'] if f['table'] == 'logits')} (view, teacher) rows")
PY
