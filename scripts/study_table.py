"""Shared by the study scripts of docs/benchmarks.md: train each named configuration for every
seed (skipping runs whose results.json exists, so an interrupted study continues) and print one
markdown table of test accuracy and ECE, mean ± std over the seeds."""

import json
import statistics
import subprocess
from pathlib import Path


def run_table(kdstore, store, runs, seeds, out, common, header):
    """runs: (name, label, extra kdstore-train arguments); common: arguments of every run; an empty
    header continues the table above."""
    if header:
        print(header)
        print("|---|---|---|")
    for name, label, extra in runs:
        accuracy, ece = [], []
        for seed in seeds:
            folder = Path(out) / f"{name}-s{seed}"
            if not (folder / "results.json").exists():
                subprocess.run([kdstore, "train", store, *common, "--seed", str(seed), "--quiet", "--out",
                                str(folder), *extra], check=True)
            r = json.loads((folder / "results.json").read_text())
            accuracy.append(r["test_accuracy"] * 100)
            ece.append(r["test"]["ece"])
        sd = statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0
        print(f"| {label} | {statistics.mean(accuracy):.2f} ± {sd:.2f}% ({', '.join(f'{a:.2f}' for a in accuracy)}) "
              f"| {statistics.mean(ece):.3f} |", flush=True)
