"""The many-teachers study of docs/benchmarks.md ("Many teachers"), on runs/hapt-assistants.

Trains the same small student (a 1D-CNN of about 1k parameters) from the store built by
pipelines/hapt-assistants.toml, for each seed:

  - from scratch (labels only) and from each teacher of the TA chain: big, ta1, ta2 (TAKD);
  - from each checkpoint of big: big@e1, big@e3, big@e6 and big itself (the "sweet spot");
  - from ensembles of big, ta1 and ta2: mean, camkd, ebkd, de, random, curriculum;
  - from the three subset teachers sub#0..2: one of them alone, mean, random, random over the
    teachers that did not see the sample (RoS-KD);
  - on the accelerometer alone (channels 0-2), from scratch and from big, which sees all six.

and prints one markdown table: test accuracy (mean ± std over the seeds) and the teachers' own.
Every run's results.json stays under --out.

usage: study-teachers.py KDSTORE_BINARY STORE [--seeds 0 1 2] [--epochs 20] [--out DIR]
"""

import argparse
import json
import statistics
import subprocess
from pathlib import Path

STUDENT = ["--student", "cnn1d", "--width", "8", "--depth", "2"]
THREE = ["--teacher", "big", "--teacher", "ta1", "--teacher", "ta2"]

# (group, label, extra arguments of kdstore train)
RUNS = [
    ("assistants", "scratch (ce)", ["--loss", "ce"]),
    ("assistants", "from big", ["--teacher", "big"]),
    ("assistants", "from ta1 (big → ta1)", ["--teacher", "ta1"]),
    ("assistants", "from ta2 (big → ta1 → ta2)", ["--teacher", "ta2"]),
    ("checkpoints", "from big@e1", ["--teacher", "big@e1"]),
    ("checkpoints", "from big@e3", ["--teacher", "big@e3"]),
    ("checkpoints", "from big@e6", ["--teacher", "big@e6"]),
    ("checkpoints", "from big (e12, best on val)", ["--teacher", "big"]),
    ("ensembles", "mean of big, ta1, ta2", THREE + ["--ensemble", "mean"]),
    ("ensembles", "camkd", THREE + ["--ensemble", "camkd"]),
    ("ensembles", "ebkd", THREE + ["--ensemble", "ebkd"]),
    ("ensembles", "de", THREE + ["--ensemble", "de"]),
    ("ensembles", "random", THREE + ["--ensemble", "random"]),
    ("ensembles", "curriculum (CES-KD)", THREE + ["--ensemble", "curriculum"]),
    ("subsets", "from sub#0 alone", ["--teacher", "sub#0"]),
    ("subsets", "mean of sub#*", ["--teacher", "sub#*", "--ensemble", "mean"]),
    ("subsets", "random sub#*", ["--teacher", "sub#*", "--ensemble", "random"]),
    ("subsets", "random sub#*, unseen only", ["--teacher", "sub#*", "--ensemble", "random", "--random-unseen"]),
    ("channels", "accelerometer only, scratch", ["--loss", "ce", "--student-channels", "0,1,2"]),
    ("channels", "accelerometer only, from big (6 channels)", ["--teacher", "big", "--student-channels", "0,1,2"]),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kdstore")
    parser.add_argument("store")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="runs/study-teachers")
    args = parser.parse_args()
    out = Path(args.out)
    results = {}
    for group, label, extra in RUNS:
        for seed in args.seeds:
            run_dir = out / f"{group}-{label}-s{seed}".replace(" ", "_").replace("/", "_")
            if not (run_dir / "results.json").exists():
                command = [args.kdstore, "train", args.store, *STUDENT, "--epochs", str(args.epochs),
                           "--seed", str(seed), "--out", str(run_dir), *extra]
                subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
            results.setdefault((group, label), []).append(json.loads((run_dir / "results.json").read_text()))
    print(f"| study | student ({args.epochs} epochs, {len(args.seeds)} seeds) | test accuracy | teacher / ensemble test accuracy |")
    print("|---|---|---|---|")
    for (group, label), runs in results.items():
        accuracies = [r["test_accuracy"] * 100 for r in runs]
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        first = runs[0]
        if first.get("ensemble"):
            teacher = first["ensemble"]["test_accuracy"]
            extra = ""
            if first["ensemble"].get("de"):
                weights = ", ".join(f"{w:.2f}" for w in first["ensemble"]["de"]["weights"])
                extra = f" (weights {weights})"
            teacher_text = f"{teacher * 100:.2f}%{extra}"
        elif "--teacher" not in RUNS_ARGS[label]:
            teacher_text = "-"  # from the labels alone
        else:
            teacher_text = f"{first['teacher_test_accuracy'] * 100:.2f}%"
        print(f"| {group} | {label} | {statistics.mean(accuracies):.2f} ± {spread:.2f}% | {teacher_text} |")


RUNS_ARGS = {label: extra for _, label, extra in RUNS}

if __name__ == "__main__":
    main()
