#!/usr/bin/env bash
# Training throughput for one student on one store, three ways (docs/benchmarks.md): from the
# store with KD (views replayed per batch, stored teacher logits), from in-memory tensors with CE
# only (--preload), and with the frozen teacher run on every batch (--online).
# usage: scripts/bench-training.sh STORE [extra kdstore train arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${KDSTORE_BIN:-target/release/kdstore}
STORE=$1
shift
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
run() {
    local name=$1
    shift
    "$BIN" train "$STORE" "$@" --quiet --out "$OUT/$name" >/dev/null 2>&1
    "${PYTHON:-python3}" -c "
import json, sys
r = json.load(open('$OUT/$name/results.json'))
print(f\"{sys.argv[1]:<34} {r['train_views_per_second']:>10.0f} views/s  {r['train_seconds']:>7.2f} s  test accuracy {r['test_accuracy'] * 100:.2f}%\")
" "$name"
}
run "store, KD" --loss kd "$@"
run "in-memory (--preload), CE only" --loss ce --preload "$@"
run "store, CE only" --loss ce "$@"
run "in-memory (--preload), KD" --loss kd --preload "$@"
run "online teacher (--online), KD" --loss kd --online "$@"
