#!/usr/bin/env python3
"""docs/benchmarks.md's store-fed training against in-memory tensors, in one run, for the smallest
student of the HAPT demo at 1 and 2 libtorch threads:

1. The store's cost: one training per loss (KD, CE) with `--alternate-feed`, whose odd epochs batch
   every view from memory (rendered once, as `--preload`) and even ones replay them from the store:
   the same batches, so the same training, in one process, each store epoch next to a memory one.
   Reported: the median over epoch pairs of memory time / store time (the store's speed as a
   fraction of in-memory speed), from each epoch's `train_seconds` (the steps only).
2. Store-fed KD against in-memory CE (`--preload --loss ce`), separate processes alternating REPS
   times: this also counts what KD's loss costs over CE's. This 2-core machine's speed drifts by
   10-20% from one run to the next, so this ratio is reported per pair and as the median.

usage: bench-store-fed.py KDSTORE STORE [REPS]
"""

import json
import statistics
import subprocess
import sys
import tempfile

STUDENT = ["--student", "cnn1d", "--width", "8", "--depth", "2", "--batch-size", "64",
           "--lr", "0.003", "--seed", "1"]
KINDS = [("from the store, KD", ["--loss", "kd"]), ("in-memory (--preload), CE", ["--loss", "ce", "--preload"])]


def views_per_second(kdstore, store, threads, extra):
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([kdstore, "train", store, *STUDENT, "--epochs", "30", "--threads", str(threads), *extra, "--quiet",
                        "--out", out], check=True, capture_output=True)
        with open(f"{out}/results.json") as f:
            return json.load(f)["train_views_per_second"]


def alternating_feed(kdstore, store, threads, loss, epochs):
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([kdstore, "train", store, *STUDENT, "--epochs", str(epochs), "--threads", str(threads),
                        "--loss", loss, "--alternate-feed", "--quiet", "--out", out], check=True, capture_output=True)
        with open(f"{out}/results.json") as f:
            epochs = json.load(f)["epochs"]
    memory = [e["train_seconds"] for e in epochs if e["fed_from"] == "memory"]
    from_store = [e["train_seconds"] for e in epochs if e["fed_from"] == "store"]
    return memory, from_store


def main():
    kdstore, store = sys.argv[1:3]
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    epochs = 40
    print(f"{store}: {' '.join(STUDENT)}")
    print(f"\n1. The store's cost, one `--alternate-feed` training of {epochs} epochs each (epoch pairs: memory, store)")
    print("| threads | loss | memory epoch (s, mean) | store epoch (s, mean) | store / memory speed (median of pairs) |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for threads in (1, 2):
        for loss in ("kd", "ce"):
            memory, from_store = alternating_feed(kdstore, store, threads, loss, epochs)
            ratios = [m / s for m, s in zip(memory, from_store)]
            print(f"| {threads} | {loss} | {statistics.mean(memory):.4f} | {statistics.mean(from_store):.4f} "
                  f"| {statistics.median(ratios):.3f} |", flush=True)
    print(f"\n2. Store-fed KD against in-memory CE, separate runs, {reps} pairs per thread count")
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
