#!/usr/bin/env bash
# The same student trained with several objectives from one store (its teacher's stored logits and
# features), seeds 1-3, on the same views; prints each objective's test accuracies, their mean and
# sd, and the mean expected calibration error (docs/benchmarks.md). The store needs embeddings for
# sp and dlkd. No teacher runs.
# usage: scripts/compare-losses.sh STORE [extra kdstore train arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${KDSTORE_BIN:-target/release/kdstore}
STORE=$1
shift
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
OBJECTIVES=(
    "ce|--loss ce"
    "kd|--loss kd"
    "kd+sp|--loss kd --loss sp=3000"
    "dist|--loss ce --loss dist=2 --set tau=4"
    "dkd|--loss ce --loss dkd"
    "dlkd|--loss dlkd"
)
for objective in "${OBJECTIVES[@]}"; do
    name=${objective%%|*}
    read -r -a flags <<<"${objective#*|}"
    for seed in 1 2 3; do
        "$BIN" train "$STORE" "${flags[@]}" --seed "$seed" "$@" --quiet --out "$OUT/$name-$seed" >/dev/null 2>&1
    done
done
"${PYTHON:-python3}" - "$OUT" "${OBJECTIVES[@]%%|*}" <<'PY'
import json, pathlib, statistics, sys
out, names = pathlib.Path(sys.argv[1]), sys.argv[2:]
print(f"{'objective':<8} {'test accuracy, seeds 1-3':<26} {'mean':>7} {'sd':>5} {'mean ECE':>9}")
for name in names:
    runs = [json.loads((out / f"{name}-{seed}" / "results.json").read_text()) for seed in (1, 2, 3)]
    acc = [r["test_accuracy"] * 100 for r in runs]
    ece = statistics.mean(r["test"]["ece"] for r in runs)
    print(f"{name:<8} {', '.join(f'{a:.2f}' for a in acc):<26} {statistics.mean(acc):>6.2f}% {statistics.stdev(acc):>5.2f} {ece:>9.4f}")
PY
