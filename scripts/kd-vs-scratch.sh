#!/usr/bin/env bash
# Does distillation help? The same student trained from scratch (CE) and with KD from the store,
# over seeds 1-3, on the same views; prints each run and the means (docs/benchmarks.md).
# usage: scripts/kd-vs-scratch.sh STORE [extra kdstore train arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${KDSTORE_BIN:-target/release/kdstore}
STORE=$1
shift
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for seed in 1 2 3; do
    for loss in ce kd; do
        "$BIN" train "$STORE" --loss "$loss" --seed "$seed" "$@" --quiet --out "$OUT/$loss-$seed" >/dev/null 2>&1
    done
done
"${PYTHON:-python3}" - "$OUT" <<'PY'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1])
acc = {loss: [json.loads((out / f"{loss}-{seed}" / "results.json").read_text())["test_accuracy"] * 100 for seed in (1, 2, 3)] for loss in ("ce", "kd")}
for loss, name in (("ce", "from scratch (CE)"), ("kd", "KD from the store")):
    runs = ", ".join(f"{a:.2f}" for a in acc[loss])
    print(f"{name:<20} seeds 1-3: {runs}  mean {statistics.mean(acc[loss]):.2f}% (sd {statistics.stdev(acc[loss]):.2f})")
print(f"KD - CE: {statistics.mean(acc['kd']) - statistics.mean(acc['ce']):+.2f} points")
PY
