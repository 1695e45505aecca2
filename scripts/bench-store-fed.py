#!/usr/bin/env python3
"""docs/benchmarks.md's store-fed training against in-memory tensors, in one run: the smallest
student of the HAPT demo trained from the store with KD (every view replayed per batch, the stored
teacher logits read) and from in-memory tensors with plain cross-entropy (`--preload --loss ce`),
at 1 and 2 libtorch threads, REPS times each, the two kinds alternating so that each pair of runs
sees the machine in the same state. This 2-core machine's speed drifts by 10-20% over minutes, so
the ratio is reported per pair and as the median of the pairs.

usage: bench-store-fed.py KDSTORE STORE [REPS]
"""

import json
import statistics
import subprocess
import sys
import tempfile

STUDENT = ["--student", "cnn1d", "--width", "8", "--depth", "2", "--epochs", "30", "--batch-size", "64",
           "--lr", "0.003", "--seed", "1"]
KINDS = [("from the store, KD", ["--loss", "kd"]), ("in-memory (--preload), CE", ["--loss", "ce", "--preload"])]


def views_per_second(kdstore, store, threads, extra):
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([kdstore, "train", store, *STUDENT, "--threads", str(threads), *extra, "--quiet",
                        "--out", out], check=True, capture_output=True)
        with open(f"{out}/results.json") as f:
            return json.load(f)["train_views_per_second"]


def main():
    kdstore, store = sys.argv[1:3]
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    print(f"{store}: {' '.join(STUDENT)}, {reps} pairs per thread count")
    print("| threads | from the store, KD (views/s) | in-memory, CE (views/s) | ratio per pair | median ratio |")
    print("| ---: | --- | --- | --- | ---: |")
    for threads in (1, 2):
        runs = {name: [] for name, _ in KINDS}
        for _ in range(reps):
            for name, extra in KINDS:
                runs[name].append(views_per_second(kdstore, store, threads, extra))
        store_fed, in_memory = (runs[name] for name, _ in KINDS)
        ratios = [a / b for a, b in zip(store_fed, in_memory)]
        cell = lambda values: ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {threads} | {cell(store_fed)} | {cell(in_memory)} | {', '.join(f'{r:.2f}' for r in ratios)} "
              f"| {statistics.median(ratios):.2f} |", flush=True)


if __name__ == "__main__":
    main()
