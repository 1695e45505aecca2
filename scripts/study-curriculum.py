"""The curriculum study of docs/benchmarks.md ("Curricula"), on runs/hapt (`make demo` builds it).

Trains the demo's small student (a 1D-CNN of about 1k parameters, 20 epochs, KD from the store's
teacher) at equal steps, for each seed: in random order (plain training), with a curriculum by the
teacher's `teacher_loss` on each sample's identity view under two pacings (Wu et al.'s `linear`,
Hacohen & Weinshall's `exponential`, their defaults), and with the anti-curriculum (hardest
first, `linear`). Prints one markdown table: test accuracy and ECE, mean ± std over the seeds.
Every run's results.json stays under --out.

usage: study-curriculum.py KDSTORE_BINARY STORE [--seeds 1 2 3] [--epochs 20] [--out DIR]
"""

import argparse

from study_table import run_table

STUDENT = ["--student", "cnn1d", "--width", "8", "--depth", "2"]
RUNS = [
    ("plain", "random order (no curriculum)", []),
    ("linear", "curriculum, linear pacing (a 0.8, b 0.2)", ["--curriculum", "teacher_loss", "--pacing", "linear"]),
    ("exponential", "curriculum, exponential pacing (0.04, ×1.9 every 100 steps)",
     ["--curriculum", "teacher_loss", "--pacing", "exponential"]),
    ("anti-linear", "anti-curriculum, linear pacing",
     ["--curriculum", "teacher_loss", "--anti-curriculum", "--pacing", "linear"]),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kdstore")
    parser.add_argument("store")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="runs/study-curriculum")
    args = parser.parse_args()
    header = f"| order ({args.epochs} epochs, KD, {len(args.seeds)} seeds) | test accuracy | test ECE |"
    run_table(args.kdstore, args.store, RUNS, args.seeds, args.out, [*STUDENT, "--epochs", str(args.epochs)], header)


if __name__ == "__main__":
    main()
